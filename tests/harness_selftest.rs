//! Tests of the test harness itself, against real peers that need no kaiser: nginx, the test
//! venv, Python's wsgiref server running every fixture app under `wsgiref.validate`, and small
//! fake servers written here. If these fail, no other integration test can be trusted.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const SHORT: Duration = Duration::from_secs(5);

// ---- processes and logs ----------------------------------------------------------------

fn shell(script: &str) -> LoggedProcess {
    let mut command = Command::new("sh");
    command.arg("-c").arg(script);
    LoggedProcess::spawn("sh", command)
}

#[test]
fn logged_process_captures_stdout_and_stderr_and_finds_addresses() {
    let process = shell(
        "echo plain stdout; echo 'bound `127.0.0.1:4567` for http' >&2; \
         printf '\\033[32mINFO\\033[0m coloured\\n'; exec sleep 1000",
    );
    let line = process.wait_for_log("plain stdout", SHORT).unwrap();
    assert_eq!(line, "plain stdout");
    let addr = process.wait_for_addr("for http", SHORT).unwrap();
    assert_eq!(addr, "127.0.0.1:4567".parse::<SocketAddr>().unwrap());
    assert_eq!(
        process.wait_for_log("INFO coloured", SHORT).unwrap(),
        "INFO coloured"
    );
    let mark = process.log_mark();
    assert_eq!(process.logs_since(mark), "");
}

#[test]
fn wait_for_log_fails_early_when_the_process_exits_and_shows_its_logs() {
    let process = shell("echo 'about to exit'; exit 3");
    let started = std::time::Instant::now();
    let error = process
        .wait_for_log("never printed", Duration::from_secs(30))
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "{error}");
    assert!(error.contains("never printed"), "{error}");
    assert!(error.contains("about to exit"), "{error}");
}

#[test]
fn wait_for_log_times_out_with_a_clear_message() {
    let process = shell("echo 'still here'; exec sleep 1000");
    let error = process
        .wait_for_log("never printed", Duration::from_millis(200))
        .unwrap_err();
    assert!(error.contains("timed out after 200ms"), "{error}");
    assert!(error.contains("still here"), "{error}");
}

#[test]
fn dropping_a_process_kills_its_whole_group() {
    let process = shell("sleep 1000 & echo \"child $!\"; wait");
    let line = process.wait_for_log("child ", SHORT).unwrap();
    let grandchild: i32 = line["child ".len()..].trim().parse().unwrap();
    assert!(Path::new(&format!("/proc/{grandchild}")).exists());
    drop(process);
    // The grandchild is reparented and reaped by init once killed; wait for it to vanish.
    wait_until("the grandchild to be killed", SHORT, |last| {
        let status = std::fs::read_to_string(format!("/proc/{grandchild}/status"));
        match status {
            Err(_) => Ok(Some(())),
            Ok(text) if text.contains("State:\tZ") => Ok(Some(())),
            Ok(text) => {
                *last = text.lines().take(3).collect::<Vec<_>>().join("; ");
                Ok(None)
            }
        }
    })
    .unwrap();
}

#[test]
fn a_process_dies_with_the_thread_that_spawned_it() {
    // What makes a test killed on a timeout leave no server behind; and why a test must
    // spawn a process on the thread that keeps it.
    let mut process = std::thread::spawn(|| shell("exec sleep 1000"))
        .join()
        .unwrap();
    let status = process.expect_exit(SHORT);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
}

/// A negative check must wait for a later line: the unwanted line here comes 200 ms after
/// the start, when a one-time read of `logs()` would long have passed.
#[test]
fn assert_no_log_before_waits_for_its_marker_and_catches_a_late_line() {
    let process = shell("sleep 0.2; echo unwanted; echo marker; exec sleep 1000");
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        process.assert_no_log_before(0, "unwanted", "marker", SHORT)
    }));
    assert!(caught.is_err(), "the unwanted line went unseen");

    let process = shell("sleep 0.2; echo marker; echo unwanted; exec sleep 1000");
    // A line after the marker is not the check's business.
    process.assert_no_log_before(0, "unwanted", "marker", SHORT);
}

