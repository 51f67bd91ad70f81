//! `post-buffering`: the whole request body is read before the app runs; beyond the
//! threshold it goes to an anonymous temp file, not memory; a body that never arrives whole
//! is answered 400 without calling the app.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::*;

fn sha256_hex(data: &[u8]) -> String {
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum runs");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn bodies_below_and_above_the_threshold_reach_the_app_whole() {
    let (_kaiser, addr) = start_http(&[
        "--wsgi-file",
        app("wsgi_suite_validated.py").to_str().unwrap(),
        "--post-buffering",
        "4096",
    ]);
    for size in [100usize, 300 * 1024] {
        let body: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let stream = TcpStream::connect(addr).unwrap();
        let raw = request_bytes(
            "POST",
            "/echo",
            &[
                ("Content-Type", "application/octet-stream"),
                ("Connection", "close"),
            ],
            &body,
        );
        let response = http_request(stream, &raw).unwrap();
        assert_eq!(response.status, 200, "{size}-byte body: {response}");
        assert_eq!(
            response.header("X-Body-Length"),
            Some(size.to_string().as_str()),
            "{size}-byte body"
        );
        assert_eq!(
            response.header("X-Body-Sha256"),
            Some(sha256_hex(&body).as_str()),
            "{size}-byte body"
        );
    }
}

#[test]
fn a_body_that_stops_short_is_a_400_and_the_app_is_not_called() {
    let (_kaiser, addr) = start_http(&[
        "--wsgi-file",
        app("wsgi_suite.py").to_str().unwrap(),
        "--post-buffering",
        "4096",
    ]);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\nonly these bytes",
        )
        .unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let response = HttpConn::new(stream).read_response(false).unwrap();
    assert_eq!(
        response.status, 400,
        "a truncated body under post-buffering: {response}"
    );
    assert!(
        response.text().contains("did not arrive whole"),
        "the 400 comes from kaiser, not the app: {response}"
    );
}
