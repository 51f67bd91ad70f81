//! The app's Content-Length never goes out unchecked, and response bytes never spill past
//! the end of a response into the next one on a keep-alive connection: duplicated, signed,
//! invalid and conflicting Content-Length headers from the app, `write()` called from the
//! iterable's `close()`, and a body longer than its declared length (tests/apps/faults.py).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

fn start() -> (Kaiser, SocketAddr) {
    start_http(&["--wsgi-file", "tests/apps/faults.py", "--processes", "1"])
}

fn get(target: &str) -> Vec<u8> {
    request_bytes("GET", target, &[("Host", "x")], b"")
}

/// A second request on the same connection, which must find a clean response.
fn follow_up(conn: &mut HttpConn<std::net::TcpStream>, what: &str) {
    let response = conn
        .request(&get("/pid"))
        .unwrap_or_else(|e| panic!("{what}: the next response on the connection: {e}"));
    assert_eq!(
        response.status, 200,
        "{what}: the next response: {response}"
    );
    assert!(
        response.text().trim().parse::<u32>().is_ok(),
        "{what}: the next response carries foreign bytes: {response}"
    );
}

#[test]
fn the_apps_content_length_is_parsed_strictly_and_sent_once() {
    let (kaiser, addr) = start();
    // Equal values are one value; whitespace and leading zeros are normalised away; a
    // generator's length comes from the header alone.
    for (query, length) in [
        ("cl=5&cl=5", "5"),
        ("cl=5&cl=05&gen=1", "5"),
        ("cl=%205%20", "5"),
    ] {
        let mut conn = HttpConn::new(wait_for_connect(addr, START_TIMEOUT).unwrap());
        let response = conn
            .request(&get(&format!("/content-length?{query}")))
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        assert_eq!(response.status, 200, "{query}: {response}");
        assert_eq!(
            response.headers_named("Content-Length"),
            [length],
            "{query}: exactly one Content-Length must go out: {response}"
        );
        assert_eq!(response.text(), "hello", "{query}: {response}");
        follow_up(&mut conn, query);
    }
    // Signed, listed, non-numeric and conflicting values are the app's error: a 500 and a
    // log line naming the header, never a head a client could read two ways.
    for query in [
        "cl=%2B5",
        "cl=5,5",
        "cl=abc",
        "cl=abc&gen=1",
        "cl=5&cl=6",
        "cl=5&cl=5&cl=6&gen=1",
    ] {
        let mark = kaiser.log_mark();
        let mut conn = HttpConn::new(wait_for_connect(addr, START_TIMEOUT).unwrap());
        let response = conn
            .request(&get(&format!("/content-length?{query}")))
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        assert_eq!(response.status, 500, "{query}: {response}");
        assert!(
            response.headers_named("Content-Length").len() <= 1,
            "{query}: {response}"
        );
        kaiser
            .wait_for_log_since(mark, "`Content-Length`", Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{query}: no log line naming the header: {e}"));
        follow_up(&mut conn, query);
    }
}

#[test]
fn write_after_the_response_and_an_overlong_body_do_not_spill_into_the_next_response() {
    let (kaiser, addr) = start();
    for target in ["/write-after", "/write-after?length=1", "/longer"] {
        let mark = kaiser.log_mark();
        let mut conn = HttpConn::new(wait_for_connect(addr, START_TIMEOUT).unwrap());
        let response = conn
            .request(&get(target))
            .unwrap_or_else(|e| panic!("{target}: {e}"));
        assert_eq!(response.status, 200, "{target}: {response}");
        assert!(
            !response.text().contains("spilled"),
            "{target}: bytes written after the end went out: {response}"
        );
        if target == "/longer" {
            // Cut at its Content-Length; the rest is dropped and the connection closes.
            assert_eq!(response.text(), "yyyyy", "{response}");
            conn.expect_closed(Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("{target}: {e}"));
            continue;
        }
        // Whatever the worker still sends for the first response lands where the
        // follow-up's response is read.
        follow_up(&mut conn, target);
        if target.starts_with("/write-after") {
            kaiser
                .wait_for_log_since(
                    mark,
                    "after its response was complete",
                    Duration::from_secs(5),
                )
                .unwrap_or_else(|e| panic!("{target}: no log line: {e}"));
        }
    }
}
