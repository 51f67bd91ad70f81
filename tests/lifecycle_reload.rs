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
    let logs = kaiser.logs();
    assert!(
        !logs.contains("shutting down") && !logs.contains("recycling worker 2"),
        "a failed replacement must neither stop the vassal nor go on with the chain:\n{logs}"
    );
}

/// A graceful reload's `--check-config` child imports the app at nice 10, so the burst of CPU
/// it takes does not slow the workers serving meanwhile; the master and the workers stay at
/// the priority they were started with.
#[test]
fn the_reload_check_imports_the_app_at_a_lower_priority() {
    let dir = TempDir::new("nice");
    let imports = dir.join("imports");
    let app_path = dir.write(
        "app.py",
        format!(
            r#"import os
with open({imports:?}, "a") as log:
    log.write(f"{{os.getpid()}} {{os.nice(0)}}\n")

def application(environ, start_response):
    body = str(os.nice(0)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"#,
            imports = imports.display().to_string()
        ),
    );
    let reload = dir.write("reload", "");
    let (app_text, reload_text) = (app_path.display().to_string(), reload.display().to_string());
    let (kaiser, addr) = start(&[
        "--wsgi-file",
        &app_text,
        "--processes",
        "1",
        "--touch-reload",
        &reload_text,
    ]);
    let mark = kaiser.log_mark();
    touch(&reload);
    kaiser
        .wait_for_log_since(mark, "reloaded in", START_TIMEOUT)
        .unwrap();

    let log = std::fs::read_to_string(&imports).unwrap();
    let entries: Vec<(i32, i32)> = log
        .lines()
        .map(|line| {
            let (pid, nice) = line.split_once(' ').unwrap();
            (pid.parse().unwrap(), nice.parse().unwrap())
        })
        .collect();
    // The master preloads, the check child imports, the re-executed master preloads again.
    let master = kaiser.pid();
    assert_eq!(entries.len(), 3, "three imports expected:\n{log}");
    assert_eq!(entries[0], (master, 0), "the first preload:\n{log}");
    assert!(
        entries[1].0 != master && entries[1].1 == 10,
        "the check child imports at nice 10:\n{log}"
    );
    assert_eq!(entries[2], (master, 0), "the re-executed master:\n{log}");
    let response = http_get(addr, "/").unwrap();
    assert_eq!(
        response.text(),
        "0",
        "the new worker serves at nice 0: {response}"
    );
}

#[test]
fn a_lazy_worker_imports_at_a_lower_priority_and_serves_at_its_own() {
    let dir = TempDir::new("lazy-nice");
    let imports = dir.join("imports");
    // Each import records its pid, its thread's nice value and whether it runs on Python's
    // main thread (where `signal.signal` handlers run); each response is the nice value of
    // the thread that serves it.
    let app_path = dir.write(
        "app.py",
        format!(
            r#"import os, threading
with open({imports:?}, "a") as log:
    log.write(f"{{os.getpid()}} {{os.nice(0)}} {{threading.current_thread() is threading.main_thread()}}\n")

def application(environ, start_response):
    body = f"{{os.getpid()}} {{os.nice(0)}}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"#,
            imports = imports.display().to_string()
        ),
    );
    let chain = dir.join("chain");
    let (app_text, chain_text) = (app_path.display().to_string(), chain.display().to_string());
    let (kaiser, addr) = start(&[
        "--wsgi-file",
        &app_text,
        "--lazy-apps",
        "--processes",
        "1",
        "--threads",
        "2",
        "--touch-chain-reload",
        &chain_text,
    ]);
    let first = http_get(addr, "/").unwrap().text();
    let mark = kaiser.log_mark();
    touch(&chain);
    kaiser
        .wait_for_log_since(mark, "chain reload complete", START_TIMEOUT)
        .unwrap();

    let log = std::fs::read_to_string(&imports).unwrap();
    let entries: Vec<Vec<&str>> = log.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(
        entries.len(),
        2,
        "the first worker and its replacement import:\n{log}"
    );
    assert_ne!(
        entries[0][0], entries[1][0],
        "a new worker after the chain reload"
    );
    for entry in &entries {
        assert_eq!(
            entry[1..],
            ["10", "True"],
            "imports at nice 10 on the main thread:\n{log}"
        );
    }
    assert_eq!(
        first,
        format!("{} 0", entries[0][0]),
        "the first worker serves at nice 0"
    );
    // The old worker may take one more request before it sees its stop signal.
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    loop {
        let response = http_get(addr, "/").unwrap().text();
        if response == format!("{} 0", entries[1][0]) {
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
