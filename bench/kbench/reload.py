"""Reloads under load: what clients see while a server replaces its workers.

A few client threads send requests back to back, each on a new connection (as nginx does to
a backend), while the harness triggers a reload:
  graceful  the server's graceful-reload signal (SIGHUP for every server here)
  chain     `c` written to the master FIFO (kaiser and uWSGI): workers replaced one at a time

Every request is recorded with its start time and latency. The figures are:
  - the worst gap: the longest stretch any client went without a successful answer;
  - the p99 latency of the successful requests that finished before the trigger (steady) and
    of those in flight at some time in the reload window (answered after the trigger and
    started before the window's end), so a request stuck across the trigger counts too;
  - the requests that failed (a refused connection, a reset, a wrong status or body, or no
    answer within the timeout), by kind;
  - whether every client was answered again after the reload.

The reload window runs from the trigger until the server logs that the last worker of the new
generation accepts (`RELOADED`). A server that logs no such line gets a fixed window of
`FALLBACK_WINDOW_S`. The clients keep going for at least `after_s`, and for `TAIL_S` past the
end of the window, so a slow reload is measured to its end.
"""

import math
import os
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass

from . import client
from .servers import WORKER_PROCESSES

CLIENTS = 4
REQUEST_TIMEOUT = 10.0
KINDS = ("graceful", "chain")
FALLBACK_WINDOW_S = 1.0
TAIL_S = 1.0  # requests after the window, to see that every client is answered again
RELOAD_TIMEOUT_S = 60.0  # give up waiting for the end-of-reload log line after this
LOG_POLL_S = 0.005

# What a server logs when the last worker of the new generation accepts, and how many times
# after the trigger. With the app preloaded, uWSGI's workers accept as soon as they are forked;
# with lazy-apps, each logs "WSGI app 0 ... ready" once it has imported the app and then accepts.
# uWSGI's own "chain reloading complete" comes up to a master cycle (1 s) later, so it is not used.
RELOADED = {
    ("graceful", "kaiser"): (re.compile(rb"reloaded in \d+ ms"), 1),
    ("chain", "kaiser"): (re.compile(rb"chain reload complete"), 1),
    ("graceful", "uwsgi"): (re.compile(rb"^spawned uWSGI worker %d \(pid" % WORKER_PROCESSES, re.M), 1),
    ("chain", "uwsgi"): (re.compile(rb"^WSGI app 0 \(mountpoint='[^']*'\) ready", re.M), WORKER_PROCESSES),
}


@dataclass
class ReloadSample:
    worst_gap_ms: float
    failed: int
    succeeded: int
    recovered: bool  # every client was answered after the reload window
    failure_kinds: Counter  # e.g. "ConnectionRefusedError", "status 502", "wrong body"
    steady_p99_ms: float  # successful requests that finished before the trigger
    reload_p99_ms: float  # successful requests in flight at some time in the reload window
    reload_requests: int  # successful requests in flight at some time in the reload window
    window_ms: float  # trigger .. end of the reload window
    end_logged: bool  # the window ended on the server's log line, not FALLBACK_WINDOW_S
    worst_gap_from_ms: float  # when the worst gap began, from the trigger (negative: before)
    triggered_at: float  # the trigger's wall-clock time, to find it in the server's log


def p99(latencies):
    """The nearest-rank 99th percentile, or NaN for no values."""
    if not latencies:
        return float("nan")
    ordered = sorted(latencies)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


def signal_trigger(pid, signum):
    return lambda: os.kill(pid, signum)


def fifo_trigger(path, command=b"c"):
    """Writes `command` to a master FIFO without blocking (ENXIO if the master is not reading)."""

    def trigger():
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, command)
        finally:
            os.close(fd)

    return trigger


