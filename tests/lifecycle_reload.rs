//! Reloads without a failed request: `touch-reload`, `touch-chain-reload`,
//! `touch-workers-reload`, `kaiser --reload/--stop PIDFILE`, and reloads of a broken app
//! that keep the current workers serving.

mod common;
mod lifecycle_support;

use std::path::Path;
use std::process::Command;

use common::*;
use lifecycle_support::*;

/// Changes `path`'s mtime (creating the file if needed), as `touch` does.
fn touch(path: &Path) {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.set_modified(std::time::SystemTime::now()).unwrap();
}

#[test]
fn touch_files_reload_without_a_failed_request() {
    let dir = TempDir::new("touch");
    let reload = dir.write("reload", "");
    let chain = dir.join("chain"); // missing at start: creating it triggers
    let workers = dir.write("workers", "");
    let text = |p: &Path| p.display().to_string();
    let (reload_text, chain_text, workers_text) = (text(&reload), text(&chain), text(&workers));
    let (kaiser, addr) = start(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--processes",
        "2",
        "--touch-reload",
        &reload_text,
        "--touch-chain-reload",
        &chain_text,
        "--touch-workers-reload",
        &workers_text,
    ]);
    kaiser
        .wait_for_log("touch-chain-reload: the file does not exist", START_TIMEOUT)
        .unwrap();
    let hammer = Hammer::start(addr, 3);

    let mark = kaiser.log_mark();
    touch(&chain);
    kaiser
        .wait_for_log_since(mark, "chain reload complete", START_TIMEOUT)
        .unwrap();
    hammer.wait_for_more(20);

    let mark = kaiser.log_mark();
    touch(&workers);
    wait_for_count(&kaiser, mark, " replaced: ", 2);
    hammer.wait_for_more(20);

    let mark = kaiser.log_mark();
    touch(&reload);
    kaiser
        .wait_for_log_since(mark, ": reloaded in ", START_TIMEOUT)
        .unwrap();
    hammer.wait_for_more(20);

    // Deleting a watched file triggers too.
    let mark = kaiser.log_mark();
    std::fs::remove_file(&workers).unwrap();
    wait_for_count(&kaiser, mark, " replaced: ", 2);
    hammer.wait_for_more(20);
    hammer.finish(&kaiser, "touch reloads");
    let logs = kaiser.logs();
    assert_eq!(
        logs.matches(": reloaded in ").count(),
        1,
        "a touch fired twice, or the re-exec fired it again:\n{logs}"
    );
}

#[test]
fn reload_and_stop_with_a_pidfile() {
    let dir = TempDir::new("pidfile");
    let pidfile = dir.join("k.pid");
    let pidfile_text = pidfile.display().to_string();
    let (mut kaiser, addr) = start(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--pidfile",
        &pidfile_text,
    ]);
    let hammer = Hammer::start(addr, 2);
    let run = |action: &str| {
        let status = Command::new(kaiser_bin())
            .args([action, &pidfile_text])
            .status()
            .unwrap();
        assert!(status.success(), "kaiser {action} {pidfile_text}: {status}");
    };

    let mark = kaiser.log_mark();
    run("--reload");
    kaiser
        .wait_for_log_since(mark, ": reloaded in ", START_TIMEOUT)
        .unwrap();
    hammer.wait_for_more(20);
    hammer.finish(&kaiser, "kaiser --reload");

    run("--stop");
    assert_eq!(
        kaiser.expect_exit(EXIT).code(),
        Some(0),
        "{}",
        kaiser.logs()
    );
}

#[test]
fn reloads_of_a_broken_app_keep_the_current_workers_serving() {
    let dir = TempDir::new("broken");
    let app_path = dir.write("app.py", std::fs::read(app("hello.py")).unwrap());
    let reload = dir.write("reload", "");
    let chain = dir.write("chain", "");
    let text = |p: &Path| p.display().to_string();
    let (app_text, reload_text, chain_text) = (text(&app_path), text(&reload), text(&chain));
    let (kaiser, addr) = start(&[
        "--wsgi-file",
        &app_text,
        "--lazy-apps",
        "--processes",
        "2",
        "--touch-reload",
        &reload_text,
        "--touch-chain-reload",
        &chain_text,
    ]);
    let hammer = Hammer::start(addr, 2);
    std::fs::write(&app_path, "raise RuntimeError('broken on purpose')\n").unwrap();

    // A chain reload: the first replacement fails to import; the old worker keeps its slot
    // and the chain stops there.
    let mark = kaiser.log_mark();
    touch(&chain);
    kaiser
        .wait_for_log_since(
            mark,
            "failed to load the app; the current worker keeps serving",
            START_TIMEOUT,
        )
        .unwrap();
    hammer.wait_for_more(20);

    // A graceful reload: the check fails, nothing is replaced.
    let mark = kaiser.log_mark();
    touch(&reload);
    kaiser
        .wait_for_log_since(mark, "reload aborted", START_TIMEOUT)
        .unwrap();
    hammer.wait_for_more(20);
    hammer.finish(&kaiser, "reloads of a broken app");
    kaiser.master_barrier();
    let logs = kaiser.logs();
    assert!(
        !logs.contains("shutting down") && !logs.contains("recycling worker 2"),
        "a failed replacement must neither stop the vassal nor go on with the chain:\n{logs}"
    );
}

