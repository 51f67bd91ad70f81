"""Says which instance answered (`env = WHOAMI=…`), the Host it was asked for, and echoes the
request body: the fastrouter tests tell their backends apart by it."""

import os


def application(environ, start_response):
    body = environ["wsgi.input"].read()
    text = "%s host=%s body=%s" % (
        os.environ.get("WHOAMI", "?"),
        environ.get("HTTP_HOST", ""),
        body.decode("latin-1"),
    )
    data = text.encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
