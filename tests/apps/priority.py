"""Records each import of itself: a line "PID NICE MAIN" appended to $KAISER_TEST_IMPORTS,
with the importing thread's nice value and whether it is Python's main thread (where
`signal.signal` handlers run). Each response is "PID NICE" of the thread that serves it."""

import os
import threading

with open(os.environ["KAISER_TEST_IMPORTS"], "a") as log:
    log.write(f"{os.getpid()} {os.nice(0)} {threading.current_thread() is threading.main_thread()}\n")


def application(environ, start_response):
    body = f"{os.getpid()} {os.nice(0)}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
