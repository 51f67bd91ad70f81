//! Static files under internal routing: a request that names a static file runs the request
//! table before its file is sent, as in uWSGI, whose `uwsgi_file_serve` applies
//! `uwsgi.routes` once the file is found and before `uwsgi_real_file_serve` (`core/static.c`).
//! So `basicauth`, `break`, `redirect`, `addheader`, `log`, `logvar`, `donotlog` and the
//! error, response and final tables apply to static files as to the app's responses.
//!
//! The routes see the request through [`crate::routing::serve`], the same entry point as the
//! app's requests; the "app" it runs is the static answer. What the routes or the file answer
//! is framed into a [`Transfer`] by [`Buffered`] instead of being written to the socket, so
//! the file still goes out with `sendfile(2)` and, for a slow client, from an offload thread.
//!
//! It is reached only when routes are configured; it does not look files up (`lookup.rs`) or
//! account for the request (`answer.rs`).

use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::answer::{plan_file, write_head, Answer, StaticAnswer, Transfer, FORBIDDEN_BODY};
use super::lookup::Lookup;
use crate::protocol::http::{self, Version};
use crate::protocol::response::{self, ResponseFraming};
use crate::python::{Exchange, Outcome, RequestVars, RespondError, ResponseHead};
use crate::routing::RouteTables;
use crate::worker::conn::Conn;
use crate::worker::request_head::ParsedHead;
use crate::worker::request_record::RequestLog;
use crate::worker::Shared;

/// Runs the request table on a request for a static file, then (unless a route answered or
/// refused it) plans the file's answer. Returns what to send, whether the connection may
/// serve another request, and whether the static answer ran (uWSGI counts `static_requests`
/// only then); fills the log record's response fields.
pub(super) fn answer(
    shared: &Shared,
    routes: &Arc<RouteTables>,
    found: StaticAnswer<'_, '_>,
    head: &ParsedHead<'_>,
    conn: &Conn,
    answer: &Answer,
    log: &mut RequestLog,
) -> (Transfer, bool, bool) {
    let exchange = Box::new(Buffered::new(*answer, shared.settings.add_headers.clone()));
    let listener = conn.listener;
    // Over HTTP the worker knows the client; over uwsgi and SCGI the front end sent it.
    let remote = (answer.protocol == crate::config::Protocol::Http)
        .then_some((conn.peer_addr.as_str(), conn.peer_port.as_str()));
    let ran = std::cell::Cell::new(false);
    let run = |_: RequestVars<'_>, mut exchange: Box<dyn Exchange>| {
        ran.set(true);
        let sent = respond_static(exchange.as_mut(), found);
        let outcome = Outcome {
            aborted: sent.is_err(),
            app_error: false,
        };
        (exchange, outcome)
    };
    let (exchange, _) = match head {
        ParsedHead::Http(http_head) => {
            let vars = http::cgi_vars(http_head);
            let mut pairs = vars.iter().map(|(k, v)| (k.as_ref(), v.as_ref()));
            let request = RequestVars {
                listener,
                vars: &mut pairs,
                remote,
            };
            crate::routing::serve(routes, request, exchange, run)
        }
        ParsedHead::Uwsgi(packet)
        | ParsedHead::Puwsgi(packet)
        | ParsedHead::Scgi(packet, _)
        | ParsedHead::FastCgi(crate::protocol::fastcgi::Request { packet, .. }, _) => {
            let mut pairs = packet.vars.iter().copied();
            let request = RequestVars {
                listener,
                vars: &mut pairs,
                remote,
            };
            crate::routing::serve(routes, request, exchange, run)
        }
    };
    let buffered: Box<Buffered> = exchange
        .into_any()
        .downcast()
        .expect("the routes give back the exchange they were handed");
    let (transfer, keep_alive) = (*buffered).finish(log);
    (transfer, keep_alive, ran.get())
}

/// The static answer, through the routes' exchange (which edits its head).
fn respond_static(
    exchange: &mut dyn Exchange,
    found: StaticAnswer<'_, '_>,
) -> Result<(), RespondError> {
    match found.lookup {
        Lookup::Pass => unreachable!("the callers pass these to the app"),
        Lookup::Forbidden => {
            let headers = [(b"Content-Type".to_vec(), b"text/plain".to_vec())];
            let head = ResponseHead {
                status: b"403 Forbidden",
                headers: &headers,
                content_length: Some(FORBIDDEN_BODY.len() as u64),
            };
            exchange.respond(Some(head), FORBIDDEN_BODY, true)
        }
        Lookup::Found(file) => {
            let plan = plan_file(found.statics, &file, found.request, found.now);
            let headers: Vec<(Vec<u8>, Vec<u8>)> = plan
                .headers
                .into_iter()
                .map(|(name, value)| (name.to_vec(), value.into_bytes()))
                .collect();
            let head = ResponseHead {
                status: plan.status,
                headers: &headers,
                content_length: plan.body.map(|(_, length)| length),
            };
            match plan.body {
                Some((offset, length)) if length > 0 => {
                    exchange.send_file(Some(head), file.file.as_raw_fd(), offset, length)
                }
                _ => exchange.respond(Some(head), b"", true),
            }
        }
    }
}

/// An [`Exchange`] that frames the response into memory (the head and a small body) and
/// keeps the file's range for [`Transfer`], instead of writing to the socket.
struct Buffered {
    answer: Answer,
    /// `add-header`.
    add_headers: Arc<[(Vec<u8>, Vec<u8>)]>,
    out: Vec<u8>,
    framing: Option<ResponseFraming>,
    keep_alive: bool,
    /// Of a `Content-Length` body, what is still owed.
    length_left: Option<u64>,
    file: Option<(File, u64, u64)>,
    status: u16,
    header_count: usize,
    header_bytes: usize,
    body_bytes: u64,
    completed: bool,
}

