"""Writes to its own stdout and stderr on request, for the logging tests.

- `/print?n=N&size=S&tag=T&pause_ms=P`: N lines of S bytes on stderr, each line written in
  three pieces P ms apart (so a log master must join a writer's partial lines while other
  workers write theirs), then one line on stdout.
- `/status?code=C`: an empty response with that status.
- `/big?bytes=N`: N bytes in 64 KiB chunks (a client can hang up in the middle).
- `/logvar?key=K&value=V`: `uwsgi.set_logvar(K, V)`, answering what `get_logvar(K)` gives.
- anything else: `Hello World`.
"""

import sys
import time
from urllib.parse import parse_qs


def application(environ, start_response):
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    path = environ.get("PATH_INFO") or "/"
    if path == "/print":
        n = int(query.get("n", "1"))
        size = int(query.get("size", "40"))
        tag = query.get("tag", "chatty")
        pause = int(query.get("pause_ms", "0")) / 1000.0
        for i in range(n):
            head = "%s %d " % (tag, i)
            body = "x" * max(0, size - len(head) - 4)
            sys.stderr.write(head)
            sys.stderr.flush()
            if pause:
                time.sleep(pause)
            sys.stderr.write(body)
            sys.stderr.flush()
            if pause:
                time.sleep(pause)
            sys.stderr.write(" end\n")
            sys.stderr.flush()
        print("%s stdout" % tag, flush=True)
        body = b"printed\n"
    elif path == "/logvar":
        import uwsgi

        uwsgi.set_logvar(query["key"], query["value"])
        body = uwsgi.get_logvar(query["key"]) or b"none"
    elif path == "/big":
        total = int(query.get("bytes", "1000000"))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def chunks():
            sent = 0
            while sent < total:
                size = min(65536, total - sent)
                sent += size
                yield b"x" * size

        return chunks()
    elif path == "/status":
        code = int(query.get("code", "200"))
        start_response("%d Status" % code, [("Content-Length", "0")])
        return [b""]
    else:
        body = b"Hello World"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
