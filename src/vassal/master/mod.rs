//! The master's state and event loop. Start-up (`startup`: from the config to the first
//! forks) and forking (`spawn`: banks, the worker's setup, the fork-bomb guard) live beside
//! it, and so do the loop's hooks: `reload` (stops and reloads), `recycling` (replacing
//! workers one at a time), `pause` (SIGTSTP and cheap mode), `cheaper` (the adaptive worker
//! count), `report` (SIGUSR1, the stats document and `/metrics`), `attached` (hooks and
//! external daemons), `spooling`, `mules` and `crons` (the other children), `drain` and
//! `heartbeat`.

mod attached;
mod cheaper;
mod crons;
mod drain;
mod heartbeat;
mod mules;
mod pause;
mod recycling;
mod reload;
mod report;
mod spawn;
mod spooling;
mod startup;

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::exit;
use super::fifo::{Command, MasterFifo};
use super::harakiri::{Harakiri, HarakiriSettings, Live};
use super::idle::{IdleVerdict, IdleWatch};
use super::recycle::{self, Cause, Recycler, Retiring};
use super::sockets::{self, BoundSocket, LISTEN_FDS_ENV};
use super::stats_server::{BindStatsError, StatsServer};
use super::touch::{TouchAction, Touches};
use crate::config::hooks::HookPhase;
use crate::config::{Config, Loaded};
use crate::python::{self, App, AppSpec, InterpreterOptions, ModuleInfo};
use crate::sys;
use crate::sys::fork::Forked;
use crate::sys::net::BindAddr;
use crate::sys::notify::{Notifier, EMPEROR_FD_ENV};
use crate::sys::process::{ExitKind, Pid};
use crate::worker::recycle::{self as messages, ToMaster, RECORD_LEN};
use crate::worker::scoreboard::Scoreboard;
use crate::worker::{self, AppSource, Limits, Listener, WorkerSetup};

use startup::{drop_privileges, unix_secs};
pub use startup::{is_reexec, run};

const OLD_WORKERS_ENV: &str = "KAISER_OLD_WORKERS";
const RELOADS_ENV: &str = "KAISER_RELOADS";

