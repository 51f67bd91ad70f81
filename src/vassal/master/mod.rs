//! The master's state and event loop. Start-up (`startup`: from the config to the first
//! forks) and forking workers (`spawn`: banks, the worker's setup) live beside it, and so do
//! the loop's hooks: `children` (the process table's side in the master: reaping, respawn
//! and stop-with-mercy for every kind of child), `reload` (stops and reloads), `handover`
//! (replacing workers one at a time), `pause` (SIGTSTP and cheap mode), `cheaper` (the
//! adaptive worker count), `report` (SIGUSR1, the stats document and `/metrics`),
//! `attached` (hooks and external daemons), `spooling`, `mules` and `crons` (forking the
//! other kinds of child, and their harakiri), `drain`, `heartbeat`,
//! `alarming` (`alarm-backlog`, `alarm-segfault`, the log master's alarms) and `carbon`
//! (pushing the stats to Graphite).

mod alarming;
mod attached;
mod carbon;
mod cheaper;
mod children;
mod crons;
mod drain;
mod gateways;
mod handover;
mod heartbeat;
mod mules;
mod pause;
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
use super::process_table::{Entry, Exit, Kind, Late, ProcessTable, State, Why};
use super::replacement::{self, Cause, ReplacementQueue};
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
use crate::worker::scoreboard::Scoreboard;
use crate::worker::to_master::{self as messages, ToMaster, RECORD_LEN};
use crate::worker::{self, AppSource, Listener, Settings, WorkerSetup};

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
    Jail(#[from] crate::jail::EnterJailError),
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
    /// The children were told to stop (their mercy deadlines are in the process table).
    Stopping {
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
    /// `processes`: workers have the ids `1..=processes`.
    processes: u32,
    /// Every child the master forked or spawned: workers (current, replaced, previous
    /// generation), spoolers, mules, attached daemons and cron commands.
    children: ProcessTable,
    phase: Phase,
    started: Instant,
    announced_ready: bool,
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
    crons: super::cron::Crons,
    /// `health-drain-delay`: when the stop begins, and the signal that asked for it.
    drain_until: Option<(Instant, &'static str)>,
    /// `heartbeat`: when the next `WATCHDOG=1` is due (`heartbeat.rs`).
    next_heartbeat: Option<Instant>,
    /// `alarm-backlog`, `alarm-segfault` and the alarms the log master hands over.
    alarming: alarming::Alarming,
    /// `carbon`: when the next push is due; `None` without a server.
    carbon: Option<carbon::CarbonPush>,
    /// `subscribe-to`: announcements to uWSGI routers (`vassal/subscription.rs`).
    subscriptions: Option<crate::vassal::subscription::Subscriptions>,
    /// `zerg-server`: hands the sockets to zergs (`vassal/zerg.rs`).
    zerg_server: Option<crate::vassal::zerg::ZergServer>,
    /// `zergpool`: sockets bound for zergs (`vassal/zergpool.rs`).
    zergpools: crate::vassal::zergpool::ZergPools,
    /// The fastrouter's sockets, bound here for every router process (`gateways.rs`).
    gateways: Option<crate::vassal::fastrouter::GatewaySockets>,
}

/// The master's upkeep between events: the FIFO, touch files, the one-at-a-time replacement
/// queue and the workers' pipe, kept together so the loop's hooks stay small.
struct Upkeep {
    fifo: Option<MasterFifo>,
    touches: Touches,
    replacements: ReplacementQueue,
    /// Bytes read from the workers' pipe that do not make a whole record yet.
    from_workers: Vec<u8>,
    next_memory_check: Instant,
}

impl Master<'_> {
    /// Every child the master stops, reloads and waits for: workers, spoolers and mules.
    fn worker_pids(&self) -> Vec<Pid> {
        self.children.stopped_with_vassal()
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
            if self.is_cheap() && !self.any_worker_alive() {
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
                let daemons_gone = self.attached.daemons.all_stopped(&self.children);
                if self.worker_pids().is_empty() && daemons_gone {
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
        let stats_deadline = self.stats.as_ref().and_then(|s| s.next_deadline());
        let daemons_deadline = self.attached.daemons.next_deadline();
        let cheaper_deadline = self.cheaper.as_ref().map(|c| c.next_deadline());
        for at in [
            self.harakiri.next_deadline(),
            self.children.next_deadline(),
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
        self.on_emperor_order(sig);
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
            .children
            .entries()
            .filter_map(|entry| match (entry.kind, entry.bank) {
                (Kind::Worker(id), Some(bank)) => Some(Live {
                    id,
                    pid: entry.pid,
                    bank,
                }),
                _ => None,
            })
            .collect();
        if self.config.harakiri_queue_threshold > 0 {
            self.harakiri.set_backlog(self.listen_backlog());
        }
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
        let serving = |id: u32| self.worker_ready(id) || self.is_cheaped(id);
        if self.phase == Phase::Running && self.worker_ids().all(serving) {
            self.all_ready();
        }
    }

    fn all_ready(&mut self) {
        self.stop_previous_generation();
        if self.announced_ready {
            return;
        }
        self.announced_ready = true;
        let elapsed = self.started.elapsed().as_millis();
        let n = self
            .worker_ids()
            .filter(|&id| self.worker_ready(id))
            .count();
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

    fn on_timers(&mut self) -> Result<(), RunVassalError> {
        let now = Instant::now();
        self.attached_tick(now);
        self.drain_tick(now);
        self.heartbeat_tick(now);
        self.mercy_tick(now);
        if let Phase::Stopping { .. } = self.phase {
            return Ok(());
        }
        if let Some(subscriptions) = &mut self.subscriptions {
            subscriptions.tick(now);
        }
        if let Some(zerg) = &self.zerg_server {
            zerg.tick(&self.sockets);
        }
        self.zergpools.tick();
        self.upkeep_tick(now)?;
        self.spooler_tick();
        self.mules_tick();
        self.crons_tick(now);
        self.alarm_tick(now);
        self.carbon_tick(now);
        self.check_idle(now);
        self.cheaper_tick(now)?;
        self.respawn_due(now)
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
