//! The vassal master's life: graceful and fast shutdown, worker respawn and recycling,
//! pidfile and vacuum, need-app, lazy-apps, `--check-config`, `chmod-socket`, INI files,
//! the request log, and graceful reload under load.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::start_http as start;
use common::*;

const EXIT: Duration = Duration::from_secs(20);

fn start_with(args: &[&str]) -> (Kaiser, SocketAddr) {
    let kaiser = Kaiser::spawn(args);
    let addr = kaiser
        .wait_for_addr("protocol=\"http\"", START_TIMEOUT)
        .unwrap();
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    (kaiser, addr)
}

fn worker_pid(addr: SocketAddr) -> i32 {
    let response = http_get(addr, "/pid").unwrap();
    let value: serde_json::Value = serde_json::from_str(&response.text())
        .unwrap_or_else(|e| panic!("/pid is not JSON ({e}): {response}"));
    value["pid"].as_i64().expect("/pid has a pid") as i32
}

#[test]
fn sigterm_and_sigquit_finish_the_request_in_flight_then_exit_0() {
    for (name, signal) in [("SIGTERM", libc::SIGTERM), ("SIGQUIT", libc::SIGQUIT)] {
        let (mut kaiser, addr) =
            start(&["--wsgi-file", "tests/apps/wsgi_suite.py", "--threads", "2"]);
        let stream = in_flight(addr, 700);
        kaiser.signal(signal);
        let rest = read_rest(stream);
        assert!(
            rest.contains("chunk 1") && rest.ends_with("0\r\n\r\n"),
            "{name}: the in-flight request was cut: {rest:?}\n{}",
            kaiser.logs()
        );
        let status = kaiser.expect_exit(EXIT);
        assert_eq!(
            status.code(),
            Some(0),
            "{name}: exit status\n{}",
            kaiser.logs()
        );
    }
}

#[test]
fn sigint_stops_fast_without_waiting_for_requests() {
    let (mut kaiser, addr) = start(&["--wsgi-file", "tests/apps/wsgi_suite.py"]);
    let _stream = in_flight(addr, 30_000);
    let started = Instant::now();
    kaiser.signal(libc::SIGINT);
    kaiser.expect_exit(EXIT);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "SIGINT took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_worker_killed_with_sigkill_is_respawned() {
    let (kaiser, addr) = start(&["--wsgi-file", "tests/apps/wsgi_suite.py"]);
    let first = worker_pid(addr);
    let mark = kaiser.log_mark();
    // SAFETY: kill(2) on the worker pid the app reported; it is our test's grandchild.
    assert_eq!(unsafe { libc::kill(first, libc::SIGKILL) }, 0);
    kaiser
        .wait_for_log_since(mark, "respawned worker", START_TIMEOUT)
        .unwrap();
    let second = wait_until(
        "the respawned worker to serve",
        START_TIMEOUT,
        |last| match http_get(addr, "/pid") {
            Ok(response) if response.status == 200 => Ok(Some(worker_pid(addr))),
            Ok(response) => {
                *last = response.to_string();
                Ok(None)
            }
            Err(e) => {
                *last = e;
                Ok(None)
            }
        },
    )
    .unwrap();
    assert_ne!(first, second, "the same pid after SIGKILL?");
}

#[test]
fn max_requests_recycles_the_worker() {
    let (kaiser, addr) = start(&[
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--max-requests",
        "3",
        // uWSGI's default of 10 s would make this test wait that long.
        "--min-worker-lifetime",
        "0",
    ]);
    let first = worker_pid(addr);
    for _ in 0..2 {
        let _ = http_get(addr, "/sleep?ms=1").unwrap();
    }
    kaiser
        .wait_for_log("max-requests reached", START_TIMEOUT)
        .unwrap();
    // The old worker serves until its replacement accepts, then finishes and exits.
    kaiser
        .wait_for_log("replaced worker exited", START_TIMEOUT)
        .unwrap();
    assert_ne!(
        worker_pid(addr),
        first,
        "the worker was not replaced after max-requests"
    );
}

#[test]
fn pidfile_and_vacuum_are_removed_on_exit_and_chmod_socket_applies() {
    let dir = TempDir::new("vacuum");
    let pidfile = dir.join("k.pid");
    let socket = dir.join("k.sock");
    let (pidfile_text, socket_text) = (pidfile.display().to_string(), socket.display().to_string());
    let (mut kaiser, _addr) = start(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--socket",
        &socket_text,
        "--pidfile",
        &pidfile_text,
        "--vacuum",
        "--chmod-socket=660",
    ]);
    let written = std::fs::read_to_string(&pidfile).unwrap();
    assert_eq!(written.trim(), kaiser.pid().to_string(), "pidfile content");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "chmod-socket = 660 gave {mode:o}");
    kaiser.signal(libc::SIGTERM);
    assert_eq!(kaiser.expect_exit(EXIT).code(), Some(0));
    assert!(
        !pidfile.exists(),
        "vacuum left the pidfile\n{}",
        kaiser.logs()
    );
    assert!(
        !socket.exists(),
        "vacuum left the unix socket\n{}",
        kaiser.logs()
    );

    // A bare `chmod-socket` in an INI means 666.
    let ini = dir.write(
        "bare.ini",
        format!(
            "[uwsgi]\nsocket = {socket_text}\nchmod-socket =\nwsgi-file = tests/apps/hello.py\n"
        ),
    );
    let ini_text = ini.display().to_string();
    let kaiser = Kaiser::spawn(&["--ini", &ini_text]);
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666, "bare chmod-socket gave {mode:o}");
}

