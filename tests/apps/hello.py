"""The smallest WSGI app: `Hello World`, 11 bytes of text/plain. Used by most tests and by bench/."""


def application(environ, start_response):
    body = b"Hello World"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
