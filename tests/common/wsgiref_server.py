"""Serve one WSGI app with wsgiref.simple_server on 127.0.0.1 at a free port, wrapped in
wsgiref.validate.validator (unless --no-validate) with its warnings turned into errors.
Prints "wsgiref serving on 127.0.0.1:PORT" once listening. Used by tests/common/wsgiref.rs.

    python wsgiref_server.py --wsgi-file PATH [--callable NAME] [--pythonpath DIR]... [--no-validate]
    python wsgiref_server.py --module PKG.MOD [--callable NAME] [--pythonpath DIR]...
"""

import argparse
import importlib
import importlib.util
import os
import sys
import warnings
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.validate import WSGIWarning, validator


class Handler(WSGIRequestHandler):
    # HTTP/1.1 would make wsgiref keep connections open; it cannot frame bodies for that.
    protocol_version = "HTTP/1.0"

    def log_message(self, format, *args):
        sys.stderr.write("wsgiref request: %s\n" % (format % args))


def load(args):
    for directory in args.pythonpath:
        sys.path.insert(0, os.path.abspath(directory))
    if args.wsgi_file:
        path = os.path.abspath(args.wsgi_file)
        sys.path.insert(0, os.path.dirname(path))
        name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(args.module)
    return getattr(module, args.callable)


def main():
    parser = argparse.ArgumentParser()
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--wsgi-file")
    source.add_argument("--module")
    parser.add_argument("--callable", default="application")
    parser.add_argument("--pythonpath", action="append", default=[])
    parser.add_argument("--no-validate", action="store_true")
    args = parser.parse_args()

    # A spec warning is a failure, not a line nobody reads.
    warnings.simplefilter("error", WSGIWarning)
    app = load(args)
    if not args.no_validate:
        app = validator(app)
    server = make_server("127.0.0.1", 0, app, server_class=WSGIServer, handler_class=Handler)
    host, port = server.server_address[:2]
    print("wsgiref serving on %s:%d" % (host, port), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