#[test]
fn a_broken_app_is_exit_22_with_its_traceback_unless_need_app_is_off() {
    let mut kaiser = Kaiser::spawn(&[
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        "tests/apps/broken_import.py",
    ]);
    let status = kaiser.expect_exit(EXIT);
    let logs = kaiser.logs();
    assert_eq!(
        status.code(),
        Some(22),
        "need-app (default) with a broken app:\n{logs}"
    );
    assert!(
        logs.contains("Traceback")
            && logs.contains("broken_import.py fails at import time on purpose"),
        "the traceback is missing:\n{logs}"
    );

    let (_kaiser, addr) = start(&[
        "--wsgi-file",
        "tests/apps/broken_import.py",
        "--need-app=false",
    ]);
    let response = http_get(addr, "/").unwrap();
    assert_eq!(
        response.status, 500,
        "need-app = false serves 500s: {response}"
    );
}

#[test]
fn threads_at_import_names_lazy_apps_and_works_with_it() {
    let mut kaiser = Kaiser::spawn(&[
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        "tests/apps/threads_at_import.py",
    ]);
    let status = kaiser.expect_exit(EXIT);
    let logs = kaiser.logs();
    assert_ne!(status.code(), Some(0), "{logs}");
    assert!(
        logs.contains("lazy-apps"),
        "the error must name lazy-apps:\n{logs}"
    );

    let (_kaiser, addr) = start(&[
        "--wsgi-file",
        "tests/apps/threads_at_import.py",
        "--lazy-apps",
        "--processes",
        "2",
    ]);
    let response = http_get(addr, "/").unwrap();
    assert_eq!(response.status, 200, "{response}");
    assert!(
        response.text().starts_with("threads at import"),
        "{response}"
    );
}

/// 0 or 1, as the README promises: an app that fails to import is a failure like any other
/// (it used to exit 22, the vassal's own "app failed" status).
#[test]
fn check_config_exits_0_or_1() {
    let cases: [(&[&str], i32); 3] = [
        (&["--wsgi-file", "tests/apps/hello.py"], 0),
        (&["--wsgi-file", "tests/apps/broken_import.py"], 1),
        (
            &["--wsgi-file", "tests/apps/hello.py", "--processes", "many"],
            1,
        ),
    ];
    for (args, expected) in cases {
        let mut full = vec!["--http-socket", "127.0.0.1:0", "--check-config"];
        full.extend_from_slice(args);
        let mut kaiser = Kaiser::spawn(&full);
        let status = kaiser.expect_exit(EXIT);
        assert_eq!(
            status.code(),
            Some(expected),
            "--check-config {args:?}:\n{}",
            kaiser.logs()
        );
    }
}

#[test]
fn ini_files_by_flag_and_as_a_bare_argument() {
    let dir = TempDir::new("ini");
    let ini = dir.write(
        "site.ini",
        "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = tests/apps/hello.py\nprocesses = 2\nmaster = true\n",
    );
    let ini_text = ini.display().to_string();
    for args in [vec!["--ini", ini_text.as_str()], vec![ini_text.as_str()]] {
        let (kaiser, addr) = start_with(&args);
        let response = http_get(addr, "/").unwrap();
        assert_eq!(
            response.text(),
            "Hello World",
            "kaiser {args:?}: {response}\n{}",
            kaiser.logs()
        );
    }
}

