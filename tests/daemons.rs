//! External daemons (`attach-daemon` and friends): started with the vassal, restarted after
//! `kill -9`, throttled when they crash-loop, stopped with the vassal (their pid gone),
//! restarted by a graceful reload, listed in the stats JSON; smart daemons tracked through
//! their pidfile, adopted by the next master and left running when the vassal stops.

mod common;

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use common::*;

const EXIT: Duration = Duration::from_secs(15);

fn ini(dir: &TempDir, body: &str) -> String {
    dir.write(
        "app.ini",
        format!("[uwsgi]\nwsgi-file = tests/apps/hello.py\n{body}"),
    )
    .to_str()
    .unwrap()
    .to_string()
}

/// The pids the daemon wrote, one line per start (`echo $$ >> pids; exec …` keeps the pid).
fn pids(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn wait_pids(path: &Path, n: usize, kaiser: &Kaiser) -> Vec<i32> {
    wait_until(&format!("{n} daemon starts"), START_TIMEOUT, |last| {
        let got = pids(path);
        *last = format!("{got:?}\n{}", kaiser.logs());
        Ok((got.len() >= n).then_some(got))
    })
    .unwrap()
}

/// Running, and not a zombie.
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some(Some('Z')) | None)
}

fn kill(pid: i32, signal: i32) {
    // SAFETY: kill has no memory effects; the pid is one this test's daemon wrote.
    unsafe { libc::kill(pid, signal) };
}

fn stats(path: &Path) -> serde_json::Value {
    let mut stream = wait_for_unix(path, START_TIMEOUT).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("stats are not JSON ({e}): {text}"))
}

