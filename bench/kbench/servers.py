"""How each server and front end is started, made ready and stopped.

Every process is started in its own session, so its process group id is its pid: the
measurement reads that group from /proc and the stop signals that group, never a name.
Addresses are loopback TCP ports or unix sockets in a private temporary directory.

Front ends:
  http     the server speaks HTTP/1.1 keep-alive itself (uWSGI `--http11-socket`, gunicorn
           gthread, granian `--interface wsgi --http 1`, peregrine (HTTP/1.1 on a plain
           socket), kaiser `--http-socket`)
  nginx    nginx `uwsgi_pass` to the server's unix socket (uWSGI and kaiser only)
  ceiling  nginx answering a fixed string by itself: what this machine can drive at all
"""

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field

from . import client

WORKER_PROCESSES = 2
LISTEN_BACKLOG = 1024
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class ServerKind:
    name: str
    front_ends: tuple
    stop_signal: int
    reload_signal: int  # 0 when the server has no graceful reload
    # A master FIFO (`master-fifo`) on which `c` starts a chain reload: workers replaced one
    # at a time. gunicorn and granian have no chain reload.
    chain_reload: bool = False
    # Serves a directory of static files itself (`static-map`; nginx's `alias`).
    static_files: bool = False


SERVERS = {
    "kaiser": ServerKind("kaiser", ("http", "nginx", "nginx-fastcgi"), signal.SIGINT, signal.SIGHUP, chain_reload=True, static_files=True),
    # uWSGI 2.0 treats SIGTERM as a brutal reload; SIGINT stops it.
    "uwsgi": ServerKind("uwsgi", ("http", "nginx", "nginx-fastcgi"), signal.SIGINT, signal.SIGHUP, chain_reload=True, static_files=True),
    "gunicorn": ServerKind("gunicorn", ("http",), signal.SIGINT, signal.SIGHUP),
    "granian": ServerKind("granian", ("http",), signal.SIGINT, signal.SIGHUP),
    # A Swift server (issue 21); SIGINT stops it without its drain delay. No reload is measured.
    "peregrine": ServerKind("peregrine", ("http",), signal.SIGINT, 0),
    "nginx": ServerKind("nginx", ("ceiling",), signal.SIGTERM, 0, static_files=True),
}


@dataclass
class Tools:
    """Where the binaries are; made by install.py."""

    repo_root: str
    kaiser: str
    venv: str
    nginx: str
    wrk: str
    scratch: str  # a private temporary directory for sockets, nginx prefix and logs

    def venv_bin(self, name):
        return os.path.join(self.venv, "bin", name)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_argv(tools, kind, app, threads, front_end, address, master_fifo=None, lazy_apps=False, static_root=""):
    """The command line of one app server. `address` is a port (http) or a socket path (nginx).

    `master_fifo` and `lazy_apps` (kaiser and uWSGI only, the same option names in both) are
    given only to the deployments that measure a chain reload; `static_root` (likewise) only
    to the static-map cells, as `--static-map /static=DIR`, with uWSGI's defaults otherwise
    (no `offload-threads`: kaiser's default of one offload thread per worker is its own).
    """
    if (master_fifo or lazy_apps) and not SERVERS[kind].chain_reload:
        raise ValueError(f"`{kind}` has no master FIFO or lazy-apps")
    if static_root and not SERVERS[kind].static_files:
        raise ValueError(f"`{kind}` serves no static files")
    reload_options = (["--master-fifo", master_fifo] if master_fifo else []) + (
        ["--lazy-apps"] if lazy_apps else []
    ) + (["--static-map", f"/static={static_root}"] if static_root else [])
    if kind == "kaiser":
        listen = {"http": ["--http-socket", f"127.0.0.1:{address}"], "nginx": ["--socket", address],
                  "nginx-fastcgi": ["--fastcgi-socket", address]}[front_end]
        return [
            tools.kaiser, *listen, "--wsgi-file", app.wsgi_file, "--master",
            "--processes", str(WORKER_PROCESSES), "--threads", str(threads),
            "--home", tools.venv, "--disable-logging", "--listen", str(LISTEN_BACKLOG),
            *reload_options,
        ]
    if kind == "uwsgi":
        listen = {"http": ["--http11-socket", f"127.0.0.1:{address}"], "nginx": ["--socket", address],
                  "nginx-fastcgi": ["--fastcgi-socket", address]}[front_end]
        return [
            tools.venv_bin("uwsgi"), *listen, "--wsgi-file", app.wsgi_file, "--master",
            "--processes", str(WORKER_PROCESSES), "--threads", str(threads),
            "--home", tools.venv, "--disable-logging", "--listen", str(LISTEN_BACKLOG),
            "--need-app", *reload_options,
        ]
    if kind == "gunicorn":
        # gthread keeps HTTP/1.1 connections alive; the sync worker closes every one.
        return [
            tools.venv_bin("gunicorn"), "--bind", f"127.0.0.1:{address}",
            "--workers", str(WORKER_PROCESSES), "--worker-class", "gthread",
            "--threads", str(threads), "--backlog", str(LISTEN_BACKLOG),
            "--chdir", app.directory, "--log-level", "warning", app.target,
        ]
    if kind == "granian":
        return [
            tools.venv_bin("granian"), "--interface", "wsgi", "--http", "1", "--no-ws",
            "--host", "127.0.0.1", "--port", str(address),
            "--workers", str(WORKER_PROCESSES), "--blocking-threads", str(threads),
            "--backlog", str(LISTEN_BACKLOG), "--working-dir", app.directory,
            "--log-level", "warning", "--no-access-log", app.target,
        ]
    if kind == "peregrine":
        # Access log off by default; the app's directory is the working directory (spawn's cwd)
        # and goes on sys.path; the venv's own binary embeds /usr/bin/python3's libpython.
        return [
            tools.venv_bin("peregrine"), "--host", "127.0.0.1", "--port", str(address),
            "--workers", str(WORKER_PROCESSES), "--wsgi-threads", str(threads),
            "--protocol", "wsgi", "--backlog", str(LISTEN_BACKLOG),
            "--python-path", app.directory, "--log-level", "warning", app.target,
        ]
    raise ValueError(f"unknown server `{kind}`")


