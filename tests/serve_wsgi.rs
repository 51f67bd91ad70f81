//! PEP 3333 over `http-socket`: every route of `wsgi_suite_validated.py` passes
//! `wsgiref.validate`, and the environ is the one uWSGI's http-socket builds for the same
//! request (reference §5.2).

mod common;

use std::io::Write;
use std::time::Duration;

use common::start_http as start;
use common::*;

/// The routes of wsgi_suite.py that keep PEP 3333 (all but `/headers-injection` and the
/// late `exc_info`), with the request and the status each must produce.
pub fn validated_routes() -> Vec<(&'static str, &'static str, &'static [u8], u16)> {
    vec![
        ("GET", "/", b"", 200),
        ("GET", "/env?a=1", b"", 200),
        ("POST", "/echo?read=7", b"some body bytes", 200),
        ("POST", "/echo-lines", b"l1\nl2\nl3\n", 200),
        ("GET", "/stream?chunks=3", b"", 200),
        ("GET", "/write", b"", 200),
        ("GET", "/close", b"", 200),
        ("GET", "/file", b"", 200),
        ("GET", "/file?block=100", b"", 200),
        ("GET", "/error", b"", 500),
        ("GET", "/exc-info", b"", 500),
        ("GET", "/sleep?ms=1", b"", 200),
        ("GET", "/pid", b"", 200),
        ("GET", "/big?bytes=100000", b"", 200),
        ("GET", "/big?bytes=100000&stream=1", b"", 200),
        ("GET", "/status", b"", 204),
        ("GET", "/status?code=304", b"", 304),
        ("GET", "/status?code=200", b"", 200),
        ("HEAD", "/", b"", 200),
        ("GET", "/log?msg=validated-log-line", b"", 200),
        ("GET", "/no-such-route", b"", 404),
    ]
}

/// What `wsgiref.validate` and Python print when either side breaks PEP 3333.
pub const VALIDATOR_COMPLAINTS: &[&str] = &["AssertionError", "WSGIWarning", "Exception ignored"];

#[test]
fn every_validated_route_passes_over_http() {
    let (kaiser, addr) = start(&[
        "--wsgi-file",
        "tests/apps/wsgi_suite_validated.py",
        "--processes",
        "2",
        "--threads",
        "2",
    ]);
    let mut conn = HttpConn::new(wait_for_connect(addr, START_TIMEOUT).unwrap());
    for (method, target, body, expected) in validated_routes() {
        let response = conn
            .request(&request_bytes(method, target, &[], body))
            .unwrap_or_else(|e| panic!("{method} {target}: {e}\n{}", kaiser.logs()));
        assert_eq!(
            response.status,
            expected,
            "{method} {target}: {response}\nlogs:\n{}",
            kaiser.logs()
        );
    }
    kaiser
        .wait_for_log("validated-log-line", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("wsgi.errors output is missing from the log: {e}"));
    // One connection, so one worker: what it printed for the routes above comes before
    // what it prints for this last request.
    conn.request(&request_bytes("GET", "/log?msg=validation-over", &[], b""))
        .unwrap_or_else(|e| panic!("{e}\n{}", kaiser.logs()));
    for complaint in VALIDATOR_COMPLAINTS {
        kaiser.assert_no_log_before(0, complaint, "validation-over", START_TIMEOUT);
    }
}

