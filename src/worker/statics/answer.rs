//! Answering a request found in the static files: the head (403, or the file's 200, 206, 304
//! or 416 with its headers), the body with `sendfile(2)` while the socket takes it, the rest
//! handed to an offload thread, and the request accounted as the app's are.
//!
//! It does not look files up (`lookup.rs`) or touch Python.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::fastcgi::{self, Stdin};
use super::lookup::{self, Lookup, StaticFiles, StaticRequest};
use crate::config::{FileServeMode, Protocol};
use crate::protocol::http::{self, Version};
use crate::protocol::response::{self, ResponseFraming};
use crate::protocol::static_files::conditional::{self, Conditions};
use crate::protocol::static_files::mime;
use crate::sys;
use crate::worker::conn::{keep_or_close, Conn};
use crate::worker::request::{self, count_end, describe, Finished};
use crate::worker::request_head::ParsedHead;
use crate::worker::request_log;
use crate::worker::request_record::{self, RequestLog};
use crate::worker::serve::current_core;
use crate::worker::Shared;

/// The bytes of a static answer still to go out: the head, then a range of the file.
pub struct Transfer {
    head: Vec<u8>,
    head_sent: usize,
    file: Option<File>,
    offset: i64,
    remaining: u64,
    /// FastCGI: the file goes in `FCGI_STDOUT` records, the response ends with
    /// `FCGI_END_REQUEST` (`fastcgi.rs`).
    records: Option<fastcgi::Records>,
}

impl Transfer {
    pub(super) fn new(head: Vec<u8>, file: Option<File>, offset: u64, remaining: u64) -> Self {
        Transfer {
            head,
            head_sent: 0,
            file,
            offset: offset as i64,
            remaining,
            records: None,
        }
    }

    /// The same answer over FastCGI request `id`: its bytes in records; with `end` (the
    /// answer is whole) the empty `FCGI_STDOUT` and `FCGI_END_REQUEST` after them. Without a
    /// request id (every other protocol) it is unchanged.
    pub(super) fn over_fastcgi(mut self, id: Option<u16>, end: bool) -> Self {
        let Some(id) = id else {
            return self;
        };
        debug_assert_eq!(self.head_sent, 0, "framed before anything was sent");
        let file_follows = self.remaining > 0 && self.file.is_some();
        let (head, records) = fastcgi::frame(&self.head, id, file_follows, end);
        self.head = head;
        self.records = Some(records);
        self
    }

    /// Bytes (a record header, the response's end) follow what is being sent now.
    fn more_follows(&self) -> bool {
        self.remaining > 0 || self.records.is_some_and(|r| r.end)
    }

    /// The next bytes to send before the file's: a record header, or the response's end.
    fn stage(&mut self, bytes: &[u8]) {
        self.head.clear();
        self.head.extend_from_slice(bytes);
        self.head_sent = 0;
    }

    /// Sends what the socket takes. `Ok(true)`: all sent; `Ok(false)`: the socket is full.
    pub fn advance(&mut self, socket: std::os::fd::BorrowedFd<'_>) -> io::Result<bool> {
        loop {
            while self.head_sent < self.head.len() {
                let rest = &self.head[self.head_sent..];
                let sent = if self.more_follows() {
                    sys::fd::send_more(socket, rest)
                } else {
                    sys::fd::send(socket, rest)
                };
                match sent {
                    Ok(n) => self.head_sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) => return Err(e),
                }
            }
            if self.remaining > 0 && self.file.is_some() {
                let chunk = match self.records.as_mut() {
                    None => self.remaining.min(1 << 30) as usize,
                    Some(records) if records.left == 0 => {
                        // A new record: its header, then at most 65535 bytes of the file.
                        let len = self
                            .remaining
                            .min(crate::protocol::fastcgi::MAX_CONTENT as u64);
                        records.left = len as usize;
                        let header =
                            crate::protocol::fastcgi::stdout_header(records.id, records.left);
                        self.stage(&header);
                        continue;
                    }
                    Some(records) => records.left,
                };
                let file = self.file.as_ref().expect("checked above");
                match sys::fd::sendfile(socket, file.as_fd(), &mut self.offset, chunk) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the static file shrank while it was being sent",
                        ))
                    }
                    Ok(n) => {
                        self.remaining -= n as u64;
                        if let Some(records) = self.records.as_mut() {
                            records.left -= n;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) => return Err(e),
                }
                continue;
            }
            if let Some(records) = self.records.as_mut().filter(|r| r.end) {
                records.end = false;
                let end = crate::protocol::fastcgi::end_request(records.id);
                self.stage(&end);
                continue;
            }
            break;
        }
        self.file = None;
        Ok(true)
    }
}

