//! One WSGI request (PEP 3333): environ, `wsgi.input`, `start_response` with `exc_info`,
//! `write()`, result iteration with `close()` on every path, `wsgi.file_wrapper`.
//!
//! The GIL is released around every call into the [`Exchange`] (socket reads and writes),
//! so other request threads of the worker run while this one waits on the network.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::{PyAssertionError, PyOSError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use super::app::{format_exception, App};

/// The worker's side of one request: the request body and the response bytes.
pub trait Exchange: Send {
    /// Appends up to `max` bytes of the (decoded) request body to `out`; 0 at the end.
    fn read_body(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize>;
    /// Sends response data. `head` is `Some` until the head has been sent, i.e. on the
    /// first call; `last` marks the end of the body.
    fn respond(
        &mut self,
        head: Option<ResponseHead<'_>>,
        body: &[u8],
        last: bool,
    ) -> Result<(), RespondError>;
    /// Sends `count` bytes of the open regular file `fd`, from `offset`, as the whole body
    /// (`wsgi.file_wrapper` over a real file): `sendfile(2)` where the framing allows it.
    /// `head` is `Some` as in [`Exchange::respond`]; the response is complete afterwards.
    fn send_file(
        &mut self,
        head: Option<ResponseHead<'_>>,
        fd: std::os::fd::RawFd,
        offset: u64,
        count: u64,
    ) -> Result<(), RespondError>;
    /// The status line to answer with instead of a 500 when the app failed because the
    /// client sent a bad request body (`400 Bad Request`, `408 Request Timeout`).
    fn request_error_status(&self) -> Option<&'static [u8]> {
        None
    }
    /// Gives the concrete exchange back to the worker after the request.
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send>;
}

pub struct ResponseHead<'a> {
    pub status: &'a [u8],
    pub headers: &'a [(Vec<u8>, Vec<u8>)],
    /// The whole body's length when the driver knows it (a list result, or a single
    /// `respond` with `last`), so the worker can send Content-Length instead of chunking.
    pub content_length: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum RespondError {
    /// The client went away or timed out: stop producing the response.
    #[error("client connection failed")]
    Io(#[source] io::Error),
    /// The app produced something that cannot be sent (a bad status or header).
    #[error("{0}")]
    Invalid(String),
}

/// What happened to a request, for logging and for the connection's fate.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    /// The response was not completed: the connection must be closed.
    pub aborted: bool,
    /// The app raised (or produced an invalid response).
    pub app_error: bool,
}

/// Per-listener constants every environ starts from.
pub struct ListenerEnv {
    pub server_name: String,
    pub server_port: String,
    pub url_scheme: &'static str,
}

/// The CGI variables of one request plus connection facts.
pub struct RequestVars<'a> {
    pub listener: usize,
    pub vars: &'a mut dyn Iterator<Item = (&'a [u8], &'a [u8])>,
    /// REMOTE_ADDR/REMOTE_PORT for HTTP sockets (nginx sends them in uwsgi packets).
    pub remote: Option<(&'a str, &'a str)>,
}

struct State {
    exchange: Option<Box<dyn Exchange>>,
    status: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    head_sent: bool,
    input: Vec<u8>,
    input_pos: usize,
    input_eof: bool,
    /// `disable-write-exception`: `write()` returns quietly once the client is gone.
    quiet_write: bool,
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    // A panic while holding this lock would already have aborted the worker (panic=abort
    // in release); in debug builds take the data anyway rather than cascade.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The runner a worker builds once after fork and shares between its request threads.
pub struct WsgiRunner {
    app: Py<PyAny>,
    /// `mount`: (mountpoint, app); the request's SCRIPT_NAME picks one, else `app`.
    mounts: Vec<(String, Py<PyAny>)>,
    /// `manage-script-name`: the longest mountpoint that starts PATH_INFO moves into
    /// SCRIPT_NAME first.
    manage_script_name: bool,
    bases: Vec<Py<PyDict>>,
    /// Environ keys already made into interned Python strings (see `environ_keys`).
    keys: super::environ_keys::EnvironKeys,
    quiet_write: bool,
}

/// PEP 3333: environ strings are "bytes as latin-1", one char per byte. One C-API call,
/// which copies ASCII (nearly every value) straight into a compact string.
fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    // SAFETY: the pointer and length describe `bytes`, which outlives the call; with the GIL
    // held (`py`), PyUnicode_DecodeLatin1 returns a new reference or NULL with an exception
    // set, and latin-1 decoding fails only when memory runs out.
    unsafe {
        let raw = pyo3::ffi::PyUnicode_DecodeLatin1(
            bytes.as_ptr().cast(),
            bytes.len() as pyo3::ffi::Py_ssize_t,
            std::ptr::null(),
        );
        Bound::from_owned_ptr_or_err(py, raw)
            .expect("latin-1 decoding cannot fail but for memory")
            .cast_into_unchecked()
    }
}

