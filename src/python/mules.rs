//! Mules from Python (reference §8.2): `mule_id()`, `mule_msg()`, `mule_get_msg()`,
//! `farm_msg()`, `farm_get_msg()`, `in_farm()`, and the loop a mule without a script runs
//! (each message to `uwsgi.mule_msg_hook`, which `uwsgidecorators` sets for `@mulefunc`).
//!
//! Messages travel over `AF_UNIX` datagram socketpairs the master makes before it forks: one
//! per mule, one any mule reads ("the first mule that is free"), one per farm. Every process
//! inherits every end, so a worker sends straight to the mule, and a mule waits on its own
//! mailbox, the shared one and its farms'. Waits release the GIL; a mule that waits with
//! `signals=True` runs its pending uWSGI signals in between.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyModule};

use crate::sys;

/// One mailbox: messages sent on `send` are read on `receive`.
pub struct Mailbox {
    send: OwnedFd,
    receive: OwnedFd,
}

impl Mailbox {
    fn new() -> std::io::Result<Self> {
        let (send, receive) = sys::fd::datagram_pair()?;
        Ok(Mailbox { send, receive })
    }
}

struct Mules {
    /// Mule N's mailbox at N - 1.
    own: Vec<Mailbox>,
    shared: Mailbox,
    farms: Vec<(String, Vec<u32>, Mailbox)>,
    msg_size: usize,
    /// Per mule, when it started handling its current message (Unix µs; 0: waiting), for
    /// `mule-harakiri`. Shared with the master.
    busy: crate::sys::shm::SharedWords,
}

static MULES: OnceLock<Mules> = OnceLock::new();
static MULE_ID: AtomicU32 = AtomicU32::new(0);

/// Called by the master before any fork: `count` mules, `farms` of mule ids.
pub fn create_mules(
    count: usize,
    farms: &[(String, Vec<u32>)],
    msg_size: usize,
) -> std::io::Result<()> {
    if count == 0 {
        return Ok(());
    }
    let mules = Mules {
        own: (0..count)
            .map(|_| Mailbox::new())
            .collect::<Result<_, _>>()?,
        shared: Mailbox::new()?,
        farms: farms
            .iter()
            .map(|(name, ids)| Ok((name.clone(), ids.clone(), Mailbox::new()?)))
            .collect::<std::io::Result<_>>()?,
        msg_size,
        busy: crate::sys::shm::SharedWords::new(count)?,
    };
    let _ = MULES.set(mules);
    Ok(())
}

/// Called in a mule after fork.
pub fn set_mule_id(id: u32) {
    MULE_ID.store(id, Ordering::Relaxed);
    super::signals::set_mule_signal_slot(id);
}

/// When mule `id` started handling its current message (Unix µs), 0 when it waits.
pub fn mule_busy_since(id: u32) -> u64 {
    MULES
        .get()
        .and_then(|mules| mules.busy.words().get((id as usize).wrapping_sub(1)))
        .map_or(0, |word| word.load(Ordering::Relaxed))
}

fn set_busy(id: u32, since_us: u64) {
    if let Some(word) = MULES
        .get()
        .and_then(|mules| mules.busy.words().get((id as usize).wrapping_sub(1)))
    {
        word.store(since_us, Ordering::Relaxed);
    }
}

pub(crate) fn current_mule_id() -> u32 {
    MULE_ID.load(Ordering::Relaxed)
}

fn mules() -> PyResult<&'static Mules> {
    MULES
        .get()
        .ok_or_else(|| PyValueError::new_err("no mule configured (add `mule =` or `mules = N`)"))
}

/// How long a sender waits for room in a full mailbox.
const SEND_TIMEOUT: Duration = Duration::from_secs(4);

fn send(mailbox: &Mailbox, message: &[u8]) -> bool {
    let deadline = Instant::now() + SEND_TIMEOUT;
    loop {
        match sys::fd::send(mailbox.send.as_fd(), message) {
            Ok(_) => return true,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero()
                    || !sys::poll::wait_one(mailbox.send.as_fd(), sys::poll::WRITABLE, left)
                        .unwrap_or(false)
                {
                    return false;
                }
            }
            Err(err) => {
                tracing::warn!("mule message not sent: {err}");
                return false;
            }
        }
    }
}

