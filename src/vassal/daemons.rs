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
//! The processes kaiser starts are entries of the master's process table
//! (`process_table.rs`, `Kind::Daemon`), which reaps them, fills a daemon's seat again after
//! the quick-death throttle (`respawn.rs`) and keeps the SIGKILL deadline of a stopped one.
//! This module adds what only daemons have: starting the command, the pidfiles, `touch=`,
//! the process-group signals, what a death means (a control daemon stops the vassal, a smart
//! daemon's launcher only daemonized). It reaps nothing itself, except in `stop_now`, right
//! before a re-exec, which waits for its own pids, by pid.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use super::process_table::{Entry, Exit, Kind, Late, ProcessTable, Rule, State, Why};
use super::respawn::Throttle;
use crate::config::daemons::DaemonSpec;
use crate::sys;
use crate::sys::process::{ExitKind, Pid};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Spawned; a smart daemon has not written a valid pidfile yet.
    Started,
    /// A smart daemon whose pidfile named a live process.
    Monitored,
}

struct Daemon {
    spec: DaemonSpec,
    /// A smart daemon's pid: the one its pidfile names, or the process kaiser started when
    /// kaiser writes the pidfile. A plain daemon's pid is its entry in the process table.
    smart_pid: Option<Pid>,
    status: Status,
    spawns: u64,
    pidfile_checks: u32,
    /// Stopping with the vassal: not respawned.
    stopping: bool,
    touch_seen: Vec<Option<SystemTime>>,
}

/// What the master should do after a daemon's process exited.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Exited {
    /// Handled (respawn scheduled, or the daemon was stopping).
    Handled,
    /// An `attach-control-daemon` died: the vassal stops gracefully.
    StopVassal,
}

