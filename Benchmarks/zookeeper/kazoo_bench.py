#!/usr/bin/env python3
"""kazoo's Lock recipe as the reference side of the ZooKeeper lock benchmark.

    python3 Benchmarks/zookeeper/kazoo_bench.py --hosts 127.0.0.1:PORT --prefix /bench/kazoo \
        --warmup-cycles 300 --cycles 3000 --contenders 16 \
        --contended-warmup 2 --contended-duration 10 --four-letter-port PORT

Two workloads, run one after the other against one ZooKeeper server that nothing else uses:

uncontended  One KazooClient and one Lock at <prefix>/uncontended. After --warmup-cycles
             cycles, --cycles cycles of acquire() + release() are timed one by one: ops/s (cycles
             per second of the whole measured loop), p50 and p99 of a cycle, p50 of acquire() alone,
             and the requests the server received per cycle (the difference of its packet counter,
             read with the four-letter word `srvr`, divided by the cycles; pings and the one `srvr`
             probe are included, which is why many cycles are measured).

contended    --contenders threads, each with a KazooClient of its own (its own connection and
             session) and a Lock at <prefix>/contended, take and release the lock in a loop as fast
             as they can. After --contended-warmup seconds, grants are counted for
             --contended-duration seconds: grants/s, and the hand-off time from the start of one
             holder's release() to the return of the next holder's acquire() (p50/p99; all
             timestamps come from time.perf_counter in this one process). The server's counters
             also give requests per grant and, from packets sent minus packets received, watch
             notifications per grant: 1.00 means a release wakes exactly one waiter.

Before them, --warm-server SECONDS keeps the server busy with pipelined lock-like requests from a
few clients (its JVM compiles its hot paths only after many requests); the run script does that
once, with --workloads none, before either side is measured. --workloads picks the workloads
(default uncontended,contended).

Results go to stdout as single lines the run script parses:

    RESULT uncontended ops_per_s=... p50_ms=... p99_ms=... acquire_p50_ms=... requests_per_cycle=... cycles=...
    RESULT contended contenders=16 grants_per_s=... handoff_p50_ms=... handoff_p99_ms=... grants=... seconds=... \
        requests_per_grant=... notifications_per_grant=...
    RESULT <workload> failed            (the reason is on stderr)

A figure the server's counters could not give is left out of its line. Human-readable progress
and summaries go to stderr. Exit status 0 when both workloads ran, 1 otherwise.
"""

import argparse
import math
import re
import socket
import sys
import threading
import time

from kazoo.client import KazooClient
from kazoo.recipe.lock import Lock


# --- Small helpers -------------------------------------------------------------------------------

def note(text):
    sys.stderr.write("kazoo-bench: " + text + "\n")
    sys.stderr.flush()


def result(workload, **figures):
    """One machine-readable line: RESULT <workload> key=value ... (in the order given)."""
    fields = " ".join("{}={}".format(key, value) for key, value in figures.items())
    sys.stdout.write("RESULT {} {}\n".format(workload, fields).rstrip() + "\n")
    sys.stdout.flush()


