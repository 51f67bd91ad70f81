//! FastCGI framing of one exchange (`fastcgi-socket`): every byte of the app's response
//! leaves as `FCGI_STDOUT` records (this is the one place the exchange's bytes get wrapped:
//! `send_all` hands them here; static files and health probes, which bypass the exchange,
//! frame theirs in `statics/fastcgi.rs` and `health.rs`), a response sent whole ends with the
//! empty `FCGI_STDOUT` and `FCGI_END_REQUEST`, and the body is unwrapped from `FCGI_STDIN`
//! records.
//!
//! It does not choose the response head or its framing (`respond.rs`) nor decide whether the
//! connection is kept (`mod.rs`); the records themselves are `protocol::fastcgi`'s.

use std::io::{self, IoSlice};
use std::os::fd::AsFd;

use super::{ConnExchange, RequestBody};
use crate::protocol::fastcgi::{self, ParseFastCgiError};
use crate::sys;

impl ConnExchange {
    /// The FastCGI request id of this exchange's request, if it is one (for harakiri's 504).
    pub fn fastcgi_id(&self) -> Option<u16> {
        self.fastcgi
    }

    /// Sends `data` as `FCGI_STDOUT` records of request `id`, each header and its content in
    /// one system call. Nothing for empty data: an empty record would end the stream; but when
    /// the exchange marked this as the response's last write (`fastcgi_end_next`), the end
    /// records (the empty `FCGI_STDOUT` and `FCGI_END_REQUEST`) go out in the same system call
    /// as the last record, so the front end gets the whole response in one read.
    /// `unblock` is called before the first wait (`Exchange::respond_unblocking`).
    pub(super) fn send_stdout(
        &mut self,
        id: u16,
        data: &[u8],
        unblock: &mut dyn FnMut(),
    ) -> io::Result<()> {
        let end = std::mem::take(&mut self.fastcgi_end_next);
        let tail = fastcgi::end_request(id);
        if data.is_empty() {
            if end {
                self.send_parts(&[&tail], unblock)?;
                self.fastcgi_ended = true;
            }
            return Ok(());
        }
        let mut contents = data.chunks(fastcgi::MAX_CONTENT).peekable();
        while let Some(content) = contents.next() {
            let header = fastcgi::stdout_header(id, content.len());
            if end && contents.peek().is_none() {
                self.send_parts(&[&header, content, &tail], unblock)?;
                self.fastcgi_ended = true;
            } else {
                self.send_parts(&[&header, content], unblock)?;
            }
        }
        Ok(())
    }

    /// Sends `parts` (at most three) one after another, waiting (within the write budget)
    /// while the socket is full (`unblock` called first).
    fn send_parts(&mut self, parts: &[&[u8]], unblock: &mut dyn FnMut()) -> io::Result<()> {
        let total: usize = parts.iter().map(|part| part.len()).sum();
        let mut sent = 0;
        while sent < total {
            // The parts not yet sent, the first one cut where the last send stopped.
            let mut slices = [IoSlice::new(&[]); 3];
            let mut count = 0;
            let mut skip = sent;
            for part in parts {
                if skip >= part.len() {
                    skip -= part.len();
                    continue;
                }
                slices[count] = IoSlice::new(&part[skip..]);
                skip = 0;
                count += 1;
            }
            match sys::fd::send_vectored(self.conn.fd.as_fd(), &slices[..count]) {
                Ok(n) => {
                    self.write_budget.moved(n);
                    sent += n;
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

    /// Ends a FastCGI response that was sent whole with the empty `FCGI_STDOUT` and
    /// `FCGI_END_REQUEST`. A response cut short (the app failed after its head, or sent less
    /// than its Content-Length) gets neither: the connection closes without them, so the
    /// front end sees the truncation as it would over HTTP. False when the connection cannot
    /// carry another request.
    pub(super) fn end_fastcgi_response(&mut self) -> bool {
        let Some(id) = self.fastcgi else {
            return true;
        };
        if self.fastcgi_ended {
            return !self.broken;
        }
        if self.broken || !self.completed || self.length_left.is_some_and(|left| left > 0) {
            return false;
        }
        if let Err(err) = self.send_parts(&[&fastcgi::end_request(id)], &mut || {}) {
            self.broken = true;
            self.log_write_timeout(&err);
            return false;
        }
        true
    }

    /// Reads the request body out of its `FCGI_STDIN` records: at most `max` bytes, 0 once
    /// the stream ended.
    pub(super) fn read_fastcgi_stdin(
        &mut self,
        out: &mut Vec<u8>,
        max: usize,
    ) -> io::Result<usize> {
        loop {
            let RequestBody::FastCgi(decoder) = &mut self.body else {
                return Ok(0);
            };
            if decoder.is_done() {
                return Ok(0);
            }
            if !self.conn.buf.is_empty() {
                let before = out.len();
                let decoded = decoder
                    .decode(&self.conn.buf, out, max.max(1))
                    .map_err(stdin_error)?;
                self.conn.buf.drain(..decoded.consumed);
                let produced = out.len() - before;
                if produced > 0 || decoded.done {
                    return Ok(produced);
                }
                if decoded.consumed > 0 {
                    continue;
                }
            }
            if !self.fill()? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed the connection before its FastCGI stdin ended",
                ));
            }
        }
    }
}

/// The body read's error: a short body or a broken record is the client's fault (400).
fn stdin_error(err: ParseFastCgiError) -> io::Error {
    let kind = match err {
        ParseFastCgiError::Aborted { .. } => io::ErrorKind::ConnectionAborted,
        ParseFastCgiError::ShortBody { .. } => io::ErrorKind::UnexpectedEof,
        _ => io::ErrorKind::InvalidData,
    };
    io::Error::new(kind, err.to_string())
}
