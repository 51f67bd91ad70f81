//! The uwsgi protocol: through a real nginx (`uwsgi_pass` to a unix socket with Debian's
//! `uwsgi_params`), and spoken directly over TCP by the harness's client.

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use common::*;

/// kaiser on a unix uwsgi socket in a fresh temp dir, and nginx in front of it. The
/// `/tls/` location claims HTTPS the way nginx does behind TLS (`HTTPS on`), `/scheme/`
/// the way a proxy chain does with `UWSGI_SCHEME`.
struct Stack {
    nginx: Nginx,
    kaiser: Kaiser,
    _dir: TempDir,
}

fn stack(app: &str, extra: &[&str]) -> Stack {
    let dir = TempDir::new("nginx-uwsgi");
    let socket: PathBuf = dir.join("app.sock");
    let socket_text = socket.display().to_string();
    let mut args = vec!["--socket", socket_text.as_str(), "--wsgi-file", app];
    args.extend_from_slice(extra);
    let kaiser = Kaiser::spawn(&args);
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    let nginx = Nginx::start(&format!(
        "client_max_body_size 64m;
    location / {{ include uwsgi_params; uwsgi_pass unix:{s}; }}
    location /tls/ {{ include uwsgi_params; uwsgi_param HTTPS on; uwsgi_param PATH_INFO /env; uwsgi_pass unix:{s}; }}
    location /scheme/ {{ include uwsgi_params; uwsgi_param UWSGI_SCHEME https; uwsgi_param PATH_INFO /env; uwsgi_pass unix:{s}; }}",
        s = socket.display()
    ));
    Stack {
        nginx,
        kaiser,
        _dir: dir,
    }
}

impl Stack {
    fn request(&self, raw: &[u8]) -> Response {
        let stream = wait_for_connect(self.nginx.addr(), START_TIMEOUT).unwrap();
        http_request(stream, raw).unwrap_or_else(|e| {
            panic!(
                "through nginx: {e}\nnginx:\n{}\nkaiser:\n{}",
                self.nginx.error_log(),
                self.kaiser.logs()
            )
        })
    }

    fn get(&self, target: &str) -> Response {
        self.request(&request_bytes(
            "GET",
            target,
            &[("Connection", "close")],
            b"",
        ))
    }
}

fn env_of(response: &Response) -> BTreeMap<String, String> {
    let value: serde_json::Value = serde_json::from_str(&response.text())
        .unwrap_or_else(|e| panic!("/env is not JSON ({e}): {response}"));
    let serde_json::Value::Object(map) = value else {
        panic!("/env is not a JSON object: {response}");
    };
    map.into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(text) => (key, text),
            other => (key, other.to_string()),
        })
        .collect()
}

#[test]
fn hello_through_nginx_uwsgi_pass_on_a_unix_socket() {
    let stack = stack(
        "tests/apps/hello.py",
        &["--processes", "2", "--threads", "2"],
    );
    for _ in 0..3 {
        let response = stack.get("/");
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, "Hello World"),
            "{response}"
        );
    }
}

#[test]
fn every_validated_route_passes_through_nginx() {
    let mut stack = stack(
        "tests/apps/wsgi_suite_validated.py",
        &["--processes", "2", "--threads", "2"],
    );
    let routes: &[(&str, &str, &[u8], u16)] = &[
        ("GET", "/", b"", 200),
        ("GET", "/env?a=1", b"", 200),
        ("POST", "/echo?read=7", b"some body bytes", 200),
        ("POST", "/echo-lines", b"l1\nl2\nl3\n", 200),
        ("GET", "/stream?chunks=3", b"", 200),
        ("GET", "/write", b"", 200),
        ("GET", "/close", b"", 200),
        ("GET", "/file", b"", 200),
        ("GET", "/error", b"", 500),
        ("GET", "/exc-info", b"", 500),
        ("GET", "/sleep?ms=1", b"", 200),
        ("GET", "/pid", b"", 200),
        ("GET", "/big?bytes=300000", b"", 200),
        ("GET", "/big?bytes=300000&stream=1", b"", 200),
        ("GET", "/status", b"", 204),
        ("GET", "/status?code=304", b"", 304),
        ("HEAD", "/", b"", 200),
        ("GET", "/log?msg=validated-through-nginx", b"", 200),
        ("GET", "/no-such-route", b"", 404),
    ];
    for (method, target, body, expected) in routes {
        let response = stack.request(&request_bytes(
            method,
            target,
            &[("Connection", "close")],
            body,
        ));
        assert_eq!(
            response.status,
            *expected,
            "{method} {target} through nginx: {response}\nkaiser:\n{}",
            stack.kaiser.logs()
        );
    }
    let response = stack.get("/big?bytes=300000&stream=1");
    assert!(
        response.body == expected_big_body(300000),
        "streamed body through nginx differs"
    );
    let response = stack.get("/stream?chunks=3");
    assert_eq!(response.text(), "chunk 0\nchunk 1\nchunk 2\n");
    stack
        .kaiser
        .wait_for_log("validated-through-nginx", Duration::from_secs(5))
        .unwrap();
    // Two workers served the routes, so no one later line follows all they printed: stopped,
    // they have printed everything.
    let logs = stack
        .kaiser
        .stop_and_read_logs(libc::SIGTERM, Duration::from_secs(20));
    for complaint in ["AssertionError", "WSGIWarning", "Exception ignored"] {
        assert!(
            !logs.contains(complaint),
            "wsgiref.validate complained ({complaint}):\n{logs}"
        );
    }
}

