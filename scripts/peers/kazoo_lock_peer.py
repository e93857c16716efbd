#!/usr/bin/env python3
"""A kazoo Lock as a peer process for interoperability tests.

    python3 scripts/peers/kazoo_lock_peer.py --hosts 127.0.0.1:PORT --path /some/lock \
        [--timeout 30] [--identifier TEXT] [--hold-seconds S] [--session-timeout 10]

Run it with a Python that has kazoo (Debian: python3-kazoo, 2.7.1 or later for
extra_lock_patterns). The peer joins the lock at --path with kazoo's own `Lock` recipe, told to
treat Curator-style nodes (`..-lock-NNNNNNNNNN`, the naming swift-coordination uses) as contenders
next to its own `<uuid>__lock__NNNNNNNNNN`, ordered by the trailing sequence number.

Protocol on stdout (one word per line, flushed at once):

    WAITING             its contender node exists and a contender is ahead of it (printed at most
                        once, and only when the lock was not free when the node was created)
    HOLDING <node>      it holds the lock; <node> is its node's name under --path
    RELEASED            it released the lock (its node is deleted) and is about to exit 0
    TIMEOUT             it did not get the lock within --timeout seconds; exit status 3

Once holding, it releases on a line `release` on stdin or at end of input, or after
--hold-seconds if that is given (stdin is then not read). Errors go to stderr with exit status 1.
SIGTERM and SIGINT close the session before exiting, so the node goes at once rather than after
the session timeout.
"""

import argparse
import re
import signal
import sys
import threading
import time

try:
    from kazoo.client import KazooClient, KazooState
    from kazoo.exceptions import LockTimeout
    from kazoo.recipe.lock import Lock
except ImportError as error:  # pragma: no cover - depends on the interpreter
    sys.stderr.write("kazoo_lock_peer: kazoo is not importable ({}); use a Python with python3-kazoo\n"
                     .format(error))
    sys.exit(1)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_TIMEOUT = 3

# Name fragments that mark a contender: kazoo's own and Curator's (InterProcessMutex's
# "_c_<uuid>-lock-<seq>"). The ordering key is the 10-digit sequence number after the fragment,
# the same rule kazoo's Lock applies when given extra_lock_patterns.
CURATOR_LOCK_PATTERN = "-lock-"
CONTENDER_RE = re.compile(r"(?:__lock__|-lock-)(-?\d{10})$")

# How often the main thread looks at the acquiring thread while it waits for the node to appear.
POLL_SECONDS = 0.005


class PeerError(Exception):
    """A failure reported on stderr with exit status 1."""


def say(word):
    """One protocol line on stdout, flushed so that a parent reading a pipe sees it at once."""
    sys.stdout.write(word + "\n")
    sys.stdout.flush()


def note(text):
    sys.stderr.write("kazoo_lock_peer: " + text + "\n")
    sys.stderr.flush()


def positive_seconds(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds, got " + repr(text))
    return value


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description="Hold a ZooKeeper lock with kazoo's Lock recipe.")
    parser.add_argument("--hosts", required=True, help="ZooKeeper connect string, host:port[,host:port]")
    parser.add_argument("--path", required=True, help="the lock's znode, e.g. /locks/orders")
    parser.add_argument("--timeout", type=positive_seconds, default=30.0,
                        help="seconds to wait for the lock before printing TIMEOUT (default 30)")
    parser.add_argument("--identifier", default=None, help="data stored in the contender node")
    parser.add_argument("--hold-seconds", type=float, default=None,
                        help="release after this many seconds instead of waiting for stdin")
    parser.add_argument("--session-timeout", type=positive_seconds, default=10.0,
                        help="ZooKeeper session timeout in seconds (default 10)")
    arguments = parser.parse_args(argv)
    if not arguments.path.startswith("/") or arguments.path.endswith("/"):
        parser.error("--path must be an absolute znode path, not the root, without a trailing slash")
    if arguments.hold_seconds is not None and arguments.hold_seconds < 0:
        parser.error("--hold-seconds must not be negative")
    return arguments


