//! `health-check-path`: the probe is answered by the worker without the app, also while
//! every request thread is busy with a slow request, and during a graceful stop it fails
//! (503) for `health-drain-delay` while the app keeps being served.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// A probe queued behind the busy threads would take the in-flight requests' 8 s; this bound
/// only tells "answered without waiting for them" apart from that (latencies are printed).
const PROBE_BOUND: Duration = Duration::from_secs(2);

#[test]
fn a_probe_is_answered_while_every_request_thread_is_busy() {
    let (_kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--threads",
        "2",
        "--health-check-path",
        "/healthz",
    ]);
    // Idle: answered before dispatch, not by the app (which has no such route).
    let response = http_get(addr, "/healthz").unwrap();
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "ok\n"),
        "{response}"
    );
    assert_eq!(http_get(addr, "/healthz?verbose=1").unwrap().status, 200);
    assert_eq!(
        http_get(addr, "/healthzx").unwrap().status,
        404,
        "other paths reach the app"
    );
    let head = http_request(
        wait_for_connect(addr, START_TIMEOUT).unwrap(),
        &request_bytes("HEAD", "/healthz", &[("Connection", "close")], b""),
    );
    assert!(head.is_ok(), "{head:?}");

    // Both request threads are now inside the app for 8 s.
    let busy = [in_flight(addr, 8000), in_flight(addr, 8000)];
    let mut latencies = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let response = http_get(addr, "/healthz").unwrap();
        latencies.push(started.elapsed());
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, "ok\n"),
            "{response}"
        );
    }
    latencies.sort();
    eprintln!(
        "probe latency with every thread busy: median {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    assert!(
        latencies[latencies.len() - 1] < PROBE_BOUND,
        "a probe waited for the app: {latencies:?}"
    );
    // An app request taken meanwhile is not lost: it is served once a thread is free.
    let queued = std::thread::spawn(move || http_get(addr, "/status?code=200"));
    for stream in busy {
        assert!(read_rest(stream).contains("chunk 1"));
    }
    let queued = queued.join().unwrap().unwrap();
    assert_eq!(queued.status, 200, "{queued}");
}

#[test]
fn a_graceful_stop_fails_the_probe_first_and_keeps_serving_for_the_drain_delay() {
    let (mut kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--health-check-path",
        "/healthz",
        "--health-drain-delay",
        "3",
    ]);
    assert_eq!(http_get(addr, "/healthz").unwrap().status, 200);
    kaiser.signal(libc::SIGTERM);
    let draining = wait_until("the probe to fail with 503", START_TIMEOUT, |last| {
        let response = http_get(addr, "/healthz")?;
        *last = format!("{response}");
        Ok((response.status == 503).then_some(response))
    })
    .unwrap();
    assert_eq!(draining.text(), "draining\n");
    // The sockets are open and the app still serves while the balancer moves away.
    let served = http_get(addr, "/status?code=200").unwrap();
    assert_eq!(served.status, 200, "{served}");
    kaiser
        .wait_for_log("drain delay over", START_TIMEOUT)
        .unwrap();
    let status = kaiser.expect_exit(START_TIMEOUT);
    assert!(status.success(), "{status:?}\n{}", kaiser.logs());
    assert!(
        http_get(addr, "/healthz").is_err(),
        "the sockets closed at the end"
    );
}

#[test]
fn without_a_drain_delay_sigterm_stops_at_once() {
    let (mut kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--health-check-path",
        "/healthz",
    ]);
    assert_eq!(http_get(addr, "/healthz").unwrap().status, 200);
    kaiser.signal(libc::SIGTERM);
    assert!(kaiser.expect_exit(START_TIMEOUT).success());
    assert!(!kaiser.logs().contains("draining"), "{}", kaiser.logs());
}

/// Behind nginx's `uwsgi_pass`: the probe comes as a uwsgi packet, on an idle worker and on
/// one whose only thread is busy.
#[test]
fn a_probe_over_the_uwsgi_protocol_is_answered_too() {
    use std::io::{Read, Write};
    let mut kaiser = Kaiser::spawn(&[
        "--socket",
        "127.0.0.1:0",
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--health-check-path",
        "/healthz",
    ]);
    let addr = kaiser
        .wait_for_addr("protocol=\"uwsgi\"", START_TIMEOUT)
        .unwrap();
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    let probe = || {
        let stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
        uwsgi_request(stream, &cgi_vars("GET", "/healthz", None, &[]), b"").unwrap()
    };
    let response = probe();
    assert_eq!((response.status, response.text().as_str()), (200, "ok\n"));
    // The only request thread streams slowly: the probe thread answers.
    let mut busy = wait_for_connect(addr, START_TIMEOUT).unwrap();
    let vars = cgi_vars("GET", "/stream?chunks=2&delay_ms=8000", None, &[]);
    let borrowed: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    busy.write_all(&uwsgi_packet(0, 0, &borrowed)).unwrap();
    busy.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("chunk 0") {
        let n = busy.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the first chunk");
        seen.extend_from_slice(&buf[..n]);
    }
    let started = Instant::now();
    let response = probe();
    eprintln!(
        "uwsgi probe latency with the thread busy: {:?}",
        started.elapsed()
    );
    assert_eq!(response.status, 200, "{response}");
    assert!(started.elapsed() < PROBE_BOUND);
    kaiser.signal(libc::SIGINT);
    kaiser.expect_exit(START_TIMEOUT);
}

