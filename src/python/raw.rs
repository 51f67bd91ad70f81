//! uWSGI's raw mode on the Python side (`python-raw`, uWSGI's `plugins/python/raw.c`): the
//! callable of a Python file, called with a `raw-socket` connection's fd as its only argument.
//! What it returns is written to the connection: bytes (or a bytearray or memoryview) as they
//! are; an int, or an object with `fileno()`, as the whole file behind that fd (sendfile from
//! its start); `None` as nothing; anything else is iterated and each item sent by the same
//! rules. The app may also read and write the fd itself, before returning or while its
//! iterable is consumed; `uwsgi.connection_fd()` gives the same fd while the handler runs.
//!
//! It writes through a [`RawConnection`] the worker implements, with the GIL released, and
//! does no socket I/O of its own; it knows nothing of HTTP or of when the connection closes.

use std::io;
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyInt, PyMemoryView};

use super::app::{format_exception, load_one, LoadAppError};

/// Where the raw handler's result goes: the connection, written with the GIL released.
pub trait RawConnection: Send {
    /// Writes all of `data`.
    fn write_all(&mut self, data: &[u8]) -> io::Result<()>;
    /// Sends the whole file behind `fd`, from its start.
    fn send_file(&mut self, fd: RawFd) -> io::Result<()>;
}

/// How a raw connection's handler ended.
#[derive(Debug, Default, Clone, Copy)]
pub struct RawOutcome {
    /// The handler (or its iterable) raised, or gave something that cannot be sent.
    pub app_error: bool,
    /// A write failed or timed out: the client is gone or too slow.
    pub client_gone: bool,
}

/// The loaded `python-raw` callable, shared by a worker's request threads.
#[derive(Clone)]
pub struct RawHandler {
    callable: Arc<Py<PyAny>>,
    /// `file.py:application`, for logs.
    pub description: String,
}

/// Imports `python-raw`'s file (as uWSGI does, under the mangled `uwsgi_file_…` name) and
/// takes its `callable`.
pub(super) fn load(
    py: Python<'_>,
    file: &Path,
    callable: &str,
) -> Result<(Py<PyAny>, String), LoadAppError> {
    load_one(py, Some(file), None, callable)
}

impl RawHandler {
    pub(super) fn new(callable: Py<PyAny>, description: String) -> Self {
        RawHandler {
            callable: Arc::new(callable),
            description,
        }
    }

    /// Calls the handler with the connection's `fd` and sends what it returns to `conn`.
    pub fn run(&self, fd: RawFd, conn: &mut dyn RawConnection) -> RawOutcome {
        CONNECTION_FD.with(|current| current.set(Some(fd)));
        let outcome = self.run_attached(fd, conn);
        CONNECTION_FD.with(|current| current.set(None));
        outcome
    }

    fn run_attached(&self, fd: RawFd, conn: &mut dyn RawConnection) -> RawOutcome {
        Python::attach(|py| {
            let mut outcome = RawOutcome::default();
            let sent = self
                .callable
                .bind(py)
                .call1((fd,))
                .map_err(Failure::App)
                .and_then(|result| send_result(py, &result, conn));
            match sent {
                Ok(()) => {}
                Err(Failure::Client(err)) => {
                    tracing::debug!(error = %err, "raw connection: writing the handler's result failed");
                    outcome.client_gone = true;
                }
                Err(Failure::App(err)) => {
                    tracing::error!(
                        handler = %self.description,
                        "the python-raw handler raised an exception\n{}",
                        format_exception(py, &err)
                    );
                    outcome.app_error = true;
                }
            }
            outcome
        })
    }
}

thread_local! {
    /// The raw connection this thread's handler is serving, for `uwsgi.connection_fd()`.
    static CONNECTION_FD: std::cell::Cell<Option<RawFd>> = const { std::cell::Cell::new(None) };
}

/// `uwsgi.connection_fd()`: the fd of the raw connection being served. A WSGI request's
/// connection is not handed out: kaiser reads its body and frames its response itself, and
/// bytes written past it would corrupt both.
#[pyfunction]
fn connection_fd() -> PyResult<RawFd> {
    CONNECTION_FD
        .with(|current| current.get())
        .ok_or_else(|| {
            pyo3::exceptions::PyOSError::new_err(
                "uwsgi.connection_fd() is available in python-raw handlers only: kaiser reads and writes a WSGI request's connection itself",
            )
        })
}

pub(super) fn add_to_module(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(connection_fd, module)?)
}

enum Failure {
    App(PyErr),
    Client(io::Error),
}

fn send_result(
    py: Python<'_>,
    result: &Bound<'_, PyAny>,
    conn: &mut dyn RawConnection,
) -> Result<(), Failure> {
    if result.is_none() || send_piece(py, result, conn)? {
        return Ok(());
    }
    let items = result.try_iter().map_err(|_| not_sendable(result))?;
    for item in items {
        let item = item.map_err(Failure::App)?;
        if !send_piece(py, &item, conn)? {
            return Err(not_sendable(&item));
        }
    }
    Ok(())
}

/// Sends `piece` if it is bytes-like, an fd or a file; `false` when it is none of them.
fn send_piece(
    py: Python<'_>,
    piece: &Bound<'_, PyAny>,
    conn: &mut dyn RawConnection,
) -> Result<bool, Failure> {
    if let Ok(bytes) = piece.cast::<PyBytes>() {
        let data = bytes.as_bytes();
        py.detach(|| conn.write_all(data))
            .map_err(Failure::Client)?;
        return Ok(true);
    }
    if piece.is_instance_of::<PyByteArray>() || piece.is_instance_of::<PyMemoryView>() {
        // A copy: the app could resize a bytearray while the GIL is released.
        let data: Vec<u8> = py
            .get_type::<PyBytes>()
            .call1((piece,))
            .and_then(|b| b.extract())
            .map_err(Failure::App)?;
        py.detach(|| conn.write_all(&data))
            .map_err(Failure::Client)?;
        return Ok(true);
    }
    let fd = if piece.is_instance_of::<PyInt>() && !piece.is_instance_of::<PyBool>() {
        Some(piece.extract::<RawFd>().map_err(Failure::App)?)
    } else if piece.hasattr("fileno").map_err(Failure::App)? {
        Some(
            piece
                .call_method0("fileno")
                .and_then(|fd| fd.extract::<RawFd>())
                .map_err(Failure::App)?,
        )
    } else {
        None
    };
    match fd {
        Some(fd) => {
            // The object (and so its fd) stays alive: `piece` is held across the call.
            py.detach(|| conn.send_file(fd)).map_err(Failure::Client)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

fn not_sendable(value: &Bound<'_, PyAny>) -> Failure {
    let type_name = value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    Failure::App(pyo3::exceptions::PyTypeError::new_err(format!(
        "the python-raw handler gave a `{type_name}`: it may return bytes, a file (or fd), None, or an iterable of bytes and files"
    )))
}
