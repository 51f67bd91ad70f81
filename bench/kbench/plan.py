"""Which cells run, in which order, for how long; and running them.

A cell is one (pinning, workload, front end, server). Repetitions are interleaved: every cell
once, then every cell again (A B C A B C), so a slow minute on a shared machine lands on all
servers rather than on one. Each cell starts its server afresh, checks one answer by hand,
warms up, measures, and stops the server's process group.
"""

import os
import time
from collections import defaultdict
from dataclasses import dataclass, field

from . import client, measure, reload, servers

SERVER_CPU = 0  # the server, its workers and nginx in front of it
CLIENT_CPU = 1  # wrk, and the reload loop's clients

FRONT_ENDS = (
    ("http", ("kaiser", "uwsgi", "gunicorn", "granian", "peregrine")),
    ("nginx", ("kaiser", "uwsgi")),
    # The same nginx with `fastcgi_pass`, `fastcgi_keep_conn on` and upstream keepalive: kaiser
    # keeps the connection for the next request, uWSGI's FastCGI closes it after each one.
    ("nginx-fastcgi", ("kaiser", "uwsgi")),
    ("ceiling", ("nginx",)),
)


@dataclass(frozen=True)
class Cell:
    pinning: str  # "pinned" or "unpinned"
    workload: object
    front_end: str
    server: str

    @property
    def key(self):
        return (self.pinning, self.workload.name, self.front_end, self.server)


@dataclass
class Plan:
    name: str
    repetitions: int
    seconds: int
    warmup_seconds: int
    cells: list
    reload_servers: tuple
    reload_workload: object
    reload_repetitions: int
    reload_before_s: float
    reload_after_s: float
    reload_kinds: tuple = reload.KINDS

    def reloads(self):
        """Every (kind, server) reload measurement of one repetition, in order."""
        return [
            (kind, server)
            for kind in self.reload_kinds
            for server in self.reload_servers
            if kind != "chain" or servers.SERVERS[server].chain_reload
        ]

    def describe(self):
        per_cell = self.seconds + self.warmup_seconds + 2
        # A reload measurement also starts and stops its server, and a chain reload of uWSGI
        # takes about 2 s per worker (its master checks the chain once a second).
        per_reload = {"graceful": self.reload_before_s + self.reload_after_s + 3}
        per_reload["chain"] = max(per_reload["graceful"], self.reload_before_s + 2 * servers.WORKER_PROCESSES + 4)
        estimate = self.repetitions * len(self.cells) * per_cell + self.reload_repetitions * sum(
            per_reload[kind] for kind, _ in self.reloads()
        )
        cells = (
            f"{len(self.cells)} cells x {self.repetitions} repetitions, "
            f"{self.warmup_seconds} s warm-up + {self.seconds} s measured each; "
            if self.cells
            else ""
        )
        return (
            f"{self.name}: {cells}{len(self.reloads())} reload measurements "
            f"({', '.join(self.reload_kinds)}) x {self.reload_repetitions}; about {max(1, round(estimate / 60))} min"
        )


def _cells(pinning, workloads, front_ends=FRONT_ENDS, only_servers=None):
    cells = []
    for workload in workloads:
        for front_end, names in front_ends:
            if front_end == "ceiling" and workload.name not in ("hello", "static"):
                continue  # nginx's fixed string stands in for hello world, its alias for static-map
            if front_end == "nginx-fastcgi" and workload.name not in ("hello", "flask"):
                continue
            for server in names:
                if only_servers and server not in only_servers and server != "nginx":
                    continue
                if workload.static_root and not servers.SERVERS[server].static_files:
                    continue
                cells.append(Cell(pinning, workload, front_end, server))
    return cells


def full_plan(workloads, only_servers=None):
    by_name = {workload.name: workload for workload in workloads}
    unpinned = [by_name["hello"], by_name["flask"]]
    return Plan(
        name="full",
        repetitions=3,
        seconds=10,
        warmup_seconds=2,
        cells=_cells("pinned", workloads, only_servers=only_servers)
        + _cells("unpinned", unpinned, only_servers=only_servers),
        reload_servers=("kaiser", "uwsgi", "gunicorn", "granian"),
        reload_workload=by_name["flask"],
        reload_repetitions=3,
        reload_before_s=2.0,
        reload_after_s=8.0,
    )


def quick_plan(workloads, only_servers=None):
    by_name = {workload.name: workload for workload in workloads}
    return Plan(
        name="quick",
        repetitions=1,
        seconds=3,
        warmup_seconds=1,
        cells=_cells("pinned", [by_name["hello"], by_name["static"]], only_servers=only_servers)
        + _cells(
            "pinned",
            [by_name["flask"]],
            (("http", ("kaiser", "uwsgi")), ("nginx", ("kaiser", "uwsgi"))),
            only_servers,
        ),
        reload_servers=("kaiser", "uwsgi"),
        reload_workload=by_name["flask"],
        reload_repetitions=1,
        reload_before_s=1.0,
        reload_after_s=3.0,
    )


@dataclass
class Results:
    samples: dict = field(default_factory=lambda: defaultdict(list))  # Cell.key -> [Sample]
    reloads: dict = field(default_factory=lambda: defaultdict(list))  # (kind, server) -> [ReloadSample]
    failures: list = field(default_factory=list)  # (what, message)
    started: float = field(default_factory=time.time)
    finished: float = 0.0


def _fail(results, what, message):
    results.failures.append((what, message))
    print(f"\n!!! FAILED: {what}\n{message}\n", flush=True)


