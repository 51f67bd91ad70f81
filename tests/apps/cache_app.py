"""The shared cache through `import uwsgi` (`cache2`, legacy `cache`)."""

import json
import os

import time

import uwsgi


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = dict(
        part.split("=", 1) for part in environ["QUERY_STRING"].split("&") if "=" in part
    )
    cache = query.get("cache")
    result = None
    if path == "/set":
        stored = uwsgi.cache_update(query["key"], query["value"], int(query.get("expires", 0)), cache)
        result = {"pid": os.getpid(), "stored": stored}
    elif path == "/hold":
        # Keeps this worker busy until the test lets it go.
        out, name = os.environ["APP_OUT"], query["name"]
        open(os.path.join(out, "holding-%s-%d" % (name, os.getpid())), "w").close()
        while not os.path.exists(os.path.join(out, "release-" + name)):
            time.sleep(0.01)
        result = os.getpid()
    elif path == "/get":
        value = uwsgi.cache_get(query["key"], cache)
        result = {"pid": os.getpid(), "value": value.decode() if value is not None else None}
    elif path == "/die":
        os._exit(5)
    elif path == "/ops":
        # The API's answers, as uWSGI's plugin gives them.
        c = cache
        result = [
            uwsgi.cache_set("a", b"1", 0, c),
            uwsgi.cache_set("a", b"2", 0, c),
            uwsgi.cache_get("a", c),
            uwsgi.cache_update("a", "3", 0, c),
            uwsgi.cache_get("a", c),
            uwsgi.cache_exists("a", c),
            uwsgi.cache_exists("nope", c),
            uwsgi.cache_append("a", b"4", 0, c),
            uwsgi.cache_prepend("a", b"2", 0, c),
            uwsgi.cache_get("a", c),
            uwsgi.cache_inc("n", 5, 0, c),
            uwsgi.cache_inc("n", 1, 0, c),
            uwsgi.cache_dec("n", 2, 0, c),
            uwsgi.cache_mul("n", 10, 0, c),
            uwsgi.cache_div("n", 4, 0, c),
            uwsgi.cache_num("n", c),
            uwsgi.cache_inc("a", 1, 0, c),
            sorted(uwsgi.cache_keys(c)),
            uwsgi.cache_del("a", c),
            uwsgi.cache_del("a", c),
            uwsgi.cache_get("a", c),
            uwsgi.cache_set("big", b"x" * 100000, 0, c),
            uwsgi.cache_clear(c),
            uwsgi.cache_keys(c),
            uwsgi.cache_get("a", "no-such-cache"),
        ]
        result = [r.decode() if isinstance(r, bytes) else r for r in result]
        result = [[k.decode() for k in r] if isinstance(r, list) else r for r in result]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(result).encode()]
