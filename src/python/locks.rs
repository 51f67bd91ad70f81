//! `uwsgi.lock(n)`, `unlock(n)` and `is_locked(n)`: locks shared by every process of the
//! instance (reference §8.2). Lock 0 always exists; `locks N` adds 1..=N. They are
//! `sys::lock` futex words in a mapping the master makes before it forks anything, so a worker
//! killed while holding one (harakiri, OOM) does not leave it taken: the next taker recovers
//! it and a warning says so.
//!
//! A waiting `lock()` releases the GIL, so the other threads of the worker keep running.

use std::sync::atomic::AtomicU32;
use std::sync::OnceLock;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyModule;

use crate::sys::lock::{self as futex_lock, Acquired, LockError};
use crate::sys::shm::SharedWords;

static LOCKS: OnceLock<SharedWords<AtomicU32>> = OnceLock::new();

/// Called by the master before the app is imported and before any fork: `count` user locks
/// beside lock 0.
pub fn create_locks(count: u32) -> std::io::Result<()> {
    // Carried across a reload's exec: the old generation's workers, still finishing their
    // requests, and the new one's exclude each other.
    let words = SharedWords::carried(&format!("locks-{}", count + 1), count as usize + 1)?;
    let _ = LOCKS.set(words);
    Ok(())
}

fn word(number: u32) -> PyResult<&'static AtomicU32> {
    if super::spooler::i_am_the_spooler_now() {
        return Err(PyValueError::new_err(
            "The spooler cannot lock/unlock resources",
        ));
    }
    LOCKS
        .get()
        .and_then(|locks| locks.words().get(number as usize))
        .ok_or_else(|| PyValueError::new_err("Invalid lock number"))
}

fn note(number: u32, acquired: Acquired) {
    if let Acquired::FromDead(owner) = acquired {
        tracing::warn!(
            lock = number,
            owner,
            "took over a lock whose holder died while holding it; what it protected may be half-updated"
        );
    }
}

/// `uwsgi.lock([n])`: waits (without the GIL) until lock `n` is free, then takes it.
#[pyfunction]
#[pyo3(signature = (number = 0))]
fn lock(py: Python<'_>, number: u32) -> PyResult<()> {
    let word = word(number)?;
    let acquired = match futex_lock::try_lock(word) {
        Some(acquired) => Ok(acquired),
        None => py.detach(|| futex_lock::lock(word)),
    };
    match acquired {
        Ok(acquired) => {
            note(number, acquired);
            Ok(())
        }
        Err(LockError::AlreadyHeld) => Err(PyRuntimeError::new_err(format!(
            "lock {number} is already held by this thread"
        ))),
    }
}

/// `uwsgi.unlock([n])`: releases lock `n` if this thread holds it.
#[pyfunction]
#[pyo3(signature = (number = 0))]
fn unlock(number: u32) -> PyResult<()> {
    futex_lock::unlock(word(number)?);
    Ok(())
}

/// `uwsgi.is_locked([n])`: whether a live thread holds lock `n`.
#[pyfunction]
#[pyo3(signature = (number = 0))]
fn is_locked(number: u32) -> PyResult<bool> {
    Ok(futex_lock::is_locked(word(number)?))
}

pub(crate) fn add_to_module(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(lock, module)?)?;
    module.add_function(wrap_pyfunction!(unlock, module)?)?;
    module.add_function(wrap_pyfunction!(is_locked, module)?)?;
    Ok(())
}
