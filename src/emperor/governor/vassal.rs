//! The emperor's record of one vassal and what happens to it: its creation when a file
//! appears, each event run through its state machine ([`crate::emperor::state`]) with the
//! transition logged and the bookkeeping kept (pids, timestamps for emperor-stats, throttle
//! delays), the actions carried out (spawn, SIGHUP, SIGTERM then SIGKILL after mercy,
//! forgetting it), the messages and the exit read from its process, heartbeat curses and
//! the on-demand socket's wake-up.
//!
//! It does not choose transitions (the state machine does) and must not wait: spawning
//! execs at once, and a vassal's channel and exit, and `emperor-on-demand-exec`'s answer, are
//! read by tasks that report to the loop.
//! Handling one vassal must not touch another's record.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};

use super::{millis, Governor};
use crate::emperor::as_emperor::{self, StartedVassal};
use crate::emperor::heartbeat;
use crate::emperor::monitor::{self, FileStamp, Monitor};
use crate::emperor::on_demand::{self, OnDemand, Source};
use crate::emperor::sd_notify::{self, VassalMessage};
use crate::emperor::spawn::{self, SpawnRequest};
use crate::emperor::state::{Action, Event, Exit, Lifecycle, State};
use crate::emperor::vassal_hooks;
use crate::sys::clock::unix_secs;

/// What vassal-side tasks report to the loop. `spawn_id` tells instances of one vassal apart,
/// so a late message from a process that was replaced is recognised as stale.
#[derive(Debug)]
pub(super) enum VassalReport {
    Datagram {
        spawn_id: u64,
        bytes: Vec<u8>,
    },
    Exited {
        spawn_id: u64,
        exit: Exit,
        detail: String,
    },
    /// A connection waits on an on-demand vassal's socket (`on_demand.rs`).
    Connection {
        path: PathBuf,
    },
    /// `emperor-on-demand-exec` answered for a new vassal file (`on_demand::ask_exec`).
    OnDemandAnswer {
        path: PathBuf,
        answer: Result<String, crate::emperor::on_demand::BindOnDemandError>,
    },
}

/// What the emperor knows about one vassal file and its current process.
pub(super) struct Vassal {
    pub(super) name: String,
    pub(super) file_name: String,
    pub(super) path: PathBuf,
    pub(super) monitor_idx: usize,
    pub(super) life: Lifecycle,
    pub(super) stamp: FileStamp,
    pub(super) spawn_id: u64,
    pub(super) pid: Option<u32>,
    pub(super) since: Instant,
    pub(super) spawned_at: Option<Instant>,
    pub(super) retry_at: Option<Instant>,
    pub(super) retry_delay: Duration,
    pub(super) kill_at: Option<Instant>,
    pub(super) status: String,
    pub(super) spawns: u64,
    pub(super) born: u64,
    pub(super) first_run: u64,
    pub(super) last_run: u64,
    pub(super) last_ready: u64,
    pub(super) cursed: u64,
    pub(super) first_failure: u64,
    pub(super) last_failure: u64,
    /// The last `WATCHDOG=1` from this process (`heartbeat`); `None` until its first.
    pub(super) last_heartbeat: Option<Instant>,
    /// `emperor-on-demand-directory`: the socket the emperor holds for it.
    pub(super) on_demand: Option<OnDemand>,
}

impl Governor {
    pub(super) fn on_added(&mut self, monitor_idx: usize, path: PathBuf, stamp: FileStamp) {
        if let Some(vassal) = self.vassals.get_mut(&path) {
            if vassal.monitor_idx == monitor_idx {
                // Came back while its previous instance is still stopping.
                vassal.stamp = stamp;
                self.feed(&path, Event::Changed);
            } else {
                debug!(vassal = %vassal.name, "already governed through another monitor");
            }
            return;
        }
        if let Some(Source::Exec(command)) = &self.settings.on_demand {
            // Asked on a task; `on_exec_answer` adds the vassal. Until then a rescan sees the
            // file in the snapshot already and does not ask twice.
            if self
                .on_demand_asking
                .insert(path.clone(), monitor_idx)
                .is_none()
            {
                let reports = self.reports.clone();
                let (command, file) = (command.clone(), path.clone());
                tokio::spawn(async move {
                    let answer = on_demand::ask_exec(command, file.clone()).await;
                    let _ = reports.send(VassalReport::OnDemandAnswer { path: file, answer });
                });
            }
            return;
        }
        let on_demand = self.settings.on_demand.as_ref().and_then(|source| {
            OnDemand::bind(source, &path)
                .inspect_err(|error| log_on_demand_error(error, &path))
                .ok()
                .flatten()
        });
        self.add_vassal(monitor_idx, path, stamp, on_demand);
    }