pub(super) struct Daemons {
    list: Vec<Daemon>,
    next_check: Instant,
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
                smart_pid: None,
                status: Status::Started,
                spawns: 0,
                pidfile_checks: 0,
                stopping: false,
            })
            .collect();
        Daemons {
            list,
            next_check: now + Duration::from_secs(1),
            stopping: false,
        }
    }

    /// A seat per daemon in the process table, each with its own throttle.
    pub fn add_seats(&self, table: &mut ProcessTable) {
        for (index, daemon) in self.list.iter().enumerate() {
            let throttle = Throttle::new(daemon.spec.max_throttle);
            table.add_seat(Kind::Daemon(index), Rule::Throttle(throttle), None);
        }
    }

    /// Daemon `index`'s pid: a plain daemon's process, a smart daemon's pidfile's.
    fn pid(&self, index: usize, table: &ProcessTable) -> Option<Pid> {
        match self.list[index].is_smart() {
            true => self.list[index].smart_pid,
            false => table.pid_of(Kind::Daemon(index)),
        }
    }

    /// Starts every daemon; a smart daemon whose pidfile names a live process is adopted.
    pub fn start_all(&mut self, table: &mut ProcessTable, now: Instant) {
        for index in 0..self.list.len() {
            let daemon = &mut self.list[index];
            if let Some(pidfile) = &daemon.spec.pidfile {
                if let Some(pid) = pidfile_pid(pidfile) {
                    tracing::info!(pid, pidfile = %pidfile.display(), "found a valid pidfile for daemon \"{}\"; not spawning it", daemon.spec.command);
                    daemon.smart_pid = Some(pid);
                    daemon.status = Status::Monitored;
                    continue;
                }
            }
            self.spawn(index, table, now);
        }
    }

    /// Daemon `index`'s process `pid` exited; the table, which has removed its entry, says
    /// what that means (`Exit::Stopped`: the vassal stops).
    pub fn on_exit(
        &mut self,
        index: usize,
        pid: Pid,
        how: ExitKind,
        exit: Exit,
        table: &mut ProcessTable,
        now: Instant,
    ) -> Exited {
        let daemon = &mut self.list[index];
        if daemon.is_smart() && !daemon.spec.write_pidfile {
            // A smart daemon's launcher exits once the daemon has forked away.
            tracing::debug!(pid, %how, "daemon \"{}\" daemonized", daemon.spec.command);
            return Exited::Handled;
        }
        if daemon.is_smart() {
            if daemon.smart_pid != Some(pid) {
                // Its pidfile names another process now: that one is the daemon.
                return Exited::Handled;
            }
            daemon.smart_pid = None;
        }
        if daemon.stopping || exit == Exit::Stopped {
            tracing::info!(pid, %how, "daemon \"{}\" stopped", daemon.spec.command);
            return Exited::Handled;
        }
        if daemon.spec.control {
            tracing::warn!(pid, %how, "control daemon \"{}\" died; stopping the vassal", daemon.spec.command);
            daemon.stopping = true;
            return Exited::StopVassal;
        }
        tracing::warn!(pid, %how, "daemon \"{}\" died; respawning", daemon.spec.command);
        let late = table.schedule_respawn(Kind::Daemon(index), now);
        self.log_throttle(index, late, now);
        Exited::Handled
    }

    fn log_throttle(&self, index: usize, (at, late): (Instant, Late), now: Instant) {
        if let Late::Throttled { quick_deaths } = late {
            tracing::warn!(
                quick_deaths,
                "throttling daemon \"{}\" for {} seconds",
                self.list[index].spec.command,
                at.saturating_duration_since(now).as_secs()
            );
        }
    }

    /// Once per loop turn: `touch=` files and (once a second) the pidfiles of smart
    /// daemons. Respawns and the SIGKILL after a stop are the process table's.
    pub fn tick(&mut self, table: &mut ProcessTable, now: Instant) {
        for index in 0..self.list.len() {
            if !self.list[index].stopping {
                let pid = self.pid(index, table);
                self.list[index].check_touch(pid);
            }
        }
        if now >= self.next_check {
            self.next_check = now + Duration::from_secs(1);
            for index in 0..self.list.len() {
                let daemon = &self.list[index];
                if !daemon.stopping && daemon.is_smart() {
                    self.check_pidfile(index, table, now);
                }
            }
        }
    }

    /// The next pidfile check, for the loop's wait.
    pub fn next_deadline(&self) -> Option<Instant> {
        (!self.list.is_empty()).then_some(self.next_check)
    }

    /// Stops the plain daemons (stop signal, or `reloadsignal` when `reloading`, to each
    /// process group; SIGKILL at `kill_at`) and signals `notifypid` smart daemons.
    pub fn stop_all(&mut self, table: &mut ProcessTable, reloading: bool, kill_at: Instant) {
        self.stopping = true;
        for index in 0..self.list.len() {
            self.list[index].stopping = true;
            table.cancel_respawn(Kind::Daemon(index));
            let Some(pid) = self.pid(index, table) else {
                continue;
            };
            let daemon = &self.list[index];
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
            table.stop(pid, Why::DaemonStop, kill_at);
        }
    }

    /// A plain daemon's process `pid` did not stop within its mercy: SIGKILL to its group.
    pub fn kill_past_mercy(&self, index: usize, pid: Pid) {
        tracing::warn!(
            pid,
            "daemon \"{}\" {}",
            self.list[index].spec.command,
            Why::DaemonStop.kill_line()
        );
        signal_group(pid, libc::SIGKILL);
    }

    /// After a re-exec that failed: the daemons `stop_now` stopped run again.
    pub fn resume(&mut self, table: &mut ProcessTable, now: Instant) {
        self.stopping = false;
        for index in 0..self.list.len() {
            self.list[index].stopping = false;
            let idle = table.occupant(Kind::Daemon(index)).is_none();
            if idle && self.list[index].smart_pid.is_none() {
                self.spawn(index, table, now);
            }
        }
    }

    /// Whether `stop_all` was called.
    pub fn stopping(&self) -> bool {
        self.stopping
    }

    /// Whether every plain daemon is gone (smart ones are left running).
    pub fn all_stopped(&self, table: &ProcessTable) -> bool {
        (0..self.list.len())
            .all(|index| self.list[index].is_smart() || self.pid(index, table).is_none())
    }

    /// Right before a re-exec: stops the plain daemons and waits for them, by pid, up to
    /// `mercy`, then SIGKILLs what is left. The new master image starts them again.
    pub fn stop_now(&mut self, table: &mut ProcessTable, mercy: Duration) {
        let start = Instant::now();
        self.stop_all(table, true, start + mercy);
        let plain: Vec<usize> = (0..self.list.len())
            .filter(|&index| !self.list[index].is_smart())
            .collect();
        loop {
            for &index in &plain {
                let Some(pid) = table.pid_of(Kind::Daemon(index)) else {
                    continue;
                };
                if let Ok(Some(how)) = sys::process::try_wait(pid) {
                    tracing::info!(pid, %how, "daemon \"{}\" stopped", self.list[index].spec.command);
                    table.exited(pid, true);
                }
            }
            if self.all_stopped(table) {
                return;
            }
            let now = Instant::now();
            if now >= start + mercy {
                let daemons = |kind| matches!(kind, Kind::Daemon(_));
                for entry in table.past_mercy(now, daemons) {
                    if let Kind::Daemon(index) = entry.kind {
                        self.kill_past_mercy(index, entry.pid);
                    }
                }
                for &index in &plain {
                    if let Some(pid) = table.pid_of(Kind::Daemon(index)) {
                        // Blocks only on a SIGKILLed child: a moment.
                        while let Ok(None) = sys::process::try_wait(pid) {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        table.exited(pid, true);
                    }
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One line per daemon for SIGUSR1's stats.
    pub fn log(&self, table: &ProcessTable) {
        for (index, daemon) in self.list.iter().enumerate() {
            tracing::info!(
                "daemon \"{}\" (pid: {}) started {} times",
                daemon.spec.command,
                self.pid(index, table).unwrap_or(0),
                daemon.spawns
            );
        }
    }

    /// uWSGI's `daemons` list in the stats JSON: `cmd`, `pid` (0 while down), `respawns`
    /// (how many times it was started, as uWSGI counts).
    pub fn stats(&self, table: &ProcessTable) -> Option<Value> {
        if self.list.is_empty() {
            return None;
        }
        let list: Vec<Value> = (0..self.list.len())
            .map(|index| {
                let daemon = &self.list[index];
                json!({
                    "cmd": daemon.spec.command,
                    "pid": self.pid(index, table).unwrap_or(0),
                    "respawns": daemon.spawns,
                })
            })
            .collect();
        Some(Value::Array(list))
    }

    /// Starts daemon `index`'s command into its seat.
    pub fn spawn(&mut self, index: usize, table: &mut ProcessTable, now: Instant) {
        let kind = Kind::Daemon(index);
        let daemon = &mut self.list[index];
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg(&daemon.spec.command);
        if !daemon.spec.honour_stdin {
            command.stdin(Stdio::null());
        }
        if let Some(dir) = &daemon.spec.chdir {
            command.current_dir(dir);
        }
        if let Some(gid) = daemon.spec.gid {
            std::os::unix::process::CommandExt::gid(&mut command, gid);
        }
        if let Some(uid) = daemon.spec.uid {
            std::os::unix::process::CommandExt::uid(&mut command, uid);
        }
        // Plain daemons die with the master, as in uWSGI; smart ones outlive it.
        sys::process::new_session_on_exec(&mut command, !daemon.is_smart());
        daemon.spawns += 1;
        daemon.status = Status::Started;
        daemon.pidfile_checks = 0;
        let child = match command.spawn() {
            Ok(child) => child.id() as Pid,
            Err(err) => {
                tracing::error!(error = %err, "cannot spawn daemon \"{}\"", daemon.spec.command);
                let late = table.failed_start(kind, now);
                self.log_throttle(index, late, now);
                return;
            }
        };
        let verb = if daemon.spawns > 1 {
            "respawned"
        } else {
            "spawned"
        };
        tracing::info!(pid = child, "{verb} daemon \"{}\"", daemon.spec.command);
        if let Some(pidfile) = daemon
            .spec
            .pidfile
            .as_ref()
            .filter(|_| daemon.spec.write_pidfile)
        {
            daemon.smart_pid = Some(child);
            if let Err(err) = std::fs::write(pidfile, format!("{child}\n")) {
                tracing::error!(error = %err, pidfile = %pidfile.display(), "cannot write the daemon's pidfile");
            }
        }
        table.insert(Entry {
            state: State::Serving,
            ..Entry::new(kind, child, now)
        });
    }

    /// uWSGI's `uwsgi_daemons_smart_check`, once a second.
    fn check_pidfile(&mut self, index: usize, table: &mut ProcessTable, now: Instant) {
        let kind = Kind::Daemon(index);
        if table.respawn_pending(kind) {
            return;
        }
        // The process kaiser started for a self-daemonizing smart daemon, until it exits.
        let launcher = table
            .pid_of(kind)
            .filter(|_| !self.list[index].spec.write_pidfile);
        let daemon = &mut self.list[index];
        let pidfile = daemon
            .spec
            .pidfile
            .clone()
            .expect("only smart daemons are checked");
        let respawn = match pidfile_pid(&pidfile) {
            Some(pid) => {
                if daemon.smart_pid != Some(pid) {
                    if daemon.status == Status::Monitored {
                        tracing::info!(old = ?daemon.smart_pid, new = pid, "daemon \"{}\" changed pid", daemon.spec.command);
                    }
                    daemon.smart_pid = Some(pid);
                }
                daemon.status = Status::Monitored;
                false
            }
            None if daemon.status == Status::Monitored => {
                tracing::warn!(pid = ?daemon.smart_pid, pidfile = %pidfile.display(), "daemon \"{}\" is gone (its pidfile names no live process); respawning", daemon.spec.command);
                daemon.smart_pid = None;
                true
            }
            None => {
                daemon.pidfile_checks += 1;
                if daemon.pidfile_checks < daemon.spec.freq.max(1) {
                    return;
                }
                daemon.pidfile_checks = 0;
                if launcher.is_some() {
                    tracing::warn!(
                        "daemon \"{}\" did not daemonize (no valid pidfile `{}` yet)",
                        daemon.spec.command,
                        pidfile.display()
                    );
                    false
                } else {
                    tracing::warn!(
                        "daemon \"{}\" wrote no valid pidfile `{}`; respawning",
                        daemon.spec.command,
                        pidfile.display()
                    );
                    true
                }
            }
        };
        if respawn {
            let late = table.schedule_respawn(kind, now);
            self.log_throttle(index, late, now);
        }
    }
}

impl Daemon {
    fn is_smart(&self) -> bool {
        self.spec.pidfile.is_some()
    }

    /// `touch=`: a touched file restarts the daemon `pid` with its stop signal.
    fn check_touch(&mut self, pid: Option<Pid>) {
        let Some(pid) = pid else { return };
        for (path, seen) in self.spec.touch.iter().zip(self.touch_seen.iter_mut()) {
            let now = mtime(path);
            if now != *seen {
                *seen = now;
                tracing::info!(pid, path = %path.display(), "`{}` was touched; restarting daemon \"{}\"", path.display(), self.spec.command);
                signal_group(pid, self.spec.stop_signal);
            }
        }
    }
}
