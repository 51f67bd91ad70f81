"""The result as Markdown: versions, the ratio summary, every figure, the reload tables.

The summary between the `readme` markers and the reload tables between the `readme-reload`
markers are what `bench/run --readme` prints for the README's Performance section.
"""

import os
import platform
import re
import socket
import statistics
import subprocess
import time
from collections import Counter

from . import reload
from .plan import CLIENT_CPU, FRONT_ENDS, SERVER_CPU
from .measure import WRK_THREADS
from .servers import SERVERS, WORKER_PROCESSES

# The blocks `bench/run --readme` copies: the throughput summary and the reload tables.
README_START = "<!-- readme:start -->"
README_END = "<!-- readme:end -->"
RELOAD_START = "<!-- readme-reload:start -->"
RELOAD_END = "<!-- readme-reload:end -->"
BLOCKS = ((README_START, README_END), (RELOAD_START, RELOAD_END))
PEERS = ("uwsgi", "gunicorn", "granian", "peregrine")
NAMES = {"kaiser": "kaiser", "uwsgi": "uWSGI", "gunicorn": "gunicorn", "granian": "granian", "peregrine": "peregrine", "nginx": "nginx"}
FRONT_END_NAMES = {
    "http": "HTTP keep-alive",
    "nginx": "nginx uwsgi_pass",
    "nginx-fastcgi": "nginx fastcgi_pass, kept connections",
    "ceiling": "nginx fixed string",
}


def _front_end_name(workload, front_end):
    if front_end == "ceiling" and workload.static_root:
        return "nginx serving the file"
    return FRONT_END_NAMES[front_end]


