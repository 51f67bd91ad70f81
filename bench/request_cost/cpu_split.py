#!/usr/bin/env python3
"""CPU time per request, split into user, system (kernel) and softirq time, of kaiser and
peregrine side by side: each server pinned to CPU 0 (2 workers x 1 thread), wrk on CPU 1 (2
threads, 64 keep-alive connections). Two views of one measured run:

- the server's process group's utime/stime from /proc (its own code and system calls), and
- CPU 0 as a whole from /proc/stat: user, system, softirq and idle per request. On loopback
  the kernel delivers a response into the client's socket inside the server's send, as a
  softirq: the process's system time includes it, /proc/stat shows it apart (about a third
  of a hello-world request), and the idle share says whether the core was saturated.

Rounds alternate between the servers. Several kaiser builds can be compared in one run
(`--kaiser A --kaiser B`, each named by its file). It says whether a gap lies in the
server's own code (user), its system calls (system) or the network stack's delivery
(softirq), which req/s alone cannot.

  bench/request_cost/cpu_split.py [--kaiser BIN]... [--app hello|flask] [--seconds 5] [--rounds 2]

Needs wrk, taskset and the bench venv (VENV=, default target/bench-venv) with peregrine."""
import argparse
import os
import re
import signal
import statistics
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


def core_ticks(cpu):
    """CPU `cpu`'s (user, system, softirq, idle) ticks from /proc/stat."""
    with open("/proc/stat") as stat:
        for line in stat:
            fields = line.split()
            if fields[0] == f"cpu{cpu}":
                user, nice, system, idle, _iowait, irq, softirq = map(int, fields[1:8])
                return user + nice, system + irq, softirq, idle
    raise SystemExit(f"no cpu{cpu} in /proc/stat")


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
        before, core_before = group_cpu(server.pid), core_ticks(0)
        out = subprocess.run([*wrk, f"-d{seconds}s"], capture_output=True, text=True, check=True).stdout
        after, core_after = group_cpu(server.pid), core_ticks(0)
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        user = 1e6 * (after[0] - before[0]) / requests
        system = 1e6 * (after[1] - before[1]) / requests
        core = [(b - a) * 1e6 / CLOCK_TICKS / requests for a, b in zip(core_before, core_after)]
        busy = sum(core[:3])
        print(f"{name:12} {requests / seconds:>9,.0f} req/s  process {user + system:5.2f} µs/req "
              f"(user {user:4.2f}, system {system:4.2f})  CPU 0 {busy:5.2f} µs/req (user "
              f"{core[0]:4.2f}, system {core[1]:4.2f}, softirq {core[2]:4.2f}), idle "
              f"{100 * core[3] / (busy + core[3]):4.1f}%", flush=True)
        return requests / seconds, busy
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kaiser", action="append",
                        help="a kaiser binary (repeat to compare builds; default target/release/kaiser)")
    parser.add_argument("--app", choices=["hello", "flask"], default="hello")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    binaries = [os.path.abspath(b) for b in args.kaiser or [os.path.join(ROOT, "target/release/kaiser")]]
    venv = os.environ.get("VENV", os.path.join(ROOT, "target/bench-venv"))
    if args.app == "hello":
        cwd, wsgi_file, target, path = os.path.join(ROOT, "tests/apps"), "hello.py", "hello:application", "/"
    else:
        cwd, wsgi_file, target, path = os.path.join(ROOT, "tests/apps/flask_app"), "app.py", "app:app", "/json"
    servers = [(os.path.basename(b) if len(binaries) > 1 else "kaiser",
                lambda port, b=b: [b, "--http-socket", f"127.0.0.1:{port}", "--wsgi-file", wsgi_file,
                                   "--master", "--processes", "2", "--threads", "1", "--home", venv,
                                   "--disable-logging", "--listen", "1024"])
               for b in binaries]
    servers.append(("peregrine", lambda port: [
        os.path.join(venv, "bin/peregrine"), "--host", "127.0.0.1", "--port", str(port),
        "--workers", "2", "--wsgi-threads", "1", "--protocol", "wsgi", "--backlog", "1024",
        "--python-path", ".", "--log-level", "warning", target]))
    results = {name: [] for name, _ in servers}
    for _ in range(args.rounds):
        for name, argv in servers:
            port = free_port()
            results[name].append(measure(name, argv(port), cwd, port, path, args.seconds))
    print("medians:")
    for name, runs in results.items():
        print(f"{name:12} {statistics.median(r for r, _ in runs):>9,.0f} req/s  CPU 0 "
              f"{statistics.median(c for _, c in runs):5.2f} µs/req")


if __name__ == "__main__":
    main()