    /// `emperor-on-demand-exec` answered: bind what it named (nothing: an ordinary vassal),
    /// unless the file went away meanwhile.
    fn on_exec_answer(
        &mut self,
        path: PathBuf,
        answer: Result<String, crate::emperor::on_demand::BindOnDemandError>,
    ) {
        let Some(monitor_idx) = self.on_demand_asking.remove(&path) else {
            return;
        };
        let Some(stamp) = self.monitors[monitor_idx].snapshot.get(&path).copied() else {
            debug!(file = %path.display(), "vassal file gone before its on-demand answer");
            return;
        };
        if self.shutdown.is_some() || self.vassals.contains_key(&path) {
            return;
        }
        let on_demand = match answer {
            Ok(line) if line.is_empty() => None,
            Ok(line) => OnDemand::bind_address(line)
                .inspect_err(|error| log_on_demand_error(error, &path))
                .ok(),
            Err(error) => {
                log_on_demand_error(&error, &path);
                None
            }
        };
        self.add_vassal(monitor_idx, path, stamp, on_demand);
    }

    fn add_vassal(
        &mut self,
        monitor_idx: usize,
        path: PathBuf,
        stamp: FileStamp,
        on_demand: Option<OnDemand>,
    ) {
        let (life, action) = match &on_demand {
            Some(socket) => {
                info!(vassal = %monitor::vassal_name(&path), socket = %socket.address(),
                    "on-demand vassal: waiting for connections on its socket");
                (Lifecycle::waiting(), None)
            }
            None => {
                let (life, action) = Lifecycle::new();
                (life, Some(action))
            }
        };
        let now = Instant::now();
        let vassal = Vassal {
            name: monitor::vassal_name(&path),
            file_name: path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: path.clone(),
            monitor_idx,
            life,
            stamp,
            spawn_id: 0,
            pid: None,
            since: now,
            spawned_at: None,
            retry_at: None,
            retry_delay: Duration::ZERO,
            kill_at: None,
            status: String::new(),
            spawns: 0,
            born: 0,
            first_run: 0,
            last_run: 0,
            last_ready: 0,
            cursed: 0,
            first_failure: 0,
            last_failure: 0,
            last_heartbeat: None,
            on_demand,
        };
        info!(vassal = %vassal.name, file = %path.display(), "new vassal");
        self.vassals.insert(path.clone(), vassal);
        match action {
            Some(action) => self.apply(&path, action),
            None => self.arm_on_demand(&path),
        }
    }

    /// Runs one event through a vassal's state machine, logs the transition and carries out
    /// the action.
    pub(super) fn feed(&mut self, path: &Path, event: Event) {
        let throttle = self.throttle();
        let Some(vassal) = self.vassals.get_mut(path) else {
            return;
        };
        let before = vassal.life.state;
        let action = vassal.life.handle(event, throttle);
        let after = vassal.life.state;
        let now = Instant::now();
        if before != after {
            let elapsed_ms = millis(now - vassal.since);
            let name = &vassal.name;
            let pid = vassal.pid.unwrap_or(0);
            match (before, after) {
                (State::Starting, State::Ready) => {
                    info!(vassal = %name, pid, startup_ms = elapsed_ms, status = %vassal.status, "vassal ready")
                }
                // The vassal vets a new config in a `--check-config` child before it re-execs;
                // when that fails it keeps its workers and says so in its status.
                (State::Reloading, State::Ready) if vassal.status.contains("reload failed") => {
                    warn!(vassal = %name, pid, file = %vassal.path.display(), status = %vassal.status,
                        "vassal reload failed, still serving with its previous config (the error is logged above)")
                }
                (State::Reloading, State::Ready) => {
                    info!(vassal = %name, pid, reload_ms = elapsed_ms, status = %vassal.status, "vassal reloaded")
                }
                (_, State::Reloading) => info!(vassal = %name, pid, "vassal reloading"),
                (_, State::Stopping) => info!(vassal = %name, pid, "vassal stopping"),
                (_, State::Failed) => error!(vassal = %name, file = %vassal.path.display(),
                    "vassal failed with a config error; fix the file to retry"),
                (_, State::Throttled) => {} // logged with its delay in `apply`
                (from, to) => debug!(vassal = %name, %from, %to, elapsed_ms, "vassal state"),
            }
            vassal.since = now;
            if after == State::Ready {
                vassal.last_ready = unix_secs();
            }
            if after == State::Waiting {
                vassal.pid = None;
                info!(vassal = %vassal.name, "on-demand vassal exited; waiting for the next connection");
                self.arm_on_demand(path);
                return;
            }
        }
        if after != State::Throttled {
            vassal.retry_at = None;
        }
        if after != State::Stopping {
            vassal.kill_at = None;
            vassal.cursed = 0;
        }
        if after == State::Ready {
            vassal.first_failure = 0;
        }
        if after == State::Failed {
            let now = unix_secs();
            if vassal.first_failure == 0 {
                vassal.first_failure = now;
            }
            vassal.last_failure = now;
        }
        if let Some(action) = action {
            self.apply(path, action);
        }
    }

