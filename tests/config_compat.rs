//! Existing uWSGI INI files read as uWSGI reads them (issue 15): config logic blocks
//! (`if-*` … `endif`, `for*` … `endfor`) against the real environment, filesystem, hostname
//! and reloads; `--show-config` logging the configuration and then serving, while
//! `--print-config` prints and exits; numbers with trailing comments.

mod common;

use std::time::Duration;

use common::*;

const EXIT: Duration = Duration::from_secs(20);

/// `kaiser --print-config ARGS…` with `env`; its stdout and stderr, after it exited 0.
fn print_config(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut full = vec!["--print-config"];
    full.extend_from_slice(args);
    let mut kaiser = Kaiser::spawn_with(&full, |command| {
        for (name, value) in env {
            command.env(name, value);
        }
    });
    let status = kaiser.expect_exit(EXIT);
    assert_eq!(
        status.code(),
        Some(0),
        "--print-config {args:?}:\n{}",
        kaiser.logs()
    );
    assert!(kaiser.wait_output_closed(EXIT), "output never closed");
    kaiser.logs()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("the hostname is readable")
        .trim()
        .to_string()
}

#[test]
fn if_and_for_blocks_give_the_options_uwsgi_would() {
    let dir = TempDir::new("logic");
    dir.write("local.ini", "[uwsgi]\nharakiri = 30\n");
    std::fs::create_dir(dir.join("conf.d")).unwrap();
    dir.write("conf.d/a.ini", "[uwsgi]\nenv = FROM_A=1\n");
    dir.write("conf.d/b.ini", "[uwsgi]\nenv = FROM_B=1\n");
    dir.write("conf.d/notes.txt", "not an ini\n");
    dir.write("paths.txt", "/srv/lib1\n/srv/lib2\n");
    let host = hostname();
    let ini = dir.write(
        "app.ini",
        format!(
            "[uwsgi]\n\
             wsgi-file = tests/apps/hello.py\n\
             if-env = KAISER_TEST_STAGE=prod\n\
             processes = 4\n\
             endif\n\
             if-not-env = KAISER_TEST_STAGE\n\
             processes = 1\n\
             endif\n\
             if-env = KAISER_TEST_PORT\n\
             http-socket = 127.0.0.1:%(_)\n\
             endif\n\
             if-exists = %dlocal.ini\n\
             include = %(_)\n\
             endif\n\
             if-not-file = %dmissing.ini\n\
             env = MISSING=%(_)\n\
             endif\n\
             if-dir = %dconf.d\n\
             env = CONF_DIR=%(_)\n\
             endif\n\
             if-file = %dconf.d\n\
             env = NEVER=1\n\
             endif\n\
             for-glob = %dconf.d/*.ini\n\
             include = %(_)\n\
             endfor\n\
             for-readline = %dpaths.txt\n\
             pythonpath = %(_)\n\
             endfor\n\
             for = a b\n\
             env = FOR_%(_)=%(_)\n\
             endfor\n\
             for-times = 2\n\
             env = TIMES_%(_)=$(KAISER_TEST_STAGE)\n\
             endfor\n\
             if-hostname = {host}\n\
             threads = 2\n\
             endif\n\
             if-not-hostname = {host}\n\
             threads = 9\n\
             endif\n\
             if-opt = threads=2\n\
             env = THREADS=%(_)\n\
             endif\n\
             if-not-reload\n\
             env = FIRST_START=1\n\
             endif\n\
             if-reload\n\
             env = RELOADED=1\n\
             endif\n"
        ),
    );
    let dir_text = format!("{}/", dir.path().display());
    let shown = print_config(
        &["--ini", &ini.display().to_string()],
        &[("KAISER_TEST_STAGE", "prod"), ("KAISER_TEST_PORT", "8123")],
    );
    let expected = format!(
        "[uwsgi]\n\
         wsgi-file = tests/apps/hello.py\n\
         pythonpath = /srv/lib1\n\
         pythonpath = /srv/lib2\n\
         env = MISSING={d}missing.ini\n\
         env = CONF_DIR={d}conf.d\n\
         env = FROM_A=1\n\
         env = FROM_B=1\n\
         env = FOR_a=a\n\
         env = FOR_b=b\n\
         env = TIMES_1=prod\n\
         env = TIMES_2=prod\n\
         env = THREADS=2\n\
         env = FIRST_START=1\n\
         processes = 4\n\
         threads = 2\n\
         http-socket = 127.0.0.1:8123\n\
         harakiri = 30\n",
        d = dir_text
    );
    assert_eq!(shown, expected, "--print-config of {}", ini.display());

    // Without the variables, the other branches.
    let shown = print_config(&["--ini", &ini.display().to_string()], &[]);
    assert!(
        !shown.contains("processes") && !shown.contains("http-socket"),
        "{shown}"
    );
    assert!(
        shown.contains("env = TIMES_1=$(KAISER_TEST_STAGE)\n"),
        "{shown}"
    );
}

