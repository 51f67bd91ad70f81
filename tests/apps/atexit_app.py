"""An app with exit-time work, as apps with Sentry or buffered logging have: an `atexit`
handler and a `uwsgi.atexit` hook each append a line to the file named by the
ATEXIT_RECORD environment variable, and each request prints a line to stdout.

  /   "ok pid=P" (and prints "printed by pid P")
"""

import atexit
import os
import sys


def _record(what):
    path = os.environ.get("ATEXIT_RECORD")
    if path:
        with open(path, "a") as record:
            record.write("%s pid=%d\n" % (what, os.getpid()))


atexit.register(_record, "atexit")

if "uwsgi" in sys.modules:
    import uwsgi

    uwsgi.atexit = lambda: _record("uwsgi.atexit")


def application(environ, start_response):
    print("printed by pid %d" % os.getpid())
    body = b"ok pid=%d" % os.getpid()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
