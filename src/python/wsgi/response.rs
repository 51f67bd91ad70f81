//! Sending the app's response: the result iterable (a list or tuple with its length known,
//! an iterator chunk by chunk, a `wsgi.file_wrapper` over a regular file with `sendfile`),
//! each piece handed to the exchange (the GIL let go only if the exchange has to wait for the
//! client, or for a file or a large body), and the error answers (500, or
//! the 4xx the exchange names) when nothing was sent yet.

use pyo3::exceptions::{PyAssertionError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use super::exchange::{Outcome, RespondError, ResponseHead};
use super::file_wrapper::{regular_file, FileWrapper};
use super::state::{lock, Shared};

/// The name of `value`'s type, for error messages.
pub(super) fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Answers 500 if nothing was sent yet (or the 4xx the exchange names when the client's
/// request body was at fault); otherwise marks the connection for closing.
pub(super) fn internal_error(py: Python<'_>, state: &Shared, outcome: &mut Outcome) {
    outcome.app_error = true;
    let status: &[u8] = {
        let mut st = lock(state);
        if st.head_sent {
            outcome.aborted = true;
            return;
        }
        let status = st
            .exchange
            .as_ref()
            .and_then(|exchange| exchange.request_error_status())
            .unwrap_or(b"500 Internal Server Error");
        st.status.clear();
        st.status.extend_from_slice(status);
        st.has_status = true;
        st.headers.truncate(1);
        if st.headers.is_empty() {
            st.headers.push(Default::default());
        }
        let (name, value) = &mut st.headers[0];
        name.clear();
        name.extend_from_slice(b"Content-Type");
        value.clear();
        value.extend_from_slice(b"text/plain");
        st.header_count = 1;
        status
    };
    let body = &status[4..];
    if respond(py, state, body, true, Some(body.len() as u64)).is_err() {
        outcome.aborted = true;
    }
}

pub(super) enum SendError {
    /// The client went away; nothing more can be sent.
    Client,
    /// The app (or its iterable) failed.
    App(PyErr),
}

/// What one call into the exchange sends.
enum Payload<'a> {
    Bytes {
        body: &'a [u8],
        last: bool,
    },
    /// An open regular file's bytes (`wsgi.file_wrapper`), sent with sendfile.
    File {
        fd: std::os::fd::RawFd,
        offset: u64,
        count: u64,
    },
}

pub(super) fn respond(
    py: Python<'_>,
    state: &Shared,
    body: &[u8],
    last: bool,
    content_length: Option<u64>,
) -> Result<(), SendError> {
    deliver(py, state, Payload::Bytes { body, last }, content_length)
}

/// Sends response data through the exchange: bytes with the GIL held until the exchange
/// would wait, a file with it released.
fn deliver(
    py: Python<'_>,
    state: &Shared,
    payload: Payload<'_>,
    content_length: Option<u64>,
) -> Result<(), SendError> {
    // The status and header buffers travel with the exchange into the GIL-free call and
    // back, so that the thread's next request reuses them.
    let (exchange, head) = {
        let mut st = lock(state);
        let Some(exchange) = st.exchange.take() else {
            return Err(SendError::Client);
        };
        let head = if st.head_sent {
            None
        } else {
            // Once the head is out, `head_sent` refuses a second start_response, and a
            // refused head (`Invalid`) gets its status from the 500 path.
            if !st.has_status {
                st.exchange = Some(exchange);
                return Err(SendError::App(PyAssertionError::new_err(
                    "the app did not call start_response before returning a body",
                )));
            }
            st.has_status = false;
            st.head_sent = true;
            Some((
                std::mem::take(&mut st.status),
                std::mem::take(&mut st.headers),
                st.header_count,
            ))
        };
        (exchange, head)
    };
    let mut exchange = exchange;
    let result = {
        let head = head.as_ref().map(|(status, headers, count)| ResponseHead {
            status,
            headers: &headers[..*count],
            content_length,
        });
        match payload {
            // Most responses go out in one non-blocking write that completes at once: the
            // GIL is held through it and let go only if the exchange has to wait.
            Payload::Bytes { body, last } => {
                let mut gil = HeldGil::new(py);
                exchange.respond_unblocking(head, body, last, &mut || gil.release())
            }
            Payload::File { fd, offset, count } => {
                py.detach(|| exchange.send_file(head, fd, offset, count))
            }
        }
    };
    let mut st = lock(state);
    st.exchange = Some(exchange);
    if let Some((status, headers, _)) = head {
        st.status = status;
        st.headers = headers;
    }
    match result {
        Ok(()) => Ok(()),
        Err(RespondError::Io(_)) => Err(SendError::Client),
        Err(RespondError::Invalid(msg)) => {
            // The head was refused before anything was written: let the 500 path send one.
            st.head_sent = false;
            Err(SendError::App(PyValueError::new_err(msg)))
        }
    }
}

/// The GIL through one response write: held unless [`HeldGil::release`] is called (the
/// exchange is about to wait on the client), and then taken back when this is dropped.
struct HeldGil<'py> {
    saved: *mut pyo3::ffi::PyThreadState,
    _py: Python<'py>,
}

