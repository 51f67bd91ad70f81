//! uWSGI's process options (issue 15), against the real processes: pidfiles before and after
//! the privilege drop, `initgroups` and `add-gid`, `immediate-uid`, `chroot`, `cpu-affinity`,
//! `limit-as`, `reaper`, `skip-atexit`, `exit-on-reload`, `reload-on-exception` and
//! `daemonize2`. The privilege tests need root, as the options do.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use common::*;

const EXIT: Duration = Duration::from_secs(20);
const NOBODY: u32 = 65534;

/// (worker id, pid) of each worker the master logged as spawned.
fn worker_pids(kaiser: &Kaiser) -> Vec<(u32, i32)> {
    kaiser
        .logs()
        .lines()
        .filter(|line| line.contains("spawned worker"))
        .filter_map(|line| {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|word| word.strip_prefix(name))
                    .and_then(|value| value.parse::<i64>().ok())
            };
            Some((field("worker=")? as u32, field("pid=")? as i32))
        })
        .collect()
}

/// A line of `/proc/PID/status` (`Groups:`, `Uid:` …), its value trimmed.
fn status_field(pid: i32, key: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .unwrap_or("")
        .trim()
        .to_string()
}

fn groups_of(pid: i32) -> Vec<u32> {
    status_field(pid, "Groups:")
        .split_whitespace()
        .filter_map(|g| g.parse().ok())
        .collect()
}

fn first_worker(kaiser: &Kaiser) -> i32 {
    worker_pids(kaiser)
        .first()
        .unwrap_or_else(|| panic!("no worker spawned:\n{}", kaiser.logs()))
        .1
}

fn owner_and_pid(path: &Path) -> (u32, String) {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = std::fs::read_to_string(path).unwrap();
    (meta.uid(), text.trim().to_string())
}

#[test]
fn pidfiles_are_written_before_and_after_the_privilege_drop() {
    let dir = TempDir::new("pidfiles");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let path = |name: &str| dir.join(name).display().to_string();
    let (kaiser, _addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--uid",
        "nobody",
        "--pidfile",
        &path("root.pid"),
        "--safe-pidfile",
        &path("root-safe.pid"),
        "--pidfile2",
        &path("user.pid"),
        "--safe-pidfile2",
        &path("user-safe.pid"),
    ]);
    let master = kaiser.pid().to_string();
    for (name, owner) in [
        ("root.pid", 0),
        ("root-safe.pid", 0),
        ("user.pid", NOBODY),
        ("user-safe.pid", NOBODY),
    ] {
        assert_eq!(
            owner_and_pid(&dir.join(name)),
            (owner, master.clone()),
            "{name}: (owner, pid)\n{}",
            kaiser.logs()
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "safe pidfiles left temporaries: {leftovers:?}"
    );
}

#[test]
fn the_privilege_drop_sets_supplementary_groups_as_uwsgi() {
    // `nobody` belongs to no group but its own, so initgroups gives exactly that one.
    for (extra, expected) in [
        (vec![], vec![NOBODY]),
        (vec!["--no-initgroups"], vec![]),
        (vec!["--add-gid", "4", "--add-gid", "5"], vec![4, 5]),
    ] {
        let mut args = vec!["--wsgi-file", "tests/apps/hello.py", "--uid", "nobody"];
        args.extend_from_slice(&extra);
        let (kaiser, _addr) = start_http(&args);
        for pid in [kaiser.pid(), first_worker(&kaiser)] {
            assert_eq!(
                status_field(pid, "Uid:").split_whitespace().next(),
                Some("65534")
            );
            assert_eq!(groups_of(pid), expected, "{extra:?}: groups of pid {pid}");
        }
    }
}

