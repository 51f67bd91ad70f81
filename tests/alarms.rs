//! The alarm subsystem with the real binary: `log-alarm` runs a `cmd:` alarm with the log
//! line on its stdin, writes `log:` alarms once per `alarm-freq` for the same line, hands a
//! `signal:` alarm to the master, which raises the uWSGI signal in a worker; `alarm-backlog`
//! fires when a paused instance's listen queue fills; `alarm-segfault` when a worker dies of
//! SIGSEGV. Beside them, the other file-driven triggers: `touch-signal` raises a uWSGI signal
//! and `fs-brutal-reload` reloads.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::*;

const ALARM_TIMEOUT: Duration = Duration::from_secs(20);

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn a_log_line_raises_cmd_log_and_signal_alarms() {
    let dir = TempDir::new("log-alarm");
    let out = dir.join("cmd.txt");
    let signals = dir.join("signals.txt");
    let signal_file = signals.display().to_string();
    let (kaiser, addr) = start_http_with(
        &[
            "--wsgi-file",
            "tests/apps/alarm_app.py",
            "--alarm",
            &format!("page cmd:cat >> {}", out.display()),
            "--alarm",
            "note log:noted",
            "--alarm",
            "poke signal:17",
            "--not-log-alarm",
            "page,note quiet",
            // Anchored: the request's own log line (`GET /log?BOOM%201`) also holds `BOOM`, and
            // alarm-freq, as uWSGI's, only throttles a message equal to the alarm's last one,
            // so an interleaved request line would let `BOOM 1` through twice.
            "--log-alarm",
            "page,note ^BOOM",
            "--alarm-log",
            "poke ^SIGNAL ME$",
            // Far longer than the test, so the repeated line is throttled however slow
            // the machine.
            "--alarm-freq",
            "60",
        ],
        |command| {
            command.env("KAISER_TEST_SIGNAL_FILE", &signal_file);
        },
    );
    for text in [
        "BOOM%201",
        "BOOM%201",
        "BOOM%20quiet",
        "BOOM%202",
        "SIGNAL%20ME",
    ] {
        let response = http_get(addr, &format!("/log?{text}")).unwrap();
        assert_eq!(response.text(), "logged", "{response}");
    }
    kaiser
        .wait_for_log("ALARM: noted BOOM 2", ALARM_TIMEOUT)
        .unwrap_or_else(|e| panic!("the `log:` alarm never logged: {e}"));
    let logs = kaiser.logs();
    assert_eq!(
        logs.matches("ALARM: noted BOOM 1").count(),
        1,
        "the same line within `alarm-freq` raised the alarm twice:\n{logs}"
    );
    assert!(!logs.contains("ALARM: noted BOOM quiet"), "{logs}");
    wait_until("the `cmd:` alarm wrote both lines", ALARM_TIMEOUT, |seen| {
        let text = read(&out);
        *seen = text.clone();
        Ok((text.contains("BOOM 1\n") && text.contains("BOOM 2\n")).then_some(()))
    })
    .unwrap();
    assert!(!read(&out).contains("quiet"), "{}", read(&out));
    wait_until("the uWSGI signal ran in a worker", ALARM_TIMEOUT, |seen| {
        let text = read(&signals);
        *seen = text.clone();
        Ok(text.contains("signal 17").then_some(()))
    })
    .unwrap();
}

#[test]
fn a_full_listen_queue_raises_alarm_backlog() {
    let dir = TempDir::new("backlog-alarm");
    let out = dir.join("backlog.txt");
    let (kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/alarm_app.py",
        // 2, not 1: the first request's own connection waits in the queue for a moment, and a
        // master check that falls in it must not see a full queue (1/1 did, under load).
        "--listen",
        "2",
        "--alarm",
        &format!("full cmd:cat >> {}", out.display()),
        "--alarm-backlog",
        "full",
    ]);
    assert_eq!(http_get(addr, "/").unwrap().text(), "ok");
    assert!(read(&out).is_empty(), "an alarm before the queue filled");
    // Paused workers accept nothing, so connections wait in the listen queue.
    let mark = kaiser.log_mark();
    kaiser.signal(libc::SIGTSTP);
    kaiser
        .wait_for_log_since(mark, "paused", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("the instance did not pause: {e}"));
    let _waiting: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
    wait_until("the backlog alarm ran", ALARM_TIMEOUT, |seen| {
        let text = read(&out);
        *seen = text.clone();
        Ok(text.contains("full !!!").then_some(()))
    })
    .unwrap();
    let text = read(&out);
    assert!(
        text.starts_with(&format!("listen queue of socket \"{addr}\"")),
        "{text}"
    );
    assert!(kaiser.logs().contains("*** uWSGI listen queue of socket"));
}

