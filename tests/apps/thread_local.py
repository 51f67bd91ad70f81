"""Counts requests in a `threading.local()`: frameworks keep per-thread state there (Django's
database connections, for one), so it must survive from one request to the next on the
same thread."""

import threading

state = threading.local()


def application(environ, start_response):
    state.count = getattr(state, "count", 0) + 1
    body = f"{threading.get_ident()} {state.count}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
