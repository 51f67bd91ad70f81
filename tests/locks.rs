//! `uwsgi.lock()` across processes, through the real `uwsgidecorators.lock`
//! (tests/apps/locks_app.py): no lost update between workers, a lock held by a worker that
//! dies is taken over, `is_locked` sees another worker's lock, and bad lock numbers.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

fn start(args: &[&str]) -> (Kaiser, SocketAddr, TempDir) {
    let out = TempDir::new("locks");
    let venv = venv().display().to_string();
    let out_path = out.path().to_path_buf();
    let (kaiser, addr) = start_http_with(
        &[
            &[
                "--home",
                venv.as_str(),
                "--wsgi-file",
                "tests/apps/locks_app.py",
            ],
            args,
        ]
        .concat(),
        |command| {
            command.env("APP_OUT", &out_path);
        },
    );
    (kaiser, addr, out)
}

fn get(kaiser: &Kaiser, addr: SocketAddr, target: &str) -> String {
    let response = http_get(addr, target).unwrap();
    assert_eq!(
        response.status,
        200,
        "GET {target}: {response}\n{}",
        kaiser.logs()
    );
    response.text()
}

#[test]
fn concurrent_increments_from_two_workers_lose_no_update() {
    let (kaiser, addr, out) = start(&["--processes", "2", "--threads", "2"]);
    let clients: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..40 {
                    let response = http_get(addr, "/increment").unwrap();
                    assert_eq!(response.status, 200, "{response}");
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    let counter = std::fs::read_to_string(out.join("counter")).unwrap();
    assert_eq!(counter, "160", "lost updates:\n{}", kaiser.logs());
    let served_by: std::collections::HashSet<String> = kaiser
        .logs()
        .lines()
        .filter(|line| line.contains("GET /increment"))
        .filter_map(|line| line.split('|').next().map(str::to_string))
        .collect();
    assert_eq!(
        served_by.len(),
        2,
        "both workers should have served: {served_by:?}"
    );
}

#[test]
fn a_lock_held_by_a_worker_that_died_is_taken_over() {
    let (kaiser, addr, _out) = start(&["--processes", "2"]);
    // The worker takes lock 0 and exits without unlocking.
    assert!(
        http_get(addr, "/lock-and-die").map_or(true, |r| r.status != 200),
        "the dying worker answered"
    );
    assert_eq!(get(&kaiser, addr, "/is-locked"), "false");
    assert_eq!(get(&kaiser, addr, "/increment"), "1");
    kaiser
        .wait_for_log("took over a lock", Duration::from_secs(5))
        .unwrap();
}

#[test]
fn is_locked_sees_a_lock_another_worker_holds() {
    let (kaiser, addr, out) = start(&["--processes", "2", "--locks", "2"]);
    let holder = std::thread::spawn(move || http_get(addr, "/hold?n=2").unwrap().text());
    wait_until("the lock to be taken", START_TIMEOUT, |_| {
        Ok(out.join("holding").exists().then_some(()))
    })
    .unwrap();
    // The other worker (each has one thread) sees it held, and the other locks free.
    assert_eq!(get(&kaiser, addr, "/is-locked?n=2"), "true");
    assert_eq!(get(&kaiser, addr, "/is-locked?n=1"), "false");
    std::fs::write(out.join("release"), b"").unwrap();
    assert_eq!(holder.join().unwrap(), "released");
    assert_eq!(get(&kaiser, addr, "/is-locked?n=2"), "false");
}

#[test]
fn lock_numbers_and_relocking() {
    let (kaiser, addr, _out) = start(&["--locks", "2"]);
    assert_eq!(get(&kaiser, addr, "/bad-lock?n=2"), "locked");
    assert_eq!(
        get(&kaiser, addr, "/bad-lock?n=3"),
        "ValueError: Invalid lock number"
    );
    assert_eq!(
        get(&kaiser, addr, "/lock-twice"),
        "RuntimeError: lock 0 is already held by this thread"
    );
    assert_eq!(get(&kaiser, addr, "/is-locked"), "false");
}

#[test]
fn a_lock_held_by_the_old_generation_excludes_the_new_one_during_a_reload() {
    let (kaiser, addr, out) = start(&["--locks", "1"]);
    let holder = std::thread::spawn(move || http_get(addr, "/hold?n=1").unwrap().text());
    wait_until("the lock to be taken", START_TIMEOUT, |_| {
        Ok(out.join("holding").exists().then_some(()))
    })
    .unwrap();
    let mark = kaiser.log_mark();
    kaiser.signal(libc::SIGHUP);
    kaiser
        .wait_for_log_since(mark, ": reloaded in", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    // The old worker still finishes its request, holding lock 1; the new worker sees it.
    assert_eq!(get(&kaiser, addr, "/is-locked?n=1"), "true");
    std::fs::write(out.join("release"), b"").unwrap();
    assert_eq!(holder.join().unwrap(), "released");
    assert_eq!(get(&kaiser, addr, "/is-locked?n=1"), "false");
}
