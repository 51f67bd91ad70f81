#!/usr/bin/env python3
"""CPU time per request, split into user and system (kernel) time, of kaiser and peregrine
side by side: each server pinned to CPU 0 (2 workers x 1 thread), wrk on CPU 1 (2 threads,
64 keep-alive connections), the server's process group's utime/stime from /proc before and
after a measured run, divided by the requests wrk counted. Rounds alternate between the
servers. It says whether a gap lies in the server's own code (user) or in the system calls
and the network stack (system), which req/s alone cannot.

  bench/request_cost/cpu_split.py [--kaiser BIN] [--app hello|flask] [--seconds 5] [--rounds 2]

Needs wrk, taskset and the bench venv (VENV=, default target/bench-venv) with peregrine."""
import argparse
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from kbench.measure import CLOCK_TICKS, cpu_ticks_split  # noqa: E402
from kbench.servers import free_port  # noqa: E402


def group_cpu(pgid):
    """(user, system) seconds of every process in process group `pgid`."""
    user, system = cpu_ticks_split(pgid)
    return user / CLOCK_TICKS, system / CLOCK_TICKS


def measure(name, argv, cwd, port, path, seconds):
    server = subprocess.Popen(["taskset", "-c", "0", *argv], cwd=cwd, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"{name} did not answer on port {port}")
                time.sleep(0.1)
        wrk = ["taskset", "-c", "1", "wrk", "-t2", "-c64", f"http://127.0.0.1:{port}{path}"]
        subprocess.run([*wrk, "-d1s"], capture_output=True, check=True)  # warm-up
        before = group_cpu(server.pid)
        out = subprocess.run([*wrk, f"-d{seconds}s"], capture_output=True, text=True, check=True).stdout
        after = group_cpu(server.pid)
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        user = 1e6 * (after[0] - before[0]) / requests
        system = 1e6 * (after[1] - before[1]) / requests
        print(f"{name:10} {requests / seconds:>9,.0f} req/s  CPU {user + system:5.2f} µs/req "
              f"(user {user:4.2f}, system {system:4.2f})", flush=True)
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kaiser", default=os.path.join(ROOT, "target/release/kaiser"))
    parser.add_argument("--app", choices=["hello", "flask"], default="hello")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    venv = os.environ.get("VENV", os.path.join(ROOT, "target/bench-venv"))
    if args.app == "hello":
        cwd, wsgi_file, target, path = os.path.join(ROOT, "tests/apps"), "hello.py", "hello:application", "/"
    else:
        cwd, wsgi_file, target, path = os.path.join(ROOT, "tests/apps/flask_app"), "app.py", "app:app", "/json"
    for _ in range(args.rounds):
        port = free_port()
        measure("kaiser", [os.path.abspath(args.kaiser), "--http-socket", f"127.0.0.1:{port}",
                           "--wsgi-file", wsgi_file, "--master", "--processes", "2", "--threads", "1",
                           "--home", venv, "--disable-logging", "--listen", "1024"],
                cwd, port, path, args.seconds)
        port = free_port()
        measure("peregrine", [os.path.join(venv, "bin/peregrine"), "--host", "127.0.0.1",
                              "--port", str(port), "--workers", "2", "--wsgi-threads", "1",
                              "--protocol", "wsgi", "--backlog", "1024", "--python-path", ".",
                              "--log-level", "warning", target],
                cwd, port, path, args.seconds)


if __name__ == "__main__":
    main()
