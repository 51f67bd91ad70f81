//! The Python side of uWSGI signals (`crate::signals`): `register_signal`, `signal`,
//! `signal_registered`, `add_timer`, `add_rb_timer`, `add_cron`, and running the handlers of
//! the signals pending for this process. What `uwsgidecorators`' `@signal`, `@timer`,
//! `@rbtimer` and `@cron` call.
//!
//! Handlers are kept in a dict of this process's interpreter; registered at import time in
//! the master, every child inherits them with the fork.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use pyo3::exceptions::{PyNotImplementedError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule};

use crate::signals::{self, CronSpec, Target};

static HANDLERS: OnceLock<Py<PyDict>> = OnceLock::new();
/// This process's slot in the pending bitmaps when it is not a worker (a spooler); 0: none.
static OTHER_SLOT: AtomicUsize = AtomicUsize::new(0);

/// Called in a mule after fork: its id (1-based).
pub fn set_mule_signal_slot(id: u32) {
    if let Some(slot) = signals::board().and_then(|b| b.mule_slot(id)) {
        OTHER_SLOT.store(slot, Ordering::Relaxed);
    }
}

/// Called in a spooler after fork: its slot among the spoolers (0-based).
pub fn set_spooler_signal_slot(index: usize) {
    if let Some(slot) = signals::board().and_then(|b| b.spooler_slot(index)) {
        OTHER_SLOT.store(slot, Ordering::Relaxed);
    }
}

fn board() -> PyResult<&'static signals::Board> {
    signals::board().ok_or_else(|| PyValueError::new_err("uwsgi signals are not available here"))
}

fn handlers(py: Python<'_>) -> &Bound<'_, PyDict> {
    HANDLERS.get_or_init(|| PyDict::new(py).unbind()).bind(py)
}

/// `uwsgi.register_signal(num, target, handler)`.
#[pyfunction]
fn register_signal(
    py: Python<'_>,
    signum: u8,
    target: &str,
    handler: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let parsed = Target::parse(target).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unable to register signal {signum}: kaiser does not support the target `{target}` (use worker, workers, workerN, spooler, mule, mules or muleN)"
        ))
    })?;
    if !handler.is_callable() {
        return Err(PyValueError::new_err("the signal handler must be callable"));
    }
    handlers(py).set_item(signum, handler)?;
    board()?.register(signum, parsed);
    Ok(())
}

/// `uwsgi.signal(num)`: raises it towards its target.
#[pyfunction]
#[pyo3(signature = (signum, remote = None))]
fn signal(signum: u8, remote: Option<&str>) -> PyResult<()> {
    if remote.is_some() {
        return Err(PyNotImplementedError::new_err(
            "remote uwsgi signals are not supported by kaiser",
        ));
    }
    if !board()?.raise(signum) {
        tracing::warn!(
            signal = signum,
            "uwsgi signal is not registered; ignoring it"
        );
    }
    Ok(())
}

#[pyfunction]
fn signal_registered(signum: u8) -> bool {
    signals::board().is_some_and(|b| b.is_registered(signum))
}

fn now_ms() -> u64 {
    crate::sys::clock::unix_ms()
}

/// `uwsgi.add_timer(num, seconds)`: the master raises `num` every `seconds`.
#[pyfunction]
fn add_timer(signum: u8, seconds: u64) -> PyResult<()> {
    if !board()?.add_timer(signum, seconds, 0, now_ms()) {
        return Err(PyValueError::new_err("unable to add timer"));
    }
    Ok(())
}

/// `uwsgi.add_rb_timer(num, seconds[, iterations])`.
#[pyfunction]
#[pyo3(signature = (signum, seconds, iterations = 0))]
fn add_rb_timer(signum: u8, seconds: u64, iterations: u64) -> PyResult<()> {
    if !board()?.add_timer(signum, seconds, iterations, now_ms()) {
        return Err(PyValueError::new_err("unable to add rb_timer"));
    }
    Ok(())
}

/// `uwsgi.add_cron(num, minute, hour, day, month, weekday)`: -1 is `*`, -N every N.
#[pyfunction]
fn add_cron(
    signum: u8,
    minute: i64,
    hour: i64,
    day: i64,
    month: i64,
    weekday: i64,
) -> PyResult<bool> {
    let spec = CronSpec {
        minute,
        hour,
        day,
        month,
        weekday,
    };
    if !board()?.add_cron(signum, spec) {
        return Err(PyValueError::new_err("unable to add cron"));
    }
    Ok(true)
}