#[test]
fn show_config_logs_the_configuration_then_serves() {
    let (kaiser, addr) = start_http(&[
        "--show-config",
        "--wsgi-file",
        "tests/apps/hello.py",
        "--processes",
        "2",
    ]);
    let logs = kaiser.logs();
    assert!(
        logs.contains("[uwsgi]\n") && logs.contains("processes = 2\n"),
        "the configuration was not logged:\n{logs}"
    );
    let response = http_get(addr, "/").unwrap();
    assert_eq!(response.text(), "Hello World", "{response}");
}

#[test]
fn if_reload_blocks_apply_after_a_reload() {
    let dir = TempDir::new("if-reload");
    let ini = dir.write(
        "app.ini",
        "[uwsgi]\nshow-config = true\nhttp-socket = 127.0.0.1:0\nwsgi-file = tests/apps/hello.py\n\
         if-reload\nenv = RELOADED=yes\nendif\nif-not-reload\nenv = FIRST_START=yes\nendif\n",
    );
    let kaiser = Kaiser::spawn(&["--ini", &ini.display().to_string()]);
    let addr = kaiser
        .wait_for_addr("protocol=\"http\"", START_TIMEOUT)
        .unwrap();
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    let first = kaiser.logs();
    assert!(
        first.contains("env = FIRST_START=yes\n") && !first.contains("RELOADED"),
        "{first}"
    );
    let mark = kaiser.log_mark();
    kaiser.signal(libc::SIGHUP);
    kaiser
        .wait_for_log_since(mark, ": reloaded in", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("the master did not reload: {e}"));
    let after = kaiser.logs_since(mark);
    assert!(
        after.contains("env = RELOADED=yes\n") && !after.contains("FIRST_START"),
        "the reloaded master did not apply `if-reload`:\n{after}"
    );
    wait_until("the reloaded workers serve", START_TIMEOUT, |seen| {
        Ok(http_get(addr, "/")
            .map_err(|e| *seen = e)
            .ok()
            .filter(|r| r.text() == "Hello World"))
    })
    .unwrap();
}

#[test]
fn numbers_with_trailing_comments_are_read_as_uwsgi_reads_them() {
    let dir = TempDir::new("numbers");
    let ini = dir.write(
        "app.ini",
        "[uwsgi]\nwsgi-file = tests/apps/hello.py\nreload-on-rss = 2048 ; comment\nprocesses = 2 # two\nlog-slow = true\n",
    );
    let shown = print_config(&["--ini", &ini.display().to_string()], &[]);
    let path = ini.display();
    assert!(
        shown.contains("processes = 2\n") && shown.contains("reload-on-rss = 2048\n"),
        "{shown}"
    );
    assert!(
        !shown.contains("log-slow = "),
        "`log-slow = true` is 0 (off) in uWSGI:\n{shown}"
    );
    for line in [3, 4, 5] {
        assert!(
            shown.contains(&format!("{path}:{line}: ")),
            "no warning for line {line}:\n{shown}"
        );
    }
    // A `;` comment after a module name is an error, as `#` and `//` are.
    let bad = dir.write(
        "bad.ini",
        "[uwsgi]\nmodule = mysite.wsgi:application ; for Django\n",
    );
    let mut kaiser = Kaiser::spawn(&["--print-config", "--ini", &bad.display().to_string()]);
    let status = kaiser.expect_exit(EXIT);
    assert_ne!(status.code(), Some(0), "{}", kaiser.logs());
    assert!(
        kaiser
            .logs()
            .contains(&format!("{}:2: module: the whole text", bad.display())),
        "{}",
        kaiser.logs()
    );
}

/// Options real configs carry whose job kaiser does another way load as documented no-ops
/// (they were refused), and the instance serves.
#[test]
fn honour_stdin_and_post_buffering_bufsize_are_accepted() {
    let (_kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--honour-stdin",
        "--post-buffering-bufsize",
        "8192",
    ]);
    assert_eq!(http_get(addr, "/").unwrap().status, 200);
}