/// Checks `line` against uWSGI's default request log format (reference §7.1).
fn check_request_line(line: &str, method: &str, uri: &str, status: u16, body: usize) {
    let fail = |why: &str| -> ! { panic!("request log line {why}: {line:?}") };
    let rest = line
        .strip_prefix("[pid: ")
        .unwrap_or_else(|| fail("does not start with `[pid: `"));
    let (pid, rest) = rest
        .split_once("|app: ")
        .unwrap_or_else(|| fail("has no `|app: `"));
    assert!(pid.parse::<u32>().is_ok(), "pid in {line:?}");
    let (_app, rest) = rest
        .split_once("|req: ")
        .unwrap_or_else(|| fail("has no `|req: `"));
    let (counts, rest) = rest.split_once("] ").unwrap_or_else(|| fail("has no `] `"));
    assert!(
        counts.split('/').all(|n| n.parse::<u64>().is_ok()),
        "req counts in {line:?}"
    );
    let (remote, rest) = rest
        .split_once(" (")
        .unwrap_or_else(|| fail("has no remote user"));
    assert_eq!(remote, "127.0.0.1", "{line}");
    let (_user, rest) = rest
        .split_once(") {")
        .unwrap_or_else(|| fail("has no vars block"));
    let (vars, rest) = rest
        .split_once("} [")
        .unwrap_or_else(|| fail("has no vars block end"));
    let words: Vec<&str> = vars.split(' ').collect();
    assert!(
        words.len() == 5 && words[1] == "vars" && words[2] == "in" && words[4] == "bytes",
        "vars block {vars:?} in {line:?}"
    );
    let (ctime, rest) = rest.split_once("] ").unwrap_or_else(|| fail("has no date"));
    assert_eq!(ctime.len(), 24, "ctime {ctime:?} in {line:?}");
    let expected = format!("{method} {uri} => generated {body} bytes in ");
    let rest = rest
        .strip_prefix(&expected)
        .unwrap_or_else(|| fail(&format!("lacks {expected:?}")));
    let (msecs, rest) = rest
        .split_once(" msecs ")
        .unwrap_or_else(|| fail("has no msecs"));
    assert!(msecs.parse::<u64>().is_ok(), "{line}");
    let expected = format!("(HTTP/1.1 {status}) ");
    let rest = rest
        .strip_prefix(&expected)
        .unwrap_or_else(|| fail(&format!("lacks {expected:?}")));
    let (headers, rest) = rest
        .split_once(" headers in ")
        .unwrap_or_else(|| fail("has no header count"));
    assert!(headers.parse::<u32>().is_ok(), "{line}");
    let (_bytes, rest) = rest
        .split_once(" bytes (")
        .unwrap_or_else(|| fail("has no header bytes"));
    assert_eq!(rest, "1 switches on core 0)", "{line}");
}

#[test]
fn request_log_matches_uwsgi_and_disable_logging_turns_it_off() {
    let (kaiser, addr) = start(&["--wsgi-file", "tests/apps/wsgi_suite.py"]);
    let mark = kaiser.log_mark();
    let response = http_get(addr, "/sleep?ms=2").unwrap();
    let line = kaiser
        .wait_for_log_since(mark, "GET /sleep?ms=2 =>", Duration::from_secs(5))
        .unwrap();
    check_request_line(&line, "GET", "/sleep?ms=2", 200, response.body.len());

    let (kaiser, addr) = start(&[
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--disable-logging",
    ]);
    let _ = http_get(addr, "/sleep?ms=2").unwrap();
    // The log message the app itself writes to wsgi.errors comes after the request; once it
    // is there, a request line would have been too.
    let _ = http_get(addr, "/log?msg=after-the-request").unwrap();
    kaiser
        .wait_for_log("after-the-request", Duration::from_secs(5))
        .unwrap();
    let logs = kaiser.logs();
    assert!(
        !logs.contains("=> generated"),
        "disable-logging still logs requests:\n{logs}"
    );
}

/// Runs request loops on fresh connections until `stop`, counting failures.
fn client_loop(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
) {
    while !stop.load(Ordering::Relaxed) {
        match http_get(addr, "/") {
            Ok(response) if response.status == 200 => {
                ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(response) => failures.lock().unwrap().push(response.to_string()),
            Err(e) => failures.lock().unwrap().push(e),
        }
    }
}

#[test]
fn sighup_reloads_gracefully_with_zero_failed_requests_and_keeps_serving_a_broken_app() {
    let dir = TempDir::new("reload");
    let app_path = dir.write("app.py", std::fs::read(app("hello.py")).unwrap());
    let app_text = app_path.display().to_string();
    let (kaiser, addr) = start(&[
        "--wsgi-file",
        &app_text,
        "--processes",
        "2",
        "--threads",
        "2",
    ]);

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
            std::thread::spawn(move || client_loop(addr, stop, ok, failures))
        })
        .collect();
    wait_until("the client loop to get answers", START_TIMEOUT, |_| {
        Ok((ok.load(Ordering::Relaxed) > 20).then_some(()))
    })
    .unwrap();
    let mark = kaiser.log_mark();
    kaiser.signal(libc::SIGHUP);
    kaiser
        .wait_for_log_since(mark, ": reloaded in ", START_TIMEOUT)
        .unwrap();
    wait_until("the previous workers to finish", START_TIMEOUT, |last| {
        *last = kaiser.logs_since(mark);
        Ok((kaiser
            .logs_since(mark)
            .matches("previous-generation worker finished")
            .count()
            == 2)
            .then_some(()))
    })
    .unwrap();
    let served_before = ok.load(Ordering::Relaxed);
    wait_until(
        "requests served by the new generation",
        START_TIMEOUT,
        |_| Ok((ok.load(Ordering::Relaxed) > served_before + 20).then_some(())),
    )
    .unwrap();

    // Now break the app and reload again: the check fails and the old workers stay.
    std::fs::write(&app_path, "raise RuntimeError('now broken on purpose')\n").unwrap();
    let mark = kaiser.log_mark();
    kaiser.signal(libc::SIGHUP);
    kaiser
        .wait_for_log_since(mark, "reload aborted", START_TIMEOUT)
        .unwrap();
    let served_before = ok.load(Ordering::Relaxed);
    wait_until(
        "requests served after the failed reload",
        START_TIMEOUT,
        |_| Ok((ok.load(Ordering::Relaxed) > served_before + 20).then_some(())),
    )
    .unwrap();

    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed during reloads; first: {}\n{}",
        failures.len(),
        ok.load(Ordering::Relaxed),
        failures[0],
        kaiser.logs()
    );
}