impl<'py> HeldGil<'py> {
    fn new(py: Python<'py>) -> Self {
        HeldGil {
            saved: std::ptr::null_mut(),
            _py: py,
        }
    }

    fn release(&mut self) {
        if self.saved.is_null() {
            // SAFETY: the `Python` token proves this thread holds the GIL, and `saved` is null,
            // so it has not been let go yet. Until `drop` takes it back, the only code that
            // runs on this thread is the exchange's socket writes and waits, which touch no
            // Python object (the body they send is a `bytes` the caller keeps a reference to,
            // and immutable).
            self.saved = unsafe { pyo3::ffi::PyEval_SaveThread() };
        }
    }
}

impl Drop for HeldGil<'_> {
    fn drop(&mut self) {
        if !self.saved.is_null() {
            // SAFETY: `saved` is this thread's state, from its `PyEval_SaveThread` above.
            unsafe { pyo3::ffi::PyEval_RestoreThread(self.saved) };
        }
    }
}

pub(super) fn send_result(
    py: Python<'_>,
    state: &Shared,
    result: &Bound<'_, PyAny>,
) -> Result<(), SendError> {
    if let Ok(wrapper) = result.cast::<FileWrapper>() {
        if let Some((fd, offset, count)) = regular_file(py, &wrapper.borrow().filelike) {
            return deliver(py, state, Payload::File { fd, offset, count }, Some(count));
        }
    }
    // A list or tuple (what most frameworks return) has a known length: send it with
    // Content-Length, in as few writes as possible.
    if let Ok(list) = result.cast_exact::<PyList>() {
        return send_sequence(py, state, list.len(), |i| list.get_item(i));
    }
    if let Ok(tuple) = result.cast_exact::<PyTuple>() {
        return send_sequence(py, state, tuple.len(), |i| tuple.get_item(i));
    }
    // PEP 3333: "the server should ... stop iterating over the response when enough data
    // has been sent" (the Content-Length the app declared). Then the last chunk goes out with
    // the head as one whole response, and no `next()` is spent to find the end (for Flask's
    // `ClosingIterator`, a Python call that raises StopIteration). Not for a generator: code
    // after its last `yield` would not run (closing it raises GeneratorExit there), and an
    // app written for uWSGI, which always iterates to the end, may rely on it.
    // SAFETY: PyGen_Check only reads the type of an object the caller holds a reference to.
    let stop_when_complete = unsafe { pyo3::ffi::PyGen_Check(result.as_ptr()) } == 0;
    let mut declared: Option<Option<u64>> = None;
    let mut sent: u64 = 0;
    let iterator = result.try_iter().map_err(SendError::App)?;
    for item in iterator {
        let item = item.map_err(SendError::App)?;
        let bytes = item
            .cast::<PyBytes>()
            .map_err(|_| SendError::App(not_bytes(&item)))?;
        let data = bytes.as_bytes();
        // PEP 3333: the head waits for the first non-empty chunk.
        if data.is_empty() {
            continue;
        }
        if stop_when_complete {
            sent += data.len() as u64;
            let declared = *declared.get_or_insert_with(|| declared_length(state));
            if declared == Some(sent) {
                return respond(py, state, data, true, None);
            }
        }
        respond(py, state, data, false, None)?;
    }
    respond(py, state, b"", true, None)
}

/// The Content-Length among the headers `start_response` gave, before the head is sent, read
/// as the worker reads it for the wire; none when it is invalid (the worker answers 500).
fn declared_length(state: &Shared) -> Option<u64> {
    let st = lock(state);
    if st.head_sent {
        return None;
    }
    let headers = st.headers[..st.header_count]
        .iter()
        .map(|(name, value)| (name.as_slice(), value.as_slice()));
    crate::protocol::response::content_length(headers)
        .ok()
        .flatten()
}

/// The items of a list or tuple, all bytes, with their total length as Content-Length.
fn send_sequence<'py>(
    py: Python<'py>,
    state: &Shared,
    count: usize,
    item: impl Fn(usize) -> PyResult<Bound<'py, PyAny>>,
) -> Result<(), SendError> {
    let mut total: u64 = 0;
    for index in 0..count {
        let item = item(index).map_err(SendError::App)?;
        let bytes = item
            .cast::<PyBytes>()
            .map_err(|_| SendError::App(not_bytes(&item)))?;
        total += bytes.as_bytes().len() as u64;
    }
    if count == 0 {
        return respond(py, state, b"", true, Some(0));
    }
    for index in 0..count {
        // A list another thread shortened meanwhile fails here like an app error, and the
        // connection closes short of its Content-Length.
        let item = item(index).map_err(SendError::App)?;
        let bytes = item
            .cast::<PyBytes>()
            .map_err(|_| SendError::App(not_bytes(&item)))?;
        respond(py, state, bytes.as_bytes(), index + 1 == count, Some(total))?;
    }
    Ok(())
}

pub(super) fn not_bytes(item: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!(
        "the response body must be an iterable of bytes, got an item of type {}",
        type_name(item)
    ))
}
