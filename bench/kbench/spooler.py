"""Spooler throughput, kaiser beside uWSGI with the same app (tests/apps/spool_bench.py):
one worker spools N no-op tasks through uwsgidecorators' `@spool` in one request (enqueued
tasks/s, timed inside the app), and the clock runs until the spool directory is empty again
(executed tasks/s, from the request's start). Beside the rates, which a busy machine skews,
the CPU time all the server's processes used (from /proc, user + system) per task. One spooler process, `spooler-quiet`, default
`spooler-frequency`; interleaved repetitions, as the rest of bench/.

    bench/spooler [--tasks N] [--repetitions R] [--no-build]
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from . import install


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(server, binary, venv, app, queue, port):
    common = ["--http-socket", f"127.0.0.1:{port}", "--processes", "1", "--wsgi-file", app,
              "--spooler", queue, "--spooler-processes", "1", "--spooler-quiet",
              "--disable-logging", "--home", venv]
    if server == "uwsgi":
        return [os.path.join(venv, "bin", "uwsgi"), "--master", "--need-app"] + common
    return [binary] + common


def wait_http(port, deadline):
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/?0", timeout=2).read()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not answer")


def session_cpu_seconds(session):
    """User + system CPU of every live process in `session` (the server's), in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state, ppid, pgrp, session, ..., utime (14th field overall).
        if int(fields[3]) == session:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def pending(queue):
    return sum(1 for name in os.listdir(queue) if name.startswith("uwsgi_spoolfile_on_"))


def measure(server, binary, venv, app, tasks, scratch):
    queue = os.path.join(scratch, f"{server}-queue")
    shutil.rmtree(queue, ignore_errors=True)
    os.makedirs(queue)
    port = free_port()
    log = open(os.path.join(scratch, f"{server}.log"), "ab")
    proc = subprocess.Popen(command(server, binary, venv, app, queue, port), stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_http(port, time.time() + 30)
        # Let the spooler start and go idle before the clock starts.
        time.sleep(1)
        cpu_before = session_cpu_seconds(proc.pid)
        started = time.perf_counter()
        enqueue = float(urllib.request.urlopen(f"http://127.0.0.1:{port}/?{tasks}",
                                               timeout=120).read())
        deadline = time.time() + 300
        while pending(queue) and time.time() < deadline:
            time.sleep(0.002)
        executed = time.perf_counter() - started
        cpu = session_cpu_seconds(proc.pid) - cpu_before
        if pending(queue):
            raise RuntimeError(f"{server}: {pending(queue)} tasks left after 300 s")
        return tasks / enqueue, tasks / executed, cpu * 1e6 / tasks
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--kaiser", help="a kaiser binary to measure instead of a fresh build")
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    venv = install.peers_venv(root)
    binary = args.kaiser or os.path.join(root, "target", "release", "kaiser")
    if not args.kaiser and not args.no_build:
        install.build_kaiser(root)
    app = os.path.join(root, "tests", "apps", "spool_bench.py")
    scratch = tempfile.mkdtemp(prefix="kbench-spooler-")
    results = {"kaiser": [], "uwsgi": []}
    for repetition in range(args.repetitions):
        for server in ("kaiser", "uwsgi"):
            enq, done, cpu = measure(server, binary, venv, app, args.tasks, scratch)
            results[server].append((enq, done, cpu))
            print(f"round {repetition + 1} {server:6}: enqueued {enq:9.0f} tasks/s, "
                  f"executed {done:8.0f} tasks/s, {cpu:6.0f} µs CPU per task", flush=True)
    print()
    print(f"spooler, {args.tasks} no-op tasks, 1 worker + 1 spooler, median of "
          f"{args.repetitions}:")
    print("| server | enqueued tasks/s | executed tasks/s | CPU per task (µs, all processes) |")
    print("|---|---|---|---|")
    for server, rows in results.items():
        print(f"| {server} | {statistics.median(r[0] for r in rows):.0f} | "
              f"{statistics.median(r[1] for r in rows):.0f} | "
              f"{statistics.median(r[2] for r in rows):.0f} |")
    print(f"(logs in {scratch})")


if __name__ == "__main__":
    sys.exit(main())
