//! A worker: a process forked from the vassal master that serves requests with `threads`
//! Python threads.
//!
//! Accept model: every worker has its own epoll set holding the shared listening sockets
//! with `EPOLLEXCLUSIVE`, so a new connection wakes one idle worker rather than all of them
//! (no thundering herd), and a worker whose threads are all busy is skipped by the kernel.
//! Inside a worker the threads share that epoll set (leader/follower): each idle thread
//! waits in `epoll_wait` for one event; connections are registered `EPOLLONESHOT`, so a
//! ready connection is handled by exactly one thread, which parses, runs the app and
//! answers on that same thread (no hand-off), then re-arms the connection if it is kept
//! alive. An idle keep-alive connection costs an fd, never a thread, so a worker serves any
//! number of keep-alive clients.
//!
//! This module does not bind sockets (but `py-tracebacker`'s own, per worker as in uWSGI:
//! `tracebacker.rs`), decide worker counts or restart anything: that is the master's job
//! (`vassal/`).

mod accept;
mod autoreload;
mod conn;
mod deferred;
mod exchange;
mod fastcgi;
mod gate;
mod harakiri;
mod health;
pub mod limits;
mod offload;
pub mod options;
mod proxy_header;
mod puwsgi;
mod raw;
mod read_buffer;
mod request;
mod request_head;
pub mod request_log;
pub mod request_metrics;
mod request_record;
pub mod scoreboard;
mod serve;
mod statics;
pub mod to_master;
mod tracebacker;
mod transfer;
mod turn;

pub use request_record::LineFormat;
pub use transfer::TransferLimit;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::hooks::HookPhase;
use crate::config::Protocol;
use crate::python::{self, App, AppSpec, InterpreterOptions, ListenerEnv, ModuleInfo, WsgiRunner};
use crate::sys;
use scoreboard::{Scoreboard, WorkerSlot};

/// A listening socket as the worker sees it (the master owns the fd).
pub struct Listener {
    pub fd: RawFd,
    pub protocol: Protocol,
    pub server_name: String,
    pub server_port: String,
    pub is_tcp: bool,
}

impl Listener {
    fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the master keeps every listening socket open for the whole life of the
        // process tree, and the worker never closes it.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }
}

/// How the worker gets its app: forked with it (preload) or importing it after fork.
pub enum AppSource<'a> {
    Preloaded(&'a App),
    Lazy {
        /// Boxed: the spec grew with issue 15's loaders and the enum should stay small.
        spec: Box<AppSpec>,
        interpreter: InterpreterOptions,
        module: ModuleInfo,
    },
}

/// What a worker takes from the config to serve requests: buffers and timeouts, body
/// limits, logging, response headers, static files, health checks, and its recycling limits.
#[derive(Debug, Clone)]
pub struct Settings {
    pub buffer_size: usize,
    pub socket_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub disable_logging: bool,
    /// What is logged anyway with `disable_logging` (`log-4xx`, …).
    pub log_conditions: crate::protocol::log::LogConditions,
    /// `log-micros`, `memory-report`.
    pub line_format: LineFormat,
    /// `log-x-forwarded-for`: the request line shows `X-Forwarded-For` as the address.
    pub log_x_forwarded_for: bool,
    /// `log-format` and where request lines go.
    pub request_log: request_log::Settings,
    /// `disable-write-exception`: `write()` does not raise when the client is gone.
    pub disable_write_exception: bool,
    /// `manage-script-name`.
    pub manage_script_name: bool,
    /// `add-header`: (name, value) added to every response.
    pub add_headers: Arc<[(Vec<u8>, Vec<u8>)]>,
    /// `limit-post` in bytes (0: no limit).
    pub limit_post: u64,
    /// `max-worker-connections`: open connections past which the worker stops accepting
    /// (0: none).
    pub max_connections: usize,
    /// `limit-post-default`: chunked and post-buffered bodies when `limit_post` is 0.
    pub limit_post_default: u64,
    /// `transfer-timeout` and `transfer-min-rate`: what a body or a response may wait on
    /// its client in total.
    pub transfer: TransferLimit,
    /// `post-buffering` in bytes (0: the app reads the body from the socket as it comes).
    pub post_buffering: usize,
    /// `max-requests`, `reload-on-rss`, `reload-on-as`, `min-worker-lifetime`.
    pub recycle: limits::RecycleLimits,
    /// `enable-proxy-protocol`, `reaper`, `reload-on-exception`.
    pub options: options::RequestOptions,
    /// `static-map`, `check-static`, `offload-threads` and the rest.
    pub statics: Arc<crate::config::StaticConfig>,
    /// `health-check-path`: answered without the app (`health.rs`).
    pub health_check_path: Option<Arc<str>>,
    /// Internal routing (`route*`), when any rule is configured.
    pub routes: Option<Arc<crate::routing::RouteTables>>,
}

