"""An app with a bug real apps have: it hands `write()` to a thread of its own and returns
before that thread is done. `/late` writes 8 MiB from such a thread; anything else is
`Hello World`. The worker must survive it (it used to abort)."""

import os
import threading


def application(environ, start_response):
    if environ["PATH_INFO"] == "/late":
        write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
        started = threading.Event()

        def writer():
            started.set()
            try:
                write(b"x" * (8 << 20))
            except OSError:
                pass

        threading.Thread(target=writer, daemon=True).start()
        started.wait()
        return []
    body = f"Hello World from {os.getpid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