/// Two single-threaded workers, both busy: either one's probe thread answers.
#[test]
fn a_probe_is_answered_when_every_worker_is_busy() {
    let (_kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--processes",
        "2",
        "--health-check-path",
        "/healthz",
    ]);
    let busy = [in_flight(addr, 6000), in_flight(addr, 6000)];
    let started = Instant::now();
    let response = http_get(addr, "/healthz").unwrap();
    eprintln!(
        "probe latency with both workers busy: {:?}",
        started.elapsed()
    );
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "ok\n"),
        "{response}"
    );
    assert!(started.elapsed() < PROBE_BOUND);
    drop(busy);
}

/// The master FIFO's `q` is a graceful stop too: it drains first.
#[test]
fn master_fifo_q_drains_first() {
    let dir = TempDir::new("health-fifo");
    let fifo = dir.join("fifo");
    let (mut kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--health-check-path",
        "/healthz",
        "--health-drain-delay",
        "2",
        "--master-fifo",
        fifo.to_str().unwrap(),
    ]);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"q"))
        .unwrap();
    let response = wait_until("the probe to fail with 503", START_TIMEOUT, |last| {
        let response = http_get(addr, "/healthz")?;
        *last = format!("{response}");
        Ok((response.status == 503).then_some(response))
    })
    .unwrap();
    assert_eq!(response.text(), "draining\n");
    assert!(kaiser.expect_exit(START_TIMEOUT).success());
}

/// `heartbeat`: `WATCHDOG=1` to the supervisor (here systemd's notify socket) every second,
/// also in `idle` cheap mode, where no worker runs on purpose.
#[test]
fn heartbeats_go_on_in_cheap_mode() {
    let mut notify = NotifyListener::new();
    let (_kaiser, _addr) = start_http_with(
        &[
            "--wsgi-file",
            "tests/apps/hello.py",
            "--heartbeat",
            "1",
            "--idle",
            "2",
        ],
        |command| {
            command.env("NOTIFY_SOCKET", notify.path());
        },
    );
    notify.recv_line("WATCHDOG=1", START_TIMEOUT).unwrap();
    notify
        .recv_until(|m| m.contains("STATUS=cheap"), START_TIMEOUT)
        .unwrap();
    notify
        .recv_line("WATCHDOG=1", std::time::Duration::from_secs(3))
        .unwrap();
}

/// `need-app = false` keeps a vassal whose app failed to import running (every request gets
/// a 500): its probe fails too, so a balancer or Kubernetes keeps traffic away.
#[test]
fn the_probe_fails_when_the_app_did_not_load() {
    let (_kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/broken_import.py",
        "--need-app=false",
        "--health-check-path",
        "/healthz",
    ]);
    assert_eq!(http_get(addr, "/").unwrap().status, 500);
    let probe = http_get(addr, "/healthz").unwrap();
    assert_eq!(
        (probe.status, probe.text().as_str()),
        (503, "the app failed to load\n")
    );
}

/// A second SIGTERM during the drain stops at once (here the drain would last 60 s).
#[test]
fn a_second_sigterm_cuts_the_drain_short() {
    let (mut kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--health-check-path",
        "/healthz",
        "--health-drain-delay",
        "60",
    ]);
    kaiser.signal(libc::SIGTERM);
    wait_until("the probe to fail with 503", START_TIMEOUT, |last| {
        let response = http_get(addr, "/healthz")?;
        *last = format!("{response}");
        Ok((response.status == 503).then_some(()))
    })
    .unwrap();
    kaiser.signal(libc::SIGTERM);
    assert!(
        kaiser.expect_exit(START_TIMEOUT).success(),
        "{}",
        kaiser.logs()
    );
    assert!(
        !kaiser.logs().contains("drain delay over"),
        "{}",
        kaiser.logs()
    );
}