#[test]
fn stop_and_read_logs_returns_everything_printed_until_the_end() {
    let mut process =
        shell("trap 'echo goodbye; exit 0' TERM; echo started; while :; do sleep 0.05; done");
    process.wait_for_log("started", SHORT).unwrap();
    let logs = process.stop_and_read_logs(libc::SIGTERM, SHORT);
    assert!(logs.contains("goodbye"), "{logs}");
}

#[test]
fn signals_and_exit_status() {
    let mut process =
        shell("trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.05; done");
    process.wait_for_log("ready", SHORT).unwrap();
    assert!(process.try_exit().is_none());
    process.signal(libc::SIGTERM);
    let status = process.expect_exit(SHORT);
    assert_eq!(status.code(), Some(7), "{}", process.logs());
    assert!(process.logs().contains("got TERM"));
}

#[test]
fn strip_ansi_removes_colours() {
    assert_eq!(
        strip_ansi("\u{1b}[2m2024\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m ok"),
        "2024  INFO ok"
    );
}

#[test]
fn parse_socket_addrs_finds_addresses_in_log_lines() {
    let cases: &[(&str, &[&str])] = &[
        ("listening on 127.0.0.1:8080", &["127.0.0.1:8080"]),
        (
            "bound `[::1]:9000`, and 10.0.0.1:1.",
            &["[::1]:9000", "10.0.0.1:1"],
        ),
        (
            "addr=127.0.0.1:5 socket=\"127.0.0.2:6\"",
            &["127.0.0.1:5", "127.0.0.2:6"],
        ),
        ("serving http://127.0.0.1:7/", &["127.0.0.1:7"]),
        ("unix:/tmp/x.sock and :8080", &[]),
    ];
    for (line, expected) in cases {
        let expected: Vec<SocketAddr> = expected.iter().map(|a| a.parse().unwrap()).collect();
        assert_eq!(parse_socket_addrs(line), expected, "for {line:?}");
    }
}

#[test]
fn temp_dir_is_removed_on_drop() {
    let dir = TempDir::new("selftest");
    let file = dir.write("a.ini", "[uwsgi]\n");
    assert!(file.exists());
    let path = dir.path().to_owned();
    drop(dir);
    assert!(!path.exists());
}

#[test]
fn notify_listener_receives_sd_notify_datagrams() {
    let mut listener = NotifyListener::new();
    let sender = UnixDatagram::unbound().unwrap();
    sender.send_to(b"STATUS=starting", listener.path()).unwrap();
    sender
        .send_to(b"READY=1\nSTATUS=ready", listener.path())
        .unwrap();
    let ready = listener.recv_line("READY=1", SHORT).unwrap();
    assert_eq!(ready, "READY=1\nSTATUS=ready");
    assert_eq!(listener.messages().len(), 2);
    let error = listener
        .recv_line("STOPPING=1", Duration::from_millis(100))
        .unwrap_err();
    assert!(error.contains("timed out"), "{error}");
}

// ---- the HTTP client against canned responses -----------------------------------------

/// Serves one connection on 127.0.0.1: reads one request head, then writes `response` and
/// closes.
fn canned_server(response: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !seen.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
            seen.push(byte[0]);
        }
        stream.write_all(response).unwrap();
    });
    addr
}

fn get_canned(response: &'static [u8]) -> Result<Response, String> {
    let addr = canned_server(response);
    http_request(
        TcpStream::connect(addr).unwrap(),
        &request_bytes("GET", "/", &[], b""),
    )
}

