"""Mules through the real `uwsgidecorators`: `@mulefunc` (any mule, and mule 2), a signal to
every mule, a farm. Events are lines in `$APP_OUT/events.log`: `KIND PID MULE_ID ARG`."""

import os
import time

import uwsgi
from uwsgidecorators import mulefunc, signal

OUT = os.environ["APP_OUT"]


def note(kind, arg=""):
    line = "%s %d %d %s\n" % (kind, os.getpid(), uwsgi.mule_id(), arg)
    fd = os.open(os.path.join(OUT, "events.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@mulefunc
def anywhere(name):
    note("anywhere", name)


@mulefunc(2)
def in_mule_two(name):
    note("two", name)


@mulefunc(1)
def stuck_forever(name):
    note("stuck", name)
    while True:
        time.sleep(1)


@signal(50, target="mules")
def to_every_mule(signum):
    note("signal", signum)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    arg = environ["QUERY_STRING"]
    body = b"ok"
    if path == "/anywhere":
        anywhere(arg)
    elif path == "/two":
        in_mule_two(arg)
    elif path == "/stuck":
        stuck_forever(arg)
    elif path == "/signal":
        uwsgi.signal(50)
    elif path == "/farm":
        body = str(uwsgi.mule_msg(arg.encode(), "scripted")).encode()
    elif path == "/mule_id":
        body = str(uwsgi.mule_id()).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
