"""A gevent-monkey-patched app, as apps written for uWSGI's `gevent = N` are, patched the way
kaiser's README asks (`thread=False`): gevent's patched locks cannot be shared by real threads
(with `thread=True` three of four concurrent requests deadlock in gevent's Semaphore), while
patched sockets and sleeps work on each thread's own hub.

Each request drops a file in `GEVENT_BARRIER_DIR` and waits (with the patched `time.sleep`)
until `GEVENT_BARRIER` requests are in, so it answers `together` only when that many are
served at once, and `alone` after 10 s otherwise.
"""

from gevent import monkey

monkey.patch_all(thread=False)

import os  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

BARRIER_DIR = os.environ["GEVENT_BARRIER_DIR"]
BARRIER = int(os.environ.get("GEVENT_BARRIER", "4"))


def application(environ, start_response):
    open(os.path.join(BARRIER_DIR, uuid.uuid4().hex), "w").close()
    deadline = time.time() + 10
    while len(os.listdir(BARRIER_DIR)) < BARRIER and time.time() < deadline:
        time.sleep(0.01)
    together = len(os.listdir(BARRIER_DIR)) >= BARRIER
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"together" if together else b"alone"]
