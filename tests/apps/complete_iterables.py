"""Response iterables that declare their Content-Length, for PEP 3333's "stop iterating when
enough data has been sent" (tests/serve_wsgi.rs). Each reports on stderr what the server did
with it:

  /object     an iterable object (not a generator) that would yield a second, surplus chunk:
              logs "asked for more" if the server calls next() past Content-Length, and
              "object closed" when the server calls close()
  /generator  a generator that logs "after the last yield" once it is iterated to the end,
              and "generator closed early" if the server closes it before that
"""
import sys


def log(message):
    print(message, file=sys.stderr, flush=True)


class Body:
    def __init__(self, chunks):
        self.chunks = list(chunks)

    def __iter__(self):
        return self

    def __next__(self):
        if not self.chunks:
            raise StopIteration
        if len(self.chunks) == 1:
            log("asked for more")
        return self.chunks.pop(0)

    def close(self):
        log("object closed")


def generator():
    try:
        yield b"hello"
    except GeneratorExit:
        log("generator closed early")
        raise
    log("after the last yield")


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    if environ["PATH_INFO"] == "/generator":
        return generator()
    return Body([b"hel", b"lo", b"surplus"])
