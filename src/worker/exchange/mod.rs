//! The worker's [`Exchange`]: request body in, response bytes out, over one connection,
//! with `socket-timeout` bounding every wait and `transfer-timeout` their sum (see
//! [`super::transfer`]), so a slow client cannot hold a thread forever.
//!
//! The exchange's state and its socket waits are here; reading the request body is in
//! `body.rs`, writing the response in `respond.rs`. It does not parse request heads or
//! account for the request (`request.rs`).

mod body;
mod fastcgi;
mod respond;

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use body::RequestBody;
use body::Spool;

use super::conn::Conn;
use super::request_head::ParsedHead;
use super::request_record::RequestLog;
use super::transfer::Budget;
use super::Shared;
use crate::config::Protocol;
use crate::protocol::http::Version;
use crate::protocol::response::ResponseFraming;
use crate::python::Outcome;
use crate::sys;

pub struct ConnExchange {
    conn: Conn,
    timeout: Duration,
    body: RequestBody,
    body_remaining_known: bool,
    body_failed: bool,
    /// `add-header`.
    add_headers: Arc<[(Vec<u8>, Vec<u8>)]>,
    /// Body bytes given to the app so far, against `body_limit`.
    body_read: u64,
    /// `limit-post`, or for a chunked or post-buffered body `limit-post-default` when
    /// `limit-post` is 0 (0: no limit).
    body_limit: u64,
    /// The option `body_limit` came from, for the log line.
    body_limit_option: &'static str,
    transfer: super::TransferLimit,
    /// Waiting on the client while reading the body, and while writing the response.
    read_budget: Budget,
    write_budget: Budget,
    /// Why reading the request body failed, when it was the client's fault: the status line
    /// the worker answers with instead of the app's 500.
    body_error_status: Option<&'static [u8]>,
    /// `post-buffering`: the whole body, read before the app ran.
    spool: Option<Spool>,
    expect_continue: bool,
    protocol: Protocol,
    /// FastCGI: the request id the response's records carry.
    fastcgi: Option<u16>,
    /// FastCGI: the next write is the response's last, and carries the end records.
    fastcgi_end_next: bool,
    /// FastCGI: the end records went out with the last write.
    fastcgi_ended: bool,
    version: Version,
    is_head: bool,
    request_keep_alive: bool,
    // response state
    response_framing: Option<ResponseFraming>,
    keep_alive_after: bool,
    completed: bool,
    broken: bool,
    length_left: Option<u64>,
    wbuf: Vec<u8>,
    started: Instant,
    pub log: RequestLog,
    /// Set by the worker for harakiri's 504: the response head claims it first.
    pub inflight: Option<Arc<super::harakiri::InFlight>>,
}