/// The `/env` dump, every value as text (JSON text for non-strings: `true`, `[1,0]`).
fn env_of(response: &Response) -> std::collections::BTreeMap<String, String> {
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
fn environ_over_http_socket_matches_uwsgi() {
    let (kaiser, addr) = start(&["--wsgi-file", "tests/apps/wsgi_suite.py"]);
    let mut conn = HttpConn::new(wait_for_connect(addr, START_TIMEOUT).unwrap());
    let response = conn
        .request(&request_bytes(
            "POST",
            "/%65nv?a=1&b=%20x&c",
            &[
                ("Host", "example.test:1234"),
                ("X-Custom-Thing", "one"),
                ("x-custom-thing", "two"),
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Cookie", "k=v"),
            ],
            b"k=v",
        ))
        .unwrap();
    assert_eq!(response.status, 200, "{response}\n{}", kaiser.logs());
    let env = env_of(&response);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned();
    let port = addr.port().to_string();
    for (key, expected) in [
        ("REQUEST_METHOD", "POST"),
        ("REQUEST_URI", "/%65nv?a=1&b=%20x&c"),
        ("PATH_INFO", "/env"),
        ("SCRIPT_NAME", ""),
        ("QUERY_STRING", "a=1&b=%20x&c"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", hostname.as_str()),
        ("SERVER_PORT", port.as_str()),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("CONTENT_TYPE", "application/x-www-form-urlencoded"),
        ("CONTENT_LENGTH", "3"),
        ("HTTP_HOST", "example.test:1234"),
        ("HTTP_X_CUSTOM_THING", "one, two"),
        ("HTTP_COOKIE", "k=v"),
        ("wsgi.url_scheme", "http"),
    ] {
        assert_eq!(
            env.get(key).map(String::as_str),
            Some(expected),
            "environ[{key:?}] differs from uWSGI's; whole environ: {env:?}"
        );
    }
    for absent in ["HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"] {
        assert!(
            !env.contains_key(absent),
            "{absent} must not be set: {env:?}"
        );
    }
    for (key, expected) in [
        ("wsgi.multithread", "false"),
        ("wsgi.multiprocess", "false"),
        ("wsgi.run_once", "false"),
        ("wsgi.version", "[1,0]"),
    ] {
        assert_eq!(
            env.get(key).map(String::as_str),
            Some(expected),
            "{key}: {env:?}"
        );
    }

    // A non-UTF-8 percent-escape decodes to one latin-1 char per byte (PEP 3333 "bytes as
    // latin-1"), and the route does not match, so the 404 body names the path.
    let response = conn
        .request(&request_bytes("GET", "/caf%E9", &[], b""))
        .unwrap();
    assert_eq!(response.status, 404);
    assert_eq!(response.text(), "no route for '/caf\u{e9}'\n", "{response}");
}

/// Regression: each request used to run in a fresh Python thread state, so
/// `threading.local()` data (Django's database connections) vanished between requests.
#[test]
fn threading_local_survives_between_requests_on_a_thread() {
    let (_kaiser, addr) = start(&[
        "--wsgi-file",
        app("thread_local.py").to_str().unwrap(),
        "--processes",
        "1",
        "--threads",
        "1",
    ]);
    let counts: Vec<String> = (0..5)
        .map(|_| http_get(addr, "/").unwrap().text())
        .collect();
    let last = counts
        .last()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert_eq!(
        last, "5",
        "the thread-local request count should reach 5 on the one thread; got {counts:?}"
    );
}

/// `mount` + `manage-script-name`: each app answers under its mountpoint with SCRIPT_NAME
/// and PATH_INFO split there; a path no mountpoint claims goes to the first app. Over the
/// uwsgi protocol without `manage-script-name`, the SCRIPT_NAME nginx sends picks the app.
#[test]
fn mounted_apps_answer_under_their_mountpoints() {
    let (kaiser, addr) = start(&[
        "--mount",
        "/suite=tests/apps/wsgi_suite.py",
        "--mount",
        "/suite/hello/=tests/apps/hello.py",
        "--manage-script-name",
    ]);
    let response = http_get(addr, "/suite/env?x=1").unwrap();
    assert_eq!(response.status, 200, "{response}\n{}", kaiser.logs());
    let env = env_of(&response);
    assert_eq!(
        (
            env["SCRIPT_NAME"].as_str(),
            env["PATH_INFO"].as_str(),
            env["QUERY_STRING"].as_str()
        ),
        ("/suite", "/env", "x=1")
    );
    // The longer mountpoint wins, at a segment boundary only.
    assert_eq!(
        http_get(addr, "/suite/hello").unwrap().text(),
        "Hello World"
    );
    assert_eq!(
        http_get(addr, "/suite/hello/x").unwrap().text(),
        "Hello World"
    );
    let response = http_get(addr, "/suite/helloworld").unwrap();
    assert_eq!(response.status, 404, "{response}");
    // Outside every mountpoint: the first app, SCRIPT_NAME untouched.
    let env = env_of(&http_get(addr, "/env").unwrap());
    assert_eq!(
        (env["SCRIPT_NAME"].as_str(), env["PATH_INFO"].as_str()),
        ("", "/env")
    );
    drop(kaiser);

    let kaiser = Kaiser::spawn(&[
        "--socket",
        "127.0.0.1:0",
        "--mount",
        "/suite=tests/apps/wsgi_suite.py",
        "--mount",
        "/hello=tests/apps/hello.py",
    ]);
    let uwsgi = kaiser
        .wait_for_addr("protocol=\"uwsgi\"", START_TIMEOUT)
        .unwrap();
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    let ask = |script_name: &str, path: &str| {
        let vars = cgi_vars("GET", path, None, &[("SCRIPT_NAME", script_name)]);
        let stream = wait_for_connect(uwsgi, START_TIMEOUT).unwrap();
        uwsgi_request(stream, &vars, b"").unwrap()
    };
    assert_eq!(ask("/hello", "/hello/anything").text(), "Hello World");
    let env = env_of(&ask("/suite", "/env"));
    assert_eq!(
        (env["SCRIPT_NAME"].as_str(), env["PATH_INFO"].as_str()),
        ("/suite", "/env")
    );
    let env = env_of(&ask("", "/env"));
    assert_eq!(env["SCRIPT_NAME"], "", "no mountpoint: the first app");
}

/// A sync app that calls `asyncio.get_event_loop()` in its requests works, as it does on
/// uWSGI's main thread, with one or several threads; each thread keeps its loop.
#[test]
fn asyncio_get_event_loop_works_in_requests() {
    for threads in ["1", "3"] {
        let (kaiser, addr) = start(&[
            "--wsgi-file",
            "tests/apps/asyncio_app.py",
            "--threads",
            threads,
        ]);
        for _ in 0..6 {
            let response = http_get(addr, "/").unwrap();
            assert_eq!(
                (response.status, response.text().as_str()),
                (200, "from asyncio, loop 1\n"),
                "threads {threads}: {response}\n{}",
                kaiser.logs()
            );
        }
    }
}

/// Python knows each request thread by kaiser's name for it (`kaiser-wW-tT`, as `ps -L` and
/// harakiri show), not `Dummy-N`, so `%(threadName)s` in the app's logs says which it is.
#[test]
fn request_threads_carry_their_name_in_python() {
    let (_kaiser, addr) = start(&["--wsgi-file", "tests/apps/wsgi_suite.py", "--threads", "2"]);
    let text = http_get(addr, "/pid").unwrap().text();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let name = value["thread_name"].as_str().unwrap_or_default();
    assert!(
        name == "kaiser-w1-t0" || name == "kaiser-w1-t1",
        "thread name {name:?} in {text}"
    );
}

/// Regression: when the app's own thread was still inside `write()` as its request ended,
/// taking the connection back hit an `expect`, and with `panic = "abort"` the worker died.
#[test]
fn a_write_from_the_apps_own_thread_after_the_request_does_not_kill_the_worker() {
    let (kaiser, addr) = start_http(&["--wsgi-file", "tests/apps/late_writer.py"]);
    let before = http_get(addr, "/").unwrap().text();
    let mut stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
    stream
        .write_all(&request_bytes(
            "GET",
            "/late",
            &[("Connection", "close")],
            b"",
        ))
        .unwrap();
    // Not reading yet: the app's thread blocks in write() while the request returns.
    let seen = kaiser
        .wait_for_line(0, "the request to end first", START_TIMEOUT, |line| {
            (line.contains("another thread of the app still wrote") || line.contains("worker died"))
                .then(|| line.to_string())
        })
        .unwrap();
    assert!(!seen.contains("worker died"), "{}", kaiser.logs());
    let mut rest = Vec::new();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let _ = std::io::Read::read_to_end(&mut stream, &mut rest);
    assert_eq!(
        http_get(addr, "/").unwrap().text(),
        before,
        "{}",
        kaiser.logs()
    );
    // The one worker logs this request only after the master logged its death, if it died.
    let _ = http_get(addr, "/?after-the-late-write").unwrap();
    kaiser.assert_no_log_before(0, "worker died", "/?after-the-late-write", START_TIMEOUT);
}

/// The environ reuses the previous request's value strings where a request repeats the same
/// bytes at the same position: each request must still see its own values, whether they
/// repeat, change, are long or are credentials.
#[test]
fn each_request_sees_its_own_environ_values_when_they_repeat_or_change() {
    let (kaiser, addr) = start(&[
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--processes",
        "1",
        "--threads",
        "1",
    ]);
    let long = "L".repeat(200);
    let mut conn = HttpConn::new(wait_for_connect(addr, START_TIMEOUT).unwrap());
    for (agent, token, method) in [
        ("one", "secret-1", "GET"),
        ("one", "secret-1", "GET"),
        ("two", "secret-2", "POST"),
        (long.as_str(), "secret-2", "GET"),
        ("one", "secret-1", "GET"),
    ] {
        let response = conn
            .request(&request_bytes(
                method,
                "/env",
                &[("User-Agent", agent), ("Authorization", token)],
                b"",
            ))
            .unwrap();
        assert_eq!(response.status, 200, "{response}\n{}", kaiser.logs());
        let env = env_of(&response);
        assert_eq!(env["HTTP_USER_AGENT"], agent);
        assert_eq!(env["HTTP_AUTHORIZATION"], token);
        assert_eq!(env["REQUEST_METHOD"], method);
    }
}

/// kaiser reuses a request thread's `start_response`, `write` and `wsgi.input` for its next
/// request; an app that kept them from an earlier request must still find them tied to that
/// finished request, never to the one running now.
#[test]
fn objects_an_app_kept_from_an_earlier_request_cannot_touch_a_later_one() {
    let (kaiser, addr) = start(&[
        "--wsgi-file",
        "tests/apps/keeps_callables.py",
        "--processes",
        "1",
        "--threads",
        "1",
    ]);
    // Requests that keep nothing: the thread's objects are reused from here on.
    for _ in 0..3 {
        assert_eq!(
            http_get(addr, "/use").unwrap().status,
            200,
            "{}",
            kaiser.logs()
        );
    }
    assert_eq!(http_get(addr, "/keep").unwrap().text(), "kept");
    for _ in 0..2 {
        let stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
        let used = http_request(
            stream,
            &request_bytes("POST", "/use", &[("Connection", "close")], b"new body"),
        )
        .unwrap();
        assert_eq!(used.status, 200, "{}", kaiser.logs());
        assert_eq!(used.header("X-Stolen"), None);
        assert_eq!(
            used.text(),
            "start_response: AssertionError\nwrite: OSError\ninput: b''\nsame input: False",
            "{}",
            kaiser.logs()
        );
    }
}

/// A response write holds the GIL only while it completes at once: a client that stops
/// reading makes the write wait for it, and that wait must let the worker's other request
/// threads run Python. (With the GIL kept through the wait, the second request would hang
/// until `socket-timeout` cut the first client.)
#[test]
fn a_client_that_stops_reading_does_not_stall_the_other_request_threads() {
    let (kaiser, addr) = start(&[
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--processes",
        "1",
        "--threads",
        "2",
        "--socket-timeout",
        "60",
    ]);
    // 2,000 write() calls of 16 KiB (32 MiB), no delay: far more than the socket buffers
    // hold, so the request thread soon waits for a client that reads nothing.
    let worker: serde_json::Value =
        serde_json::from_str(&http_get(addr, "/pid").unwrap().text()).unwrap();
    let worker = worker["pid"].as_u64().unwrap();
    let mut stalled = wait_for_connect(addr, START_TIMEOUT).unwrap();
    stalled
        .write_all(&request_bytes(
            "GET",
            "/write?chunks=2000&delay_ms=0",
            &[("Connection", "close")],
            b"",
        ))
        .unwrap();
    let mut first = [0u8; 1];
    stalled
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    std::io::Read::read_exact(&mut stalled, &mut first).expect("the response started");
    // Until a request thread sits in poll(2) (syscall 7), waiting for the client to read.
    wait_until(
        "a request thread waiting for the client",
        Duration::from_secs(20),
        |_| Ok(request_thread_in_poll(worker).then_some(())),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", kaiser.logs()));
    // The stalled thread is now blocked on its client; the other thread must still serve.
    for _ in 0..3 {
        let response = http_get(addr, "/").unwrap_or_else(|e| panic!("{e}\n{}", kaiser.logs()));
        assert_eq!(response.status, 200, "{}", kaiser.logs());
    }
    // The first request is still waiting (not cut by a timeout): it was never the reason.
    assert!(
        !kaiser.logs().contains("did not read the response in time"),
        "{}",
        kaiser.logs()
    );
    drop(stalled);
}

/// Whether one of `pid`'s request threads (`kaiser-wN-tM`) is inside `poll(2)`.
fn request_thread_in_poll(pid: u64) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        let read = |name: &str| std::fs::read_to_string(task.path().join(name)).unwrap_or_default();
        let comm = read("comm");
        let syscall = read("syscall");
        comm.starts_with("kaiser-w")
            && comm.contains("-t")
            && syscall.split(' ').next() == Some("7")
    })
}

#[test]
fn iteration_stops_once_the_declared_content_length_is_sent_but_a_generator_runs_to_its_end() {
    let (kaiser, addr) = start(&["--wsgi-file", "tests/apps/complete_iterables.py"]);
    // PEP 3333: "the server should ... stop iterating over the response when enough data has
    // been sent", and close() is still called.
    let response = http_get(addr, "/object").unwrap();
    assert_eq!((response.status, response.text().as_str()), (200, "hello"));
    kaiser
        .wait_for_log("object closed", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    // A generator is iterated to its end, as uWSGI does: code after its last `yield` runs.
    let response = http_get(addr, "/generator").unwrap();
    assert_eq!((response.status, response.text().as_str()), (200, "hello"));
    kaiser
        .wait_for_log("after the last yield", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let logs = kaiser.logs();
    assert!(!logs.contains("asked for more"), "{logs}");
    assert!(!logs.contains("generator closed early"), "{logs}");
}
