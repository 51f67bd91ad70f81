//! Hooks (`hook-*`, `exec-*`): each phase runs in the process uWSGI runs it in (master or
//! worker, before or after the privilege drop), `print:` reaches the log, a failing `exec:`
//! stops the vassal, an unknown action is a config error with file and line, and the Docker
//! line `hook-master-start = unix_signal:15 gracefully_kill_them_all` keeps SIGTERM graceful.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use common::*;

const EXIT: Duration = Duration::from_secs(15);

/// Lines `PHASE PID` that `exec:echo PHASE $PPID >> trace` wrote: `$PPID` of the shell is
/// the process that ran the hook.
fn trace_lines(path: &std::path::Path) -> Vec<(String, i32)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (phase, pid) = line.split_once(' ')?;
            Some((phase.to_string(), pid.trim().parse().ok()?))
        })
        .collect()
}

fn ini(dir: &TempDir, body: &str) -> String {
    dir.write("app.ini", format!("[uwsgi]\n{body}"))
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn each_phase_runs_in_its_process_and_order() {
    let dir = TempDir::new("hooks");
    let trace = dir.join("trace");
    let record = |phase: &str| format!("exec:echo {phase} $PPID >> {}", trace.display());
    let config = ini(
        &dir,
        &format!(
            "processes = 2\n\
             wsgi-file = tests/apps/hello.py\n\
             hook-asap = {}\n\
             hook-pre-app = {}\n\
             hook-pre-app = print:hello from the pre-app hook\n\
             hook-post-app = {}\n\
             hook-post-fork = {}\n\
             hook-accepting = {}\n\
             hook-accepting1 = {}\n\
             hook-accepting-once = {}\n\
             hook-master-start = {}\n\
             env = HOOK_PHASE=exec-asap\n\
             exec-asap = echo $HOOK_PHASE $PPID >> {}\n",
            record("asap"),
            record("pre-app"),
            record("post-app"),
            record("post-fork"),
            record("accepting"),
            record("accepting1"),
            record("accepting-once"),
            record("master-start"),
            trace.display(),
        ),
    );
    let (kaiser, _addr) = start_http(&["--ini", &config]);
    let master = kaiser.pid();
    let lines = wait_until("every hook to have run", START_TIMEOUT, |last| {
        let lines = trace_lines(&trace);
        *last = format!("{lines:?}");
        let count = |phase: &str| lines.iter().filter(|(p, _)| p == phase).count();
        let done = count("accepting") == 2
            && count("accepting-once") == 2
            && count("accepting1") == 1
            && count("master-start") == 1;
        Ok(done.then_some(lines))
    })
    .unwrap();
    let pids_of = |phase: &str| -> Vec<i32> {
        lines
            .iter()
            .filter(|(p, _)| p == phase)
            .map(|(_, pid)| *pid)
            .collect()
    };
    // The master's phases, in order, before any worker exists; `exec-asap` after `hook-asap`.
    let firsts: Vec<&str> = lines.iter().take(4).map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        firsts,
        ["asap", "exec-asap", "pre-app", "post-app"],
        "{lines:?}"
    );
    for phase in ["asap", "exec-asap", "pre-app", "post-app", "master-start"] {
        assert_eq!(
            pids_of(phase),
            vec![master],
            "{phase} runs in the master: {lines:?}"
        );
    }
    // The workers' phases, once per worker, in each worker.
    let mut workers = pids_of("post-fork");
    workers.sort();
    assert_eq!(workers.len(), 2, "{lines:?}");
    assert!(!workers.contains(&master), "{lines:?}");
    let mut accepting = pids_of("accepting");
    accepting.sort();
    assert_eq!(accepting, workers, "{lines:?}");
    let mut once = pids_of("accepting-once");
    once.sort();
    assert_eq!(once, workers, "{lines:?}");
    assert!(workers.contains(&pids_of("accepting1")[0]), "{lines:?}");
    for (phase, pid) in &lines {
        if phase == "accepting" {
            let fork_at = lines
                .iter()
                .position(|l| l == &("post-fork".to_string(), *pid));
            let accept_at = lines
                .iter()
                .position(|l| l == &("accepting".to_string(), *pid));
            assert!(fork_at < accept_at, "post-fork before accepting: {lines:?}");
        }
    }
    let logs = kaiser.logs();
    assert!(logs.contains("hello from the pre-app hook"), "{logs}");
    assert!(
        logs.contains("running \"print:hello from the pre-app hook\" (pre app)..."),
        "{logs}"
    );
}