    fn apply(&mut self, path: &Path, action: Action) {
        match action {
            Action::Spawn => self.spawn(path),
            Action::Reload => {
                if let Some(pid) = self.vassals.get(path).and_then(|vassal| vassal.pid) {
                    signal_vassal(pid as i32, libc::SIGHUP);
                }
            }
            Action::Stop => {
                let mercy = self.settings.mercy;
                if let Some(vassal) = self.vassals.get_mut(path) {
                    if let Some(pid) = vassal.pid {
                        signal_vassal(pid as i32, libc::SIGTERM);
                    }
                    vassal.kill_at = Some(Instant::now() + mercy);
                    vassal.cursed = unix_secs();
                }
            }
            Action::RetryAfter(delay) => {
                if let Some(vassal) = self.vassals.get_mut(path) {
                    let now = unix_secs();
                    if vassal.first_failure == 0 {
                        vassal.first_failure = now;
                    }
                    vassal.last_failure = now;
                    vassal.retry_delay = delay;
                    vassal.retry_at = Some(Instant::now() + delay);
                    warn!(vassal = %vassal.name, failures = vassal.life.failures, retry_in_ms = millis(delay),
                        "vassal died before it became ready, throttling its respawn");
                    if delay >= self.settings.max_throttle {
                        warn!(vassal = %vassal.name, "maximum throttle level reached");
                    }
                }
            }
            Action::Forget => {
                if let Some(vassal) = self.vassals.remove(path) {
                    info!(vassal = %vassal.name, file = %vassal.path.display(), "vassal removed");
                }
            }
        }
    }

    fn spawn(&mut self, path: &Path) {
        let Some(vassal) = self.vassals.get(path) else {
            return;
        };
        let owner = (vassal.stamp.uid, vassal.stamp.gid);
        if self.settings.tyrant && (owner.0 == 0 || owner.1 == 0) {
            error!(vassal = %vassal.name, file = %path.display(), uid = owner.0, gid = owner.1,
                "emperor-tyrant: refusing a vassal file owned by root; chown it to the user it should run as");
            self.feed(path, Event::Exited(Exit::ConfigError));
            return;
        }
        let cwd = match &self.monitors[vassal.monitor_idx].monitor {
            Monitor::Dir { dir, .. } => std::path::absolute(dir).unwrap_or_else(|_| dir.clone()),
            Monitor::Glob { .. } => path
                .parent()
                .map_or_else(|| PathBuf::from("/"), Path::to_owned),
        };
        let (uwsgi_name, vassals_dir) = self.uwsgi_name(vassal);
        let mut env = Vec::new();
        if let Some(program) = &self.settings.start_hook {
            env.push((
                vassal_hooks::START_HOOK_ENV.to_string(),
                vassal_hooks::start_hook_env(program, &uwsgi_name),
            ));
            if let Some(dir) = &vassals_dir {
                env.push((
                    vassal_hooks::VASSALS_DIR_ENV.to_string(),
                    dir.to_string_lossy().into_owned(),
                ));
            }
        }
        let request = SpawnRequest {
            programs: &self.settings.programs,
            config: path,
            cwd: &cwd,
            args: &self.settings.vassal_args,
            owner: self.settings.tyrant.then_some(owner),
            on_demand_fd: vassal.on_demand.as_ref().map(OnDemand::raw_fd),
            env: &env,
        };
        match spawn::spawn(&request) {
            Ok((spawned, program)) => {
                let command = spawn::command_line(
                    program,
                    &spawn::vassal_argv(&self.settings.vassal_args, path),
                );
                self.next_spawn_id += 1;
                let spawn_id = self.next_spawn_id;
                let vassal = self
                    .vassals
                    .get_mut(path)
                    .expect("checked at the top of spawn");
                let now = unix_secs();
                vassal.spawn_id = spawn_id;
                vassal.pid = Some(spawned.pid);
                vassal.spawned_at = Some(Instant::now());
                vassal.since = Instant::now();
                vassal.spawns += 1;
                vassal.last_heartbeat = None;
                vassal.born = now;
                vassal.last_run = now;
                if vassal.first_run == 0 {
                    vassal.first_run = now;
                }
                vassal.status.clear();
                info!(vassal = %vassal.name, pid = spawned.pid, %command, "vassal starting");
                let (uid, gid) = if self.settings.tyrant {
                    owner
                } else {
                    (crate::sys::process::uid(), crate::sys::process::gid())
                };
                as_emperor::spawn(
                    &self.settings.hooks,
                    StartedVassal {
                        config: uwsgi_name,
                        pid: spawned.pid,
                        uid,
                        gid,
                    },
                );
                crate::emperor::vassal_logs::relay(vassal.name.clone(), spawned.output);
                self.watch_vassal(spawn_id, spawned.child, spawned.channel);
            }
            Err(spawn_error) => {
                error!(vassal = %vassal.name, error = %spawn_error, cause = %std::error::Error::source(&spawn_error).map(ToString::to_string).unwrap_or_default(), "cannot start vassal");
                self.feed(path, Event::SpawnFailed);
            }
        }
    }

