"""An app for the alarm tests (tests/alarms.rs).

Routes:
  /log?TEXT   prints TEXT to stderr (a log line for `log-alarm`), answers "logged"
  /segv       reads address 0, so its worker dies of SIGSEGV (for `alarm-segfault`)
  /           answers "ok"

With $KAISER_TEST_SIGNAL_FILE set, uWSGI signal 17 (raised by a `signal:17` alarm) appends
"signal 17" to that file in the worker that runs it.
"""

import ctypes
import os
import sys
from urllib.parse import unquote

import uwsgi

SIGNAL_FILE = os.environ.get("KAISER_TEST_SIGNAL_FILE")

if SIGNAL_FILE:

    def on_signal(signum):
        with open(SIGNAL_FILE, "a") as f:
            f.write(f"signal {signum}\n")

    uwsgi.register_signal(17, "workers", on_signal)


def application(environ, start_response):
    path = environ.get("PATH_INFO") or "/"
    if path == "/log":
        print(unquote(environ.get("QUERY_STRING", "")), file=sys.stderr, flush=True)
        body = b"logged"
    elif path == "/segv":
        # A real fault, which no signal mask can hold back (a kill(2) could be blocked).
        ctypes.string_at(0)
        body = b"unreachable"
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
