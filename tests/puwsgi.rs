//! `puwsgi-socket` (persistent uwsgi) served by the real binary, talked to with a raw client:
//! several requests on one connection (a POST body, an unread body that holds a packet, two
//! packets in one write, HEAD), a response of unknown length that ends with the connection,
//! a malformed packet that closes only its own connection, an idle connection that does not
//! hold the only worker thread, the idle `socket-timeout`, a graceful reload that finishes
//! the request under way and closes idle connections without a byte, and nginx's
//! `uwsgi_pass` (one request per connection), which must not wait for a close.

mod common;

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use common::*;

/// A WSGI request packet for `method uri` with `body` (`CONTENT_LENGTH` set from it).
fn packet(method: &str, uri: &str, body: &[u8]) -> Vec<u8> {
    let length = (!body.is_empty()).then_some(body.len());
    let vars = cgi_vars(method, uri, length, &[]);
    let borrowed: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut packet = uwsgi_packet(0, 0, &borrowed);
    packet.extend_from_slice(body);
    packet
}

fn connect(path: &Path) -> HttpConn<UnixStream> {
    let stream = UnixStream::connect(path).unwrap();
    stream.set_io_timeout(IO_TIMEOUT).unwrap();
    HttpConn::new(stream)
}

/// Sends one request on `conn` and reads its response.
fn ask(conn: &mut HttpConn<UnixStream>, method: &str, uri: &str, body: &[u8]) -> Response {
    conn.send(&packet(method, uri, body)).unwrap();
    conn.read_response(method == "HEAD")
        .unwrap_or_else(|error| panic!("{method} {uri}: {error}"))
}

fn start(dir: &TempDir, extra: &[&str]) -> Kaiser {
    let socket = dir.join("p.sock").display().to_string();
    let mut args = vec![
        "--puwsgi-socket",
        socket.as_str(),
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
    ];
    args.extend_from_slice(extra);
    let kaiser = Kaiser::spawn(&args);
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    kaiser
}

