//! `wsgi.file_wrapper`: an iterable over a file-like object in blocks, closing it with the
//! response; when it wraps a regular file, the driver sends the file with `sendfile(2)`
//! through the exchange instead of iterating ([`regular_file`]).

use pyo3::intern;
use pyo3::prelude::*;

/// The fd, current position and remaining length of a file-like object backed by a regular
/// file, or `None` (a pipe, a BytesIO, anything without `fileno`) to iterate it instead.
pub(super) fn regular_file(
    py: Python<'_>,
    filelike: &Py<PyAny>,
) -> Option<(std::os::fd::RawFd, u64, u64)> {
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
pub(super) struct FileWrapper {
    pub filelike: Py<PyAny>,
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
