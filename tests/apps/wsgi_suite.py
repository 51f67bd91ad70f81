"""One WSGI app that exercises PEP 3333 from the application's side, route by route.

Each route uses one part of the spec, so a server's integration tests can check that part
alone. The app keeps the spec itself: it also runs unchanged under uWSGI and wrapped in
`wsgiref.validate.validator` (see wsgi_suite_validated.py); the only exceptions are options
named "outside PEP 3333" below, which exist to test what real apps do anyway.

Routes (query parameters in brackets):
  /                     this list, text/plain
  /env                  JSON: every str-valued environ key, plus wsgi.url_scheme,
                        wsgi.multithread, wsgi.multiprocess, wsgi.run_once, wsgi.version,
                        and `_non_str_keys` (the names of the other keys)
  /echo                 the request body back; headers X-Body-Length, X-Body-Sha256,
                        X-Content-Length-Env, X-Content-Type-Env
                        [read=N: read() size, default 65536]
                        [mode=eof: read until b"" even when CONTENT_LENGTH is set;
                         mode=read-all: one read() with no argument -- outside PEP 3333]
  /echo-lines           JSON {first, iterated, rest}: readline(), one step of iteration, then
                        readlines() on wsgi.input, decoded as latin-1 [size=N: readline(N)]
  /stream               a generator, no Content-Length: "chunk 0\\n" ... [chunks=5] [delay_ms=0]
  /write                two write() calls, then an iterable with one more line
                        [chunks=N: instead, N write() calls of 16 KiB, [delay_ms=10] apart;
                         [file=PATH] gets "finished N writes" or "write raised ERROR"]
  /close                an iterable with close(); close() appends "closed pid=P\\n" to the file
                        named by [file=PATH] [fail=1: raise after the first chunk]
                        [chunks=2] [delay_ms=0]
  /file                 wsgi.file_wrapper over this file, or [path=PATH], with Content-Length
                        [block=8192]
  /error                raises RuntimeError before start_response
  /exc-info             start_response, an error, then start_response again with exc_info
                        (headers not sent yet, so it replaces them): 500, X-Exc-Info: replaced
                        [late=1: the error comes after the first body chunk was sent, so the
                        server must re-raise and abort the response]
  /sleep                sleeps [ms=100] then answers "slept N ms"
  /pid                  JSON {pid, thread, thread_name}
  /headers-injection    a header value containing CRLF; the server must refuse to send it
                        [in=value|name|status]
  /big                  [bytes=N] bytes of "abcdefghijklmnopqrstuvwxyz" repeated, sent in
                        [chunk=65536]-byte pieces, with Content-Length unless [stream=1]
  /status               an empty response with status [code=204]
  /uwsgi                JSON of what `import uwsgi` reports: worker_id, total_requests,
                        request_id, mem, micros and workers() (under kaiser or uWSGI -- outside
                        PEP 3333)
  /recurse              recurses [depth=1000] levels through C (map and sum), as deep template
                        or serializer code does, and answers the depth
  /log                  writes [msg] to wsgi.errors, answers "logged" [this=1: also calls
                        uwsgi.log_this_request(), under kaiser or uWSGI -- outside PEP 3333]
Anything else is a 404.
"""

import hashlib
import http
import json
import os
import sys
import threading
import time
from urllib.parse import parse_qs

THIS_FILE = os.path.abspath(globals().get("__file__") or "wsgi_suite.py")
BIG_PATTERN = b"abcdefghijklmnopqrstuvwxyz"


def _query(environ):
    parsed = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    return {key: values[-1] for key, values in parsed.items()}


def _respond(start_response, body, status="200 OK", content_type="text/plain", extra=()):
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    headers.extend(extra)
    start_response(status, headers)
    return [body]


def _json(start_response, value, status="200 OK"):
    body = json.dumps(value, sort_keys=True).encode()
    return _respond(start_response, body, status, "application/json")


def index(environ, start_response):
    return _respond(start_response, __doc__.encode())


def env(environ, start_response):
    dump = {key: value for key, value in environ.items() if isinstance(value, str)}
    dump["wsgi.multithread"] = environ["wsgi.multithread"]
    dump["wsgi.multiprocess"] = environ["wsgi.multiprocess"]
    dump["wsgi.run_once"] = environ["wsgi.run_once"]
    dump["wsgi.version"] = list(environ["wsgi.version"])
    dump["_non_str_keys"] = sorted(k for k, v in environ.items() if not isinstance(v, str))
    return _json(start_response, dump)