fn to_latin1(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    let s = value.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!("{what} must be a str, not {}", type_name(value)))
    })?;
    let s = s.to_cow()?;
    if s.is_ascii() {
        return Ok(s.as_bytes().to_vec());
    }
    s.chars()
        .map(|c| {
            u8::try_from(u32::from(c))
                .map_err(|_| PyValueError::new_err(format!("{what} is not latin-1: {s:?}")))
        })
        .collect()
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// The exchange, once every use of it has ended. The request's own thread always puts it
/// back, but a thread the app started may still be inside `write()` or `wsgi.input.read()`
/// (an app bug, yet no reason to abort the worker): each such call is bounded by the
/// exchange's timeouts, so this waits for it, without the GIL.
fn take_back(state: &Shared) -> Box<dyn Exchange> {
    let mut warned = false;
    loop {
        if let Some(exchange) = lock(state).exchange.take() {
            return exchange;
        }
        if !warned {
            warned = true;
            tracing::warn!(
                "the request ended while another thread of the app still wrote or read its connection; waiting for that call to finish"
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

impl WsgiRunner {
    pub fn new(
        app: &App,
        listeners: &[ListenerEnv],
        multithread: bool,
        multiprocess: bool,
    ) -> PyResult<Self> {
        Python::attach(|py| {
            let sys = py.import("sys")?;
            let errors = sys.getattr("stderr")?;
            let file_wrapper = py.get_type::<FileWrapper>();
            let version = PyTuple::new(py, [1, 0])?;
            let mut bases = Vec::with_capacity(listeners.len());
            for listener in listeners {
                let base = PyDict::new(py);
                base.set_item("SCRIPT_NAME", "")?;
                base.set_item("SERVER_NAME", listener.server_name.as_str())?;
                base.set_item("SERVER_PORT", listener.server_port.as_str())?;
                base.set_item("SERVER_PROTOCOL", "HTTP/1.0")?;
                base.set_item("wsgi.version", &version)?;
                base.set_item("wsgi.url_scheme", listener.url_scheme)?;
                base.set_item("wsgi.errors", &errors)?;
                base.set_item("wsgi.multithread", multithread)?;
                base.set_item("wsgi.multiprocess", multiprocess)?;
                base.set_item("wsgi.run_once", false)?;
                base.set_item("wsgi.file_wrapper", &file_wrapper)?;
                base.set_item("wsgi.input_terminated", true)?;
                bases.push(base.unbind());
            }
            Ok(WsgiRunner {
                app: app.callable.clone_ref(py),
                mounts: app
                    .mounts
                    .iter()
                    .map(|(point, callable)| (point.clone(), callable.clone_ref(py)))
                    .collect(),
                manage_script_name: false,
                bases,
                keys: Default::default(),
                quiet_write: false,
            })
        })
    }

    /// `manage-script-name` (see the field).
    pub fn manage_script_name(mut self, on: bool) -> Self {
        self.manage_script_name = on;
        self
    }

    /// The app for this request: with mounts, the one whose mountpoint is SCRIPT_NAME (after
    /// `manage-script-name` moved the longest matching mountpoint there from PATH_INFO).
    fn route<'a>(&'a self, environ: &Bound<'_, PyDict>) -> PyResult<&'a Py<PyAny>> {
        if self.mounts.is_empty() {
            return Ok(&self.app);
        }
        let text = |key: &str| -> PyResult<String> {
            match environ.get_item(key)? {
                Some(value) => value.extract(),
                None => Ok(String::new()),
            }
        };
        let mut script_name = text("SCRIPT_NAME")?;
        if self.manage_script_name {
            let path_info = text("PATH_INFO")?;
            let points = self.mounts.iter().map(|(point, _)| point.as_str());
            if let Some(point) = mount_for(points, &path_info) {
                environ.set_item("SCRIPT_NAME", point)?;
                environ.set_item("PATH_INFO", &path_info[point.len()..])?;
                script_name = point.to_string();
            }
        }
        Ok(self
            .mounts
            .iter()
            .find(|(point, _)| *point == script_name)
            .map_or(&self.app, |(_, app)| app))
    }

    /// `disable-write-exception`: the `write()` callable does not raise when the client has
    /// gone away (the rest of the response is dropped, as it is anyway).
    /// `wsgi-disable-file-wrapper`: the environ has no `wsgi.file_wrapper`.
    pub fn without_file_wrapper(self, disable: bool) -> Self {
        if disable {
            Python::attach(|py| {
                for base in &self.bases {
                    let _ = base.bind(py).del_item("wsgi.file_wrapper");
                }
            });
        }
        self
    }

    pub fn quiet_write_errors(mut self, quiet: bool) -> Self {
        self.quiet_write = quiet;
        self
    }

    /// Runs one request to completion. Always gives the exchange back.
    pub fn run(
        &self,
        request: RequestVars<'_>,
        exchange: Box<dyn Exchange>,
    ) -> (Box<dyn Exchange>, Outcome) {
        let state: Shared = Arc::new(Mutex::new(State {
            exchange: Some(exchange),
            status: None,
            headers: Vec::new(),
            head_sent: false,
            input: Vec::new(),
            input_pos: 0,
            input_eof: false,
            quiet_write: self.quiet_write,
        }));
        let outcome = Python::attach(|py| self.run_attached(py, request, &state));
        (take_back(&state), outcome)
    }

    fn run_attached(&self, py: Python<'_>, request: RequestVars<'_>, state: &Shared) -> Outcome {
        let mut outcome = Outcome::default();
        let environ = match self.build_environ(py, request, state) {
            Ok(environ) => environ,
            Err(err) => return server_error(py, state, "building the WSGI environ", &err),
        };
        let start_response = match Py::new(
            py,
            StartResponse {
                state: state.clone(),
            },
        ) {
            Ok(sr) => sr,
            Err(err) => return server_error(py, state, "creating start_response", &err),
        };
        let app = match self.route(&environ) {
            Ok(app) => app,
            Err(err) => return server_error(py, state, "choosing the mounted app", &err),
        };
        let result = match app.bind(py).call1((&environ, start_response)) {
            Ok(result) => result,
            Err(err) => {
                report_app_error(py, &environ, &err);
                outcome.app_error = true;
                if lock(state).head_sent {
                    outcome.aborted = true;
                } else {
                    internal_error(py, state, &mut outcome);
                }
                return outcome;
            }
        };
        let sent = send_result(py, state, &result);
        // PEP 3333: close() must be called on every path, whether iteration finished,
        // failed, or the client went away.
        // A list or tuple has no close(); asking would raise and format an AttributeError
        // on every request.
        let plain =
            result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>();
        let closed = match if plain {
            Ok(None)
        } else {
            result.getattr_opt(intern!(py, "close"))
        } {
            Ok(Some(close)) => close.call0().map(|_| ()),
            Ok(None) => Ok(()),
            Err(err) => Err(err),
        };
        match sent {
            Ok(()) => {}
            Err(SendError::Client) => outcome.aborted = true,
            Err(SendError::App(err)) => {
                report_app_error(py, &environ, &err);
                outcome.app_error = true;
                if lock(state).head_sent {
                    outcome.aborted = true;
                } else {
                    internal_error(py, state, &mut outcome);
                }
            }
        }
        if let Err(err) = closed {
            report_app_error(py, &environ, &err);
            outcome.app_error = true;
        }
        outcome
    }

    fn build_environ<'py>(
        &self,
        py: Python<'py>,
        request: RequestVars<'_>,
        state: &Shared,
    ) -> PyResult<Bound<'py, PyDict>> {
        let environ = self.bases[request.listener].bind(py).copy()?;
        let mut scheme_override: Option<&'static str> = None;
        let mut keys = self.keys.lock();
        for (key, value) in request.vars {
            match key {
                b"UWSGI_SCHEME" => {
                    scheme_override = Some(if value == b"https" { "https" } else { "http" })
                }
                b"HTTPS"
                    if scheme_override.is_none()
                        && (value.eq_ignore_ascii_case(b"on") || value == b"1") =>
                {
                    scheme_override = Some("https")
                }
                // nginx's `uwsgi_pass_request_headers` also sends the Content-Length and
                // Content-Type headers as HTTP_*; PEP 3333 (after CGI, RFC 3875 §4.1.18)
                // has them only unprefixed, and `wsgiref.validate` rejects the copies.
                b"HTTP_CONTENT_LENGTH" | b"HTTP_CONTENT_TYPE" => continue,
                _ => {}
            }
            environ.set_item(keys.key(py, key, latin1), latin1(py, value))?;
        }
        drop(keys);
        if let Some(scheme) = scheme_override {
            environ.set_item(intern!(py, "wsgi.url_scheme"), scheme)?;
        }
        if let Some((addr, port)) = request.remote {
            environ.set_item(intern!(py, "REMOTE_ADDR"), addr)?;
            environ.set_item(intern!(py, "REMOTE_PORT"), port)?;
        }
        environ.set_item(
            intern!(py, "wsgi.input"),
            Py::new(
                py,
                Input {
                    state: state.clone(),
                },
            )?,
        )?;
        Ok(environ)
    }
}

/// The longest mountpoint that starts `path` at a segment boundary (`/app` takes `/app` and
/// `/app/x`, not `/apple`); the empty mountpoint (the root app) never does.
fn mount_for<'a>(points: impl Iterator<Item = &'a str>, path: &str) -> Option<&'a str> {
    points
        .filter(|point| {
            !point.is_empty()
                && path.starts_with(point)
                && matches!(path.as_bytes().get(point.len()), None | Some(b'/'))
        })
        .max_by_key(|point| point.len())
}