def _output(argv):
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except OSError as error:
        return f"unknown ({error})"
    text = (done.stdout + done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _cpu_model():
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def versions(tools):
    venv_python = tools.venv_bin("python")
    flask = _output([venv_python, "-c", "import importlib.metadata as m; print(m.version('flask'))"])
    return {
        "kaiser": _kaiser_version(tools),
        "uWSGI": _output([tools.venv_bin("uwsgi"), "--version"]),
        "gunicorn": _output([tools.venv_bin("gunicorn"), "--version"]),
        "granian": _output([tools.venv_bin("granian"), "--version"]),
        "peregrine": _output([tools.venv_bin("peregrine"), "--version"]),
        "Flask": flask,
        "nginx": _output([tools.nginx, "-v"]).replace("nginx version: ", ""),
        "wrk": re.sub(r"\s*Copyright.*", "", _output([tools.wrk, "-v"])),
        "Python": _output(["/usr/bin/python3", "--version"]),
        "kernel": " ".join(platform.uname()[i] for i in (0, 2)),
        "CPU": f"{_cpu_model()} ({os.cpu_count()} CPUs)",
        "host": socket.gethostname(),
    }


def _median(values):
    return statistics.median(values) if values else float("nan")


def _ratio(numerator, denominator):
    if not numerator or not denominator or denominator != denominator or numerator != numerator:
        return "—"
    return f"{numerator / denominator:.2f}×"


def _paired_range(kaiser, peer):
    """The spread of kaiser's req/s ratio to a peer, repetition by repetition: repetition i
    of both ran minutes apart (the run is interleaved), so each pair saw about the same
    machine. Empty with one repetition, or when a failed repetition left the two unpaired."""
    if len(kaiser) != len(peer):
        return ""
    ratios = [k.rps / p.rps for k, p in zip(kaiser, peer) if p.rps]
    if len(ratios) < 2:
        return ""
    return f"each rep {min(ratios):.2f}–{max(ratios):.2f}×; "


def _median_of(samples, attribute):
    return _median([getattr(sample, attribute) for sample in samples])


def _rps_cell(samples):
    values = [sample.rps for sample in samples]
    if len(values) == 1:
        return f"{values[0]:,.0f}"
    return f"{_median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"


def _errors_cell(samples):
    non2xx = sum(sample.errors_non2xx for sample in samples)
    sockets = sum(sample.errors_socket for sample in samples)
    timeouts = sum(sample.errors_timeout for sample in samples)
    parts = [f"{count} {kind}" for count, kind in ((non2xx, "status≥400"), (sockets, "socket"), (timeouts, "timeout")) if count]
    return ", ".join(parts) if parts else "0"


def _workloads_in(results, pinning, workloads):
    seen = {key[1] for key in results.samples if key[0] == pinning}
    return [workload for workload in workloads if workload.name in seen]


def _summary(results, pinning, workloads, failed_keys):
    notes_static = []
    lines = [
        f"| workload | front end | kaiser req/s | vs uWSGI | vs gunicorn | vs granian | vs peregrine | kaiser answered |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for workload in _workloads_in(results, pinning, workloads):
        for front_end, names in FRONT_ENDS:
            if front_end == "ceiling":
                continue
            kaiser_key = (pinning, workload.name, front_end, "kaiser")
            kaiser = results.samples.get(kaiser_key, [])
            peers_present = [name for name in PEERS if (pinning, workload.name, front_end, name) in results.samples]
            if not kaiser and not peers_present:
                continue
            cells = []
            for peer in PEERS:
                peer_samples = results.samples.get((pinning, workload.name, front_end, peer), [])
                if peer not in names:
                    cells.append("")
                elif (pinning, workload.name, front_end, peer) in failed_keys:
                    cells.append(f"{NAMES[peer]} FAILED")
                elif not peer_samples:
                    cells.append("")  # not in this run's plan
                elif not kaiser:
                    cells.append("—")
                else:
                    rps = _ratio(_median_of(kaiser, "rps"), _median_of(peer_samples, "rps"))
                    p99 = _ratio(_median_of(kaiser, "p99_ms"), _median_of(peer_samples, "p99_ms"))
                    starved = min(sample.answered for sample in peer_samples)
                    note = f"; {NAMES[peer]} answered {starved}/{workload.connections}" if starved < workload.connections else ""
                    spread = _paired_range(kaiser, peer_samples)
                    cells.append(f"{rps} ({spread}p99 {p99}{note})")
            if kaiser:
                kaiser_rps = f"{_median_of(kaiser, 'rps'):,.0f}"
                answered = f"{min(s.answered for s in kaiser)}/{workload.connections}"
            else:
                kaiser_rps = "FAILED" if kaiser_key in failed_keys else "—"
                answered = "—"
            lines.append(
                f"| {workload.title} | {FRONT_END_NAMES[front_end]} | {kaiser_rps} | "
                + " | ".join(cells) + f" | {answered} |"
            )
    for front_end in ("http", "nginx"):
        nginx_static = results.samples.get((pinning, "static", "ceiling", "nginx"), [])
        kaiser_static = results.samples.get((pinning, "static", front_end, "kaiser"), [])
        if nginx_static and kaiser_static:
            spread = _paired_range(kaiser_static, nginx_static)
            notes_static.append(
                f"static-map over {FRONT_END_NAMES[front_end]}, kaiser vs nginx serving the same file itself "
                f"({_median_of(nginx_static, 'rps'):,.0f} req/s): "
                f"{_ratio(_median_of(kaiser_static, 'rps'), _median_of(nginx_static, 'rps'))} "
                f"({spread}p99 {_ratio(_median_of(kaiser_static, 'p99_ms'), _median_of(nginx_static, 'p99_ms'))})."
            )
    ceiling = results.samples.get((pinning, "hello", "ceiling", "nginx"), [])
    kaiser_hello = results.samples.get((pinning, "hello", "http", "kaiser"), [])
    notes = list(notes_static)
    if ceiling:
        share = ""
        if kaiser_hello:
            share = f"; kaiser's hello world over HTTP is {_median_of(kaiser_hello, 'rps') / _median_of(ceiling, 'rps'):.0%} of it"
        notes.append(f"Ceiling (nginx answering a fixed string itself): {_median_of(ceiling, 'rps'):,.0f} req/s{share}.")
    memory = []
    for name in ("hello", "flask"):
        for front_end in ("http", "nginx", "nginx-fastcgi"):
            kaiser = results.samples.get((pinning, name, front_end, "kaiser"), [])
            uwsgi = results.samples.get((pinning, name, front_end, "uwsgi"), [])
            if kaiser and uwsgi:
                memory.append(
                    f"{name} {FRONT_END_NAMES[front_end]} {_median_of(kaiser, 'pss_mib'):.1f} vs "
                    f"{_median_of(uwsgi, 'pss_mib'):.1f} MiB ({_ratio(_median_of(kaiser, 'pss_mib'), _median_of(uwsgi, 'pss_mib'))})"
                )
    if memory:
        notes.append("Total PSS under load, kaiser vs uWSGI: " + "; ".join(memory) + ".")
    return "\n".join(lines) + ("\n\n" + "\n".join(notes) if notes else "")


def _detail(results, pinning, workloads):
    lines = [
        "| workload | front end | server | req/s median (min–max) | p50 ms | p99 ms | errors | busy | answered | CPU µs/req | nginx CPU µs/req | PSS MiB | RSS MiB | 1st response ms |",
        "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for workload in _workloads_in(results, pinning, workloads):
        for front_end, names in FRONT_ENDS:
            for server in names:
                samples = results.samples.get((pinning, workload.name, front_end, server))
                if not samples:
                    continue
                lines.append(
                    f"| {workload.title} | {_front_end_name(workload, front_end)} | {NAMES[server]} | {_rps_cell(samples)} | "
                    f"{_median_of(samples, 'p50_ms'):.2f} | {_median_of(samples, 'p99_ms'):.2f} | "
                    f"{_errors_cell(samples)} | {_median([s.busy for s in samples]):.0f} | "
                    f"{min(s.answered for s in samples)}/{workload.connections} | "
                    f"{_median_of(samples, 'cpu_us_per_req'):.0f} | {_front_cpu_cell(samples)} | "
                    f"{_median_of(samples, 'pss_mib'):.1f} | "
                    f"{_median_of(samples, 'rss_mib'):.1f} | {_median_of(samples, 'first_response_ms'):.0f} |"
                )
    return "\n".join(lines)


def _front_cpu_cell(samples):
    """nginx's CPU per request in front of the server, or blank without nginx in front."""
    values = [s.front_cpu_us_per_req for s in samples if s.front_cpu_us_per_req == s.front_cpu_us_per_req]
    return f"{_median(values):.0f}" if values else ""


def _spread(values, digits=0):
    """`median (min–max)`, or the value when they are all the same."""
    values = [value for value in values if value == value]  # NaN: no request in the window
    if not values:
        return "—"
    text = f"{_median(values):.{digits}f}"
    if round(min(values), digits) != round(max(values), digits):
        text += f" ({min(values):.{digits}f}–{max(values):.{digits}f})"
    return text


def _reload_table(results, plan, kind):
    lines = [
        "| server | worst gap ms in the window | worst gap ms outside it | p99 ms before | p99 ms in the window | window ms | failed requests | answered after |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for server in plan.reload_servers:
        if kind == "chain" and not SERVERS[server].chain_reload:
            lines.append(f"| {NAMES[server]} | n/a (no chain reload) | | | | | | |")
            continue
        samples = results.reloads.get((kind, server))
        if not samples:
            lines.append(f"| {NAMES[server]} | FAILED | | | | | | |")
            continue
        failed = sum(sample.failed for sample in samples)
        total = failed + sum(sample.succeeded for sample in samples)
        kinds = sum((sample.failure_kinds for sample in samples), Counter())
        failed_text = f"{failed} of {total}"
        if kinds:
            failed_text += " (" + ", ".join(f"{count} {name}" for name, count in kinds.most_common()) + ")"
        window = _spread([sample.window_ms for sample in samples])
        if not all(sample.end_logged for sample in samples):
            window += " (no accept line)"
        lines.append(
            f"| {NAMES[server]} | {_spread([s.worst_gap_ms for s in samples])} | "
            f"{_spread([s.outside_gap_ms for s in samples])} | "
            f"{_spread([s.steady_p99_ms for s in samples], 1)} | {_spread([s.reload_p99_ms for s in samples], 1)} | "
            f"{window} | {failed_text} | {'yes' if all(s.recovered for s in samples) else 'NO'} |"
        )
    return "\n".join(lines)


def _reload_runs(results, plan):
    """Every reload measurement on its own row: where its worst gap fell, for reading the logs."""
    lines = [
        "| reload | server | run | trigger (UTC) | worst gap ms in the window | it began ms | worst gap ms outside | it began ms | p99 ms before | p99 ms in the window | requests in the window | new generation accepts ms | old generation gone ms | failed |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in plan.reload_kinds:
        for server in plan.reload_servers:
            for run, sample in enumerate(results.reloads.get((kind, server), []), 1):
                new_ready = f"{sample.new_ready_ms:.0f}" if sample.end_logged else "not logged"
                lines.append(
                    f"| {kind} | {NAMES[server]} | {run} | {reload.utc_clock(sample.triggered_at)} | {sample.worst_gap_ms:.0f} | "
                    f"{sample.worst_gap_from_ms:+.0f} | {sample.outside_gap_ms:.0f} | {sample.outside_gap_from_ms:+.0f} | "
                    f"{sample.steady_p99_ms:.1f} | "
                    f"{sample.reload_p99_ms:.1f} | {sample.reload_requests} | {new_ready} | "
                    f"{sample.old_gone_ms:.0f} | {sample.failed} |"
                )
    return "\n".join(lines)


RELOAD_KIND_TEXT = {
    "graceful": "**Graceful reload**: SIGHUP to the master; kaiser and uWSGI preload the app in the "
    "master (their default), gunicorn and granian as configured for the other cells.",
    "chain": "**Chain reload**: `c` written to the master FIFO (`master-fifo`), which replaces "
    "the workers one at a time; kaiser and uWSGI both run with `lazy-apps`, which uWSGI's docs "
    "require for a chain reload (without it kaiser re-forks the preloaded app and loads no new "
    "code). gunicorn and granian have no chain reload.",
}


def _reloads(results, plan, date, cpu):
    """The reload tables, one per kind, with what they measure, for the results and the README."""
    if not results.reloads:
        return ""
    repetitions = max(len(samples) for samples in results.reloads.values())
    out = [
        f"### Reloads under load ({plan.reload_workload.title}, {WORKER_PROCESSES} worker processes), "
        f"{plan.name} run, {date[:10]}, {cpu}",
        "",
        f"{plan.reload_workload.title}, {WORKER_PROCESSES} worker processes, {reload.CLIENTS} clients "
        f"sending back to back on new connections; server on CPU {SERVER_CPU}, clients on CPU "
        f"{CLIENT_CPU}; {plan.reload_before_s:.0f} s before the trigger, at least "
        f"{plan.reload_after_s:.0f} s after; "
        + (f"median (min–max) of {repetitions}. " if repetitions > 1 else "one run. ")
        + "**The window** runs from the trigger until the server has logged that the last new "
        "worker accepts (gunicorn and granian log no such line: at least "
        f"{reload.FALLBACK_WINDOW_S:.0f} s instead, marked \"no accept line\") and every old "
        "worker has exited. "
        "**Worst gap**: the longest time a client went without a right answer, in the window "
        "(overlapping it) and outside it (before or after: this machine's and the Python "
        "clients' noise floor). **p99 before**: the requests answered before the trigger; **in "
        "the window**: the successful requests in flight at some time in it. **Failed**: refused "
        "or reset connections, wrong statuses or bodies, timeouts, over the whole run.",
    ]
    for kind in plan.reload_kinds:
        out += ["", RELOAD_KIND_TEXT[kind], "", _reload_table(results, plan, kind)]
    return "\n".join(out)


def markdown(results, plan, workloads, version_table):
    date = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(results.started))
    minutes = (results.finished - results.started) / 60.0
    failed_keys = set()
    for what, _ in results.failures:
        parts = what.split()
        if len(parts) == 4:
            failed_keys.add(tuple(parts))
    out = [f"# kaiser benchmark: {plan.name} run, {date}, {version_table['host']}", ""]
    if results.failures:
        out += [f"**{len(results.failures)} measurement(s) FAILED; see the end of this file.**", ""]
    if results.samples:
        setup = (
            f"Every server: {WORKER_PROCESSES} worker processes, 1 thread each (8 for the slow "
            f"workload), the same fixture apps (tests/apps), a correct answer checked before and "
            f"after each measurement. Pinned: server (and nginx in front of it) on CPU {SERVER_CPU}, "
            f"wrk on CPU {CLIENT_CPU}; wrk -t{WRK_THREADS}, 64 connections (256 for the slow "
            "workload). Ratios are kaiser's median divided by the peer's: above 1 means kaiser "
            "serves more requests per second; p99 below 1 means kaiser answers faster."
        )
    else:
        setup = (
            f"Reload measurements only (`--only-reload`). Every server: {WORKER_PROCESSES} worker "
            "processes, 1 thread each, the same fixture app (tests/apps), a correct answer "
            "checked before and after each measurement."
        )
    out += [
        f"{plan.describe()}; took {minutes:.1f} min. {setup} See bench/README.md.",
        "",
        "| component | version |",
        "|---|---|",
    ]
    out += [f"| {name} | {value} |" for name, value in version_table.items()]
    if results.samples:
        summary = _summary(results, "pinned", workloads, failed_keys)
        if plan.name in ("full", "quick"):  # a run of some workloads only is not the README's summary
            out += ["", README_START, f"### kaiser vs peers, {plan.name} run, {date[:10]}, {version_table['CPU']}", ""]
            out += [summary, README_END, ""]
        else:
            out += ["", f"## kaiser vs peers, {plan.name} run, pinned", "", summary, ""]
        if any(key[0] == "unpinned" for key in results.samples):
            out += ["## Unpinned (server and wrk free to share both CPUs)", "", _summary(results, "unpinned", workloads, failed_keys), ""]
        out += ["## Every figure, pinned", "", _detail(results, "pinned", workloads), ""]
        if any(key[0] == "unpinned" for key in results.samples):
            out += ["## Every figure, unpinned", "", _detail(results, "unpinned", workloads), ""]
    reloads = _reloads(results, plan, date, version_table["CPU"])
    if reloads:
        out += ["", "## Graceful and chain reload under load", "", RELOAD_START, reloads, RELOAD_END, ""]
        out += ["### Every reload measurement", "", _reload_runs(results, plan), ""]
    if results.failures:
        out += ["## Failures", ""]
        for what, message in results.failures:
            out += [f"### {what}", "", "```", message.strip(), "```", ""]
    return "\n".join(out)


def _kaiser_version(tools):
    built_here = os.path.join(tools.repo_root, "target", "release", "kaiser")
    if os.path.realpath(tools.kaiser) == os.path.realpath(built_here):
        return _output(["git", "-C", tools.repo_root, "describe", "--always", "--dirty", "--abbrev=12"])
    return f"{tools.kaiser} (given with --kaiser), {_output([tools.kaiser, '--version'])}"


def write(markdown_text, results_dir, plan_name, host):
    """Writes `<date>-<host>[-plan].md`, or `…-2.md`, `…-3.md` if a run of the day is there
    already: a committed result is never overwritten."""
    os.makedirs(results_dir, exist_ok=True)
    suffix = "" if plan_name == "full" else f"-{plan_name}"
    stem = os.path.join(results_dir, f"{time.strftime('%Y-%m-%d')}-{host}{suffix}")
    path, n = f"{stem}.md", 1
    while os.path.exists(path):
        n += 1
        path = f"{stem}-{n}.md"
    scratch = path + ".tmp"
    with open(scratch, "w") as out:
        out.write(markdown_text)
    os.replace(scratch, path)
    return path


def _block(text, start, end):
    first, last = text.find(start), text.find(end)
    return text[first + len(start):last].strip() if 0 <= first < last else None


def _newest_results(results_dir):
    """Result files, oldest first: by the date that starts each name, then by mtime; quick
    runs (not committed) only when there is nothing else."""
    names = [name for name in os.listdir(results_dir) if name.endswith(".md")]
    paths = sorted(
        (os.path.join(results_dir, name) for name in names),
        key=lambda path: (os.path.basename(path)[:10], os.path.getmtime(path)),
    )
    committed = [path for path in paths if "-quick" not in os.path.basename(path)]
    return committed or paths


def readme_section(results_dir, path=None):
    """The README's Performance section from `path`, or else from the newest results: the
    throughput summary of the newest full run and the reload tables of the newest run that
    has them (a full run or an `--only-reload` run)."""
    if path is None:
        candidates = _newest_results(results_dir)
        if not candidates:
            raise SystemExit(f"bench: no result in {results_dir}; run bench/run first")
    else:
        candidates = [path]
    texts = {}
    for candidate in candidates:
        with open(candidate) as result:
            texts[candidate] = result.read()
    sections, sources = [], []
    for start, end in BLOCKS:
        found = [(candidate, _block(text, start, end)) for candidate, text in texts.items()]
        found = [(candidate, block) for candidate, block in found if block]
        if found:
            source, block = found[-1]
            sections.append(block)
            if source not in sources:
                sources.append(source)
    if not sections:
        raise SystemExit(f"bench: no readme markers in {', '.join(candidates)}")
    base = os.path.dirname(results_dir.rstrip("/"))
    files = " and ".join(f"`bench/{os.path.relpath(source, base)}`" for source in sources)
    return "\n\n".join(sections) + f"\n\nMethod and every figure: {files} (rerun with `bench/run`)."