#[test]
fn immediate_uid_drops_privileges_before_binding() {
    let (kaiser, _addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--immediate-uid",
        "nobody",
    ]);
    assert_eq!(
        status_field(kaiser.pid(), "Uid:").split_whitespace().next(),
        Some("65534")
    );

    // A socket in a directory only root may write to cannot be bound any more.
    let dir = TempDir::new("immediate");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let socket = dir.join("app.sock");
    let mut kaiser = Kaiser::spawn(&[
        "--http-socket",
        socket.to_str().unwrap(),
        "--wsgi-file",
        "tests/apps/hello.py",
        "--immediate-uid",
        "nobody",
    ]);
    let status = kaiser.expect_exit(EXIT);
    assert!(!status.success(), "{}", kaiser.logs());
    kaiser
        .wait_for_log("ermission denied", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn chroot_loads_the_app_from_inside_the_jail() {
    let jail = TempDir::new("jail");
    std::fs::copy(app("hello.py"), jail.join("app.py")).unwrap();
    let (kaiser, addr) = start_http(&[
        "--chroot",
        jail.path().to_str().unwrap(),
        "--wsgi-file",
        "/app.py",
        "--processes",
        "2",
    ]);
    assert_eq!(http_get(addr, "/").unwrap().text(), "Hello World");
    let root = std::fs::read_link(format!("/proc/{}/root", kaiser.pid())).unwrap();
    assert_eq!(root, std::fs::canonicalize(jail.path()).unwrap());
    for (_, pid) in worker_pids(&kaiser) {
        assert_eq!(
            std::fs::read_link(format!("/proc/{pid}/root")).unwrap(),
            root
        );
    }
    // kaiser cannot re-execute itself inside the jail: a reload replaces the workers.
    let mark = kaiser.log_mark();
    kaiser.signal(libc::SIGHUP);
    kaiser
        .wait_for_log_since(mark, "reloading the workers instead", EXIT)
        .unwrap();
    wait_until("the new workers", EXIT, |seen| {
        *seen = kaiser.logs_since(mark);
        Ok(seen.contains("respawned worker").then_some(()))
    })
    .unwrap();
    assert_eq!(http_get(addr, "/").unwrap().text(), "Hello World");
}

#[test]
fn cpu_affinity_pins_each_worker_in_turn() {
    // SAFETY: sysconf has no memory effects.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    let (kaiser, _addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--processes",
        "2",
        "--cpu-affinity",
        "1",
    ]);
    let workers = worker_pids(&kaiser);
    assert_eq!(workers.len(), 2, "{}", kaiser.logs());
    for (id, pid) in workers {
        let expected = ((id as usize - 1) % cpus).to_string();
        assert_eq!(
            status_field(pid, "Cpus_allowed_list:"),
            expected,
            "worker {id}"
        );
    }
}

#[test]
fn limit_as_bounds_the_address_space() {
    let (kaiser, _addr) = start_http(&["--wsgi-file", "tests/apps/hello.py", "--limit-as", "2048"]);
    for pid in [kaiser.pid(), first_worker(&kaiser)] {
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max address space"))
            .unwrap()
            .to_string();
        let numbers: Vec<&str> = line
            .split_whitespace()
            .filter(|w| w.bytes().all(|b| b.is_ascii_digit()))
            .collect();
        assert_eq!(numbers, ["2147483648", "2147483648"], "{line}");
    }
}

/// `R` (zombie) or `X` (dead) state of a child, `None` once it is gone from /proc.
fn process_state(pid: &str) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
}

#[test]
fn reaper_reaps_the_apps_exited_children() {
    for reaper in [true, false] {
        let mut args = vec!["--wsgi-file", "tests/apps/spawner.py"];
        if reaper {
            args.push("--reaper");
        }
        let (_kaiser, addr) = start_http(&args);
        let child = http_get(addr, "/spawn").unwrap().text();
        wait_until("the child to exit", EXIT, |seen| {
            let state = process_state(&child);
            *seen = format!("{state:?}");
            Ok(matches!(state, Some('Z') | None).then_some(()))
        })
        .unwrap();
        assert_eq!(http_get(addr, "/").unwrap().text(), "ok");
        if reaper {
            wait_until("the zombie to be reaped", EXIT, |seen| {
                let state = process_state(&child);
                *seen = format!("{state:?}");
                Ok(state.is_none().then_some(()))
            })
            .unwrap();
        } else {
            assert_eq!(http_get(addr, "/").unwrap().text(), "ok");
            assert_eq!(
                process_state(&child),
                Some('Z'),
                "without reaper the child stays a zombie"
            );
        }
    }
}