class _LogWatch:
    """Tails a server log from where it ends now; notes when `pattern` has appeared `count` times."""

    def __init__(self, path, pattern, count):
        self.path, self.pattern, self.count = path, pattern, count
        self.offset = os.path.getsize(path)
        self.seen_at = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join()

    def _run(self):
        text = b""
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            while not self._stop.is_set():
                chunk = log.read()
                if chunk:
                    text += chunk
                    # Only whole lines, so a line written in two pieces is not counted early.
                    complete = text[: text.rfind(b"\n") + 1]
                    if len(self.pattern.findall(complete)) >= self.count:
                        self.seen_at = time.monotonic()
                        return
                time.sleep(LOG_POLL_S)


def measure(deployment, kind, trigger, workload, before_s, after_s, client_cpu):
    stop = threading.Event()
    records = []  # per client: [(started, latency_s, ok)]
    kinds = Counter()
    lock = threading.Lock()

    def loop():
        mine = []
        mine_kinds = Counter()
        while not stop.is_set():
            failure = None
            started = time.monotonic()
            try:
                status, body = client.request(deployment.port, workload.path, timeout=REQUEST_TIMEOUT)
                if status != 200:
                    failure = f"status {status}"
                elif workload.check(body) is not None:
                    failure = "wrong body"
            except client.RequestFailed as error:
                failure = type(error.__cause__).__name__
            mine.append((started, time.monotonic() - started, failure is None))
            if failure is not None:
                mine_kinds[failure] += 1
                time.sleep(0.001)  # a refused connection fails at once; do not spin
        with lock:
            records.append(mine)
            kinds.update(mine_kinds)

    pattern = RELOADED.get((kind, deployment.server))
    watch = None
    previous_affinity = os.sched_getaffinity(0)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})  # threads started below inherit it
    threads = [threading.Thread(target=loop, daemon=True) for _ in range(CLIENTS)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(before_s)
        if pattern:
            # From the log's end now: a lazy worker that was still importing at the start
            # has long logged its line, so only the new generation's lines are counted.
            watch = _LogWatch(deployment.app_process.log_path, *pattern)
            watch.start()
        triggered, triggered_at = time.monotonic(), time.time()
        trigger()
        time.sleep(after_s)
        if watch:
            while watch.seen_at is None and time.monotonic() < triggered + RELOAD_TIMEOUT_S:
                time.sleep(0.05)
        window_end = watch.seen_at if watch and watch.seen_at else triggered + FALLBACK_WINDOW_S
        remaining = window_end + TAIL_S - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
    finally:
        # Also when the trigger failed: the clients must not outlive the measurement.
        stop.set()
        if watch:
            watch.stop()
        for thread in threads:
            if thread.ident is not None:  # started
                thread.join(timeout=REQUEST_TIMEOUT + 5)
        os.sched_setaffinity(0, previous_affinity)

    worst_gap, worst_gap_from = 0.0, triggered
    recovered = True
    for mine in records:
        # A gap runs from one success's answer to the next; the run's start and end count as
        # answers, so a client that is never answered again shows its whole wait.
        last = mine[0][0] if mine else triggered
        answers = [started + latency for started, latency, ok in mine if ok]
        end = mine[-1][0] + mine[-1][1] if mine else triggered
        for answered in answers + [end]:
            if answered - last > worst_gap:
                worst_gap, worst_gap_from = answered - last, last
            last = max(last, answered)
        recovered &= any(ok and started > window_end for started, _, ok in mine)
    everything = [request for mine in records for request in mine]
    steady = [latency for started, latency, ok in everything if ok and started + latency < triggered]
    during = [
        latency
        for started, latency, ok in everything
        if ok and started <= window_end and started + latency >= triggered
    ]
    failed = sum(1 for _, _, ok in everything if not ok)
    return ReloadSample(
        worst_gap_ms=worst_gap * 1000.0,
        failed=failed,
        succeeded=len(everything) - failed,
        recovered=recovered and len(records) == CLIENTS,
        failure_kinds=kinds,
        steady_p99_ms=p99(steady) * 1000.0,
        reload_p99_ms=p99(during) * 1000.0,
        reload_requests=len(during),
        window_ms=(window_end - triggered) * 1000.0,
        end_logged=bool(watch and watch.seen_at),
        worst_gap_from_ms=(worst_gap_from - triggered) * 1000.0,
        triggered_at=triggered_at,
    )
