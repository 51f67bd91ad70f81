//! Python stacks of other threads, for harakiri reports: `sys._current_frames()` and
//! `traceback.format_stack`, the same data `faulthandler` prints, but for the stuck
//! threads only and through the normal log.
//!
//! It needs the GIL: a thread stuck in C code that holds it (a catastrophic regular
//! expression, an extension spinning) makes it wait for ever. [`thread_stacks_within`]
//! therefore asks from a helper thread and gives up after a while; the helper is left
//! waiting for the GIL, and the harakiri kill ends it.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// [`thread_stacks`], or `None` if the GIL could not be had within `patience`.
pub fn thread_stacks_within(idents: &[u64], patience: Duration) -> Option<Vec<Option<String>>> {
    let (send, receive) = std::sync::mpsc::sync_channel(1);
    let idents = idents.to_vec();
    let spawned = std::thread::Builder::new()
        .name("kaiser-stacks".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            let _ = send.send(thread_stacks(&idents));
        });
    if let Err(err) = spawned {
        tracing::warn!(error = %err, "cannot start a thread to read Python stacks");
        return None;
    }
    receive.recv_timeout(patience).ok()
}

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