def _read_body(environ, query):
    stream = environ["wsgi.input"]
    mode = query.get("mode", "")
    if mode == "read-all":
        return stream.read()
    size = int(query.get("read", "65536"))
    length = environ.get("CONTENT_LENGTH", "")
    chunks = []
    if length and mode != "eof":
        # PEP 3333: an app must not read past CONTENT_LENGTH.
        remaining = int(length)
        while remaining > 0:
            chunk = stream.read(min(size, remaining))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    else:
        while True:
            chunk = stream.read(size)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def echo(environ, start_response):
    body = _read_body(environ, _query(environ))
    extra = [
        ("X-Body-Length", str(len(body))),
        ("X-Body-Sha256", hashlib.sha256(body).hexdigest()),
        ("X-Content-Length-Env", environ.get("CONTENT_LENGTH", "absent") or "empty"),
        ("X-Content-Type-Env", environ.get("CONTENT_TYPE", "absent") or "empty"),
    ]
    return _respond(start_response, body, content_type="application/octet-stream", extra=extra)


def echo_lines(environ, start_response):
    stream = environ["wsgi.input"]
    size = _query(environ).get("size")
    first = stream.readline(int(size)) if size else stream.readline()
    iterated = next(iter(stream), b"")
    rest = stream.readlines()
    return _json(
        start_response,
        {
            "first": first.decode("latin-1"),
            "iterated": iterated.decode("latin-1"),
            "rest": [line.decode("latin-1") for line in rest],
        },
    )


def stream(environ, start_response):
    query = _query(environ)
    chunks = int(query.get("chunks", "5"))
    delay = int(query.get("delay_ms", "0")) / 1000.0
    start_response("200 OK", [("Content-Type", "text/plain")])

    def generate():
        for index in range(chunks):
            if delay and index:
                time.sleep(delay)
            yield b"chunk %d\n" % index

    return generate()


def write(environ, start_response):
    query = _query(environ)
    write_body = start_response("200 OK", [("Content-Type", "text/plain")])
    if "chunks" in query:
        chunks = int(query["chunks"])
        delay = int(query.get("delay_ms", "10")) / 1000.0
        record = query.get("file")
        try:
            for _ in range(chunks):
                write_body(b"w" * 16384)
                time.sleep(delay)
        except Exception as error:
            if record:
                with open(record, "a") as out:
                    out.write("write raised %s\n" % type(error).__name__)
            raise
        if record:
            with open(record, "a") as out:
                out.write("finished %d writes\n" % chunks)
        return []
    write_body(b"written by write()\n")
    write_body(b"written by write() again\n")
    return [b"returned in the iterable\n"]


class ClosingBody:
    """An iterable whose close() leaves a trace, so tests see that the server called it."""

    def __init__(self, record_path, fail, chunks, delay):
        self.record_path = record_path
        self.fail = fail
        self.chunks = chunks
        self.delay = delay

    def __iter__(self):
        for index in range(self.chunks):
            if index and self.delay:
                time.sleep(self.delay)
            yield b"part %d\n" % index
            if self.fail:
                raise RuntimeError("wsgi_suite /close raised after the first chunk on purpose")

    def close(self):
        if self.record_path:
            with open(self.record_path, "a") as record:
                record.write("closed pid=%d\n" % os.getpid())


def close(environ, start_response):
    query = _query(environ)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ClosingBody(
        query.get("file"),
        query.get("fail") == "1",
        int(query.get("chunks", "2")),
        int(query.get("delay_ms", "0")) / 1000.0,
    )


def file(environ, start_response):
    query = _query(environ)
    path = query.get("path") or THIS_FILE
    block = int(query.get("block", "8192"))
    handle = open(path, "rb")
    size = os.fstat(handle.fileno()).st_size
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))],
    )
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is not None:
        return wrapper(handle, block)

    def chunks():
        with handle:
            while True:
                chunk = handle.read(block)
                if not chunk:
                    return
                yield chunk

    return chunks()


def error(environ, start_response):
    raise RuntimeError("wsgi_suite /error raised this on purpose")


def exc_info(environ, start_response):
    if _query(environ).get("late") == "1":
        return _exc_info_late(start_response)
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("wsgi_suite /exc-info raised this on purpose")
    except ValueError:
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "text/plain"), ("X-Exc-Info", "replaced")],
            sys.exc_info(),
        )
    return [b"recovered with exc_info\n"]


