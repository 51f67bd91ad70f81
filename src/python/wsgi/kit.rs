//! The Python objects a request gives the app besides the environ (`start_response`, the
//! `write` it returns, `wsgi.input`) and the state they share, made once per request thread
//! and reused by its next request: making and freeing three objects, a state and their
//! buffers cost every request about a thousand instructions.
//!
//! A kit is reused only when nothing but the kit holds any of its objects once the request
//! is over (their reference counts say so: an app that kept `start_response`, `write`,
//! `wsgi.input` or the environ holding it gets a new kit next time, and the kept objects
//! stay tied to the finished request's state, whose exchange is gone). It must not be used by
//! two requests at once: it lives in the request thread's own slot.

use std::cell::Cell;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;

use super::exchange::Exchange;
use super::input::Input;
use super::start_response::{new_start_response, Write};
use super::state::{lock, Shared, State};

pub(super) struct Kit {
    pub state: Shared,
    pub input: Py<Input>,
    pub write: Py<Write>,
    pub start_response: Py<PyAny>,
}

thread_local! {
    static KIT: Cell<Option<Kit>> = const { Cell::new(None) };
}

impl Kit {
    fn new(py: Python<'_>, quiet_write: bool) -> PyResult<Kit> {
        let state: Shared = Arc::new(Mutex::new(State::new(quiet_write)));
        let input = Py::new(
            py,
            Input {
                state: state.clone(),
            },
        )?;
        let write = Bound::new(
            py,
            Write {
                state: state.clone(),
            },
        )?;
        let start_response = new_start_response(&write)?.unbind();
        Ok(Kit {
            state,
            input,
            write: write.unbind(),
            start_response,
        })
    }

    /// This thread's kit (or a new one), holding `exchange`.
    pub fn take(
        py: Python<'_>,
        exchange: Box<dyn Exchange>,
        quiet_write: bool,
    ) -> Result<Kit, (PyErr, Box<dyn Exchange>)> {
        let kit = match KIT.with(Cell::take) {
            Some(kit) => kit,
            None => match Kit::new(py, quiet_write) {
                Ok(kit) => kit,
                Err(err) => return Err((err, exchange)),
            },
        };
        lock(&kit.state).reset(exchange, quiet_write);
        Ok(kit)
    }

    /// Keeps the kit for the thread's next request, unless something outside holds one of
    /// its objects. Called attached, after the request's own references are gone.
    pub fn give_back(self, py: Python<'_>) {
        let _ = py;
        // SAFETY: attached, and each pointer is a live object the kit holds a reference to.
        let free = unsafe {
            pyo3::ffi::Py_REFCNT(self.start_response.as_ptr()) == 1
                && pyo3::ffi::Py_REFCNT(self.input.as_ptr()) == 1
                // The kit's reference and the `start_response` function's `self`.
                && pyo3::ffi::Py_REFCNT(self.write.as_ptr()) == 2
        };
        if free {
            lock(&self.state).trim();
            KIT.with(|slot| slot.set(Some(self)));
        }
    }
}