fn report_app_error(py: Python<'_>, environ: &Bound<'_, PyDict>, err: &PyErr) {
    let method = environ
        .get_item("REQUEST_METHOD")
        .ok()
        .flatten()
        .map(|v| v.to_string())
        .unwrap_or_default();
    let uri = environ
        .get_item("REQUEST_URI")
        .ok()
        .flatten()
        .or_else(|| environ.get_item("PATH_INFO").ok().flatten())
        .map(|v| v.to_string())
        .unwrap_or_default();
    tracing::error!(%method, %uri, "the app raised an exception\n{}", format_exception(py, err));
}

/// Answers 500 if nothing was sent yet (or the 4xx the exchange names when the client's
/// request body was at fault); otherwise marks the connection for closing.
/// A failure of kaiser's own Python calls before the app runs: logged, and a 500.
fn server_error(py: Python<'_>, state: &Shared, what: &str, err: &PyErr) -> Outcome {
    tracing::error!("{what} failed: {}", format_exception(py, err));
    let mut outcome = Outcome::default();
    internal_error(py, state, &mut outcome);
    outcome
}

fn internal_error(py: Python<'_>, state: &Shared, outcome: &mut Outcome) {
    outcome.app_error = true;
    let headers = vec![(b"Content-Type".to_vec(), b"text/plain".to_vec())];
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
        st.status = Some(status.to_vec());
        st.headers = headers;
        status
    };
    let body = &status[4..];
    if respond(py, state, body, true, Some(body.len() as u64)).is_err() {
        outcome.aborted = true;
    }
}

