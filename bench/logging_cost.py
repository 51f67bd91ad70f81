#!/usr/bin/env python3
"""What request logging costs: hello-world req/s with `log-format` through the log master,
against `disable-logging`, and against uWSGI with the same format and `log-master`.

    bench/logging_cost.py [--seconds 5] [--repetitions 3] [--no-build]

Needs what `bench/run` installs (wrk, target/bench-venv with uWSGI) and builds
target/release/kaiser unless `--no-build`. Every configuration runs once per repetition,
interleaved (A B C … A B C …), each on a fresh server with 2 worker processes of 1 thread,
HTTP on loopback, wrk with 2 threads and 64 connections after a 1 s warm-up. The log goes to
a file in a scratch directory, and the lines in it are counted: a server that dropped lines
would look faster than it is. Writes bench/results/<date>-<host>-logging.md.

The machine is shared and noisy: read the ratios measured side by side, not the absolute
figures.
"""

import argparse
import datetime
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from kbench import servers  # noqa: E402

FORMAT = '%(addr) - %(user) [%(ltime)] "%(method) %(uri) %(proto)" %(status) %(size) "%(referer)" "%(uagent)" %(msecs)'


def configurations(kaiser, uwsgi, venv, app, scratch):
    """(label, server, argv builder) for each measured configuration."""

    def kaiser_argv(port, log, extra):
        return [kaiser, "--http-socket", f"127.0.0.1:{port}", "--wsgi-file", app, "--master",
                "--processes", "2", "--threads", "1", "--listen", "1024", "--home", venv, "--logto", log, *extra]

    def uwsgi_argv(port, log, extra):
        return [uwsgi, "--http11-socket", f"127.0.0.1:{port}", "--wsgi-file", app, "--master",
                "--processes", "2", "--threads", "1", "--listen", "1024", "--need-app",
                "--home", venv, "--logto", log, *extra]

    return [
        ("kaiser disable-logging", "kaiser", lambda p, l: kaiser_argv(p, l, ["--disable-logging"])),
        ("kaiser default line", "kaiser", lambda p, l: kaiser_argv(p, l, [])),
        ("kaiser log-format", "kaiser", lambda p, l: kaiser_argv(p, l, ["--log-format", FORMAT])),
        ("kaiser log-format + log-master", "kaiser",
         lambda p, l: kaiser_argv(p, l, ["--log-format", FORMAT, "--log-master"])),
        ("uWSGI disable-logging", "uwsgi", lambda p, l: uwsgi_argv(p, l, ["--disable-logging"])),
        ("uWSGI log-format + log-master", "uwsgi",
         lambda p, l: uwsgi_argv(p, l, ["--log-format", FORMAT, "--log-master"])),
    ]


def wait_accepting(port, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if b"Hello World" in conn.recv(4096):
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def wrk(port, seconds):
    out = subprocess.run(
        ["wrk", "-t2", "-c64", f"-d{seconds}s", f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, total, int(errors.group(1)) if errors else 0


def count_request_lines(path):
    with open(path, "rb") as log:
        return sum(1 for line in log if b'"GET / HTTP/1.1" 200' in line or b"GET / =>" in line)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    kaiser = os.path.join(ROOT, "target", "release", "kaiser")
    venv = os.path.join(ROOT, "target", "bench-venv")
    uwsgi = os.path.join(venv, "bin", "uwsgi")
    app = os.path.join(ROOT, "tests", "apps", "hello.py")
    scratch = tempfile.mkdtemp(prefix="kaiser-logging-bench-")
    configs = configurations(kaiser, uwsgi, venv, app, scratch)
    if not os.path.exists(uwsgi):
        print(f"no uWSGI at {uwsgi} (run bench/run once, or pip install uWSGI into it); skipping it")
        configs = [c for c in configs if c[1] != "uwsgi"]
    results = {label: [] for label, _, _ in configs}
    lines = {label: [] for label, _, _ in configs}
    for repetition in range(args.repetitions):
        for label, server, argv_of in configs:
            port = servers.free_port()
            log = os.path.join(scratch, f"{server}-{repetition}-{len(results[label])}.log")
            out = os.path.join(scratch, f"{server}-{repetition}.out")
            process = servers.spawn(label, argv_of(port, log), out, signal.SIGINT)
            try:
                if not wait_accepting(port):
                    raise SystemExit(f"{label} did not start; see {out}")
                wrk(port, 1)
                start_lines = count_request_lines(log)
                rate, total, errors = wrk(port, args.seconds)
                if errors:
                    raise SystemExit(f"{label}: {errors} wrong answers")
            finally:
                servers.stop(process)
            logged = count_request_lines(log) - start_lines
            results[label].append(rate)
            lines[label].append((logged, total))
            print(f"  {label:34} {rate:10.0f} req/s  lines {logged}/{total}", flush=True)
    base = statistics.median(results["kaiser disable-logging"])
    uwsgi_fmt = results.get("uWSGI log-format + log-master")
    report = [
        f"# Logging cost, {datetime.date.today()} on {socket.gethostname()}",
        "",
        f"`bench/logging_cost.py --seconds {args.seconds} --repetitions {args.repetitions}`: hello world,"
        " 2 worker processes × 1 thread, HTTP on loopback, wrk -t2 -c64, the log in a file.",
        "The machine is shared and noisy (other builds and tests ran meanwhile): compare the",
        "ratios, measured side by side, not the absolute figures.",
        "",
        f"Format: `{FORMAT}`",
        "",
        "| configuration | median req/s | runs | vs kaiser disable-logging | vs uWSGI same format | request lines logged / answered |",
        "|---|---|---|---|---|---|",
    ]
    for label, _, _ in configs:
        median = statistics.median(results[label])
        vs_uwsgi = f"{median / statistics.median(uwsgi_fmt):.2f}×" if uwsgi_fmt else "—"
        logged = sum(l for l, _ in lines[label])
        answered = sum(t for _, t in lines[label])
        runs = ", ".join(f"{r:.0f}" for r in results[label])
        report.append(f"| {label} | {median:.0f} | {runs} | {median / base:.2f}× | {vs_uwsgi} | {logged}/{answered} |")
    text = "\n".join(report) + "\n"
    print(text)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", f"{datetime.date.today()}-{socket.gethostname()}-logging.md")
    with open(path, "w") as out:
        out.write(text)
    print(f"written to {path}")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