def nginx_conf(prefix, port, upstream_socket, static_root="", fastcgi=False):
    """An nginx config that either proxies to `upstream_socket` (uwsgi_pass, or with `fastcgi`
    fastcgi_pass keeping its upstream connections) or, without one, answers itself (and serves
    `static_root` at /static/, with sendfile, as a production nginx would)."""
    upstream = ""
    if upstream_socket and fastcgi:
        upstream = f"""
    upstream backend {{
        server unix:{upstream_socket};
        keepalive 32;
        keepalive_timeout 20s;
    }}"""
        location = """
            fastcgi_pass backend;
            fastcgi_keep_conn on;
            fastcgi_param QUERY_STRING $query_string;
            fastcgi_param REQUEST_METHOD $request_method;
            fastcgi_param CONTENT_TYPE $content_type;
            fastcgi_param CONTENT_LENGTH $content_length;
            fastcgi_param REQUEST_URI $request_uri;
            fastcgi_param PATH_INFO $document_uri;
            fastcgi_param DOCUMENT_ROOT $document_root;
            fastcgi_param SERVER_PROTOCOL $server_protocol;
            fastcgi_param REQUEST_SCHEME $scheme;
            fastcgi_param REMOTE_ADDR $remote_addr;
            fastcgi_param REMOTE_PORT $remote_port;
            fastcgi_param SERVER_PORT $server_port;
            fastcgi_param SERVER_NAME $server_name;
            fastcgi_max_temp_file_size 0;"""
    elif upstream_socket:
        location = f"""
            uwsgi_pass unix:{upstream_socket};
            uwsgi_param QUERY_STRING $query_string;
            uwsgi_param REQUEST_METHOD $request_method;
            uwsgi_param CONTENT_TYPE $content_type;
            uwsgi_param CONTENT_LENGTH $content_length;
            uwsgi_param REQUEST_URI $request_uri;
            uwsgi_param PATH_INFO $document_uri;
            uwsgi_param DOCUMENT_ROOT $document_root;
            uwsgi_param SERVER_PROTOCOL $server_protocol;
            uwsgi_param REQUEST_SCHEME $scheme;
            uwsgi_param REMOTE_ADDR $remote_addr;
            uwsgi_param REMOTE_PORT $remote_port;
            uwsgi_param SERVER_PORT $server_port;
            uwsgi_param SERVER_NAME $server_name;
            # Stream large responses through memory buffers instead of spilling them to temp
            # files, so the 1 MiB workload measures the app server rather than nginx's disk.
            uwsgi_max_temp_file_size 0;"""
    else:
        location = """
            default_type text/plain;
            return 200 "Hello World";"""
    static = ""
    if static_root and not upstream_socket:
        static = f"""
        location /static/ {{
            alias {static_root}/;
            sendfile on;
            tcp_nopush on;
        }}"""
    # Running as root, nginx's workers would otherwise drop to `nobody` and could not connect
    # to a socket the server created with the default umask.
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""
{user}
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    client_max_body_size 8m;
    client_body_buffer_size 128k;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;{upstream}
    server {{
        listen 127.0.0.1:{port} backlog={LISTEN_BACKLOG};
        location / {{{location}
        }}{static}
    }}
}}
"""


def _clean_env():
    env = dict(os.environ)
    for leaking in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
        env.pop(leaking, None)
    return env


@dataclass
class Process:
    label: str
    popen: subprocess.Popen
    log_path: str
    stop_signal: int

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def log_tail(self, lines=15):
        try:
            with open(self.log_path, errors="replace") as log:
                return "".join(log.readlines()[-lines:])
        except OSError:
            return ""


def spawn(label, argv, log_path, stop_signal, cpu=None, cwd=None):
    if cpu is not None:
        # taskset execs the server, so the pid below is the server's, and every process it
        # forks inherits the affinity.
        argv = ["taskset", "-c", str(cpu), *argv]
    log = open(log_path, "wb")
    try:
        popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=cwd, env=_clean_env(), start_new_session=True,
        )
    finally:
        log.close()
    return Process(label, popen, log_path, stop_signal)


def group_members(pgid):
    """Pids of every live process in process group `pgid`."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command name: state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def stop(process):
    """Stops one process group: its own stop signal to the leader, then SIGKILL to the group."""
    if process.alive():
        try:
            os.kill(process.pid, process.stop_signal)
        except ProcessLookupError:
            pass
        try:
            process.popen.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"  {process.label} (pid {process.pid}) ignored its stop signal; killing its group")
    # Whatever is left of the group (a worker the leader did not reap) goes too.
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        members = group_members(process.pid)
        if not members:
            break
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    if process.popen.poll() is None:
        process.popen.wait(timeout=5.0)