enum SendError {
    /// The client went away; nothing more can be sent.
    Client,
    /// The app (or its iterable) failed.
    App(PyErr),
}

/// Sends response bytes through the exchange with the GIL released.
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

fn respond(
    py: Python<'_>,
    state: &Shared,
    body: &[u8],
    last: bool,
    content_length: Option<u64>,
) -> Result<(), SendError> {
    deliver(py, state, Payload::Bytes { body, last }, content_length)
}

/// Sends response data through the exchange with the GIL released.
fn deliver(
    py: Python<'_>,
    state: &Shared,
    payload: Payload<'_>,
    content_length: Option<u64>,
) -> Result<(), SendError> {
    let (mut exchange, head) = {
        let mut st = lock(state);
        let Some(exchange) = st.exchange.take() else {
            return Err(SendError::Client);
        };
        let head = if st.head_sent {
            None
        } else {
            // Taken, not copied: once the head is out, `head_sent` refuses a second
            // start_response, and a refused head (`Invalid`) gets its status from the 500 path.
            let Some(status) = st.status.take() else {
                st.exchange = Some(exchange);
                return Err(SendError::App(PyAssertionError::new_err(
                    "the app did not call start_response before returning a body",
                )));
            };
            st.head_sent = true;
            Some((status, std::mem::take(&mut st.headers)))
        };
        (exchange, head)
    };
    let (exchange, result) = py.detach(move || {
        let head = head.as_ref().map(|(status, headers)| ResponseHead {
            status,
            headers,
            content_length,
        });
        let result = match payload {
            Payload::Bytes { body, last } => exchange.respond(head, body, last),
            Payload::File { fd, offset, count } => exchange.send_file(head, fd, offset, count),
        };
        (exchange, result)
    });
    lock(state).exchange = Some(exchange);
    match result {
        Ok(()) => Ok(()),
        Err(RespondError::Io(_)) => Err(SendError::Client),
        Err(RespondError::Invalid(msg)) => {
            // The head was refused before anything was written: let the 500 path send one.
            lock(state).head_sent = false;
            Err(SendError::App(PyValueError::new_err(msg)))
        }
    }
}

