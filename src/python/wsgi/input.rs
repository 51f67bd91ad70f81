//! `wsgi.input`: the request body, read from the exchange with the GIL released, in
//! blocks of at most 64 KiB, and buffered for `readline`.
//!
//! It must not read past the body: the exchange bounds it (Content-Length, chunked framing).

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use super::state::{lock, Shared};

/// `wsgi.input`: the request body, bounded by CONTENT_LENGTH, chunked bodies decoded.
#[pyclass(module = "kaiser", frozen)]
pub(super) struct Input {
    pub state: Shared,
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