@dataclass
class Deployment:
    """A server (and nginx in front of it, if any), started and answering."""

    server: str
    front_end: str
    port: int  # where clients connect
    app_process: Process  # the process group whose CPU and memory are measured
    processes: list = field(default_factory=list)  # every group started, stop order
    first_response_ms: float = 0.0
    front_process: object = None  # nginx in front of the server (same core), if any

    def stop(self):
        for process in self.processes:
            stop(process)


class StartFailed(Exception):
    pass


def deploy(tools, server, front_end, app, threads, cpu, tag, master_fifo=None, lazy_apps=False, static_root=""):
    """Starts `server` for `app` behind `front_end`; returns when it answers 200 on `/`.

    `master_fifo`, `lazy_apps` and `static_root` go to the server's command line (see
    `server_argv`); `static_root` also to nginx when it is the server (the ceiling)."""
    log_dir = os.path.join(tools.scratch, "logs")
    os.makedirs(log_dir, exist_ok=True)
    port = free_port()
    started = time.monotonic()
    processes = []
    front_process = None
    try:
        if front_end == "ceiling":
            nginx = _start_nginx(tools, port, None, cpu, tag, log_dir, static_root)
            processes.append(nginx)
            app_process = nginx
        elif front_end == "http":
            app_process = spawn(
                server,
                server_argv(tools, server, app, threads, "http", port, master_fifo, lazy_apps, static_root),
                os.path.join(log_dir, f"{tag}.log"), SERVERS[server].stop_signal, cpu, app.directory,
            )
            processes.append(app_process)
        elif front_end in ("nginx", "nginx-fastcgi"):
            socket_path = os.path.join(tools.scratch, f"{tag}.sock")
            if os.path.exists(socket_path):
                os.unlink(socket_path)
            app_process = spawn(
                server,
                server_argv(tools, server, app, threads, front_end, socket_path, master_fifo, lazy_apps, static_root),
                os.path.join(log_dir, f"{tag}.log"), SERVERS[server].stop_signal, cpu, app.directory,
            )
            # nginx stops first so that it does not log the backend going away as errors.
            front_process = _start_nginx(
                tools, port, socket_path, cpu, tag, log_dir, fastcgi=front_end == "nginx-fastcgi"
            )
            processes.append(front_process)
            processes.append(app_process)
        else:
            raise ValueError(f"unknown front end `{front_end}`")
        alive = lambda: all(process.alive() for process in processes)
        answered = client.wait_for_200(port, "/", started + READY_TIMEOUT, alive)
    except (client.RequestFailed, OSError) as error:
        tails = "\n".join(f"--- {p.label} log ({p.log_path}):\n{p.log_tail()}" for p in processes)
        for process in processes:
            stop(process)
        raise StartFailed(f"{server} behind {front_end} did not start: {error}\n{tails}") from error
    return Deployment(
        server, front_end, port, app_process, processes, (answered - started) * 1000.0, front_process
    )


def _start_nginx(tools, port, upstream_socket, cpu, tag, log_dir, static_root="", fastcgi=False):
    prefix = os.path.join(tools.scratch, f"nginx-{tag}")
    os.makedirs(prefix, exist_ok=True)
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as out:
        out.write(nginx_conf(prefix, port, upstream_socket, static_root, fastcgi))
    return spawn(
        "nginx", [tools.nginx, "-p", prefix, "-c", conf],
        os.path.join(log_dir, f"{tag}-nginx.log"), signal.SIGTERM, cpu,
    )
