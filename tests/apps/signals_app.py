"""uWSGI signals, timers and the other decorators, through the real `uwsgidecorators`.

Every event is a line in `$APP_OUT/events.log`: `KIND PID WORKER_ID TIME …`.
"""

import json
import os
import time

import uwsgi
from uwsgidecorators import cron, filemon, harakiri, postfork, rpc, signal, thread, timer

OUT = os.environ["APP_OUT"]


def note(kind, *rest):
    line = " ".join([kind, str(os.getpid()), str(uwsgi.worker_id()), "%.3f" % time.time()]
                    + [str(r) for r in rest])
    fd = os.open(os.path.join(OUT, "events.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@timer(1)
def tick(signum):
    note("tick", signum)


@signal(42, target="workers")
def broadcast(signum):
    note("broadcast", signum)


@signal(43, target="worker2")
def second_only(signum):
    note("second", signum)


@signal(44, target="workers")
def awaited(signum):
    note("awaited", signum)


@signal(7)
def option_timer(signum):
    # Raised by the `timer = 7 1` option, not by the app.
    note("optiontimer", signum)


@filemon(os.path.join(OUT, "watched"))
def watched_changed(signum):
    note("filemon", signum)


@cron(-1, -1, -1, -1, -1)
def every_minute(signum):
    note("cron", signum)


@postfork
def after_fork():
    note("postfork")


@thread
def in_background(name):
    note("thread", name)


@rpc("hello")
def hello(who):
    return b"hello " + who


@harakiri(1)
def too_slow():
    time.sleep(30)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = dict(
        part.split("=", 1) for part in environ["QUERY_STRING"].split("&") if "=" in part
    )
    body = "ok"
    if path == "/raise":
        uwsgi.signal(int(query["n"]))
    elif path == "/thread":
        in_background(query["name"])
    elif path == "/sleep":
        open(os.path.join(OUT, "sleeping"), "w").close()
        time.sleep(float(query["s"]))
    elif path == "/slow":
        too_slow()
    elif path == "/rpc":
        uwsgi.setprocname("kaiser-renamed")
        body = json.dumps([
            uwsgi.rpc("", "hello", b"rpc").decode(),
            uwsgi.call("hello", b"call").decode(),
            [name.decode() for name in uwsgi.rpc_list()],
            open("/proc/self/comm").read().strip(),
        ])
    elif path == "/wait":
        open(os.path.join(OUT, "waiting"), "w").close()
        uwsgi.signal_wait(44)
        body = str(uwsgi.signal_received())
    elif path == "/accepting":
        uwsgi.accepting(query["v"] == "1")
    elif path == "/registered":
        body = json.dumps([uwsgi.signal_registered(n) for n in (0, 1, 2, 42, 43, 200)])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
