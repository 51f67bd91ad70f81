//! `start_response(status, response_headers, exc_info=None)` and the `write(data)` callable
//! it returns (PEP 3333): the status and headers are checked to be latin-1 `str`s and kept in
//! the request's state until the first body bytes go out.

use pyo3::exceptions::{PyAssertionError, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use super::response::{not_bytes, respond, type_name, SendError};
use super::state::{lock, Shared};

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

/// `start_response(status, response_headers, exc_info=None)`.
#[pyclass(module = "kaiser")]
pub(super) struct StartResponse {
    pub state: Shared,
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