#[test]
fn several_requests_share_one_connection() {
    let dir = TempDir::new("puwsgi");
    let kaiser = start(&dir, &[]);
    let mut conn = connect(&dir.join("p.sock"));

    let first = ask(&mut conn, "GET", "/env?n=1", b"");
    assert_eq!(first.status, 200, "{first}");
    assert_eq!(
        first.framing,
        BodyFraming::ContentLength(first.body.len() as u64)
    );
    assert!(
        first.text().contains("\"QUERY_STRING\": \"n=1\""),
        "{first}"
    );
    // The bytes uWSGI writes on a puwsgi socket: no Connection header, nothing chunked.
    assert_eq!(first.header("Connection"), None, "{first}");

    let body = b"a body on a persistent connection";
    let echoed = ask(&mut conn, "POST", "/echo", body);
    assert_eq!(echoed.status, 200, "{echoed}");
    assert_eq!(echoed.body, body, "{echoed}");

    // A body the app never reads is a body, not the next packet (uWSGI's puwsgi would parse
    // it as one: unbit/uwsgi#2336).
    let smuggled = packet("GET", "/status?code=418", b"");
    let unread = ask(&mut conn, "POST", "/env?n=2", &smuggled);
    assert_eq!(unread.status, 200, "{unread}");
    let after = ask(&mut conn, "GET", "/env?n=3", b"");
    assert_eq!(
        after.status, 200,
        "the unread body was served as a request: {after}"
    );
    assert!(
        after.text().contains("\"QUERY_STRING\": \"n=3\""),
        "{after}"
    );

    // Two packets in one write: two responses, in order.
    let mut two = packet("GET", "/env?n=4", b"");
    two.extend_from_slice(&packet("GET", "/env?n=5", b""));
    conn.send(&two).unwrap();
    for n in [4, 5] {
        let response = conn.read_response(false).unwrap();
        assert!(
            response
                .text()
                .contains(&format!("\"QUERY_STRING\": \"n={n}\"")),
            "pipelined request {n}: {response}"
        );
    }

    let head = ask(&mut conn, "HEAD", "/env", b"");
    assert_eq!(head.status, 200, "{head}");
    assert!(head.body.is_empty(), "{head}");

    // A response whose length nobody knows ends with the connection.
    let streamed = ask(&mut conn, "GET", "/stream?chunks=3", b"");
    assert_eq!(streamed.framing, BodyFraming::UntilClose, "{streamed}");
    assert_eq!(streamed.text(), "chunk 0\nchunk 1\nchunk 2\n");
    conn.expect_closed(IO_TIMEOUT).unwrap();

    // Request lines reach the log after their responses: wait for the four (n=1, 3, 4, 5),
    // then check that no fifth (a body taken for a packet) came with them.
    wait_until("the request lines", START_TIMEOUT, |last| {
        *last = kaiser.logs();
        Ok((last.matches("GET /env?n=").count() >= 4).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    kaiser
        .wait_for_log("GET /stream?chunks=3", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let lines = kaiser.logs().matches("GET /env?n=").count();
    assert_eq!(lines, 4, "request lines:\n{}", kaiser.logs());
}

#[test]
fn a_malformed_packet_closes_only_its_connection() {
    let dir = TempDir::new("puwsgi-bad");
    let _kaiser = start(&dir, &["--threads", "2"]);
    let mut good = connect(&dir.join("p.sock"));
    assert_eq!(ask(&mut good, "GET", "/env?n=1", b"").status, 200);

    // The vars block claims a 255-byte key in 4 bytes.
    let mut bad = connect(&dir.join("p.sock"));
    bad.send(&[0, 4, 0, 0, 0xff, 0, b'a', b'b']).unwrap();
    bad.expect_closed(IO_TIMEOUT).unwrap();

    let again = ask(&mut good, "GET", "/env?n=2", b"");
    assert!(
        again.text().contains("\"QUERY_STRING\": \"n=2\""),
        "{again}"
    );
}

#[test]
fn an_idle_connection_does_not_hold_the_only_thread() {
    let dir = TempDir::new("puwsgi-fair");
    // One worker with one thread, and an idle timeout far beyond the test's waits.
    let _kaiser = start(&dir, &["--socket-timeout", "60"]);
    let mut first = connect(&dir.join("p.sock"));
    assert_eq!(ask(&mut first, "GET", "/env?n=1", b"").status, 200);
    // `first` stays open and quiet: the thread must not wait on it for its next packet.
    let mut second = connect(&dir.join("p.sock"));
    assert_eq!(ask(&mut second, "GET", "/env?n=2", b"").status, 200);
    assert_eq!(ask(&mut first, "GET", "/env?n=3", b"").status, 200);
    assert_eq!(ask(&mut second, "GET", "/env?n=4", b"").status, 200);
}

#[test]
fn an_idle_connection_closes_after_socket_timeout() {
    let dir = TempDir::new("puwsgi-idle");
    // HTTP keep-alive connections wait at least 30 s; a persistent uwsgi one `socket-timeout`.
    let _kaiser = start(&dir, &["--socket-timeout", "1"]);
    let mut conn = connect(&dir.join("p.sock"));
    assert_eq!(ask(&mut conn, "GET", "/env", b"").status, 200);
    conn.expect_closed(Duration::from_secs(10)).unwrap();
}

#[test]
fn a_graceful_reload_finishes_the_request_and_closes_idle_connections() {
    let dir = TempDir::new("puwsgi-reload");
    let kaiser = start(&dir, &["--socket-timeout", "60", "--threads", "2"]);
    let mut idle = connect(&dir.join("p.sock"));
    assert_eq!(ask(&mut idle, "GET", "/env?n=1", b"").status, 200);
    let mut busy = connect(&dir.join("p.sock"));
    assert_eq!(ask(&mut busy, "GET", "/env?n=2", b"").status, 200);
    // A request under way when the reload comes: the reload's config check takes longer
    // than the worker takes to read it.
    busy.send(&packet("GET", "/sleep?ms=1500", b"")).unwrap();

    let mark = kaiser.log_mark();
    kaiser.signal(libc::SIGHUP);
    let slept = busy.read_response(false).unwrap();
    assert_eq!(slept.text(), "slept 1500 ms\n", "{slept}");
    busy.expect_closed(START_TIMEOUT).unwrap();
    idle.expect_closed(START_TIMEOUT).unwrap();

    kaiser
        .wait_for_log_since(mark, ": reloaded in ", START_TIMEOUT)
        .unwrap();
    let mut fresh = connect(&dir.join("p.sock"));
    assert_eq!(ask(&mut fresh, "GET", "/env?n=3", b"").status, 200);
}

#[test]
fn nginx_uwsgi_pass_to_a_puwsgi_socket() {
    let dir = TempDir::new("puwsgi-nginx");
    // An idle timeout far beyond the client's: nginx must not wait for the close.
    let _kaiser = start(&dir, &["--socket-timeout", "60"]);
    let nginx = Nginx::start(&format!(
        "location / {{ include uwsgi_params; uwsgi_pass unix:{}; }}",
        dir.join("p.sock").display()
    ));
    let env = http_get(nginx.addr(), "/env?via=nginx").unwrap();
    assert_eq!(env.status, 200, "{env}");
    assert!(
        env.text().contains("\"QUERY_STRING\": \"via=nginx\""),
        "{env}"
    );
    let body = b"posted through nginx";
    let stream = wait_for_connect(nginx.addr(), START_TIMEOUT).unwrap();
    let echoed = http_request(
        stream,
        &request_bytes("POST", "/echo", &[("Connection", "close")], body),
    )
    .unwrap();
    assert_eq!(echoed.body, body, "{echoed}");
}

/// `static-map` files over a persistent connection: framed by Content-Length with no
/// `Connection` header (the uwsgi protocol's head), and the connection serves the next
/// request, static or app.
#[test]
fn static_files_share_a_persistent_connection() {
    let dir = TempDir::new("puwsgi-static");
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.txt"), b"static bytes\n").unwrap();
    let map = format!("/files={}", root.display());
    let _kaiser = start(&dir, &["--static-map", &map]);
    let mut conn = connect(&dir.join("p.sock"));
    for _ in 0..2 {
        let file = ask(&mut conn, "GET", "/files/a.txt", b"");
        assert_eq!(file.status, 200, "{file}");
        assert_eq!(file.body, b"static bytes\n", "{file}");
        assert_eq!(file.framing, BodyFraming::ContentLength(13), "{file}");
        assert_eq!(file.header("Connection"), None, "{file}");
    }
    let app = ask(&mut conn, "GET", "/env?after=static", b"");
    assert_eq!(app.status, 200, "{app}");
}

/// The two other ways a static file leaves: handed to an offload thread (a file larger than
/// the socket takes) and answered through routes. Both keep a persistent connection, as the
/// request thread's own answer does.
#[test]
fn offloaded_and_routed_static_files_keep_the_connection() {
    let dir = TempDir::new("puwsgi-static-offload");
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let big: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), &big).unwrap();
    std::fs::write(root.join("a.txt"), b"static bytes\n").unwrap();
    let map = format!("/files={}", root.display());
    let kaiser = start(
        &dir,
        &[
            "--static-map",
            &map,
            "--route",
            "^/files/a addheader:X-Routed: yes",
        ],
    );
    let mut conn = connect(&dir.join("p.sock"));
    let file = ask(&mut conn, "GET", "/files/big.bin", b"");
    assert_eq!(file.status, 200, "{file}");
    assert!(file.body == big, "the offloaded file arrived changed");
    let line = kaiser
        .wait_for_log("GET /files/big.bin", START_TIMEOUT)
        .unwrap();
    assert!(line.contains(" via offload() "), "{line}");
    let routed = ask(&mut conn, "GET", "/files/a.txt", b"");
    assert_eq!(routed.status, 200, "{routed}");
    assert_eq!(routed.header("X-Routed"), Some("yes"), "{routed}");
    assert_eq!(routed.body, b"static bytes\n", "{routed}");
    let app = ask(&mut conn, "GET", "/env?after=routed", b"");
    assert_eq!(app.status, 200, "{app}");
}
