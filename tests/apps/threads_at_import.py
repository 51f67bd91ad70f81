"""An app that starts a thread while being imported.

Forking a process that has more than one thread deadlocks sooner or later (the child keeps
only the forking thread, while locks held by the others stay locked). A preforking server
must therefore refuse to preload this app and point at `lazy-apps`, which imports it in each
worker after the fork.
"""

import threading

_stop = threading.Event()
_started = threading.Event()


def _background():
    _started.set()
    _stop.wait()


_thread = threading.Thread(target=_background, name="started-at-import", daemon=True)
_thread.start()
_started.wait()


def application(environ, start_response):
    body = ("threads at import: %d alive\n" % threading.active_count()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
