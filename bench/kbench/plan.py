"""Which cells run, in which order, for how long; and running them.

A cell is one (pinning, workload, front end, server). Repetitions are interleaved: every cell
once, then every cell again (A B C A B C), so a slow minute on a shared machine lands on all
servers rather than on one. Each cell starts its server afresh, checks one answer by hand,
warms up, measures, and stops the server's process group.
"""

import time
from collections import defaultdict
from dataclasses import dataclass, field

from . import client, measure, reload, servers

SERVER_CPU = 0  # the server, its workers and nginx in front of it
CLIENT_CPU = 1  # wrk, and the reload loop's clients

FRONT_ENDS = (
    ("http", ("kaiser", "uwsgi", "gunicorn", "granian")),
    ("nginx", ("kaiser", "uwsgi")),
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

    def describe(self):
        per_cell = self.seconds + self.warmup_seconds + 2
        estimate = self.repetitions * len(self.cells) * per_cell + self.reload_repetitions * len(
            self.reload_servers
        ) * (self.reload_before_s + self.reload_after_s + 2)
        return (
            f"{self.name}: {len(self.cells)} cells x {self.repetitions} repetitions, "
            f"{self.warmup_seconds} s warm-up + {self.seconds} s measured each; reload gap "
            f"x {self.reload_repetitions}; about {estimate / 60:.0f} min"
        )


def _cells(pinning, workloads, front_ends=FRONT_ENDS, only_servers=None):
    cells = []
    for workload in workloads:
        for front_end, names in front_ends:
            if front_end == "ceiling" and workload.name != "hello":
                continue  # nginx's fixed string stands in for hello world only
            for server in names:
                if only_servers and server not in only_servers and server != "nginx":
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
        cells=_cells("pinned", [by_name["hello"]], only_servers=only_servers)
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
    reloads: dict = field(default_factory=lambda: defaultdict(list))  # server -> [ReloadSample]
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
            SERVER_CPU if pinned else None, tag,
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


def run_reload(tools, apps, plan, server, results, label):
    workload = plan.reload_workload
    what = f"reload {server}"
    try:
        deployment = servers.deploy(
            tools, server, "http", apps[workload.app], 1, SERVER_CPU, f"reload-{server}"
        )
    except servers.StartFailed as error:
        _fail(results, what, str(error))
        return
    try:
        problem = _check_answer(deployment, workload)
        if problem:
            _fail(results, what, f"wrong answer before reloading: {problem}")
            return
        sample = reload.reload_gap(
            deployment, servers.SERVERS[server].reload_signal, workload,
            plan.reload_before_s, plan.reload_after_s, CLIENT_CPU,
        )
    finally:
        deployment.stop()
    results.reloads[server].append(sample)
    print(
        f"{label} {what}: worst gap {sample.worst_gap_ms:.0f} ms, failed {sample.failed}/"
        f"{sample.failed + sample.succeeded}{' ' + str(dict(sample.failure_kinds)) if sample.failure_kinds else ''}, "
        f"answered after the signal: {sample.recovered}",
        flush=True,
    )


def run(tools, apps, plan):
    results = Results()
    total = plan.repetitions * len(plan.cells) + plan.reload_repetitions * len(plan.reload_servers)
    done = 0
    for repetition in range(max(plan.repetitions, plan.reload_repetitions)):
        if repetition < plan.repetitions:
            for cell in plan.cells:
                done += 1
                run_cell(tools, apps, plan, cell, results, f"[{done}/{total}]")
        if repetition < plan.reload_repetitions:
            for server in plan.reload_servers:
                done += 1
                run_reload(tools, apps, plan, server, results, f"[{done}/{total}]")
    results.finished = time.time()
    return results
