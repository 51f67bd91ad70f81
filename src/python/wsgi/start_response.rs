//! `start_response(status, response_headers, exc_info=None)` and the `write(data)` callable
//! it returns (PEP 3333): the status and headers are checked to be latin-1 `str`s and copied
//! into the request's state, into buffers the thread's next request reuses, until the first
//! body bytes go out.
//!
//! `start_response` is a built-in function (`METH_FASTCALL`) whose `self` is the request's
//! `write` object: the app's call reaches it through vectorcall with its arguments in place,
//! no tuple built, none parsed by a generic signature.

use std::sync::OnceLock;

use pyo3::exceptions::{PyAssertionError, PyOSError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use super::response::{not_bytes, respond, type_name, SendError};
use super::state::{lock, Shared};

/// Copies a `str` holding only latin-1 characters into `out`, as one byte each.
fn latin1_into(value: &Bound<'_, PyAny>, what: &str, out: &mut Vec<u8>) -> PyResult<()> {
    let s = value.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!("{what} must be a str, not {}", type_name(value)))
    })?;
    let ptr = s.as_ptr();
    // SAFETY: `ptr` is a str (checked above) kept alive by `value`, and we are attached.
    // A ready str of the 1-byte kind stores exactly its latin-1 bytes, `GET_LENGTH` of them;
    // a str of a wider kind holds some character above U+00FF (strings are made in the
    // narrowest kind that fits), so it is refused.
    unsafe {
        if ffi::PyUnicode_READY(ptr) != 0 {
            return Err(PyErr::fetch(value.py()));
        }
        if ffi::PyUnicode_KIND(ptr) == ffi::PyUnicode_1BYTE_KIND {
            let data = ffi::PyUnicode_DATA(ptr).cast::<u8>();
            let len = ffi::PyUnicode_GET_LENGTH(ptr) as usize;
            out.clear();
            out.extend_from_slice(std::slice::from_raw_parts(data, len));
            return Ok(());
        }
    }
    Err(PyValueError::new_err(format!(
        "{what} is not latin-1: {:?}",
        s.to_string_lossy()
    )))
}

/// The `write(data)` callable returned by `start_response`, and `start_response`'s `self`.
#[pyclass(module = "kaiser", frozen)]
pub(super) struct Write {
    pub state: Shared,
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

/// A `start_response` for the request whose `write` is `write`.
pub(super) fn new_start_response<'py>(write: &Bound<'py, Write>) -> PyResult<Bound<'py, PyAny>> {
    struct Def(ffi::PyMethodDef);
    // SAFETY: the definition is never written after it is made; its pointers are to static
    // strings and a function.
    unsafe impl Send for Def {}
    unsafe impl Sync for Def {}
    static DEF: OnceLock<Def> = OnceLock::new();
    let def = DEF.get_or_init(|| {
        Def(ffi::PyMethodDef {
            ml_name: c"start_response".as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunctionFastWithKeywords: start_response_fast,
            },
            ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
            ml_doc: c"start_response(status, response_headers, exc_info=None)".as_ptr(),
        })
    });
    // SAFETY: attached; the definition is static; `write` becomes the function's `self`
    // (PyCFunction_NewEx takes its own reference); a new reference or NULL with an exception.
    unsafe {
        Bound::from_owned_ptr_or_err(
            write.py(),
            ffi::PyCFunction_NewEx(
                std::ptr::from_ref(&def.0).cast_mut(),
                write.as_ptr(),
                std::ptr::null_mut(),
            ),
        )
    }
}

/// The C entry point: `self` is the request's `Write`, `args` the positional arguments then
/// the values of the `kwnames` keywords.
unsafe extern "C" fn start_response_fast(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls this attached, with `slf` the `Write` given to PyCFunction_NewEx
    // (alive as long as the function), `args` holding `nargs` positional arguments followed
    // by one value per name of the `kwnames` tuple (or NULL for none), all borrowed for the
    // call.
    unsafe {
        let py = Python::assume_attached();
        let write = Borrowed::from_ptr(py, slf).cast_unchecked::<Write>();
        let nargs = nargs as usize;
        let nkw = if kwnames.is_null() {
            0
        } else {
            ffi::PyTuple_GET_SIZE(kwnames) as usize
        };
        let all = std::slice::from_raw_parts(args, nargs + nkw);
        let result = parse_arguments(py, &all[..nargs], kwnames, &all[nargs..]).and_then(
            |[status, headers, exc_info]| {
                let status = status.ok_or_else(|| missing("status"))?;
                let headers = headers.ok_or_else(|| missing("headers"))?;
                start_response(&write, &status, &headers, exc_info.as_ref())
            },
        );
        match result {
            Ok(write) => write.into_ptr(),
            Err(err) => {
                err.restore(py);
                std::ptr::null_mut()
            }
        }
    }
}

