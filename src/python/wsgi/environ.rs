//! The WSGI environ (PEP 3333): a per-listener template of the constant keys, copied for
//! each request and completed with the request's CGI variables (names interned once per
//! worker, see [`super::environ_keys`]; values latin-1), the client's address and
//! `wsgi.input`.
//!
//! It must not interpret the variables beyond what PEP 3333 and uWSGI's scheme overrides ask.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use super::environ_keys::EnvironKeys;
use super::file_wrapper::FileWrapper;

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

/// The per-listener templates and the worker's interned names.
pub(super) struct Environs {
    bases: Vec<Py<PyDict>>,
    /// Environ keys already made into interned Python strings (see `environ_keys`).
    keys: EnvironKeys,
}

/// PEP 3333: environ strings are "bytes as latin-1", one char per byte. One C-API call,
/// which copies ASCII (nearly every value) straight into a compact string.
pub(super) fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
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

/// How many keys an environ has room for before it grows: the template's 12, a request's
/// CGI variables (a browser's request has 15–25) and REMOTE_ADDR/PORT and `wsgi.input`. The
/// template is made this large, and a copy of a dict keeps its table, so a request's keys go
/// in without the resize (rehashing every key) that a copy of a 12-key dict needs at its 22nd.
const ENVIRON_CAPACITY: isize = 40;

extern "C" {
    // CPython's own presized constructor (exported, and what Cython's generated code uses);
    // pyo3-ffi leaves the private names out.
    fn _PyDict_NewPresized(minused: pyo3::ffi::Py_ssize_t) -> *mut pyo3::ffi::PyObject;
}

/// `environ[key] = value`, straight through the C API (pyo3's `set_item` converts and
/// re-counts references first: a tenth of the environ's cost).
fn store(
    environ: &Bound<'_, PyDict>,
    key: &Bound<'_, PyString>,
    value: &Bound<'_, PyAny>,
) -> PyResult<()> {
    // SAFETY: attached (the bounds); three live objects; PyDict_SetItem takes its own
    // references and returns -1 with an exception set on failure.
    if unsafe { pyo3::ffi::PyDict_SetItem(environ.as_ptr(), key.as_ptr(), value.as_ptr()) } < 0 {
        return Err(PyErr::fetch(environ.py()));
    }
    Ok(())
}

/// An empty dict with room for `capacity` keys.
fn presized(py: Python<'_>, capacity: isize) -> PyResult<Bound<'_, PyDict>> {
    // SAFETY: attached (`py`); the call returns a new reference to a dict, or NULL with an
    // exception set.
    unsafe {
        Ok(Bound::from_owned_ptr_or_err(py, _PyDict_NewPresized(capacity))?.cast_into_unchecked())
    }
}

impl Environs {
    pub fn new(
        py: Python<'_>,
        listeners: &[ListenerEnv],
        multithread: bool,
        multiprocess: bool,
    ) -> PyResult<Self> {
        // The keys are interned, like the names in the app's code (`environ["PATH_INFO"]`),
        // so its lookups match by identity without comparing characters.
        let sys = py.import("sys")?;
        let errors = sys.getattr("stderr")?;
        let file_wrapper = py.get_type::<FileWrapper>();
        let version = PyTuple::new(py, [1, 0])?;
        let mut bases = Vec::with_capacity(listeners.len());
        for listener in listeners {
            let base = presized(py, ENVIRON_CAPACITY)?;
            base.set_item(PyString::intern(py, "SCRIPT_NAME"), "")?;
            base.set_item(
                PyString::intern(py, "SERVER_NAME"),
                listener.server_name.as_str(),
            )?;
            base.set_item(
                PyString::intern(py, "SERVER_PORT"),
                listener.server_port.as_str(),
            )?;
            base.set_item(PyString::intern(py, "SERVER_PROTOCOL"), "HTTP/1.0")?;
            base.set_item(PyString::intern(py, "wsgi.version"), &version)?;
            base.set_item(PyString::intern(py, "wsgi.url_scheme"), listener.url_scheme)?;
            base.set_item(PyString::intern(py, "wsgi.errors"), &errors)?;
            base.set_item(PyString::intern(py, "wsgi.multithread"), multithread)?;
            base.set_item(PyString::intern(py, "wsgi.multiprocess"), multiprocess)?;
            base.set_item(PyString::intern(py, "wsgi.run_once"), false)?;
            base.set_item(PyString::intern(py, "wsgi.file_wrapper"), &file_wrapper)?;
            base.set_item(PyString::intern(py, "wsgi.input_terminated"), true)?;
            bases.push(base.unbind());
        }
        Ok(Environs {
            bases,
            keys: Default::default(),
        })
    }

    /// `wsgi-disable-file-wrapper`: the environ has no `wsgi.file_wrapper`.
    pub fn remove_file_wrapper(&self, py: Python<'_>) {
        for base in &self.bases {
            let _ = base.bind(py).del_item("wsgi.file_wrapper");
        }
    }

    /// One request's environ; `input` becomes its `wsgi.input`.
    pub fn build<'py>(
        &self,
        py: Python<'py>,
        request: RequestVars<'_>,
        input: Bound<'py, PyAny>,
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
            let (key, value) = keys.entry(py, key, value, latin1);
            store(&environ, &key, &value)?;
        }
        if let Some((addr, port)) = request.remote {
            for (key, value) in [(&b"REMOTE_ADDR"[..], addr), (b"REMOTE_PORT", port)] {
                let (key, value) = keys.entry(py, key, value.as_bytes(), latin1);
                store(&environ, &key, &value)?;
            }
        }
        drop(keys);
        if let Some(scheme) = scheme_override {
            environ.set_item(intern!(py, "wsgi.url_scheme"), scheme)?;
        }
        store(&environ, intern!(py, "wsgi.input"), &input)?;
        Ok(environ)
    }
}