#[test]
fn a_worker_killed_by_sigsegv_raises_alarm_segfault() {
    let dir = TempDir::new("segfault-alarm");
    let out = dir.join("segv.txt");
    let (_kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/alarm_app.py",
        "--alarm",
        &format!("crash cmd:cat >> {}", out.display()),
        "--segfault-alarm",
        "crash",
    ]);
    let _ = http_get(addr, "/segv");
    wait_until("the segfault alarm ran", ALARM_TIMEOUT, |seen| {
        let text = read(&out);
        *seen = text.clone();
        Ok(text.contains("got Segmentation Fault").then_some(()))
    })
    .unwrap();
}

#[test]
fn an_alarm_trigger_naming_no_alarm_is_an_error() {
    let mut kaiser = Kaiser::spawn(&[
        "--wsgi-file",
        "tests/apps/alarm_app.py",
        "--http-socket",
        "127.0.0.1:0",
        "--alarm",
        "slack curl:https://hooks.example/x",
        "--log-alarm",
        "mail ERROR",
    ]);
    let status = kaiser.expect_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{}", kaiser.logs());
    let logs = kaiser.logs();
    assert!(logs.contains("cmd:curl -s --data-binary @- URL"), "{logs}");
    assert!(logs.contains("no alarm is named `mail`"), "{logs}");
}

#[test]
fn touch_signal_raises_the_uwsgi_signal_and_fs_brutal_reload_reloads() {
    let dir = TempDir::new("touch-signal");
    let signals = dir.join("signals.txt");
    let signal_file = signals.display().to_string();
    let flag = dir.write("signal.flag", "");
    let brutal = dir.join("brutal.flag");
    let (kaiser, addr) = start_http_with(
        &[
            "--wsgi-file",
            "tests/apps/alarm_app.py",
            "--touch-signal",
            &format!("{} 17", flag.display()),
            "--fs-brutal-reload",
            &brutal.display().to_string(),
        ],
        |command| {
            command.env("KAISER_TEST_SIGNAL_FILE", &signal_file);
        },
    );
    assert!(read(&signals).is_empty(), "a signal before the touch");
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&flag)
        .unwrap()
        .set_modified(later)
        .unwrap();
    wait_until("the touch raised uWSGI signal 17", ALARM_TIMEOUT, |seen| {
        let text = read(&signals);
        *seen = text.clone();
        Ok(text.contains("signal 17").then_some(()))
    })
    .unwrap();

    let mark = kaiser.log_mark();
    std::fs::write(&brutal, "").unwrap();
    kaiser
        .wait_for_log_since(mark, "fs-brutal-reload: `", ALARM_TIMEOUT)
        .unwrap_or_else(|e| panic!("creating the file did not fire: {e}"));
    kaiser
        .wait_for_log_since(mark, ": reloaded in", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("the master did not reload: {e}"));
    wait_until("the reloaded workers serve", START_TIMEOUT, |seen| {
        Ok(http_get(addr, "/")
            .map_err(|e| *seen = e)
            .ok()
            .filter(|r| r.text() == "ok"))
    })
    .unwrap();
}

#[test]
fn a_readable_inherited_fd_raises_alarm_fd() {
    let dir = TempDir::new("alarm-fd");
    let out = dir.join("fd.txt");
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (read_end, write_end) = (fds[0], fds[1]);
    let (_kaiser, _addr) = start_http_with(
        &[
            "--wsgi-file",
            "tests/apps/alarm_app.py",
            "--alarm",
            &format!("oom cmd:cat >> {}", out.display()),
            "--alarm-fd",
            "oom 50 the cgroup ran out of memory",
        ],
        |command| {
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec, only async-signal-safe dup2 and close.
            unsafe {
                command.pre_exec(move || {
                    libc::dup2(read_end, 50);
                    libc::close(write_end);
                    Ok(())
                });
            }
        },
    );
    // SAFETY: closing this process's own copy of the read end, owned by no Rust object.
    unsafe { libc::close(read_end) };
    assert!(read(&out).is_empty(), "an alarm before the fd was readable");
    // SAFETY: a one-byte write from a valid buffer to the pipe's write end.
    assert_eq!(
        unsafe { libc::write(write_end, b"x".as_ptr().cast(), 1) },
        1
    );
    wait_until("the fd alarm ran", ALARM_TIMEOUT, |seen| {
        let text = read(&out);
        *seen = text.clone();
        Ok(text.contains("the cgroup ran out of memory").then_some(()))
    })
    .unwrap();
    // SAFETY: closing the write end this test created.
    unsafe { libc::close(write_end) };
}
