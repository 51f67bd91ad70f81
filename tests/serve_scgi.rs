//! `scgi-socket` and `scgi-nph-socket` served by the real binary: a raw SCGI request (the
//! CGI `Status:` head, or an HTTP status line for nph), and a real nginx `scgi_pass` in front
//! (status, headers, a request body), plus a malformed request that closes only its own
//! connection.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use common::*;

/// An SCGI request: the netstring of `vars` (CONTENT_LENGTH first, as the spec says) and
/// the body.
fn scgi_request(vars: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut block = Vec::new();
    let length = body.len().to_string();
    for (name, value) in [("CONTENT_LENGTH", length.as_str()), ("SCGI", "1")]
        .iter()
        .chain(vars)
    {
        block.extend_from_slice(name.as_bytes());
        block.push(0);
        block.extend_from_slice(value.as_bytes());
        block.push(0);
    }
    let mut out = format!("{}:", block.len()).into_bytes();
    out.extend_from_slice(&block);
    out.push(b',');
    out.extend_from_slice(body);
    out
}

/// Sends `raw` on a new connection to `path` and reads until the server closes.
fn exchange(path: &Path, raw: &[u8]) -> String {
    let mut stream = UnixStream::connect(path).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.write_all(raw).unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn start(dir: &TempDir) -> Kaiser {
    let scgi = dir.join("scgi.sock").display().to_string();
    let nph = dir.join("nph.sock").display().to_string();
    let kaiser = Kaiser::spawn(&[
        "--scgi-socket",
        &scgi,
        "--scgi-nph-socket",
        &nph,
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
    ]);
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    kaiser
}

const GET_ENV: &[(&str, &str)] = &[
    ("REQUEST_METHOD", "GET"),
    ("REQUEST_URI", "/env?x=1"),
    ("PATH_INFO", "/env"),
    ("QUERY_STRING", "x=1"),
    ("SERVER_PROTOCOL", "HTTP/1.1"),
    ("SERVER_NAME", "localhost"),
    ("SERVER_PORT", "80"),
    ("REMOTE_ADDR", "127.0.0.1"),
];

#[test]
fn scgi_requests_get_cgi_or_nph_heads() {
    let dir = TempDir::new("scgi");
    let _kaiser = start(&dir);
    let cgi = exchange(&dir.join("scgi.sock"), &scgi_request(GET_ENV, b""));
    assert!(cgi.starts_with("Status: 200 OK\r\n"), "{cgi}");
    assert!(cgi.contains("\"QUERY_STRING\": \"x=1\""), "{cgi}");
    assert!(cgi.contains("\"SCGI\": \"1\""), "{cgi}");
    let nph = exchange(&dir.join("nph.sock"), &scgi_request(GET_ENV, b""));
    assert!(nph.starts_with("HTTP/1.1 200 OK\r\n"), "{nph}");

    // A request that is not SCGI closes its own connection; the next one is served.
    let bad = exchange(&dir.join("scgi.sock"), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(bad, "");
    let again = exchange(&dir.join("scgi.sock"), &scgi_request(GET_ENV, b""));
    assert!(again.starts_with("Status: 200 OK\r\n"), "{again}");
}

#[test]
fn nginx_scgi_pass_reaches_the_app() {
    let dir = TempDir::new("scgi-nginx");
    let _kaiser = start(&dir);
    let params = "scgi_param REQUEST_METHOD $request_method; scgi_param REQUEST_URI $request_uri; \
                  scgi_param QUERY_STRING $query_string; scgi_param PATH_INFO $document_uri; \
                  scgi_param SERVER_PROTOCOL $server_protocol; scgi_param SERVER_NAME $server_name; \
                  scgi_param SERVER_PORT $server_port; scgi_param REMOTE_ADDR $remote_addr; \
                  scgi_param CONTENT_TYPE $content_type;";
    let nginx = Nginx::start(&format!(
        "location / {{ {params} scgi_pass unix:{scgi}; }}
    location /nph/ {{ {params} scgi_param PATH_INFO /env; scgi_pass unix:{nph}; }}",
        scgi = dir.join("scgi.sock").display(),
        nph = dir.join("nph.sock").display(),
    ));
    let env = http_get(nginx.addr(), "/env?a=b").unwrap();
    assert_eq!(env.status, 200, "{env}");
    assert!(env.text().contains("\"QUERY_STRING\": \"a=b\""), "{env}");
    assert_eq!(
        env.header("Content-Type"),
        Some("application/json"),
        "{env}"
    );
    let teapot = http_get(nginx.addr(), "/status?code=418").unwrap();
    assert_eq!(
        teapot.status, 418,
        "the Status: line reaches nginx: {teapot}"
    );
    let nph = http_get(nginx.addr(), "/nph/x").unwrap();
    assert_eq!(nph.status, 200, "{nph}");

    let body = b"a body sent through scgi_pass";
    let stream = wait_for_connect(nginx.addr(), START_TIMEOUT).unwrap();
    let echoed = http_request(
        stream,
        &request_bytes(
            "POST",
            "/echo",
            &[("Connection", "close"), ("Content-Type", "text/plain")],
            body,
        ),
    )
    .unwrap();
    assert_eq!(echoed.status, 200, "{echoed}");
    assert_eq!(echoed.body, body);
}

#[test]
fn health_probes_get_the_scgi_head_too() {
    let dir = TempDir::new("scgi-health");
    let scgi = dir.join("scgi.sock").display().to_string();
    let nph = dir.join("nph.sock").display().to_string();
    let kaiser = Kaiser::spawn(&[
        "--scgi-socket",
        &scgi,
        "--scgi-nph-socket",
        &nph,
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--health-check-path",
        "/healthz",
    ]);
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    let probe: &[(&str, &str)] = &[
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", "/healthz"),
        ("PATH_INFO", "/healthz"),
        ("QUERY_STRING", ""),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
    ];
    // nginx's `scgi_pass` reads CGI's `Status:` line; an HTTP status line would be taken for
    // a header and the probe seen as a 200 whatever it said.
    let cgi = exchange(&dir.join("scgi.sock"), &scgi_request(probe, b""));
    assert!(cgi.starts_with("Status: 200 OK\r\n"), "{cgi}");
    assert!(cgi.ends_with("\r\n\r\nok\n"), "{cgi}");
    let nph = exchange(&dir.join("nph.sock"), &scgi_request(probe, b""));
    assert!(nph.starts_with("HTTP/1.1 200 OK\r\n"), "{nph}");
    // The worker answered, not the app: no request line.
    assert!(!kaiser.logs().contains("GET /healthz"), "{}", kaiser.logs());
}
