"""Spooler tasks imported with `spooler-import` (seed 002's layout): under `lazy-apps` the
spooler has no app, only what this file registers."""

import os

from uwsgidecorators import spool


@spool
def imported_task(arguments):
    fd = os.open(os.path.join(os.environ["APP_OUT"], "runs.log"),
                 os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, ("done %s %d\n" % (arguments["name"], os.getpid())).encode())
    finally:
        os.close(fd)
