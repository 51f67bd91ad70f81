//! The master's jail phase and the other hook phases real uWSGI configs use, with the real
//! binary: `exec-pre-jail`/`-in-jail`/`-post-jail` in uWSGI's order, `unshare` moving the
//! master and its workers into new namespaces (run as root, as the tests are), `mount-*` hooks
//! mounting inside them, and `hook-as-mule` in each mule.

mod common;

use std::path::Path;

use common::{http_get, start_http, wait_until, TempDir};

const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// The namespace `/proc/PID/ns/KIND` links to (`uts:[4026531838]`).
fn namespace(pid: &str, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap_or_else(|error| panic!("reading the {kind} namespace of {pid}: {error}"))
        .display()
        .to_string()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn unshare_jails_the_vassal_and_the_jail_hooks_run_in_uwsgis_order() {
    let dir = TempDir::new("jail");
    let record = dir.join("record");
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).expect("mount point");
    let app = dir.write(
        "jail_app.py",
        format!(
            "import socket\n\
             def application(environ, start_response):\n    \
                 start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
                 inside = open('{}/inside').read()\n    \
                 return [('%s %s' % (socket.gethostname(), inside)).encode()]\n",
            mnt.display()
        ),
    );
    let record_arg = |phase: &str| format!("echo {phase} >> {}", record.display());
    let (pre, in_jail, post) = (record_arg("pre"), record_arg("in"), record_arg("post"));
    let tmpfs = format!("tmpfs none {}", mnt.display());
    let write_inside = format!("write:{}/inside jailed", mnt.display());
    let (kaiser, addr) = start_http(&[
        "--wsgi-file",
        app.to_str().expect("utf-8"),
        "--unshare",
        "uts,mount",
        "--exec-pre-jail",
        &pre,
        "--exec-in-jail",
        &in_jail,
        // A private mount tree first, so the tmpfs does not propagate back to the host.
        "--mount-post-jail",
        "none / / rec,private",
        "--mount-post-jail",
        &tmpfs,
        "--hook-post-jail",
        &write_inside,
        "--hook-post-jail",
        "exec:hostname kaiser-jailed",
        "--exec-post-jail",
        &post,
    ]);
    let response = http_get(addr, "/").unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(response.text(), "kaiser-jailed jailed", "{}", kaiser.logs());
    assert_eq!(lines(&record), ["pre", "in", "post"], "{}", kaiser.logs());
    let master = kaiser.pid().to_string();
    assert_ne!(namespace(&master, "uts"), namespace("self", "uts"));
    assert_ne!(namespace(&master, "mnt"), namespace("self", "mnt"));
    assert!(
        !mnt.join("inside").exists(),
        "the tmpfs was mounted in the vassal's namespace only"
    );
    assert!(
        kaiser.logs().contains("applied unshare()"),
        "{}",
        kaiser.logs()
    );
}

#[test]
fn a_bad_namespace_name_is_a_config_error_with_its_line() {
    let dir = TempDir::new("jail-bad");
    let ini = dir.write(
        "app.ini",
        "[uwsgi]\nhttp-socket = 127.0.0.1:0\nunshare = net,bogus\n",
    );
    let mut kaiser = common::Kaiser::spawn(&["--ini", ini.to_str().expect("utf-8")]);
    let status = kaiser.expect_exit(TIMEOUT);
    assert!(!status.success());
    let logs = kaiser.logs();
    assert!(
        logs.contains("app.ini:3") && logs.contains("unknown namespace `bogus`"),
        "{logs}"
    );
}

#[test]
fn hook_as_mule_runs_in_each_mule() {
    let dir = TempDir::new("as-mule");
    let record = dir.join("record");
    let hook = format!("exec:echo $PPID >> {}", record.display());
    let hello = common::app("hello.py");
    let (kaiser, _addr) = start_http(&[
        "--wsgi-file",
        hello.to_str().expect("utf-8"),
        "--mules",
        "2",
        "--hook-as-mule",
        &hook,
    ]);
    let pids = wait_until("two mules to run their hook", TIMEOUT, |last| {
        let pids = lines(&record);
        *last = format!("{pids:?}");
        Ok((pids.len() == 2).then_some(pids))
    })
    .unwrap_or_else(|error| panic!("{error}\n{}", kaiser.logs()));
    assert_ne!(pids[0], pids[1], "one line per mule");
    let master = kaiser.pid().to_string();
    for pid in &pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the mule runs");
        let ppid = stat
            .rsplit_once(')')
            .expect("stat")
            .1
            .split_whitespace()
            .nth(1);
        assert_eq!(
            ppid,
            Some(master.as_str()),
            "mule {pid} is the master's child"
        );
    }
}
