#!/usr/bin/env python3
"""A stand-in for the kaiser vassal, speaking the emperor contract (src/emperor/mod.rs), so
the emperor can be tested before the real vassal exists. Used only when tests/emperor.rs sets
KAISER_VASSAL_EXE. Understands `http-socket`, `wsgi-file` (with `%d`) and, for tests that need
a misbehaving vassal, `standin-ignore-term = true`. A line that is not `key = value` is a
config error (exit 1); an app that does not import exits 22."""
import os, signal, socket, sys, threading, time, importlib.util
from wsgiref.simple_server import make_server, WSGIRequestHandler
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIServer

args = sys.argv[1:]
ini = args[args.index("--ini") + 1]
name = os.path.basename(ini).rsplit(".", 1)[0]
chan = socket.socket(fileno=int(os.environ["KAISER_EMPEROR_FD"]))


def log(msg):
    sys.stderr.write("[%s] %s\n" % (name, msg))
    sys.stderr.flush()


def send(msg):
    try:
        chan.send(msg.encode())
    except OSError:
        pass


def read_config():
    opts = {}
    with open(ini) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith(("#", ";")) or line.startswith("["):
                continue
            if "=" not in line:
                raise SyntaxError("%s line %d: expected `key = value`" % (ini, lineno))
            key, value = (part.strip() for part in line.split("=", 1))
            opts[key] = value.replace("%d", os.path.dirname(os.path.abspath(ini)) + "/")
    return opts


def load_app(opts):
    spec = importlib.util.spec_from_file_location("app", opts["wsgi-file"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.application


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


send("MAINPID=%d\nSTATUS=starting" % os.getpid())
try:
    opts = read_config()
except Exception as error:
    log("config error: %s" % error)
    sys.exit(1)
try:
    current = [load_app(opts)]
except Exception as error:
    log("app failed to import: %r" % error)
    sys.exit(22)
host, port = opts["http-socket"].rsplit(":", 1)
server = make_server(host, int(port), lambda e, s: current[0](e, s), server_class=Server, handler_class=QuietHandler)
threading.Thread(target=server.serve_forever, daemon=True).start()

flags = {"hup": False, "term": False}
signal.signal(signal.SIGHUP, lambda *_: flags.__setitem__("hup", True))
if opts.get("standin-ignore-term") == "true":
    signal.signal(signal.SIGTERM, lambda *_: log("ignoring SIGTERM"))
else:
    signal.signal(signal.SIGTERM, lambda *_: flags.__setitem__("term", True))
send("STATUS=serving on %s\nREADY=1" % opts["http-socket"])
log("ready")
chan.settimeout(0.05)
while True:
    try:
        if chan.recv(16) == b"":
            log("lost the emperor")
            sys.exit(1)
    except socket.timeout:
        pass
    if flags["term"]:
        send("STOPPING=1")
        log("stopping")
        server.shutdown()
        sys.exit(0)
    if flags["hup"]:
        flags["hup"] = False
        send("RELOADING=1")
        try:
            current[0] = load_app(read_config())
            send("STATUS=reloaded\nREADY=1")
            log("reloaded")
        except Exception as error:
            send("STATUS=reload failed, old app keeps serving: %s\nREADY=1" % error)
            log("reload failed: %s" % error)