/// Regression: with one client making requests back to back, a reload could stall a
/// request until the next connection arrived. The connection's EPOLLEXCLUSIVE wake-up went
/// to an old worker that was stopping, which dropped the listener without accepting, and
/// no other worker was woken.
#[test]
fn a_lone_client_never_stalls_across_reloads() {
    let (kaiser, addr) = start(&[
        "--wsgi-file",
        app("hello.py").to_str().unwrap(),
        "--processes",
        "2",
    ]);
    let stop = Arc::new(AtomicBool::new(false));
    let slowest = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let client = {
        let (stop, slowest, ok, failures) =
            (stop.clone(), slowest.clone(), ok.clone(), failures.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                match http_get(addr, "/") {
                    Ok(response) if response.status == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(response) => failures.lock().unwrap().push(response.to_string()),
                    Err(e) => failures.lock().unwrap().push(e),
                }
                slowest.fetch_max(started.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
        })
    };
    for round in 0..6 {
        let mark = kaiser.log_mark();
        kaiser.signal(libc::SIGHUP);
        kaiser
            .wait_for_log_since(mark, ": reloaded in ", START_TIMEOUT)
            .unwrap();
        wait_until("the previous workers to finish", START_TIMEOUT, |last| {
            *last = kaiser.logs_since(mark);
            Ok((last.matches("previous-generation worker finished").count() == 2).then_some(()))
        })
        .unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "failed requests during reloads: {failures:?}"
    );
    assert!(
        ok.load(Ordering::Relaxed) > 50,
        "too few requests served: {}",
        ok.load(Ordering::Relaxed)
    );
    let slowest = slowest.load(Ordering::Relaxed);
    assert!(
        slowest < 900,
        "a request waited {slowest} ms during a reload (a lost wake-up leaves it waiting until the next connection or the 1 s backstop)"
    );
}

#[test]
fn the_objects_the_import_made_are_frozen_out_of_the_workers_collections() {
    let dir = TempDir::new("freeze");
    // The response: how many objects sit in the permanent generation, and whether the
    // collector still runs for everything made later.
    let app = dir.write(
        "app.py",
        r#"import gc
made_at_import = [[i] for i in range(10000)]  # lists are always tracked

def application(environ, start_response):
    body = f"{gc.get_freeze_count()} {gc.isenabled()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"#,
    );
    let app_text = app.display().to_string();
    for lazy in [false, true] {
        let mut args = vec!["--wsgi-file", &app_text, "--processes", "2"];
        if lazy {
            args.push("--lazy-apps");
        }
        let (_kaiser, addr) = start(&args);
        let response = http_get(addr, "/").unwrap();
        let (frozen, enabled) = response
            .text()
            .split_once(' ')
            .map(|(a, b)| (a.parse::<u64>().unwrap(), b.to_string()))
            .unwrap();
        assert!(
            frozen > 10_000,
            "lazy-apps {lazy}: the import's objects are frozen, {frozen} are: {response}"
        );
        assert_eq!(
            enabled, "True",
            "lazy-apps {lazy}: the collector still runs"
        );
    }
}

/// The scheduling policy of every thread of `pid` (`/proc/PID/task/TID/stat`, field 41:
/// 0 is SCHED_OTHER, 3 is SCHED_BATCH).
fn thread_policies(pid: i32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .map(|task| {
            let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap();
            // Fields start after the command name, which may hold spaces: "(name) S ..." is
            // field 3 onward, so field 41 is the 39th after the ')'.
            let after_name = &stat[stat.rfind(')').unwrap() + 2..];
            after_name.split(' ').nth(38).unwrap().parse().unwrap()
        })
        .collect()
}

#[test]
fn workers_run_under_sched_batch_unless_batch_scheduling_is_off() {
    for (extra, policy) in [(None, 3), (Some("--batch-scheduling=false"), 0)] {
        let mut args = vec!["--wsgi-file", "tests/apps/wsgi_suite.py", "--threads", "2"];
        args.extend(extra);
        let (kaiser, addr) = start(&args);
        let worker = thread_policies(worker_pid(addr));
        assert!(
            worker.len() >= 3,
            "{extra:?}: the worker's main thread and two request threads: {worker:?}"
        );
        assert!(
            worker.iter().all(|&p| p == policy),
            "{extra:?}: every thread of the worker under policy {policy}: {worker:?}"
        );
        let master = thread_policies(kaiser.pid());
        assert!(
            master.iter().all(|&p| p == 0),
            "{extra:?}: the master keeps the normal policy: {master:?}"
        );
    }
}

