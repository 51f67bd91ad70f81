//! The accept gate: when a worker stops taking new connections for a while, and the one
//! place that takes its listeners out of the epoll set and puts them back for that reason.
//!
//! Two things close it:
//! - **fd exhaustion** (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM` from `accept4`). The
//!   listeners are level-triggered, so leaving them armed would wake every idle thread again
//!   at once, each failing the same way: 100 % CPU and an error line per try. Instead they
//!   leave the set for [`BACKOFF`]; connections wait in the backlog meanwhile, and the error
//!   is logged at most once a second with the count of failures since.
//! - **the per-worker connection cap** (`max-worker-connections`): at the cap, the worker
//!   stops accepting until one of its connections closes, so a flood of idle connections
//!   cannot take every fd of the process (and so fail the app's own `open()` calls).
//!
//! Pause (SIGTSTP) and graceful stop own the listeners too; the gate never re-arms them while
//! either holds. It does not close connections or decide timeouts.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use super::serve::listener_token;
use super::Shared;
use crate::sys;
use crate::sys::clock::monotonic_us;

/// How long the listeners stay out after an fd-exhaustion error.
const BACKOFF: Duration = Duration::from_millis(250);
/// At most one "cannot accept" line per this interval.
const LOG_EVERY_US: u64 = 1_000_000;

#[derive(Default)]
pub struct AcceptGate {
    /// The listeners are out of the epoll set because of this gate.
    closed: AtomicBool,
    /// Monotonic µs before which an fd-exhaustion closing must not reopen (0: none).
    reopen_at_us: AtomicU64,
    /// Connections this worker holds open (accepted, not yet closed).
    open: AtomicUsize,
    /// The cap; 0 for none.
    cap: usize,
    last_log_us: AtomicU64,
    failures_since_log: AtomicU64,
}

impl AcceptGate {
    pub fn new(cap: usize) -> Self {
        AcceptGate {
            cap,
            ..AcceptGate::default()
        }
    }

    /// Whether threads may call `accept` now.
    pub fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Relaxed)
    }

    /// The open connections, for tests and reports.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A connection was accepted. Closes the gate when that reaches the cap.
    pub fn accepted(&self, shared: &Shared) {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        if self.cap > 0 && open >= self.cap && self.close(shared) {
            tracing::warn!(
                connections = open,
                "max-worker-connections reached: new connections wait in the backlog until one closes"
            );
        }
    }

    /// A connection this worker accepted was closed.
    pub fn closed_one(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// `accept4` failed with `err`. Out-of-descriptors errors close the gate for a while;
    /// the log line is rate-limited.
    pub fn accept_failed(&self, shared: &Shared, err: &std::io::Error) {
        let exhausted = matches!(
            err.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        );
        let now = monotonic_us();
        if exhausted {
            self.reopen_at_us
                .store(now + BACKOFF.as_micros() as u64, Ordering::Relaxed);
            self.close(shared);
        }
        let failures = self.failures_since_log.fetch_add(1, Ordering::Relaxed) + 1;
        let last = self.last_log_us.load(Ordering::Relaxed);
        if now.saturating_sub(last) < LOG_EVERY_US
            || self
                .last_log_us
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.failures_since_log.store(0, Ordering::Relaxed);
        if exhausted {
            tracing::error!(
                error = %err,
                failures,
                connections = self.open_connections(),
                "cannot accept: out of file descriptors; new connections wait in the backlog (raise `ulimit -n`, or lower max-worker-connections)"
            );
        } else {
            tracing::error!(error = %err, failures, "accept failed");
        }
    }

    /// How long an idle thread may wait before it must look at the gate again.
    pub fn wait_hint(&self) -> Option<Duration> {
        (!self.is_open()).then_some(BACKOFF)
    }

    /// Called by request threads on every turn: puts the listeners back once the backoff
    /// is over and the worker is under its cap, unless paused or stopping.
    pub fn maybe_reopen(&self, shared: &Shared) {
        if self.is_open() {
            return;
        }
        if monotonic_us() < self.reopen_at_us.load(Ordering::Relaxed)
            || (self.cap > 0 && self.open_connections() >= self.cap)
        {
            return;
        }
        if self
            .closed
            .compare_exchange(true, false, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        if shared.paused.load(Ordering::Relaxed) || shared.stopping.load(Ordering::Acquire) {
            return;
        }
        for (index, listener) in shared.listeners.iter().enumerate() {
            let _ = shared.epoll.add(
                listener.fd(),
                sys::poll::EPOLLIN | sys::poll::EPOLLEXCLUSIVE,
                listener_token(index),
            );
        }
        tracing::debug!("accepting again");
    }

    /// Takes the listeners out of the epoll set; true if this call closed the gate.
    fn close(&self, shared: &Shared) -> bool {
        if self.closed.swap(true, Ordering::AcqRel) {
            return false;
        }
        for listener in shared.listeners.iter() {
            let _ = shared.epoll.delete(listener.fd);
        }
        true
    }
}
