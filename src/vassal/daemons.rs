//! External daemons (`attach-daemon` and its variants, uWSGI's `core/daemons.c`): the vassal
//! master runs each command with `/bin/sh -c` in its own session (so its whole process group
//! can be signalled), restarts it when it dies, throttled when it keeps dying, and stops it
//! with the vassal: the stop signal to its process group, then SIGKILL after `reload-mercy`.
//!
//! Two kinds, as in uWSGI:
//! - plain daemons are children of the master and die with it (`PR_SET_PDEATHSIG`); on a
//!   graceful reload they are stopped (with `reloadsignal` if set) and the re-executed
//!   master starts them again, so a reload picks up new code in them too;
//! - smart daemons (`smart-attach-daemon*`, `pidfile=`) are tracked through their pidfile,
//!   checked once a second: a valid pidfile at start is adopted instead of spawning a second
//!   copy, and they are left running across reloads and shutdown (signalled only with
//!   `notifypid`), which is what their pidfile is for.
//!
//! Throttling: a daemon that dies within 3 seconds of its start waits before its next start,
//! one second more for each such quick death in a row (capped by `max_throttle`, else 300 s);
//! one that ran longer restarts at once. uWSGI grows the delay with the total number of
//! respawns instead, so a daemon that crashed often long ago waits long for a new quick
//! crash; counting quick deaths in a row keeps the bound and forgets old history.
//!
//! This module does not reap children itself during normal running (the master's loop reaps
//! every child and offers each pid here first); only `stop_now`, used right before a re-exec,
//! waits for its own pids, by pid.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::config::daemons::DaemonSpec;
use crate::sys;
use crate::sys::process::{ExitKind, Pid};

/// A daemon that dies within this long of its start counts as a quick death.
const QUICK_DEATH: Duration = Duration::from_secs(3);
/// uWSGI's cap on the throttle when `max_throttle` is not set.
const MAX_THROTTLE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Spawned; a smart daemon has not written a valid pidfile yet.
    Started,
    /// A smart daemon whose pidfile named a live process.
    Monitored,
}

struct Daemon {
    spec: DaemonSpec,
    /// The daemon's pid (for a smart daemon, the one its pidfile names).
    pid: Option<Pid>,
    /// The process kaiser spawned for a self-daemonizing smart daemon, until it exits.
    launcher: Option<Pid>,
    status: Status,
    spawns: u64,
    last_spawn: Option<Instant>,
    quick_deaths: u32,
    respawn_at: Option<Instant>,
    pidfile_checks: u32,
    /// Stopping with the vassal: not respawned.
    stopping: bool,
    touch_seen: Vec<Option<SystemTime>>,
}

/// What the master should do after a daemon exited.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Exited {
    /// Not a daemon's pid.
    Unknown,
    /// Handled (respawn scheduled, or the daemon was stopping).
    Handled,
    /// An `attach-control-daemon` died: the vassal stops gracefully.
    StopVassal,
}

pub(super) struct Daemons {
    list: Vec<Daemon>,
    next_check: Instant,
    kill_at: Option<Instant>,
    /// `stop_all` was called (and `resume` not since).
    stopping: bool,
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The live pid a pidfile names, as uWSGI's `uwsgi_check_pidfile`.
fn pidfile_pid(path: &Path) -> Option<Pid> {
    let text = std::fs::read_to_string(path).ok()?;
    let pid: Pid = text.trim().parse().ok()?;
    (pid > 0 && sys::process::is_alive(pid)).then_some(pid)
}

/// Signals a daemon's process group, or the process alone if it has none of its own.
fn signal_group(pid: Pid, signal: i32) {
    if sys::signal::kill(-pid, signal).is_err() {
        let _ = sys::signal::kill(pid, signal);
    }
}

impl Daemons {
    /// `honour_stdin`: `daemons-honour-stdin`, for every daemon.
    pub fn new(specs: &[DaemonSpec], honour_stdin: bool, now: Instant) -> Daemons {
        let list = specs
            .iter()
            .map(|spec| Daemon {
                touch_seen: spec.touch.iter().map(|t| mtime(t)).collect(),
                spec: DaemonSpec {
                    honour_stdin: spec.honour_stdin || honour_stdin,
                    ..spec.clone()
                },
                pid: None,
                launcher: None,
                status: Status::Started,
                spawns: 0,
                last_spawn: None,
                quick_deaths: 0,
                respawn_at: None,
                pidfile_checks: 0,
                stopping: false,
            })
            .collect();
        Daemons {
            list,
            next_check: now + Duration::from_secs(1),
            kill_at: None,
            stopping: false,
        }
    }

