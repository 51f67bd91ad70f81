//! The master's start-up and event loop. What the loop's hooks do lives beside it: `reload`
//! (stops and reloads), `recycling` (replacing workers one at a time), `pause` (SIGTSTP and
//! cheap mode), `cheaper` (the adaptive worker count) and `report` (SIGUSR1 and the stats
//! document).

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
mod spooling;

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    respawn_times: Vec<Instant>,
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
    lifecycle: Lifecycle,
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
}

/// The master's reload and recycling state (issue 5), kept together so the loop's hooks
/// stay small.
struct Lifecycle {
    fifo: Option<MasterFifo>,
    touches: Touches,
    recycler: Recycler,
    /// Bytes read from the workers' pipe that do not make a whole record yet.
    from_workers: Vec<u8>,
    /// When the previous generation (after a re-exec) gets SIGKILL.
    old_kill_at: Option<Instant>,
    next_memory_check: Instant,
}

/// This process is a master re-executed by a graceful reload.
pub fn is_reexec() -> bool {
    std::env::var_os(RELOADS_ENV).is_some()
}

/// Runs a vassal master to completion and returns its exit code.
pub fn run(loaded: Loaded, args: Vec<OsString>) -> Result<i32, RunVassalError> {
    let config = &loaded.config;
    let started = Instant::now();
    let notifier = Notifier::from_env()?;
    let _ = notifier.notify(&format!(
        "MAINPID={}\nSTATUS=starting",
        sys::process::getpid()
    ));
    let reloads: u64 = std::env::var(RELOADS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    std::env::remove_var(RELOADS_ENV);
    let old_workers: Vec<Pid> = std::env::var(OLD_WORKERS_ENV)
        .ok()
        .map(|v| v.split(',').filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default();
    std::env::remove_var(OLD_WORKERS_ENV);
    let mut inherited = sockets::take_inherited();
    attached::run_asap_hooks(config)?;
    super::process_setup::immediate(config)?;
    inherited.extend(super::socket_activation::take());

    if let Some(dir) = &config.chdir {
        std::env::set_current_dir(dir).map_err(|source| RunVassalError::Chdir {
            path: dir.clone(),
            source,
        })?;
    }
    for (key, value) in &config.env {
        std::env::set_var(key, value);
    }
    super::process_setup::apply_unenv(config);
    // systemd may pass sockets the INI does not name (`socket_activation.rs`).
    if config.sockets.is_empty() && !inherited.iter().any(sockets::names_its_option) {
        return Err(RunVassalError::NoSocket);
    }
    let bound = sockets::bind_all(config, &mut inherited)?;
    let stats = StatsServer::from_config(config)?;
    let interpreter = super::python_setup::interpreter_options(config);
    let spec = super::python_setup::app_spec(config);
    // `pidfile` before dropping privileges, `pidfile2` after, as uWSGI (process_setup.rs).
    super::process_setup::before_drop(config)?;
    attached::drop_privileges_between_hooks(config, &interpreter, reloads)?;
    super::process_setup::after_drop(config)?;
    crate::logging::master::start(config)?;
    // After dropping privileges, so the directories belong to the user the app runs as.
    let spoolers = super::spooler::Spoolers::new(&config.spooler)?;
    if let Some(handle) = spoolers.handle() {
        python::set_spooler_api(Box::new(handle));
    }
    // Locks and caches the previous master handed over through a reload's exec.
    sys::shm::adopt_carried();
    // Before anything forks and before the app is imported, which may take one.
    crate::signals::create(
        config.processes.max(1) as usize,
        spoolers.len(),
        config.mules.len(),
    )?;
    if let Some(board) = crate::signals::board() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        for (signal, seconds) in &config.timers {
            board.add_timer(*signal, *seconds, 0, now_ms);
        }
    }
    python::create_locks(config.locks)?;
    python::create_caches(&config.caches())?;
    sys::shm::drop_unclaimed();
    python::create_mules(config.mules.len(), &config.farms, config.mule_msg_size)?;
    let fifo =
        MasterFifo::open(&config.master_fifo).map_err(|source| RunVassalError::MasterFifo {
            path: config.master_fifo[0].clone(),
            source,
        })?;
    let module = ModuleInfo {
        numproc: config.processes,
        master_pid: sys::process::getpid(),
        buffer_size: config.buffer_size,
        started_on: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        threads: config.threads,
        options: loaded.options.clone(),
    };
    let (app, lazy) = if config.lazy_apps {
        tracing::info!("lazy-apps: each worker imports the app after fork");
        (None, Some((spec, interpreter, module)))
    } else {
        (Some(preload(config, &interpreter, &spec, module)?), None)
    };

    let own = [
        libc::SIGHUP,
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGCHLD,
        libc::SIGUSR1,
        libc::SIGTSTP,
    ];
    let handled = sys::signal::SigSet::of(&own);
    sys::signal::block(&handled)?;
    // After blocking: from here a signal sent waits in the signalfd, none is lost or fatal.
    sys::signal::stop_ignoring(&own);
    sys::signal::ignore_sigpipe();
    let signals = sys::signal::SignalFd::new(&handled)?;
    let (ready_read, ready_write) = sys::fd::pipe()?;
    sys::fd::set_nonblocking(ready_read.as_fd(), true)?;

    let listeners = Arc::new(bound.iter().map(listener_of).collect::<Vec<_>>());
    let slots = (1..=config.processes.max(1))
        .map(|id| Slot {
            id,
            pid: None,
            bank: 0,
            ready: false,
            spawned_at: started,
            respawn_at: None,
            respawns: 0,
        })
        .collect();
    let mut master = Master {
        config,
        max_connections: connection_cap(config),
        args,
        sockets: bound,
        listeners,
        notifier,
        app,
        lazy,
        slots,
        old_workers,
        phase: Phase::Running,
        started,
        announced_ready: false,
        respawn_times: Vec::new(),
        ready_read,
        ready_write,
        signals,
        reloads,
        exit_code: exit::OK,
        lifecycle: Lifecycle {
            fifo,
            touches: Touches::new(config),
            recycler: Recycler::default(),
            from_workers: Vec::new(),
            old_kill_at: None,
            next_memory_check: started,
        },
        scoreboard: Arc::new(Scoreboard::new(config.processes, config.threads)?),
        paused: false,
        idle: (config.idle > Duration::ZERO || config.cheap)
            .then(|| IdleWatch::new(config.idle, config.die_on_idle, started)),
        harakiri: Harakiri::new(HarakiriSettings {
            timeout: config.harakiri,
            grace: config.harakiri_graceful_timeout,
            verbose: config.harakiri_verbose,
        }),
        stats,
        attached: attached::Attached::new(config, started),
        cheaper: cheaper::CheaperRun::new(config, started),
        spoolers,
        mules: super::mules::Mules::new(&config.mules),
        crons: super::cron::Crons::new(&config.crons, config.cron_harakiri),
        drain_until: None,
        next_heartbeat: (!config.heartbeat.is_zero()).then(|| started + config.heartbeat),
    };
    let initial = master.initial_workers();
    if !master.start_cheap() {
        for index in 0..master.slots.len() {
            if !master.keep_cheap(index, initial) {
                master.spawn(index)?;
            }
        }
    }
    master.on_master_start();
    for index in master.spoolers.due(Instant::now()) {
        master.spawn_spooler(index)?;
    }
    master.mules_tick(Instant::now())?;
    master.event_loop()
}

/// Raises the open-files limit (logged) and derives each worker's connection cap from it,
/// unless `max-worker-connections` sets one: the limit less 64 descriptors for the
/// listeners, the worker's own pipes and what the app opens.
fn connection_cap(config: &Config) -> usize {
    let limit = match sys::process::raise_nofile_limit() {
        Ok((before, after)) => {
            if after > before {
                tracing::info!(
                    before,
                    after,
                    "raised the open-files limit (soft RLIMIT_NOFILE) to the hard limit"
                );
            }
            after
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot read or raise the open-files limit");
            1024
        }
    };
    match config.max_worker_connections {
        0 => usize::try_from(limit.saturating_sub(64).max(16)).unwrap_or(usize::MAX),
        n => usize::try_from(n).unwrap_or(usize::MAX),
    }
}

fn preload(
    config: &Config,
    interpreter: &InterpreterOptions,
    spec: &AppSpec,
    module: ModuleInfo,
) -> Result<App, RunVassalError> {
    python::initialize(interpreter)?;
    python::install_uwsgi_module(module).map_err(|e| RunVassalError::Module(e.to_string()))?;
    crate::hooks::run_phase(&config.hooks, HookPhase::PreApp)?;
    let app = match python::load_app(spec) {
        Ok(app) => app,
        Err(err) if !config.need_app => {
            tracing::error!("{err}");
            tracing::warn!("need-app is off: serving 500 for every request until the app loads");
            python::App::unavailable(&err.to_string())?
        }
        Err(err) => return Err(err.into()),
    };
    crate::hooks::run_phase(&config.hooks, HookPhase::PostApp)?;
    let threads = sys::fork::thread_count()?;
    if threads > 1 {
        return Err(RunVassalError::ThreadsAtImport { threads });
    }
    python::freeze_heap();
    tracing::info!(app = %app.description, "app preloaded in the master");
    Ok(app)
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn drop_privileges(
    config: &Config,
    interpreter: &InterpreterOptions,
) -> Result<(), RunVassalError> {
    let gid =
        match &config.gid {
            Some(spec) => Some(sys::process::lookup_group(spec).map_err(|source| {
                RunVassalError::Privileges {
                    spec: spec.clone(),
                    source,
                }
            })?),
            None => None,
        };
    let uid = match &config.uid {
        Some(spec) => {
            let (uid, primary, name) =
                sys::process::lookup_user(spec).map_err(|source| RunVassalError::Privileges {
                    spec: spec.clone(),
                    source,
                })?;
            Some((uid, primary, name))
        }
        None => None,
    };
    let gid = gid.or(uid
        .as_ref()
        .map(|(_, primary, _)| *primary)
        .filter(|_| sys::process::uid() == 0));
    let user = uid
        .as_ref()
        .zip(gid)
        .map(|((_, _, name), gid)| (name.as_str(), gid));
    let groups = super::process_setup::groups(config, user, gid.is_some())?;
    super::process_setup::chroot(config, interpreter)?;
    let target_uid = uid.as_ref().map(|(u, _, _)| *u);
    if uid.is_none() && gid.is_none() || super::process_setup::already_dropped(target_uid, gid) {
        return Ok(());
    }
    sys::privileges::drop_to(uid.map(|(u, _, _)| u), gid, &groups).map_err(|source| {
        RunVassalError::Privileges {
            spec: config
                .uid
                .clone()
                .or(config.gid.clone())
                .unwrap_or_default(),
            source,
        }
    })?;
    tracing::info!(
        uid = sys::process::uid(),
        gid = sys::process::gid(),
        "dropped privileges"
    );
    Ok(())
}

fn listener_of(socket: &BoundSocket) -> Listener {
    let (server_name, server_port, is_tcp) = match &socket.local {
        // uWSGI's http-socket sets SERVER_NAME to the machine's hostname whatever address
        // it is bound to (`proto/http.c`, `uwsgi.hostname`); nginx sends its own in uwsgi
        // packets, which override this default.
        BindAddr::Tcp(addr) => (sys::process::hostname(), addr.port().to_string(), true),
        // uWSGI's http-socket on a unix path reports the hostname and port 80.
        _ => (sys::process::hostname(), "80".to_string(), false),
    };
    Listener {
        fd: socket.fd.as_raw_fd(),
        protocol: socket.spec.protocol,
        server_name,
        server_port,
        is_tcp,
    }
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
            .chain(self.lifecycle.recycler.retiring.iter().map(|r| r.pid))
            .collect()
    }

    /// A scoreboard bank that no live process of this master writes, preferring worker
    /// `id`'s own two, so that a replacement never shares cores with the worker it replaces
    /// (`worker/scoreboard.rs`).
    fn free_bank(&self, id: u32) -> Option<usize> {
        let workers = self.scoreboard.workers();
        let in_use = |bank: usize| {
            self.slots.iter().any(|s| s.pid.is_some() && s.bank == bank)
                || self
                    .lifecycle
                    .recycler
                    .retiring
                    .iter()
                    .any(|r| r.bank == bank)
        };
        let own = (id as usize).saturating_sub(1);
        [own, own + workers]
            .into_iter()
            .chain(0..self.scoreboard.banks())
            .find(|&bank| bank < self.scoreboard.banks() && !in_use(bank))
    }

    fn spawn(&mut self, index: usize) -> Result<(), RunVassalError> {
        let id = self.slots[index].id;
        // Live processes never outnumber the banks: `replace_worker` only adds one when a
        // bank is free, and a respawn follows the death that freed one.
        let bank = self
            .free_bank(id)
            .expect("a worker is spawned only when a scoreboard bank is free");
        if let Some(slot) = self.scoreboard.process(id, bank) {
            slot.prepare_spawn(bank, self.slots[index].respawns + 1, unix_secs());
        }
        let forked = match &self.app {
            Some(_) => python::fork()?,
            None => sys::fork::fork()?,
        };
        match forked {
            Forked::Child => {
                let mut close_fds: Vec<RawFd> = vec![
                    self.signals.as_fd().as_raw_fd(),
                    self.ready_read.as_raw_fd(),
                ];
                close_fds.extend(self.notifier.raw_emperor_fd());
                close_fds.extend(self.lifecycle.fifo_raw_fd());
                close_fds.extend(self.stats.iter().flat_map(|s| s.raw_fds()));
                let app = match (&self.app, self.lazy.take()) {
                    (Some(app), _) => AppSource::Preloaded(app),
                    (None, Some((spec, interpreter, module))) => AppSource::Lazy {
                        spec: Box::new(spec),
                        interpreter,
                        module,
                    },
                    (None, None) => {
                        unreachable!("a master has either a preloaded app or a lazy spec")
                    }
                };
                let config = self.config;
                worker::run(WorkerSetup {
                    id,
                    bank,
                    master_pid: sys::process::getppid(),
                    threads: config.threads.max(1),
                    processes: config.processes.max(1),
                    batch_scheduling: config.batch_scheduling,
                    thread_stack: match config.threads_stacksize {
                        0 => sys::process::default_thread_stack(),
                        kb => usize::try_from(kb.saturating_mul(1024)).unwrap_or(usize::MAX),
                    },
                    listeners: self.listeners.clone(),
                    app,
                    limits: Limits {
                        buffer_size: config.buffer_size,
                        socket_timeout: config.socket_timeout,
                        keepalive_timeout: config.socket_timeout.max(Duration::from_secs(30)),
                        disable_logging: config.disable_logging,
                        log_conditions: config.log_conditions,
                        disable_write_exception: config.disable_write_exception,
                        manage_script_name: config.manage_script_name,
                        add_headers: config
                            .add_header
                            .iter()
                            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
                            .collect(),
                        line_format: crate::worker::LineFormat {
                            micros: config.log_micros,
                            memory_report: config.memory_report,
                        },
                        log_x_forwarded_for: config.log_x_forwarded_for,
                        request_log: crate::worker::request_log::Settings::from_config(
                            config,
                            crate::logging::master::request_pipe(),
                        ),
                        post_buffering: config.post_buffering,
                        limit_post: config.limit_post,
                        max_connections: self.max_connections,
                        limit_post_default: config.limit_post_default,
                        transfer: crate::worker::TransferLimit {
                            timeout: config.transfer_timeout,
                            min_rate: config.transfer_min_rate,
                        },
                        max_requests: recycle::max_requests_for(config, id),
                        reload_on_rss: config.reload_on_rss,
                        reload_on_as: config.reload_on_as,
                        min_worker_lifetime: config.min_worker_lifetime,
                        options: worker::options::RequestOptions {
                            proxy_protocol: config.extra.proxy_protocol,
                            reaper: config.extra.reaper,
                            reload_on_exception: config.extra.reload_on_exception,
                        },
                        statics: Arc::new(config.statics.clone()),
                        health_check_path: config.health_check_path.as_deref().map(Into::into),
                    },
                    ready_fd: self.ready_write.as_raw_fd(),
                    close_fds,
                    scoreboard: self.scoreboard.clone(),
                    hooks: &config.hooks,
                    options: worker::options::ProcessOptions {
                        cpus: super::process_setup::cpus_for(
                            config.extra.cpu_affinity,
                            id,
                            sys::process::cpu_count(),
                        ),
                        skip_atexit: config.extra.skip_atexit,
                        disable_file_wrapper: config.extra.wsgi_disable_file_wrapper,
                        py_autoreload: config.extra.py_autoreload,
                        py_autoreload_ignore: config.extra.py_autoreload_ignore.clone(),
                    },
                })
            }
            Forked::Parent { child } => {
                if let Some(board) = self.scoreboard.process(id, bank) {
                    board.set_pid(child as u64);
                }
                let slot = &mut self.slots[index];
                slot.pid = Some(child);
                slot.bank = bank;
                slot.ready = false;
                slot.spawned_at = Instant::now();
                slot.respawn_at = None;
                if slot.respawns == 0 {
                    tracing::info!(worker = id, pid = child, "spawned worker");
                } else {
                    tracing::info!(
                        worker = id,
                        pid = child,
                        respawns = slot.respawns,
                        "respawned worker"
                    );
                }
                Ok(())
            }
        }
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
            if let Some(fifo) = self.lifecycle.fifo.as_ref().and_then(MasterFifo::fd) {
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
            .chain(self.lifecycle.recycler.retiring.iter().map(|r| Live {
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
            self.lifecycle.from_workers.extend_from_slice(&buf[..n]);
        }
        let whole = self.lifecycle.from_workers.len() / RECORD_LEN * RECORD_LEN;
        let records: Vec<u8> = self.lifecycle.from_workers.drain(..whole).collect();
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
        if !self.old_workers.is_empty() && self.lifecycle.old_kill_at.is_none() {
            self.lifecycle.old_kill_at = Some(Instant::now() + recycle::whole_mercy(self.config));
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

    /// Respawns at once, unless workers are dying faster than `processes` per second: then
    /// wait (uWSGI's fork-bomb guard, `worker respawning too fast`).
    fn schedule_respawn(&mut self, index: usize) {
        let now = Instant::now();
        self.respawn_times
            .retain(|t| now.duration_since(*t) < Duration::from_secs(1));
        self.respawn_times.push(now);
        self.slots[index].respawns += 1;
        if self.respawn_times.len() > self.slots.len() {
            tracing::warn!("workers are respawning too fast; waiting 2 seconds");
            self.slots[index].respawn_at = Some(now + Duration::from_secs(2));
        } else {
            self.slots[index].respawn_at = Some(now);
        }
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
        self.lifecycle_tick(now)?;
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

impl Lifecycle {
    fn fifo_raw_fd(&self) -> Option<RawFd> {
        self.fifo
            .as_ref()
            .and_then(MasterFifo::fd)
            .map(|fd| fd.as_raw_fd())
    }
}
