//! `raw-socket` with `python-raw` (uWSGI's raw mode) served by the real binary: the handler
//! gets each connection's fd and what it returns (bytes, a generator, a file, an fd) is
//! written back before the connection closes; it can write to the fd itself and find it
//! with `uwsgi.connection_fd()`. A handler that raises (or returns what cannot be sent)
//! closes only its connection, WSGI requests on another socket of the same server are
//! served, a server with only a raw handler runs, a raw socket without `python-raw` is a
//! config error, and a raw TCP socket does not defer the accept (a server may speak first).

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

/// `TCP_DEFER_ACCEPT` of the listening socket `fd` of process `pid`, read through a copy of
/// the fd (`pidfd_getfd`; the test is the server's parent, so it may).
fn defer_accept_of(pid: i32, fd: i32) -> i32 {
    // SAFETY: plain system calls on integers; every fd opened here is closed here.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as i32;
        assert!(
            pidfd >= 0,
            "pidfd_open: {}",
            std::io::Error::last_os_error()
        );
        let copy = libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) as i32;
        let error = std::io::Error::last_os_error();
        libc::close(pidfd);
        assert!(copy >= 0, "pidfd_getfd: {error}");
        let mut value: libc::c_int = -1;
        let mut length = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let got = libc::getsockopt(
            copy,
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&mut value as *mut libc::c_int).cast(),
            &mut length,
        );
        let error = std::io::Error::last_os_error();
        libc::close(copy);
        assert_eq!(got, 0, "getsockopt(TCP_DEFER_ACCEPT): {error}");
        value
    }
}

/// The fd number the master logged for the listener of `protocol`.
fn listener_fd(kaiser: &Kaiser, protocol: &str) -> i32 {
    kaiser
        .wait_for_line(
            0,
            &format!("the listening line of the {protocol} socket"),
            START_TIMEOUT,
            |line| {
                if !line.contains(&format!("protocol=\"{protocol}\"")) {
                    return None;
                }
                line.split_whitespace()
                    .find_map(|word| word.strip_prefix("fd=")?.parse().ok())
            },
        )
        .unwrap()
}

#[test]
fn a_server_that_speaks_first_is_not_deferred() {
    // `greet` answers without reading: its client sends nothing. With TCP_DEFER_ACCEPT (as
    // kaiser's other TCP sockets have) the kernel would hold the connection back for
    // seconds, waiting for data that never comes.
    let (kaiser, _) = start_http(&[
        "--raw-socket",
        "127.0.0.1:0",
        "--python-raw",
        HANDLER,
        "--callable",
        "greet",
    ]);
    assert_eq!(
        defer_accept_of(kaiser.pid(), listener_fd(&kaiser, "raw")),
        0
    );
    assert_ne!(
        defer_accept_of(kaiser.pid(), listener_fd(&kaiser, "http")),
        0
    );
    let addr = kaiser
        .wait_for_addr("protocol=\"raw\"", START_TIMEOUT)
        .unwrap();
    let mut stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
    stream.set_io_timeout(IO_TIMEOUT).unwrap();
    let mut greeting = String::new();
    stream.read_to_string(&mut greeting).unwrap();
    assert_eq!(greeting, "hello from the server\n");
}