/// `nohup` ignores SIGHUP, and a shell script's `kaiser … &` ignores SIGINT and SIGQUIT.
/// An ignored signal never reaches the master's signalfd; the master undoes that, so it
/// still reloads and stops, as uWSGI (which installs handlers) does. SIGCHLD ignored would
/// make the kernel reap workers behind the master's back.
#[test]
fn signals_ignored_by_whoever_started_kaiser_still_reload_and_stop_it() {
    use std::os::unix::process::CommandExt;
    let args = ["--wsgi-file", "tests/apps/wsgi_suite.py"];
    let (mut kaiser, addr) = start_http_with(&args, |command| {
        // SAFETY: signal(2) is async-signal-safe, as code between fork and exec must be.
        unsafe {
            command.pre_exec(|| {
                for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGCHLD] {
                    libc::signal(sig, libc::SIG_IGN);
                }
                Ok(())
            });
        }
    });
    let first = worker_pid(addr);
    let mark = kaiser.log_mark();
    kaiser.signal(libc::SIGHUP);
    kaiser
        .wait_for_log_since(mark, ": reloaded in ", START_TIMEOUT)
        .unwrap();
    // The old worker may still take a request or two while it stops.
    wait_until(
        "a request served by the new worker",
        START_TIMEOUT,
        |seen| {
            let pid = worker_pid(addr);
            *seen = format!("served by {pid}, the old worker is {first}");
            Ok((pid != first).then_some(()))
        },
    )
    .unwrap();
    kaiser.signal(libc::SIGINT);
    let status = kaiser.wait_exit(EXIT);
    assert!(
        status.is_some(),
        "SIGINT did not stop the master\n{}",
        kaiser.logs()
    );
}

/// The request lines in `logs` (the part of each after the date).
fn logged_requests(logs: &str) -> Vec<String> {
    logs.lines()
        .filter(|line| line.contains("=> generated"))
        .filter_map(|line| line.split_once("] ").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_once("] ").map(|(_, rest)| rest.to_string()))
        .collect()
}

/// `disable-logging` with `log-4xx`, `log-5xx`, `log-slow`, `log-big`, `log-sendfile`,
/// `log-zero`, `log-ioerror` and `uwsgi.log_this_request()`: exactly the requests that match
/// get their line.
#[test]
fn with_logging_disabled_the_log_options_pick_the_requests_that_are_logged() {
    let (kaiser, addr) = start(&[
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--disable-logging",
        "--log-4xx",
        "--log-5xx",
        "--log-slow",
        "300",
        "--log-big",
        "100000",
        "--log-sendfile",
    ]);
    // (target, status, logged)
    let requests = [
        ("/sleep?ms=1", 200, false),
        ("/missing", 404, true),
        ("/error", 500, true),
        ("/sleep?ms=350", 200, true),
        ("/file", 200, true),
        ("/big?bytes=200000", 200, true),
        ("/big?bytes=1000", 200, false),
        ("/status?code=204", 204, false),
        ("/log?msg=asked&this=1", 200, true),
    ];
    for (target, status, _) in requests {
        assert_eq!(http_get(addr, target).unwrap().status, status, "{target}");
    }
    // The app's own message comes after the requests above; once it is there, their lines
    // would have been too.
    let _ = http_get(addr, "/log?msg=end-of-the-requests").unwrap();
    kaiser
        .wait_for_log("end-of-the-requests", Duration::from_secs(5))
        .unwrap();
    let lines = logged_requests(&kaiser.logs());
    for (target, _, logged) in requests {
        let prefix = format!("GET {target} =>");
        assert_eq!(
            lines.iter().any(|line| line.starts_with(&prefix)),
            logged,
            "{target} logged should be {logged}; request lines:\n{}",
            lines.join("\n")
        );
    }
    let file_line = lines
        .iter()
        .find(|l| l.starts_with("GET /file =>"))
        .unwrap();
    assert!(
        file_line.contains(" msecs via sendfile() (HTTP/1.1 200)"),
        "{file_line}"
    );
    assert_eq!(
        lines.len(),
        6,
        "one line per matching request:\n{}",
        lines.join("\n")
    );

    let (kaiser, addr) = start(&[
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--disable-logging",
        "--log-zero",
        "--log-ioerror",
    ]);
    assert_eq!(http_get(addr, "/status?code=204").unwrap().status, 204);
    assert_eq!(http_get(addr, "/sleep?ms=1").unwrap().status, 200);
    // A body that stops short: the read fails, and the app's 400 names it.
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
        .unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let _ = http_get(addr, "/log?msg=end-of-the-second-requests").unwrap();
    kaiser
        .wait_for_log("end-of-the-second-requests", Duration::from_secs(5))
        .unwrap();
    let lines = logged_requests(&kaiser.logs());
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("GET /status?code=204 =>")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("POST /echo =>")),
        "{lines:#?}"
    );
    assert_eq!(lines.len(), 2, "{lines:#?}");
}

