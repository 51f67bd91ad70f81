//! uWSGI's HTTP-router options (issue 15) in a real file: kaiser has no router process, so
//! `http-timeout`, `http-keepalive`, `http-auto-chunked`, `http-raw-body`, `http-to`,
//! `http-processes` and `http-websockets` are accepted no-ops and the workers serve `http`
//! themselves; a WebSocket upgrade reaches the app as a plain request; `https` is refused
//! naming nginx.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn router_options_are_accepted_and_the_workers_serve_http() {
    let dir = TempDir::new("router");
    let app = dir.write(
        "app.py",
        "import uwsgi\n\
         def application(environ, start_response):\n    \
             body = ('upgrade=%s handshake=%s' % (environ.get('HTTP_UPGRADE'), hasattr(uwsgi, 'websocket_handshake'))).encode()\n    \
             start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
             yield body\n",
    );
    let ini = dir.write(
        "app.ini",
        format!(
            "[uwsgi]\nhttp = 127.0.0.1:0\nhttp-to = /tmp/kaiser-nowhere.sock\nhttp-timeout = 300\n\
             http-keepalive = 1\nhttp-auto-chunked = true\nhttp-raw-body = true\nhttp-processes = 4\n\
             http-websockets = true\nwsgi-file = {}\n",
            app.display()
        ),
    );
    let kaiser = Kaiser::spawn(&["--ini", ini.to_str().unwrap()]);
    let addr = kaiser
        .wait_for_addr("protocol=\"http\"", START_TIMEOUT)
        .unwrap();
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    assert!(
        !kaiser.logs().contains("WARN"),
        "no-ops warn about nothing:\n{}",
        kaiser.logs()
    );

    let stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
    let response = http_request(
        stream,
        &request_bytes(
            "GET",
            "/chat",
            &[
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Version", "13"),
            ],
            b"",
        ),
    )
    .unwrap();
    assert_eq!(response.status, 200, "{response}");
    assert_eq!(
        response.text(),
        "upgrade=websocket handshake=False",
        "{response}"
    );
    // No Content-Length from the app: chunked, as `http-auto-chunked` would have made it.
    assert_eq!(
        response.header("transfer-encoding"),
        Some("chunked"),
        "{response}"
    );
}

#[test]
fn https_is_refused_naming_nginx() {
    let mut kaiser = Kaiser::spawn(&[
        "--https",
        "127.0.0.1:0,cert.pem,key.pem",
        "--wsgi-file",
        "tests/apps/hello.py",
    ]);
    let status = kaiser.expect_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{}", kaiser.logs());
    assert!(
        kaiser
            .logs()
            .contains("`https` is refused: kaiser does not terminate TLS: put nginx"),
        "{}",
        kaiser.logs()
    );
}
