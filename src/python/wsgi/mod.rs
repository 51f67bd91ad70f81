//! One WSGI request (PEP 3333), driven from start to end: the environ (`environ.rs`, names
//! interned by `environ_keys.rs`), `wsgi.input` (`input.rs`), `start_response` and `write()`
//! (`start_response.rs`), the result's iteration and `close()` on every path
//! (`response.rs`), `wsgi.file_wrapper` (`file_wrapper.rs`), the app a mountpoint picks
//! (`mounts.rs`). The worker's side is the [`Exchange`] (`exchange.rs`); the objects the app
//! gets share one [`state::State`] with the driver.
//!
//! The GIL is released around every call into the [`Exchange`] (socket reads and writes),
//! so other request threads of the worker run while this one waits on the network.

mod environ;
mod environ_keys;
mod exchange;
mod file_wrapper;
mod input;
mod kit;
mod mounts;
mod response;
mod start_response;
mod state;

use std::sync::{Arc, Mutex};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

pub use environ::{ListenerEnv, RequestVars};
pub use exchange::{Exchange, Outcome, RespondError, ResponseHead};

use super::app::{format_exception, App};
use environ::Environs;
use kit::Kit;
use mounts::Mounts;
use response::{internal_error, send_result, SendError};
use state::{lock, take_back, Shared, State};

/// The runner a worker builds once after fork and shares between its request threads.
pub struct WsgiRunner {
    mounts: Mounts,
    environs: Environs,
    quiet_write: bool,
}

impl WsgiRunner {
    pub fn new(
        app: &App,
        listeners: &[ListenerEnv],
        multithread: bool,
        multiprocess: bool,
    ) -> PyResult<Self> {
        Python::attach(|py| {
            Ok(WsgiRunner {
                mounts: Mounts::new(
                    app.callable.clone_ref(py),
                    app.mounts
                        .iter()
                        .map(|(point, callable)| (point.clone(), callable.clone_ref(py)))
                        .collect(),
                ),
                environs: Environs::new(py, listeners, multithread, multiprocess)?,
                quiet_write: false,
            })
        })
    }

    /// `manage-script-name`: the longest mountpoint that starts PATH_INFO moves into
    /// SCRIPT_NAME before the mountpoint picks the app.
    pub fn manage_script_name(mut self, on: bool) -> Self {
        self.mounts.manage_script_name = on;
        self
    }

    /// `wsgi-disable-file-wrapper`: the environ has no `wsgi.file_wrapper`.
    pub fn without_file_wrapper(self, disable: bool) -> Self {
        if disable {
            Python::attach(|py| self.environs.remove_file_wrapper(py));
        }
        self
    }

    /// `disable-write-exception`: the `write()` callable does not raise when the client has
    /// gone away (the rest of the response is dropped, as it is anyway).
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
        Python::attach(|py| {
            let kit = match Kit::take(py, exchange, self.quiet_write) {
                Ok(kit) => kit,
                Err((err, exchange)) => {
                    let state: Shared = Arc::new(Mutex::new(State::new(self.quiet_write)));
                    lock(&state).exchange = Some(exchange);
                    let outcome = server_error(py, &state, "creating start_response", &err);
                    return (take_back(py, &state), outcome);
                }
            };
            let outcome = self.run_attached(py, request, &kit);
            let exchange = take_back(py, &kit.state);
            kit.give_back(py);
            (exchange, outcome)
        })
    }

    fn run_attached(&self, py: Python<'_>, request: RequestVars<'_>, kit: &Kit) -> Outcome {
        let state = &kit.state;
        let mut outcome = Outcome::default();
        let input = kit.input.bind(py).clone().into_any();
        let environ = match self.environs.build(py, request, input) {
            Ok(environ) => environ,
            Err(err) => return server_error(py, state, "building the WSGI environ", &err),
        };
        let start_response = kit.start_response.bind(py);
        let app = match self.mounts.route(&environ) {
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

/// A failure of kaiser's own Python calls before the app runs: logged, and a 500.
fn server_error(py: Python<'_>, state: &Shared, what: &str, err: &PyErr) -> Outcome {
    tracing::error!("{what} failed: {}", format_exception(py, err));
    let mut outcome = Outcome::default();
    internal_error(py, state, &mut outcome);
    outcome
}