#[derive(Debug, thiserror::Error)]
pub enum RunVassalError {
    #[error("cannot change directory to `{}` (`chdir`)", .path.display())]
    Chdir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Bind(#[from] sockets::BindSocketError),
    #[error(transparent)]
    Zerg(#[from] crate::vassal::zerg::AttachZergError),
    #[error(transparent)]
    Stats(#[from] BindStatsError),
    #[error("cannot drop privileges to `{spec}`")]
    Privileges {
        spec: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Python(#[from] python::InitPythonError),
    #[error(transparent)]
    App(#[from] python::LoadAppError),
    #[error("importing the app started {threads} threads; forking workers now could deadlock them: set `lazy-apps = true` so that each worker imports the app after fork")]
    ThreadsAtImport { threads: usize },
    #[error("no socket configured: add `http-socket = :8080` or `socket = /run/uwsgi/app.sock`")]
    NoSocket,
    #[error("setting up the `uwsgi` module failed: {0}")]
    Module(String),
    #[error("cannot create the master fifo `{}`", .path.display())]
    MasterFifo {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("system call failed during start-up")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Fork(#[from] sys::fork::ForkError),
    #[error(transparent)]
    Hook(#[from] crate::hooks::RunHookError),
    #[error(transparent)]
    Setup(#[from] super::process_setup::ProcessSetupError),
    #[error(transparent)]
    LogMaster(#[from] crate::logging::master::StartLogMasterError),
    #[error(transparent)]
    Spooler(#[from] crate::spooler::queue::PrepareSpoolerError),
}

impl RunVassalError {
    pub fn exit_code(&self) -> i32 {
        match self {
            RunVassalError::App(_) | RunVassalError::ThreadsAtImport { .. } => exit::FAILED_APP,
            _ => exit::CONFIG,
        }
    }
}

#[derive(Debug)]
struct Slot {
    id: u32,
    pid: Option<Pid>,
    /// The scoreboard bank `pid` writes its cores in (meaningless without a pid).
    bank: usize,
    ready: bool,
    spawned_at: Instant,
    respawn_at: Option<Instant>,
    respawns: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Running,
    /// A `--check-config` child is vetting the new config before the re-exec.
    Checking {
        pid: Pid,
        /// `reload-mercy`: the check is killed (and the reload aborted) past this.
        deadline: Instant,
        /// `R`: kill the workers instead of letting them finish, then re-exec.
        brutal: bool,
    },
    Stopping {
        deadline: Instant,
        fast: bool,
    },
}

struct Master<'a> {
    config: &'a Config,
    /// Each worker's connection cap (`max-worker-connections`, or from the fd limit).
    max_connections: usize,
    args: Vec<OsString>,
    sockets: Vec<BoundSocket>,
    listeners: Arc<Vec<Listener>>,
    notifier: Notifier,
    app: Option<App>,
    lazy: Option<(AppSpec, InterpreterOptions, ModuleInfo)>,
    slots: Vec<Slot>,
    old_workers: Vec<Pid>,
    phase: Phase,
    started: Instant,
    announced_ready: bool,
    respawn_guard: crate::vassal::respawn::RespawnGuard,
    ready_read: OwnedFd,
    ready_write: OwnedFd,
    signals: sys::signal::SignalFd,
    reloads: u64,
    exit_code: i32,
    scoreboard: Arc<Scoreboard>,
    /// SIGTSTP / FIFO `p`: workers do not accept new connections.
    paused: bool,
    idle: Option<IdleWatch>,
    harakiri: Harakiri,
    stats: Option<StatsServer>,
    upkeep: Upkeep,
    /// Hooks and external daemons (issue 15).
    attached: attached::Attached,
    /// `cheaper`: the adaptive worker count; `None` when off.
    cheaper: Option<cheaper::CheaperRun>,
    spoolers: super::spooler::Spoolers,
    mules: super::mules::Mules,
    crons: super::cron::Crons,
    /// `health-drain-delay`: when the stop begins, and the signal that asked for it.
    drain_until: Option<(Instant, &'static str)>,
    /// `heartbeat`: when the next `WATCHDOG=1` is due (`heartbeat.rs`).
    next_heartbeat: Option<Instant>,
    /// `subscribe-to`: announcements to uWSGI routers (`vassal/subscription.rs`).
    subscriptions: Option<crate::vassal::subscription::Subscriptions>,
    /// `zerg-server`: hands the sockets to zergs (`vassal/zerg.rs`).
    zerg_server: Option<crate::vassal::zerg::ZergServer>,
}

/// The master's upkeep between events: the FIFO, touch files, the one-at-a-time replacement
/// queue and the mercy deadlines of reloads and recycling, kept together so the loop's hooks
/// stay small.
struct Upkeep {
    fifo: Option<MasterFifo>,
    touches: Touches,
    recycler: Recycler,
    /// Bytes read from the workers' pipe that do not make a whole record yet.
    from_workers: Vec<u8>,
    /// When the previous generation (after a re-exec) gets SIGKILL.
    old_kill_at: Option<Instant>,
    next_memory_check: Instant,
}

impl Master<'_> {
    /// Every child the master stops, reloads and waits for: workers, and spoolers.
    fn worker_pids(&self) -> Vec<Pid> {
        let mut pids = self.serving_pids();
        pids.extend(self.spoolers.pids());
        pids.extend(self.mules.pids());
        pids
    }

    /// The workers only, current and previous generations.
    fn serving_pids(&self) -> Vec<Pid> {
        self.slots
            .iter()
            .filter_map(|s| s.pid)
            .chain(self.old_workers.iter().copied())
            .chain(self.upkeep.recycler.retiring.iter().map(|r| r.pid))
            .collect()
    }

    fn event_loop(&mut self) -> Result<i32, RunVassalError> {
        loop {
            let timeout = self.next_timeout();
            let mut fds: Vec<(std::os::fd::BorrowedFd<'_>, i16)> = vec![
                (self.signals.as_fd(), sys::poll::READABLE),
                (self.ready_read.as_fd(), sys::poll::READABLE),
            ];
            let mut emperor_index = None;
            if let Some(channel) = self.notifier.emperor_channel() {
                emperor_index = Some(fds.len());
                fds.push((channel, sys::poll::READABLE));
            }
            let mut fifo_index = None;
            if let Some(fifo) = self.upkeep.fifo.as_ref().and_then(MasterFifo::fd) {
                fifo_index = Some(fds.len());
                fds.push((fifo, sys::poll::READABLE));
            }
            let stats_from = fds.len();
            if let Some(stats) = &self.stats {
                fds.extend(stats.poll_fds());
            }
            let stats_to = fds.len();
            if self.is_cheap() && self.serving_pids().is_empty() {
                fds.extend(
                    self.sockets
                        .iter()
                        .map(|s| (s.fd.as_fd(), sys::poll::READABLE)),
                );
            }
            let revents = sys::poll::poll(&fds, Some(timeout))?;
            let connection_waiting = revents[stats_to..].iter().any(|r| *r != 0);
            let emperor_event = emperor_index.map_or(0, |i| revents[i]);
            let fifo_event = fifo_index.map_or(0, |i| revents[i]);
            drop(fds);
            self.on_stats_events(&revents[stats_from..stats_to]);
            if connection_waiting {
                self.leave_cheap()?;
            }
            if revents[0] != 0 {
                while let Some(sig) = self.signals.read()? {
                    self.on_signal(sig)?;
                }
            }
            if revents[1] != 0 {
                self.on_ready_bytes();
            }
            if emperor_event != 0 {
                self.on_emperor_channel();
            }
            if fifo_event != 0 {
                self.on_fifo()?;
            }
            self.reap()?;
            self.check_harakiri();
            self.on_timers()?;
            if let Phase::Stopping { .. } = self.phase {
                if self.worker_pids().is_empty() && self.attached.daemons.all_stopped() {
                    if let Some(subscriptions) = &self.subscriptions {
                        subscriptions.unsubscribe();
                    }
                    self.at_exit();
                    return Ok(self.finish());
                }
            }
        }
    }

    fn next_timeout(&self) -> Duration {
        let now = Instant::now();
        let mut next = now + Duration::from_secs(1);
        if let Phase::Stopping { deadline, .. } = self.phase {
            next = next.min(deadline);
        }
        for slot in &self.slots {
            if let Some(at) = slot.respawn_at {
                next = next.min(at);
            }
        }
        let stats_deadline = self.stats.as_ref().and_then(|s| s.next_deadline());
        let daemons_deadline = self.attached.daemons.next_deadline();
        let cheaper_deadline = self.cheaper.as_ref().map(|c| c.next_deadline());
        for at in [
            self.harakiri.next_deadline(),
            stats_deadline,
            daemons_deadline,
            cheaper_deadline,
            self.next_timer(),
            self.drain_deadline(),
            self.heartbeat_deadline(),
            // Not while stopping: no announcement goes out then, and a deadline in the past
            // would wake the loop every millisecond.
            self.subscriptions
                .as_ref()
                .filter(|_| !matches!(self.phase, Phase::Stopping { .. }))
                .map(|s| s.deadline()),
        ]
        .into_iter()
        .flatten()
        {
            next = next.min(at);
        }
        next.saturating_duration_since(now)
            .max(Duration::from_millis(1))
    }

    fn on_signal(&mut self, sig: libc::c_int) -> Result<(), RunVassalError> {
        if self.on_rebound_signal(sig)? {
            return Ok(());
        }
        match sig {
            libc::SIGCHLD => {}
            libc::SIGTERM | libc::SIGQUIT => self.stop_after_drain(sys::signal::name(sig)),
            libc::SIGINT => self.begin_stop(true, "SIGINT"),
            libc::SIGHUP => self.begin_reload(false)?,
            libc::SIGUSR1 => self.log_stats(),
            libc::SIGTSTP => self.toggle_pause(),
            _ => {}
        }
        Ok(())
    }

    /// Harakiri applies in every phase: a request stuck during a graceful stop is ended by
    /// harakiri rather than holding the stop until `worker-reload-mercy`.
    /// Workers being replaced are checked too: each writes its own bank, so a request stuck
    /// in a retiring worker is its own, not its replacement's.
    fn check_harakiri(&mut self) {
        let live: Vec<Live> = self
            .slots
            .iter()
            .filter_map(|s| {
                s.pid.map(|pid| Live {
                    id: s.id,
                    pid,
                    bank: s.bank,
                })
            })
            .chain(self.upkeep.recycler.retiring.iter().map(|r| Live {
                id: r.id,
                pid: r.pid,
                bank: r.bank,
            }))
            .collect();
        self.harakiri.check(&self.scoreboard, &live);
    }

    fn on_ready_bytes(&mut self) {
        let mut buf = [0u8; 64 * RECORD_LEN];
        while let Ok(n) = sys::fd::read(self.ready_read.as_fd(), &mut buf) {
            if n == 0 {
                break;
            }
            self.upkeep.from_workers.extend_from_slice(&buf[..n]);
        }
        let whole = self.upkeep.from_workers.len() / RECORD_LEN * RECORD_LEN;
        let records: Vec<u8> = self.upkeep.from_workers.drain(..whole).collect();
        for record in records.chunks_exact(RECORD_LEN) {
            let record: &[u8; RECORD_LEN] = record.try_into().expect("chunks of RECORD_LEN");
            match messages::decode(record) {
                Some((pid, ToMaster::Ready)) => self.on_worker_ready(pid),
                Some((pid, message)) => self.on_recycle_request(pid, message),
                None => tracing::warn!("unreadable message from a worker; ignoring it"),
            }
        }
        let serving = |(index, slot): (usize, &Slot)| slot.ready || self.is_cheaped(index);
        if self.phase == Phase::Running && self.slots.iter().enumerate().all(serving) {
            self.all_ready();
        }
    }

    fn all_ready(&mut self) {
        if !self.old_workers.is_empty() && self.upkeep.old_kill_at.is_none() {
            self.upkeep.old_kill_at = Some(Instant::now() + recycle::whole_mercy(self.config));
        }
        if !self.old_workers.is_empty() {
            tracing::info!(old = ?self.old_workers, "new workers accept; stopping the previous generation gracefully");
            for pid in &self.old_workers {
                let _ = sys::signal::kill(*pid, libc::SIGTERM);
            }
        }
        if self.announced_ready {
            return;
        }
        self.announced_ready = true;
        let elapsed = self.started.elapsed().as_millis();
        let n = self.slots.iter().filter(|s| s.ready).count();
        if self.reloads > 0 {
            tracing::info!(
                workers = n,
                reloads = self.reloads,
                "reloaded in {elapsed} ms, {n} workers"
            );
        } else {
            tracing::info!(workers = n, "ready in {elapsed} ms, {n} workers");
        }
        let _ = self
            .notifier
            .notify(&format!("READY=1\nSTATUS=serving with {n} workers"));
    }

    fn on_emperor_channel(&mut self) {
        let Some(channel) = self.notifier.emperor_channel() else {
            return;
        };
        let mut buf = [0u8; 512];
        match sys::fd::read(channel, &mut buf) {
            Ok(0) | Err(_) => {
                if !matches!(self.phase, Phase::Stopping { .. }) {
                    tracing::warn!("lost the emperor channel (the emperor died); shutting down");
                    self.notifier = Notifier::None;
                    self.begin_stop(false, "emperor gone");
                } else {
                    self.notifier = Notifier::None;
                }
            }
            Ok(_) => {}
        }
    }

    fn reap(&mut self) -> Result<(), RunVassalError> {
        while let Some((pid, how)) = sys::process::try_wait_any()? {
            if let Phase::Checking { pid: checker, .. } = self.phase {
                if pid == checker {
                    self.on_check_done(how)?;
                    continue;
                }
            }
            if self.reap_retiring(pid, how)
                || self.reap_spooler(pid, how)
                || self.reap_mule(pid, how)
                || self.reap_cron(pid, how)
            {
                continue;
            }
            if crate::logging::master::pid() == Some(pid) {
                // Every line written since went nowhere; a reload starts a new log master.
                crate::logging::master::forget();
                tracing::error!(pid, %how, "the log master died; reloading to start a new one");
                self.begin_reload(false)?;
                continue;
            }
            if let Some(position) = self.old_workers.iter().position(|p| *p == pid) {
                self.old_workers.remove(position);
                tracing::info!(pid, %how, "previous-generation worker finished");
                continue;
            }
            if self.reap_daemon(pid, how) {
                continue;
            }
            let Some(index) = self.slots.iter().position(|s| s.pid == Some(pid)) else {
                continue;
            };
            let was_ready = self.slots[index].ready;
            let id = self.slots[index].id;
            self.slots[index].pid = None;
            self.slots[index].ready = false;
            if let Phase::Stopping { .. } = self.phase {
                tracing::info!(worker = id, pid, %how, "worker stopped");
                continue;
            }
            if how == ExitKind::Code(worker::EXIT_FAILED_APP) && !was_ready && self.reinstate(index)
            {
                continue;
            }
            if how == ExitKind::Code(worker::EXIT_FAILED_APP) && !was_ready {
                tracing::error!(
                    worker = id,
                    "the app failed to load in a worker (lazy-apps); shutting down"
                );
                self.exit_code = exit::FAILED_APP;
                self.begin_stop(true, "app failed to load");
                continue;
            }
            if self.is_cheap() {
                tracing::info!(worker = id, pid, %how, "worker stopped (cheap mode)");
                self.show_cheap(index, true);
                continue;
            }
            if self.reap_cheaped(index, pid, how) {
                continue;
            }
            match how {
                ExitKind::Code(0) => {
                    tracing::info!(worker = id, pid, "worker exited (recycled), respawning")
                }
                _ => tracing::warn!(worker = id, pid, %how, "worker died, respawning"),
            }
            self.schedule_respawn(index);
        }
        Ok(())
    }

    fn on_timers(&mut self) -> Result<(), RunVassalError> {
        let now = Instant::now();
        self.attached_tick(now);
        self.drain_tick(now);
        self.heartbeat_tick(now);
        if let Phase::Stopping { deadline, fast } = self.phase {
            if now >= deadline {
                for pid in self.worker_pids() {
                    tracing::warn!(
                        pid,
                        fast,
                        "worker did not stop within worker-reload-mercy; killing it"
                    );
                    let _ = sys::signal::kill(pid, libc::SIGKILL);
                }
                self.phase = Phase::Stopping {
                    deadline: now + Duration::from_secs(3600),
                    fast,
                };
            }
            return Ok(());
        }
        if let Some(subscriptions) = &mut self.subscriptions {
            subscriptions.tick(now);
        }
        if let Some(zerg) = &self.zerg_server {
            zerg.tick(&self.sockets);
        }
        self.upkeep_tick(now)?;
        self.spooler_tick(now)?;
        self.mules_tick(now)?;
        self.crons_tick(now);
        self.check_idle(now);
        self.cheaper_tick(now)?;
        for index in 0..self.slots.len() {
            if self.slots[index].pid.is_none()
                && self.slots[index].respawn_at.is_some_and(|at| at <= now)
            {
                self.spawn(index)?;
            }
        }
        Ok(())
    }
}

impl Upkeep {
    fn fifo_raw_fd(&self) -> Option<RawFd> {
        self.fifo
            .as_ref()
            .and_then(MasterFifo::fd)
            .map(|fd| fd.as_raw_fd())
    }
}
