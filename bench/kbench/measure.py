"""One measurement: a wrk run against a deployment, plus what the server spent doing it.

Server-side figures are read from /proc for every process in the app server's process group
(the master, its workers and their threads): utime+stime before and after the measured run
gives CPU per request, and smaps_rollup sampled mid-run gives PSS and RSS under load. The
connections that got an answer are counted from the client side with `ss`: wrk keeps its
connections open, so one that never received a byte is one the server left waiting.
"""

import json
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass

from .servers import group_members

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WRK_THREADS = 2
WRK_TIMEOUT_S = 2
LUA_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report.lua")


@dataclass
class Sample:
    """The figures of one wrk run. Latencies in ms, memory in MiB."""

    rps: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    errors_non2xx: int
    errors_socket: int  # connect + read + write
    errors_timeout: int
    requests: int
    connections: int
    answered: int  # connections that received at least one byte
    cpu_us_per_req: float
    # nginx's CPU per request when it is in front (on the same core as the server), else NaN.
    front_cpu_us_per_req: float
    pss_mib: float
    rss_mib: float
    first_response_ms: float

    @property
    def busy(self):
        """Little's law: connections that were, on average, waiting for an answer."""
        return self.rps * self.mean_ms / 1000.0

    @property
    def errors(self):
        return self.errors_non2xx + self.errors_socket + self.errors_timeout


def cpu_ticks(pgid):
    return sum(cpu_ticks_split(pgid))


def cpu_ticks_split(pgid):
    """(user, system) clock ticks of every process in the group."""
    user = system = 0
    for pid in group_members(pgid):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the command name; for a
        # process they include all of its threads.
        user += int(fields[11])
        system += int(fields[12])
    return user, system


def memory_kib(pgid):
    """(PSS, RSS) in KiB summed over the group."""
    pss = rss = 0
    for pid in group_members(pgid):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                    elif line.startswith("Rss:"):
                        rss += int(line.split()[1])
        except OSError:
            continue
    return pss, rss


_SS_BYTES = re.compile(r"bytes_received:(\d+)")


def answered_connections(port):
    """(client connections to `port`, those of them that received at least one byte)."""
    output = subprocess.run(
        ["ss", "-tniH", "state", "established", f"( dport = :{port} )"],
        capture_output=True, text=True, timeout=10, check=True,
    ).stdout
    total = answered = 0
    # ss prints each socket on one line and its TCP info on the next, indented.
    for line in output.splitlines():
        if not line.startswith((" ", "\t")):
            total += 1
            continue
        match = _SS_BYTES.search(line)
        if match and int(match.group(1)) > 0:
            answered += 1
    return total, answered


def wrk(tools, port, workload, seconds, cpu):
    argv = [
        tools.wrk, f"-t{WRK_THREADS}", f"-c{workload.connections}", f"-d{seconds}s",
        f"--timeout={WRK_TIMEOUT_S}s", "--latency", "-s", LUA_SCRIPT,
        f"http://127.0.0.1:{port}{workload.path}",
    ]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    env = dict(os.environ, KBENCH_METHOD=workload.method, KBENCH_BODY_BYTES=str(workload.body_bytes))
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


class WrkFailed(Exception):
    pass


def _wrk_result(process, seconds):
    try:
        output, _ = process.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise WrkFailed(f"wrk ran {seconds + 30} s past a {seconds} s run and was killed")
    for line in output.splitlines():
        if line.startswith("KBENCH "):
            return json.loads(line[len("KBENCH "):])
    raise WrkFailed(f"wrk printed no result (exit {process.returncode}):\n{output}")


def measure(tools, deployment, workload, seconds, warmup_seconds, wrk_cpu):
    """Warms up (discarded), then one measured wrk run with the server figures around it."""
    if warmup_seconds:
        _wrk_result(wrk(tools, deployment.port, workload, warmup_seconds, wrk_cpu), warmup_seconds)

    pgid = deployment.app_process.pid
    probes = {}

    def probe():
        # Memory mid-run, when every worker is busy and has touched what the workload needs;
        # connections near the end, so that a connection queued behind slow requests has had
        # the whole run to get its first answer.
        time.sleep(seconds * 0.5)
        probes["memory"] = memory_kib(pgid)
        time.sleep(seconds * 0.4)
        probes["connections"] = answered_connections(deployment.port)

    prober = threading.Thread(target=probe, daemon=True)
    front = deployment.front_process.pid if deployment.front_process else None
    ticks_before = cpu_ticks(pgid)
    front_before = cpu_ticks(front) if front else 0
    process = wrk(tools, deployment.port, workload, seconds, wrk_cpu)
    prober.start()
    result = _wrk_result(process, seconds)
    ticks_after = cpu_ticks(pgid)
    front_after = cpu_ticks(front) if front else 0
    prober.join(timeout=15)

    requests = result["requests"]
    duration_s = result["duration_us"] / 1e6
    cpu_us = (ticks_after - ticks_before) * 1e6 / CLOCK_TICKS
    front_us = (front_after - front_before) * 1e6 / CLOCK_TICKS
    pss_kib, rss_kib = probes.get("memory", (0, 0))
    _, answered = probes.get("connections", (0, 0))
    return Sample(
        rps=requests / duration_s if duration_s else 0.0,
        p50_ms=result["p50_us"] / 1000.0,
        p99_ms=result["p99_us"] / 1000.0,
        mean_ms=result["mean_us"] / 1000.0,
        errors_non2xx=result["status"],
        errors_socket=result["connect"] + result["read"] + result["write"],
        errors_timeout=result["timeout"],
        requests=requests,
        connections=workload.connections,
        answered=answered,
        cpu_us_per_req=cpu_us / requests if requests else float("nan"),
        front_cpu_us_per_req=front_us / requests if front and requests else float("nan"),
        pss_mib=pss_kib / 1024.0,
        rss_mib=rss_kib / 1024.0,
        first_response_ms=deployment.first_response_ms,
    )