/// As root with `uid`/`gid`: `as-root` runs before the drop, `as-user` after, both in the
/// master. Not as root, neither runs (as in uWSGI), and the log says so.
#[test]
fn as_root_runs_before_the_privilege_drop_and_as_user_after() {
    let dir = TempDir::new("hooks-root");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = ini(
        &dir,
        &format!(
            "uid = nobody\n\
             gid = nogroup\n\
             wsgi-file = tests/apps/hello.py\n\
             hook-as-root = write:{root} written before the drop\n\
             hook-as-user = create:{user}\n\
             exec-as-root = id -u > {exec_root}\n\
             exec-as-user = id -u > {exec_user}\n",
            root = dir.join("as-root").display(),
            user = dir.join("as-user").display(),
            exec_root = dir.join("exec-as-root").display(),
            exec_user = dir.join("exec-as-user").display(),
        ),
    );
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    if !is_root {
        let config = ini(
            &dir,
            &format!(
                "wsgi-file = tests/apps/hello.py\nhook-as-root = create:{}\n",
                dir.join("x").display()
            ),
        );
        let (kaiser, _) = start_http(&["--ini", &config]);
        assert!(
            kaiser
                .logs()
                .contains("not run: kaiser was not started as root"),
            "{}",
            kaiser.logs()
        );
        assert!(!dir.join("x").exists());
        return;
    }
    let (kaiser, _) = start_http(&["--ini", &config]);
    let owner = |name: &str| {
        let meta = std::fs::metadata(dir.join(name))
            .unwrap_or_else(|e| panic!("{name} was not created ({e}):\n{}", kaiser.logs()));
        meta.uid()
    };
    assert_eq!(owner("as-root"), 0, "hook-as-root runs as root");
    assert_eq!(owner("as-user"), 65534, "hook-as-user runs as nobody");
    let text = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    assert_eq!(text("as-root"), "written before the drop");
    assert_eq!(text("exec-as-root").trim(), "0");
    assert_eq!(text("exec-as-user").trim(), "65534");
}

#[test]
fn a_failing_exec_stops_the_vassal_and_safeexec_does_not() {
    let dir = TempDir::new("hooks-fail");
    // In the master, before anything is bound: the vassal exits 1 with uWSGI's line.
    let config = ini(
        &dir,
        "http-socket = 127.0.0.1:0\nwsgi-file = tests/apps/hello.py\nexec-asap = exit 3\n",
    );
    let mut kaiser = Kaiser::spawn(&["--ini", &config]);
    let status = kaiser.expect_exit(EXIT);
    let logs = kaiser.logs();
    assert_eq!(status.code(), Some(1), "{logs}");
    assert!(
        logs.contains("command \"exit 3\" exited with non-zero code: 3"),
        "{logs}"
    );
    assert!(
        logs.contains("hook `exit 3` (asap) failed: command exited with status 3"),
        "{logs}"
    );

    // In a worker: the worker tells the master, which stops the whole vassal.
    let config = ini(
        &dir,
        "http-socket = 127.0.0.1:0\nwsgi-file = tests/apps/hello.py\nhook-post-fork = exec:false\n",
    );
    let mut kaiser = Kaiser::spawn(&["--ini", &config]);
    kaiser.expect_exit(EXIT);
    let logs = kaiser.logs();
    assert!(
        logs.contains("hook `exec:false` (post-fork) failed: command exited with status 1; stopping the vassal"),
        "{logs}"
    );
    assert!(
        !logs.contains("respawned worker"),
        "a fatal worker hook is not respawned into a loop: {logs}"
    );

    // `safeexec:` logs the failure and carries on.
    let config = ini(
        &dir,
        "wsgi-file = tests/apps/hello.py\nhook-asap = safeexec:false\n",
    );
    let (kaiser, addr) = start_http(&["--ini", &config]);
    assert_eq!(http_get(addr, "/").unwrap().status, 200);
    assert!(
        kaiser
            .logs()
            .contains("command \"false\" exited with non-zero code: 1"),
        "{}",
        kaiser.logs()
    );
}

