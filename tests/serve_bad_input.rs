//! Bad input closes that one connection, with a 4xx where a response is still possible and
//! a log line, and the same worker goes on serving: malformed and oversized HTTP heads and
//! uwsgi packets, broken chunking, truncated and slow bodies, an app's header injection, an
//! app that raises.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

/// One worker with one thread, so "the same worker keeps serving" is the only worker, and an
/// http-socket plus a uwsgi socket on loopback.
fn start(extra: &[&str]) -> (Kaiser, SocketAddr, SocketAddr) {
    let mut args = vec![
        "--http-socket",
        "127.0.0.1:0",
        "--socket",
        // Another loopback address: the config layer refuses two sockets on `127.0.0.1:0`.
        "127.0.0.2:0",
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--processes",
        "1",
    ];
    args.extend_from_slice(extra);
    let kaiser = Kaiser::spawn(&args);
    let http = kaiser
        .wait_for_addr("protocol=\"http\"", START_TIMEOUT)
        .unwrap();
    let uwsgi = kaiser
        .wait_for_addr("protocol=\"uwsgi\"", START_TIMEOUT)
        .unwrap();
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    (kaiser, http, uwsgi)
}

fn worker_pid(addr: SocketAddr) -> String {
    let response = http_get(addr, "/pid").unwrap();
    assert_eq!(
        response.status, 200,
        "the worker stopped serving: {response}"
    );
    let text = response.text();
    text.split("\"pid\": ")
        .nth(1)
        .and_then(|rest| rest.split([',', '}']).next())
        .unwrap_or_else(|| panic!("no pid in {text}"))
        .to_owned()
}

/// Sends `raw`, optionally half-closes, and returns everything the server sent until it
/// closed the connection (or fails if it keeps it open past `timeout`).
fn exchange(addr: SocketAddr, raw: &[u8], half_close: bool, timeout: Duration) -> Vec<u8> {
    let mut stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
    stream.set_read_timeout(Some(timeout)).unwrap();
    // The server may close before reading it all; a failed write is fine.
    let _ = stream.write_all(raw);
    if half_close {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!(
                "the server did not close the connection after {:?}: {e}; got {:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(200)]),
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

fn status_of(reply: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(reply).ok()?;
    text.strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))?
        .get(..3)?
        .parse()
        .ok()
}

#[test]
fn malformed_http_heads_get_a_4xx_and_a_log_line_and_the_worker_keeps_serving() {
    let (kaiser, http, _) = start(&["--buffer-size", "4096"]);
    let pid = worker_pid(http);
    let long_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(5000)
    );
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("a head larger than buffer-size", long_header.into_bytes(), 431),
        (
            "Content-Length with Transfer-Encoding",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            400,
        ),
        ("a bare LF line ending", b"GET / HTTP/1.1\nHost: x\n\n".to_vec(), 400),
        ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(), 400),
        ("an unknown HTTP version", b"GET / HTTP/2.0\r\n\r\n".to_vec(), 505),
        (
            "differing Content-Lengths",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(),
            400,
        ),
        (
            "obs-fold",
            b"GET / HTTP/1.1\r\nX-A: 1\r\n  folded\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a header with CR inside (request-side injection)",
            b"GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n".to_vec(),
            400,
        ),
    ];
    for (what, raw, expected) in cases {
        let mark = kaiser.log_mark();
        let reply = exchange(http, &raw, false, Duration::from_secs(5));
        assert_eq!(
            status_of(&reply),
            Some(expected),
            "{what}: expected {expected}, got {:?}",
            String::from_utf8_lossy(&reply)
        );
        kaiser
            .wait_for_log_since(mark, "bad HTTP request", Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{what}: no log line: {e}"));
        assert_eq!(worker_pid(http), pid, "{what}: the worker changed");
    }
}

