//! Writing the response: the head checked and framed (Content-Length, chunked or
//! close-delimited), head and small bodies in one write, large bodies and files without a copy.
//!
//! It does not read the request body (`body.rs`).

use std::io;
use std::os::fd::{AsFd, RawFd};

use super::{ConnExchange, COALESCE};
use crate::config::Protocol;
use crate::protocol::http::Version;
use crate::protocol::response::{self, ResponseFraming};
use crate::python::{Exchange, RespondError, ResponseHead};
use crate::sys;

impl ConnExchange {
    /// A response write that ran out of `socket-timeout` or `transfer-timeout` gets a line:
    /// the client was too slow, and the connection closes.
    pub(super) fn log_write_timeout(&self, err: &io::Error) {
        if err.kind() == io::ErrorKind::TimedOut {
            tracing::warn!(
                peer = %self.log.remote_addr,
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

    /// Sends response data (`Exchange::respond`); `unblock` is called before anything that
    /// may wait: a wait for the client, or a body large enough to go out on its own.
    fn respond_with(
        &mut self,
        head: Option<ResponseHead<'_>>,
        body: &[u8],
        last: bool,
        unblock: &mut dyn FnMut(),
    ) -> Result<(), RespondError> {
        if self.broken {
            return Err(RespondError::Io(io::Error::from(io::ErrorKind::BrokenPipe)));
        }
        if self.completed {
            self.refuse_after_completion(body.len() as u64);
            return Ok(());
        }
        self.wbuf.clear();
        // The whole response in this one call: it may be queued (`deferred.rs`).
        let whole = head.is_some() && last;
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
                Protocol::Uwsgi | Protocol::Scgi { .. } | Protocol::Raw => {
                    response::choose_framing(self.version, self.is_head, code, known, false, false)
                }
                // Persistent uwsgi: kept when the length is known, never chunked (`puwsgi.rs`).
                Protocol::Puwsgi => response::choose_framing(
                    self.version,
                    self.is_head,
                    code,
                    known,
                    self.request_keep_alive && !self.body_failed,
                    false,
                ),
                // The records delimit the body: the connection outlives one without a length.
                Protocol::FastCgi { .. } => (
                    response::choose_framing(self.version, self.is_head, code, known, false, false)
                        .0,
                    self.request_keep_alive && !self.body_failed,
                ),
            };
            let headers = head
                .headers
                .iter()
                .chain(self.add_headers.iter())
                .map(|(n, v)| (n.as_slice(), v.as_slice()));
            match self.protocol {
                Protocol::Http => response::write_head(
                    &mut self.wbuf,
                    self.version,
                    head.status,
                    headers.clone(),
                    &framing,
                    keep_alive,
                ),
                Protocol::Uwsgi | Protocol::Puwsgi | Protocol::Raw => response::write_uwsgi_head(
                    &mut self.wbuf,
                    self.version,
                    head.status,
                    headers.clone(),
                    &framing,
                ),
                Protocol::Scgi { nph } => crate::protocol::scgi::write_head(
                    &mut self.wbuf,
                    nph,
                    self.version,
                    head.status,
                    headers.clone(),
                    &framing,
                ),
                // FastCGI's head is SCGI's: CGI's `Status:` line, or an HTTP one for nph.
                Protocol::FastCgi { nph } => crate::protocol::scgi::write_head(
                    &mut self.wbuf,
                    nph,
                    self.version,
                    head.status,
                    headers.clone(),
                    &framing,
                ),
            }
            self.log.status = code;
            // The app's headers and `add-header`'s, the app's Content-Length headers counted
            // as the one that went out.
            let lengths_given = headers
                .clone()
                .filter(|(name, _)| name.eq_ignore_ascii_case(b"content-length"))
                .count();
            let length_sent = matches!(framing, ResponseFraming::Length(_))
                || (framing == ResponseFraming::NoBody && app_length.is_some());
            self.log.header_count = head.headers.len() + self.add_headers.len() - lengths_given
                + usize::from(length_sent);
            self.log.header_bytes = self.wbuf.len();
            self.length_left = match framing {
                ResponseFraming::Length(n) => Some(n),
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
        let send_body = !matches!(framing, ResponseFraming::NoBody);
        let chunked = matches!(framing, ResponseFraming::Chunked);
        // FastCGI: the response's last write carries its end records (one system call).
        let end_fastcgi =
            last && self.fastcgi.is_some() && self.length_left.is_none_or(|left| left == 0);
        let result = if send_body && !chunked && body.len() >= COALESCE {
            // Large bodies go out without a copy.
            unblock();
            self.flush_wbuf(unblock).and_then(|()| {
                self.fastcgi_end_next = end_fastcgi;
                self.send_all_unblocking(body, unblock)
            })
        } else {
            self.fastcgi_end_next = end_fastcgi;
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
            let queued = if whole
                && self.protocol == Protocol::Http
                && self.keep_alive_after
                && self.length_left.is_none_or(|left| left == 0)
            {
                crate::worker::deferred::queue_current(
                    self.raw_fd(),
                    &mut self.wbuf,
                    self.started,
                    unblock,
                )
            } else {
                None
            };
            match queued {
                Some(flushes) => {
                    self.conn.queued_at = Some(flushes);
                    Ok(())
                }
                None => self.flush_wbuf(unblock),
            }
        };
        self.fastcgi_end_next = false;
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
}

/// What the app's driver calls (`python::Exchange`): reading the body is `body.rs`'s.
impl Exchange for ConnExchange {
    fn read_body(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        self.read_body_within_limit(out, max)
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
        self.respond_with(head, body, last, &mut || {})
    }

    fn respond_unblocking(
        &mut self,
        head: Option<ResponseHead<'_>>,
        body: &[u8],
        last: bool,
        unblock: &mut dyn FnMut(),
    ) -> Result<(), RespondError> {
        self.respond_with(head, body, last, unblock)
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
        let framing = match self.response_framing {
            // Over FastCGI every byte goes out in a record: the file is read, not sendfile'd.
            Some(ResponseFraming::Length(_) | ResponseFraming::Close) if self.fastcgi.is_some() => {
                None
            }
            framing => framing,
        };
        match framing {
            Some(ResponseFraming::NoBody) => {}
            Some(ResponseFraming::Chunked) | None => {
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
            Some(ResponseFraming::Length(_)) | Some(ResponseFraming::Close) => {
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
