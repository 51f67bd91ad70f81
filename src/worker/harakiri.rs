//! The worker's side of harakiri: the graceful phase the master asks for with SIGUSR2
//! before it kills a worker stuck on a request.
//!
//! For each core the master condemned (marked in the scoreboard), the worker's main thread
//! 1. answers the client `504 Gateway Timeout` if the app has not started its response,
//!    then shuts the connection down, so the stuck thread's later writes fail harmlessly;
//! 2. logs the Python stack of the stuck thread, found by its thread ident.
//!
//! The 504 goes out first, without the GIL. If the stuck thread holds the GIL (a C extension
//! spinning, a catastrophic regular expression), no stack can be read: that is logged
//! plainly after a short wait, and the master's SIGKILL at the end of the grace follows.
//!
//! This module does not decide who is stuck or when to kill: the master does
//! (`vassal/harakiri.rs`).

use std::os::fd::{BorrowedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};

use super::scoreboard::Scoreboard;
use super::Shared;
use crate::python;
use crate::sys;
use crate::sys::clock;

/// How long the graceful phase waits for the GIL to read the stuck threads' stacks. A thread
/// running Python code lets go of the GIL every few milliseconds (`sys.getswitchinterval`).
const STACK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(500);

const GATEWAY_TIMEOUT: &[u8] = b"HTTP/1.1 504 Gateway Timeout\r\n\
Content-Type: text/plain\r\n\
Content-Length: 37\r\n\
Connection: close\r\n\
\r\n\
the request took too long (harakiri)\n";

/// The connection of one core's request in flight, for the 504. Each core has one; only
/// its own thread starts and finishes requests in it, and the main thread answers through
/// it under the same lock, so the fd cannot be closed (and reused) while it is written.
#[derive(Default)]
pub struct InFlight(Mutex<InFlightState>);

#[derive(Default)]
struct InFlightState {
    fd: Option<RawFd>,
    /// A FastCGI request's id: its 504 goes in records.
    fastcgi: Option<u16>,
    responded: bool,
    timed_out: bool,
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, InFlightState> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The request thread took a request on `fd` (FastCGI request `fastcgi`, if one).
    pub fn start(&self, fd: RawFd, fastcgi: Option<u16>) {
        *self.lock() = InFlightState {
            fd: Some(fd),
            fastcgi,
            responded: false,
            timed_out: false,
        };
    }

    /// The request thread is done with the connection; call before it may close it.
    pub fn finish(&self) {
        self.lock().fd = None;
    }

    /// The app is about to send its response head. False if harakiri already answered.
    pub fn claim_response(&self) -> bool {
        let mut state = self.lock();
        if state.timed_out {
            return false;
        }
        state.responded = true;
        true
    }

    /// Answers 504 and shuts the connection down, unless the response already started.
    fn answer_timeout(&self) -> Answer {
        let mut state = self.lock();
        let Some(fd) = state.fd else {
            return Answer::Gone;
        };
        if state.responded {
            return Answer::AlreadyResponding;
        }
        state.timed_out = true;
        // SAFETY: `fd` is the connection of the request in flight on this core: its thread
        // clears it (`finish`) under this lock before it can close the connection, and we
        // hold the lock until we are done with the fd.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        // The socket buffer of a connection that has not been answered is empty, so this
        // small write goes out whole or the client is gone; either way we shut down.
        match state.fastcgi {
            None => {
                let _ = sys::fd::send(fd, GATEWAY_TIMEOUT);
            }
            Some(id) => {
                let _ = sys::fd::send(fd, &fastcgi_gateway_timeout(id));
            }
        }
        sys::net::shutdown_both(fd);
        Answer::Sent504
    }
}

/// The 504 for FastCGI request `id`: CGI's `Status:` head (which nginx reads on either kind
/// of FastCGI socket) in a stdout record, then the end records.
fn fastcgi_gateway_timeout(id: u16) -> Vec<u8> {
    use crate::protocol::fastcgi;
    let status_line_end = GATEWAY_TIMEOUT
        .windows(2)
        .position(|pair| pair == b"\r\n")
        .expect("the 504 has a status line");
    let mut cgi = b"Status: 504 Gateway Timeout".to_vec();
    cgi.extend_from_slice(&GATEWAY_TIMEOUT[status_line_end..]);
    let mut out = fastcgi::stdout_header(id, cgi.len()).to_vec();
    out.extend_from_slice(&cgi);
    out.extend_from_slice(&fastcgi::end_request(id));
    out
}