#[test]
fn broken_request_bodies_close_the_connection_and_the_worker_keeps_serving() {
    let (kaiser, http, _) = start(&["--socket-timeout", "1"]);
    let pid = worker_pid(http);

    // Invalid chunk framing: the app sees a read error; the client gets a 400 (nothing sent
    // yet) and the connection closes.
    let mark = kaiser.log_mark();
    let reply = exchange(
        http,
        b"POST /echo?mode=eof HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        false,
        Duration::from_secs(5),
    );
    let status = status_of(&reply);
    assert!(
        matches!(status, Some(400..=499)),
        "invalid chunking: expected a 4xx, got {:?}",
        String::from_utf8_lossy(&reply)
    );
    assert!(
        String::from_utf8_lossy(&reply).contains("Connection: close\r\n"),
        "a response after a broken body must announce the close: {:?}",
        String::from_utf8_lossy(&reply)
    );
    kaiser
        .wait_for_log_since(mark, "chunk", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("invalid chunking: no log line: {e}"));
    assert_eq!(worker_pid(http), pid);

    // A body shorter than its Content-Length, the client then half-closing.
    let mark = kaiser.log_mark();
    let reply = exchange(
        http,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b",
        true,
        Duration::from_secs(5),
    );
    let status = status_of(&reply);
    assert!(
        matches!(status, Some(400..=499)) || reply.is_empty(),
        "truncated body: expected a 4xx or a plain close, got {:?}",
        String::from_utf8_lossy(&reply)
    );
    kaiser
        .wait_for_log_since(mark, "body", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("truncated body: no log line: {e}"));
    assert_eq!(worker_pid(http), pid);

    // A body that stops arriving: socket-timeout (1 s) frees the thread.
    let started = Instant::now();
    let reply = exchange(
        http,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nslow",
        false,
        Duration::from_secs(10),
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "a stalled body held the worker for {:?}",
        started.elapsed()
    );
    let status = status_of(&reply);
    assert!(
        matches!(status, Some(400..=499)) || reply.is_empty(),
        "stalled body: expected a 4xx or a plain close, got {:?}",
        String::from_utf8_lossy(&reply)
    );
    assert_eq!(worker_pid(http), pid);

    // A head that stops arriving: closed after socket-timeout, with a log line.
    let mark = kaiser.log_mark();
    let started = Instant::now();
    let _ = exchange(
        http,
        b"GET / HTTP/1.1\r\nHost: sl",
        false,
        Duration::from_secs(10),
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "a stalled head held the connection"
    );
    kaiser
        .wait_for_log_since(mark, "socket-timeout", Duration::from_secs(5))
        .unwrap();
    assert_eq!(worker_pid(http), pid);
}

#[test]
fn header_injection_from_the_app_is_refused_with_a_500() {
    let (kaiser, http, uwsgi) = start(&[]);
    let pid = worker_pid(http);
    for place in ["value", "name", "status"] {
        let mark = kaiser.log_mark();
        let target = format!("/headers-injection?in={place}");
        let mut conn = HttpConn::new(wait_for_connect(http, START_TIMEOUT).unwrap());
        let response = conn
            .request(&request_bytes("GET", &target, &[], b""))
            .unwrap();
        assert_eq!(response.status, 500, "injection in the {place}: {response}");
        assert!(
            response.header("X-Injected").is_none() && !response.text().contains("X-Injected"),
            "the injected header got through: {response}"
        );
        kaiser
            .wait_for_log_since(mark, "headers-injection", Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("injection in the {place}: no log line: {e}"));
        // Over the uwsgi protocol too.
        let stream = wait_for_connect(uwsgi, START_TIMEOUT).unwrap();
        let response = uwsgi_request(stream, &cgi_vars("GET", &target, None, &[]), b"").unwrap();
        assert_eq!(
            response.status, 500,
            "uwsgi, injection in the {place}: {response}"
        );
        assert!(response.header("X-Injected").is_none(), "{response}");
    }
    assert_eq!(worker_pid(http), pid);
}

#[test]
fn an_app_exception_is_a_500_with_the_traceback_in_the_log() {
    let (kaiser, http, _) = start(&[]);
    let mark = kaiser.log_mark();
    let mut conn = HttpConn::new(wait_for_connect(http, START_TIMEOUT).unwrap());
    let response = conn
        .request(&request_bytes("GET", "/error", &[], b""))
        .unwrap();
    assert_eq!(response.status, 500, "{response}");
    kaiser
        .wait_for_log_since(
            mark,
            "Traceback (most recent call last)",
            Duration::from_secs(5),
        )
        .unwrap();
    kaiser
        .wait_for_log_since(
            mark,
            "RuntimeError: wsgi_suite /error raised this on purpose",
            Duration::from_secs(5),
        )
        .unwrap();
    // A clean 500 keeps the connection.
    let response = conn
        .request(&request_bytes("GET", "/sleep?ms=1", &[], b""))
        .unwrap();
    assert_eq!(
        response.status, 200,
        "after a 500 on the same connection: {response}"
    );
}

