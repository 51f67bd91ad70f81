"""A sync WSGI app that drives asyncio the legacy way: `asyncio.get_event_loop()` and
`run_until_complete` inside the request, as views bridging an async client often do. Under
uWSGI's default (one thread) the request runs on the main thread, where that works.

  /   "from asyncio, loop N" where N counts the loops this thread has seen (1: one loop, kept)
"""

import asyncio
import threading

_seen = threading.local()


async def _answer():
    await asyncio.sleep(0)
    return "from asyncio"


def application(environ, start_response):
    loop = asyncio.get_event_loop()
    text = loop.run_until_complete(_answer())
    loops = getattr(_seen, "loops", set())
    loops.add(id(loop))
    _seen.loops = loops
    body = f"{text}, loop {len(loops)}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