/// Serves a request from the static files, or gives the connection back (`Err`) when the app
/// should answer. `Ok` holds the connection if it stays open for another request (never over
/// uwsgi: nginx's `uwsgi_pass` expects the answer to end with the connection).
///
/// With internal routes configured, a request that names a static file goes through the
/// request table first, as in uWSGI (`uwsgi_file_serve` runs `uwsgi.routes` before sending
/// the file): see `routed.rs`. Without routes that costs one branch.
#[expect(
    clippy::result_large_err,
    reason = "the connection goes back to the caller by value when the request is not for a static file: boxing it would allocate on every request"
)]
pub fn serve(shared: &Shared, mut conn: Conn, head: &ParsedHead<'_>) -> Result<Option<Conn>, Conn> {
    let Some(statics) = shared.statics.as_ref() else {
        return Err(conn);
    };
    if head.has_body() {
        return Err(conn);
    }
    let path_info = head.path_info();
    let request = StaticRequest {
        method: head.method(),
        path_info: &path_info,
        uri: head.uri(),
        conditions: Conditions {
            if_modified_since: head.header(b"if-modified-since"),
            if_none_match: head.header(b"if-none-match"),
            range: head.header(b"range"),
            if_range: head.header(b"if-range"),
        },
        accept_encoding: head.header(b"accept-encoding"),
        document_root: head.front_end_var(b"DOCUMENT_ROOT"),
    };
    let started = Instant::now();
    let lookup = statics.lookup(&request);
    if matches!(lookup, Lookup::Pass) {
        return Err(conn);
    }
    if let Some(id) = head.fastcgi_id() {
        // The request's stdin stream comes off the connection before the answer, which
        // may keep it (`FCGI_KEEP_CONN`); one that carries bytes is the app's.
        let timeout = shared.settings.socket_timeout;
        if let Stdin::NotEmpty = fastcgi::take_empty_stdin(&mut conn, id, timeout) {
            return Err(conn);
        }
    }
    let mut log = request_record::fresh();
    describe(shared, &mut log, head, &conn.peer_addr, || {
        head.header(b"x-forwarded-for")
    });
    (log.var_count, log.packet_size) = head.log_size();
    let start = sys::clock::unix_us();
    log.start_unix = start / 1_000_000;
    log.start_unix_micros = start;
    capture_log_vars(shared, &mut log, head);
    begin(shared, &log);
    let answer = Answer {
        version: head.version(),
        is_head: head.is_head(),
        keep_alive: head.keep_alive() && !shared.stopping.load(Ordering::Acquire),
        protocol: head.protocol(),
        fastcgi: head.fastcgi_id(),
    };
    let now = (start / 1_000_000) as i64;
    let (transfer, keep_alive, served) = match &shared.settings.routes {
        None => {
            let (transfer, keep_alive) =
                unrouted(shared, statics, lookup, &request, &answer, &mut log, now);
            (transfer, keep_alive, true)
        }
        Some(routes) => {
            let found = StaticAnswer {
                statics,
                lookup,
                request: &request,
                now,
            };
            super::routed::answer(shared, routes, found, head, &conn, &answer, &mut log)
        }
    };
    let sent = Sent { keep_alive, served };
    Ok(send(shared, conn, transfer, sent, &answer, log, started))
}

/// What a static answer needs of the request, decided once.
#[derive(Clone, Copy)]
pub(super) struct Answer {
    pub(super) version: Version,
    pub(super) is_head: bool,
    pub(super) keep_alive: bool,
    pub(super) protocol: Protocol,
    /// FastCGI: the request id the answer's records carry.
    pub(super) fastcgi: Option<u16>,
}

/// A request the static files answer, before its answer is planned.
pub(super) struct StaticAnswer<'s, 'r> {
    pub(super) statics: &'s StaticFiles,
    pub(super) lookup: Lookup<'s>,
    pub(super) request: &'r StaticRequest<'r>,
    /// Unix seconds, for `Expires`.
    pub(super) now: i64,
}

/// The forbidden path's answer.
pub(super) const FORBIDDEN_BODY: &[u8] = b"forbidden\n";