    /// One task reads the vassal's channel, another waits for its exit; both report to the loop.
    fn watch_vassal(&self, spawn_id: u64, mut child: tokio::process::Child, channel: OwnedFd) {
        let reports = self.reports.clone();
        match tokio::net::UnixDatagram::from_std(std::os::unix::net::UnixDatagram::from(channel)) {
            Ok(socket) => {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    // SOCK_SEQPACKET: a zero-length read is EOF, the vassal closed or exited.
                    while let Ok(len @ 1..) = socket.recv(&mut buf).await {
                        let bytes = buf[..len].to_vec();
                        if reports
                            .send(VassalReport::Datagram { spawn_id, bytes })
                            .is_err()
                        {
                            break;
                        }
                    }
                });
            }
            Err(error) => {
                warn!(%error, "cannot read the vassal's channel; its readiness will not be seen")
            }
        }
        let reports = self.reports.clone();
        tokio::spawn(async move {
            let (exit, detail) = match child.wait().await {
                Ok(status) => (Exit::from_status(status), describe(status)),
                Err(error) => (Exit::Crashed, format!("wait failed: {error}")),
            };
            let _ = reports.send(VassalReport::Exited {
                spawn_id,
                exit,
                detail,
            });
        });
    }

    fn path_of(&self, spawn_id: u64) -> Option<PathBuf> {
        self.vassals
            .values()
            .find(|vassal| vassal.spawn_id == spawn_id && vassal.pid.is_some())
            .map(|vassal| vassal.path.clone())
    }

    pub(super) fn on_report(&mut self, report: VassalReport) {
        match report {
            VassalReport::OnDemandAnswer { path, answer } => self.on_exec_answer(path, answer),
            VassalReport::Connection { path } => {
                if let Some(vassal) = self.vassals.get_mut(&path) {
                    if vassal.life.state == State::Waiting {
                        info!(vassal = %vassal.name, "connection on the on-demand socket: starting the vassal");
                    }
                }
                self.feed(&path, Event::Connection);
            }
            VassalReport::Datagram { spawn_id, bytes } => {
                let Some(path) = self.path_of(spawn_id) else {
                    return;
                };
                let mut messages = sd_notify::parse(&bytes);
                // `READY=1\nSTATUS=serving with 4 workers`: take the status first, so the
                // "vassal ready" line shows the new one.
                messages.sort_by_key(|message| !matches!(message, VassalMessage::Status(_)));
                for message in messages {
                    let vassal = self.vassals.get_mut(&path).expect("path_of found it");
                    match message {
                        VassalMessage::Ready => self.feed(&path, Event::Ready),
                        VassalMessage::Reloading => self.feed(&path, Event::Reloading),
                        VassalMessage::Status(status) => {
                            if status != vassal.status {
                                info!(vassal = %vassal.name, status = %status, "vassal status");
                                vassal.status = status;
                            }
                        }
                        VassalMessage::Stopping => {
                            debug!(vassal = %vassal.name, "vassal says it is stopping")
                        }
                        VassalMessage::MainPid(pid) => {
                            if Some(pid) != vassal.pid {
                                warn!(vassal = %vassal.name, pid, spawned = vassal.pid, "vassal reports a different MAINPID");
                            }
                        }
                        VassalMessage::Other(key, value) if key == "WATCHDOG" && value == "1" => {
                            vassal.last_heartbeat = Some(Instant::now());
                        }
                        VassalMessage::Other(key, value) => {
                            debug!(vassal = %vassal.name, key, value, "vassal message")
                        }
                    }
                }
            }
            VassalReport::Exited {
                spawn_id,
                exit,
                detail,
            } => {
                let Some(path) = self.path_of(spawn_id) else {
                    return;
                };
                let vassal = self.vassals.get_mut(&path).expect("path_of found it");
                let pid = vassal.pid.take().unwrap_or(0);
                let uptime_ms = vassal
                    .spawned_at
                    .take()
                    .map_or(0, |at| millis(at.elapsed()));
                // Workers left behind by a vassal that crashed share its process group.
                signal_vassal(-(pid as i32), libc::SIGKILL);
                if vassal.life.state == State::Stopping && exit == Exit::Clean {
                    info!(vassal = %vassal.name, pid, uptime_ms, "vassal stopped");
                } else {
                    let reason = match exit {
                        Exit::Clean => "exited on its own",
                        Exit::ConfigError => "config error",
                        Exit::ImportError => "app failed to import",
                        Exit::Crashed => "crashed",
                    };
                    warn!(vassal = %vassal.name, pid, uptime_ms, exit = %detail, reason, state = %vassal.life.state, "vassal exited");
                }
                if let Some(program) = &self.settings.stop_hook {
                    let (name, dir) = self.uwsgi_name(&self.vassals[&path]);
                    vassal_hooks::spawn_stop_hook(program, &name, dir.as_deref());
                }
                self.feed(&path, Event::Exited(exit));
            }
        }
    }

    /// The name uWSGI gives a vassal in its hooks (`n_ui->name`): the file name for a
    /// directory monitor (whose absolute path is `UWSGI_VASSALS_DIR`), the path for a glob.
    fn uwsgi_name(&self, vassal: &Vassal) -> (String, Option<PathBuf>) {
        match &self.monitors[vassal.monitor_idx].monitor {
            Monitor::Dir { dir, .. } => (
                vassal.file_name.clone(),
                Some(std::path::absolute(dir).unwrap_or_else(|_| dir.clone())),
            ),
            Monitor::Glob { .. } => (vassal.path.to_string_lossy().into_owned(), None),
        }
    }

    /// `emperor-required-heartbeat`: SIGKILL for a ready vassal that stopped beating; its
    /// exit then goes through the state machine like any crash.
    pub(super) fn curse_silent_vassals(&mut self, now: Instant) {
        let tolerance = self.settings.required_heartbeat;
        for vassal in self.vassals.values_mut() {
            if vassal.life.state != State::Ready
                || !heartbeat::overdue(vassal.last_heartbeat, now, tolerance)
            {
                continue;
            }
            let Some(pid) = vassal.pid else { continue };
            warn!(
                vassal = %vassal.name,
                pid,
                tolerance_secs = tolerance.as_secs(),
                "vassal missed its heartbeat: cursing it (SIGKILL), it will be respawned"
            );
            vassal.cursed = unix_secs();
            vassal.last_heartbeat = None;
            signal_vassal(-(pid as i32), libc::SIGKILL);
        }
    }

    /// Watches an on-demand vassal's socket for its next connection.
    fn arm_on_demand(&mut self, path: &Path) {
        let reports = self.reports.clone();
        let Some(socket) = self
            .vassals
            .get_mut(path)
            .and_then(|v| v.on_demand.as_mut())
        else {
            return;
        };
        let owned = path.to_owned();
        if let Err(error) = socket.arm(move || {
            let _ = reports.send(VassalReport::Connection { path: owned });
        }) {
            error!(%error, socket = %socket.address(), "cannot watch the on-demand socket");
        }
    }
}

fn log_on_demand_error(error: &crate::emperor::on_demand::BindOnDemandError, path: &Path) {
    error!(error = %error, cause = %std::error::Error::source(error).map(ToString::to_string).unwrap_or_default(),
        file = %path.display(), "on-demand socket: starting the vassal now instead");
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

/// Sends `signal` to a vassal (`pid`) or its process group (`-pid`). A process already gone
/// is not an error ([`crate::sys::signal::kill`]); any other failure is logged, never fatal
/// to the loop.
pub(super) fn signal_vassal(target: i32, signal: libc::c_int) {
    if let Err(error) = crate::sys::signal::kill(target, signal) {
        warn!(target, signal, %error, "kill failed");
    }
}
