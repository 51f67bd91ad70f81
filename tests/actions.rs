//! The action options with the real binary: `--get` prints an option's first value and
//! exits, `--dump-options` lists every name, `--pause`/`--resume PIDFILE` toggle a running
//! instance's pause.

mod common;

use std::time::Duration;

use common::*;

const EXIT: Duration = Duration::from_secs(20);

/// Runs kaiser to its exit; its output, after asserting it exited 0.
fn run_to_exit(args: &[&str]) -> String {
    let mut kaiser = Kaiser::spawn(args);
    let status = kaiser.expect_exit(EXIT);
    assert_eq!(status.code(), Some(0), "{args:?}:\n{}", kaiser.logs());
    assert!(kaiser.wait_output_closed(EXIT), "output never closed");
    kaiser.logs()
}

#[test]
fn get_prints_the_first_value_of_each_key_and_exits() {
    let dir = TempDir::new("get");
    let yaml = dir.write(
        "app.yaml",
        "uwsgi:\n  processes: 4\n  env: A=1\n  env: B=2\n  http-socket: 127.0.0.1:0\n",
    );
    let printed = run_to_exit(&[
        &yaml.display().to_string(),
        "--get",
        "env",
        "--get",
        "not-set",
        "--get",
        "processes",
    ]);
    assert_eq!(printed, "A=1\n4\n");
}

#[test]
fn dump_options_lists_names_and_aliases() {
    let printed = run_to_exit(&["--dump-options"]);
    let names: Vec<&str> = printed.lines().collect();
    for name in [
        "socket",
        "processes",
        "workers",
        "yaml",
        "alarm",
        "listen-queue-alarm",
    ] {
        assert!(names.contains(&name), "`{name}` missing from:\n{printed}");
    }
}

#[test]
fn pause_and_resume_toggle_a_running_instance() {
    let dir = TempDir::new("pause");
    let pidfile = dir.join("app.pid");
    let pidfile_text = pidfile.display().to_string();
    let (kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--pidfile",
        &pidfile_text,
    ]);
    let mark = kaiser.log_mark();
    run_to_exit(&["--pause", &pidfile_text]);
    kaiser
        .wait_for_log_since(mark, "paused: workers stop accepting", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("`--pause` did not pause the instance: {e}"));
    let mark = kaiser.log_mark();
    run_to_exit(&["--resume", &pidfile_text]);
    kaiser
        .wait_for_log_since(mark, "resumed: workers accept again", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("`--resume` did not resume the instance: {e}"));
    assert_eq!(http_get(addr, "/").unwrap().text(), "Hello World");
}