    /// Starts every daemon; a smart daemon whose pidfile names a live process is adopted.
    pub fn start_all(&mut self, now: Instant) {
        for daemon in &mut self.list {
            if let Some(pidfile) = &daemon.spec.pidfile {
                if let Some(pid) = pidfile_pid(pidfile) {
                    tracing::info!(pid, pidfile = %pidfile.display(), "found a valid pidfile for daemon \"{}\"; not spawning it", daemon.spec.command);
                    daemon.pid = Some(pid);
                    daemon.status = Status::Monitored;
                    continue;
                }
            }
            daemon.spawn(now);
        }
    }

    /// Offers an exited child's pid; the master treats it as a worker only if this says
    /// `Unknown`.
    pub fn on_exit(&mut self, pid: Pid, how: ExitKind, now: Instant) -> Exited {
        for daemon in &mut self.list {
            if daemon.launcher == Some(pid) {
                // A smart daemon's launcher exits once the daemon has forked away.
                daemon.launcher = None;
                tracing::debug!(pid, %how, "daemon \"{}\" daemonized", daemon.spec.command);
                return Exited::Handled;
            }
            if daemon.pid != Some(pid) {
                continue;
            }
            daemon.pid = None;
            if daemon.stopping {
                tracing::info!(pid, %how, "daemon \"{}\" stopped", daemon.spec.command);
                return Exited::Handled;
            }
            if daemon.spec.control {
                tracing::warn!(pid, %how, "control daemon \"{}\" died; stopping the vassal", daemon.spec.command);
                daemon.stopping = true;
                return Exited::StopVassal;
            }
            tracing::warn!(pid, %how, "daemon \"{}\" died; respawning", daemon.spec.command);
            daemon.schedule_respawn(now);
            return Exited::Handled;
        }
        Exited::Unknown
    }

    /// Once per loop turn: due respawns, `touch=` files and (once a second) the pidfiles of
    /// smart daemons; past the stop deadline, SIGKILL.
    pub fn tick(&mut self, now: Instant) {
        if let Some(at) = self.kill_at {
            if now >= at {
                for daemon in self.list.iter().filter(|d| d.stopping && !d.is_smart()) {
                    if let Some(pid) = daemon.pid {
                        tracing::warn!(pid, "daemon \"{}\" did not stop within reload-mercy; killing its process group", daemon.spec.command);
                        signal_group(pid, libc::SIGKILL);
                    }
                }
                self.kill_at = None;
            }
        }
        for daemon in &mut self.list {
            if daemon.stopping {
                continue;
            }
            if daemon.respawn_at.is_some_and(|at| at <= now) {
                daemon.spawn(now);
            }
            daemon.check_touch();
        }
        if now >= self.next_check {
            self.next_check = now + Duration::from_secs(1);
            for daemon in self.list.iter_mut().filter(|d| !d.stopping && d.is_smart()) {
                daemon.check_pidfile(now);
            }
        }
    }

