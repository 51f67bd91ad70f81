"""An app that keeps its request's `start_response`, `write`, `wsgi.input` and environ past
the request, and uses them in a later one: kaiser reuses these objects between the requests
of a thread, and must not when the app still holds them.

  /keep   keeps them, answers "kept"
  /use    calls the kept ones, then answers 200 with what each call did
"""

kept = {}


def application(environ, start_response):
    if environ["PATH_INFO"] == "/keep":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        kept.update(start_response=start_response, write=write, environ=environ,
                    input=environ["wsgi.input"])
        return [b"kept"]
    seen = []
    if kept:
        try:
            kept["start_response"]("500 Stolen", [("X-Stolen", "yes")])
            seen.append("start_response: accepted")
        except Exception as err:
            seen.append(f"start_response: {type(err).__name__}")
        try:
            kept["write"](b"LEAKED")
            seen.append("write: accepted")
        except Exception as err:
            seen.append(f"write: {type(err).__name__}")
        seen.append(f"input: {kept['input'].read()!r}")
        seen.append(f"same input: {kept['input'] is environ['wsgi.input']}")
    body = "\n".join(seen).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