pub struct WorkerSetup<'a> {
    pub id: u32,
    /// The scoreboard bank this process writes its cores in.
    pub bank: usize,
    pub master_pid: sys::process::Pid,
    pub threads: u32,
    pub processes: u32,
    /// Run this worker's threads under `SCHED_BATCH` (`batch-scheduling`).
    pub batch_scheduling: bool,
    /// Stack size of each request thread, in bytes.
    pub thread_stack: usize,
    pub listeners: Arc<Vec<Listener>>,
    pub app: AppSource<'a>,
    pub settings: Settings,
    /// The write end of the master's pipe: [`to_master::ToMaster`] records (ready, recycle).
    pub ready_fd: RawFd,
    /// Master-only descriptors to close first thing in the child.
    pub close_fds: Vec<RawFd>,
    /// Shared with the master: this worker's figures are `id`'s, its cores `bank`'s.
    pub scoreboard: Arc<Scoreboard>,
    /// The config's hooks; the worker runs `post-fork`, `accepting*` and, with
    /// `lazy-apps`, `pre-app`/`post-app` (`hooks.rs`).
    pub hooks: &'a [crate::config::hooks::Hook],
    /// `cpu-affinity`, `skip-atexit`, `wsgi-disable-file-wrapper`, `py-autoreload`.
    pub options: options::ProcessOptions,
}

/// The signals a worker reads from its signalfd (the loop in `serve_until_stopped`).
const HANDLED_SIGNALS: [libc::c_int; 7] = [
    libc::SIGHUP,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGTSTP,
];

/// Exit codes a worker uses (uWSGI's, so logs read the same).
pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED_APP: i32 = 22;

/// Runs one phase's hooks in this worker. A failure is fatal to the whole vassal, as in
/// uWSGI (`uwsgi_hooks_run`: SIGINT to the master): the master stops at once.
fn worker_hooks(
    hooks: &[crate::config::hooks::Hook],
    phase: HookPhase,
    master_pid: sys::process::Pid,
) {
    if let Err(err) = crate::hooks::run_phase(hooks, phase) {
        tracing::error!(
            "{}; stopping the vassal (a failed hook is fatal)",
            crate::hooks::error_chain(&err)
        );
        let _ = sys::signal::kill(master_pid, libc::SIGINT);
        sys::process::exit_now(1);
    }
}

/// `accepting`, `accepting-once`, `accepting1`, `accepting1-once`: "once" is this worker's
/// first spawn in this master (its respawn count is 1, as uWSGI checks).
fn accepting_hooks(
    hooks: &[crate::config::hooks::Hook],
    id: u32,
    master_pid: sys::process::Pid,
    scoreboard: &Scoreboard,
) {
    let first = scoreboard
        .worker(id)
        .is_some_and(|slot| slot.snapshot().respawn_count <= 1);
    let mut phases = vec![HookPhase::Accepting];
    if first {
        phases.push(HookPhase::AcceptingOnce);
    }
    if id == 1 {
        phases.push(HookPhase::Accepting1);
        if first {
            phases.push(HookPhase::Accepting1Once);
        }
    }
    for phase in phases {
        worker_hooks(hooks, phase, master_pid);
    }
}

/// Runs the worker in the freshly forked child. Never returns.
pub fn run(setup: WorkerSetup<'_>) -> ! {
    // First: no inherited signal plumbing, no master-only fds, die with the master. The
    // worker blocks and reads its own signals below; SIGCHLD stays at its default.
    sys::process::become_child_of(setup.master_pid, &setup.close_fds);
    python::set_worker_id(setup.id);
    options::at_start(&setup.options);
    let pid = sys::process::getpid();
    let span = tracing::info_span!("worker", id = setup.id, pid);
    let _entered = span.enter();
    worker_hooks(setup.hooks, HookPhase::PostFork, setup.master_pid);

    let code = match serve_until_stopped(setup) {
        Ok(()) => EXIT_OK,
        Err(WorkerError::App(err)) => {
            tracing::error!("{err}");
            EXIT_FAILED_APP
        }
        Err(err) => {
            tracing::error!("worker failed: {err}");
            1
        }
    };
    sys::process::exit_now(code)
}