#[test]
fn skip_atexit_leaves_the_exit_handlers_out() {
    let dir = TempDir::new("skip-atexit");
    let record = dir.join("record.txt");
    let env = format!("ATEXIT_RECORD={}", record.display());
    for skip in [true, false] {
        let _ = std::fs::remove_file(&record);
        let mut args = vec!["--wsgi-file", "tests/apps/atexit_app.py", "--env", &env];
        if skip {
            args.push("--skip-atexit");
        }
        let (mut kaiser, addr) = start_http(&args);
        assert!(http_get(addr, "/").unwrap().text().starts_with("ok pid="));
        kaiser.signal(libc::SIGTERM);
        assert!(kaiser.expect_exit(EXIT).success(), "{}", kaiser.logs());
        let recorded = std::fs::read_to_string(&record).unwrap_or_default();
        assert_eq!(
            recorded.is_empty(),
            skip,
            "skip-atexit {skip}: {recorded:?}"
        );
    }
}

#[test]
fn exit_on_reload_stops_instead_of_reloading() {
    let (mut kaiser, _addr) =
        start_http(&["--wsgi-file", "tests/apps/hello.py", "--exit-on-reload"]);
    kaiser.signal(libc::SIGHUP);
    let status = kaiser.expect_exit(EXIT);
    assert_eq!(status.code(), Some(0), "{}", kaiser.logs());
    kaiser
        .wait_for_log("exit-on-reload", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!kaiser.logs().contains("re-executing"), "{}", kaiser.logs());
}

#[test]
fn reload_on_exception_replaces_the_worker_after_the_app_raised() {
    let (kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--reload-on-exception",
    ]);
    let pid = || -> i64 {
        let text = http_get(addr, "/pid").unwrap().text();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["pid"]
            .as_i64()
            .unwrap()
    };
    let first = pid();
    assert_eq!(pid(), first, "a clean request does not replace the worker");
    assert_eq!(http_get(addr, "/error").unwrap().status, 500);
    wait_until("a new worker", EXIT, |seen| {
        let now = pid();
        *seen = now.to_string();
        Ok((now != first).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", kaiser.logs()));
    kaiser
        .wait_for_log("reload-on-exception", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn daemonize2_detaches_and_logs_to_the_file() {
    let dir = TempDir::new("daemonize2");
    let socket = dir.join("http.sock");
    let log = dir.join("daemon.log");
    let pidfile = dir.join("daemon.pid");
    let mut kaiser = Kaiser::spawn(&[
        "--http-socket",
        socket.to_str().unwrap(),
        "--wsgi-file",
        "tests/apps/hello.py",
        "--daemonize2",
        log.to_str().unwrap(),
        "--pidfile",
        pidfile.to_str().unwrap(),
    ]);
    assert!(
        kaiser.expect_exit(START_TIMEOUT).success(),
        "{}",
        kaiser.logs()
    );
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    let pid: i32 = wait_until("the daemon's pidfile", START_TIMEOUT, |last| {
        *last = read(&pidfile);
        Ok(last.trim().parse().ok())
    })
    .unwrap();
    wait_until("`ready in` in the daemon's log", START_TIMEOUT, |last| {
        *last = read(&log);
        Ok(last.contains("ready in").then_some(()))
    })
    .unwrap();
    assert_eq!(http_get_unix(&socket, "/").unwrap().text(), "Hello World");
    // SAFETY: kill has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    wait_until("the daemon to exit", EXIT, |last| {
        *last = read(&log);
        Ok((!Path::new(&format!("/proc/{pid}")).exists()).then_some(()))
    })
    .unwrap();
}

/// Regression: a master re-executed for a reload runs as the user it dropped to, and tried to
/// drop again (setting groups needs root): every reload of a vassal with `uid` and `gid`
/// failed with "Operation not permitted".
#[test]
fn a_reload_after_dropping_privileges_keeps_serving() {
    let dir = TempDir::new("reload-uid");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let pidfile2 = dir.join("user.pid");
    let (kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--uid",
        "nobody",
        "--gid",
        "nogroup",
        "--pidfile2",
        pidfile2.to_str().unwrap(),
    ]);
    let mark = kaiser.log_mark();
    kaiser.signal(libc::SIGHUP);
    kaiser
        .wait_for_log_since(mark, ": reloaded in", EXIT)
        .unwrap_or_else(|e| panic!("the reload failed: {e}"));
    assert_eq!(http_get(addr, "/").unwrap().text(), "Hello World");
    assert_eq!(
        status_field(kaiser.pid(), "Uid:").split_whitespace().next(),
        Some("65534")
    );
    assert_eq!(owner_and_pid(&pidfile2).1, kaiser.pid().to_string());
}