/// A uwsgi packet header: modifier1, size (LE), modifier2.
fn uwsgi_header(modifier1: u8, size: u16, modifier2: u8) -> Vec<u8> {
    let mut header = vec![modifier1];
    header.extend_from_slice(&size.to_le_bytes());
    header.push(modifier2);
    header
}

#[test]
fn malformed_uwsgi_packets_close_the_connection_with_a_log_line() {
    let (kaiser, http, uwsgi) = start(&["--buffer-size", "4096"]);
    let pid = worker_pid(http);
    let mut oversized = uwsgi_header(0, 60000, 0);
    oversized.extend(vec![0u8; 100]);
    let mut zero_key = uwsgi_header(0, 6, 0);
    zero_key.extend_from_slice(&[0, 0, 2, 0, b'h', b'i']);
    let mut overlong_value = uwsgi_header(0, 8, 0);
    overlong_value.extend_from_slice(&[1, 0, b'A', 200, 0, b'x', b'y', b'z']);
    // `CONTENT_LENGTH: 12abc`: where the body ends would be a guess.
    let mut bad_length = uwsgi_header(0, 23, 0);
    bad_length.extend_from_slice(&[14, 0]);
    bad_length.extend_from_slice(b"CONTENT_LENGTH");
    bad_length.extend_from_slice(&[5, 0]);
    bad_length.extend_from_slice(b"12abc");
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("a non-numeric CONTENT_LENGTH", bad_length, false),
        ("a packet larger than buffer-size", oversized, false),
        ("a zero-length key", zero_key, false),
        ("a value running past the packet", overlong_value, false),
        ("a packet cut short", uwsgi_header(0, 100, 0), true),
    ];
    for (what, raw, half_close) in cases {
        let mark = kaiser.log_mark();
        let reply = exchange(uwsgi, &raw, half_close, Duration::from_secs(5));
        assert!(
            reply.is_empty() || matches!(status_of(&reply), Some(400..=499)),
            "{what}: expected a close or a 4xx, got {:?}",
            String::from_utf8_lossy(&reply)
        );
        if !half_close {
            kaiser
                .wait_for_log_since(mark, "uwsgi packet", Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("{what}: no log line: {e}"));
        }
        assert_eq!(worker_pid(http), pid, "{what}: the worker changed");
    }
    // And a good packet still works.
    let stream = wait_for_connect(uwsgi, START_TIMEOUT).unwrap();
    let response = uwsgi_request(stream, &cgi_vars("GET", "/sleep?ms=1", None, &[]), b"").unwrap();
    assert_eq!(response.status, 200, "{response}");
    let _ = TcpStream::connect(uwsgi);
}

/// `limit-post`: a body declared larger is answered 413 over HTTP and over the uwsgi protocol
/// without the app reading it; a chunked one is stopped with 413 when it passes the limit,
/// read by the app or by `post-buffering`. Bodies within the limit arrive whole.
#[test]
fn limit_post_answers_413_for_larger_bodies_and_the_worker_keeps_serving() {
    for extra in [&[][..], &["--post-buffering", "4096"][..]] {
        let mut args = vec!["--limit-post", "1000"];
        args.extend_from_slice(extra);
        let (kaiser, http, uwsgi) = start(&args);
        let pid = worker_pid(http);
        let post = |length: usize| {
            let mut raw = format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
            )
            .into_bytes();
            raw.extend(std::iter::repeat_n(b'x', length));
            raw
        };
        let within = exchange(http, &post(1000), false, IO_TIMEOUT);
        assert_eq!(
            status_of(&within),
            Some(200),
            "{extra:?}: {}",
            String::from_utf8_lossy(&within)
        );
        let over = exchange(http, &post(1001), false, IO_TIMEOUT);
        assert_eq!(
            status_of(&over),
            Some(413),
            "{extra:?}: {}",
            String::from_utf8_lossy(&over)
        );
        assert!(String::from_utf8_lossy(&over).contains("limit-post"));

        let chunk = format!("{:x}\r\n{}\r\n", 600, "y".repeat(600));
        let chunked = format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunk}{chunk}0\r\n\r\n"
        );
        let reply = exchange(http, chunked.as_bytes(), false, IO_TIMEOUT);
        assert_eq!(
            status_of(&reply),
            Some(413),
            "{extra:?} chunked: {}",
            String::from_utf8_lossy(&reply)
        );

        let mut packet = post_echo_packet(5000);
        packet.extend(std::iter::repeat_n(b'z', 5000));
        let reply = exchange(uwsgi, &packet, false, IO_TIMEOUT);
        assert_eq!(
            status_of(&reply),
            Some(413),
            "{extra:?} uwsgi: {}",
            String::from_utf8_lossy(&reply)
        );

        assert_eq!(worker_pid(http), pid, "{extra:?}: the worker changed");
        // The line may follow the answer by a moment: wait for it.
        kaiser
            .wait_for_log("limit-post", START_TIMEOUT)
            .unwrap_or_else(|e| panic!("no log line names limit-post: {e}"));
    }
}