#[test]
fn an_unknown_action_is_a_config_error_with_file_and_line() {
    let dir = TempDir::new("hooks-bad");
    let config = ini(
        &dir,
        "wsgi-file = tests/apps/hello.py\nhook-pre-app = frobnicate:now\n",
    );
    let mut kaiser = Kaiser::spawn(&["--ini", &config, "--check-config"]);
    let status = kaiser.expect_exit(EXIT);
    let logs = kaiser.logs();
    assert_eq!(status.code(), Some(1), "{logs}");
    assert!(logs.contains("app.ini:3"), "names file and line: {logs}");
    assert!(logs.contains("unknown hook action `frobnicate`"), "{logs}");
}

/// The line Docker images carry for uWSGI 2.0, where SIGTERM reloads: accepted, logged as
/// what kaiser does anyway, and SIGTERM still lets the request in flight finish.
#[test]
fn docker_unix_signal_line_is_accepted_and_sigterm_stays_graceful() {
    let dir = TempDir::new("hooks-docker");
    let config = ini(
        &dir,
        "wsgi-file = tests/apps/wsgi_suite.py\nthreads = 2\nhook-master-start = unix_signal:15 gracefully_kill_them_all\n",
    );
    let (mut kaiser, addr) = start_http(&["--ini", &config]);
    kaiser
        .wait_for_log(
            "kaiser's master already stops gracefully on SIGTERM",
            START_TIMEOUT,
        )
        .unwrap();
    let stream = in_flight(addr, 700);
    kaiser.signal(libc::SIGTERM);
    let rest = read_rest(stream);
    assert!(
        rest.contains("chunk 1") && rest.ends_with("0\r\n\r\n"),
        "cut: {rest:?}\n{}",
        kaiser.logs()
    );
    assert_eq!(
        kaiser.expect_exit(EXIT).code(),
        Some(0),
        "{}",
        kaiser.logs()
    );
}

/// `unix_signal` that asks for something else than kaiser's default rebinds the signal:
/// SIGINT, normally a fast stop that cuts requests, becomes graceful.
#[test]
fn unix_signal_rebinds_sigint_to_a_graceful_stop() {
    let dir = TempDir::new("hooks-sigint");
    let config = ini(
        &dir,
        "wsgi-file = tests/apps/wsgi_suite.py\nthreads = 2\nhook-master-start = unix_signal:2 gracefully_kill_them_all\n",
    );
    let (mut kaiser, addr) = start_http(&["--ini", &config]);
    kaiser
        .wait_for_log("the master now stops gracefully on SIGINT", START_TIMEOUT)
        .unwrap();
    let stream = in_flight(addr, 700);
    kaiser.signal(libc::SIGINT);
    let rest = read_rest(stream);
    assert!(
        rest.contains("chunk 1") && rest.ends_with("0\r\n\r\n"),
        "cut: {rest:?}\n{}",
        kaiser.logs()
    );
    assert_eq!(
        kaiser.expect_exit(EXIT).code(),
        Some(0),
        "{}",
        kaiser.logs()
    );
}

#[test]
fn hook_touch_runs_its_action_when_the_file_changes() {
    let dir = TempDir::new("hooks-touch");
    let flag = dir.write("flag", "");
    let config = ini(
        &dir,
        &format!(
            "wsgi-file = tests/apps/hello.py\nhook-touch = {} print:the flag was touched\n",
            flag.display()
        ),
    );
    let (kaiser, _) = start_http(&["--ini", &config]);
    // The master checks the file once a turn of its loop: two barriers span a whole turn,
    // so a check that fired without a touch would be in the logs by then.
    kaiser.master_barrier();
    kaiser.master_barrier();
    assert!(
        !kaiser.logs().contains("the flag was touched"),
        "{}",
        kaiser.logs()
    );
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&flag)
        .unwrap()
        .set_modified(later)
        .unwrap();
    kaiser
        .wait_for_log("the flag was touched", START_TIMEOUT)
        .unwrap();
}