#[derive(Debug, thiserror::Error)]
enum WorkerError {
    #[error(transparent)]
    App(#[from] python::LoadAppError),
    #[error(transparent)]
    Init(#[from] python::InitPythonError),
    #[error("python setup failed: {0}")]
    Python(String),
    #[error("system call failed")]
    Io(#[from] std::io::Error),
}

/// State shared by the threads of one worker.
pub(crate) struct Shared {
    pub epoll: sys::poll::Epoll,
    pub stop: sys::poll::EventFd,
    pub stopping: AtomicBool,
    pub listeners: Arc<Vec<Listener>>,
    pub runner: WsgiRunner,
    /// `python-raw`: serves the `raw-socket` connections (`raw.rs`).
    pub raw: Option<python::RawHandler>,
    pub settings: Settings,
    pub conns: std::sync::Mutex<conn::ConnTable>,
    pub requests: AtomicU64,
    pub pid: sys::process::Pid,
    pub multithreaded: bool,
    /// Paused by the master (SIGTSTP): the listeners are out of the epoll set.
    pub paused: AtomicBool,
    /// The last accept succeeded: more connections may be queued (see `accept::accept_from`).
    pub backlog_pending: AtomicBool,
    pub recycling: limits::RecycleWatch,
    pub worker_id: u32,
    /// This process's scoreboard bank (see [`Shared::slot`]).
    pub bank: usize,
    pub scoreboard: Arc<Scoreboard>,
    /// One per request thread, indexed like the scoreboard's cores.
    pub inflight: Vec<Arc<harakiri::InFlight>>,
    /// When the worker stops accepting for a while (fd exhaustion, its connection cap).
    pub gate: Arc<gate::AcceptGate>,
    /// The static files, when any are mapped, and the threads that finish sending them.
    pub statics: Option<statics::StaticFiles>,
    pub offload: Option<offload::Offload>,
    /// `health-check-path`: probes answered without the app, even when saturated.
    pub health: Option<health::Health>,
    /// A worker with an HTTP listener sends the responses of a batch of events together
    /// (`deferred.rs`).
    pub deferred: Option<Arc<deferred::Deferred>>,
}

impl Shared {
    /// This process's view of the scoreboard: its worker's figures, its own cores.
    pub fn slot(&self) -> Option<WorkerSlot<'_>> {
        self.scoreboard.process(self.worker_id, self.bank)
    }
}

fn serve_until_stopped(setup: WorkerSetup<'_>) -> Result<(), WorkerError> {
    let handled = sys::signal::SigSet::of(&HANDLED_SIGNALS);
    // Request threads start first, blocking the signals this thread reads from its
    // signalfd (a thread inherits its creator's mask) and at its priority, then wait for
    // the app. That lets a lazy import below run at a lower priority on this thread alone.
    sys::signal::block(&handled)?;
    if setup.batch_scheduling {
        // Before any thread exists, so that every one of them inherits it.
        if let Err(err) = sys::process::use_batch_scheduling() {
            tracing::warn!("batch-scheduling: the normal policy stays: {err}");
        }
    }
    let threads = RequestThreads::start(setup.id, setup.threads.max(1), setup.thread_stack)?;
    let setup_skip_atexit = setup.options.skip_atexit;
    let lazy_app;
    let app: &App = match setup.app {
        AppSource::Preloaded(app) => app,
        AppSource::Lazy {
            spec,
            interpreter,
            module,
        } => {
            // During the import, signals act as they would without kaiser (Python's SIGINT
            // handler, the defaults for the rest), as they did before the threads existed.
            sys::signal::unblock(&handled)?;
            // A lazy worker often imports beside siblings that are serving: during a chain
            // reload, or when it replaces a recycled worker. Importing is a burst of CPU
            // (half a second for Flask here); at a lower priority it takes what the
            // siblings leave instead of a fair share of their core. Nice is per thread on
            // Linux: the request threads started above keep the priority they had, and
            // this thread only waits for signals once the app is in. It stays the thread
            // that imports because Python runs `signal.signal` handlers only there.
            sys::process::lower_priority(sys::process::IMPORT_NICE);
            python::initialize(&interpreter)?;
            python::install_uwsgi_module(module).map_err(|e| WorkerError::Python(e.to_string()))?;
            worker_hooks(setup.hooks, HookPhase::PreApp, setup.master_pid);
            lazy_app = python::load_app(&spec)?;
            worker_hooks(setup.hooks, HookPhase::PostApp, setup.master_pid);
            // No fork follows, but collections then skip the app's import-time objects.
            python::freeze_heap();
            sys::signal::block(&handled)?;
            tracing::info!(app = %lazy_app.description, "app loaded in worker (lazy-apps)");
            &lazy_app
        }
    };
    if let Some(path) = &setup.options.py_tracebacker {
        tracebacker::start(path, setup.id);
    }
    if !setup.options.py_autoreload.is_zero() && setup.id == 1 {
        autoreload::spawn(
            setup.options.py_autoreload,
            setup.options.py_autoreload_ignore.clone(),
            setup.master_pid,
        );
    }
    let envs: Vec<ListenerEnv> = setup
        .listeners
        .iter()
        .map(|l| ListenerEnv {
            server_name: l.server_name.clone(),
            server_port: l.server_port.clone(),
            url_scheme: "http",
        })
        .collect();
    let runner = WsgiRunner::new(app, &envs, setup.threads > 1, setup.processes > 1)
        .map_err(|e| WorkerError::Python(e.to_string()))?
        .quiet_write_errors(setup.settings.disable_write_exception)
        .without_file_wrapper(setup.options.disable_file_wrapper)
        .manage_script_name(setup.settings.manage_script_name);
    let signals = sys::signal::SignalFd::new(&handled)?;
    let static_files = statics::StaticFiles::new(&setup.settings.statics);
    // Offload threads exist whenever static files are served: `offload-threads = 0` (the
    // default) means one, so that a slow client never holds a request thread.
    let offload = match &static_files {
        Some(_) => Some(offload::Offload::new(
            setup.settings.statics.offload_threads.max(1),
        )?),
        None => None,
    };

    let shared = Arc::new(Shared {
        epoll: sys::poll::Epoll::new()?,
        stop: sys::poll::EventFd::new()?,
        stopping: AtomicBool::new(false),
        listeners: setup.listeners.clone(),
        runner,
        raw: app.raw.clone(),
        settings: setup.settings.clone(),
        conns: std::sync::Mutex::new(conn::ConnTable::default()),
        requests: AtomicU64::new(0),
        pid: sys::process::getpid(),
        multithreaded: setup.threads > 1,
        backlog_pending: AtomicBool::new(false),
        paused: AtomicBool::new(false),
        recycling: limits::RecycleWatch::new(setup.ready_fd),
        worker_id: setup.id,
        bank: setup.bank,
        scoreboard: setup.scoreboard.clone(),
        inflight: (0..setup.threads.max(1))
            .map(|_| Arc::new(harakiri::InFlight::default()))
            .collect(),
        gate: Arc::new(gate::AcceptGate::new(setup.settings.max_connections)),
        statics: static_files,
        offload,
        health: setup.settings.health_check_path.as_deref().map(|path| {
            health::Health::new(path, setup.threads.max(1) as usize, app.is_unavailable())
        }),
        deferred: setup
            .listeners
            .iter()
            .any(|listener| listener.protocol == crate::config::Protocol::Http)
            .then(|| Arc::new(deferred::Deferred::new(setup.settings.socket_timeout))),
    });
    offload::Offload::start(&shared)?;
    if let Some(deferred) = shared.deferred.clone() {
        std::thread::Builder::new()
            .name("responses".into())
            .stack_size(64 * 1024)
            .spawn(move || deferred.tick_forever())?;
    }
    harakiri::install_user_harakiri(setup.scoreboard.clone(), setup.id, setup.bank);
    install_workers_hook(setup.scoreboard.clone());
    for (index, listener) in shared.listeners.iter().enumerate() {
        // Non-blocking (a file status flag shared by every process holding the socket):
        // several threads and workers race for each connection and the losers must get
        // EAGAIN, not sleep in accept().
        sys::fd::set_nonblocking(listener.fd(), true)?;
        shared.epoll.add(
            listener.fd(),
            sys::poll::EPOLLIN | sys::poll::EPOLLEXCLUSIVE,
            serve::listener_token(index),
        )?;
    }
    shared.epoll.add(
        shared.stop.as_fd(),
        sys::poll::EPOLLIN | sys::poll::EPOLLONESHOT,
        serve::STOP_TOKEN,
    )?;

    // `uwsgi.post_fork_hook` (uwsgidecorators' `@postfork`), once the app is there.
    python::run_post_fork_hook();
    // Before any request can run: setting the wakeup fd takes the GIL, which a request stuck
    // in C code would never let go.
    let python_signals = python_signal_pipe();
    let handles = threads.serve(&shared);
    health::start_probe_thread(&shared);
    // Accepting before the master hears it: whoever the master's readiness lets in (stats,
    // a test) must find it so.
    if let Some(slot) = shared.slot() {
        slot.set_accepting(true);
    }
    // SAFETY: the master handed us this pipe's write end; it stays open until we exit.
    let ready = unsafe { BorrowedFd::borrow_raw(setup.ready_fd) };
    to_master::send(ready, shared.pid, to_master::ToMaster::Ready);
    accepting_hooks(setup.hooks, setup.id, setup.master_pid, &shared.scoreboard);

    // The forking thread only waits for signals; request threads do the work. kaiser's own
    // signals are handled without the GIL, first: a request stuck in C code that holds the
    // GIL must still get its harakiri 504 and its worker must still stop. Python runs
    // `signal.signal()` handlers only on its main thread, which is this one (it forked from
    // the thread that initialised Python); request threads merely note the signal. Python's
    // wakeup fd tells when one of those is pending, and only then is the GIL taken.
    loop {
        let mut fds = vec![(signals.as_fd(), sys::poll::READABLE)];
        if let Some((read, _)) = &python_signals {
            fds.push((read.as_fd(), sys::poll::READABLE));
        }
        let revents = sys::poll::poll(&fds, Some(Duration::from_millis(200)))?;
        if revents[0] != 0 {
            while let Some(sig) = signals.read()? {
                match sig {
                    libc::SIGINT => sys::process::exit_now(EXIT_OK),
                    libc::SIGHUP | libc::SIGTERM | libc::SIGQUIT => begin_stop(&shared, sig),
                    libc::SIGUSR2 => harakiri::on_signal(&shared),
                    libc::SIGTSTP => toggle_pause(&shared),
                    libc::SIGUSR1 => tracing::info!(
                        requests = shared.requests.load(Ordering::Relaxed),
                        "worker stats"
                    ),
                    _ => {}
                }
            }
        }
        // uWSGI signals (timers, crons, `uwsgi.signal`) queued for this worker in shared
        // memory: the GIL is taken only when one is there.
        python::dispatch_uwsgi_signals();
        match &python_signals {
            Some((read, _)) if revents.get(1).is_some_and(|r| *r != 0) => {
                let mut drain = [0u8; 64];
                while matches!(sys::fd::read(read.as_fd(), &mut drain), Ok(n) if n > 0) {}
                python::run_signal_handlers();
            }
            Some(_) => {}
            // Without a wakeup fd, handlers are polled for as before, after kaiser's signals.
            None => python::run_signal_handlers(),
        }
        if handles.iter().all(|h| h.is_finished()) {
            break;
        }
    }
    for handle in handles {
        let _ = handle.join();
    }
    if setup_skip_atexit {
        tracing::debug!("skip-atexit: not running the app's exit handlers");
    } else {
        python::run_exit_handlers();
    }
    Ok(())
}

/// A non-blocking pipe set as Python's signal wakeup fd, or `None` (logged) if that failed.
/// Both ends live as long as the worker.
fn python_signal_pipe() -> Option<(OwnedFd, OwnedFd)> {
    let pipe = sys::fd::pipe().and_then(|(read, write)| {
        sys::fd::set_nonblocking(read.as_fd(), true)?;
        sys::fd::set_nonblocking(write.as_fd(), true)?;
        Ok((read, write))
    });
    let (read, write) = match pipe {
        Ok(pipe) => pipe,
        Err(err) => {
            tracing::warn!(error = %err, "no pipe for Python's signal wakeup fd; polling for Python signal handlers");
            return None;
        }
    };
    if let Err(err) = python::set_signal_wakeup_fd(write.as_raw_fd()) {
        tracing::warn!(error = %err, "signal.set_wakeup_fd failed; polling for Python signal handlers");
        return None;
    }
    Some((read, write))
}

/// Where `uwsgi.workers()`, `total_requests()` and `request_id()` read, and
/// `uwsgi.accepting()` writes: the scoreboard.
fn install_workers_hook(scoreboard: Arc<Scoreboard>) {
    let board = scoreboard.clone();
    python::set_accepting_hook(Box::new(move |accepting| {
        let id = python::current_worker_id();
        if let Some(slot) = board.worker(id) {
            slot.set_accepting(accepting);
        }
    }));
    python::set_workers_hook(Box::new(move || {
        (1..=scoreboard.workers() as u32)
            .filter_map(|id| {
                let worker = scoreboard.worker(id)?.snapshot();
                Some(python::WorkerFigures {
                    id,
                    pid: worker.pid,
                    requests: worker.requests,
                    delta_requests: worker.delta_requests,
                    exceptions: worker.exceptions,
                    busy: worker.busy(),
                    cheap: worker.cheap,
                    running_time_us: worker.running_time_us,
                    last_spawn: worker.last_spawn,
                    respawn_count: worker.respawn_count,
                    tx: worker.tx,
                    avg_rt_us: worker.avg_rt_us,
                })
            })
            .collect()
    }));
}

/// The request threads of a worker, started before the app is loaded and waiting for it.
struct RequestThreads {
    handles: Vec<std::thread::JoinHandle<()>>,
    go: Vec<std::sync::mpsc::SyncSender<Arc<Shared>>>,
}

impl RequestThreads {
    fn start(worker_id: u32, count: u32, stack: usize) -> std::io::Result<Self> {
        let mut threads = RequestThreads {
            handles: Vec::new(),
            go: Vec::new(),
        };
        for thread_index in 0..count as usize {
            let (go, wait) = std::sync::mpsc::sync_channel::<Arc<Shared>>(1);
            let span = tracing::Span::current();
            let name = format!("kaiser-w{worker_id}-t{thread_index}");
            let handle = std::thread::Builder::new()
                .name(name.clone())
                // The app runs here: it gets the stack Python's own threads get (Rust's
                // 2 MiB default overflowed where plain Python recursed fine).
                .stack_size(stack)
                .spawn(move || {
                    // The sender is dropped without sending if the app fails to load; the
                    // worker then exits.
                    let Ok(shared) = wait.recv() else { return };
                    let _entered = span.enter();
                    python::with_thread_state(|| {
                        python::prepare_request_thread(&name);
                        serve::thread_loop(&shared, thread_index)
                    })
                })?;
            threads.handles.push(handle);
            threads.go.push(go);
        }
        Ok(threads)
    }

    /// Hands every thread the worker's state: they start serving.
    fn serve(self, shared: &Arc<Shared>) -> Vec<std::thread::JoinHandle<()>> {
        for go in self.go {
            let _ = go.send(shared.clone());
        }
        self.handles
    }
}

/// Graceful stop: stop accepting, finish requests in flight, close idle connections.
fn begin_stop(shared: &Shared, sig: libc::c_int) {
    if shared.stopping.swap(true, Ordering::SeqCst) {
        return;
    }
    if let Some(slot) = shared.slot() {
        slot.set_accepting(false);
    }
    if sig != 0 {
        tracing::debug!(signal = sys::signal::name(sig), "stopping gracefully");
    }
    shared.stop.signal();
}

/// SIGTSTP from the master: stop or resume accepting. Open connections keep being served;
/// new ones wait in the backlog (or go to workers that are not paused).
fn toggle_pause(shared: &Shared) {
    let paused = !shared.paused.load(Ordering::SeqCst);
    shared.paused.store(paused, Ordering::SeqCst);
    for (index, listener) in shared.listeners.iter().enumerate() {
        if paused {
            let _ = shared.epoll.delete(listener.fd);
        } else if !shared.stopping.load(Ordering::Acquire) {
            let _ = shared.epoll.add(
                listener.fd(),
                sys::poll::EPOLLIN | sys::poll::EPOLLEXCLUSIVE,
                serve::listener_token(index),
            );
        }
    }
    tracing::info!(
        paused,
        "accepting {}",
        if paused { "paused" } else { "resumed" }
    );
}
