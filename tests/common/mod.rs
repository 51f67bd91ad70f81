//! The harness every integration test uses: start the real `kaiser` binary and real peers
//! (nginx, a `NOTIFY_SOCKET` listener, Python's wsgiref), talk HTTP/1.1 and the uwsgi protocol
//! to them, and wait on real readiness signals with timeouts.
//!
//! Rules it keeps, so tests can rely on them:
//! - every wait has a timeout and fails with what it expected, what it saw, and the logs of
//!   the processes involved; nothing here sleeps for a fixed time to "let things settle";
//! - every process is started in its own process group and killed with it on drop, so a
//!   failing test leaves no worker behind;
//! - nothing depends on a fixed port: unix sockets live in a [`TempDir`], TCP servers bind
//!   port 0 and report the address they got.
//!
//! It is std only (plus `libc`), so that it builds wherever the crate builds. Each test
//! binary uses a subset of it, hence the `dead_code` allowance.
#![allow(
    dead_code,
    unused_imports,
    reason = "each integration test binary includes this module and uses only part of it"
)]

mod http;
mod nginx;
mod notify;
mod paths;
mod process;
mod start;
mod tempdir;
mod uwsgi;
mod wait;
mod wsgiref;

pub use http::{
    http_get, http_get_unix, http_request, request_bytes, BodyFraming, Connection, HttpConn,
    Response, IO_TIMEOUT,
};
pub use nginx::{uwsgi_params, Nginx};
pub use notify::NotifyListener;
pub use paths::{app, apps_dir, kaiser_bin, nginx_bin, repo_root, venv, venv_python};
pub use process::{strip_ansi, Kaiser, LoggedProcess};
pub use start::{in_flight, read_rest, start_http, start_http_with, Site};
pub use tempdir::TempDir;
pub use uwsgi::{cgi_vars, uwsgi_packet, uwsgi_request, uwsgi_vars};
pub use wait::{
    expected_big_body, parse_socket_addrs, wait_for_connect, wait_for_unix, wait_until,
    START_TIMEOUT,
};
pub use wsgiref::WsgirefServer;
