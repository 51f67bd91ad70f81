//! The state one request's Python objects share (`start_response`, `write`, `wsgi.input`)
//! with the driver: the exchange while no call is using it, the pending status and headers,
//! and the request body read so far.
//!
//! It must not be held across a call into Python or into the exchange: the lock is taken
//! for a few field moves at a time.

use std::sync::{Arc, Mutex, MutexGuard};

use super::exchange::Exchange;

pub(super) struct State {
    pub exchange: Option<Box<dyn Exchange>>,
    pub status: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub head_sent: bool,
    pub input: Vec<u8>,
    pub input_pos: usize,
    pub input_eof: bool,
    /// `disable-write-exception`: `write()` returns quietly once the client is gone.
    pub quiet_write: bool,
}

pub(super) type Shared = Arc<Mutex<State>>;

pub(super) fn lock(state: &Shared) -> MutexGuard<'_, State> {
    // A panic while holding this lock would already have aborted the worker (panic=abort
    // in release); in debug builds take the data anyway rather than cascade.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The exchange, once every use of it has ended. The request's own thread always puts it
/// back, but a thread the app started may still be inside `write()` or `wsgi.input.read()`
/// (an app bug, yet no reason to abort the worker): each such call is bounded by the
/// exchange's timeouts, so this waits for it, without the GIL.
pub(super) fn take_back(state: &Shared) -> Box<dyn Exchange> {
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