#[test]
fn a_daemon_is_restarted_after_kill_9_and_stopped_with_the_vassal() {
    let dir = TempDir::new("daemon");
    let pid_log = dir.join("pids");
    let stats_path = dir.join("stats.sock");
    let command = format!("echo $$ >> {}; exec sleep 1000", pid_log.display());
    let config = ini(
        &dir,
        &format!(
            "attach-daemon = {command}\nstats = {}\n",
            stats_path.display()
        ),
    );
    let (mut kaiser, _) = start_http(&["--ini", &config]);
    let first = wait_pids(&pid_log, 1, &kaiser)[0];
    assert!(alive(first));
    let document = stats(&stats_path);
    assert_eq!(document["daemons"][0]["cmd"], command, "{document}");
    assert_eq!(document["daemons"][0]["pid"], first, "{document}");
    assert_eq!(document["daemons"][0]["respawns"], 1, "{document}");

    kill(first, libc::SIGKILL);
    let second = wait_pids(&pid_log, 2, &kaiser)[1];
    assert_ne!(first, second);
    assert!(alive(second), "{}", kaiser.logs());
    kaiser
        .wait_for_log("died; respawning", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let document = stats(&stats_path);
    assert_eq!(document["daemons"][0]["pid"], second, "{document}");
    assert_eq!(document["daemons"][0]["respawns"], 2, "{document}");
    kaiser.signal(libc::SIGUSR1);
    kaiser
        .wait_for_log(&format!("(pid: {second}) started 2 times"), START_TIMEOUT)
        .unwrap();

    kaiser.signal(libc::SIGTERM);
    assert_eq!(
        kaiser.expect_exit(EXIT).code(),
        Some(0),
        "{}",
        kaiser.logs()
    );
    assert!(
        !alive(second),
        "the daemon outlived its vassal:\n{}",
        kaiser.logs()
    );
    kaiser
        .wait_for_log("stopping daemon", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_crash_looping_daemon_is_throttled() {
    let dir = TempDir::new("daemon-loop");
    let starts = dir.join("starts");
    let config = ini(
        &dir,
        &format!("attach-daemon = echo $$ >> {}; exit 1\n", starts.display()),
    );
    let (kaiser, _) = start_http(&["--ini", &config]);
    // Each quick death waits one second more than the last: 1, 2, 3 …
    kaiser
        .wait_for_log("for 3 seconds", Duration::from_secs(20))
        .unwrap();
    let count = pids(&starts).len();
    assert_eq!(
        count,
        3,
        "three starts before the third throttle:\n{}",
        kaiser.logs()
    );
    kaiser
        .wait_for_log("throttling daemon \"echo", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A daemon that ignores its stop signal is SIGKILLed (its whole process group) after
/// `reload-mercy`, and the vassal still exits.
#[test]
fn a_daemon_ignoring_sigterm_is_killed_after_reload_mercy() {
    let dir = TempDir::new("daemon-stubborn");
    let pid_log = dir.join("pids");
    let config = ini(
        &dir,
        &format!(
            "reload-mercy = 1\nattach-daemon = trap '' TERM; echo $$ >> {}; while :; do sleep 0.2; done\n",
            pid_log.display()
        ),
    );
    let (mut kaiser, _) = start_http(&["--ini", &config]);
    let pid = wait_pids(&pid_log, 1, &kaiser)[0];
    kaiser.signal(libc::SIGTERM);
    assert_eq!(
        kaiser.expect_exit(EXIT).code(),
        Some(0),
        "{}",
        kaiser.logs()
    );
    assert!(!alive(pid), "{}", kaiser.logs());
    kaiser
        .wait_for_log("did not stop within reload-mercy", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A graceful reload stops the plain daemons and the re-executed master starts them again,
/// as uWSGI does, so a reload also reloads the daemon's code.
#[test]
fn a_graceful_reload_restarts_plain_daemons() {
    let dir = TempDir::new("daemon-reload");
    let pid_log = dir.join("pids");
    let config = ini(
        &dir,
        &format!(
            "attach-daemon = echo $$ >> {}; exec sleep 1000\n",
            pid_log.display()
        ),
    );
    let (mut kaiser, _) = start_http(&["--ini", &config]);
    let first = wait_pids(&pid_log, 1, &kaiser)[0];
    kaiser.signal(libc::SIGHUP);
    let second = wait_pids(&pid_log, 2, &kaiser)[1];
    assert_ne!(first, second);
    assert!(!alive(first), "{}", kaiser.logs());
    assert!(alive(second), "{}", kaiser.logs());
    kaiser.signal(libc::SIGTERM);
    kaiser.expect_exit(EXIT);
    assert!(!alive(second), "{}", kaiser.logs());
}

/// Kills a smart daemon the test left running, by the pid it wrote.
struct KillOnDrop(Vec<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in &self.0 {
            kill(*pid, libc::SIGKILL);
        }
    }
}

#[test]
fn a_smart_daemon_is_tracked_by_its_pidfile_and_survives_the_vassal() {
    let dir = TempDir::new("daemon-smart");
    let pidfile = dir.join("d.pid");
    let stats_path = dir.join("stats.sock");
    // Daemonizes itself: the launcher writes the background pid and exits at once.
    let config = ini(
        &dir,
        &format!(
            "stats = {}\nsmart-attach-daemon = {pid} (sleep 1000 & echo $! > {pid})\n",
            stats_path.display(),
            pid = pidfile.display()
        ),
    );
    let (mut kaiser, _) = start_http(&["--ini", &config]);
    let mut cleanup = KillOnDrop(Vec::new());
    let read_pid =
        || -> Option<i32> { std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok() };
    let first = wait_until("the pidfile", START_TIMEOUT, |_| Ok(read_pid())).unwrap();
    cleanup.0.push(first);
    wait_until("stats to show the daemon's pid", START_TIMEOUT, |last| {
        let document = stats(&stats_path);
        *last = document.to_string();
        Ok((document["daemons"][0]["pid"] == first).then_some(()))
    })
    .unwrap();

    // Killed: the pidfile check (once a second) notices and starts it again.
    kill(first, libc::SIGKILL);
    let second = wait_until("a new pid in the pidfile", START_TIMEOUT, |last| {
        let pid = read_pid();
        *last = format!("{pid:?}\n{}", kaiser.logs());
        Ok(pid.filter(|p| *p != first && alive(*p)))
    })
    .unwrap();
    cleanup.0.push(second);
    kaiser
        .wait_for_log("its pidfile names no live process", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));

    // The vassal stops; the smart daemon stays (uWSGI leaves pidfile daemons running).
    kaiser.signal(libc::SIGTERM);
    kaiser.expect_exit(EXIT);
    assert!(alive(second), "{}", kaiser.logs());

    // The next vassal adopts it instead of starting a second copy.
    let (kaiser, _) = start_http(&["--ini", &config]);
    kaiser
        .wait_for_log("found a valid pidfile", START_TIMEOUT)
        .unwrap();
    assert_eq!(read_pid(), Some(second));
    kaiser.master_barrier();
    assert!(
        !kaiser.logs().contains("spawned daemon"),
        "{}",
        kaiser.logs()
    );
}

/// `smart-attach-daemon2`: the command stays in the foreground and kaiser writes its pid.
#[test]
fn smart_attach_daemon2_writes_the_pidfile_itself() {
    let dir = TempDir::new("daemon-smart2");
    let pidfile = dir.join("d2.pid");
    let pid_log = dir.join("pids");
    let config = ini(
        &dir,
        &format!(
            "smart-attach-daemon2 = {} echo $$ >> {}; exec sleep 1000\n",
            pidfile.display(),
            pid_log.display()
        ),
    );
    let (mut kaiser, _) = start_http(&["--ini", &config]);
    let pid = wait_pids(&pid_log, 1, &kaiser)[0];
    let _cleanup = KillOnDrop(vec![pid]);
    let written = wait_until("the pidfile", START_TIMEOUT, |_| {
        Ok(std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok()))
    })
    .unwrap();
    assert_eq!(written, pid);
    kill(pid, libc::SIGKILL);
    let again = wait_pids(&pid_log, 2, &kaiser)[1];
    let _cleanup2 = KillOnDrop(vec![again]);
    kaiser.signal(libc::SIGTERM);
    kaiser.expect_exit(EXIT);
}

#[test]
fn a_control_daemon_that_dies_stops_the_vassal() {
    let dir = TempDir::new("daemon-control");
    let pid_log = dir.join("pids");
    let config = ini(
        &dir,
        &format!(
            "attach-control-daemon = echo $$ >> {}; exec sleep 1000\n",
            pid_log.display()
        ),
    );
    let (mut kaiser, _) = start_http(&["--ini", &config]);
    let pid = wait_pids(&pid_log, 1, &kaiser)[0];
    kill(pid, libc::SIGKILL);
    assert_eq!(
        kaiser.expect_exit(EXIT).code(),
        Some(0),
        "{}",
        kaiser.logs()
    );
    kaiser
        .wait_for_log("control daemon", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// `attach-daemon2`'s key=value form: `touch=` restarts the daemon with its `stopsignal`.
#[test]
fn attach_daemon2_touch_restarts_the_daemon_with_its_stop_signal() {
    let dir = TempDir::new("daemon-kv");
    let pid_log = dir.join("pids");
    let signals = dir.join("signals");
    let flag = dir.write("restart", "");
    let config = ini(
        &dir,
        &format!(
            "attach-daemon2 = cmd=echo $$ >> {pids}; trap 'echo got-usr1 >> {signals}; exit 0' USR1; while :; do sleep 0.1; done,stopsignal=10,touch={flag}\n",
            pids = pid_log.display(),
            signals = signals.display(),
            flag = flag.display()
        ),
    );
    let (mut kaiser, _) = start_http(&["--ini", &config]);
    let first = wait_pids(&pid_log, 1, &kaiser)[0];
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&flag)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let second = wait_pids(&pid_log, 2, &kaiser)[1];
    assert_ne!(first, second);
    assert!(!alive(first), "{}", kaiser.logs());
    assert_eq!(
        std::fs::read_to_string(&signals).unwrap().trim(),
        "got-usr1"
    );
    kaiser.signal(libc::SIGTERM);
    kaiser.expect_exit(EXIT);
    assert!(!alive(second), "{}", kaiser.logs());
}

/// An instance that only supervises a daemon, as uWSGI vassals often run a Celery worker:
/// no socket, no app. uWSGI runs it with no worker (`numproc = 0`); so does kaiser, and it
/// still starts, restarts and stops the daemon. An instance with nothing at all to run is
/// still refused.
#[test]
fn a_daemon_only_instance_runs_without_a_socket() {
    let dir = TempDir::new("daemon-only");
    let pid_log = dir.join("pids");
    let command = format!("echo $$ >> {}; exec sleep 1000", pid_log.display());
    let config = dir.write(
        "daemon.ini",
        format!("[uwsgi]\nmaster = true\nattach-daemon = {command}\n"),
    );
    let mut kaiser = Kaiser::spawn(&["--ini", config.to_str().unwrap()]);
    kaiser
        .wait_for_log("ready in", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let first = wait_pids(&pid_log, 1, &kaiser)[0];
    assert!(alive(first));
    assert!(
        !kaiser.logs().contains("spawned worker"),
        "{}",
        kaiser.logs()
    );
    kill(first, libc::SIGKILL);
    let second = wait_pids(&pid_log, 2, &kaiser)[1];
    assert!(alive(second), "{}", kaiser.logs());
    kaiser.signal(libc::SIGTERM);
    assert_eq!(
        kaiser.expect_exit(EXIT).code(),
        Some(0),
        "{}",
        kaiser.logs()
    );
    assert!(!alive(second), "the daemon outlived its vassal");

    let empty = dir.write("empty.ini", "[uwsgi]\nmaster = true\n");
    let mut refused = Kaiser::spawn(&["--ini", empty.to_str().unwrap()]);
    assert_ne!(refused.expect_exit(EXIT).code(), Some(0));
    assert!(
        refused.logs().contains("no socket configured"),
        "{}",
        refused.logs()
    );
}

/// `no-server`: the master and its mules and nothing else, as in uWSGI.
#[test]
fn no_server_starts_a_master_without_workers() {
    let dir = TempDir::new("no-server");
    let config = dir.write("ns.ini", "[uwsgi]\nmaster = true\nno-server = true\n");
    let mut kaiser = Kaiser::spawn(&["--ini", config.to_str().unwrap()]);
    kaiser
        .wait_for_log("ready in", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        kaiser.logs().contains("forks no worker"),
        "{}",
        kaiser.logs()
    );
    kaiser.signal(libc::SIGINT);
    assert_eq!(
        kaiser.expect_exit(EXIT).code(),
        Some(0),
        "{}",
        kaiser.logs()
    );
}
