"""A `python-raw` handler (uWSGI's raw mode) for tests/raw_socket.rs.

`application(fd)` gets each `raw-socket` connection's fd. It reads one command line from it
and answers by what it returns (or writes itself):

    echo TEXT   returns [b"echo: TEXT\\n"]
    file        returns this file, open (sent whole with sendfile)
    fd          returns the fd of this file as an int
    gen N       returns a generator of N lines
    write TEXT  writes TEXT to the fd itself, then returns b" and returned\\n"
    conn        returns b"same fd\\n" when uwsgi.connection_fd() is the fd it was given
    socket      answers through socket.socket(fileno=fd) and closes that socket (as it
                would when collected), then opens this file under the same fd number
    reused      returns the first 3 bytes of the file `socket` opened: the server must
                not have closed that fd number after the `socket` connection
    raise       raises RuntimeError
    str         returns a str (not sendable: an error is logged)

A WSGI `application` in the same process is not needed: raw connections never reach one.
"""

import os
import select
import socket

THIS_FILE = os.path.abspath(__file__)


def _read_line(fd):
    # The fd is non-blocking, as uWSGI hands it over: wait for it.
    data = b""
    while not data.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], 10)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


def application(fd):
    command, _, argument = _read_line(fd).partition(" ")
    if command == "echo":
        return [b"echo: " + argument.encode() + b"\n"]
    if command == "file":
        return open(THIS_FILE, "rb")
    if command == "fd":
        application.kept = open(THIS_FILE, "rb")
        return application.kept.fileno()
    if command == "gen":
        return (b"line %d\n" % index for index in range(int(argument)))
    if command == "write":
        os.write(fd, argument.encode())
        return b" and returned\n"
    if command == "conn":
        import uwsgi

        return b"same fd\n" if uwsgi.connection_fd() == fd else b"another fd\n"
    if command == "socket":
        conn = socket.socket(fileno=fd)
        conn.sendall(b"via socket\n")
        conn.close()
        reopened = os.open(THIS_FILE, os.O_RDONLY)
        if reopened != fd:
            os.dup2(reopened, fd)
            os.close(reopened)
        application.reused = os.fdopen(fd, "rb")
        return b"returned after the close\n"
    if command == "reused":
        return [application.reused.read(3)]
    if command == "raise":
        raise RuntimeError("raised on purpose by the raw handler")
    if command == "str":
        return "not bytes"
    return [b"unknown command\n"]


def greet(fd):
    """A server that speaks first: its client sends nothing."""
    return b"hello from the server\n"