#[test]
fn http_client_decodes_each_framing() {
    let response = get_canned(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").unwrap();
    assert_eq!((response.status, response.text()), (200, "hello".into()));
    assert_eq!(response.framing, BodyFraming::ContentLength(5));

    let response = get_canned(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nX-T: done\r\n\r\n",
    )
    .unwrap();
    assert_eq!(response.text(), "hello!");
    assert_eq!(response.framing, BodyFraming::Chunked);
    assert_eq!(response.trailers, vec![("X-T".into(), "done".into())]);

    let response =
        get_canned(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close").unwrap();
    assert_eq!(response.text(), "until close");
    assert_eq!(response.framing, BodyFraming::UntilClose);

    let response =
        get_canned(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n").unwrap();
    assert_eq!(
        (response.status, response.interim.clone()),
        (204, vec![100])
    );
    assert_eq!(response.framing, BodyFraming::None);
}

#[test]
fn http_client_rejects_bad_framing() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
            "both",
        ),
        (b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", "bare LF"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
            "after 5 of 9",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "bad chunk-size",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            "conflicting",
        ),
        (b"HTTP/1.1 200 OK\r\nX-Bad\r\n\r\n", "without a colon"),
        (b"", "without sending a response"),
    ];
    for (raw, expected) in cases {
        let error = get_canned(raw).unwrap_err();
        assert!(
            error.contains(expected),
            "for {:?}: {error}",
            String::from_utf8_lossy(raw)
        );
    }
}

// ---- uwsgi protocol and nginx ------------------------------------------------------------

/// A fake uwsgi server on a unix socket: for each connection, decodes the packet (checking
/// modifiers and sizes), reads CONTENT_LENGTH body bytes, and answers with the vars as
/// `KEY=VALUE` lines, then `body=` and the body.
fn fake_uwsgi_server(path: &Path) {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut header = [0u8; 4];
            stream.read_exact(&mut header).unwrap();
            assert_eq!((header[0], header[3]), (0, 0), "modifiers");
            let size = u16::from_le_bytes([header[1], header[2]]) as usize;
            let mut vars = vec![0u8; size];
            stream.read_exact(&mut vars).unwrap();
            let mut lines = String::new();
            let mut content_length = 0;
            let mut rest = &vars[..];
            while !rest.is_empty() {
                let mut take = || {
                    let length = u16::from_le_bytes([rest[0], rest[1]]) as usize;
                    let value = String::from_utf8(rest[2..2 + length].to_vec()).unwrap();
                    rest = &rest[2 + length..];
                    value
                };
                let (key, value) = (take(), take());
                if key == "CONTENT_LENGTH" && !value.is_empty() {
                    content_length = value.parse().unwrap();
                }
                lines.push_str(&format!("{key}={value}\n"));
            }
            let mut body = vec![0u8; content_length];
            stream.read_exact(&mut body).unwrap();
            let mut response =
                format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n{lines}body=")
                    .into_bytes();
            response.extend_from_slice(&body);
            stream.write_all(&response).unwrap();
        }
    });
}

