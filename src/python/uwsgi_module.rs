//! `import uwsgi`: the module real apps and `uwsgidecorators` import. This first version
//! carries the process facts (`worker_id`, `masterpid`, `numproc`, `opt`, …) and the
//! constants; signals, spooler, cache and locks come with their own features.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyModule};

static WORKER_ID: AtomicU32 = AtomicU32::new(0);
static INFO: OnceLock<ModuleInfo> = OnceLock::new();
/// What `set_user_harakiri` calls: the worker's, installed after fork.
static USER_HARAKIRI: OnceLock<UserHarakiriHook> = OnceLock::new();

/// Sets a harakiri deadline (seconds from now, 0 clears) for the calling request thread;
/// false when called outside a request.
pub type UserHarakiriHook = Box<dyn Fn(u64) -> bool + Send + Sync>;

/// What `uwsgi.workers()` reports of one worker, read from the scoreboard.
#[derive(Debug, Clone, Default)]
pub struct WorkerFigures {
    pub id: u32,
    pub pid: u64,
    pub requests: u64,
    pub delta_requests: u64,
    pub exceptions: u64,
    pub busy: bool,
    /// Stopped or kept empty by the cheaper subsystem (status `cheap`).
    pub cheap: bool,
    pub running_time_us: u64,
    pub last_spawn: u64,
    pub respawn_count: u64,
    pub tx: u64,
    pub avg_rt_us: u64,
}

/// Sets this worker's `accepting` flag in the stats (`uwsgi.accepting()`).
pub type AcceptingHook = Box<dyn Fn(bool) + Send + Sync>;

static ACCEPTING: OnceLock<AcceptingHook> = OnceLock::new();

/// Called in a worker after fork: what `uwsgi.accepting()` does there.
pub fn set_accepting_hook(hook: AcceptingHook) {
    let _ = ACCEPTING.set(hook);
}

/// `uwsgi.accepting([flag])`: marks this worker as accepting (or not) in the stats, as
/// uWSGI's does; it changes nothing else. Outside a worker it does nothing.
#[pyfunction]
#[pyo3(signature = (accepting = true))]
fn accepting(accepting: bool) {
    if let Some(hook) = ACCEPTING.get() {
        hook(accepting);
    }
}

/// Every worker's figures, in id order.
pub type WorkersHook = Box<dyn Fn() -> Vec<WorkerFigures> + Send + Sync>;

/// What `uwsgi.workers()`, `total_requests()` and `request_id()` read: the worker's, set
/// after fork.
static WORKERS: OnceLock<WorkersHook> = OnceLock::new();

/// Called in a worker after fork: where `uwsgi.workers()` and friends read their figures.
pub fn set_workers_hook(hook: WorkersHook) {
    let _ = WORKERS.set(hook);
}

fn figures() -> Vec<WorkerFigures> {
    WORKERS.get().map(|hook| hook()).unwrap_or_default()
}