/// One import of `tests/apps/priority.py`, as it recorded itself.
#[derive(Debug, PartialEq)]
struct Import {
    pid: i32,
    nice: i32,
    main_thread: bool,
}

/// Starts `tests/apps/priority.py` with `args`, recording its imports in `dir`; returns the
/// path of that record too.
fn start_priority_app(
    dir: &TempDir,
    args: &[&str],
) -> (Kaiser, std::net::SocketAddr, std::path::PathBuf) {
    let imports = dir.join("imports");
    let env = format!("KAISER_TEST_IMPORTS={}", imports.display());
    let mut all = vec!["--wsgi-file", "tests/apps/priority.py", "--env", &env];
    all.extend_from_slice(args);
    let (kaiser, addr) = start(&all);
    (kaiser, addr, imports)
}

/// The imports recorded so far, and the record's text for messages.
fn read_imports(path: &Path) -> (Vec<Import>, String) {
    let log = std::fs::read_to_string(path).unwrap();
    let imports = log
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            Import {
                pid: fields[0].parse().unwrap(),
                nice: fields[1].parse().unwrap(),
                main_thread: fields[2] == "True",
            }
        })
        .collect();
    (imports, log)
}

/// The pid and nice value of the thread that served a request to `tests/apps/priority.py`.
fn served_by(addr: std::net::SocketAddr) -> (i32, i32) {
    let text = http_get(addr, "/").unwrap().text();
    let (pid, nice) = text.split_once(' ').unwrap();
    (pid.parse().unwrap(), nice.parse().unwrap())
}

/// A graceful reload's `--check-config` child imports the app at nice 10, so the burst of CPU
/// it takes does not slow the workers serving meanwhile; the master and the workers stay at
/// the priority they were started with.
#[test]
fn the_reload_check_imports_the_app_at_a_lower_priority() {
    let dir = TempDir::new("nice");
    let reload = dir.write("reload", "");
    let reload_text = reload.display().to_string();
    let (kaiser, addr, imports) =
        start_priority_app(&dir, &["--processes", "1", "--touch-reload", &reload_text]);
    let mark = kaiser.log_mark();
    touch(&reload);
    kaiser
        .wait_for_log_since(mark, ": reloaded in", START_TIMEOUT)
        .unwrap();

    let (entries, log) = read_imports(&imports);
    let preload = |pid| Import {
        pid,
        nice: 0,
        main_thread: true,
    };
    // The master preloads, the check child imports, the re-executed master preloads again.
    let master = kaiser.pid();
    assert_eq!(entries.len(), 3, "three imports expected:\n{log}");
    assert_eq!(entries[0], preload(master), "the first preload:\n{log}");
    assert!(
        entries[1].pid != master && entries[1].nice == 10,
        "the check child imports at nice 10:\n{log}"
    );
    assert_eq!(
        entries[2],
        preload(master),
        "the re-executed master:\n{log}"
    );
    let (_, nice) = served_by(addr);
    assert_eq!(nice, 0, "the new worker serves at nice 0");
}

/// A lazy-apps worker imports at nice 10 on Python's main thread, and its request threads,
/// started before the import, serve at the priority the worker was started with.
#[test]
fn a_lazy_worker_imports_at_a_lower_priority_and_serves_at_its_own() {
    let dir = TempDir::new("lazy-nice");
    let chain = dir.join("chain");
    let chain_text = chain.display().to_string();
    let (kaiser, addr, imports) = start_priority_app(
        &dir,
        &[
            "--lazy-apps",
            "--processes",
            "1",
            "--threads",
            "2",
            "--touch-chain-reload",
            &chain_text,
        ],
    );
    let first = served_by(addr);
    let mark = kaiser.log_mark();
    touch(&chain);
    kaiser
        .wait_for_log_since(mark, "chain reload complete", START_TIMEOUT)
        .unwrap();

    let (entries, log) = read_imports(&imports);
    assert_eq!(
        entries.len(),
        2,
        "the first worker and its replacement import:\n{log}"
    );
    assert_ne!(
        entries[0].pid, entries[1].pid,
        "a new worker after the chain reload"
    );
    for entry in &entries {
        assert!(
            entry.nice == 10 && entry.main_thread,
            "imports at nice 10 on the main thread:\n{log}"
        );
    }
    assert_eq!(
        first,
        (entries[0].pid, 0),
        "the first worker serves at nice 0"
    );
    // The old worker may take one more request before it sees its stop signal.
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    loop {
        let response = served_by(addr);
        if response == (entries[1].pid, 0) {
            break;
        }
        assert_eq!(
            response, first,
            "only the old worker may answer instead, at nice 0"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the new worker never answered"
        );
    }
}

/// uWSGI's `fs-reload` (it was refused) reloads gracefully when its path changes, as
/// `touch-reload` does.
#[test]
fn fs_reload_reloads_when_its_path_changes() {
    let dir = TempDir::new("fs-reload");
    let watched = dir.write("watched", "");
    let watched_text = watched.display().to_string();
    let (kaiser, _addr) = start(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--fs-reload",
        &watched_text,
    ]);
    let mark = kaiser.log_mark();
    touch(&watched);
    kaiser
        .wait_for_log_since(mark, ": reloaded in", START_TIMEOUT)
        .unwrap();
}
