"""The spooler benchmark's app (bench/spooler): `/?N` spools N no-op tasks through
uwsgidecorators' `@spool` and answers how long that took, in seconds."""

import time

from uwsgidecorators import spool


@spool
def task(arguments):
    pass


def application(environ, start_response):
    count = int(environ["QUERY_STRING"] or 1)
    started = time.perf_counter()
    for index in range(count):
        task.spool(index=str(index))
    elapsed = time.perf_counter() - started
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%.6f" % elapsed).encode()]
