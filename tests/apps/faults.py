"""An app that misbehaves on purpose, for the tests of response framing and body bounds.

Routes (query parameters in brackets):
  /content-length   answers [body=hello] with one Content-Length header per [cl=...] given
                    (repeat it for several), as a list [gen=1: as a generator instead]
  /write-after      a chunked body ("part\\n") whose close() calls write(b"spilled\\n"), i.e.
                    after the server sent the last chunk [length=1: with Content-Length]
  /longer           declares Content-Length [declared=5] and yields [sent=12] bytes
  /read-all         wsgi.input.read() with no size; answers the length it got
  /read-interrupted reads the body in [read=1024]-byte pieces while another thread sends
                    SIGALRM (handled: a no-op) to the reading thread every 5 ms, so its waits
                    are interrupted; answers the length it got
  /big              [bytes=N] bytes of "x", as one list item with Content-Length
  /pid              the worker's pid
"""

import os
import signal
import threading
from urllib.parse import parse_qs

# Installed at import, on the main thread (the only place Python allows it); the handler
# itself does nothing: only the interruption of a blocked system call matters.
signal.signal(signal.SIGALRM, lambda signum, frame: None)


def _query(environ):
    return parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)


def _one(query, name, default):
    return query.get(name, [default])[-1]


def _text(start_response, text, status="200 OK"):
    body = text.encode()
    start_response(
        status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    )
    return [body]


def content_length(environ, start_response):
    query = _query(environ)
    body = _one(query, "body", "hello").encode()
    headers = [("Content-Type", "text/plain")]
    headers.extend(("Content-Length", value) for value in query.get("cl", []))
    start_response("200 OK", headers)
    if _one(query, "gen", "") == "1":
        return iter([body])
    return [body]


class WritesOnClose:
    def __init__(self, write):
        self.write = write

    def __iter__(self):
        yield b"part\n"

    def close(self):
        self.write(b"spilled\n")


def write_after(environ, start_response):
    headers = [("Content-Type", "text/plain")]
    if _one(_query(environ), "length", "") == "1":
        headers.append(("Content-Length", "5"))
    write = start_response("200 OK", headers)
    return WritesOnClose(write)


def longer(environ, start_response):
    query = _query(environ)
    declared = int(_one(query, "declared", "5"))
    sent = int(_one(query, "sent", "12"))
    start_response("200 OK", [("Content-Length", str(declared))])

    def generate():
        yield b"y" * sent

    return generate()


def read_all(environ, start_response):
    body = environ["wsgi.input"].read()
    return _text(start_response, "read %d bytes\n" % len(body))


def read_interrupted(environ, start_response):
    size = int(_one(_query(environ), "read", "1024"))
    reader = threading.get_ident()
    done = threading.Event()

    def interrupt():
        while not done.wait(0.005):
            signal.pthread_kill(reader, signal.SIGALRM)

    interrupter = threading.Thread(target=interrupt, daemon=True)
    interrupter.start()
    total = 0
    try:
        while True:
            chunk = environ["wsgi.input"].read(size)
            if not chunk:
                break
            total += len(chunk)
    finally:
        done.set()
        interrupter.join()
    return _text(start_response, "read %d bytes\n" % total)


def big(environ, start_response):
    size = int(_one(_query(environ), "bytes", "1048576"))
    start_response("200 OK", [("Content-Length", str(size))])
    return [b"x" * size]


def pid(environ, start_response):
    return _text(start_response, "%d\n" % os.getpid())


ROUTES = {
    "/content-length": content_length,
    "/write-after": write_after,
    "/longer": longer,
    "/read-all": read_all,
    "/read-interrupted": read_interrupted,
    "/big": big,
    "/pid": pid,
}


def application(environ, start_response):
    route = ROUTES.get(environ.get("PATH_INFO") or "/")
    if route is None:
        return _text(start_response, "no route\n", "404 Not Found")
    return route(environ, start_response)