#[test]
fn uwsgi_client_round_trips_vars_and_body() {
    let dir = TempDir::new("uwsgi");
    let socket = dir.join("fake.sock");
    fake_uwsgi_server(&socket);
    let vars = cgi_vars("POST", "/echo?x=1", Some(5), &[("HTTP_X_TEST", "yes")]);
    let response = uwsgi_request(UnixStream::connect(&socket).unwrap(), &vars, b"hello").unwrap();
    let text = response.text();
    for expected in [
        "REQUEST_METHOD=POST\n",
        "PATH_INFO=/echo\n",
        "QUERY_STRING=x=1\n",
        "CONTENT_LENGTH=5\n",
        "HTTP_X_TEST=yes\n",
        "body=hello",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert_eq!(response.framing, BodyFraming::UntilClose);
}

#[test]
fn uwsgi_packet_layout() {
    assert_eq!(
        uwsgi_packet(0, 0, &[("A", "bc")]),
        vec![0, 7, 0, 0, 1, 0, b'A', 2, 0, b'b', b'c']
    );
}

#[test]
fn nginx_returns_a_fixed_string_with_keep_alive() {
    let nginx = Nginx::start("location / { return 200 \"ok\"; }");
    let response = http_get(nginx.addr(), "/").unwrap();
    assert_eq!(
        (response.status, response.text()),
        (200, "ok".into()),
        "{response}"
    );
    assert_eq!(response.framing, BodyFraming::ContentLength(2));

    let mut conn = HttpConn::new(wait_for_connect(nginx.addr(), SHORT).unwrap());
    for _ in 0..3 {
        let response = conn.request(&request_bytes("GET", "/", &[], b"")).unwrap();
        assert_eq!(response.text(), "ok");
    }
    // Pipelined: both requests in one write, both answers in order.
    let mut pipelined = request_bytes("GET", "/a", &[], b"");
    pipelined.extend(request_bytes("HEAD", "/b", &[("Connection", "close")], b""));
    conn.send(&pipelined).unwrap();
    assert_eq!(conn.read_response(false).unwrap().text(), "ok");
    let head = conn.read_response(true).unwrap();
    assert_eq!((head.status, head.body.len()), (200, 0));
    conn.expect_closed(SHORT).unwrap();
    // nginx logs a request once the connection is done: after a lingering close, which ends
    // when the client closes its side too.
    drop(conn);
    wait_until("nginx to log the HEAD request", SHORT, |last| {
        *last = nginx.access_log();
        Ok(last.contains("\"HEAD /b HTTP/1.1\" 200").then_some(()))
    })
    .unwrap();
}

#[test]
fn nginx_passes_uwsgi_params_to_a_unix_socket() {
    let dir = TempDir::new("uwsgi");
    let socket = dir.join("app.sock");
    fake_uwsgi_server(&socket);
    let nginx = Nginx::start(&format!(
        "location / {{ include uwsgi_params; uwsgi_pass unix:{}; }}",
        socket.display()
    ));
    let response = http_request(
        wait_for_connect(nginx.addr(), SHORT).unwrap(),
        &request_bytes("POST", "/path/x?q=1", &[("Connection", "close")], b"abc"),
    )
    .unwrap();
    assert_eq!(
        response.status,
        200,
        "{response}\nnginx log:\n{}",
        nginx.error_log()
    );
    let text = response.text();
    for expected in [
        "REQUEST_METHOD=POST\n".to_owned(),
        "PATH_INFO=/path/x\n".into(),
        "QUERY_STRING=q=1\n".into(),
        "REQUEST_URI=/path/x?q=1\n".into(),
        "CONTENT_LENGTH=3\n".into(),
        "SERVER_PROTOCOL=HTTP/1.1\n".into(),
        format!("SERVER_PORT={}\n", nginx.port()),
        "REMOTE_ADDR=127.0.0.1\n".into(),
        "HTTP_HOST=localhost\n".into(),
        "body=abc".into(),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
}

// ---- the venv ---------------------------------------------------------------------------

fn output_of(program: &Path, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{} {args:?} failed ({}):\n{}{}",
        program.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn venv_is_the_system_python_with_flask_django_and_uwsgitop() {
    let system = output_of(
        Path::new("/usr/bin/python3"),
        &["-c", "import sys; print(sys.version)"],
    );
    let in_venv = output_of(
        &venv_python(),
        &[
            "-c",
            "import sys, flask, django, importlib.metadata as m; print(sys.version); \
             print(sys.base_prefix); print(m.version('uwsgitop'))",
        ],
    );
    let mut lines = in_venv.lines();
    assert_eq!(
        lines.next(),
        system.lines().next(),
        "venv python differs from /usr/bin/python3"
    );
    assert_eq!(lines.next(), Some("/usr"));
    assert!(lines.next().is_some());
    output_of(&venv().join("bin/uwsgitop"), &["--help"]);
}

#[test]
fn broken_and_threaded_fixtures_behave_at_import() {
    let output = Command::new(venv_python())
        .arg(app("broken_import.py"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("RuntimeError: broken_import.py fails at import time"),
        "{stderr}"
    );

    let count = output_of(
        &venv_python(),
        &[
            "-c",
            &format!(
                "import sys, threading; sys.path.insert(0, {:?}); import threads_at_import; \
                 print(threading.active_count())",
                apps_dir().display().to_string()
            ),
        ],
    );
    assert_eq!(count.trim(), "2");
}

// ---- fixture apps under wsgiref.validate ------------------------------------------------

/// Sends `raw` to the wsgiref server, optionally half-closing after it (wsgiref's
/// `wsgi.input` is the raw socket, so reading to EOF needs the client to end its side),
/// and reads the response.
fn ask(server: &WsgirefServer, raw: &[u8], half_close: bool) -> Response {
    let stream = wait_for_connect(server.addr(), SHORT).unwrap();
    let mut conn = HttpConn::new(stream);
    conn.send(raw).unwrap();
    if half_close {
        conn.stream().shutdown_write().unwrap();
    }
    conn.read_response(raw.starts_with(b"HEAD "))
        .unwrap_or_else(|error| panic!("{error}\nserver logs:\n{}", server.logs()))
}

fn get(server: &WsgirefServer, target: &str) -> Response {
    ask(server, &request_bytes("GET", target, &[], b""), false)
}

/// Checks that nothing the validator reports appeared in the logs since `mark`.
fn assert_clean(server: &WsgirefServer, mark: usize, route: &str) {
    let logs = server.logs_since(mark);
    for bad in [
        "Traceback",
        "AssertionError",
        "WSGIWarning",
        "Exception ignored",
        "garbage collected",
    ] {
        assert!(
            !logs.contains(bad),
            "{route}: {bad:?} in wsgiref's logs:\n{logs}"
        );
    }
}

fn ok(server: &WsgirefServer, target: &str) -> Response {
    let mark = server.log_mark();
    let response = get(server, target);
    assert_eq!(
        response.status,
        200,
        "GET {target}:\n{response}\nlogs:\n{}",
        server.logs()
    );
    assert_clean(server, mark, target);
    response
}

#[test]
fn hello_passes_wsgiref_validate() {
    let server = WsgirefServer::start(&["--wsgi-file", "tests/apps/hello.py"]);
    let response = ok(&server, "/");
    assert_eq!(response.body, b"Hello World");
    assert_eq!(response.header("Content-Type"), Some("text/plain"));
    assert_eq!(response.framing, BodyFraming::ContentLength(11));
}

#[test]
fn asyncio_app_passes_wsgiref_validate() {
    let server = WsgirefServer::start(&["--wsgi-file", "tests/apps/asyncio_app.py"]);
    assert_eq!(ok(&server, "/").text(), "from asyncio, loop 1\n");
}

#[test]
fn atexit_app_passes_wsgiref_validate() {
    let server = WsgirefServer::start(&["--wsgi-file", "tests/apps/atexit_app.py"]);
    assert!(ok(&server, "/").text().starts_with("ok pid="));
}

#[test]
fn threads_at_import_passes_wsgiref_validate() {
    let server = WsgirefServer::start(&["--wsgi-file", "tests/apps/threads_at_import.py"]);
    assert!(ok(&server, "/").text().starts_with("threads at import"));
}

#[test]
fn wsgi_suite_passes_wsgiref_validate_on_every_route() {
    let server = WsgirefServer::start(&["--wsgi-file", "tests/apps/wsgi_suite.py"]);
    let dir = TempDir::new("suite");

    assert!(ok(&server, "/").text().contains("/headers-injection"));

    let env: serde_json::Value =
        serde_json::from_slice(&ok(&server, "/env?a=1&b=%20").body).unwrap();
    assert_eq!(env["REQUEST_METHOD"], "GET");
    assert_eq!(env["PATH_INFO"], "/env");
    assert_eq!(env["QUERY_STRING"], "a=1&b=%20");
    assert_eq!(env["wsgi.url_scheme"], "http");
    assert_eq!(env["wsgi.version"], serde_json::json!([1, 0]));
    assert!(env["wsgi.multithread"].is_boolean() && env["wsgi.multiprocess"].is_boolean());
    assert!(env["_non_str_keys"]
        .as_array()
        .unwrap()
        .contains(&"wsgi.input".into()));

    // /echo, with a body framed by Content-Length, read in odd sizes, and read to EOF.
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    for (target, half_close) in [
        ("/echo", false),
        ("/echo?read=7", false),
        ("/echo?mode=eof", true),
    ] {
        let mark = server.log_mark();
        let raw = request_bytes(
            "POST",
            target,
            &[("Content-Type", "application/x-test")],
            &body,
        );
        let response = ask(&server, &raw, half_close);
        assert_eq!(response.status, 200, "{target}: {response}");
        assert!(response.body == body, "{target}: echoed body differs");
        assert_eq!(response.header("X-Body-Length"), Some("100000"));
        assert_eq!(response.header("X-Body-Sha256").map(str::len), Some(64));
        assert_eq!(response.header("X-Content-Length-Env"), Some("100000"));
        assert_eq!(
            response.header("X-Content-Type-Env"),
            Some("application/x-test")
        );
        assert_clean(&server, mark, target);
    }

    let mark = server.log_mark();
    let raw = request_bytes("POST", "/echo-lines", &[], b"one\ntwo\nthree\nfour");
    let lines: serde_json::Value = serde_json::from_slice(&ask(&server, &raw, true).body).unwrap();
    assert_eq!(
        lines,
        serde_json::json!({"first": "one\n", "iterated": "two\n", "rest": ["three\n", "four"]})
    );
    assert_clean(&server, mark, "/echo-lines");

    let stream = ok(&server, "/stream?chunks=3");
    assert_eq!(stream.text(), "chunk 0\nchunk 1\nchunk 2\n");
    assert_eq!(stream.framing, BodyFraming::UntilClose);

    assert_eq!(
        ok(&server, "/write").text(),
        "written by write()\nwritten by write() again\nreturned in the iterable\n"
    );

    let record = dir.join("closed.txt");
    let response = ok(&server, &format!("/close?file={}", record.display()));
    assert_eq!(response.text(), "part 0\npart 1\n");
    let closed = std::fs::read_to_string(&record).unwrap();
    assert_eq!(closed, format!("closed pid={}\n", server.pid()));
    // close() also runs when the iterable raises.
    let mark = server.log_mark();
    let response = get(&server, &format!("/close?fail=1&file={}", record.display()));
    assert!(!response.text().contains("part 1"), "{response}");
    server
        .wait_for_log_since(mark, "raised after the first chunk on purpose", SHORT)
        .unwrap();
    assert_eq!(std::fs::read_to_string(&record).unwrap().lines().count(), 2);

    let file = ok(&server, "/file?block=100");
    assert!(file.body == std::fs::read(app("wsgi_suite.py")).unwrap());
    assert_eq!(
        file.header("Content-Length"),
        Some(file.body.len().to_string().as_str())
    );

    let mark = server.log_mark();
    assert_eq!(get(&server, "/error").status, 500);
    server
        .wait_for_log_since(
            mark,
            "RuntimeError: wsgi_suite /error raised this on purpose",
            SHORT,
        )
        .unwrap();

    let replaced = get(&server, "/exc-info");
    assert_eq!(replaced.status, 500, "{replaced}");
    assert_eq!(replaced.header("X-Exc-Info"), Some("replaced"));
    assert_eq!(replaced.text(), "recovered with exc_info\n");

    let mark = server.log_mark();
    let late = get(&server, "/exc-info?late=1");
    assert_eq!(late.status, 200, "{late}");
    assert_eq!(late.text(), "partial body\n");
    server
        .wait_for_log_since(mark, "raised this after the headers went out", SHORT)
        .unwrap();

    assert_eq!(ok(&server, "/sleep?ms=20").text(), "slept 20 ms\n");

    let pid: serde_json::Value = serde_json::from_slice(&ok(&server, "/pid").body).unwrap();
    assert_eq!(pid["pid"], server.pid());
    assert!(pid["thread"].is_u64());

    // The validator refuses CR/LF in header names and values, so no injected header may reach
    // the client. It does not look for CR/LF in the status line, and wsgiref sends that as is
    // (`in=status` injects `X-Injected` here): refusing it is the server's job, which is what
    // kaiser's tests of this route check.
    for place in ["value", "name"] {
        let response = get(&server, &format!("/headers-injection?in={place}"));
        assert_eq!(response.status, 500, "in={place}: {response}");
        assert_eq!(
            response.header("X-Injected"),
            None,
            "in={place}: {response}"
        );
    }

    let big = ok(&server, "/big?bytes=100001&chunk=1000");
    assert!(big.body == expected_big_body(100_001));
    assert_eq!(big.framing, BodyFraming::ContentLength(100_001));
    let big = ok(&server, "/big?bytes=5000&chunk=7&stream=1");
    assert!(big.body == expected_big_body(5000));

    let mark = server.log_mark();
    let empty = get(&server, "/status?code=204");
    assert_eq!((empty.status, empty.body.len()), (204, 0), "{empty}");
    assert_clean(&server, mark, "/status");

    ok(&server, "/log?msg=marker-from-wsgi-errors");
    server
        .wait_for_log("marker-from-wsgi-errors", SHORT)
        .unwrap();

    assert_eq!(get(&server, "/no-such-route").status, 404);

    let head = ask(
        &server,
        &request_bytes("HEAD", "/big?bytes=10", &[], b""),
        false,
    );
    assert_eq!(
        (head.status, head.header("Content-Length")),
        (200, Some("10"))
    );

    let logs = server.logs();
    for bad in ["WSGIWarning", "Exception ignored", "garbage collected"] {
        assert!(!logs.contains(bad), "{bad:?} in wsgiref's logs:\n{logs}");
    }
}

#[test]
fn wsgi_suite_validated_wraps_the_suite() {
    let server = WsgirefServer::start(&[
        "--wsgi-file",
        "tests/apps/wsgi_suite_validated.py",
        "--no-validate",
    ]);
    assert!(ok(&server, "/write")
        .text()
        .starts_with("written by write()\n"));
    // The wrapper's validator is the one refusing the header here.
    let mark = server.log_mark();
    assert_eq!(get(&server, "/headers-injection").status, 500);
    server
        .wait_for_log_since(mark, "AssertionError: Bad header value", SHORT)
        .unwrap();
}

#[test]
fn flask_app_passes_wsgiref_validate() {
    let server = WsgirefServer::start(&[
        "--wsgi-file",
        "tests/apps/flask_app/app.py",
        "--callable",
        "app",
    ]);
    assert_eq!(ok(&server, "/").text(), "Hello from Flask");
    let json: serde_json::Value = serde_json::from_slice(&ok(&server, "/json").body).unwrap();
    assert_eq!(json["framework"], "flask");

    let mark = server.log_mark();
    let form = request_bytes(
        "POST",
        "/post?x=1",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"a=1&a=2&b=3",
    );
    let posted: serde_json::Value =
        serde_json::from_slice(&ask(&server, &form, false).body).unwrap();
    assert_eq!(
        posted["form"],
        serde_json::json!({"a": ["1", "2"], "b": ["3"]})
    );
    assert_eq!(posted["args"], serde_json::json!({"x": ["1"]}));
    let json_post = request_bytes(
        "POST",
        "/post",
        &[("Content-Type", "application/json")],
        b"{\"k\": [1]}",
    );
    let posted: serde_json::Value =
        serde_json::from_slice(&ask(&server, &json_post, false).body).unwrap();
    assert_eq!(posted["json"], serde_json::json!({"k": [1]}));
    assert_clean(&server, mark, "/post");
}

#[test]
fn django_site_passes_wsgiref_validate() {
    let server = WsgirefServer::start(&[
        "--pythonpath",
        "tests/apps/django_site",
        "--module",
        "django_site.wsgi",
    ]);
    assert_eq!(ok(&server, "/hello").text(), "Hello from Django");
    let json: serde_json::Value = serde_json::from_slice(&ok(&server, "/json").body).unwrap();
    assert_eq!(json["framework"], "django");
    assert_eq!(json["path"], "/json");
    assert_eq!(get(&server, "/missing").status, 404);
}
