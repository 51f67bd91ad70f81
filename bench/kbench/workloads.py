"""What each workload requests, from which fixture app, and what a right answer is.

The apps are the test fixtures in tests/apps, unchanged, so the benchmark serves exactly what
the integration tests check. This module does no I/O beyond writing the static file once.
"""

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Callable, Optional
from urllib.parse import quote

BIG_PATTERN = b"abcdefghijklmnopqrstuvwxyz"
ECHO_BYTES = 64 * 1024
BIG_BYTES = 1024 * 1024
STATIC_BYTES = 128 * 1024
SLOW_MS = 50


@dataclass(frozen=True)
class App:
    """A fixture app, named the way each server wants it."""

    name: str
    directory: str  # absolute; the servers that import a module chdir here
    module: str  # importable from `directory`
    callable: str = "application"

    @property
    def wsgi_file(self):
        return os.path.join(self.directory, self.module.replace(".", "/") + ".py")

    @property
    def target(self):
        """`module:callable`, as gunicorn and granian take it."""
        return f"{self.module}:{self.callable}"


def fixture_apps(repo_root):
    apps_dir = os.path.join(repo_root, "tests", "apps")
    return {
        "hello": App("hello", apps_dir, "hello"),
        "flask": App("flask", os.path.join(apps_dir, "flask_app"), "app"),
        "suite": App("suite", apps_dir, "wsgi_suite"),
    }


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    app: str  # a key of fixture_apps()
    path: str
    # Returns None when the body is right, else what was wrong with it.
    check: Callable[[bytes], Optional[str]] = field(compare=False)
    method: str = "GET"
    body_bytes: int = 0  # the request body: that many b"x"
    connections: int = 64
    threads: int = 1  # Python threads per worker process, the same for every server
    # For the static-map cell: the directory mapped at /static (kaiser and uWSGI get
    # `--static-map /static=DIR`; nginx serves it with `alias`). Servers without static file
    # serving (gunicorn, granian) do not run such a workload.
    static_root: str = ""

    def request_body(self):
        return b"x" * self.body_bytes if self.body_bytes else None


def _exact(expected):
    def check(body):
        if body == expected:
            return None
        return f"expected {len(expected)} bytes {expected[:40]!r}..., got {len(body)} bytes {body[:40]!r}..."

    return check


def _flask_json(body):
    try:
        value = json.loads(body)
    except ValueError:
        return f"expected JSON, got {body[:80]!r}"
    wanted = {"framework": "flask", "message": "hello", "numbers": [1, 2, 3]}
    got = {key: value.get(key) for key in wanted}
    return None if got == wanted else f"expected {wanted} (and a pid), got {value}"


def _big_body(size):
    repeats = size // len(BIG_PATTERN) + 1
    return (BIG_PATTERN * repeats)[:size]


def static_file(work_dir):
    """A file of STATIC_BYTES deterministic bytes, written once, served through wsgi.file_wrapper."""
    path = os.path.join(work_dir, f"static-{STATIC_BYTES // 1024}k.bin")
    content = b"".join(
        hashlib.sha256(b"%d" % index).digest() for index in range(STATIC_BYTES // 32)
    )
    if not os.path.exists(path) or os.path.getsize(path) != len(content):
        os.makedirs(work_dir, exist_ok=True)
        with open(path, "wb") as out:
            out.write(content)
    return path, content


def all_workloads(work_dir):
    static_path, static_content = static_file(work_dir)
    return [
        Workload("hello", "hello world (11 B)", "hello", "/", _exact(b"Hello World")),
        Workload("flask", "Flask JSON", "flask", "/json", _flask_json),
        Workload(
            "echo",
            "POST echo 64 KiB",
            "suite",
            "/echo",
            _exact(b"x" * ECHO_BYTES),
            method="POST",
            body_bytes=ECHO_BYTES,
        ),
        Workload("big", "1 MiB response", "suite", f"/big?bytes={BIG_BYTES}", _exact(_big_body(BIG_BYTES))),
        Workload(
            "slow",
            f"sleep {SLOW_MS} ms, 256 conns, 8 threads",
            "suite",
            f"/sleep?ms={SLOW_MS}",
            _exact(b"slept %d ms\n" % SLOW_MS),
            connections=256,
            threads=8,
        ),
        Workload(
            "static",
            f"static-map {STATIC_BYTES // 1024} KiB",
            "suite",
            "/static/" + os.path.basename(static_path),
            _exact(static_content),
            static_root=os.path.dirname(static_path),
        ),
        Workload(
            "file",
            f"static file {STATIC_BYTES // 1024} KiB (file_wrapper)",
            "suite",
            "/file?path=" + quote(static_path, safe=""),
            _exact(static_content),
        ),
    ]