/// `uwsgi.workers()`: a tuple with a dict per worker, with uWSGI's keys. `rss` and `vsz` come
/// from /proc; `signals` is always 0 and `apps` empty (kaiser has neither uWSGI signals nor
/// per-app counters).
#[pyfunction]
fn workers(py: Python<'_>) -> PyResult<Bound<'_, pyo3::types::PyTuple>> {
    let mut dicts = Vec::new();
    for worker in figures() {
        let (vsz, rss) = crate::sys::process::memory_bytes(worker.pid as i32).unwrap_or((0, 0));
        let dict = PyDict::new(py);
        dict.set_item("id", worker.id)?;
        dict.set_item("pid", worker.pid)?;
        dict.set_item("requests", worker.requests)?;
        dict.set_item("delta_requests", worker.delta_requests)?;
        dict.set_item("signals", 0)?;
        dict.set_item("exceptions", worker.exceptions)?;
        dict.set_item(
            "status",
            PyBytes::new(
                py,
                match (worker.cheap, worker.busy) {
                    (true, _) => b"cheap",
                    (false, true) => b"busy",
                    (false, false) => b"idle",
                },
            ),
        )?;
        dict.set_item("rss", rss)?;
        dict.set_item("vsz", vsz)?;
        dict.set_item("running_time", worker.running_time_us)?;
        dict.set_item("last_spawn", worker.last_spawn)?;
        // uWSGI's count starts at 1 for the first spawn; `workers()` reports it minus 1.
        dict.set_item("respawn_count", worker.respawn_count.saturating_sub(1))?;
        dict.set_item("tx", worker.tx)?;
        dict.set_item("avg_rt", worker.avg_rt_us)?;
        dict.set_item("apps", pyo3::types::PyTuple::empty(py))?;
        dicts.push(dict);
    }
    pyo3::types::PyTuple::new(py, dicts)
}

/// `uwsgi.total_requests()`: requests served by every worker.
#[pyfunction]
fn total_requests() -> u64 {
    figures().iter().map(|w| w.requests).sum()
}

/// `uwsgi.request_id()`: this worker's count of requests (the current one not yet counted).
#[pyfunction]
fn request_id() -> u64 {
    let id = WORKER_ID.load(Ordering::Relaxed);
    figures()
        .iter()
        .find(|w| w.id == id)
        .map_or(0, |w| w.requests)
}

/// `uwsgi.mem()`: this process's `(rss, vsz)` in bytes.
#[pyfunction]
fn mem() -> (u64, u64) {
    let (vsz, rss) =
        crate::sys::process::memory_bytes(crate::sys::process::getpid()).unwrap_or((0, 0));
    (rss, vsz)
}

/// `uwsgi.micros()`: the wall clock in microseconds.
#[pyfunction]
fn micros() -> u64 {
    crate::sys::clock::unix_us()
}

/// Facts the module exposes, fixed when the master starts.
#[derive(Debug, Clone)]
pub struct ModuleInfo {
    pub numproc: u32,
    pub master_pid: i32,
    pub buffer_size: usize,
    pub started_on: u64,
    pub threads: u32,
    /// Effective options, as `uwsgi.opt` (a flag without a value, given as "", is `True`).
    pub options: Vec<(String, String)>,
}

/// Called in a worker right after fork: `uwsgi.worker_id()` then returns `id` (1-based).
pub fn set_worker_id(id: u32) {
    WORKER_ID.store(id, Ordering::Relaxed);
}

/// Called in a worker after fork: what `uwsgi.set_user_harakiri(N)` does there.
pub fn set_user_harakiri_hook(hook: UserHarakiriHook) {
    let _ = USER_HARAKIRI.set(hook);
}

/// `uwsgi.set_user_harakiri(N)`: this request may run N more seconds (0: no limit of its
/// own), on top of `harakiri`. Outside a request (the master, import time) it does nothing.
#[pyfunction]
fn set_user_harakiri(seconds: u64) {
    if let Some(hook) = USER_HARAKIRI.get() {
        hook(seconds);
    }
}

thread_local! {
    /// `uwsgi.log_this_request()` was called by the request running on this thread.
    static LOG_THIS_REQUEST: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `uwsgi.log_this_request()`: log this request even with `disable-logging`.
#[pyfunction]
fn log_this_request() {
    LOG_THIS_REQUEST.with(|flag| flag.set(true));
}

/// Whether the request that just ran on this thread asked to be logged; clears the flag.
pub fn take_log_this_request() -> bool {
    LOG_THIS_REQUEST.with(|flag| flag.replace(false))
}

thread_local! {
    /// `uwsgi.set_logvar(key, value)` of the request running on this thread, for
    /// `log-format`'s `%(key)`.
    static LOGVARS: std::cell::RefCell<Vec<(String, String)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `uwsgi.set_logvar(key, value)`: `%(key)` in `log-format` prints `value` for this request.
#[pyfunction]
fn set_logvar(key: String, value: String) {
    LOGVARS.with(|vars| {
        let mut vars = vars.borrow_mut();
        match vars.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => vars.push((key, value)),
        }
    });
}

/// `uwsgi.get_logvar(key)`: what `set_logvar` set for this request (bytes, as uWSGI gives),
/// or None.
#[pyfunction]
fn get_logvar(key: &str) -> Option<Vec<u8>> {
    LOGVARS.with(|vars| {
        vars.borrow()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_bytes().to_vec())
    })
}

/// What `uwsgi.set_logvar` does, for internal routing's `logvar:` action.
pub fn request_logvar(key: String, value: String) {
    set_logvar(key, value);
}

/// What `uwsgi.set_user_harakiri` does, for internal routing's `harakiri:` action.
pub fn request_user_harakiri(seconds: u64) {
    set_user_harakiri(seconds);
}

/// The logvars the request that just ran on this thread set; clears them.
pub fn take_logvars() -> Vec<(String, String)> {
    LOGVARS.with(|vars| std::mem::take(&mut *vars.borrow_mut()))
}

/// This process's worker id (0 outside workers).
pub fn current_worker_id() -> u32 {
    WORKER_ID.load(Ordering::Relaxed)
}

#[pyfunction]
fn worker_id() -> u32 {
    WORKER_ID.load(Ordering::Relaxed)
}

#[pyfunction]
fn masterpid() -> i32 {
    INFO.get().map(|i| i.master_pid).unwrap_or(0)
}

/// `uwsgi.mule_id()`: this mule's id, 0 outside mules.
#[pyfunction]
fn mule_id() -> u32 {
    super::mules::current_mule_id()
}

#[pyfunction]
fn log(message: &str) {
    tracing::info!(target: "app", "{message}");
}

#[pyfunction]
fn reload() -> bool {
    let pid = masterpid();
    pid > 0 && crate::sys::signal::kill(pid, libc::SIGHUP).is_ok()
}

#[pyfunction]
fn stop() -> bool {
    let pid = masterpid();
    pid > 0 && crate::sys::signal::kill(pid, libc::SIGTERM).is_ok()
}

/// Registers `uwsgi` in `sys.modules`. Call once, after initialising Python and before
/// importing the app.
pub fn install(info: ModuleInfo) -> PyResult<()> {
    let _ = INFO.set(info.clone());
    Python::attach(|py| {
        let module = PyModule::new(py, "uwsgi")?;
        module.add(
            "version",
            PyBytes::new(py, concat!("kaiser-", env!("CARGO_PKG_VERSION")).as_bytes()),
        )?;
        module.add("version_info", (2, 0, 30, 0, "kaiser"))?;
        module.add(
            "hostname",
            PyBytes::new(py, crate::sys::process::hostname().as_bytes()),
        )?;
        module.add("numproc", info.numproc)?;
        module.add("cores", info.threads)?;
        module.add("has_threads", 1)?;
        module.add("buffer_size", info.buffer_size)?;
        module.add("started_on", info.started_on)?;
        module.add("is_a_reload", false)?;
        module.add("SPOOL_OK", -2)?;
        module.add("SPOOL_RETRY", -1)?;
        module.add("SPOOL_IGNORE", 0)?;
        module.add("applications", py.None())?;
        let opt = PyDict::new(py);
        for (key, value) in &info.options {
            // As in uWSGI on Python 3: values are bytes, a bare flag is True, and a repeated
            // key keeps its last value.
            if value.is_empty() {
                opt.set_item(key, true)?;
            } else {
                opt.set_item(key, PyBytes::new(py, value.as_bytes()))?;
            }
        }
        module.add("opt", opt)?;
        module.add_function(wrap_pyfunction!(worker_id, &module)?)?;
        module.add_function(wrap_pyfunction!(masterpid, &module)?)?;
        module.add_function(wrap_pyfunction!(mule_id, &module)?)?;
        module.add_function(wrap_pyfunction!(log, &module)?)?;
        module.add_function(wrap_pyfunction!(reload, &module)?)?;
        module.add_function(wrap_pyfunction!(stop, &module)?)?;
        module.add_function(wrap_pyfunction!(set_user_harakiri, &module)?)?;
        module.add_function(wrap_pyfunction!(log_this_request, &module)?)?;
        module.add_function(wrap_pyfunction!(set_logvar, &module)?)?;
        module.add_function(wrap_pyfunction!(get_logvar, &module)?)?;
        module.add_function(wrap_pyfunction!(workers, &module)?)?;
        module.add_function(wrap_pyfunction!(total_requests, &module)?)?;
        module.add_function(wrap_pyfunction!(request_id, &module)?)?;
        module.add_function(wrap_pyfunction!(mem, &module)?)?;
        module.add_function(wrap_pyfunction!(micros, &module)?)?;
        module.add_function(wrap_pyfunction!(accepting, &module)?)?;
        super::spooler::add_to_module(&module)?;
        super::locks::add_to_module(&module)?;
        super::cache::add_to_module(&module)?;
        super::signals::add_to_module(&module)?;
        super::mules::add_to_module(&module)?;
        super::rpc::add_to_module(&module)?;
        super::raw::add_to_module(&module)?;
        py.import("sys")?
            .getattr("modules")?
            .set_item("uwsgi", module)?;
        Ok(())
    })
}

/// Calls `uwsgi.post_fork_hook` if the app set one (`uwsgidecorators` does, to run its
/// `@postfork` functions), as uWSGI does in every process it forks. An exception is logged.
pub fn run_post_fork_hook() {
    Python::attach(|py| {
        let hook = py
            .import("sys")
            .and_then(|sys| sys.getattr("modules"))
            .and_then(|modules| modules.get_item("uwsgi"))
            .and_then(|uwsgi| uwsgi.getattr("post_fork_hook"));
        let Ok(hook) = hook else {
            return;
        };
        if !hook.is_callable() {
            return;
        }
        if let Err(err) = hook.call0() {
            tracing::error!(
                "uwsgi.post_fork_hook raised:\n{}",
                super::app::format_exception(py, &err)
            );
        }
    });
}