/// Sends `message` to mule `id`, or with 0 (or an id past the last mule) to whichever mule
/// reads first: a `mule:` alarm. False when there are no mules or the mailbox stayed full.
pub fn send_to_mule(id: u32, message: &[u8]) -> bool {
    let Some(mules) = MULES.get() else {
        return false;
    };
    let mailbox = (id as usize)
        .checked_sub(1)
        .and_then(|index| mules.own.get(index))
        .unwrap_or(&mules.shared);
    send(mailbox, message)
}

/// `uwsgi.mule_msg(message[, mule_id_or_farm])`: to mule N, to a farm, or (no target, or 0)
/// to whichever mule reads first. True when sent.
#[pyfunction]
#[pyo3(signature = (message, target = None))]
fn mule_msg(py: Python<'_>, message: &[u8], target: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
    let mules = mules()?;
    if message.len() > mules.msg_size {
        return Err(PyValueError::new_err(format!(
            "the message is larger than `mule-msg-size` ({} bytes)",
            mules.msg_size
        )));
    }
    let mailbox = match target {
        None => &mules.shared,
        Some(target) => {
            if let Ok(id) = target.extract::<u32>() {
                match id {
                    0 => &mules.shared,
                    id => mules
                        .own
                        .get(id as usize - 1)
                        .ok_or_else(|| PyValueError::new_err(format!("no mule {id}")))?,
                }
            } else {
                let name: String = target.extract()?;
                farm(mules, &name)?
            }
        }
    };
    Ok(py.detach(|| send(mailbox, message)))
}

fn farm<'a>(mules: &'a Mules, name: &str) -> PyResult<&'a Mailbox> {
    mules
        .farms
        .iter()
        .find(|(farm, _, _)| farm == name)
        .map(|(_, _, mailbox)| mailbox)
        .ok_or_else(|| PyValueError::new_err(format!("no farm `{name}`")))
}

/// `uwsgi.farm_msg(farm, message)`.
#[pyfunction]
fn farm_msg(py: Python<'_>, name: &str, message: &[u8]) -> PyResult<bool> {
    let mailbox = farm(mules()?, name)?;
    Ok(py.detach(|| send(mailbox, message)))
}

/// `uwsgi.in_farm([name])`: whether this mule belongs to the farm.
#[pyfunction]
#[pyo3(signature = (name = None))]
fn in_farm(name: Option<&str>) -> bool {
    let id = current_mule_id();
    MULES.get().is_some_and(|mules| {
        mules
            .farms
            .iter()
            .any(|(farm, ids, _)| name.is_none_or(|n| n == farm) && ids.contains(&id))
    })
}

/// The mailboxes this mule reads: its own and the shared one (unless `farms_only`), and its
/// farms' (if `farms`).
fn inboxes(
    mules: &'static Mules,
    id: u32,
    farms: bool,
    farms_only: bool,
) -> Vec<BorrowedFd<'static>> {
    let mut fds = Vec::new();
    if !farms_only {
        if let Some(own) = mules.own.get(id as usize - 1) {
            fds.push(own.receive.as_fd());
        }
        fds.push(mules.shared.receive.as_fd());
    }
    if farms || farms_only {
        fds.extend(
            mules
                .farms
                .iter()
                .filter(|(_, ids, _)| ids.contains(&id))
                .map(|(_, _, mailbox)| mailbox.receive.as_fd()),
        );
    }
    fds
}

/// Waits for a message (without the GIL), running pending uWSGI signals in between when
/// `signals`; None on timeout.
fn receive(
    py: Python<'_>,
    fds: &[BorrowedFd<'static>],
    buffer_size: usize,
    timeout: Option<Duration>,
    signals: bool,
) -> PyResult<Option<Vec<u8>>> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let slice = Duration::from_millis(200);
        let wait = deadline.map_or(slice, |d| {
            d.saturating_duration_since(Instant::now()).min(slice)
        });
        let got = py.detach(|| -> std::io::Result<Option<Vec<u8>>> {
            let polled: Vec<_> = fds.iter().map(|fd| (*fd, sys::poll::READABLE)).collect();
            let revents = sys::poll::poll(&polled, Some(wait))?;
            for (fd, revent) in fds.iter().zip(revents) {
                if revent == 0 {
                    continue;
                }
                let mut buf = vec![0u8; buffer_size.max(1)];
                match sys::fd::read(*fd, &mut buf) {
                    Ok(n) => {
                        buf.truncate(n);
                        return Ok(Some(buf));
                    }
                    // Another mule took it first (the shared mailbox).
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(err) => return Err(err),
                }
            }
            Ok(None)
        })?;
        if got.is_some() {
            return Ok(got);
        }
        if signals {
            super::signals::dispatch_pending();
        }
        py.check_signals()?;
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
    }
}

