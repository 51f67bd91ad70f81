"""Two endpoints for the response-batching test (tests/serve_http.rs): `/sleep?ms=N` logs
"sleeping N ms" (so a test knows the request thread is inside it) and sleeps N ms; anything
else answers at once with the path, as cheaply as a WSGI app can (its response is queued and
goes out with the batch's others)."""
import sys
import time


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/sleep":
        ms = int(environ["QUERY_STRING"].partition("=")[2] or "100")
        print(f"sleeping {ms} ms", file=sys.stderr, flush=True)
        time.sleep(ms / 1000.0)
        body = b"slept %d ms\n" % ms
    else:
        body = path.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
