"""Reloads under load: what clients see while a server replaces its workers.

A few client processes send requests back to back, each on a new connection (as nginx does to
a backend), while the harness triggers a reload:
  graceful  the server's graceful-reload signal (SIGHUP for every server here)
  chain     `c` written to the master FIFO (kaiser and uWSGI): workers replaced one at a time

The reload window runs from the trigger until both of these hold:
  - the new generation accepts: the server has logged that its last new worker accepts
    (`RELOADED`); a server that logs no such line gets `FALLBACK_WINDOW_S` instead;
  - the old generation is gone: every worker that was alive at the trigger has exited.
So the window covers both ends of a reload: the new workers starting and the old ones
stopping. The clients keep going for at least `after_s`, and for `TAIL_S` past the window.

Every request is recorded with its start time and latency. The figures are:
  - the worst gap in the window: the longest stretch any client went without a successful
    answer, among the stretches that overlap the window; and the worst gap outside it, the
    noise floor of this machine and of these Python clients;
  - the p99 latency of the successful requests that finished before the trigger (steady,
    from `SETTLE_S` after the clients started) and
    of those in flight at some time in the window (answered after the trigger and started
    before the window's end), so a request stuck across the trigger counts too;
  - the requests that failed (a refused connection, a reset, a wrong status or body, or no
    answer within the timeout), by kind;
  - whether every client was answered after the window.
"""

import math
import multiprocessing
import os
import queue
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass

from . import client, servers
from .servers import WORKER_PROCESSES

CLIENTS = 4
REQUEST_TIMEOUT = 10.0
KINDS = ("graceful", "chain")
FALLBACK_WINDOW_S = 1.0
TAIL_S = 1.0  # requests after the window, to see that every client is answered again
# The clients' first moments are not counted: four threads starting and opening their first
# connections at once stall each other for 10-40 ms, which would read as the server's.
SETTLE_S = 0.5
RELOAD_TIMEOUT_S = 60.0  # give up waiting for the end of the reload after this
WATCH_POLL_S = 0.005

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
    worst_gap_ms: float  # the longest gap that overlaps the window
    worst_gap_from_ms: float  # when that gap began, from the trigger (negative: before it)
    outside_gap_ms: float  # the longest gap wholly before or after the window
    outside_gap_from_ms: float  # when that gap began, from the trigger
    failed: int
    succeeded: int
    recovered: bool  # every client was answered after the reload window
    failure_kinds: Counter  # e.g. "ConnectionRefusedError", "status 502", "wrong body"
    steady_p99_ms: float  # successful requests that finished before the trigger
    reload_p99_ms: float  # successful requests in flight at some time in the reload window
    reload_requests: int  # successful requests in flight at some time in the reload window
    window_ms: float  # trigger .. end of the reload window
    new_ready_ms: float  # trigger .. the new generation accepts (NaN: not logged)
    old_gone_ms: float  # trigger .. the last worker of the old generation exited
    triggered_at: float  # the trigger's wall-clock time, to find it in the server's log

    @property
    def end_logged(self):
        return self.new_ready_ms == self.new_ready_ms


def p99(latencies):
    """The nearest-rank 99th percentile, or NaN for no values."""
    if not latencies:
        return float("nan")
    ordered = sorted(latencies)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


def utc_clock(wall_clock):
    """`HH:MM:SS.mmm` UTC, as kaiser's log lines show it, to find a trigger in a server log."""
    return time.strftime("%H:%M:%S", time.gmtime(wall_clock)) + f"{wall_clock % 1:.3f}"[1:]


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