/// `logto`: kaiser's lines, the request lines and the app's own output go to the file, not to
/// stderr; after logrotate's rename, a reload (SIGHUP) writes to a new file at the path. A file
/// that cannot be opened stops kaiser with a message naming it.
#[test]
fn logto_appends_every_line_to_the_file_and_a_reload_reopens_it() {
    let dir = TempDir::new("logto");
    let socket = dir.join("http.sock");
    let log = dir.join("app.log");
    let rotated = dir.join("app.log.1");
    let mut kaiser = Kaiser::spawn(&[
        "--http-socket",
        socket.to_str().unwrap(),
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--logto",
        log.to_str().unwrap(),
    ]);
    let read = |path: &std::path::Path| std::fs::read_to_string(path).unwrap_or_default();
    let wait_in = |path: &std::path::Path, needle: &str| {
        wait_until(
            &format!("`{needle}` in {}", path.display()),
            Duration::from_secs(15),
            |last| {
                *last = read(path);
                Ok(last.contains(needle).then_some(()))
            },
        )
        .unwrap_or_else(|e| panic!("{e}\nkaiser's stderr:\n{}", kaiser.logs()))
    };
    wait_in(&log, "ready in");
    let response = http_get_unix(&socket, "/log?msg=from-the-app").unwrap();
    assert_eq!(response.status, 200);
    wait_in(&log, "GET /log?msg=from-the-app =>");
    assert!(read(&log).contains("from-the-app\n"), "{}", read(&log));

    std::fs::rename(&log, &rotated).unwrap();
    kaiser.signal(libc::SIGHUP);
    wait_in(&log, ": reloaded in");
    // A worker of the previous generation may still take one request (and log it to the
    // file it has open); once it is gone, every request is the new workers'.
    wait_in(&log, "previous-generation worker finished");
    let _ = http_get_unix(&socket, "/log?msg=after-the-rotation").unwrap();
    wait_in(&log, "GET /log?msg=after-the-rotation =>");
    assert!(
        !read(&rotated).contains("after-the-rotation"),
        "the rotated file still gets lines:\n{}",
        read(&rotated)
    );
    // Stopped, nothing can still be on its way to stderr.
    let stderr = kaiser.stop_and_read_logs(libc::SIGTERM, Duration::from_secs(15));
    assert!(
        !stderr.contains("ready in") && !stderr.contains("from-the-app"),
        "lines reached stderr despite logto:\n{stderr}"
    );
    unopenable_log_file_fails("logto", &dir);
}