fn in_a_mule() -> PyResult<u32> {
    match current_mule_id() {
        0 => Err(PyValueError::new_err("this is not a mule")),
        id => Ok(id),
    }
}

/// `uwsgi.mule_get_msg([signals, farms, buffer_size, timeout])`: the next message for this
/// mule (bytes), or None after `timeout` seconds (-1: wait forever).
#[pyfunction]
#[pyo3(signature = (signals = true, farms = true, buffer_size = 65536, timeout = -1))]
fn mule_get_msg<'py>(
    py: Python<'py>,
    signals: bool,
    farms: bool,
    buffer_size: usize,
    timeout: i64,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let id = in_a_mule()?;
    let fds = inboxes(mules()?, id, farms, false);
    let timeout = (timeout >= 0).then(|| Duration::from_secs(timeout as u64));
    Ok(receive(py, &fds, buffer_size, timeout, signals)?.map(|m| PyBytes::new(py, &m)))
}

/// `uwsgi.farm_get_msg()`: the next message for one of this mule's farms, or None.
#[pyfunction]
fn farm_get_msg(py: Python<'_>) -> PyResult<Option<Bound<'_, PyBytes>>> {
    let id = in_a_mule()?;
    let mules = mules()?;
    let fds = inboxes(mules, id, true, true);
    let got = receive(py, &fds, mules.msg_size, Some(Duration::ZERO), false)?;
    Ok(got.map(|m| PyBytes::new(py, &m)))
}

/// What a mule without a script does: hands each message to `uwsgi.mule_msg_hook`.
pub fn run_mule_loop() -> ! {
    let id = current_mule_id();
    loop {
        let result = Python::attach(|py| -> PyResult<()> {
            let mules = mules()?;
            let fds = inboxes(mules, id, true, false);
            let Some(message) = receive(py, &fds, mules.msg_size, None, true)? else {
                return Ok(());
            };
            let hook = py
                .import("sys")?
                .getattr("modules")?
                .get_item("uwsgi")?
                .getattr("mule_msg_hook");
            match hook {
                Ok(hook) if hook.is_callable() => {
                    // On `CLOCK_MONOTONIC`: `mule-harakiri` must not fire on an NTP step.
                    let now_us = crate::sys::clock::monotonic_us();
                    set_busy(id, now_us.max(1));
                    let handled = hook.call1((PyBytes::new(py, &message),));
                    set_busy(id, 0);
                    handled?;
                }
                _ => tracing::warn!(
                    mule = id,
                    bytes = message.len(),
                    "mule message received, but no uwsgi.mule_msg_hook is set"
                ),
            }
            Ok(())
        });
        if let Err(err) = result {
            Python::attach(|py| {
                tracing::error!(
                    mule = id,
                    "the mule message handler raised:\n{}",
                    super::app::format_exception(py, &err)
                )
            });
        }
    }
}

/// Runs a mule's script as `__main__` (uWSGI's `mule = file.py`).
pub fn run_mule_script(path: &str) -> Result<(), String> {
    Python::attach(|py| {
        py.import("runpy")
            .and_then(|runpy| runpy.call_method1("run_path", (path, py.None(), "__main__")))
            .map(|_| ())
            .map_err(|err| super::app::format_exception(py, &err))
    })
}

pub(crate) fn add_to_module(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(mule_msg, module)?)?;
    module.add_function(wrap_pyfunction!(mule_get_msg, module)?)?;
    module.add_function(wrap_pyfunction!(farm_msg, module)?)?;
    module.add_function(wrap_pyfunction!(farm_get_msg, module)?)?;
    module.add_function(wrap_pyfunction!(in_farm, module)?)?;
    Ok(())
}
