//! The Emperor options real uWSGI emperor configs carry beyond the basics, end to end with
//! the real `kaiser --emperor` and real vassals: `vassals-set`, `emperor-nofollow`,
//! `emperor-extra-extension`, `emperor-no-blacklist`, the wrappers, the vassals' start and
//! stop hooks, `exec-as-emperor`/`hook-emperor-start`, and an `emperor-on-demand-exec`
//! command that takes its time while the emperor keeps answering.

mod common;
mod emperor_support;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use common::{app, kaiser_bin, wait_until, TempDir};
use emperor_support::*;

/// Writes an executable shell script.
fn script(dir: &TempDir, name: &str, body: &str) -> String {
    let path = dir.write(name, format!("#!/bin/sh\n{body}\n"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.to_str().expect("utf-8 temp dir").to_owned()
}

/// Waits until `path` holds a line containing `needle`, and returns the file.
fn wait_file_line(path: &Path, needle: &str) -> String {
    wait_until(
        &format!("a line with `{needle}` in {}", path.display()),
        TIMEOUT,
        |last| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            *last = text.clone();
            Ok(text
                .lines()
                .any(|line| line.contains(needle))
                .then_some(text))
        },
    )
    .unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn vassals_set_reaches_every_vassal_and_the_files_own_value_wins() {
    let mut emperor = Emperor::start(
        "e-vassals-set",
        &[
            "--vassals-set",
            "processes=2",
            "--vassal-set",
            "need-app=true",
        ],
        &[
            ("site.ini", hello("site")),
            ("own.ini", hello("own") + "processes = 3\n"),
        ],
    );
    emperor.ready();
    let line = emperor.wait_log(&["vassal ready", "vassal=site"]);
    assert!(line.contains("serving with 2 workers"), "{line}");
    let line = emperor.wait_log(&["vassal ready", "vassal=own"]);
    assert!(line.contains("serving with 3 workers"), "{line}");
    emperor.wait_log(&[
        "vassal starting",
        "--set processes=2 --set need-app=true --ini",
    ]);
    assert_eq!(get(&emperor.socket("site")), Ok("Hello World".into()));
}

#[test]
fn emperor_nofollow_ignores_edits_of_a_symlinks_target() {
    for nofollow in [true, false] {
        let outside = TempDir::new("e-nofollow-target");
        let target = outside.join("real.ini");
        let mut emperor = Emperor::start(
            "e-nofollow",
            if nofollow {
                &["--emperor-nofollow"]
            } else {
                &[]
            },
            &[],
        );
        std::fs::write(&target, hello_ini(&emperor.socket("linked"))).expect("write target");
        std::os::unix::fs::symlink(&target, emperor.vassals().join("linked.ini")).expect("symlink");
        emperor.wait_log(&["vassal ready", "vassal=linked"]);
        emperor.ready();
        // Edit the target (outside the watched directory), then add a vassal: its arrival
        // proves a rescan ran after the edit.
        std::fs::write(
            &target,
            hello_ini(&emperor.socket("linked")) + "processes = 2\n",
        )
        .expect("rewrite target");
        emperor.write("probe.ini", &hello("probe"));
        emperor.wait_log(&["vassal ready", "vassal=probe"]);
        let changed = emperor.count(&["config changed", "vassal=linked"]);
        if nofollow {
            assert_eq!(
                changed,
                0,
                "nofollow: the target's edit must not reload\n{}",
                emperor.kaiser.logs()
            );
            // Replacing the link itself is a change.
            let link = emperor.vassals().join("linked.ini");
            std::fs::remove_file(&link).expect("remove link");
            std::fs::write(&link, hello("linked")).expect("replace link by a file");
            emperor.wait_log(&["config changed", "vassal=linked"]);
        } else {
            assert_eq!(
                changed,
                1,
                "without nofollow the target's edit reloads\n{}",
                emperor.kaiser.logs()
            );
        }
    }
}

#[test]
fn emperor_extra_extension_governs_more_files_as_ini() {
    let mut emperor = Emperor::start(
        "e-extra-ext",
        &["--emperor-extra-extension", ".conf"],
        &[("site.conf", hello("site")), ("other.txt", hello("other"))],
    );
    emperor.ready();
    emperor.wait_log(&["vassal ready", "vassal=site"]);
    assert_eq!(get(&emperor.socket("site")), Ok("Hello World".into()));
    emperor.wait_log(&["vassal starting", "--ini", "site.conf"]);
    assert_eq!(emperor.count(&["new vassal", "other"]), 0);
}

#[test]
fn emperor_no_blacklist_retries_a_failing_vassal_without_backing_off() {
    let broken = format!(
        "[uwsgi]\nhttp-socket = @DIR@/broken.sock\nwsgi-file = {}\n",
        app("broken_import.py").display()
    );
    // With the default doubling from 100 ms, the 8th start would come after 12.7 s of
    // waits alone; with `emperor-no-blacklist` every retry waits 100 ms.
    // Nobody reads this emperor's NOTIFY_SOCKET: each start and death changes its STATUS=,
    // and the kernel queues 10 datagrams. The emperor must not block on the full queue
    // (it used to, after the 6th start).
    let emperor = Emperor::start(
        "e-no-blacklist",
        &["--emperor-throttle", "100", "--emperor-no-blacklist"],
        &[("broken.ini", broken)],
    );
    emperor.wait_log_n(&["vassal starting", "vassal=broken"], 8);
    let throttles: Vec<String> = emperor
        .kaiser
        .logs()
        .lines()
        .filter(|line| line.contains("throttling its respawn"))
        .map(str::to_owned)
        .collect();
    assert!(
        throttles
            .iter()
            .all(|line| line.contains("retry_in_ms=100")),
        "every retry waits `emperor-throttle`: {throttles:#?}"
    );
}

#[test]
fn emperor_wrapper_override_and_fallback_run_the_vassal() {
    let dir = TempDir::new("e-wrapper-scripts");
    let marker = dir.join("wrapped");
    let wrapper = script(
        &dir,
        "wrapper.sh",
        &format!(
            "echo \"$@\" >> {}\nexec {} \"$@\"",
            marker.display(),
            kaiser_bin()
        ),
    );
    let missing = dir.join("missing-wrapper");
    let missing = missing.to_str().expect("utf-8");
    // An override that cannot run, then the wrapper.
    let emperor = Emperor::start(
        "e-wrapper",
        &[
            "--emperor-wrapper-override",
            missing,
            "--emperor-wrapper",
            &wrapper,
        ],
        &[("site.ini", hello("site"))],
    );
    emperor.wait_log(&["vassal ready", "vassal=site"]);
    assert_eq!(get(&emperor.socket("site")), Ok("Hello World".into()));
    emperor.wait_log(&[
        "cannot execute this vassal program, trying the next one",
        "missing-wrapper",
    ]);
    wait_file_line(&marker, "--ini");
    drop(emperor);
    // The wrapper cannot run: the fallback does.
    std::fs::remove_file(&marker).expect("reset the marker");
    let emperor = Emperor::start(
        "e-wrapper-fallback",
        &[
            "--emperor-wrapper",
            missing,
            "--emperor-wrapper-fallback",
            &wrapper,
        ],
        &[("site.ini", hello("site"))],
    );
    emperor.wait_log(&["vassal ready", "vassal=site"]);
    wait_file_line(&marker, "site.ini");
}

#[test]
fn vassals_start_and_stop_hooks_run_with_the_vassals_name() {
    let dir = TempDir::new("e-vassal-hooks");
    let record = dir.join("record");
    let start = script(
        &dir,
        "start.sh",
        &format!(
            "echo \"start $1 $UWSGI_VASSALS_DIR $PPID\" >> {}",
            record.display()
        ),
    );
    let stop = script(
        &dir,
        "stop.sh",
        &format!("echo \"stop $1\" >> {}", record.display()),
    );
    let emperor = Emperor::start(
        "e-vassal-hooks",
        &["--vassals-start-hook", &start, "--vassals-stop-hook", &stop],
        &[("site.ini", hello("site"))],
    );
    emperor.wait_log(&["vassal ready", "vassal=site"]);
    let text = wait_file_line(&record, "start site.ini");
    let vassals = emperor.vassals().canonicalize().expect("vassals dir");
    let line = text
        .lines()
        .find(|l| l.starts_with("start"))
        .expect("start line");
    // Run by the vassal itself (its parent is the vassal's master), as uWSGI runs it in
    // the vassal's process before exec.
    let master = emperor.vassal_pid("site.ini");
    assert_eq!(
        line,
        format!("start site.ini {} {master}", vassals.display()),
        "{text}"
    );
    assert!(
        !text.contains("stop"),
        "no stop hook before the vassal ends: {text}"
    );
    std::fs::remove_file(emperor.vassals().join("site.ini")).expect("remove vassal");
    wait_file_line(&record, "stop site.ini");
    emperor.wait_log(&["start-hook returned 0"]);
}

#[test]
fn exec_as_emperor_sees_the_vassal_and_hook_emperor_start_runs_first() {
    let dir = TempDir::new("e-as-emperor");
    let record = dir.join("record");
    let started = dir.join("started");
    let exec = format!(
        "echo \"$UWSGI_VASSAL_CONFIG $UWSGI_VASSAL_PID $UWSGI_VASSAL_UID\" >> {}",
        record.display()
    );
    let hook = format!("write:{} emperor up", started.display());
    let emperor = Emperor::start(
        "e-as-emperor",
        &["--exec-as-emperor", &exec, "--hook-emperor-start", &hook],
        &[("site.ini", hello("site"))],
    );
    emperor.wait_log(&["vassal ready", "vassal=site"]);
    assert_eq!(
        std::fs::read_to_string(&started).expect("hook-emperor-start wrote its file"),
        "emperor up"
    );
    let master = emperor.vassal_pid("site.ini");
    let uid = unsafe_free_uid();
    wait_file_line(&record, &format!("site.ini {master} {uid}"));
}

/// The test's own uid, from `/proc` (no libc call needed).
fn unsafe_free_uid() -> String {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("Uid line");
    line.split_whitespace().nth(1).expect("real uid").to_owned()
}

#[test]
fn a_slow_on_demand_exec_does_not_hold_up_the_other_vassals() {
    let dir = TempDir::new("e-on-demand-slow");
    let release = dir.join("release");
    let socket = dir.join("slow-od.sock");
    let asking = dir.join("asking");
    // Answers at once for every file but `slow.ini`, which waits for the test's go.
    let ask = script(
        &dir,
        "ask.sh",
        &format!(
            "case \"$1\" in *slow.ini) touch {asking}; while [ ! -e {release} ]; do sleep 0.02; done; echo {socket};; esac",
            asking = asking.display(),
            release = release.display(),
            socket = socket.display()
        ),
    );
    let stats = dir.join("stats.sock");
    let mut emperor = Emperor::start(
        "e-on-demand-slow",
        &[
            "--emperor-on-demand-exec",
            &ask,
            "--emperor-stats",
            stats.to_str().expect("utf-8"),
        ],
        &[("plain.ini", hello("plain"))],
    );
    emperor.wait_log(&["vassal ready", "vassal=plain"]);
    emperor.ready();
    let slow = format!(
        "[uwsgi]\nhttp-socket = {}\nwsgi-file = {}\n",
        socket.display(),
        app("hello.py").display()
    );
    emperor.write("slow.ini", &slow);
    // While the command for `slow.ini` waits: stats are served and another vassal reloads.
    wait_until(
        "the on-demand command to be asked about slow.ini",
        TIMEOUT,
        |_| Ok(asking.exists().then_some(())),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let body = emperor_stats(&stats);
    assert!(
        !body.contains("\"id\":\"slow.ini\""),
        "slow.ini is not a vassal before its answer: {body}"
    );
    let plain = emperor.vassals().join("plain.ini");
    std::fs::write(&plain, hello("plain") + "processes = 2\n").expect("edit plain.ini");
    emperor.wait_log(&["vassal reloaded", "vassal=plain"]);
    assert!(!release.exists());
    std::fs::write(&release, "").expect("release the command");
    emperor.wait_log(&["on-demand vassal: waiting for connections", "vassal=slow"]);
    assert_eq!(get(&socket), Ok("Hello World".into()));
    assert_eq!(
        emperor.count(&["no answer within"]),
        0,
        "{}",
        emperor.kaiser.logs()
    );
}

fn emperor_stats(path: &Path) -> String {
    let mut body = String::new();
    UnixStream::connect(path)
        .and_then(|mut stream| stream.read_to_string(&mut body))
        .unwrap_or_else(|error| panic!("reading emperor stats at {}: {error}", path.display()));
    body
}

#[test]
fn a_vassals_emperor_stop_and_reload_hooks_run_on_the_emperors_orders() {
    let dir = TempDir::new("e-emperor-orders");
    let record = dir.join("record");
    let line = |what: &str| format!("exec:echo {what} >> {}", record.display());
    let ini = |extra: &str| {
        format!(
            "{}hook-emperor-reload = {}\nhook-emperor-stop = {}\n{extra}",
            hello("site"),
            line("reload"),
            line("stop"),
        )
    };
    let mut emperor = Emperor::start("e-emperor-orders", &[], &[("site.ini", ini(""))]);
    emperor.wait_log(&["vassal ready", "vassal=site"]);
    emperor.ready();
    let dir_text = emperor.dir.path().to_str().expect("utf-8").to_owned();
    emperor.write(
        "site.ini",
        &ini("processes = 2\n").replace("@DIR@", &dir_text),
    );
    emperor.wait_log(&["vassal reloaded", "vassal=site"]);
    wait_file_line(&record, "reload");
    std::fs::remove_file(emperor.vassals().join("site.ini")).expect("remove the vassal");
    emperor.wait_log(&["vassal stopped", "vassal=site"]);
    let text = wait_file_line(&record, "stop");
    assert_eq!(text, "reload\nstop\n");
}

#[test]
fn emperor_tyrant_nofollow_runs_a_symlinked_vassal_as_the_links_owner() {
    // Files we create are root's only when the tests run as root (as in CI here).
    if unsafe_free_uid() != "0" {
        return;
    }
    let outside = TempDir::new("e-tyrant-nofollow-target");
    let target = outside.write("real.ini", hello_ini(&outside.join("linked.sock")));
    let stats = outside.join("stats.sock");
    let stats_arg = stats.to_str().expect("utf-8").to_owned();
    for nofollow in [false, true] {
        let mut args = vec!["--emperor-tyrant", "--emperor-stats", &stats_arg];
        if nofollow {
            args.push("--emperor-tyrant-nofollow");
        }
        let emperor = Emperor::start("e-tyrant-nofollow", &args, &[]);
        let link = emperor.vassals().join("linked.ini");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).expect("lchown the link");
        if nofollow {
            emperor.wait_log(&["vassal starting", "vassal=linked"]);
            let body = emperor_stats(&stats);
            assert!(
                body.contains("\"uid\":65534"),
                "runs as the link's owner: {body}"
            );
        } else {
            emperor.wait_log(&["refusing a vassal file owned by root", "vassal=linked"]);
        }
    }
}

/// uWSGI would serve an emperor config's own sockets and app beside the emperor; kaiser runs
/// it as the emperor only and must say so, naming the options, instead of leaving a socket
/// that nobody answers on without a word.
#[test]
fn an_emperor_config_with_its_own_app_says_the_app_is_not_served() {
    let hello = app("hello.py");
    let mut emperor = Emperor::start(
        "e-own-app",
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--wsgi-file",
            hello.to_str().expect("utf-8 path"),
        ],
        &[],
    );
    emperor.ready();
    let line = emperor.wait_log(&["not served"]);
    assert!(
        line.contains("`http-socket`, `wsgi-file` not served")
            && line.contains("put the app in a vassal's config"),
        "{line}"
    );
}