/// uWSGI's `touch-exec = FILE COMMAND` runs the command in the master when the file is
/// touched (it was refused).
#[test]
fn touch_exec_runs_its_command_when_the_file_changes() {
    let dir = TempDir::new("hooks-touch-exec");
    let flag = dir.write("flag", "");
    let done = dir.join("done");
    let config = ini(
        &dir,
        &format!(
            "wsgi-file = tests/apps/hello.py\ntouch-exec = {} touch {}\n",
            flag.display(),
            done.display()
        ),
    );
    let (_kaiser, _) = start_http(&["--ini", &config]);
    assert!(!done.exists());
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&flag)
        .unwrap()
        .set_modified(later)
        .unwrap();
    wait_until("the touch-exec command to run", START_TIMEOUT, |last| {
        *last = format!("{} exists: {}", done.display(), done.exists());
        Ok(done.exists().then_some(()))
    })
    .unwrap();
}

/// `hook-as-vassal` in the emperor's config runs in each vassal it starts, before the
/// vassal serves.
#[test]
fn as_vassal_hooks_run_in_each_vassal_the_emperor_starts() {
    let dir = TempDir::new("hooks-vassal");
    let vassals = dir.join("vassals");
    std::fs::create_dir(&vassals).unwrap();
    let trace = dir.join("trace");
    std::fs::write(
        vassals.join("one.ini"),
        format!(
            "[uwsgi]\nhttp-socket = {}\nwsgi-file = {}\n",
            dir.join("one.sock").display(),
            app("hello.py").display()
        ),
    )
    .unwrap();
    let mut emperor = Kaiser::spawn(&[
        "--emperor",
        vassals.to_str().unwrap(),
        "--hook-as-vassal",
        &format!("exec:echo as-vassal $PPID >> {}", trace.display()),
    ]);
    let lines = wait_until("the as-vassal hook to run", START_TIMEOUT, |last| {
        let lines = trace_lines(&trace);
        *last = format!("{lines:?}\n{}", emperor.logs());
        Ok((!lines.is_empty()).then_some(lines))
    })
    .unwrap();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_ne!(
        lines[0].1,
        emperor.pid(),
        "it runs in the vassal, not the emperor"
    );
    wait_for_unix(&dir.join("one.sock"), START_TIMEOUT).unwrap();
    emperor.signal(libc::SIGTERM);
    emperor.expect_exit(EXIT);
}

#[test]
fn atexit_hooks_run_when_the_master_exits() {
    let dir = TempDir::new("hooks-atexit");
    let trace = dir.join("trace");
    let config = ini(
        &dir,
        &format!(
            "wsgi-file = tests/apps/hello.py\nexec-as-user-atexit = echo atexit $PPID >> {}\n",
            trace.display()
        ),
    );
    let (mut kaiser, _) = start_http(&["--ini", &config]);
    assert!(trace_lines(&trace).is_empty(), "not before the exit");
    let master = kaiser.pid();
    kaiser.signal(libc::SIGTERM);
    assert_eq!(
        kaiser.expect_exit(EXIT).code(),
        Some(0),
        "{}",
        kaiser.logs()
    );
    assert_eq!(trace_lines(&trace), vec![("atexit".to_string(), master)]);
}

/// A reload is vetted by `--check-config`, which imports the app without running hooks; it
/// still sees what an asap `putenv:` gave the real import (the master's environment is
/// inherited), so a config that starts fine can be reloaded. (uWSGI's pre-app `putenv:`
/// comes after Python read its environment, in kaiser as there.)
#[test]
fn a_reload_is_vetted_with_the_environment_that_hooks_set() {
    let dir = TempDir::new("hooks-reload");
    let app = dir.write(
        "needs_env.py",
        "import os\n\
         PHASE = os.environ['KAISER_HOOKED']\n\
         def application(environ, start_response):\n\
         \x20   start_response('200 OK', [('Content-Type', 'text/plain')])\n\
         \x20   return [PHASE.encode()]\n",
    );
    let config = ini(
        &dir,
        &format!(
            "wsgi-file = {}\nhook-asap = putenv:KAISER_HOOKED=from-a-hook\n",
            app.display()
        ),
    );
    let (mut kaiser, addr) = start_http(&["--ini", &config]);
    assert_eq!(http_get(addr, "/").unwrap().text(), "from-a-hook");
    let mark = kaiser.log_mark();
    kaiser.signal(libc::SIGHUP);
    kaiser
        .wait_for_log_since(mark, ": reloaded in", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("the reload was refused: {e}"));
    assert_eq!(http_get(addr, "/").unwrap().text(), "from-a-hook");
    kaiser.signal(libc::SIGTERM);
    kaiser.expect_exit(EXIT);
}