fn my_slot() -> Option<usize> {
    let board = signals::board()?;
    match super::uwsgi_module::current_worker_id() {
        0 => Some(OTHER_SLOT.load(Ordering::Relaxed)).filter(|slot| *slot != 0),
        id => board.worker_slot(id),
    }
}

/// Threads of this process inside `signal_wait`: while there is one, it takes the signals
/// and the main thread leaves them to it.
static WAITING: AtomicUsize = AtomicUsize::new(0);

/// Counts a thread in `signal_wait` for as long as it lives.
struct Waiting;

impl Waiting {
    fn new() -> Self {
        WAITING.fetch_add(1, Ordering::SeqCst);
        Waiting
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.fetch_sub(1, Ordering::SeqCst);
    }
}

thread_local! {
    /// `uwsgi.signal_received()`: the last signal `signal_wait` returned on this thread.
    static RECEIVED: std::cell::Cell<i32> = const { std::cell::Cell::new(-1) };
}

/// `uwsgi.signal_wait([num])`: waits (without the GIL) until a uWSGI signal for this process
/// arrives (`num`, or any), runs the handlers of what arrived, and returns `None`; the number
/// is then `signal_received()`. Signals taken here do not also run on the main thread.
#[pyfunction]
#[pyo3(signature = (signum = None))]
fn signal_wait(py: Python<'_>, signum: Option<u8>) -> PyResult<()> {
    let slot =
        my_slot().ok_or_else(|| PyValueError::new_err("no uwsgi signals reach this process"))?;
    let board = board()?;
    let _waiting = Waiting::new();
    loop {
        let pending = py.detach(|| loop {
            let pending = board.take(slot);
            if !pending.is_empty() {
                return pending;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        });
        run_handlers(py, &pending);
        let wanted = match signum {
            None => pending.last().copied(),
            Some(signum) => pending.contains(&signum).then_some(signum),
        };
        if let Some(received) = wanted {
            RECEIVED.with(|r| r.set(i32::from(received)));
            return Ok(());
        }
        py.check_signals()?;
    }
}

/// `uwsgi.signal_received()`: the signal the last `signal_wait` on this thread got, or -1.
#[pyfunction]
fn signal_received() -> i32 {
    RECEIVED.with(std::cell::Cell::get)
}

/// Runs the handlers of the signals pending for this process. Must be called on Python's
/// main thread; a handler that raises is logged.
pub fn dispatch_pending() {
    if WAITING.load(Ordering::SeqCst) > 0 {
        return;
    }
    let Some(slot) = my_slot() else {
        return;
    };
    let Some(board) = signals::board() else {
        return;
    };
    let pending = board.take(slot);
    if pending.is_empty() {
        return;
    }
    Python::attach(|py| run_handlers(py, &pending));
}

fn run_handlers(py: Python<'_>, pending: &[u8]) {
    for &signum in pending {
        let Ok(Some(handler)) = handlers(py).get_item(signum) else {
            tracing::warn!(
                signal = signum,
                "no handler for this uwsgi signal in this process"
            );
            continue;
        };
        if let Err(err) = handler.call1((signum,)) {
            tracing::error!(
                signal = signum,
                "the uwsgi signal handler raised:\n{}",
                super::app::format_exception(py, &err)
            );
        }
    }
}

/// `uwsgi.add_file_monitor(num, path)`: the master raises `num` when `path` changes
/// (checked at each turn of its loop, at least every second).
#[pyfunction]
fn add_file_monitor(signum: u8, path: &str) -> PyResult<()> {
    if !board()?.add_file_monitor(signum, path.as_bytes()) {
        return Err(PyValueError::new_err("unable to add file monitor"));
    }
    Ok(())
}

pub(crate) fn add_to_module(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(add_file_monitor, module)?)?;
    module.add_function(wrap_pyfunction!(signal_wait, module)?)?;
    module.add_function(wrap_pyfunction!(signal_received, module)?)?;
    module.add_function(wrap_pyfunction!(register_signal, module)?)?;
    module.add_function(wrap_pyfunction!(signal, module)?)?;
    module.add_function(wrap_pyfunction!(signal_registered, module)?)?;
    module.add_function(wrap_pyfunction!(add_timer, module)?)?;
    module.add_function(wrap_pyfunction!(add_rb_timer, module)?)?;
    module.add_function(wrap_pyfunction!(add_cron, module)?)?;
    Ok(())
}
