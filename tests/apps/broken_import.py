"""An app whose import fails: the server must report this traceback at startup (need-app)
instead of starting workers that answer 500 to everything."""

raise RuntimeError("broken_import.py fails at import time on purpose")


def application(environ, start_response):  # never reached
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"unreachable"]