    /// The earliest moment `tick` has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.list.is_empty() {
            return None;
        }
        let respawns = self.list.iter().filter_map(|d| d.respawn_at);
        respawns
            .chain(self.kill_at)
            .chain(Some(self.next_check))
            .min()
    }

    /// Stops the plain daemons (stop signal, or `reloadsignal` when `reloading`, to each
    /// process group) and signals `notifypid` smart daemons; SIGKILL follows at `kill_at`.
    pub fn stop_all(&mut self, reloading: bool, kill_at: Instant) {
        self.stopping = true;
        for daemon in &mut self.list {
            daemon.stopping = true;
            daemon.respawn_at = None;
            let Some(pid) = daemon.pid else { continue };
            if daemon.is_smart() {
                if daemon.spec.notifypid {
                    let signal = if reloading {
                        daemon.spec.reload_signal.unwrap_or(libc::SIGHUP)
                    } else {
                        daemon.spec.stop_signal
                    };
                    signal_group(pid, signal);
                }
                continue;
            }
            let signal = match daemon.spec.reload_signal {
                Some(signal) if reloading => signal,
                _ => daemon.spec.stop_signal,
            };
            tracing::info!(pid, signal, "stopping daemon \"{}\"", daemon.spec.command);
            signal_group(pid, signal);
        }
        self.kill_at = Some(kill_at);
    }

    /// After a re-exec that failed: the daemons `stop_now` stopped run again.
    pub fn resume(&mut self, now: Instant) {
        self.kill_at = None;
        self.stopping = false;
        for daemon in &mut self.list {
            daemon.stopping = false;
            if daemon.pid.is_none() && daemon.launcher.is_none() {
                daemon.spawn(now);
            }
        }
    }

    /// Whether `stop_all` was called.
    pub fn stopping(&self) -> bool {
        self.stopping
    }

    /// Whether every plain daemon is gone (smart ones are left running).
    pub fn all_stopped(&self) -> bool {
        self.list.iter().all(|d| d.is_smart() || d.pid.is_none())
    }

    /// Right before a re-exec: stops the plain daemons and waits for them, by pid, up to
    /// `mercy`, then SIGKILLs what is left. The new master image starts them again.
    pub fn stop_now(&mut self, mercy: Duration) {
        let start = Instant::now();
        self.stop_all(true, start + mercy);
        loop {
            for daemon in self.list.iter_mut().filter(|d| !d.is_smart()) {
                if let Some(pid) = daemon.pid {
                    if let Ok(Some(how)) = sys::process::try_wait(pid) {
                        tracing::info!(pid, %how, "daemon \"{}\" stopped", daemon.spec.command);
                        daemon.pid = None;
                    }
                }
            }
            if self.all_stopped() {
                return;
            }
            let now = Instant::now();
            if self.kill_at.is_some_and(|at| now >= at) {
                self.tick(now);
                for daemon in self.list.iter_mut().filter(|d| !d.is_smart()) {
                    if let Some(pid) = daemon.pid.take() {
                        // Blocks only on a SIGKILLed child: a moment.
                        while let Ok(None) = sys::process::try_wait(pid) {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One line per daemon for SIGUSR1's stats.
    pub fn log(&self) {
        for daemon in &self.list {
            tracing::info!(
                "daemon \"{}\" (pid: {}) started {} times",
                daemon.spec.command,
                daemon.pid.unwrap_or(0),
                daemon.spawns
            );
        }
    }

    /// uWSGI's `daemons` list in the stats JSON: `cmd`, `pid` (0 while down), `respawns`
    /// (how many times it was started, as uWSGI counts).
    pub fn stats(&self) -> Option<Value> {
        if self.list.is_empty() {
            return None;
        }
        let list: Vec<Value> = self
            .list
            .iter()
            .map(|d| {
                json!({
                    "cmd": d.spec.command,
                    "pid": d.pid.unwrap_or(0),
                    "respawns": d.spawns,
                })
            })
            .collect();
        Some(Value::Array(list))
    }
}

impl Daemon {
    fn is_smart(&self) -> bool {
        self.spec.pidfile.is_some()
    }

    fn schedule_respawn(&mut self, now: Instant) {
        let quick = self
            .last_spawn
            .is_some_and(|at| now.duration_since(at) <= QUICK_DEATH);
        if !quick {
            self.quick_deaths = 0;
            self.respawn_at = Some(now);
            return;
        }
        self.quick_deaths += 1;
        let cap = self.spec.max_throttle.unwrap_or(MAX_THROTTLE);
        let delay = Duration::from_secs(self.quick_deaths.into()).min(cap);
        tracing::warn!(
            quick_deaths = self.quick_deaths,
            "throttling daemon \"{}\" for {} seconds",
            self.spec.command,
            delay.as_secs()
        );
        self.respawn_at = Some(now + delay);
    }

    fn spawn(&mut self, now: Instant) {
        self.respawn_at = None;
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg(&self.spec.command);
        if !self.spec.honour_stdin {
            command.stdin(Stdio::null());
        }
        if let Some(dir) = &self.spec.chdir {
            command.current_dir(dir);
        }
        if let Some(gid) = self.spec.gid {
            std::os::unix::process::CommandExt::gid(&mut command, gid);
        }
        if let Some(uid) = self.spec.uid {
            std::os::unix::process::CommandExt::uid(&mut command, uid);
        }
        // Plain daemons die with the master, as in uWSGI; smart ones outlive it.
        sys::process::new_session_on_exec(&mut command, !self.is_smart());
        self.spawns += 1;
        self.last_spawn = Some(now);
        self.status = Status::Started;
        self.pidfile_checks = 0;
        let child = match command.spawn() {
            Ok(child) => child.id() as Pid,
            Err(err) => {
                tracing::error!(error = %err, "cannot spawn daemon \"{}\"", self.spec.command);
                self.schedule_respawn(now);
                return;
            }
        };
        let verb = if self.spawns > 1 {
            "respawned"
        } else {
            "spawned"
        };
        tracing::info!(pid = child, "{verb} daemon \"{}\"", self.spec.command);
        match &self.spec.pidfile {
            Some(pidfile) if self.spec.write_pidfile => {
                self.pid = Some(child);
                if let Err(err) = std::fs::write(pidfile, format!("{child}\n")) {
                    tracing::error!(error = %err, pidfile = %pidfile.display(), "cannot write the daemon's pidfile");
                }
            }
            Some(_) => self.launcher = Some(child),
            None => self.pid = Some(child),
        }
    }

    fn check_touch(&mut self) {
        let Some(pid) = self.pid else { return };
        for (path, seen) in self.spec.touch.iter().zip(self.touch_seen.iter_mut()) {
            let now = mtime(path);
            if now != *seen {
                *seen = now;
                tracing::info!(pid, path = %path.display(), "`{}` was touched; restarting daemon \"{}\"", path.display(), self.spec.command);
                signal_group(pid, self.spec.stop_signal);
            }
        }
    }

    /// uWSGI's `uwsgi_daemons_smart_check`, once a second.
    fn check_pidfile(&mut self, now: Instant) {
        if self.respawn_at.is_some() {
            return;
        }
        let pidfile = self
            .spec
            .pidfile
            .as_ref()
            .expect("only smart daemons are checked");
        match pidfile_pid(pidfile) {
            Some(pid) => {
                if self.pid != Some(pid) {
                    if self.status == Status::Monitored {
                        tracing::info!(old = ?self.pid, new = pid, "daemon \"{}\" changed pid", self.spec.command);
                    }
                    self.pid = Some(pid);
                }
                self.status = Status::Monitored;
            }
            None if self.status == Status::Monitored => {
                tracing::warn!(pid = ?self.pid, pidfile = %pidfile.display(), "daemon \"{}\" is gone (its pidfile names no live process); respawning", self.spec.command);
                self.pid = None;
                self.schedule_respawn(now);
            }
            None => {
                self.pidfile_checks += 1;
                if self.pidfile_checks < self.spec.freq.max(1) {
                    return;
                }
                self.pidfile_checks = 0;
                if self.launcher.is_some() {
                    tracing::warn!(
                        "daemon \"{}\" did not daemonize (no valid pidfile `{}` yet)",
                        self.spec.command,
                        pidfile.display()
                    );
                } else {
                    tracing::warn!(
                        "daemon \"{}\" wrote no valid pidfile `{}`; respawning",
                        self.spec.command,
                        pidfile.display()
                    );
                    self.schedule_respawn(now);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon(max_throttle: Option<u64>) -> Daemon {
        let mut spec = crate::config::daemons::parse("attach-daemon", "true").unwrap();
        spec.max_throttle = max_throttle.map(Duration::from_secs);
        Daemons::new(&[spec], false, Instant::now())
            .list
            .pop()
            .unwrap()
    }

    /// Started at `start`, died `lived` later: the delay before its next start.
    fn delay_after(daemon: &mut Daemon, start: Instant, lived: u64) -> u64 {
        daemon.last_spawn = Some(start);
        let death = start + Duration::from_secs(lived);
        daemon.schedule_respawn(death);
        daemon.respawn_at.unwrap().duration_since(death).as_secs()
    }

    #[test]
    fn quick_deaths_in_a_row_wait_longer_and_a_long_run_resets() {
        let mut d = daemon(None);
        let t = Instant::now();
        let delays: Vec<u64> = (0..4).map(|_| delay_after(&mut d, t, 0)).collect();
        assert_eq!(delays, [1, 2, 3, 4]);
        assert_eq!(
            delay_after(&mut d, t, 60),
            0,
            "ran a minute: restarts at once"
        );
        assert_eq!(delay_after(&mut d, t, 1), 1, "the count starts again");

        let mut capped = daemon(Some(2));
        let delays: Vec<u64> = (0..4).map(|_| delay_after(&mut capped, t, 0)).collect();
        assert_eq!(delays, [1, 2, 2, 2], "max_throttle caps the delay");
    }
}
