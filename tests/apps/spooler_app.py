"""A uWSGI app using the real `uwsgidecorators` from PyPI: spooler tasks.

Every task run is recorded as a line in `$APP_OUT/runs.log`: `start NAME PID` when a task
begins and `done NAME PID` when it returns, so a test can count how often each task ran.
"""

import json
import os
import time

import uwsgi
from uwsgidecorators import spool, spoolraw

OUT = os.environ["APP_OUT"]


def note(line):
    # One write per line, O_APPEND: lines from several processes do not interleave.
    fd = os.open(os.path.join(OUT, "runs.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def wait_for_release(name):
    # A blocking task: it says it started, then waits until the test lets it finish.
    marker = os.path.join(OUT, "started-%s-%d" % (name, os.getpid()))
    open(marker, "w").close()
    while not os.path.exists(os.path.join(OUT, "release-" + name)):
        time.sleep(0.02)


@spool
def record(arguments):
    name = arguments["name"]
    note("start %s %d" % (name, os.getpid()))
    if arguments.get("block"):
        wait_for_release(name)
    if arguments.get("cwd"):
        note("cwd %s %s" % (name, os.getcwd()))
    if arguments.get("body") is not None:
        note("body %s %s" % (name, arguments["body"]))
    note("done %s %d" % (name, os.getpid()))


@spool(pass_arguments=True)
def with_args(name, count, extra=None):
    note("start %s %d" % (name, os.getpid()))
    note("args %s %r %r" % (name, count, extra))
    note("done %s %d" % (name, os.getpid()))


@spoolraw
def raw(arguments):
    name = arguments["name"]
    attempts_file = os.path.join(OUT, "attempts-" + name)
    attempts = int(open(attempts_file).read()) if os.path.exists(attempts_file) else 0
    attempts += 1
    with open(attempts_file, "w") as f:
        f.write(str(attempts))
    note("start %s %d" % (name, os.getpid()))
    if attempts < 2:
        # Not yet: run me again.
        return uwsgi.SPOOL_RETRY
    note("done %s %d" % (name, os.getpid()))
    return uwsgi.SPOOL_OK


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = dict(
        part.split("=", 1) for part in environ["QUERY_STRING"].split("&") if "=" in part
    )
    body = b""
    if path == "/spool":
        kwargs = dict(query)
        if "at_in" in kwargs:
            kwargs["at"] = str(int(time.time()) + int(kwargs.pop("at_in")))
        if "payload" in kwargs:
            kwargs["body"] = kwargs.pop("payload").encode()
        body = record.spool(**kwargs)
    elif path == "/spool-args":
        body = with_args.spool(query["name"], 3, extra={"k": [1, 2]})
    elif path == "/spool-raw":
        body = raw.spool(name=query["name"])
    elif path == "/spool-direct":
        # uwsgi.spool() itself, with a dict of bytes and a raw body.
        body = uwsgi.spool({b"ud_spool_func": b"record", b"name": query["name"].encode(),
                            b"ud_spool_ret": b"-2", "body": b"raw-body"})
    elif path == "/spooler":
        body = json.dumps({
            "pid": uwsgi.spooler_pid(),
            "pids": uwsgi.spooler_pids(),
            "jobs": [job.decode() for job in uwsgi.spooler_jobs()],
            "spoolers": [d.decode() for d in uwsgi.spoolers],
            "i_am_the_spooler": uwsgi.i_am_the_spooler(),
        }).encode()
    elif path == "/task":
        task = uwsgi.spooler_get_task(query["path"])
        body = json.dumps({
            (k.decode() if isinstance(k, bytes) else k): v.decode() for k, v in task.items()
        }).encode()
    elif path == "/pid":
        body = json.dumps({"pid": os.getpid(), "worker": uwsgi.worker_id()}).encode()
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such page"]
    if isinstance(body, str):
        body = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
