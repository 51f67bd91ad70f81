//! Harakiri: a request running past its deadline gets a 504 and its Python stack in the
//! log, and its worker is replaced; with several threads the stuck one is named while the
//! others keep serving until the kill; `uwsgi.set_user_harakiri`; a worker whose stuck
//! request ends during the grace period is spared.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;

/// Long enough for the master's one-second check, the grace, and a respawn on a busy CI box.
const HARAKIRI_TIMEOUT: Duration = Duration::from_secs(20);

fn start(args: &[&str]) -> (Kaiser, SocketAddr) {
    start_http(&[&["--wsgi-file", "tests/apps/stuck.py"], args].concat())
}

fn worker_pid(addr: SocketAddr) -> i64 {
    let response = http_get(addr, "/pid").unwrap();
    let value: serde_json::Value = serde_json::from_str(&response.text())
        .unwrap_or_else(|e| panic!("/pid is not JSON ({e}): {response}"));
    value["pid"].as_i64().expect("/pid has a pid")
}

/// Waits until `/pid` answers from a worker other than `old`.
fn new_worker_pid(addr: SocketAddr, old: i64) -> i64 {
    wait_until(
        "a new worker to serve",
        HARAKIRI_TIMEOUT,
        |last| match http_get(addr, "/pid") {
            Ok(response) if response.status == 200 => {
                let pid = serde_json::from_str::<serde_json::Value>(&response.text())
                    .ok()
                    .and_then(|v| v["pid"].as_i64());
                *last = format!("pid {pid:?}");
                Ok(pid.filter(|&pid| pid != old))
            }
            Ok(response) => {
                *last = format!("status {}", response.status);
                Ok(None)
            }
            Err(error) => {
                *last = error;
                Ok(None)
            }
        },
    )
    .unwrap()
}

fn stats(path: &std::path::Path) -> serde_json::Value {
    let mut stream = wait_for_unix(path, START_TIMEOUT).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("stats are not JSON ({e}): {text}"))
}

#[test]
fn a_request_past_harakiri_gets_504_a_traceback_and_a_new_worker() {
    let dir = TempDir::new("harakiri");
    let stats_path = dir.join("stats.sock");
    let (kaiser, addr) = start(&[
        "--harakiri",
        "1",
        "--harakiri-graceful-timeout",
        "1",
        "--stats",
        stats_path.to_str().unwrap(),
    ]);
    let first = worker_pid(addr);
    let mark = kaiser.log_mark();
    let started = Instant::now();
    let response = http_get(addr, "/stuck?s=60").unwrap();
    assert_eq!(response.status, 504, "{response}\n{}", kaiser.logs());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the 504 took {:?}",
        started.elapsed()
    );
    kaiser
        .wait_for_log_since(
            mark,
            &format!("*** HARAKIRI ON WORKER 1 (pid: {first}, try: 1, graceful: yes) ***"),
            HARAKIRI_TIMEOUT,
        )
        .unwrap();
    kaiser
        .wait_for_log_since(
            mark,
            "HARAKIRI [core 0] 127.0.0.1 - GET /stuck?s=60 since",
            HARAKIRI_TIMEOUT,
        )
        .unwrap();
    kaiser
        .wait_for_log_since(mark, "in wait_for_the_slow_backend", HARAKIRI_TIMEOUT)
        .unwrap();
    kaiser
        .wait_for_log_since(mark, "respawned worker", HARAKIRI_TIMEOUT)
        .unwrap();
    let second = new_worker_pid(addr, first);
    let worker = &stats(&stats_path)["workers"][0];
    assert_eq!(worker["harakiri_count"], 1, "{worker}");
    assert_eq!(worker["respawn_count"], 2, "{worker}");
    assert_eq!(worker["pid"], second, "{worker}");
}

#[test]
fn with_threads_the_stuck_thread_is_named_and_the_others_keep_serving() {
    let (kaiser, addr) = start(&[
        "--threads",
        "2",
        "--harakiri",
        "1",
        "--harakiri-graceful-timeout",
        "3",
    ]);
    let first = worker_pid(addr);
    let mark = kaiser.log_mark();
    let stuck = std::thread::spawn(move || http_get(addr, "/stuck?s=60"));
    let line = kaiser
        .wait_for_log_since(mark, "HARAKIRI [core", HARAKIRI_TIMEOUT)
        .unwrap();
    assert!(line.contains("GET /stuck?s=60"), "{line}");
    // The grace period has just begun: the other thread still serves.
    assert_eq!(worker_pid(addr), first, "{}", kaiser.logs());
    let response = stuck.join().expect("the client thread").unwrap();
    assert_eq!(response.status, 504, "{response}");
    kaiser
        .wait_for_log_since(
            mark,
            "HARAKIRI: Python stack of worker 1 core",
            HARAKIRI_TIMEOUT,
        )
        .unwrap();
    kaiser
        .wait_for_log_since(mark, "killing it (SIGKILL)", HARAKIRI_TIMEOUT)
        .unwrap();
    new_worker_pid(addr, first);
}

