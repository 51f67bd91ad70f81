"""An app with a request that never finishes in time, for harakiri and the stats server.

  /stuck?s=N        sleeps N seconds (default 60) inside `wait_for_the_slow_backend`,
                    the function a harakiri traceback must name
  /user-harakiri    sets `uwsgi.set_user_harakiri(1)`, then sleeps 60 s
  /regex            a catastrophic regular expression: C code that holds the GIL for ever
  /pid              the worker's pid, as JSON
  anything else     `Hello World`
"""

import json
import os
import re
import time
import urllib.parse

import uwsgi


def wait_for_the_slow_backend(seconds):
    time.sleep(seconds)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/stuck":
        wait_for_the_slow_backend(float(query.get("s", ["60"])[0]))
        body = b"finished\n"
    elif path == "/user-harakiri":
        uwsgi.set_user_harakiri(1)
        wait_for_the_slow_backend(60)
        body = b"finished\n"
    elif path == "/regex":
        # 2**40 backtracking steps inside `re`, which never releases the GIL.
        re.match(r"(a+)+$", "a" * 40 + "b")
        body = b"finished\n"
    elif path == "/pid":
        body = json.dumps({"pid": os.getpid()}).encode()
    else:
        body = b"Hello World"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