def has_predecessor(client, path, node):
    """True when a contender with a lower sequence number than `node` exists under `path`.

    Reads the children once; `node` itself must be among them (it was just created by this
    session), otherwise the question has no answer and PeerError is raised.
    """
    own = CONTENDER_RE.search(node)
    if own is None:
        raise PeerError("own node {!r} does not look like a lock node".format(node))
    own_sequence = own.group(1)
    for child in client.get_children(path):
        match = CONTENDER_RE.search(child)
        # 10-digit, zero-padded sequence numbers: comparing the strings compares the numbers.
        if match is not None and child != node and match.group(1) < own_sequence:
            return True
    return False


class Acquisition(object):
    """Runs lock.acquire(blocking=True, timeout=...) on a thread of its own, so that the main
    thread can watch for the contender node while the call blocks."""

    def __init__(self, lock, timeout):
        self.lock = lock
        self.timeout = timeout
        self.done = threading.Event()
        self.acquired = False
        self.timed_out = False
        self.error = None
        self.thread = threading.Thread(target=self._run, name="acquire", daemon=True)

    def start(self):
        self.thread.start()

    def _run(self):
        try:
            # kazoo returns False when its retry deadline passes and raises LockTimeout when the
            # wait for the predecessor does; both are a timeout here.
            self.acquired = bool(self.lock.acquire(blocking=True, timeout=self.timeout))
            self.timed_out = not self.acquired
        except LockTimeout:
            self.timed_out = True
        except Exception as error:  # reported by the main thread
            self.error = error
        finally:
            self.done.set()


def wait_for_lock(client, lock, path, timeout):
    """Acquires the lock, printing WAITING once the node exists behind another contender.

    Returns True when the lock is held, False on timeout.
    """
    acquisition = Acquisition(lock, timeout)
    acquisition.start()
    checked = False
    while not acquisition.done.wait(POLL_SECONDS):
        # lock.node is set by kazoo as soon as its create call returned: the node exists.
        node = lock.node
        if checked or node is None:
            continue
        checked = True
        try:
            queued = has_predecessor(client, path, node)
        except PeerError:
            raise
        except Exception as error:
            # The acquiring thread may fail for the same reason; let it report, if it does.
            note("could not list the contenders: {}".format(error))
            queued = False
        if queued and not acquisition.done.is_set():
            say("WAITING")
    if acquisition.error is not None:
        raise PeerError("acquire failed: {!r}".format(acquisition.error))
    return acquisition.acquired


def wait_for_release_request(hold_seconds):
    """Blocks until it is time to release: after hold_seconds, or on `release` / end of stdin."""
    if hold_seconds is not None:
        time.sleep(hold_seconds)
        return
    for line in sys.stdin:
        command = line.strip()
        if command == "release":
            return
        if command:
            note("ignoring unknown command {!r} (expected 'release')".format(command))
    # End of input: release as well.


def on_signal(signum, _frame):
    # Unwinds the main thread through the `finally` that closes the session.
    raise SystemExit(128 + signum)


def main(argv):
    arguments = parse_arguments(argv)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    client = KazooClient(hosts=arguments.hosts, timeout=arguments.session_timeout)

    def on_state(state):
        if state == KazooState.LOST:
            note("ZooKeeper session lost")
        elif state == KazooState.SUSPENDED:
            note("ZooKeeper connection suspended")

    lock = None
    try:
        try:
            client.start(timeout=min(arguments.timeout, 15.0))
        except Exception as error:
            raise PeerError("could not connect to {}: {}".format(arguments.hosts, error))
        client.add_listener(on_state)

        lock = Lock(client, arguments.path, arguments.identifier,
                    extra_lock_patterns=[CURATOR_LOCK_PATTERN])
        if not wait_for_lock(client, lock, arguments.path, arguments.timeout):
            say("TIMEOUT")
            return EXIT_TIMEOUT
        say("HOLDING " + lock.node)

        wait_for_release_request(arguments.hold_seconds)
        lock.release()
        say("RELEASED")
        return EXIT_OK
    except PeerError as error:
        note(str(error))
        return EXIT_ERROR
    except Exception as error:
        note("unexpected error: {!r}".format(error))
        return EXIT_ERROR
    finally:
        # A pending acquire gives up; closing the session removes any node left behind.
        if lock is not None:
            lock.cancel()
        try:
            client.stop()
            client.close()
        except Exception as error:
            note("closing the client: {!r}".format(error))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