/// The file's answer (status, headers, byte range) as `static-map` plans it.
pub(super) fn plan_file(
    statics: &StaticFiles,
    found: &lookup::Found<'_>,
    request: &StaticRequest<'_>,
    now: i64,
) -> conditional::Plan {
    let decision = conditional::decide(found.facts, &request.conditions);
    let name = found.path.as_os_str().as_bytes();
    let mime = statics.mime.lookup(name);
    let content_type = mime.map(mime::content_type);
    let extras = conditional::Extras {
        content_type: content_type.as_deref(),
        encoding: found.encoding,
        expires: statics.expires(found, request, mime, now),
        vary: found.has_variants,
    };
    match statics.file_serve_mode {
        None => conditional::plan(decision, found.facts, &extras),
        Some(mode) => {
            let header: &'static [u8] = match mode {
                FileServeMode::XAccelRedirect => b"X-Accel-Redirect",
                FileServeMode::XSendfile => b"X-Sendfile",
            };
            let path = found.path.to_string_lossy();
            conditional::plan_handoff(decision, found.facts, &extras, header, &path)
        }
    }
}

/// The answer without routes: the head written here, the file's range left to `send`.
fn unrouted(
    shared: &Shared,
    statics: &StaticFiles,
    lookup: Lookup,
    request: &StaticRequest<'_>,
    answer: &Answer,
    log: &mut RequestLog,
    now: i64,
) -> (Transfer, bool) {
    let mut head = Vec::with_capacity(384);
    match lookup {
        Lookup::Pass => unreachable!("the callers pass these to the app"),
        Lookup::Forbidden => {
            let body = FORBIDDEN_BODY;
            let headers: Vec<(&[u8], &[u8])> =
                vec![(b"Content-Type", b"text/plain"), (b"Content-Length", b"10")];
            let (framing, keep_alive) = response::choose_framing(
                answer.version,
                answer.is_head,
                403,
                Some(body.len() as u64),
                answer.keep_alive,
                false,
            );
            write_head(
                &mut head,
                answer,
                b"403 Forbidden",
                &headers,
                &framing,
                keep_alive,
            );
            log.header_count = headers.len();
            log.header_bytes = head.len();
            log.status = 403;
            if !answer.is_head {
                head.extend_from_slice(body);
                log.body_bytes = body.len() as u64;
            }
            let transfer = Transfer::new(head, None, 0, 0).over_fastcgi(answer.fastcgi, true);
            (
                transfer,
                keep_alive || answer.fastcgi.is_some() && answer.keep_alive,
            )
        }
        Lookup::Found(found) => {
            let plan = plan_file(statics, &found, request, now);
            let code = response::parse_status(plan.status).unwrap_or(200);
            let length = plan.body.map(|(_, length)| length);
            let (framing, keep_alive) = response::choose_framing(
                answer.version,
                answer.is_head,
                code,
                length,
                answer.keep_alive,
                false,
            );
            let headers: Vec<(&[u8], &[u8])> = plan
                .headers
                .iter()
                .map(|(name, value)| (*name, value.as_bytes()))
                .chain(
                    shared
                        .settings
                        .add_headers
                        .iter()
                        .map(|(n, v)| (n.as_slice(), v.as_slice())),
                )
                .collect();
            write_head(
                &mut head,
                answer,
                plan.status,
                &headers,
                &framing,
                keep_alive,
            );
            log.header_count = headers.len();
            log.header_bytes = head.len();
            log.status = code;
            let (offset, remaining) = match (plan.body, &framing) {
                (Some((offset, length)), ResponseFraming::Length(_)) => (offset, length),
                _ => (0, 0),
            };
            log.body_bytes = remaining;
            log.via_sendfile = remaining > 0;
            let file = (remaining > 0).then_some(found.file);
            let transfer =
                Transfer::new(head, file, offset, remaining).over_fastcgi(answer.fastcgi, true);
            (
                transfer,
                keep_alive || answer.fastcgi.is_some() && answer.keep_alive,
            )
        }
    }
}

/// What is known of an answer besides its bytes.
struct Sent {
    /// The connection may serve another request.
    keep_alive: bool,
    /// The static answer ran (no route answered instead): a static request for the stats.
    served: bool,
}

/// Sends what the socket takes at once, leaves the rest to an offload thread, accounts the
/// request, and keeps the connection or closes it.
fn send(
    shared: &Shared,
    conn: Conn,
    mut transfer: Transfer,
    Sent { keep_alive, served }: Sent,
    answer: &Answer,
    mut log: RequestLog,
    started: Instant,
) -> Option<Conn> {
    let outcome = transfer.advance(conn.fd.as_fd());
    let offloaded = matches!(outcome, Ok(false));
    log.via_offload = offloaded && shared.offload.is_some();
    if log.via_offload {
        log.via_sendfile = false;
    }
    log.io_error = outcome.is_err();
    log.elapsed = started.elapsed();
    account(shared, log, served);
    match outcome {
        Ok(true) => keep_or_close(shared, conn, keep_alive, Instant::now()),
        Ok(false) => {
            let job = crate::worker::offload::Job {
                conn,
                transfer,
                // The records delimit a FastCGI answer, and a `puwsgi-socket` one has its
                // length: their connections are kept as well.
                keep_alive: keep_alive
                    && matches!(
                        answer.protocol,
                        Protocol::Http | Protocol::FastCgi { .. } | Protocol::Puwsgi
                    ),
                timeout: shared.settings.socket_timeout,
            };
            match shared.offload.as_ref() {
                Some(offload) => {
                    offload.submit(job);
                    None
                }
                // Without offload threads (none configured cannot happen with static maps,
                // but keep the request thread correct) the body is sent here.
                None => crate::worker::offload::send_blocking(job)
                    .and_then(|(conn, keep)| keep_or_close(shared, conn, keep, Instant::now())),
            }
        }
        Err(err) => {
            tracing::debug!(error = %err, "static file transfer failed; closing the connection");
            None
        }
    }
}

