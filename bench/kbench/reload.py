"""The graceful-reload gap: what clients see while a server reloads its workers.

A few client threads send requests back to back, each on a new connection (as nginx does to
a backend), while the harness sends the server its graceful-reload signal. The figures are
the longest stretch any client went without a successful answer and the requests that failed
(a refused connection, a reset, a wrong status, or no answer within the timeout). Each
answer's body is checked, so a server that answers errors during the reload is not hidden.
"""

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass

from . import client

CLIENTS = 4
REQUEST_TIMEOUT = 10.0


@dataclass
class ReloadSample:
    worst_gap_ms: float
    failed: int
    succeeded: int
    recovered: bool  # the server answered again after the signal
    failure_kinds: Counter  # e.g. "ConnectionRefusedError", "status 502", "wrong body"


def reload_gap(deployment, reload_signal, workload, before_s, after_s, client_cpu):
    stop_at = time.monotonic() + before_s + after_s
    signal_at = [None]
    results = []
    lock = threading.Lock()

    def loop():
        last_success = time.monotonic()
        worst = 0.0
        failed = succeeded = 0
        kinds = Counter()
        last_success_after_signal = False
        while time.monotonic() < stop_at:
            kind = None
            try:
                status, body = client.request(deployment.port, workload.path, timeout=REQUEST_TIMEOUT)
                if status != 200:
                    kind = f"status {status}"
                elif workload.check(body) is not None:
                    kind = "wrong body"
            except client.RequestFailed as error:
                kind = type(error.__cause__).__name__
            ok = kind is None
            now = time.monotonic()
            if ok:
                worst = max(worst, now - last_success)
                last_success = now
                succeeded += 1
                if signal_at[0] is not None and now > signal_at[0]:
                    last_success_after_signal = True
            else:
                failed += 1
                kinds[kind] += 1
                time.sleep(0.001)  # a refused connection fails at once; do not spin
        worst = max(worst, time.monotonic() - last_success)
        with lock:
            results.append((worst, failed, succeeded, last_success_after_signal, kinds))

    previous_affinity = os.sched_getaffinity(0)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})  # threads started below inherit it
    try:
        threads = [threading.Thread(target=loop, daemon=True) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(before_s)
        signal_at[0] = time.monotonic()
        os.kill(deployment.app_process.pid, reload_signal)
        for thread in threads:
            thread.join(timeout=after_s + before_s + REQUEST_TIMEOUT + 5)
    finally:
        os.sched_setaffinity(0, previous_affinity)
    return ReloadSample(
        worst_gap_ms=max(result[0] for result in results) * 1000.0,
        failed=sum(result[1] for result in results),
        succeeded=sum(result[2] for result in results),
        recovered=all(result[3] for result in results),
        failure_kinds=sum((result[4] for result in results), Counter()),
    )
