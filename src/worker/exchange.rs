//! The worker's [`Exchange`]: request body in, response bytes out, over one connection,
//! with `socket-timeout` bounding every wait and `transfer-timeout` their sum (see
//! [`super::transfer`]), so a slow client cannot hold a thread forever.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::serve::Conn;
use super::transfer::Budget;
use super::Shared;
use crate::config::Protocol;
use crate::protocol::http::{ChunkedDecoder, Version};
use crate::protocol::response;
use crate::python::{Exchange, Outcome, RespondError, ResponseHead};
use crate::sys;

/// How the request body is delimited.
pub enum Framing {
    None,
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// What the request log line needs.
#[derive(Default)]
pub struct RequestLog {
    pub method: String,
    pub uri: String,
    pub protocol: String,
    pub remote_addr: String,
    pub remote_user: String,
    pub var_count: usize,
    pub packet_size: usize,
    pub status: u16,
    pub body_bytes: u64,
    pub header_count: usize,
    pub header_bytes: usize,
    pub start_unix: u64,
    pub elapsed: Duration,
    /// The body went out with `sendfile(2)`.
    pub via_sendfile: bool,
    /// The body was left to an offload thread (static files).
    pub via_offload: bool,
    /// Reading the body or writing the response failed.
    pub io_error: bool,
    /// The request's `X-Forwarded-For`, for `log-x-forwarded-for` (empty: none, or off).
    pub forwarded_for: String,
    /// When the request started, in microseconds since the epoch (`%(tmicros)`).
    pub start_unix_micros: u64,
    /// What only a `log-format` prints, kept only when it does (`request_log::capture`).
    pub extra: Option<Box<ExtraLogFields>>,
}

/// Request fields the default line does not print.
#[derive(Debug, Default)]
pub struct ExtraLogFields {
    pub host: Vec<u8>,
    pub user_agent: Vec<u8>,
    pub referer: Vec<u8>,
    pub content_length: u64,
    /// In the order of `LogTemplate::request_vars`.
    pub request_vars: Vec<Option<Vec<u8>>>,
}

/// How the request line is written: `log-micros`, `memory-report`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LineFormat {
    pub micros: bool,
    pub memory_report: bool,
}

impl RequestLog {
    /// What `log-4xx`, `log-slow` and the like decide on.
    pub fn facts(&self, asked: bool) -> crate::protocol::log::RequestFacts {
        crate::protocol::log::RequestFacts {
            status: self.status,
            body_bytes: self.body_bytes,
            msecs: self.elapsed.as_millis() as u64,
            via_sendfile: self.via_sendfile,
            io_error: self.io_error,
            asked,
        }
    }

    /// Appends uWSGI's default line of a request served on request thread `core`.
    pub fn format_default(
        &self,
        pid: sys::process::Pid,
        total_requests: u64,
        core: usize,
        format: LineFormat,
        text: &mut String,
    ) {
        let remote_addr = if self.forwarded_for.is_empty() {
            &self.remote_addr
        } else {
            &self.forwarded_for
        };
        let line = crate::protocol::log::RequestLogLine {
            pid: pid as u32,
            app_id: 0,
            app_requests: total_requests as i64,
            total_requests,
            remote_addr: remote_addr.as_bytes(),
            remote_user: self.remote_user.as_bytes(),
            var_count: self.var_count,
            packet_size: self.packet_size,
            start_unix_secs: self.start_unix as i64,
            method: self.method.as_bytes(),
            uri: self.uri.as_bytes(),
            body_bytes: self.body_bytes,
            msecs: self.elapsed.as_millis() as u64,
            micros: format.micros.then_some(self.elapsed.as_micros() as u64),
            memory: if format.memory_report {
                sys::process::memory_bytes(pid)
            } else {
                None
            },
            via_sendfile: self.via_sendfile,
            via_offload: self.via_offload,
            protocol: self.protocol.as_bytes(),
            status: self.status,
            header_count: self.header_count,
            header_bytes: self.header_bytes as u64,
            switches: 1,
            core,
        };
        line.format(text);
    }
}

