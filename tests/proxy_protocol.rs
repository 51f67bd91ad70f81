//! `enable-proxy-protocol`: a load balancer's PROXY header (v1 text, v2 binary) before the
//! first request on an HTTP socket names the client, and REMOTE_ADDR/REMOTE_PORT say so;
//! a connection without one is served as usual; a malformed one is closed.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;

fn env_of(response: &Response) -> serde_json::Value {
    serde_json::from_str(&response.text()).unwrap_or_else(|e| panic!("not JSON ({e}): {response}"))
}

fn connect(addr: SocketAddr) -> HttpConn<TcpStream> {
    HttpConn::new(wait_for_connect(addr, START_TIMEOUT).unwrap())
}

fn get_env() -> Vec<u8> {
    request_bytes("GET", "/env", &[], b"")
}

fn v2_header(source: [u8; 4], port: u16) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0, 12]);
    header.extend_from_slice(&source);
    header.extend_from_slice(&[127, 0, 0, 1]);
    header.extend_from_slice(&port.to_be_bytes());
    header.extend_from_slice(&80u16.to_be_bytes());
    header
}

#[test]
fn the_proxy_header_sets_remote_addr() {
    let (kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--enable-proxy-protocol",
    ]);

    // v1, in the same packet as the request; the next request on the connection keeps it.
    let mut conn = connect(addr);
    let mut raw = b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\n".to_vec();
    raw.extend_from_slice(&get_env());
    let env = env_of(&conn.request(&raw).unwrap());
    assert_eq!(
        (env["REMOTE_ADDR"].as_str(), env["REMOTE_PORT"].as_str()),
        (Some("203.0.113.7"), Some("40000")),
        "{env}"
    );
    let env = env_of(&conn.request(&get_env()).unwrap());
    assert_eq!(
        env["REMOTE_ADDR"], "203.0.113.7",
        "keep-alive request: {env}"
    );

    // v1 over IPv6, split across writes.
    let mut conn = connect(addr);
    conn.send(b"PROXY TCP6 2001:db8::7 ::1 4").unwrap();
    conn.send(b"1000 80\r\nGET /env HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let env = env_of(&conn.request(b"\r\n").unwrap());
    assert_eq!(
        (env["REMOTE_ADDR"].as_str(), env["REMOTE_PORT"].as_str()),
        (Some("2001:db8::7"), Some("41000")),
        "{env}"
    );

    // v2.
    let mut conn = connect(addr);
    let mut raw = v2_header([198, 51, 100, 9], 50000);
    raw.extend_from_slice(&get_env());
    let env = env_of(&conn.request(&raw).unwrap());
    assert_eq!(
        (env["REMOTE_ADDR"].as_str(), env["REMOTE_PORT"].as_str()),
        (Some("198.51.100.9"), Some("50000")),
        "{env}"
    );

    // No header: the peer's own address, as before.
    let env = env_of(&http_get(addr, "/env").unwrap());
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1", "{env}");

    // A malformed header closes that connection only.
    let mut conn = connect(addr);
    conn.send(b"PROXY TCP4 not-an-address 127.0.0.1 1 2\r\nGET /env HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    conn.expect_closed(Duration::from_secs(5)).unwrap();
    // The line may follow the close by a moment: wait for it.
    kaiser
        .wait_for_log("bad PROXY header", Duration::from_secs(5))
        .unwrap();
    assert_eq!(
        env_of(&http_get(addr, "/env").unwrap())["REMOTE_ADDR"],
        "127.0.0.1"
    );
}

#[test]
fn without_the_option_a_proxy_header_is_a_bad_request() {
    let (_kaiser, addr) = start_http(&["--wsgi-file", "tests/apps/wsgi_suite.py"]);
    let mut conn = connect(addr);
    let mut raw = b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\n".to_vec();
    raw.extend_from_slice(&get_env());
    let response = conn.request(&raw).unwrap();
    assert_eq!(response.status, 400, "{response}");
}
