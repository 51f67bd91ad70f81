//! SIGTSTP pause/resume and `idle` (cheap mode) / `die-on-idle`, with no connection lost.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

fn send_get(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("send the request");
    stream
}

fn read_status(stream: &mut TcpStream, timeout: Duration) -> Result<String, std::io::Error> {
    stream.set_read_timeout(Some(timeout))?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    Ok(String::from_utf8_lossy(&response)
        .lines()
        .next()
        .unwrap_or("")
        .to_string())
}

#[test]
fn sigtstp_pauses_accepting_and_a_second_one_serves_what_waited() {
    let (kaiser, addr) = start_http(&["--wsgi-file", "tests/apps/hello.py", "--processes", "2"]);
    assert_eq!(http_get(addr, "/").unwrap().status, 200);

    let mark = kaiser.log_mark();
    kaiser.signal(libc::SIGTSTP);
    kaiser
        .wait_for_log_since(mark, "paused: workers stop accepting", START_TIMEOUT)
        .unwrap();
    // Both workers pause; give their signalfds a moment to be read, bounded by the log.
    wait_until("both workers to pause", START_TIMEOUT, |last| {
        *last = kaiser.logs_since(mark);
        Ok((last.matches("accepting paused").count() == 2).then_some(()))
    })
    .unwrap();
    let mut waiting = send_get(addr);
    let early = read_status(&mut waiting, Duration::from_millis(1500));
    assert!(
        early.is_err(),
        "a paused vassal answered a new connection: {early:?}\n{}",
        kaiser.logs_since(mark)
    );

    kaiser.signal(libc::SIGTSTP);
    let status = read_status(&mut waiting, Duration::from_secs(10)).unwrap_or_else(|e| {
        panic!(
            "the request that waited during the pause was lost: {e}\n{}",
            kaiser.logs()
        )
    });
    assert_eq!(status, "HTTP/1.1 200 OK", "after resuming");
}

#[test]
fn idle_stops_the_workers_and_the_next_connection_brings_them_back() {
    let (kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--processes",
        "2",
        "--idle",
        "1",
    ]);
    assert_eq!(http_get(addr, "/").unwrap().status, 200);
    kaiser.wait_for_log("cheap mode", START_TIMEOUT).unwrap();
    wait_until("both workers to stop", START_TIMEOUT, |last| {
        *last = kaiser.logs();
        Ok((last.matches("worker stopped (cheap mode)").count() == 2).then_some(()))
    })
    .unwrap();
    let started = Instant::now();
    let response = http_get(addr, "/").unwrap_or_else(|e| {
        panic!(
            "the connection that woke a cheap vassal was lost: {e}\n{}",
            kaiser.logs()
        )
    });
    assert_eq!(response.status, 200);
    kaiser
        .wait_for_log("leaving cheap mode", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "waking took {:?}",
        started.elapsed()
    );
}

#[test]
fn die_on_idle_stops_the_vassal_cleanly() {
    let (mut kaiser, _addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--idle",
        "1",
        "--die-on-idle",
    ]);
    let status = kaiser.expect_exit(START_TIMEOUT);
    assert!(
        status.success(),
        "die-on-idle should exit 0, got {status}\n{}",
        kaiser.logs()
    );
    kaiser
        .wait_for_log("die-on-idle", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// `py-call-osafterfork`'s promise: a handler the app installs with `signal.signal()` at
/// import runs in the worker when the worker gets that signal.
#[test]
fn python_signal_handlers_installed_by_the_app_run_in_workers() {
    let dir = TempDir::new("pysignal");
    let hits = dir.join("hits");
    let env = format!("KAISER_TEST_SIGNAL_FILE={}", hits.display());
    let (kaiser, addr) =
        start_http(&["--wsgi-file", "tests/apps/signal_handler.py", "--env", &env]);
    let pid: i32 = http_get(addr, "/").unwrap().text().trim().parse().unwrap();
    // SAFETY: kill with a pid we just read and a harmless signal.
    unsafe { libc::kill(pid, libc::SIGWINCH) };
    wait_until(
        "the app's SIGWINCH handler to run in the worker",
        Duration::from_secs(5),
        |last| {
            *last = std::fs::read_to_string(&hits).unwrap_or_default();
            Ok(last
                .lines()
                .any(|l| l.trim() == pid.to_string())
                .then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", kaiser.logs()));
}
