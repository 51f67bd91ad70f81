#!/usr/bin/env python3
"""CPU time per request, split into user, system (kernel) and softirq time, of kaiser and a
peer side by side: each server pinned to CPU 0 (2 workers x 1 thread, or `--threads`; nginx in front of it
on the same core with `--front nginx`), wrk on CPU 1 (2 threads, 64 keep-alive
connections). Three views of one measured run:

- the server's process group's utime/stime from /proc (its own code and system calls),
- nginx's, with `--front nginx`, and
- CPU 0 as a whole from /proc/stat: user, system, softirq and idle per request. On loopback
  the kernel delivers a response into the client's socket inside the server's send, as a
  softirq: the process's system time includes it, /proc/stat shows it apart (about a third
  of a hello-world request), and the idle share says whether the core was saturated.

Rounds alternate between the servers. Several kaiser builds can be compared in one run
(`--kaiser A --kaiser B`, each named by its file). It says whether a gap lies in the
server's own code (user), its system calls (system) or the network stack's delivery
(softirq), which req/s alone cannot.

  bench/request_cost/cpu_split.py [--kaiser BIN]... [--app hello|flask] [--front http|nginx]
                                  [--peer peregrine|uwsgi|none] [--threads 1] [--seconds 5]
                                  [--rounds 2]

The peer defaults to peregrine over HTTP and to uWSGI behind nginx (peregrine speaks no
uwsgi protocol). Needs wrk, taskset, nginx for `--front nginx`, and the bench venv (VENV=,
default target/bench-venv) with the peers."""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from kbench import servers  # noqa: E402
from kbench.measure import CLOCK_TICKS, cpu_ticks_split  # noqa: E402
from kbench.workloads import fixture_apps  # noqa: E402


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


def measure(name, tools, kind, front, app, path, seconds, threads=1):
    deployment = servers.deploy(tools, kind, front, app, threads, 0, name)
    try:
        wrk = ["taskset", "-c", "1", tools.wrk, "-t2", "-c64", f"http://127.0.0.1:{deployment.port}{path}"]
        subprocess.run([*wrk, "-d1s"], capture_output=True, check=True)  # warm-up
        pgid = deployment.app_process.pid
        nginx = deployment.front_process.pid if deployment.front_process else None
        before, core_before = group_cpu(pgid), core_ticks(0)
        nginx_before = group_cpu(nginx) if nginx else (0, 0)
        out = subprocess.run([*wrk, f"-d{seconds}s"], capture_output=True, text=True, check=True).stdout
        after, core_after = group_cpu(pgid), core_ticks(0)
        nginx_after = group_cpu(nginx) if nginx else (0, 0)
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        user = 1e6 * (after[0] - before[0]) / requests
        system = 1e6 * (after[1] - before[1]) / requests
        front_us = 1e6 * sum(b - a for a, b in zip(nginx_before, nginx_after)) / requests
        core = [(b - a) * 1e6 / CLOCK_TICKS / requests for a, b in zip(core_before, core_after)]
        busy = sum(core[:3])
        nginx_part = f" nginx {front_us:5.2f}" if nginx else ""
        print(f"{name:12} {requests / seconds:>9,.0f} req/s  process {user + system:5.2f} µs/req "
              f"(user {user:4.2f}, system {system:4.2f}){nginx_part}  CPU 0 {busy:5.2f} µs/req (user "
              f"{core[0]:4.2f}, system {core[1]:4.2f}, softirq {core[2]:4.2f}), idle "
              f"{100 * core[3] / (busy + core[3]):4.1f}%", flush=True)
        return requests / seconds, busy
    finally:
        deployment.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kaiser", action="append",
                        help="a kaiser binary (repeat to compare builds; default target/release/kaiser)")
    parser.add_argument("--app", choices=["hello", "flask"], default="hello")
    parser.add_argument("--front", choices=["http", "nginx"], default="http",
                        help="HTTP keep-alive to the server, or nginx uwsgi_pass in front of it")
    parser.add_argument("--peer", choices=["peregrine", "uwsgi", "none"],
                        help="the other server measured (default: peregrine over HTTP, uWSGI behind nginx)")
    parser.add_argument("--threads", type=int, default=1, help="request threads per worker (2 workers)")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    peer = args.peer or ("peregrine" if args.front == "http" else "uwsgi")
    if args.front == "nginx" and peer == "peregrine":
        raise SystemExit("peregrine speaks no uwsgi protocol: use --peer uwsgi behind nginx")
    binaries = [os.path.abspath(b) for b in args.kaiser or [os.path.join(ROOT, "target/release/kaiser")]]
    venv = os.environ.get("VENV", os.path.join(ROOT, "target/bench-venv"))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    app = fixture_apps(ROOT)[args.app]
    path = "/" if args.app == "hello" else "/json"
    scratch = tempfile.mkdtemp(prefix="cpu-split-")
    runs = [(os.path.basename(b) if len(binaries) > 1 else "kaiser", "kaiser", b) for b in binaries]
    if peer != "none":
        runs.append((peer, peer, binaries[0]))
    results = {name: [] for name, _, _ in runs}
    try:
        for _ in range(args.rounds):
            for name, kind, binary in runs:
                tools = servers.Tools(ROOT, binary, venv, nginx, "wrk", scratch)
                results[name].append(measure(name, tools, kind, args.front, app, path, args.seconds, args.threads))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("medians:")
    for name, samples in results.items():
        print(f"{name:12} {statistics.median(r for r, _ in samples):>9,.0f} req/s  CPU 0 "
              f"{statistics.median(c for _, c in samples):5.2f} µs/req")


if __name__ == "__main__":
    main()
