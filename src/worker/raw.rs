//! uWSGI's raw mode (`raw-socket`): nothing is read or parsed. The accepting request thread
//! calls the `python-raw` handler with the connection's fd (non-blocking, as uWSGI hands it
//! over), writes what the handler returns, then closes the connection. The request counts
//! as one on the scoreboard (its core busy, harakiri's clock running) and gets the request
//! line, with the client's address and the bytes written, and no method or URI (uWSGI logs
//! it the same way).
//!
//! What uWSGI does around a raw request that has no meaning without a request head is left
//! out: routes (they would only see empty variables) and harakiri's 504 (the connection
//! speaks no HTTP; harakiri still kills a stuck worker). It does not parse anything or keep
//! the connection: one connection is one call of the handler.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, RawFd};
use std::time::{Duration, Instant};

use super::conn::{close, Conn};
use super::request::{account, count_end, Finished};
use super::request_record;
use super::serve::current_core;
use super::Shared;
use crate::python::RawConnection;
use crate::sys;

/// Serves one raw connection to its end.
pub(super) fn serve(shared: &Shared, conn: Conn) {
    let Some(handler) = &shared.raw else {
        // The config refuses a raw socket without `python-raw`; a handler that failed to
        // load stops the vassal (or, under `need-app = false`, leaves none).
        tracing::warn!(peer = %conn.peer_addr, "raw connection without a python-raw handler; closing it");
        close(shared, conn);
        return;
    };
    let started = Instant::now();
    let mut log = request_record::fresh();
    log.remote_addr.push_str(&conn.peer_addr);
    let start = sys::clock::unix_us();
    log.start_unix = start / 1_000_000;
    log.start_unix_micros = start;
    if let Some(health) = &shared.health {
        health.enter();
    }
    if let Some(slot) = current_core().and_then(|core| shared.slot()?.core(core)) {
        slot.begin_request(sys::clock::monotonic_us(), "", "", &log.remote_addr);
    }
    let raw_fd = conn.fd.as_raw_fd();
    let mut sink = Sink {
        fd: conn.fd.as_fd(),
        identity: sys::fd::identity(raw_fd),
        timeout: shared.settings.socket_timeout,
        written: 0,
        via_sendfile: false,
    };
    let outcome = handler.run(raw_fd, &mut sink);
    let still_ours = sink.still_ours();
    log.body_bytes = sink.written;
    log.via_sendfile = sink.via_sendfile;
    log.io_error = outcome.client_gone;
    log.elapsed = started.elapsed();
    if let Some(health) = &shared.health {
        health.leave();
    }
    let (total, core) = count_end(shared);
    let finished = Finished {
        total,
        core,
        app_error: outcome.app_error,
        asked: crate::python::take_log_this_request(),
        logvars: crate::python::take_logvars(),
        silenced: false,
    };
    account(shared, log, finished);
    super::options::after_request(shared, outcome.app_error);
    if still_ours {
        close(shared, conn);
    } else {
        // The handler closed the fd itself (a `socket.socket(fileno=fd)` does when it is
        // collected): the number may already name another thread's file, so it is not
        // closed a second time.
        tracing::debug!("the python-raw handler closed its connection itself");
        let Conn { fd, .. } = conn;
        let _ = fd.into_raw_fd();
    }
}

/// The connection as the handler's result sees it: every write waits at most
/// `socket-timeout` for the client to take more.
struct Sink<'a> {
    fd: BorrowedFd<'a>,
    /// What the fd referred to when the handler got it (see [`Sink::still_ours`]).
    identity: Option<(u64, u64)>,
    timeout: Duration,
    written: u64,
    via_sendfile: bool,
}

impl Sink<'_> {
    /// Whether the fd still is the connection: the handler may have closed it, and the
    /// number may have been reused since.
    fn still_ours(&self) -> bool {
        self.identity.is_some() && sys::fd::identity(self.fd.as_raw_fd()) == self.identity
    }

    fn check_ours(&self) -> io::Result<()> {
        if self.still_ours() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the handler closed the connection",
            ))
        }
    }

    fn wait_writable(&self) -> io::Result<()> {
        if sys::poll::wait_one(self.fd, sys::poll::WRITABLE, self.timeout)? {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "socket-timeout expired",
            ))
        }
    }
}

impl RawConnection for Sink<'_> {
    fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        self.check_ours()?;
        while !data.is_empty() {
            match sys::fd::send(self.fd, data) {
                Ok(n) => {
                    self.written += n as u64;
                    data = &data[n..];
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => self.wait_writable()?,
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    fn send_file(&mut self, fd: RawFd) -> io::Result<()> {
        // SAFETY: the fd is the app's (an int it returned, or its file object's `fileno()`);
        // the Python side holds that object for the whole call, and the fd is only read.
        let file = unsafe { BorrowedFd::borrow_raw(fd) };
        self.check_ours()?;
        let mut position: i64 = 0;
        loop {
            match sys::fd::sendfile(self.fd, file, &mut position, 1 << 30) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    self.written += n as u64;
                    self.via_sendfile = true;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => self.wait_writable()?,
                Err(err) => return Err(err),
            }
        }
    }
}