fn send_result(py: Python<'_>, state: &Shared, result: &Bound<'_, PyAny>) -> Result<(), SendError> {
    if let Ok(wrapper) = result.cast::<FileWrapper>() {
        if let Some((fd, offset, count)) = regular_file(py, &wrapper.borrow().filelike) {
            return deliver(py, state, Payload::File { fd, offset, count }, Some(count));
        }
    }
    // A list or tuple (what most frameworks return) has a known length: send it with
    // Content-Length, in as few writes as possible.
    if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
        let items: Vec<Bound<'_, PyAny>> = result
            .try_iter()
            .map_err(SendError::App)?
            .collect::<PyResult<_>>()
            .map_err(SendError::App)?;
        let mut total: u64 = 0;
        for item in &items {
            let bytes = item
                .cast::<PyBytes>()
                .map_err(|_| SendError::App(not_bytes(item)))?;
            total += bytes.as_bytes().len() as u64;
        }
        let count = items.len();
        if count == 0 {
            return respond(py, state, b"", true, Some(0));
        }
        for (index, item) in items.iter().enumerate() {
            let bytes = item
                .cast::<PyBytes>()
                .map_err(|_| SendError::App(not_bytes(item)))?;
            respond(py, state, bytes.as_bytes(), index + 1 == count, Some(total))?;
        }
        return Ok(());
    }
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
        respond(py, state, data, false, None)?;
    }
    respond(py, state, b"", true, None)
}

fn not_bytes(item: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!(
        "the response body must be an iterable of bytes, got an item of type {}",
        type_name(item)
    ))
}