/// An error answered before the body is read (here `limit-post`'s 413) reaches a client that
/// writes its whole body before reading, as most HTTP libraries and nginx do: kaiser reads and
/// drops the rest instead of closing on unread bytes, which would reset the connection under
/// the client's feet. Over HTTP and over the uwsgi protocol.
#[test]
fn an_early_error_reaches_a_client_still_sending_its_body() {
    const BODY: usize = 4 << 20;
    let (_kaiser, http, uwsgi) = start(&["--limit-post", "1000"]);
    let pid = worker_pid(http);
    let head = format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {BODY}\r\n\r\n");
    for (addr, start) in [(http, head.into_bytes()), (uwsgi, post_echo_packet(BODY))] {
        let mut stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.write_all(&start).unwrap();
        let body = vec![b'x'; BODY];
        stream
            .write_all(&body)
            .unwrap_or_else(|e| panic!("{addr}: the server reset the connection mid-body: {e}"));
        let mut reply = Vec::new();
        stream
            .read_to_end(&mut reply)
            .unwrap_or_else(|e| panic!("{addr}: reading the answer: {e}"));
        assert_eq!(
            status_of(&reply),
            Some(413),
            "{addr}: {}",
            String::from_utf8_lossy(&reply)
        );
    }
    assert_eq!(worker_pid(http), pid, "the worker changed");
}

/// The head of a uwsgi-protocol `POST /echo` that declares a body of `length` bytes.
fn post_echo_packet(length: usize) -> Vec<u8> {
    uwsgi_packet(
        0,
        0,
        &[
            ("REQUEST_METHOD", "POST"),
            ("PATH_INFO", "/echo"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("CONTENT_LENGTH", &length.to_string()),
        ],
    )
}

/// Details gunicorn's request-parsing corpus found (files named from its `invalid/` folder):
/// each is refused with its status and a log line, `OPTIONS *` still works, and the worker
/// goes on serving.
#[test]
fn singleton_content_type_final_chunked_and_asterisk_form_are_enforced() {
    let (kaiser, http, _) = start(&[]);
    let pid = worker_pid(http);
    let cases: Vec<(&str, &[u8], u16, &str)> = vec![
        (
            "a second Content-Type",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
            400,
            "Content-Type",
        ),
        (
            "Transfer-Encoding not ending in chunked (chunked_08)",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            400,
            "does not end in `chunked`",
        ),
        (
            "Transfer-Encoding: gzip alone (chunked_06)",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nhello",
            400,
            "does not end in `chunked`",
        ),
        (
            "GET * (rfc9112_target_asterisk_non_options_01)",
            b"GET * HTTP/1.1\r\nHost: example.com\r\n\r\n",
            400,
            "OPTIONS",
        ),
        (
            "a chunk size with trailing whitespace (chunked_09)",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0 \r\n\r\n",
            400,
            "chunk size",
        ),
    ];
    for (what, raw, expected, logged) in cases {
        let mark = kaiser.log_mark();
        let reply = exchange(http, raw, false, Duration::from_secs(5));
        assert_eq!(
            status_of(&reply),
            Some(expected),
            "{what}: expected {expected}, got {:?}",
            String::from_utf8_lossy(&reply)
        );
        kaiser
            .wait_for_log_since(mark, logged, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{what}: no log line naming {logged:?}: {e}"));
        assert_eq!(worker_pid(http), pid, "{what}: the worker changed");
    }
    // `chunked` last after a coding kaiser does not know stays a 501.
    let reply = exchange(
        http,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        false,
        Duration::from_secs(5),
    );
    assert_eq!(
        status_of(&reply),
        Some(501),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let mut conn = HttpConn::new(wait_for_connect(http, START_TIMEOUT).unwrap());
    let response = conn
        .request(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(response.status, 200, "OPTIONS *: {response}");
}
