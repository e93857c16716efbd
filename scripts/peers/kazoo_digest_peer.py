#!/usr/bin/env python3
"""kazoo with ZooKeeper digest credentials, for the authentication interoperability tests.

    python3 scripts/peers/kazoo_digest_peer.py --hosts 127.0.0.1:PORT [--auth user:password] get PATH
    python3 scripts/peers/kazoo_digest_peer.py --hosts 127.0.0.1:PORT --auth user:password create PATH VALUE

`get` prints `VALUE <text>` (the node's data as UTF-8) or `NOAUTH` (the server refused the read).
`create` makes PATH (and its parents) with kazoo's own digest ACL for the user
(`make_digest_acl(user, password, all=True)`, the hash kazoo computes) and prints `CREATED`.
Run it with Debian's python3-kazoo. Errors go to stderr with exit status 1.
"""

import argparse
import sys

try:
    from kazoo.client import KazooClient
    from kazoo.exceptions import NoAuthError
    from kazoo.security import make_digest_acl
except ImportError as error:  # pragma: no cover - depends on the interpreter
    sys.stderr.write("kazoo_digest_peer: kazoo is not importable ({})\n".format(error))
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", required=True)
    parser.add_argument("--auth")
    parser.add_argument("command", choices=["get", "create"])
    parser.add_argument("path")
    parser.add_argument("value", nargs="?", default="")
    arguments = parser.parse_args()

    auth_data = [("digest", arguments.auth)] if arguments.auth else None
    client = KazooClient(hosts=arguments.hosts, auth_data=auth_data, timeout=10)
    client.start(timeout=10)
    try:
        if arguments.command == "get":
            try:
                data, _ = client.get(arguments.path)
                print("VALUE " + data.decode("utf-8"), flush=True)
            except NoAuthError:
                print("NOAUTH", flush=True)
        else:
            user, password = arguments.auth.split(":", 1)
            acl = [make_digest_acl(user, password, all=True)]
            parent = arguments.path.rsplit("/", 1)[0]
            if parent:
                client.ensure_path(parent, acl=acl)
            client.create(arguments.path, arguments.value.encode("utf-8"), acl=acl)
            print("CREATED", flush=True)
    finally:
        client.stop()
        client.close()


if __name__ == "__main__":
    main()