/// `start_response(status, response_headers, exc_info=None)`.
#[pyclass(module = "kaiser")]
struct StartResponse {
    state: Shared,
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__(
        &self,
        py: Python<'_>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<Write>> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        {
            let st = lock(&self.state);
            if let Some(exc_info) = exc_info {
                if st.head_sent {
                    // PEP 3333: re-raise the original exception once headers are out.
                    let value = exc_info.get_item(1)?;
                    return Err(PyErr::from_value(value));
                }
            } else if st.status.is_some() || st.head_sent {
                return Err(PyAssertionError::new_err(
                    "start_response called a second time without exc_info",
                ));
            }
        }
        let status = to_latin1(status, "status")?;
        let mut parsed = Vec::new();
        let list = headers.cast::<PyList>().map_err(|_| {
            PyTypeError::new_err(format!(
                "response_headers must be a list, not {}",
                type_name(headers)
            ))
        })?;
        for header in list.iter() {
            let tuple = header.cast::<PyTuple>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "each header must be a (name, value) tuple, not {}",
                    type_name(&header)
                ))
            })?;
            if tuple.len() != 2 {
                return Err(PyTypeError::new_err(
                    "each header must be a (name, value) tuple of length 2",
                ));
            }
            let name = to_latin1(&tuple.get_item(0)?, "header name")?;
            let value = to_latin1(&tuple.get_item(1)?, "header value")?;
            parsed.push((name, value));
        }
        let mut st = lock(&self.state);
        st.status = Some(status);
        st.headers = parsed;
        drop(st);
        Py::new(
            py,
            Write {
                state: self.state.clone(),
            },
        )
    }
}

/// The `write(data)` callable returned by `start_response`.
#[pyclass(module = "kaiser")]
struct Write {
    state: Shared,
}

#[pymethods]
impl Write {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = data.cast::<PyBytes>().map_err(|_| not_bytes(data))?;
        match respond(py, &self.state, bytes.as_bytes(), false, None) {
            Ok(()) => Ok(()),
            Err(SendError::Client) if lock(&self.state).quiet_write => Ok(()),
            Err(SendError::Client) => Err(PyOSError::new_err("client connection closed")),
            Err(SendError::App(err)) => Err(err),
        }
    }
}

/// `wsgi.input`: the request body, bounded by CONTENT_LENGTH, chunked bodies decoded.
#[pyclass(module = "kaiser")]
struct Input {
    state: Shared,
}

const READ_CHUNK: usize = 64 * 1024;

impl Input {
    /// Reads more body bytes into the buffer with the GIL released. Returns false at EOF.
    fn fill(&self, py: Python<'_>, want: usize) -> PyResult<bool> {
        // The buffer travels into the GIL-free read and back, so body bytes are copied once
        // from the socket into it, and once more into the `bytes` the app gets.
        let (mut exchange, mut buffer) = {
            let mut st = lock(&self.state);
            if st.input_eof {
                return Ok(false);
            }
            let Some(exchange) = st.exchange.take() else {
                return Ok(false);
            };
            let position = st.input_pos;
            st.input.drain(..position);
            st.input_pos = 0;
            (exchange, std::mem::take(&mut st.input))
        };
        let want = want.clamp(1, READ_CHUNK);
        let (exchange, buffer, result) = py.detach(move || {
            let result = exchange.read_body(&mut buffer, want);
            (exchange, buffer, result)
        });
        let mut st = lock(&self.state);
        st.exchange = Some(exchange);
        st.input = buffer;
        match result {
            Ok(0) => {
                st.input_eof = true;
                Ok(false)
            }
            Ok(_) => Ok(true),
            Err(err) => {
                st.input_eof = true;
                Err(PyOSError::new_err(format!(
                    "error reading the request body: {err}"
                )))
            }
        }
    }

    fn available(&self) -> usize {
        let st = lock(&self.state);
        st.input.len() - st.input_pos
    }