enum Answer {
    Sent504,
    AlreadyResponding,
    Gone,
}

/// SIGUSR2 from the master: the graceful phase of harakiri.
pub(super) fn on_signal(shared: &Shared) {
    let Some(worker) = shared.slot() else {
        return;
    };
    let snapshot = worker.snapshot();
    let mut stuck = Vec::new();
    for core in snapshot.cores.iter().filter(|c| c.condemned) {
        let answer = match shared.inflight.get(core.id) {
            Some(inflight) => inflight.answer_timeout(),
            None => Answer::Gone,
        };
        let what = match answer {
            Answer::Sent504 => "answered 504 Gateway Timeout",
            Answer::AlreadyResponding => "the response had started: the client gets it cut",
            Answer::Gone => "the connection is already gone",
        };
        tracing::error!(
            "HARAKIRI: worker {} core {} stuck on `{}` from {} for {} s; {what}",
            shared.worker_id,
            core.id,
            core.request,
            if core.remote.is_empty() {
                "-"
            } else {
                &core.remote
            },
            seconds_since(core.request_start_us),
        );
        stuck.push(core.clone());
    }
    if stuck.is_empty() {
        return;
    }
    let idents: Vec<u64> = stuck.iter().map(|c| c.thread_ident).collect();
    let Some(stacks) = python::thread_stacks_within(&idents, STACK_PATIENCE) else {
        for core in &stuck {
            tracing::error!(
                "HARAKIRI: no Python stack for worker {} core {} (`{}`): a thread holds the GIL and does not let go (C code: a regular expression, an extension); the master kills the worker after harakiri-graceful-timeout",
                shared.worker_id,
                core.id,
                core.request,
            );
        }
        return;
    };
    for (core, stack) in stuck.iter().zip(stacks) {
        let stack = stack.unwrap_or_else(|| {
            "(no Python frame: the thread is not running Python code)".to_string()
        });
        tracing::error!(
            "HARAKIRI: Python stack of worker {} core {} (`{}`), most recent call last:\n{}",
            shared.worker_id,
            core.id,
            core.request,
            stack.trim_end()
        );
    }
}

/// Seconds since `start_us` on `CLOCK_MONOTONIC`.
fn seconds_since(start_us: u64) -> u64 {
    clock::monotonic_us().saturating_sub(start_us) / 1_000_000
}

/// Installs `uwsgi.set_user_harakiri(N)`: a deadline for the request running on the
/// calling thread, cleared when that request ends.
pub(super) fn install_user_harakiri(scoreboard: Arc<Scoreboard>, worker_id: u32, bank: usize) {
    python::set_user_harakiri_hook(Box::new(move |seconds| {
        let Some(core) = super::serve::current_core()
            .and_then(|index| scoreboard.process(worker_id, bank)?.core(index))
        else {
            return false;
        };
        let deadline = if seconds == 0 {
            0
        } else {
            clock::monotonic_us().saturating_add(seconds.saturating_mul(1_000_000))
        };
        core.set_user_deadline(deadline);
        true
    }));
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fastcgi_504_is_one_record_then_the_end() {
        let records = super::fastcgi_gateway_timeout(7);
        let len = usize::from(u16::from_be_bytes([records[4], records[5]]));
        assert_eq!(&records[..4], &[1, 6, 0, 7]);
        let cgi = std::str::from_utf8(&records[8..8 + len]).expect("ascii");
        assert!(
            cgi.starts_with("Status: 504 Gateway Timeout\r\nContent-Type"),
            "{cgi:?}"
        );
        assert!(cgi.ends_with("(harakiri)\n"), "{cgi:?}");
        assert_eq!(records[8 + len..], crate::protocol::fastcgi::end_request(7));
    }

    #[test]
    fn the_504_is_well_framed() {
        let text = std::str::from_utf8(super::GATEWAY_TIMEOUT).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{text:?}"
        );
    }
}