pub struct ConnExchange {
    conn: Conn,
    timeout: Duration,
    body: Framing,
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
    version: Version,
    is_head: bool,
    request_keep_alive: bool,
    // response state
    response_framing: Option<response::Framing>,
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

/// Bodies larger than this are not drained to save a keep-alive connection.
const MAX_DRAIN: u64 = 1 << 20;
/// Below this, the head and body go out in one write.
const COALESCE: usize = 64 * 1024;

impl ConnExchange {
    #[expect(
        clippy::too_many_arguments,
        reason = "one constructor call per protocol, each naming every fact"
    )]
    pub fn new(
        conn: Conn,
        shared: &Shared,
        body: Framing,
        protocol: Protocol,
        version: Version,
        is_head: bool,
        request_keep_alive: bool,
        expect_continue: bool,
    ) -> Self {
        let mut log = super::log_recycle::fresh();
        log.remote_addr.push_str(&conn.peer_addr);
        let limits = &shared.limits;
        // A chunked body has no length the app could refuse it by, and post-buffering reads
        // the body whole before the app runs: without `limit-post` those get the default cap.
        let unsized_or_buffered = matches!(body, Framing::Chunked(_)) || limits.post_buffering != 0;
        let (body_limit, body_limit_option) = if limits.limit_post != 0 {
            (limits.limit_post, "limit-post")
        } else if unsized_or_buffered {
            (limits.limit_post_default, "limit-post-default")
        } else {
            (0, "limit-post")
        };
        ConnExchange {
            conn,
            timeout: shared.limits.socket_timeout,
            body,
            body_remaining_known: true,
            body_failed: false,
            body_read: 0,
            add_headers: shared.limits.add_headers.clone(),
            body_limit,
            body_limit_option,
            transfer: limits.transfer,
            read_budget: Budget::default(),
            write_budget: Budget::default(),
            body_error_status: None,
            spool: None,
            expect_continue,
            protocol,
            version,
            is_head,
            request_keep_alive,
            response_framing: None,
            keep_alive_after: false,
            completed: false,
            broken: false,
            length_left: None,
            wbuf: Vec::new(),
            started: Instant::now(),
            log: {
                let start = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                log.start_unix = start.as_secs();
                log.start_unix_micros = start.as_micros() as u64;
                log
            },
            inflight: None,
        }
    }

    /// The body length the request declared (`Content-Length`), if it did.
    pub fn declared_length(&self) -> Option<u64> {
        match self.body {
            Framing::Length(n) => Some(n),
            _ => None,
        }
    }

    /// The largest body accepted (0: any) and the option that set it.
    pub fn body_limit(&self) -> (u64, &'static str) {
        (self.body_limit, self.body_limit_option)
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

    fn send_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            match sys::fd::send(self.conn.fd.as_fd(), data) {
                Ok(n) => {
                    self.write_budget.moved(n);
                    data = &data[n..]
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait(sys::poll::WRITABLE)?
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn flush_wbuf(&mut self) -> io::Result<()> {
        let buf = std::mem::take(&mut self.wbuf);
        let result = self.send_all(&buf);
        self.wbuf = buf;
        self.wbuf.clear();
        result
    }

    /// Reads more bytes from the socket into the connection buffer; false at EOF.
    fn fill(&mut self) -> io::Result<bool> {
        if self.expect_continue {
            self.expect_continue = false;
            if self.response_framing.is_none() {
                self.send_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            }
        }
        loop {
            match sys::fd::read_append(self.conn.fd.as_fd(), &mut self.conn.buf, COALESCE) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.read_budget.moved(n);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait(sys::poll::READABLE)?
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn body_done(&self) -> bool {
        match &self.body {
            Framing::None => true,
            Framing::Length(left) => *left == 0,
            Framing::Chunked(decoder) => decoder.is_done(),
        }
    }

    /// Reads and discards what the app left of the body, so the connection can carry the
    /// next request. Gives up (the connection then closes) on large or broken bodies.
    fn drain_body(&mut self) -> bool {
        if self.body_failed || !self.body_remaining_known {
            return false;
        }
        if let Framing::Length(left) = self.body {
            if left > MAX_DRAIN {
                return false;
            }
        }
        let mut sink = Vec::new();
        let mut drained: u64 = 0;
        while !self.body_done() {
            sink.clear();
            match self.read_body_inner(&mut sink, COALESCE) {
                Ok(0) => break,
                Ok(n) => drained += n as u64,
                Err(_) => return false,
            }
            if drained > MAX_DRAIN {
                return false;
            }
        }
        self.body_done()
    }

    fn read_body_inner(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        loop {
            match &mut self.body {
                Framing::None => return Ok(0),
                Framing::Length(left) => {
                    if *left == 0 {
                        return Ok(0);
                    }
                    if !self.conn.buf.is_empty() {
                        let n = (*left).min(max as u64).min(self.conn.buf.len() as u64) as usize;
                        out.extend_from_slice(&self.conn.buf[..n]);
                        self.conn.buf.drain(..n);
                        *left -= n as u64;
                        return Ok(n);
                    }
                    // Nothing buffered: read straight into the caller's buffer (one copy
                    // fewer), never past the body's end.
                    let want = (*left).min(max.max(1) as u64) as usize;
                    let expect_continue = std::mem::take(&mut self.expect_continue);
                    if expect_continue && self.response_framing.is_none() {
                        self.send_all(response::CONTINUE)?;
                    }
                    loop {
                        let Framing::Length(left) = &mut self.body else {
                            unreachable!("matched above")
                        };
                        match sys::fd::read_limited(self.conn.fd.as_fd(), out, want) {
                            Ok(0) => return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "the client closed the connection before sending the whole body",
                            )),
                            Ok(n) => {
                                *left -= n as u64;
                                self.read_budget.moved(n);
                                return Ok(n);
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                self.wait(sys::poll::READABLE)?
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                Framing::Chunked(decoder) => {
                    if decoder.is_done() {
                        return Ok(0);
                    }
                    if !self.conn.buf.is_empty() {
                        let before = out.len();
                        let decoded = decoder.decode(&self.conn.buf, out).map_err(|e| {
                            io::Error::new(io::ErrorKind::InvalidData, e.to_string())
                        })?;
                        self.conn.buf.drain(..decoded.consumed);
                        let produced = out.len() - before;
                        if produced > 0 || decoded.done {
                            return Ok(produced);
                        }
                        if decoded.consumed > 0 {
                            continue;
                        }
                    }
                }
            }
            if !self.fill()? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed the connection before sending the whole body",
                ));
            }
        }
    }

    /// Takes the connection back with the request's log record and whether the
    /// connection can serve another request.
    pub fn into_parts(mut self: Box<Self>, outcome: Outcome) -> (Option<Conn>, bool, RequestLog) {
        self.log.elapsed = self.started.elapsed();
        self.log.io_error = self.body_failed || self.broken;
        let mut reusable = !outcome.aborted
            && !self.broken
            && self.completed
            && self.keep_alive_after
            && self.protocol == Protocol::Http
            && self.length_left.is_none_or(|left| left == 0);
        if reusable && !self.body_done() {
            reusable = !self.expect_continue && self.drain_body();
        }
        if !self.completed && !self.broken && self.response_framing.is_some() {
            reusable = false;
        }
        let body_pending = !self.body_done();
        let this = *self;
        let conn = if this.broken {
            None
        } else {
            let mut conn = this.conn;
            conn.body_pending = body_pending;
            Some(conn)
        };
        (conn, reusable, this.log)
    }
}

/// A request body read ahead of the app: in memory up to `post-buffering` bytes, beyond that
/// in an unlinked temporary file (as uWSGI does), so a large upload does not sit in RAM.
enum Spool {
    Memory { data: Vec<u8>, position: usize },
    File(std::fs::File),
}

impl Spool {
    fn read(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        match self {
            Spool::Memory { data, position } => {
                let n = (data.len() - *position).min(max);
                out.extend_from_slice(&data[*position..*position + n]);
                *position += n;
                Ok(n)
            }
            Spool::File(file) => {
                use std::io::Read;
                let start = out.len();
                out.resize(start + max, 0);
                let n = file.read(&mut out[start..])?;
                out.truncate(start + n);
                Ok(n)
            }
        }
    }
}

/// An anonymous file in the temp directory (`O_TMPFILE`): it has no name, so nothing is left
/// behind whatever happens to the worker.
fn anonymous_file() -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(std::env::temp_dir())
}

impl ConnExchange {
    /// `post-buffering`: reads the whole request body before the app runs, keeping up to
    /// `threshold` bytes in memory and spilling the rest to an anonymous file. On error the
    /// status for the client is in `request_error_status`.
    pub fn prebuffer(&mut self, threshold: usize) -> io::Result<()> {
        use std::io::{Seek, Write};
        if self.body_done() {
            return Ok(());
        }
        let mut memory = Vec::new();
        let mut file: Option<std::fs::File> = None;
        let mut chunk = Vec::with_capacity(COALESCE);
        loop {
            chunk.clear();
            if Exchange::read_body(self, &mut chunk, COALESCE)? == 0 {
                break;
            }
            if file.is_none() && memory.len() + chunk.len() > threshold {
                let mut spill = anonymous_file()?;
                spill.write_all(&memory)?;
                memory = Vec::new();
                file = Some(spill);
            }
            match file.as_mut() {
                Some(spill) => spill.write_all(&chunk)?,
                None => memory.extend_from_slice(&chunk),
            }
        }
        self.spool = Some(match file {
            Some(mut spill) => {
                spill.rewind()?;
                Spool::File(spill)
            }
            None => Spool::Memory {
                data: memory,
                position: 0,
            },
        });
        Ok(())
    }
}

impl ConnExchange {
    /// A response write that ran out of `socket-timeout` or `transfer-timeout` gets a line:
    /// the client was too slow, and the connection closes.
    fn log_write_timeout(&self, err: &io::Error) {
        if err.kind() == io::ErrorKind::TimedOut {
            tracing::warn!(
                peer = %self.conn.peer_addr,
                uri = %self.log.uri,
                error = %err,
                "the client did not read the response in time; closing the connection"
            );
        }
    }

    /// Response bytes offered after the response ended (PEP 3333's `write()` called from the
    /// iterable's `close()`, say) are dropped: after the last chunk, or the last byte of the
    /// Content-Length, they would be read as the start of the next response on a keep-alive
    /// connection.
    fn refuse_after_completion(&self, bytes: u64) {
        if bytes > 0 {
            tracing::warn!(
                bytes,
                uri = %self.log.uri,
                "the app wrote after its response was complete; the bytes are dropped"
            );
        }
    }
}

impl Exchange for ConnExchange {
    fn read_body(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        if let Some(spool) = self.spool.as_mut() {
            return spool.read(out, max);
        }
        let result = self.read_body_inner(out, max);
        if let Ok(n) = result {
            self.body_read += n as u64;
            if self.body_limit != 0 && self.body_read > self.body_limit {
                self.body_failed = true;
                self.body_error_status = Some(b"413 Content Too Large");
                tracing::warn!(
                    peer = %self.conn.peer_addr,
                    limit = self.body_limit,
                    option = self.body_limit_option,
                    "the request body passed {}; the connection will close",
                    self.body_limit_option
                );
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the request body is larger than {}", self.body_limit_option),
                ));
            }
        }
        if let Err(err) = &result {
            self.body_failed = true;
            self.body_error_status = match err.kind() {
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
                    Some(b"400 Bad Request")
                }
                io::ErrorKind::TimedOut => Some(b"408 Request Timeout"),
                _ => None,
            };
            tracing::warn!(
                peer = %self.conn.peer_addr,
                error = %err,
                "bad or incomplete request body; the connection will close"
            );
        }
        result
    }

    fn request_error_status(&self) -> Option<&'static [u8]> {
        self.body_error_status
    }

    fn respond(
        &mut self,
        head: Option<ResponseHead<'_>>,
        body: &[u8],
        last: bool,
    ) -> Result<(), RespondError> {
        if self.broken {
            return Err(RespondError::Io(io::Error::from(io::ErrorKind::BrokenPipe)));
        }
        if self.completed {
            self.refuse_after_completion(body.len() as u64);
            return Ok(());
        }
        self.wbuf.clear();
        if head.is_some() && self.inflight.as_ref().is_some_and(|f| !f.claim_response()) {
            // Harakiri answered 504 and shut the connection down meanwhile.
            self.broken = true;
            return Err(RespondError::Io(io::Error::from(io::ErrorKind::TimedOut)));
        }
        if let Some(head) = head {
            let checked = response::check_head(
                head.status,
                head.headers
                    .iter()
                    .map(|(n, v)| (n.as_slice(), v.as_slice())),
            )
            .map_err(|e| RespondError::Invalid(format!("the app's response head: {e}")))?;
            let code = checked.status;
            let app_length = checked.content_length;
            let known = app_length.or(head.content_length).or(if last {
                Some(body.len() as u64)
            } else {
                None
            });
            let (framing, keep_alive) = match self.protocol {
                Protocol::Http => response::choose_framing(
                    self.version,
                    self.is_head,
                    code,
                    known,
                    // A body that failed to read leaves the stream at an unknown place.
                    self.request_keep_alive && !self.body_failed,
                    self.version == Version::Http11,
                ),
                Protocol::Uwsgi | Protocol::Scgi { .. } => {
                    response::choose_framing(self.version, self.is_head, code, known, false, false)
                }
            };
            let headers: Vec<(&[u8], &[u8])> = head
                .headers
                .iter()
                .chain(self.add_headers.iter())
                .map(|(n, v)| (n.as_slice(), v.as_slice()))
                .collect();
            match self.protocol {
                Protocol::Http => response::write_head(
                    &mut self.wbuf,
                    self.version,
                    head.status,
                    &headers,
                    &framing,
                    keep_alive,
                ),
                Protocol::Uwsgi => response::write_uwsgi_head(
                    &mut self.wbuf,
                    self.version,
                    head.status,
                    &headers,
                    &framing,
                ),
                Protocol::Scgi { nph } => crate::protocol::scgi::write_head(
                    &mut self.wbuf,
                    nph,
                    self.version,
                    head.status,
                    &headers,
                    &framing,
                ),
            }
            self.log.status = code;
            // The app's headers and `add-header`'s, the app's Content-Length headers counted
            // as the one that went out.
            let lengths_given = headers
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case(b"content-length"))
                .count();
            let length_sent = matches!(framing, response::Framing::Length(_))
                || (framing == response::Framing::NoBody && app_length.is_some());
            self.log.header_count = headers.len() - lengths_given + usize::from(length_sent);
            self.log.header_bytes = self.wbuf.len();
            self.length_left = match framing {
                response::Framing::Length(n) => Some(n),
                _ => None,
            };
            self.response_framing = Some(framing);
            self.keep_alive_after = keep_alive;
        }
        let framing = self
            .response_framing
            .as_ref()
            .expect("the head is always handled on the first call");
        let mut body = body;
        if let Some(left) = self.length_left.as_mut() {
            if body.len() as u64 > *left {
                tracing::warn!(
                    extra = body.len() as u64 - *left,
                    "the app sent more bytes than its Content-Length; truncating"
                );
                body = &body[..*left as usize];
                self.keep_alive_after = false;
            }
            *left -= body.len() as u64;
        }
        self.log.body_bytes += body.len() as u64;
        let send_body = !matches!(framing, response::Framing::NoBody);
        let chunked = matches!(framing, response::Framing::Chunked);
        let result = if send_body && !chunked && body.len() >= COALESCE {
            // Large bodies go out without a copy.
            self.flush_wbuf().and_then(|()| self.send_all(body))
        } else {
            if send_body {
                if chunked {
                    response::write_chunk(&mut self.wbuf, body);
                    if last {
                        response::write_last_chunk(&mut self.wbuf);
                    }
                } else {
                    self.wbuf.extend_from_slice(body);
                }
            }
            self.flush_wbuf()
        };
        if let Err(err) = result {
            self.broken = true;
            self.log_write_timeout(&err);
            return Err(RespondError::Io(err));
        }
        if last {
            self.completed = true;
        }
        Ok(())
    }

    fn send_file(
        &mut self,
        head: Option<ResponseHead<'_>>,
        fd: RawFd,
        offset: u64,
        count: u64,
    ) -> Result<(), RespondError> {
        if self.completed {
            self.refuse_after_completion(count);
            return Ok(());
        }
        // The head (and nothing else) first.
        self.respond(head, b"", false)?;
        // SAFETY: the fd belongs to the app's file object, which the Python driver holds
        // (open) for the whole call; it is only read from here.
        let file = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        match self.response_framing {
            Some(response::Framing::NoBody) => {}
            Some(response::Framing::Chunked) | None => {
                // Only when the length is unknown to the framing; read and chunk it.
                let mut buffer = vec![0u8; COALESCE];
                let mut position = offset as i64;
                let mut remaining = count;
                while remaining > 0 {
                    let want = remaining.min(buffer.len() as u64) as usize;
                    // SAFETY: `buffer` is writable for `want` bytes.
                    let n = unsafe { libc::pread(fd, buffer.as_mut_ptr().cast(), want, position) };
                    if n <= 0 {
                        break;
                    }
                    self.respond(None, &buffer[..n as usize], false)?;
                    position += n as i64;
                    remaining -= n as u64;
                }
            }
            Some(response::Framing::Length(_)) | Some(response::Framing::Close) => {
                let mut position = offset as i64;
                let mut remaining = count.min(self.length_left.unwrap_or(u64::MAX));
                while remaining > 0 {
                    let chunk = remaining.min(1 << 30) as usize;
                    match sys::fd::sendfile(self.conn.fd.as_fd(), file, &mut position, chunk) {
                        // The file shrank: the connection will close short of Content-Length.
                        Ok(0) => break,
                        Ok(n) => {
                            remaining -= n as u64;
                            self.write_budget.moved(n);
                            self.log.body_bytes += n as u64;
                            self.log.via_sendfile = true;
                            if let Some(left) = self.length_left.as_mut() {
                                *left -= n as u64;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            if let Err(e) = self.wait(sys::poll::WRITABLE) {
                                self.broken = true;
                                self.log_write_timeout(&e);
                                return Err(RespondError::Io(e));
                            }
                        }
                        Err(e) => {
                            self.broken = true;
                            return Err(RespondError::Io(e));
                        }
                    }
                }
            }
        }
        self.respond(None, b"", true)
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}
