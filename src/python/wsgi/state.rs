//! The state one request's Python objects share (`start_response`, `write`, `wsgi.input`)
//! with the driver: the exchange while no call is using it, the pending status and headers,
//! and the request body read so far.
//!
//! It must not be held across a call into Python or into the exchange: the lock is taken
//! for a few field moves at a time.

use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::Python;

use super::exchange::Exchange;

pub(super) struct State {
    pub exchange: Option<Box<dyn Exchange>>,
    /// The status `start_response` gave, when `has_status`; the buffer is kept for the next
    /// request.
    pub status: Vec<u8>,
    pub has_status: bool,
    /// The first `header_count` entries are the response's headers; the rest are buffers
    /// kept for a later request.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub header_count: usize,
    pub head_sent: bool,
    pub input: Vec<u8>,
    pub input_pos: usize,
    pub input_eof: bool,
    /// `disable-write-exception`: `write()` returns quietly once the client is gone.
    pub quiet_write: bool,
}

/// A request body buffer larger than this is not kept for the thread's next request.
const KEPT_INPUT_MAX: usize = 64 * 1024;
/// Nor more header buffers than this, or a status or header longer than this.
const KEPT_HEADERS_MAX: usize = 64;
const KEPT_HEADER_BYTES_MAX: usize = 8 * 1024;

impl State {
    pub fn new(quiet_write: bool) -> Self {
        State {
            exchange: None,
            status: Vec::new(),
            has_status: false,
            headers: Vec::new(),
            header_count: 0,
            head_sent: false,
            input: Vec::new(),
            input_pos: 0,
            input_eof: false,
            quiet_write,
        }
    }

    /// Ready for a new request, keeping the buffers unless they grew large.
    pub fn reset(&mut self, exchange: Box<dyn Exchange>, quiet_write: bool) {
        self.exchange = Some(exchange);
        self.has_status = false;
        self.header_count = 0;
        self.head_sent = false;
        self.input.clear();
        self.input_pos = 0;
        self.input_eof = false;
        self.quiet_write = quiet_write;
    }

    /// Drops what a request made large, so that an idle thread does not keep it.
    pub fn trim(&mut self) {
        if self.input.capacity() > KEPT_INPUT_MAX {
            self.input = Vec::new();
        }
        if self.status.capacity() > KEPT_HEADER_BYTES_MAX {
            self.status = Vec::new();
        }
        self.headers.truncate(KEPT_HEADERS_MAX);
        self.headers.retain(|(name, value)| {
            name.capacity() <= KEPT_HEADER_BYTES_MAX && value.capacity() <= KEPT_HEADER_BYTES_MAX
        });
    }
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
pub(super) fn take_back(py: Python<'_>, state: &Shared) -> Box<dyn Exchange> {
    if let Some(exchange) = lock(state).exchange.take() {
        return exchange;
    }
    py.detach(|| {
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
    })
}