/// kaiser with `--OPTION` naming a file in a missing directory exits 1, naming the file and
/// the option, before it detaches or serves.
fn unopenable_log_file_fails(option: &str, dir: &TempDir) {
    let missing = dir.join("no-such-dir/app.log");
    let flag = format!("--{option}");
    let mut kaiser = Kaiser::spawn(&[
        "--http-socket",
        dir.join("unused.sock").to_str().unwrap(),
        "--wsgi-file",
        "tests/apps/hello.py",
        &flag,
        missing.to_str().unwrap(),
    ]);
    assert_eq!(
        kaiser.expect_exit(START_TIMEOUT).code(),
        Some(1),
        "{}",
        kaiser.logs()
    );
    let expected = format!(
        "cannot open the log file `{}` (`{option}`)",
        missing.display()
    );
    kaiser
        .wait_for_log(&expected, START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// `log-micros`, `memory-report` and `log-x-forwarded-for` change the request line as they
/// do in uWSGI.
#[test]
fn log_micros_memory_report_and_x_forwarded_for_shape_the_request_line() {
    let (kaiser, addr) = start(&[
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--log-micros",
        "--memory-report",
        "--log-x-forwarded-for",
    ]);
    let mut conn = HttpConn::new(std::net::TcpStream::connect(addr).unwrap());
    let forwarded = request_bytes(
        "GET",
        "/sleep?ms=3",
        &[("X-Forwarded-For", "203.0.113.7")],
        b"",
    );
    assert_eq!(conn.request(&forwarded).unwrap().status, 200);
    assert_eq!(http_get(addr, "/sleep?ms=4").unwrap().status, 200);
    let line = |uri: &str| {
        kaiser
            .wait_for_log(&format!("GET {uri} =>"), Duration::from_secs(5))
            .unwrap()
    };
    for (uri, address) in [("/sleep?ms=3", "203.0.113.7"), ("/sleep?ms=4", "127.0.0.1")] {
        let line = line(uri);
        let rest = line
            .strip_prefix("{address space usage: ")
            .unwrap_or_else(|| panic!("no memory report in front: {line}"));
        let (vsz, rest) = rest.split_once(" bytes/").unwrap();
        let (_, rest) = rest.split_once("MB} {rss usage: ").unwrap();
        let (rss, rest) = rest.split_once(" bytes/").unwrap();
        let (vsz, rss): (u64, u64) = (vsz.parse().unwrap(), rss.parse().unwrap());
        assert!(rss > 1 << 20 && vsz > rss, "vsz {vsz} rss {rss}: {line}");
        assert!(
            rest.contains(&format!("] {address} () {{")),
            "address {address}: {line}"
        );
        let micros: u64 = line
            .split(" micros ")
            .next()
            .and_then(|head| head.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no time in micros: {line}"));
        assert!(micros >= 3000, "{micros} µs for a 3 ms sleep: {line}");
    }
}

/// Kills a daemonized instance's process group (its session: master and workers) when the
/// test ends, however it ends.
struct DaemonGuard(i32);

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        if self.0 > 0 {
            // SAFETY: kill has no memory effects.
            unsafe { libc::kill(-self.0, libc::SIGKILL) };
        }
    }
}

/// Fields 5 (process group), 6 (session) and 7 (controlling tty) of /proc/PID/stat; `None`
/// once the process is gone or a zombie (its new parent may be slow to reap it).
fn group_session_tty(pid: i32) -> Option<(i32, i32, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    if fields[0] == "Z" {
        return None;
    }
    Some((
        fields[2].parse().ok()?,
        fields[3].parse().ok()?,
        fields[4].parse().ok()?,
    ))
}

/// `daemonize`: the command returns 0 at once; the instance runs on in a session of its own
/// with no terminal, logging to the file, and stops on SIGINT by its pid.
#[test]
fn daemonize_detaches_and_logs_to_the_file() {
    let dir = TempDir::new("daemonize");
    let socket = dir.join("http.sock");
    let log = dir.join("daemon.log");
    let pidfile = dir.join("daemon.pid");
    let mut kaiser = Kaiser::spawn(&[
        "--http-socket",
        socket.to_str().unwrap(),
        "--wsgi-file",
        "tests/apps/hello.py",
        "--daemonize",
        log.to_str().unwrap(),
        "--pidfile",
        pidfile.to_str().unwrap(),
    ]);
    let status = kaiser.expect_exit(START_TIMEOUT);
    assert!(status.success(), "{status:?}\n{}", kaiser.logs());
    let read = |path: &std::path::Path| std::fs::read_to_string(path).unwrap_or_default();
    let pid: i32 = wait_until("the daemon's pidfile", START_TIMEOUT, |last| {
        *last = read(&pidfile);
        Ok(last.trim().parse().ok())
    })
    .unwrap();
    let (group, session, tty) = group_session_tty(pid).expect("the daemon runs");
    let _guard = DaemonGuard(group);
    wait_until("`ready in` in the daemon's log", START_TIMEOUT, |last| {
        *last = read(&log);
        Ok(last.contains("ready in").then_some(()))
    })
    .unwrap();
    let (_, own_session, _) = group_session_tty(std::process::id() as i32).unwrap();
    assert_ne!(
        session, own_session,
        "the daemon stayed in the test's session"
    );
    assert_ne!(
        session, pid,
        "the daemon leads its session and could take a terminal"
    );
    assert_eq!(tty, 0, "the daemon has a controlling terminal");
    assert!(
        kaiser.logs().trim().is_empty(),
        "output before detaching:\n{}",
        kaiser.logs()
    );
    assert_eq!(http_get_unix(&socket, "/").unwrap().text(), "Hello World");

    // SAFETY: kill has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    wait_until("the daemon to exit", Duration::from_secs(15), |last| {
        *last = read(&log);
        Ok(group_session_tty(pid).is_none().then_some(()))
    })
    .unwrap();
    assert!(read(&log).contains("goodbye"), "{}", read(&log));

    unopenable_log_file_fails("daemonize", &dir);
}

/// Request threads get the stack Python's own threads get (the stack limit), so recursion
/// that plain Python survives does not kill the worker; `threads-stacksize` sets it in KB.
#[test]
fn request_threads_have_the_stack_python_threads_have_and_threads_stacksize_sets_it() {
    // 6000 levels through C overflowed the 2 MiB stacks request threads used to have.
    let (kaiser, addr) = start(&["--wsgi-file", "tests/apps/wsgi_suite.py", "--threads", "2"]);
    let response = http_get(addr, "/recurse?depth=6000").unwrap();
    assert_eq!(
        (response.status, response.text().trim()),
        (200, "6000"),
        "{}",
        kaiser.logs()
    );

    // 30000 levels need more than 8 MiB.
    let (kaiser, addr) = start(&[
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--threads-stacksize",
        "65536",
    ]);
    let response = http_get(addr, "/recurse?depth=30000").unwrap();
    assert_eq!(
        (response.status, response.text().trim()),
        (200, "30000"),
        "{}",
        kaiser.logs()
    );
    // The one worker serves the next request only if it survived; if it died, its
    // replacement serves it, after the master logged the death.
    let _ = http_get(addr, "/log?msg=after-the-recursion").unwrap();
    kaiser.assert_no_log_before(0, "worker died", "after-the-recursion", START_TIMEOUT);
}