#[test]
fn set_user_harakiri_bounds_one_request_without_the_option() {
    let (kaiser, addr) = start(&["--harakiri-graceful-timeout", "1"]);
    let first = worker_pid(addr);
    let mark = kaiser.log_mark();
    let response = http_get(addr, "/user-harakiri").unwrap();
    assert_eq!(response.status, 504, "{response}\n{}", kaiser.logs());
    kaiser
        .wait_for_log_since(mark, "in wait_for_the_slow_backend", HARAKIRI_TIMEOUT)
        .unwrap();
    new_worker_pid(addr, first);
}

#[test]
fn a_worker_whose_stuck_request_ends_during_the_grace_is_spared() {
    let (kaiser, addr) = start(&["--harakiri", "1", "--harakiri-graceful-timeout", "5"]);
    let first = worker_pid(addr);
    let mark = kaiser.log_mark();
    let response = http_get(addr, "/stuck?s=3").unwrap();
    assert_eq!(response.status, 504, "{response}");
    kaiser
        .wait_for_log_since(mark, "not killing it", HARAKIRI_TIMEOUT)
        .unwrap();
    assert_eq!(worker_pid(addr), first, "{}", kaiser.logs());
    assert!(
        !kaiser.logs_since(mark).contains("SIGKILL"),
        "{}",
        kaiser.logs()
    );
}

/// Whether the stats server shows a request in flight on any core of worker 1.
fn worker_busy(stats_path: &std::path::Path) -> bool {
    stats(stats_path)["workers"][0]["cores"]
        .as_array()
        .is_some_and(|cores| cores.iter().any(|core| core["in_request"] == 1))
}

/// Regression: a worker being replaced (`max-requests`) and its replacement shared one
/// scoreboard slot, so spawning the replacement wiped the old worker's stuck request: it
/// got no 504 until `worker-reload-mercy` cut it, and harakiri watched only the new pid.
#[test]
fn harakiri_ends_a_request_stuck_in_a_worker_being_replaced() {
    let dir = TempDir::new("harakiri-recycling");
    let stats_path = dir.join("stats.sock");
    let (kaiser, addr) = start(&[
        "--threads",
        "2",
        "--max-requests",
        "1",
        "--min-worker-lifetime",
        "0",
        "--harakiri",
        "2",
        "--harakiri-graceful-timeout",
        "1",
        "--worker-reload-mercy",
        "40",
        "--stats",
        stats_path.to_str().unwrap(),
    ]);
    let mark = kaiser.log_mark();
    let stuck = std::thread::spawn(move || http_get(addr, "/stuck?s=60"));
    wait_until("the stuck request to start", START_TIMEOUT, |last| {
        let busy = worker_busy(&stats_path);
        *last = format!("busy: {busy}");
        Ok(busy.then_some(()))
    })
    .unwrap();
    // The other thread serves this one, which reaches max-requests: the worker holding the
    // stuck request is replaced.
    let old = worker_pid(addr);
    kaiser
        .wait_for_log_since(mark, "replaced: the new worker accepts", HARAKIRI_TIMEOUT)
        .unwrap();
    let started = Instant::now();
    let response = stuck.join().expect("the client thread").unwrap();
    assert_eq!(response.status, 504, "{response}\n{}", kaiser.logs());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the 504 took {:?}: harakiri missed the retiring worker",
        started.elapsed()
    );
    let logs = kaiser.logs_since(mark);
    let condemned: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("*** HARAKIRI ON WORKER 1 (pid: "))
        .collect();
    assert!(
        !condemned.is_empty()
            && condemned
                .iter()
                .all(|line| line.contains(&format!("(pid: {old},"))),
        "harakiri must condemn the retiring worker {old} and no other: {condemned:?}\n{logs}"
    );
    assert!(
        logs.contains("GET /stuck?s=60"),
        "the harakiri block names the stuck request:\n{logs}"
    );
}

/// Regression: the worker's main thread took the GIL (to run Python signal handlers) before
/// reading its signals, so a request stuck in C code holding the GIL blocked SIGUSR2: the
/// client got no 504, only a reset when the worker was killed.
#[test]
fn a_request_holding_the_gil_still_gets_504_and_says_why_there_is_no_stack() {
    let (kaiser, addr) = start(&["--harakiri", "1", "--harakiri-graceful-timeout", "3"]);
    let first = worker_pid(addr);
    let mark = kaiser.log_mark();
    let response = http_get(addr, "/regex").unwrap();
    assert_eq!(response.status, 504, "{response}\n{}", kaiser.logs());
    kaiser
        .wait_for_log_since(
            mark,
            "HARAKIRI: no Python stack for worker 1 core 0 (`GET /regex`): a thread holds the GIL",
            HARAKIRI_TIMEOUT,
        )
        .unwrap();
    kaiser
        .wait_for_log_since(mark, "killing it (SIGKILL)", HARAKIRI_TIMEOUT)
        .unwrap();
    new_worker_pid(addr, first);
}