impl Buffered {
    fn new(answer: Answer, add_headers: Arc<[(Vec<u8>, Vec<u8>)]>) -> Self {
        Buffered {
            answer,
            add_headers,
            out: Vec::with_capacity(512),
            framing: None,
            keep_alive: false,
            length_left: None,
            file: None,
            status: 0,
            header_count: 0,
            header_bytes: 0,
            body_bytes: 0,
            completed: false,
        }
    }

    /// What goes out, and whether the connection may serve another request: not when the
    /// routes stopped the request without an answer or the body fell short of its length.
    fn finish(self, log: &mut RequestLog) -> (Transfer, bool) {
        log.status = self.status;
        log.header_count = self.header_count;
        log.header_bytes = self.header_bytes;
        let (file, offset, remaining) = match self.file {
            Some((file, offset, length)) => (Some(file), offset, length),
            None => (None, 0, 0),
        };
        log.body_bytes = self.body_bytes + remaining;
        log.via_sendfile = remaining > 0;
        let whole = self.completed && self.length_left.is_none_or(|left| left == remaining);
        let keep_alive = whole && self.keep_alive;
        // Over FastCGI an answer cut short gets no FCGI_END_REQUEST, as the app's do: the
        // connection closes and the front end sees the truncation.
        let transfer = Transfer::new(self.out, file, offset, remaining)
            .over_fastcgi(self.answer.fastcgi, whole);
        (transfer, keep_alive)
    }

    fn write_head(
        &mut self,
        head: &ResponseHead<'_>,
        last_body: Option<u64>,
    ) -> Result<(), RespondError> {
        let checked = response::check_head(
            head.status,
            head.headers
                .iter()
                .map(|(n, v)| (n.as_slice(), v.as_slice())),
        )
        .map_err(|e| RespondError::Invalid(format!("a route's response head: {e}")))?;
        let known = checked.content_length.or(head.content_length).or(last_body);
        let http = self.answer.protocol == crate::config::Protocol::Http;
        // A `puwsgi-socket` connection is kept when the answer's length is known (never chunked).
        let persistent = http || self.answer.protocol == crate::config::Protocol::Puwsgi;
        let (framing, mut keep_alive) = response::choose_framing(
            self.answer.version,
            self.answer.is_head,
            checked.status,
            known,
            self.answer.keep_alive && persistent,
            http && self.answer.version == Version::Http11,
        );
        // Over FastCGI the records delimit the answer, whatever its framing.
        keep_alive |= self.answer.fastcgi.is_some() && self.answer.keep_alive;
        let headers: Vec<(&[u8], &[u8])> = head
            .headers
            .iter()
            .chain(self.add_headers.iter())
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
            .collect();
        write_head(
            &mut self.out,
            &self.answer,
            head.status,
            &headers,
            &framing,
            keep_alive,
        );
        self.status = checked.status;
        self.header_count = headers.len();
        self.header_bytes = self.out.len();
        self.length_left = match framing {
            ResponseFraming::Length(n) => Some(n),
            _ => None,
        };
        self.framing = Some(framing);
        self.keep_alive = keep_alive;
        Ok(())
    }
}

impl Exchange for Buffered {
    fn read_body(&mut self, _out: &mut Vec<u8>, _max: usize) -> std::io::Result<usize> {
        // Static files are served only to requests without a body.
        Ok(0)
    }

    fn respond(
        &mut self,
        head: Option<ResponseHead<'_>>,
        body: &[u8],
        last: bool,
    ) -> Result<(), RespondError> {
        if self.completed || self.file.is_some() {
            return Ok(());
        }
        if let Some(head) = head {
            self.write_head(&head, last.then_some(body.len() as u64))?;
        }
        let Some(framing) = self.framing else {
            return Err(RespondError::Invalid(
                "a response body before its head".to_string(),
            ));
        };
        let mut body = body;
        if let Some(left) = self.length_left.as_mut() {
            body = &body[..body.len().min(*left as usize)];
            *left -= body.len() as u64;
        }
        match framing {
            ResponseFraming::NoBody => {}
            ResponseFraming::Chunked => {
                response::write_chunk(&mut self.out, body);
                if last {
                    response::write_last_chunk(&mut self.out);
                }
                self.body_bytes += body.len() as u64;
            }
            ResponseFraming::Length(_) | ResponseFraming::Close => {
                self.out.extend_from_slice(body);
                self.body_bytes += body.len() as u64;
            }
        }
        self.completed = last;
        Ok(())
    }

    fn send_file(
        &mut self,
        head: Option<ResponseHead<'_>>,
        fd: RawFd,
        offset: u64,
        count: u64,
    ) -> Result<(), RespondError> {
        if self.completed || self.file.is_some() {
            return Ok(());
        }
        self.respond(head, b"", false)?;
        // SAFETY: the caller holds the file open for the whole call; it is only duplicated.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let file = File::from(borrowed.try_clone_to_owned().map_err(RespondError::Io)?);
        match self.framing {
            Some(ResponseFraming::Length(_)) | Some(ResponseFraming::Close) => {
                let length = count.min(self.length_left.unwrap_or(u64::MAX));
                if length > 0 {
                    self.file = Some((file, offset, length));
                }
                self.completed = true;
                Ok(())
            }
            Some(ResponseFraming::NoBody) | None => self.respond(None, b"", true),
            Some(ResponseFraming::Chunked) => {
                // A length unknown to the framing (not one of the static answers): read it.
                let mut data = vec![0u8; count as usize];
                let n = file.read_at(&mut data, offset).map_err(RespondError::Io)?;
                self.respond(None, &data[..n], true)
            }
        }
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}
