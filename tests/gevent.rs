//! `gevent = N` (and `async`, `asyncio`): uWSGI's async cores per worker, which kaiser serves
//! as N request threads. A gevent-monkey-patched app (tests/apps/gevent_app.py, patched with
//! `thread=False` as the README asks) runs under the real binary and must serve N requests at
//! once in one worker, as under uWSGI's gevent loop.

mod common;

use common::{app, http_get, start_http_with, venv, TempDir};

/// Four requests that each wait until all four are in: only served together if the one
/// worker runs four at once.
fn four_at_once(option: &str) -> (Vec<String>, String) {
    let barrier = TempDir::new("gevent-barrier");
    let wsgi = app("gevent_app.py");
    let home = venv();
    let (kaiser, addr) = start_http_with(
        &[
            "--wsgi-file",
            wsgi.to_str().expect("utf-8"),
            "--home",
            home.to_str().expect("utf-8"),
            "--processes",
            "1",
            option,
            "4",
        ],
        |command| {
            command
                .env("GEVENT_BARRIER_DIR", barrier.path())
                .env("GEVENT_BARRIER", "4");
        },
    );
    let clients: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || http_get(addr, "/").map(|r| r.text())))
        .collect();
    let bodies = clients
        .into_iter()
        .map(|client| {
            client
                .join()
                .expect("client thread")
                .unwrap_or_else(|error| panic!("{error}"))
        })
        .collect();
    (bodies, kaiser.logs())
}

#[test]
fn gevent_cores_become_request_threads_and_a_monkey_patched_app_serves() {
    let (bodies, logs) = four_at_once("--gevent");
    assert_eq!(bodies, ["together"; 4], "{logs}");
    assert!(
        logs.contains("kaiser has no gevent/async loop engine: each worker serves `gevent` cores as request threads")
            && logs.contains("`thread=False`"),
        "the mapping is announced: {logs}"
    );
}

#[test]
fn async_is_served_the_same_way() {
    let (bodies, logs) = four_at_once("--async");
    assert_eq!(bodies, ["together"; 4], "{logs}");
}