def percentile(samples, fraction):
    """Nearest-rank percentile of a non-empty list (fraction 0.5 is the median)."""
    ordered = sorted(samples)
    rank = max(1, int(math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def ms(seconds):
    return "{:.3f}".format(seconds * 1000.0)


def seconds_argument(text):
    """A duration in seconds: '2', '1.5' or '2s'."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*s?\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError("expected seconds, e.g. 2 or 2.5, got " + repr(text))
    return float(match.group(1))


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1, got " + repr(text))
    return value


def non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative, got " + repr(text))
    return value


# --- The server's own counters -------------------------------------------------------------------

class ServerCounters(object):
    """Reads the packet counters of the ZooKeeper server with the four-letter word `srvr`.

    `Received` counts every request packet the server read (pings included; a four-letter word
    counts as one as well), `Sent` every packet it wrote (responses and watch notifications).
    """

    def __init__(self, host, port):
        self.host = host
        self.port = port

    def read(self):
        """Returns (received, sent), or None when the server does not answer."""
        try:
            with socket.create_connection((self.host, self.port), timeout=5) as connection:
                connection.sendall(b"srvr")
                chunks = []
                while True:
                    chunk = connection.recv(4096)
                    if not chunk:
                        break
                    chunks.append(chunk)
        except OSError as error:
            note("could not read the server's counters on {}:{}: {}".format(self.host, self.port, error))
            return None
        text = b"".join(chunks).decode("utf-8", "replace")
        received = re.search(r"^Received: (\d+)$", text, re.MULTILINE)
        sent = re.search(r"^Sent: (\d+)$", text, re.MULTILINE)
        if received is None or sent is None:
            note("`srvr` answered without Received/Sent counters (is `srvr` in 4lw.commands.whitelist?)")
            return None
        return int(received.group(1)), int(sent.group(1))


def counter_delta(before, after):
    """(received, sent) differences, or None when either reading is missing."""
    if before is None or after is None:
        return None
    return after[0] - before[0], after[1] - before[1]


def connect(hosts):
    client = KazooClient(hosts=hosts)
    client.start(timeout=15)
    return client


def close(client):
    try:
        client.stop()
        client.close()
    except Exception as error:  # best effort on the way out
        note("closing a client: {!r}".format(error))


# --- Uncontended ---------------------------------------------------------------------------------

def uncontended(arguments, counters):
    """One client, one Lock, acquire() + release() in a loop on a free lock."""
    client = connect(arguments.hosts)
    try:
        # One Lock object for the whole run, as an application holding a lock per resource would.
        lock = Lock(client, arguments.prefix + "/uncontended")

        for _ in range(arguments.warmup_cycles):
            lock.acquire()
            lock.release()

        cycle_seconds = []
        acquire_seconds = []
        before = counters.read()
        loop_start = time.perf_counter()
        for _ in range(arguments.cycles):
            start = time.perf_counter()
            lock.acquire()
            acquired = time.perf_counter()
            lock.release()
            end = time.perf_counter()
            cycle_seconds.append(end - start)
            acquire_seconds.append(acquired - start)
        loop_seconds = time.perf_counter() - loop_start
        after = counters.read()
    finally:
        close(client)

    figures = {
        "ops_per_s": "{:.1f}".format(arguments.cycles / loop_seconds),
        "p50_ms": ms(percentile(cycle_seconds, 0.50)),
        "p99_ms": ms(percentile(cycle_seconds, 0.99)),
        "acquire_p50_ms": ms(percentile(acquire_seconds, 0.50)),
    }
    delta = counter_delta(before, after)
    if delta is not None:
        figures["requests_per_cycle"] = "{:.2f}".format(delta[0] / float(arguments.cycles))
    figures["cycles"] = arguments.cycles
    result("uncontended", **figures)
    note("uncontended: {ops_per_s} cycles/s, cycle p50 {p50_ms} ms, p99 {p99_ms} ms, "
         "requests/cycle {requests}".format(requests=figures.get("requests_per_cycle", "n/a"), **figures))


# --- Contended -----------------------------------------------------------------------------------

WARMUP, MEASURE, DRAIN = "warmup", "measure", "drain"


class GrantRecorder(object):
    """Shared by the contender threads: counts grants and hand-offs while the phase is MEASURE.

    At most one thread holds the lock, so grants and releases alternate: a thread records the
    start of its release() before calling it, and the next holder's acquire() cannot return before
    that release deleted the node. The hand-off of a grant is therefore its acquire() return
    minus the most recent release start.
    """

    def __init__(self, contenders):
        self.mutex = threading.Lock()
        self.phase = WARMUP
        self.last_release_start = None  # perf_counter of the latest release() start, this phase
        self.grants = 0
        self.per_contender = [0] * contenders
        self.handoffs = []
        self.stopping = threading.Event()

    def set_phase(self, phase):
        with self.mutex:
            self.phase = phase
            # A hand-off is counted only when both of its ends fall inside the measurement.
            self.last_release_start = None

    def granted(self, index, at):
        with self.mutex:
            if self.phase != MEASURE:
                return
            self.grants += 1
            self.per_contender[index] += 1
            if self.last_release_start is not None:
                self.handoffs.append(at - self.last_release_start)
                self.last_release_start = None

    def releasing(self, at):
        with self.mutex:
            if self.phase == MEASURE:
                self.last_release_start = at


def contender(index, lock, recorder, failures):
    """Loop of one contender thread: acquire, note the grant, note the release start, release."""
    try:
        while not recorder.stopping.is_set():
            lock.acquire()
            recorder.granted(index, time.perf_counter())
            recorder.releasing(time.perf_counter())
            lock.release()
    except Exception as error:
        failures.append("contender {}: {!r}".format(index, error))
        recorder.stopping.set()


def contended(arguments, counters):
    """--contenders clients, one lock, everybody acquiring and releasing as fast as possible."""
    path = arguments.prefix + "/contended"
    clients = []
    threads = []
    failures = []
    recorder = GrantRecorder(arguments.contenders)
    try:
        # Each contender gets its own client: its own TCP connection and ZooKeeper session.
        for _ in range(arguments.contenders):
            clients.append(connect(arguments.hosts))
        clients[0].ensure_path(path)

        for index, client in enumerate(clients):
            thread = threading.Thread(target=contender, name="contender-{}".format(index),
                                      args=(index, Lock(client, path), recorder, failures), daemon=True)
            threads.append(thread)
        for thread in threads:
            thread.start()

        time.sleep(arguments.contended_warmup)
        before = counters.read()
        recorder.set_phase(MEASURE)
        start = time.perf_counter()
        time.sleep(arguments.contended_duration)
        recorder.set_phase(DRAIN)
        seconds = time.perf_counter() - start
        after = counters.read()

        # Every thread finishes its current turn (waiters still get the lock once) and stops.
        recorder.stopping.set()
        deadline = time.monotonic() + 60
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in threads):
            failures.append("contenders still running 60 s after the end of the measurement")
    finally:
        recorder.stopping.set()
        for client in clients:
            close(client)

    if failures:
        raise RuntimeError("; ".join(failures))
    if recorder.grants == 0 or not recorder.handoffs:
        raise RuntimeError("no grants during the measurement")

    figures = {
        "contenders": arguments.contenders,
        "grants_per_s": "{:.1f}".format(recorder.grants / seconds),
        "handoff_p50_ms": ms(percentile(recorder.handoffs, 0.50)),
        "handoff_p99_ms": ms(percentile(recorder.handoffs, 0.99)),
        "grants": recorder.grants,
        "seconds": "{:.1f}".format(seconds),
    }
    delta = counter_delta(before, after)
    if delta is not None:
        received, sent = delta
        figures["requests_per_grant"] = "{:.2f}".format(received / float(recorder.grants))
        # Every request is answered by one packet; what the server sent beyond that were watch
        # notifications (give or take the requests in flight at either end of the window).
        figures["notifications_per_grant"] = "{:.2f}".format((sent - received) / float(recorder.grants))
    result("contended", **figures)
    note("contended ({} clients): {} grants/s, hand-off p50 {} ms, p99 {} ms, "
         "requests/grant {}, notifications/grant {}, grants per contender {}..{}".format(
             arguments.contenders, figures["grants_per_s"], figures["handoff_p50_ms"],
             figures["handoff_p99_ms"], figures.get("requests_per_grant", "n/a"),
             figures.get("notifications_per_grant", "n/a"),
             min(recorder.per_contender), max(recorder.per_contender)))


# --- Warming the server up ------------------------------------------------------------------------

WARM_CLIENTS = 4
WARM_BATCH = 64


def warm_server(arguments, _counters):
    """Keeps the server busy for --warm-server seconds with the requests a lock makes.

    ZooKeeper runs on a JVM, which compiles its hot paths only after many requests: measured on a
    fresh server, whichever side runs first looks up to 1.5x slower than the same code run second.
    Pipelined batches (create, children, get with a watch, delete) from a few clients reach the
    compiled state in seconds, far sooner than the lock loops themselves would.
    """
    base = arguments.prefix + "/warm-server"
    deadline = time.monotonic() + arguments.warm_server
    counts = [0] * WARM_CLIENTS
    failures = []

    def warm(index):
        client = connect(arguments.hosts)
        try:
            path = "{}/c{}".format(base, index)
            client.ensure_path(path)
            while time.monotonic() < deadline:
                creates = [client.create_async(path + "/n-", b"", ephemeral=True, sequence=True)
                           for _ in range(WARM_BATCH)]
                names = [create.get() for create in creates]
                reads = [client.get_children_async(path) for _ in range(WARM_BATCH // 4)]
                reads += [client.get_async(name, watch=lambda event: None) for name in names]
                for read in reads:
                    read.get()
                # Each delete also fires the watch set above: notifications are warmed as well.
                for delete in [client.delete_async(name) for name in names]:
                    delete.get()
                counts[index] += len(creates) + len(reads) + len(names)
        except Exception as error:
            failures.append("warm-up client {}: {!r}".format(index, error))
        finally:
            close(client)

    start = time.perf_counter()
    threads = [threading.Thread(target=warm, args=(index,), daemon=True) for index in range(WARM_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError("; ".join(failures))
    seconds = time.perf_counter() - start
    note("server warm-up: {} requests in {:.1f} s ({:.0f}/s)".format(sum(counts), seconds, sum(counts) / seconds))


# --- Main ----------------------------------------------------------------------------------------

def parse_arguments(argv):
    parser = argparse.ArgumentParser(description="Benchmark kazoo's Lock recipe against one ZooKeeper server.")
    parser.add_argument("--hosts", required=True, help="ZooKeeper connect string, host:port")
    parser.add_argument("--prefix", default="/bench/kazoo", help="base znode of the benchmark's locks")
    parser.add_argument("--warmup-cycles", type=non_negative_int, default=300)
    parser.add_argument("--cycles", type=positive_int, default=3000)
    parser.add_argument("--contenders", type=positive_int, default=16)
    parser.add_argument("--contended-warmup", type=seconds_argument, default=2.0, help="seconds")
    parser.add_argument("--contended-duration", type=seconds_argument, default=10.0, help="seconds")
    parser.add_argument("--four-letter-port", type=int, default=None,
                        help="port for `srvr` on the host of --hosts (default: the port of --hosts)")
    parser.add_argument("--warm-server", type=seconds_argument, default=0.0,
                        help="first keep the server busy this many seconds (JIT warm-up; default 0)")
    parser.add_argument("--workloads", default="uncontended,contended",
                        help="comma-separated workloads to run: uncontended, contended, or none")
    arguments = parser.parse_args(argv)

    if not arguments.prefix.startswith("/") or arguments.prefix.endswith("/"):
        parser.error("--prefix must be an absolute znode path without a trailing slash")
    arguments.workloads = [name for name in arguments.workloads.split(",") if name and name != "none"]
    unknown = set(arguments.workloads) - set(WORKLOADS)
    if unknown:
        parser.error("unknown workloads: " + ", ".join(sorted(unknown)))
    if arguments.contended_duration <= 0:
        parser.error("--contended-duration must be positive")
    first = arguments.hosts.split(",")[0].split("/")[0]
    host, _, port = first.rpartition(":")
    if not host or not port.isdigit():
        parser.error("--hosts must be host:port")
    arguments.counter_host = host
    if arguments.four_letter_port is None:
        arguments.four_letter_port = int(port)
    return arguments


WORKLOADS = {"uncontended": uncontended, "contended": contended}


def main(argv):
    arguments = parse_arguments(argv)
    counters = ServerCounters(arguments.counter_host, arguments.four_letter_port)
    note("kazoo Lock against {} (prefix {})".format(arguments.hosts, arguments.prefix))

    status = 0
    steps = [("warm-server", warm_server)] if arguments.warm_server > 0 else []
    steps += [(name, WORKLOADS[name]) for name in WORKLOADS if name in arguments.workloads]
    for name, step in steps:
        try:
            step(arguments, counters)
        except Exception as error:
            note("{} failed: {!r}".format(name, error))
            sys.stdout.write("RESULT {} failed\n".format(name))
            sys.stdout.flush()
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