const PARAMETERS: [&str; 3] = ["status", "headers", "exc_info"];

fn missing(name: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "start_response() missing required argument '{name}'"
    ))
}

/// `(status, headers, exc_info=None)` from positional and keyword arguments.
///
/// # Safety
/// `positional` and `values` are borrowed objects; `kwnames` is NULL or a tuple of as many
/// str as `values`.
unsafe fn parse_arguments<'py>(
    py: Python<'py>,
    positional: &[*mut ffi::PyObject],
    kwnames: *mut ffi::PyObject,
    values: &[*mut ffi::PyObject],
) -> PyResult<[Option<Bound<'py, PyAny>>; 3]> {
    if positional.len() > 3 {
        return Err(PyTypeError::new_err(format!(
            "start_response() takes at most 3 arguments ({} given)",
            positional.len()
        )));
    }
    let mut out: [Option<Bound<'py, PyAny>>; 3] = [None, None, None];
    for (slot, &arg) in out.iter_mut().zip(positional) {
        // SAFETY: a borrowed argument of the call (see the function's contract).
        *slot = Some(unsafe { Bound::from_borrowed_ptr(py, arg) });
    }
    for (index, &value) in values.iter().enumerate() {
        // SAFETY: `kwnames` has one str per value (see the function's contract).
        let name = unsafe {
            Bound::from_borrowed_ptr(py, ffi::PyTuple_GET_ITEM(kwnames, index as ffi::Py_ssize_t))
        };
        let name = name.cast::<PyString>()?.to_cow()?;
        let Some(at) = PARAMETERS.iter().position(|p| *p == name) else {
            return Err(PyTypeError::new_err(format!(
                "start_response() got an unexpected keyword argument '{name}'"
            )));
        };
        if out[at].is_some() {
            return Err(PyTypeError::new_err(format!(
                "start_response() got multiple values for argument '{name}'"
            )));
        }
        // SAFETY: a borrowed argument of the call.
        out[at] = Some(unsafe { Bound::from_borrowed_ptr(py, value) });
    }
    Ok(out)
}

fn start_response<'py>(
    write: &Bound<'py, Write>,
    status: &Bound<'py, PyAny>,
    headers: &Bound<'py, PyAny>,
    exc_info: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, Write>> {
    let state = &write.get().state;
    let exc_info = exc_info.filter(|e| !e.is_none());
    // The status and header buffers leave the state while they are filled (no Python code
    // runs meanwhile, but the lock is not held across calls into Python either). Replacing
    // a status (`exc_info` before the head went out) fills new ones, so that the one set
    // before stays whole if the new one is refused.
    let (mut status_buf, mut header_bufs) = {
        let mut st = lock(state);
        if let Some(exc_info) = exc_info {
            if st.head_sent {
                // PEP 3333: re-raise the original exception once headers are out.
                let value = exc_info.get_item(1)?;
                return Err(PyErr::from_value(value));
            }
        } else if st.has_status || st.head_sent {
            return Err(PyAssertionError::new_err(
                "start_response called a second time without exc_info",
            ));
        }
        if st.has_status {
            (Vec::new(), Vec::new())
        } else {
            (
                std::mem::take(&mut st.status),
                std::mem::take(&mut st.headers),
            )
        }
    };
    let parsed = parse_head(status, headers, &mut status_buf, &mut header_bufs);
    let mut st = lock(state);
    if parsed.is_ok() || !st.has_status {
        st.status = status_buf;
        st.headers = header_bufs;
    }
    let count = parsed?;
    st.has_status = true;
    st.header_count = count;
    drop(st);
    Ok(write.clone())
}

/// Copies the status into `status` and the headers into the first entries of `headers`
/// (reusing their buffers); returns how many headers there are.
fn parse_head(
    status: &Bound<'_, PyAny>,
    headers: &Bound<'_, PyAny>,
    status_buf: &mut Vec<u8>,
    header_bufs: &mut Vec<(Vec<u8>, Vec<u8>)>,
) -> PyResult<usize> {
    latin1_into(status, "status", status_buf)?;
    let list = headers.cast::<pyo3::types::PyList>().map_err(|_| {
        PyTypeError::new_err(format!(
            "response_headers must be a list, not {}",
            type_name(headers)
        ))
    })?;
    let mut count = 0;
    for header in list.iter() {
        let tuple = header.cast::<pyo3::types::PyTuple>().map_err(|_| {
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
        if count == header_bufs.len() {
            header_bufs.push(Default::default());
        }
        let (name, value) = &mut header_bufs[count];
        latin1_into(&tuple.get_item(0)?, "header name", name)?;
        latin1_into(&tuple.get_item(1)?, "header value", value)?;
        count += 1;
    }
    Ok(count)
}
