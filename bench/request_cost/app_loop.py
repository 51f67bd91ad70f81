#!/usr/bin/python3
"""Calls a WSGI app N times in a plain loop, with the environ kaiser builds for the request
that `callgrind.sh` sends, so that callgrind can count the app's own instructions per call
outside kaiser (`app_loop.sh`).

  app_loop.py APP_FILE PATH N         run the loop in this interpreter's main thread

As a WSGI app itself (`wsgi-file = app_loop.py`, `APP_LOOP_TARGET=APP_FILE`), a request to
`/loop?n=N&path=PATH` runs the same loop inside the server's request thread: the difference
between the two is what the hosting interpreter costs the app, not what the server does.
"""

import io
import os
import runpy
import sys
from urllib.parse import parse_qs


def environ_for(path, base=None):
    """What kaiser's environ holds for `GET PATH` from syscalls.py's client."""
    environ = {
        "SCRIPT_NAME": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_METHOD": "GET",
        "REQUEST_URI": path,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "HTTP_HOST": "localhost",
        "HTTP_USER_AGENT": "cost",
        "HTTP_ACCEPT": "*/*",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "40000",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    if base is not None:  # the server's own constants (file_wrapper, errors)
        for key in ("wsgi.errors", "wsgi.file_wrapper", "SERVER_NAME", "SERVER_PORT"):
            if key in base:
                environ[key] = base[key]
    return environ


def start_response(status, headers, exc_info=None):
    return None


def loop(app, template, n):
    total = 0
    for _ in range(n):
        environ = template.copy()
        environ["wsgi.input"] = io.BytesIO(b"")
        result = app(environ, start_response)
        for chunk in result:
            total += len(chunk)
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return total


def load(app_file):
    namespace = runpy.run_path(app_file, run_name="app_under_loop")
    sys.path.insert(0, os.path.dirname(os.path.abspath(app_file)))
    return namespace.get("application") or namespace["app"]


_target = None


def application(environ, start_response_):
    """The loop inside a server's request thread."""
    global _target
    if _target is None:
        _target = load(os.environ["APP_LOOP_TARGET"])
    query = parse_qs(environ.get("QUERY_STRING", ""))
    n = int(query.get("n", ["1"])[0])
    path = query.get("path", ["/"])[0]
    total = loop(_target, environ_for(path, environ), n)
    body = str(total).encode()
    start_response_("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


if __name__ == "__main__":
    app_file, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.chdir(os.path.dirname(os.path.abspath(app_file)))
    print(loop(load(app_file), environ_for(path), n))
