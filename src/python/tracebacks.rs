//! Python stacks of other threads, for harakiri reports: `sys._current_frames()` and
//! `traceback.format_stack`, the same data `faulthandler` prints, but for the stuck
//! threads only and through the normal log.
//!
//! It needs the GIL: a thread stuck in C code that holds it makes this wait (the harakiri
//! kill ends that wait), which is why the worker answers the client before calling it.

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The formatted stack of each thread in `idents` (Python thread idents, i.e. pthread ids),
/// or `None` for a thread that runs no Python code right now.
pub fn thread_stacks(idents: &[u64]) -> Vec<Option<String>> {
    Python::attach(|py| {
        let frames = py
            .import("sys")
            .and_then(|sys| sys.call_method0("_current_frames"))
            .and_then(|frames| frames.cast_into::<PyDict>().map_err(PyErr::from));
        let traceback = py.import("traceback");
        let (Ok(frames), Ok(traceback)) = (frames, traceback) else {
            return vec![None; idents.len()];
        };
        idents
            .iter()
            .map(|ident| {
                let frame = frames.get_item(ident).ok().flatten()?;
                let lines = traceback.call_method1("format_stack", (frame,)).ok()?;
                let text: String = pyo3::types::PyString::new(py, "")
                    .call_method1("join", (lines,))
                    .ok()?
                    .extract()
                    .ok()?;
                Some(text)
            })
            .collect()
    })
}