    fn take<'py>(&self, py: Python<'py>, count: usize) -> Bound<'py, PyBytes> {
        let mut st = lock(&self.state);
        let start = st.input_pos;
        let end = (start + count).min(st.input.len());
        let bytes = PyBytes::new(py, &st.input[start..end]);
        st.input_pos = end;
        bytes
    }
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size=-1))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let size = size.unwrap_or(-1);
        if size < 0 {
            while self.fill(py, READ_CHUNK)? {}
            let available = self.available();
            return Ok(self.take(py, available));
        }
        let size = size as usize;
        while self.available() < size {
            let missing = size - self.available();
            if !self.fill(py, missing)? {
                break;
            }
        }
        Ok(self.take(py, size))
    }

    #[pyo3(signature = (size=-1))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let limit = match size {
            Some(s) if s >= 0 => s as usize,
            _ => usize::MAX,
        };
        let mut scanned = 0;
        loop {
            let found = {
                let st = lock(&self.state);
                let window = &st.input[st.input_pos..];
                let upto = window.len().min(limit);
                window[scanned.min(upto)..upto]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map(|i| scanned.min(upto) + i + 1)
            };
            if let Some(end) = found {
                return Ok(self.take(py, end));
            }
            let available = self.available();
            if available >= limit {
                return Ok(self.take(py, limit));
            }
            scanned = available;
            if !self.fill(py, 8192)? {
                return Ok(self.take(py, available));
            }
        }
    }

    #[pyo3(signature = (hint=-1))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let hint = hint.unwrap_or(-1);
        let lines = PyList::empty(py);
        let mut total = 0usize;
        loop {
            let line = self.readline(py, None)?;
            let len = line.as_bytes().len();
            if len == 0 {
                break;
            }
            total += len;
            lines.append(line)?;
            if hint > 0 && total >= hint as usize {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.readline(py, None)?;
        Ok(if line.as_bytes().is_empty() {
            None
        } else {
            Some(line)
        })
    }
}

/// The fd, current position and remaining length of a file-like object backed by a regular
/// file, or `None` (a pipe, a BytesIO, anything without `fileno`) to iterate it instead.
fn regular_file(py: Python<'_>, filelike: &Py<PyAny>) -> Option<(std::os::fd::RawFd, u64, u64)> {
    let filelike = filelike.bind(py);
    let fd: i32 = filelike
        .call_method0(intern!(py, "fileno"))
        .ok()?
        .extract()
        .ok()?;
    let offset: u64 = filelike
        .call_method0(intern!(py, "tell"))
        .ok()?
        .extract()
        .ok()?;
    let stat = py.import("os").ok()?.call_method1("fstat", (fd,)).ok()?;
    let mode: u32 = stat.getattr("st_mode").ok()?.extract().ok()?;
    if mode & 0o170000 != 0o100000 {
        return None;
    }
    let size: u64 = stat.getattr("st_size").ok()?.extract().ok()?;
    Some((fd, offset, size.saturating_sub(offset)))
}

/// `wsgi.file_wrapper(filelike, blksize=8192)`: an iterable over the file in blocks that
/// closes it with the response.
#[pyclass(module = "kaiser")]
struct FileWrapper {
    filelike: Py<PyAny>,
    blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize=8192))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> Self {
        FileWrapper {
            filelike,
            blksize: blksize.max(1),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let block = self
            .filelike
            .bind(py)
            .call_method1(intern!(py, "read"), (self.blksize,))?;
        if block.len().unwrap_or(0) == 0 {
            return Ok(None);
        }
        Ok(Some(block))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(close) = self.filelike.bind(py).getattr_opt(intern!(py, "close"))? {
            close.call0()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::mount_for;

    #[test]
    fn the_longest_mountpoint_at_a_segment_boundary_wins() {
        let points = ["/app", "/app/admin", "/apple", ""];
        let cases = [
            ("/app", Some("/app")),
            ("/app/", Some("/app")),
            ("/app/x", Some("/app")),
            ("/app/admin/users", Some("/app/admin")),
            ("/app/administrator", Some("/app")),
            ("/apple/pie", Some("/apple")),
            ("/ap", None),
            ("/", None),
            ("", None),
            ("/other/app", None),
        ];
        for (path, expected) in cases {
            assert_eq!(
                mount_for(points.iter().copied(), path),
                expected,
                "{path:?}"
            );
        }
    }
}
