"""`bench/run [--quick] [--only-reload] [--readme [FILE]]`: install, build, measure, write the result."""

import argparse
import os
import shutil
import sys
import tempfile

from . import install, plan as plans, report, servers, workloads as workload_defs

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS_DIR = os.path.join(REPO_ROOT, "bench", "results")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description="Measure kaiser beside uWSGI, gunicorn and granian on this machine, in one run.",
    )
    parser.add_argument("--quick", action="store_true", help="one repetition of a short subset (about 2 min)")
    parser.add_argument(
        "--readme", nargs="?", const="", metavar="FILE",
        help="print the summary and reload tables of FILE (default: the newest results that have them) "
        "for the README's Performance section, and exit",
    )
    parser.add_argument("--no-build", action="store_true", help="use target/release/kaiser as it is")
    parser.add_argument(
        "--kaiser", metavar="BINARY",
        help="measure this kaiser binary (another commit's build, for a before/after run); implies --no-build",
    )
    parser.add_argument(
        "--servers", help="comma-separated subset of kaiser,uwsgi,gunicorn,granian,peregrine (for trying the harness)"
    )
    parser.add_argument(
        "--only-reload", action="store_true",
        help="only the reload measurements (graceful and chain), no throughput cells; "
        "writes <date>-<host>-reload.md",
    )
    parser.add_argument(
        "--keep-scratch", action="store_true",
        help="keep the scratch directory (server logs) even when every measurement succeeded",
    )
    parser.add_argument(
        "--workloads", metavar="NAMES",
        help="comma-separated subset of the workloads (hello,flask,echo,big,slow,file,static): more "
        "repetitions of a few cells in the time of a full run; writes <date>-<host>-<plan>-<names>.md, "
        "which the README's summary never comes from",
    )
    parser.add_argument("--pinned-only", action="store_true", help="skip the unpinned cells")
    parser.add_argument("--repetitions", type=int, help="override the plan's repetitions")
    parser.add_argument("--seconds", type=int, help="override the measured seconds per cell")
    return parser.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    if args.readme is not None:
        print(report.readme_section(RESULTS_DIR, args.readme or None))
        return 0

    kaiser, venv, nginx, wrk = install.everything(
        REPO_ROOT, build=not (args.no_build or args.kaiser),
        kaiser=os.path.abspath(args.kaiser) if args.kaiser else None,
    )
    scratch = tempfile.mkdtemp(prefix="kbench-")
    tools = servers.Tools(REPO_ROOT, kaiser, venv, nginx, wrk, scratch)
    work_dir = os.path.join(REPO_ROOT, "target", "bench-work")
    workloads = workload_defs.all_workloads(work_dir)
    apps = workload_defs.fixture_apps(REPO_ROOT)
    only = set(args.servers.split(",")) if args.servers else None
    plan = (plans.quick_plan if args.quick else plans.full_plan)(workloads, only)
    if args.only_reload:
        plan.cells = []
        plan.name = "reload" if plan.name == "full" else f"reload-{plan.name}"  # …-reload-quick.md
    if args.workloads:
        names = args.workloads.split(",")
        unknown = set(names) - {workload.name for workload in workloads}
        if unknown:
            raise SystemExit(f"bench: no workload named {', '.join(sorted(unknown))}")
        plan.cells = [cell for cell in plan.cells if cell.workload.name in names]
        plan.reload_servers = ()
        plan.name = f"{plan.name}-{'-'.join(names)}"
    if args.pinned_only:
        plan.cells = [cell for cell in plan.cells if cell.pinning == "pinned"]
    if only:
        plan.reload_servers = tuple(name for name in plan.reload_servers if name in only)
    if args.repetitions:
        plan.repetitions = plan.reload_repetitions = args.repetitions
    if args.seconds:
        plan.seconds = args.seconds
    install.say(plan.describe())
    install.say(f"scratch directory (sockets, nginx, server logs): {scratch}")

    results = plans.run(tools, apps, plan)
    text = report.markdown(results, plan, workloads, report.versions(tools))
    path = report.write(text, RESULTS_DIR, plan.name, report.versions(tools)["host"])
    print()
    print(text)
    print()
    install.say(f"wrote {os.path.relpath(path, REPO_ROOT)}")
    if results.failures:
        install.say(
            f"{len(results.failures)} measurement(s) FAILED (wrong answer or no start); "
            f"server logs kept in {scratch}"
        )
        for what, _ in results.failures:
            install.say(f"  FAILED: {what}")
        return 1
    if args.keep_scratch:
        install.say(f"server logs kept in {scratch}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