def _exited(pid):
    """True once `pid` has exited (gone, or a zombie its parent has not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


class _ReloadWatch:
    """Notes when the new generation accepts (`pattern` has appeared `count` times in the log
    written after the start) and when every one of `old_workers` has exited."""

    def __init__(self, log_path, pattern, old_workers):
        self.log_path = log_path
        self.pattern, self.count = pattern if pattern else (None, 0)
        self.offset = os.path.getsize(log_path)
        self.old_workers = set(old_workers)
        self.new_ready_at = None
        self.old_gone_at = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join()

    def done(self):
        return (self.new_ready_at or not self.pattern) and self.old_gone_at

    def _run(self):
        text = b""
        with open(self.log_path, "rb") as log:
            log.seek(self.offset)
            while not self._stop.is_set() and not self.done():
                now = time.monotonic()
                if self.pattern and self.new_ready_at is None:
                    text += log.read()
                    # Only whole lines, so a line written in two pieces is not counted early.
                    complete = text[: text.rfind(b"\n") + 1]
                    if len(self.pattern.findall(complete)) >= self.count:
                        self.new_ready_at = now
                if self.old_gone_at is None:
                    self.old_workers = {pid for pid in self.old_workers if not _exited(pid)}
                    if not self.old_workers:
                        self.old_gone_at = now
                time.sleep(WATCH_POLL_S)


def _client(port, workload, stop, results):
    """One client process: requests back to back until `stop` is set, then sends its records
    [(started, latency_s, ok)] and failure kinds to `results`."""
    mine = []
    kinds = Counter()
    while not stop.is_set():
        failure = None
        started = time.monotonic()
        try:
            status, body = client.request(port, workload.path, timeout=REQUEST_TIMEOUT, reset=True)
            if status != 200:
                failure = f"status {status}"
            elif workload.check(body) is not None:
                failure = "wrong body"
        except client.RequestFailed as error:
            failure = type(error.__cause__).__name__
        mine.append((started, time.monotonic() - started, failure is None))
        if failure is not None:
            kinds[failure] += 1
            time.sleep(0.001)  # a refused connection fails at once; do not spin
    results.put((mine, kinds))


def measure(deployment, kind, trigger, workload, before_s, after_s, client_cpu):
    # The clients are processes, not threads: four threads of one Python take turns on its GIL,
    # and those turns put 20-50 ms between some answers whatever the server did. They close
    # each connection with a reset once its answer is read: at 5,000 new connections a second,
    # TIME_WAIT entries pile up by the tens of thousands, and every few seconds all four
    # clients stalled together for ~30 ms in connect(), with kaiser and uWSGI alike. (nginx
    # talks to a backend over a unix socket, which has no TIME_WAIT.)
    # Forked, so they share this process's clock (time.monotonic) and need nothing pickled in.
    context = multiprocessing.get_context("fork")
    stop = context.Event()
    results = context.Queue()
    records = []  # per client: [(started, latency_s, ok)]
    kinds = Counter()

    pattern = RELOADED.get((kind, deployment.server))
    leader = deployment.app_process.pid
    watch = None
    previous_affinity = os.sched_getaffinity(0)
    if client_cpu is not None:
        # The client processes inherit it; the harness (its log watcher) stays there too, off
        # the server's CPU.
        os.sched_setaffinity(0, {client_cpu})
    clients = [
        context.Process(target=_client, args=(deployment.port, workload, stop, results), daemon=True)
        for _ in range(CLIENTS)
    ]
    settled = time.monotonic() + SETTLE_S
    try:
        for process in clients:
            process.start()
        time.sleep(before_s)
        # The log is read from its end now, so a lazy worker that was still importing at the
        # start (it logged its line long ago) is not taken for the new generation.
        old_workers = [pid for pid in servers.group_members(leader) if pid != leader]
        watch = _ReloadWatch(deployment.app_process.log_path, pattern, old_workers)
        watch.start()
        triggered, triggered_at = time.monotonic(), time.time()
        trigger()
        time.sleep(after_s)
        while not watch.done() and time.monotonic() < triggered + RELOAD_TIMEOUT_S:
            time.sleep(0.05)
        new_ready = watch.new_ready_at or triggered + FALLBACK_WINDOW_S
        window_end = max(new_ready, watch.old_gone_at or time.monotonic())
        remaining = window_end + TAIL_S - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
    finally:
        # Also when the trigger failed: the clients must not outlive the measurement.
        stop.set()
        if watch:
            watch.stop()
        started = [process for process in clients if process.pid is not None]
        deadline = time.monotonic() + REQUEST_TIMEOUT + 5
        for _ in started:
            try:
                mine, mine_kinds = results.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            records.append(mine)
            kinds.update(mine_kinds)
        for process in started:
            process.join(timeout=max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()  # by its pid: it is our own child
                process.join()
        os.sched_setaffinity(0, previous_affinity)

    in_window, in_window_from, outside, outside_from = 0.0, triggered, 0.0, triggered
    recovered = True
    for mine in records:
        # A gap runs from one success's answer to the next. The first answer once the clients
        # have settled and the run's end count as answers, so a client that is never answered
        # again shows its whole wait.
        answers = [started + latency for started, latency, ok in mine if ok and started + latency >= settled]
        last = answers[0] if answers else settled
        end = mine[-1][0] + mine[-1][1] if mine else triggered
        for answered in answers[1:] + [end]:
            gap = answered - last
            if answered >= triggered and last <= window_end:
                if gap > in_window:
                    in_window, in_window_from = gap, last
            elif gap > outside:
                outside, outside_from = gap, last
            last = max(last, answered)
        recovered &= any(ok and started > window_end for started, _, ok in mine)
    everything = [request for mine in records for request in mine]
    steady = [
        latency for started, latency, ok in everything if ok and settled <= started and started + latency < triggered
    ]
    during = [
        latency
        for started, latency, ok in everything
        if ok and started <= window_end and started + latency >= triggered
    ]
    failed = sum(1 for _, _, ok in everything if not ok)
    since = lambda moment: (moment - triggered) * 1000.0 if moment else float("nan")
    return ReloadSample(
        worst_gap_ms=in_window * 1000.0,
        worst_gap_from_ms=since(in_window_from),
        outside_gap_ms=outside * 1000.0,
        outside_gap_from_ms=since(outside_from),
        failed=failed,
        succeeded=len(everything) - failed,
        recovered=recovered and len(records) == CLIENTS,
        failure_kinds=kinds,
        steady_p99_ms=p99(steady) * 1000.0,
        reload_p99_ms=p99(during) * 1000.0,
        reload_requests=len(during),
        window_ms=since(window_end),
        new_ready_ms=since(watch.new_ready_at),
        old_gone_ms=since(watch.old_gone_at),
        triggered_at=triggered_at,
    )
