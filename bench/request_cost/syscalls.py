#!/usr/bin/python3
"""Loopback clients for bench/request_cost (stdlib only).

  syscalls.py --wait PORT PATH SECONDS     until PATH answers 200
  syscalls.py --send PORT PATH N           N keep-alive requests on one connection
  syscalls.py --strace PORT PATH PGID N    N requests over 8 keep-alive connections while
                                           `strace -c -f` follows every process of group PGID;
                                           prints each system call's count per request

PORT may be a unix socket's path: then each request is a new connection carrying one uwsgi
packet, built as nginx's `uwsgi_pass` builds it (the uwsgi_params of bench/kbench/servers.py's
nginx_conf, then the client's headers), and the answer is read to EOF, as behind nginx.
PAUSE_MS=N waits N ms before each such connection (a server that is mostly idle).
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


def request(path):
    return f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: cost\r\nAccept: */*\r\n\r\n".encode()


def send(port, path, n):
    """N requests, each answer read whole (Content-Length) before the next; returns the 200s."""
    ok = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        for _ in range(n):
            conn.sendall(request(path))
            while True:
                end = buf.find(b"\r\n\r\n")
                if end >= 0:
                    head = buf[:end].lower()
                    at = head.find(b"content-length:")
                    length = int(head[at + 15:].split(b"\r\n")[0])
                    if len(buf) >= end + 4 + length:
                        ok += head.startswith(b"http/1.1 200")
                        buf = buf[end + 4 + length:]
                        break
                data = conn.recv(65536)
                if not data:
                    raise SystemExit("the server closed the connection")
                buf += data
    return ok


def uwsgi_packet(path):
    """One uwsgi packet (modifier 0) with the variables nginx sends for `GET path`."""
    params = [
        ("QUERY_STRING", ""), ("REQUEST_METHOD", "GET"), ("CONTENT_TYPE", ""),
        ("CONTENT_LENGTH", ""), ("REQUEST_URI", path), ("PATH_INFO", path),
        ("DOCUMENT_ROOT", "/usr/share/nginx/html"), ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"), ("REMOTE_ADDR", "127.0.0.1"), ("REMOTE_PORT", "41234"),
        ("SERVER_PORT", "8080"), ("SERVER_NAME", "localhost"),
        ("HTTP_HOST", "localhost:8080"), ("HTTP_USER_AGENT", "cost"), ("HTTP_ACCEPT", "*/*"),
    ]
    body = b"".join(
        len(k).to_bytes(2, "little") + k.encode() + len(v).to_bytes(2, "little") + v.encode()
        for k, v in params
    )
    return b"\x00" + len(body).to_bytes(2, "little") + b"\x00" + body


def send_uwsgi(sock_path, path, n):
    """N requests, each on a new unix-socket connection read to EOF; returns the 200s."""
    packet = uwsgi_packet(path)
    pause = float(os.environ.get("PAUSE_MS", "0")) / 1000
    ok = 0
    for _ in range(n):
        if pause:
            time.sleep(pause)  # an idle server: each connection finds the worker waiting
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(30)
            conn.connect(sock_path)
            conn.sendall(packet)
            answer = b""
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                answer += data
            ok += answer.startswith(b"HTTP/1.1 200")
    return ok


SEND = send  # the client for PORT's kind, set in main


def wait(port, path, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if SEND(port, path, 1) == 1:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"no 200 on port {port} within {seconds} s")


def group(pgid):
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[2]) == pgid:
                        pids.append(entry)
            except OSError:
                pass
    return pids


def strace(port, path, pgid, n, connections=8):
    SEND(port, path, 200)  # warm up
    with tempfile.NamedTemporaryFile(suffix=".strace") as out:
        argv = ["strace", "-c", "-f", "-o", out.name]
        for pid in group(pgid):
            argv += ["-p", pid]
        tracer = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        done = []
        threads = [
            threading.Thread(target=lambda: done.append(SEND(port, path, n // connections)))
            for _ in range(connections)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        tracer.send_signal(signal.SIGINT)
        tracer.wait()
        answered = sum(done)
        print(f"{answered} requests")
        for line in open(out.name).read().splitlines():
            fields = line.split()
            if len(fields) >= 5 and fields[3].isdigit():
                print(f"  {fields[-1]:16s} {int(fields[3]) / answered:7.3f}/req")
            elif line.strip().endswith("total"):
                print(f"  {'total':16s} {int(fields[2]) / answered:7.3f}/req")


if __name__ == "__main__":
    mode, port, path = sys.argv[1], sys.argv[2], sys.argv[3]
    if port.isdigit():
        port, SEND = int(port), send
    else:
        SEND = send_uwsgi
    if mode == "--wait":
        wait(port, path, float(sys.argv[4]))
    elif mode == "--send":
        SEND(port, path, int(sys.argv[4]))
    elif mode == "--strace":
        strace(port, path, int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]) if len(sys.argv) > 6 else 8)
    else:
        raise SystemExit(__doc__)
