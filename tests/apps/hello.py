# A WSGI hello world (temporary copy from the emperor branch; the lead's version wins).
def application(environ, start_response):
    body = b"Hello World"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