#[test]
fn environ_through_nginx_matches_uwsgi() {
    let stack = stack("tests/apps/wsgi_suite.py", &["--processes", "2"]);
    let response = stack.request(&request_bytes(
        "POST",
        "/%65nv?x=%41&y",
        &[
            ("Host", "site.test"),
            ("X-Forwarded-For", "10.1.2.3"),
            ("Content-Type", "text/plain"),
            ("Connection", "close"),
        ],
        b"abc",
    ));
    assert_eq!(response.status, 200, "{response}");
    let env = env_of(&response);
    let port = stack.nginx.port().to_string();
    for (key, expected) in [
        ("REQUEST_METHOD", "POST"),
        ("REQUEST_URI", "/%65nv?x=%41&y"),
        // nginx's $document_uri is already decoded.
        ("PATH_INFO", "/env"),
        ("QUERY_STRING", "x=%41&y"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", port.as_str()),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("CONTENT_TYPE", "text/plain"),
        ("CONTENT_LENGTH", "3"),
        ("HTTP_HOST", "site.test"),
        ("HTTP_X_FORWARDED_FOR", "10.1.2.3"),
        ("REQUEST_SCHEME", "http"),
        ("wsgi.url_scheme", "http"),
        ("wsgi.multiprocess", "true"),
        ("wsgi.multithread", "false"),
    ] {
        assert_eq!(
            env.get(key).map(String::as_str),
            Some(expected),
            "environ[{key:?}] through nginx; whole environ: {env:?}"
        );
    }
    assert!(env.contains_key("REMOTE_PORT"), "{env:?}");
    // nginx sends the headers a second time as HTTP_*; PEP 3333 wants them unprefixed only.
    for absent in ["HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE"] {
        assert!(
            !env.contains_key(absent),
            "{absent} must not reach the app: {env:?}"
        );
    }
    assert_eq!(env.get("SCRIPT_NAME").map(String::as_str).unwrap_or(""), "");

    for location in ["/tls/", "/scheme/"] {
        let env = env_of(&stack.get(location));
        assert_eq!(
            env.get("wsgi.url_scheme").map(String::as_str),
            Some("https"),
            "wsgi.url_scheme behind {location}: {env:?}"
        );
    }
}

#[test]
fn request_bodies_through_nginx_large_and_chunked() {
    let stack = stack("tests/apps/wsgi_suite.py", &[]);
    let big: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2246822519) >> 20) as u8)
        .collect();
    let response = stack.request(&request_bytes(
        "POST",
        "/echo",
        &[("Connection", "close")],
        &big,
    ));
    assert_eq!(response.status, 200, "{response}");
    assert_eq!(response.header("X-Body-Length"), Some("10485760"));
    assert!(response.body == big, "10 MiB body through nginx differs");

    // nginx reads a chunked request body itself and passes CONTENT_LENGTH on.
    let response = stack.request(&request_bytes(
        "POST",
        "/echo",
        &[("Transfer-Encoding", "chunked"), ("Connection", "close")],
        b"4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n",
    ));
    assert_eq!(response.text(), "abcdefg", "{response}");
}