def _exc_info_late(start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def generate():
        yield b"partial body\n"
        try:
            raise ValueError("wsgi_suite /exc-info?late=1 raised this after the headers went out")
        except ValueError:
            # The headers are sent: PEP 3333 says the server must re-raise here.
            start_response(
                "500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info()
            )
        yield b"the server should have re-raised before this\n"

    return generate()


def sleep(environ, start_response):
    milliseconds = int(_query(environ).get("ms", "100"))
    time.sleep(milliseconds / 1000.0)
    return _respond(start_response, b"slept %d ms\n" % milliseconds)


def pid(environ, start_response):
    return _json(
        start_response,
        {
            "pid": os.getpid(),
            "thread": threading.get_ident(),
            "thread_name": threading.current_thread().name,
        },
    )


def headers_injection(environ, start_response):
    where = _query(environ).get("in", "value")
    status = "200 OK"
    headers = [("Content-Type", "text/plain")]
    if where == "status":
        status = "200 OK\r\nX-Injected: status"
    elif where == "name":
        headers.append(("X-Injected: name\r\nX-Name", "1"))
    else:
        headers.append(("X-Note", "before\r\nX-Injected: value"))
    start_response(status, headers)
    return [b"the server sent a header with CRLF in it\n"]


def big(environ, start_response):
    query = _query(environ)
    size = int(query.get("bytes", "1048576"))
    chunk_size = max(1, int(query.get("chunk", "65536")))
    headers = [("Content-Type", "application/octet-stream")]
    if query.get("stream") != "1":
        headers.append(("Content-Length", str(size)))
    start_response("200 OK", headers)
    # Byte i of the body is BIG_PATTERN[i % 26] whatever the chunk size, so a client can check
    # any slice of it.
    repeated = BIG_PATTERN * (chunk_size // len(BIG_PATTERN) + 2)

    def generate():
        offset = 0
        while offset < size:
            length = min(chunk_size, size - offset)
            start = offset % len(BIG_PATTERN)
            yield repeated[start : start + length]
            offset += length

    return generate()


def status(environ, start_response):
    code = int(_query(environ).get("code", "204"))
    line = "%d %s" % (code, http.HTTPStatus(code).phrase)
    if code in (204, 304):
        start_response(line, [])
        return []
    return _respond(start_response, b"", status=line)


def uwsgi_info(environ, start_response):
    import uwsgi

    def plain(value):
        if isinstance(value, bytes):
            return value.decode("latin-1")
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(item) for item in value]
        return value

    return _json(
        start_response,
        plain(
            {
                "worker_id": uwsgi.worker_id(),
                "total_requests": uwsgi.total_requests(),
                "request_id": uwsgi.request_id(),
                "mem": uwsgi.mem(),
                "micros": uwsgi.micros(),
                "workers": uwsgi.workers(),
            }
        ),
    )


def _recurse(n):
    return 0 if n == 0 else 1 + sum(map(_recurse, [n - 1]))


def recurse(environ, start_response):
    depth = int(_query(environ).get("depth", "1000"))
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, depth + 100))
    try:
        reached = _recurse(depth)
    finally:
        sys.setrecursionlimit(limit)
    return _respond(start_response, b"%d\n" % reached)


def log(environ, start_response):
    message = _query(environ).get("msg", "wsgi_suite /log")
    errors = environ["wsgi.errors"]
    errors.write(message + "\n")
    errors.flush()
    if _query(environ).get("this") == "1":
        import uwsgi

        uwsgi.log_this_request()
    return _respond(start_response, b"logged\n")


ROUTES = {
    "/": index,
    "/env": env,
    "/echo": echo,
    "/echo-lines": echo_lines,
    "/stream": stream,
    "/write": write,
    "/close": close,
    "/file": file,
    "/error": error,
    "/exc-info": exc_info,
    "/sleep": sleep,
    "/pid": pid,
    "/headers-injection": headers_injection,
    "/big": big,
    "/status": status,
    "/log": log,
    "/recurse": recurse,
    "/uwsgi": uwsgi_info,
}


def application(environ, start_response):
    route = ROUTES.get(environ.get("PATH_INFO") or "/")
    if route is None:
        body = ("no route for %r\n" % environ.get("PATH_INFO")).encode()
        return _respond(start_response, body, status="404 Not Found")
    return route(environ, start_response)