/// `log-format`'s request variables (`%(host)`, `%(uagent)`, `%(referer)`, `%(var.NAME)`),
/// kept as for the app's requests. Only a template that prints them pays for the CGI
/// variables of an HTTP request.
fn capture_log_vars(shared: &Shared, log: &mut RequestLog, head: &ParsedHead<'_>) {
    let settings = &shared.settings.request_log;
    if !settings.needs_headers() && settings.request_vars().is_empty() {
        return;
    }
    match head {
        ParsedHead::Http(http_head) => {
            let vars = http::cgi_vars(http_head);
            let pairs = vars.iter().map(|(k, v)| (k.as_ref(), v.as_ref()));
            request_log::capture(settings, log, pairs);
        }
        ParsedHead::Uwsgi(packet)
        | ParsedHead::Puwsgi(packet)
        | ParsedHead::Scgi(packet, _)
        | ParsedHead::FastCgi(crate::protocol::fastcgi::Request { packet, .. }, _) => {
            request_log::capture(settings, log, packet.vars.iter().copied());
        }
    }
}

/// The request is in progress, as an app request is from its parsed head: on the scoreboard
/// (the stats server's `in_request`, and harakiri's clock) and in `health-check`'s count.
fn begin(shared: &Shared, log: &RequestLog) {
    if let Some(health) = &shared.health {
        health.enter();
    }
    let Some(core) = current_core() else {
        return;
    };
    if let Some(slot) = shared.slot().and_then(|w| w.core(core)) {
        slot.begin_request(
            sys::clock::monotonic_us(),
            &log.method,
            &log.uri,
            &log.remote_addr,
        );
    }
}

/// The response head as the protocol wants it: over the uwsgi protocol (persistent or not) no
/// `Connection` header, as uWSGI sends none and nginx would parse it for nothing (`write_uwsgi_head`);
/// over SCGI and FastCGI CGI's `Status:` line (unless `scgi-nph-socket` or
/// `fastcgi-nph-socket`); FastCGI's records are put around it by [`Transfer::over_fastcgi`].
pub(super) fn write_head(
    out: &mut Vec<u8>,
    answer: &Answer,
    status: &[u8],
    headers: &[(&[u8], &[u8])],
    framing: &ResponseFraming,
    keep_alive: bool,
) {
    let headers = headers.iter().copied();
    match answer.protocol {
        Protocol::Http => {
            response::write_head(out, answer.version, status, headers, framing, keep_alive)
        }
        // A raw connection never reaches static files (`raw.rs` takes it unparsed).
        Protocol::Uwsgi | Protocol::Puwsgi | Protocol::Raw => {
            response::write_uwsgi_head(out, answer.version, status, headers, framing)
        }
        Protocol::Scgi { nph } | Protocol::FastCgi { nph } => {
            crate::protocol::scgi::write_head(out, nph, answer.version, status, headers, framing)
        }
    }
}

/// Counts the request (worker and core figures; `static_requests` and `offloaded_requests`
/// when the static answer ran), writes the request line and runs the recycling check and
/// `reaper`, as for the app's requests; with routes, what they asked of the line (`donotlog`,
/// `logvar`).
fn account(shared: &Shared, log: RequestLog, served: bool) {
    if let Some(health) = &shared.health {
        health.leave();
    }
    let (total, core) = count_end(shared);
    if let Some(slot) = shared.slot().and_then(|w| w.core(core?)).filter(|_| served) {
        slot.count_static(log.via_offload);
    }
    let routed = shared.settings.routes.is_some();
    let finished = Finished {
        total,
        core,
        app_error: false,
        asked: false,
        logvars: if routed {
            crate::python::take_logvars()
        } else {
            Vec::new()
        },
        silenced: routed && crate::routing::take_do_not_log(),
    };
    request::account(shared, log, finished);
    crate::worker::options::after_request(shared, false);
}