/// A worker that stops gracefully (recycled by `max-requests`, or on SIGTERM) runs the app's
/// exit handlers, `uwsgi.atexit` first, as uWSGI's workers do when they finalize Python.
#[test]
fn graceful_worker_exits_run_the_apps_exit_handlers() {
    let dir = TempDir::new("atexit");
    let record = dir.join("record.txt");
    let env = format!("ATEXIT_RECORD={}", record.display());
    let (mut kaiser, addr) = start(&[
        "--wsgi-file",
        "tests/apps/atexit_app.py",
        "--env",
        &env,
        "--max-requests",
        "2",
        "--min-worker-lifetime",
        "0",
    ]);
    let read = || std::fs::read_to_string(&record).unwrap_or_default();
    let pid = || {
        let text = http_get(addr, "/").unwrap().text();
        text.strip_prefix("ok pid=")
            .and_then(|pid| pid.parse::<i32>().ok())
            .unwrap_or_else(|| panic!("{text:?}"))
    };
    let first = pid();
    assert_eq!(pid(), first);
    let recycled = format!("uwsgi.atexit pid={first}\natexit pid={first}\n");
    wait_until(
        "the recycled worker's exit handlers",
        Duration::from_secs(15),
        |last| {
            *last = read();
            Ok((*last == recycled).then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", kaiser.logs()));
    kaiser
        .wait_for_log(&format!("printed by pid {first}"), Duration::from_secs(5))
        .unwrap();

    let second = pid();
    assert_ne!(second, first);
    kaiser.signal(libc::SIGTERM);
    assert!(kaiser.expect_exit(START_TIMEOUT).success());
    assert_eq!(
        read(),
        format!("{recycled}uwsgi.atexit pid={second}\natexit pid={second}\n"),
        "{}",
        kaiser.logs()
    );
    kaiser
        .wait_for_log(&format!("printed by pid {second}"), START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// `uwsgi.workers()`, `total_requests()`, `request_id()`, `mem()` and `micros()` report the
/// scoreboard's figures with uWSGI's keys.
#[test]
fn the_uwsgi_module_reports_workers_requests_and_memory() {
    let (_kaiser, addr) = start(&[
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--processes",
        "2",
    ]);
    for _ in 0..6 {
        assert_eq!(http_get(addr, "/sleep?ms=1").unwrap().status, 200);
    }
    // A worker counts a request after its response went out, so the client can ask before
    // the last one is counted: ask until the other worker is done with it.
    let info = wait_until("the six requests counted", START_TIMEOUT, |last| {
        let response = http_get(addr, "/uwsgi")?;
        let info: serde_json::Value =
            serde_json::from_str(&response.text()).unwrap_or_else(|e| panic!("{e}: {response}"));
        let me = info["worker_id"].as_u64();
        let settled = info["workers"].as_array().is_some_and(|workers| {
            let total: u64 = workers.iter().filter_map(|w| w["requests"].as_u64()).sum();
            total >= 6
                && workers
                    .iter()
                    .all(|w| w["id"].as_u64() == me || w["status"] == "idle")
        });
        *last = info.to_string();
        Ok(settled.then_some(info))
    })
    .unwrap();
    let workers = info["workers"].as_array().expect("workers() is a sequence");
    assert_eq!(workers.len(), 2, "{info}");
    let me = info["worker_id"].as_u64().unwrap();
    let total: u64 = workers
        .iter()
        .map(|w| w["requests"].as_u64().unwrap())
        .sum();
    assert!(total >= 6, "{info}");
    assert_eq!(info["total_requests"].as_u64(), Some(total), "{info}");
    for worker in workers {
        let id = worker["id"].as_u64().unwrap();
        assert!(worker["pid"].as_u64().unwrap() > 1, "{worker}");
        assert!(worker["rss"].as_u64().unwrap() > 1 << 20, "{worker}");
        assert!(
            worker["vsz"].as_u64().unwrap() > worker["rss"].as_u64().unwrap(),
            "{worker}"
        );
        assert_eq!(worker["respawn_count"], 0, "{worker}");
        // The asking worker is in a request right now.
        let expected = if id == me { "busy" } else { "idle" };
        assert_eq!(worker["status"], expected, "{worker}");
        if id == me {
            assert_eq!(info["request_id"], worker["requests"], "{info}");
        }
    }
    let (rss, vsz) = (
        info["mem"][0].as_u64().unwrap(),
        info["mem"][1].as_u64().unwrap(),
    );
    assert!(rss > 1 << 20 && vsz > rss, "{info}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let micros = info["micros"].as_u64().unwrap();
    assert!(
        micros <= now && now - micros < 60_000_000,
        "{micros} vs {now}"
    );
}