#[test]
fn uwsgi_over_tcp_directly() {
    let kaiser = Kaiser::spawn(&[
        "--socket",
        "127.0.0.1:0",
        "--wsgi-file",
        "tests/apps/wsgi_suite_validated.py",
        "--threads",
        "2",
    ]);
    let addr: SocketAddr = kaiser.wait_for_addr("listening", START_TIMEOUT).unwrap();
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    let connect = || wait_for_connect(addr, START_TIMEOUT).unwrap();

    let response = uwsgi_request(connect(), &cgi_vars("GET", "/", None, &[]), b"").unwrap();
    assert_eq!(response.status, 200, "{response}");

    let body = b"posted over uwsgi".repeat(1000);
    let response = uwsgi_request(
        connect(),
        &cgi_vars("POST", "/echo", Some(body.len()), &[]),
        &body,
    )
    .unwrap();
    assert!(response.body == body, "uwsgi body echo differs: {response}");

    let response = uwsgi_request(
        connect(),
        &cgi_vars(
            "GET",
            "/env?q=1",
            None,
            &[("HTTPS", "on"), ("HTTP_X_A", "b")],
        ),
        b"",
    )
    .unwrap();
    let env = env_of(&response);
    for (key, expected) in [
        ("wsgi.url_scheme", "https"),
        ("HTTP_X_A", "b"),
        ("QUERY_STRING", "q=1"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "127.0.0.1"),
    ] {
        assert_eq!(
            env.get(key).map(String::as_str),
            Some(expected),
            "{key}: {env:?}"
        );
    }
    // A streamed response over uwsgi is close-delimited (nginx reads to EOF), never chunked.
    let response = uwsgi_request(
        connect(),
        &cgi_vars("GET", "/stream?chunks=2", None, &[]),
        b"",
    )
    .unwrap();
    assert_eq!(response.framing, BodyFraming::UntilClose, "{response}");
    assert_eq!(response.text(), "chunk 0\nchunk 1\n");
    // HEAD over uwsgi.
    let response = uwsgi_request(connect(), &cgi_vars("HEAD", "/", None, &[]), b"").unwrap();
    assert_eq!(
        (response.status, response.body.len()),
        (200, 0),
        "{response}"
    );
    let _ = TcpStream::connect(addr);
}

/// Over uwsgi the response head carries no `Connection` header, as uWSGI's: the connection
/// holds one request and its close ends the response, and nginx would only parse the header
/// to drop it (about 1,500 instructions of nginx's 24,700 per proxied Flask request). A length-framed
/// response, a close-delimited stream and a HEAD, for HTTP/1.1 and HTTP/1.0 requests.
#[test]
fn uwsgi_response_heads_carry_no_connection_header() {
    let kaiser = Kaiser::spawn(&[
        "--socket",
        "127.0.0.1:0",
        "--wsgi-file",
        "tests/apps/wsgi_suite_validated.py",
    ]);
    let addr: SocketAddr = kaiser.wait_for_addr("listening", START_TIMEOUT).unwrap();
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    for protocol in ["HTTP/1.1", "HTTP/1.0"] {
        for (method, target, length_framed) in [
            ("GET", "/", true),
            ("GET", "/stream?chunks=2", false),
            ("HEAD", "/", false),
        ] {
            let mut vars = cgi_vars(method, target, None, &[]);
            for (name, value) in vars.iter_mut() {
                if name == "SERVER_PROTOCOL" {
                    *value = protocol.to_string();
                }
            }
            let stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
            let response = uwsgi_request(stream, &vars, b"").unwrap();
            assert_eq!(response.status, 200, "{method} {target}: {response}");
            assert_eq!(response.version, protocol, "{response}");
            if method == "GET" {
                assert_eq!(
                    matches!(response.framing, BodyFraming::ContentLength(_)),
                    length_framed,
                    "{method} {target}: {response}"
                );
            }
            assert_eq!(
                response.header("Connection"),
                None,
                "{protocol} {method} {target}: {response}"
            );
        }
    }
}

/// A new connection whose request has not arrived is parked, never waited on: with one worker
/// of one thread and a 60 s `socket-timeout`, a second client is answered while the first is
/// still silent, and the first is answered once it speaks. A unix socket, as nginx uses: TCP
/// listeners defer the accept until data arrives, so a silent TCP client never reaches a worker.
#[test]
fn a_silent_new_connection_does_not_hold_the_only_thread() {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    let dir = TempDir::new("silent");
    let socket = dir.join("app.sock");
    let kaiser = Kaiser::spawn(&[
        "--socket",
        socket.to_str().unwrap(),
        "--wsgi-file",
        "tests/apps/hello.py",
        "--processes",
        "1",
        "--threads",
        "1",
        "--socket-timeout",
        "60",
    ]);
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    let connect = || UnixStream::connect(&socket).expect("connecting to the uwsgi socket");

    // Connected first, so it is first in the backlog: the worker takes it before the second.
    let mut silent = connect();
    let second = uwsgi_request(connect(), &cgi_vars("GET", "/", None, &[]), b"")
        .expect("a second client is answered while the first is silent");
    assert_eq!(second.status, 200, "{second}");

    let vars = cgi_vars("GET", "/late", None, &[]);
    let borrowed: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let packet = uwsgi_packet(0, 0, &borrowed);
    // Half now, half 100 ms later, so that the worker most likely reads a partial packet and
    // parks the connection again first. Not synchronisation: the assertions hold either way.
    silent.write_all(&packet[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    silent.write_all(&packet[10..]).unwrap();
    silent.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut conn = HttpConn::new(silent);
    let first = conn
        .read_response(false)
        .expect("the silent client is answered once it speaks");
    assert_eq!(first.status, 200, "{first}");
    assert_eq!(first.text(), "Hello World", "{first}");
}
