"""A lazy-apps app that spools through a task module the spooler imports by itself."""

import sys
import os

sys.path.insert(0, os.path.dirname(__file__))

import spooler_tasks  # noqa: E402


def application(environ, start_response):
    name = environ["QUERY_STRING"].partition("=")[2]
    path = spooler_tasks.imported_task.spool(name=name)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [path]
