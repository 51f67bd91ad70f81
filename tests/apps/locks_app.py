"""Locks through `import uwsgi` and the real `uwsgidecorators.lock` from PyPI.

`/increment` does a read-modify-write of `$APP_OUT/counter` under `@lock`, with a pause in
the middle, so that without a lock shared by every worker, concurrent increments lose
updates.
"""

import json
import os
import time

import uwsgi
from uwsgidecorators import lock

COUNTER = os.path.join(os.environ["APP_OUT"], "counter")


@lock
def increment():
    value = int(open(COUNTER).read()) if os.path.exists(COUNTER) else 0
    time.sleep(0.002)
    with open(COUNTER, "w") as f:
        f.write(str(value + 1))
    return value + 1


def unlocked_increment():
    value = int(open(COUNTER).read()) if os.path.exists(COUNTER) else 0
    time.sleep(0.002)
    with open(COUNTER, "w") as f:
        f.write(str(value + 1))
    return value + 1


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = dict(
        part.split("=", 1) for part in environ["QUERY_STRING"].split("&") if "=" in part
    )
    number = int(query.get("n", 0))
    status = "200 OK"
    if path == "/increment":
        body = str(increment())
    elif path == "/unlocked-increment":
        body = str(unlocked_increment())
    elif path == "/lock-and-die":
        uwsgi.lock(number)
        os._exit(3)
    elif path == "/hold":
        # Takes the lock, reports, and keeps it until /release-file exists.
        uwsgi.lock(number)
        try:
            open(os.path.join(os.environ["APP_OUT"], "holding"), "w").close()
            while not os.path.exists(os.path.join(os.environ["APP_OUT"], "release")):
                time.sleep(0.01)
        finally:
            uwsgi.unlock(number)
        body = "released"
    elif path == "/is-locked":
        body = json.dumps(uwsgi.is_locked(number))
    elif path == "/lock-twice":
        uwsgi.lock(number)
        try:
            uwsgi.lock(number)
            body = "locked twice"
        except RuntimeError as error:
            body = "RuntimeError: %s" % error
        finally:
            uwsgi.unlock(number)
    elif path == "/bad-lock":
        try:
            uwsgi.lock(number)
            uwsgi.unlock(number)
            body = "locked"
        except ValueError as error:
            body = "ValueError: %s" % error
    else:
        status, body = "404 Not Found", "no such page"
    start_response(status, [("Content-Type", "text/plain")])
    return [body.encode()]