thread_local! {
    /// The last exchange's write buffer, for the thread's next one: no `malloc` per response.
    static WRITE_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Below this, the head and body go out in one write.
pub(super) const COALESCE: usize = 64 * 1024;

impl ConnExchange {
    /// The exchange of the request `head` on `conn`; `log` already describes the request.
    pub fn new(conn: Conn, shared: &Shared, head: &ParsedHead<'_>, log: RequestLog) -> Self {
        let body = head.body(shared.settings.buffer_size);
        let limits = &shared.settings;
        // A chunked body has no length the app could refuse it by, and post-buffering reads
        // the body whole before the app runs: without `limit-post` those get the default cap.
        // (A FastCGI body without CONTENT_LENGTH is as unsized as a chunked one.)
        let unsized_or_buffered = matches!(body, RequestBody::Chunked(_))
            || matches!(&body, RequestBody::FastCgi(stdin) if stdin.declared().is_none())
            || limits.post_buffering != 0;
        let (body_limit, body_limit_option) = if limits.limit_post != 0 {
            (limits.limit_post, "limit-post")
        } else if unsized_or_buffered {
            (limits.limit_post_default, "limit-post-default")
        } else {
            (0, "limit-post")
        };
        let started = conn.last_active;
        ConnExchange {
            conn,
            timeout: shared.settings.socket_timeout,
            body,
            body_remaining_known: true,
            body_failed: false,
            body_read: 0,
            add_headers: shared.settings.add_headers.clone(),
            body_limit,
            body_limit_option,
            transfer: limits.transfer,
            read_budget: Budget::default(),
            write_budget: Budget::default(),
            body_error_status: None,
            spool: None,
            expect_continue: head.expect_continue(),
            protocol: head.protocol(),
            fastcgi: head.fastcgi_id(),
            fastcgi_end_next: false,
            fastcgi_ended: false,
            version: head.version(),
            is_head: head.is_head(),
            request_keep_alive: head.keep_alive() && !shared.stopping.load(Ordering::Acquire),
            response_framing: None,
            keep_alive_after: false,
            completed: false,
            broken: false,
            length_left: None,
            wbuf: WRITE_BUFFER.with(std::cell::Cell::take),
            // The request started when its head was read (`drive` reads the clock then, and a
            // pipelined request's start is the previous one's end); its wall-clock start is
            // worked out only for a request line that prints it (`request::account`).
            started,
            log,
            inflight: None,
        }
    }

    /// The largest body accepted (0: any) and the option that set it.
    pub fn body_limit(&self) -> (u64, &'static str) {
        (self.body_limit, self.body_limit_option)
    }

    /// When the request started: when its head was read.
    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn raw_fd(&self) -> RawFd {
        self.conn.fd.as_raw_fd()
    }

    /// Waits until the socket is ready for `events`, for at most `socket-timeout` and at
    /// most what is left of this direction's transfer budget (reading: the request body;
    /// writing: the response).
    fn wait(&mut self, events: i16) -> io::Result<()> {
        let budget = if events == sys::poll::READABLE {
            &mut self.read_budget
        } else {
            &mut self.write_budget
        };
        let left = budget.left(self.transfer);
        let (timeout, what) = match left {
            Some(left) if left < self.timeout => (left, "transfer-timeout"),
            _ => (self.timeout, "socket-timeout"),
        };
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{what} expired"),
            ));
        }
        let started = Instant::now();
        let ready = sys::poll::wait_one(self.conn.fd.as_fd(), events, timeout);
        budget.spent(started.elapsed());
        if ready? {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{what} expired"),
            ))
        }
    }

    fn send_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.send_all_unblocking(data, &mut || {})
    }

    /// Sends `data` whole; `unblock` is called before the first wait for the client (see
    /// `Exchange::respond_unblocking`).
    fn send_all_unblocking(
        &mut self,
        mut data: &[u8],
        unblock: &mut dyn FnMut(),
    ) -> io::Result<()> {
        if let Some(id) = self.fastcgi {
            return self.send_stdout(id, data, unblock);
        }
        while !data.is_empty() {
            match sys::fd::send(self.conn.fd.as_fd(), data) {
                Ok(n) => {
                    self.write_budget.moved(n);
                    data = &data[n..]
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    unblock();
                    self.wait(sys::poll::WRITABLE)?
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn flush_wbuf(&mut self, unblock: &mut dyn FnMut()) -> io::Result<()> {
        let buf = std::mem::take(&mut self.wbuf);
        let result = self.send_all_unblocking(&buf, unblock);
        self.wbuf = buf;
        self.wbuf.clear();
        result
    }

    /// Takes the connection back with the request's log record and whether the
    /// connection can serve another request.
    /// Also returns when it ended (the one clock read at a request's end, which is also the
    /// start of the connection's wait for its next request).
    pub fn into_parts(
        mut self: Box<Self>,
        outcome: Outcome,
    ) -> (Option<Conn>, bool, RequestLog, Instant) {
        let ended = Instant::now();
        self.log.elapsed = ended.saturating_duration_since(self.started);
        // The queue goes out once its oldest response has waited long enough.
        super::deferred::request_ended(self.started, ended);
        self.log.io_error = self.body_failed || self.broken;
        let mut reusable = !outcome.aborted
            && !self.broken
            && self.completed
            && self.keep_alive_after
            && (matches!(self.protocol, Protocol::Http | Protocol::Puwsgi)
                || self.fastcgi.is_some())
            && self.length_left.is_none_or(|left| left == 0);
        if reusable && !self.body_done() {
            reusable = !self.expect_continue && self.drain_body();
        }
        if !self.completed && !self.broken && self.response_framing.is_some() {
            reusable = false;
        }
        reusable &= self.end_fastcgi_response();
        let body_pending = !self.body_done();
        if self.wbuf.capacity() <= COALESCE {
            let mut wbuf = std::mem::take(&mut self.wbuf);
            wbuf.clear();
            WRITE_BUFFER.with(|spare| spare.set(wbuf));
        }
        let this = *self;
        let conn = if this.broken {
            None
        } else {
            let mut conn = this.conn;
            conn.body_pending = body_pending;
            Some(conn)
        };
        (conn, reusable, this.log, ended)
    }
}
