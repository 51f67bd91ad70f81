//! `raw-socket` with `python-raw` (uWSGI's raw mode) served by the real binary: the handler
//! gets each connection's fd and what it returns (bytes, a generator, a file, an fd) is
//! written back before the connection closes; it can write to the fd itself and find it
//! with `uwsgi.connection_fd()`. A handler that raises (or returns what cannot be sent)
//! closes only its connection, WSGI requests on another socket of the same server are
//! served, a server with only a raw handler runs, and a raw socket without `python-raw` is a
//! config error.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use common::*;

const HANDLER: &str = "tests/apps/raw_handler.py";

/// Sends `line` on a new connection to the raw socket and reads until the server closes.
fn raw(path: &Path, line: &str) -> Vec<u8> {
    let mut stream = UnixStream::connect(path).unwrap();
    stream.set_io_timeout(IO_TIMEOUT).unwrap();
    stream.write_all(line.as_bytes()).unwrap();
    let mut out = Vec::new();
    stream
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("reading the answer to {line:?}: {e}"));
    out
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

#[test]
fn a_raw_connection_gets_what_the_handler_returns() {
    let dir = TempDir::new("raw");
    let socket = dir.join("raw.sock");
    let (kaiser, addr) = start_http(&[
        "--raw-socket",
        socket.to_str().unwrap(),
        "--python-raw",
        HANDLER,
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
    ]);
    assert_eq!(text(raw(&socket, "echo hello\n")), "echo: hello\n");
    assert_eq!(text(raw(&socket, "gen 3\n")), "line 0\nline 1\nline 2\n");
    assert_eq!(
        text(raw(&socket, "write by hand\n")),
        "by hand and returned\n"
    );
    assert_eq!(text(raw(&socket, "conn\n")), "same fd\n");
    // The handler closed its connection (a socket object made with `fileno=fd` does when it
    // is collected) and the number now names one of its files: kaiser neither writes the
    // result there nor closes it.
    assert_eq!(text(raw(&socket, "socket\n")), "via socket\n");
    assert_eq!(text(raw(&socket, "reused\n")), "\"\"\"");
    let source = std::fs::read(HANDLER).unwrap();
    assert_eq!(
        raw(&socket, "file\n"),
        source,
        "a returned file is sent whole"
    );
    assert_eq!(raw(&socket, "fd\n"), source, "a returned fd is sent whole");

    // The WSGI app keeps serving its own socket.
    let env = http_get(addr, "/env?x=1").unwrap();
    assert_eq!(env.status, 200, "{env}");

    // Each raw connection is a request for the scoreboard and the request log.
    let line = kaiser
        .wait_for_log("generated 12 bytes", IO_TIMEOUT)
        .unwrap();
    assert!(line.contains("{0 vars in 0 bytes}"), "{line}");
}

#[test]
fn a_failing_handler_closes_only_its_connection() {
    let dir = TempDir::new("raw-fail");
    let socket = dir.join("raw.sock");
    let socket_arg = socket.display().to_string();
    // No WSGI app at all: the raw handler is enough.
    let kaiser = Kaiser::spawn(&["--raw-socket", &socket_arg, "--python-raw", HANDLER]);
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();

    assert_eq!(raw(&socket, "raise\n"), b"");
    kaiser
        .wait_for_log("raised on purpose by the raw handler", IO_TIMEOUT)
        .unwrap();
    assert_eq!(raw(&socket, "str\n"), b"");
    kaiser
        .wait_for_log("the python-raw handler gave a `str`", IO_TIMEOUT)
        .unwrap();
    assert_eq!(
        text(raw(&socket, "echo still here\n")),
        "echo: still here\n"
    );
}

#[test]
fn a_raw_socket_needs_python_raw() {
    let dir = TempDir::new("raw-config");
    let socket = dir.join("raw.sock").display().to_string();
    let mut kaiser = Kaiser::spawn(&[
        "--raw-socket",
        &socket,
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
    ]);
    let status = kaiser.expect_exit(START_TIMEOUT);
    assert!(!status.success(), "{status:?}\n{}", kaiser.logs());
    assert!(
        kaiser
            .logs()
            .contains("a raw socket needs `python-raw = FILE`"),
        "{}",
        kaiser.logs()
    );
}
