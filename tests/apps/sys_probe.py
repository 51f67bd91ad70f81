"""Answers with how the interpreter was started: `sys.flags.no_site` and `sys.path`
(tests/config_survey_options.rs checks `no-site` and `pythonpath` globs with it)."""

import json
import sys


def application(environ, start_response):
    body = json.dumps({"no_site": sys.flags.no_site, "path": sys.path}).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]