def _check_answer(deployment, workload):
    """One request by hand: the right status and body, or a description of what came back."""
    try:
        status, body = client.request(
            deployment.port, workload.path, workload.method, workload.request_body(), timeout=30.0
        )
    except client.RequestFailed as error:
        return str(error)
    if status != 200:
        return f"expected status 200, got {status}: {body[:200]!r}"
    return workload.check(body)


def run_cell(tools, apps, plan, cell, results, label):
    pinned = cell.pinning == "pinned"
    what = f"{cell.pinning} {cell.workload.name} {cell.front_end} {cell.server}"
    app = apps[cell.workload.app]
    tag = "-".join(cell.key)
    try:
        deployment = servers.deploy(
            tools, cell.server, cell.front_end, app, cell.workload.threads,
            SERVER_CPU if pinned else None, tag, static_root=cell.workload.static_root,
        )
    except servers.StartFailed as error:
        _fail(results, what, str(error))
        return
    try:
        problem = _check_answer(deployment, cell.workload)
        if problem:
            _fail(results, what, f"wrong answer before measuring: {problem}")
            return
        try:
            sample = measure.measure(
                tools, deployment, cell.workload, plan.seconds, plan.warmup_seconds,
                CLIENT_CPU if pinned else None,
            )
        except measure.WrkFailed as error:
            _fail(results, what, str(error))
            return
        problem = _check_answer(deployment, cell.workload)
        if problem:
            _fail(results, what, f"wrong answer after measuring: {problem}")
            return
    finally:
        deployment.stop()
    results.samples[cell.key].append(sample)
    print(
        f"{label} {what}: {sample.rps:,.0f} req/s, p50 {sample.p50_ms:.2f} ms, "
        f"p99 {sample.p99_ms:.2f} ms, errors {sample.errors}, answered "
        f"{sample.answered}/{sample.connections}, {sample.cpu_us_per_req:.0f} us CPU/req, "
        f"PSS {sample.pss_mib:.1f} MiB, first response {sample.first_response_ms:.0f} ms",
        flush=True,
    )


def run_reload(tools, apps, plan, kind, server, results, label):
    """One reload under load. A chain reload gets a master FIFO and lazy-apps, which uWSGI's
    docs require for it; a graceful reload runs the same command line as the other cells."""
    workload = plan.reload_workload
    what = f"reload {kind} {server}"
    # One log per repetition, so that each measurement's progress line can be read beside it.
    tag = f"reload-{kind}-{server}-{len(results.reloads[(kind, server)]) + 1}"
    chain = kind == "chain"
    fifo = os.path.join(tools.scratch, f"{tag}.fifo") if chain else None
    try:
        deployment = servers.deploy(
            tools, server, "http", apps[workload.app], 1, SERVER_CPU, tag,
            master_fifo=fifo, lazy_apps=chain,
        )
    except servers.StartFailed as error:
        _fail(results, what, str(error))
        return
    try:
        problem = _check_answer(deployment, workload)
        if problem:
            _fail(results, what, f"wrong answer before reloading: {problem}")
            return
        if chain:
            trigger = reload.fifo_trigger(fifo, b"c")
        else:
            trigger = reload.signal_trigger(deployment.app_process.pid, servers.SERVERS[server].reload_signal)
        try:
            sample = reload.measure(
                deployment, kind, trigger, workload, plan.reload_before_s, plan.reload_after_s, CLIENT_CPU,
            )
        except OSError as error:
            _fail(results, what, f"could not trigger the reload: {error}\n{deployment.app_process.log_tail()}")
            return
        problem = _check_answer(deployment, workload)
        if problem:
            _fail(results, what, f"wrong answer after reloading: {problem}")
            return
    finally:
        deployment.stop()
    results.reloads[(kind, server)].append(sample)
    kinds = f" {dict(sample.failure_kinds)}" if sample.failure_kinds else ""
    new_ready = f"+{sample.new_ready_ms:.0f} ms" if sample.end_logged else "not logged"
    print(
        f"{label} {what}: worst gap {sample.worst_gap_ms:.0f} ms in the window (from "
        f"{sample.worst_gap_from_ms:+.0f} ms), {sample.outside_gap_ms:.0f} ms outside (from {sample.outside_gap_from_ms:+.0f} ms); p99 "
        f"{sample.steady_p99_ms:.1f} ms before, {sample.reload_p99_ms:.1f} ms in the window "
        f"({sample.reload_requests} requests); window {sample.window_ms:.0f} ms (new generation "
        f"accepts {new_ready}, old one gone +{sample.old_gone_ms:.0f} ms); failed {sample.failed}/"
        f"{sample.failed + sample.succeeded}{kinds}; answered after: {sample.recovered}; "
        f"trigger at {reload.utc_clock(sample.triggered_at)}Z",
        flush=True,
    )


def run(tools, apps, plan):
    results = Results()
    total = plan.repetitions * len(plan.cells) + plan.reload_repetitions * len(plan.reloads())
    done = 0
    for repetition in range(max(plan.repetitions, plan.reload_repetitions)):
        if repetition < plan.repetitions:
            for cell in plan.cells:
                done += 1
                run_cell(tools, apps, plan, cell, results, f"[{done}/{total}]")
        if repetition < plan.reload_repetitions:
            for kind, server in plan.reloads():
                done += 1
                run_reload(tools, apps, plan, kind, server, results, f"[{done}/{total}]")
    results.finished = time.time()
    return results
