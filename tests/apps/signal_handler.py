"""Installs a Python signal handler at import, as apps do (for SIGWINCH here, which is
harmless by default): the handler must run in the workers too. It appends the worker's pid
to the file named by $KAISER_TEST_SIGNAL_FILE."""

import os
import signal

HIT_FILE = os.environ["KAISER_TEST_SIGNAL_FILE"]


def on_sigwinch(signum, frame):
    with open(HIT_FILE, "a") as f:
        f.write(f"{os.getpid()}\n")


signal.signal(signal.SIGWINCH, on_sigwinch)


def application(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
