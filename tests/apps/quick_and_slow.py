"""Endpoints for the response-batching tests (tests/serve_http.rs): `/sleep?ms=N` logs
"sleeping N ms" (so a test knows the request thread is inside it) and sleeps N ms;
`/spin?us=N` keeps the request thread busy N µs (holding the GIL); `/big?bytes=N` answers N
bytes of `x` in one body (64 KiB or more goes out at once, not through the queue); anything
else answers at once with the path, as cheaply as a WSGI app can
(its response is queued and goes out with the batch's others)."""
import sys
import time


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/sleep":
        ms = int(environ["QUERY_STRING"].partition("=")[2] or "100")
        print(f"sleeping {ms} ms", file=sys.stderr, flush=True)
        time.sleep(ms / 1000.0)
        body = b"slept %d ms\n" % ms
    elif path == "/spin":
        us = int(environ["QUERY_STRING"].partition("=")[2])
        until = time.perf_counter() + us / 1e6
        while time.perf_counter() < until:
            pass
        body = b"spun %d us\n" % us
    elif path == "/big":
        body = b"x" * int(environ["QUERY_STRING"].partition("=")[2])
    else:
        body = path.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
