//! Reading the request body for the app: `Content-Length` or chunked framing, `limit-post`,
//! `post-buffering` (the body read whole before the app runs), and draining what the app left
//! so a kept-alive connection can carry the next request.
//!
//! It does not write responses (`respond.rs`).

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use super::{ConnExchange, COALESCE};
use crate::protocol::http::ChunkedDecoder;
use crate::protocol::response;
use crate::python::Exchange;
use crate::sys;

/// What is left of the request body, and how it is delimited.
pub enum RequestBody {
    None,
    /// This many bytes are still to come.
    Length(u64),
    Chunked(ChunkedDecoder),
    /// FastCGI: the body comes in stdin records.
    FastCgi(crate::protocol::fastcgi::StdinDecoder),
}

/// Bodies larger than this are not drained to save a keep-alive connection.
const MAX_DRAIN: u64 = 1 << 20;

impl ConnExchange {
    /// The body length the request declared (`Content-Length`), if it did.
    pub fn declared_length(&self) -> Option<u64> {
        match self.body {
            RequestBody::Length(n) => Some(n),
            RequestBody::FastCgi(ref decoder) => decoder.declared(),
            _ => None,
        }
    }

    /// Reads more bytes from the socket into the connection buffer; false at EOF.
    pub(super) fn fill(&mut self) -> io::Result<bool> {
        if self.expect_continue {
            self.expect_continue = false;
            if self.response_framing.is_none() {
                self.send_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            }
        }
        let mut buf = std::mem::take(&mut self.conn.buf);
        let read = self.read_waiting(|fd| sys::fd::read_append(fd, &mut buf, COALESCE));
        self.conn.buf = buf;
        Ok(read? > 0)
    }

    /// Reads with `read` once it gives bytes or EOF (0), waiting for the client while the
    /// socket would block; the bytes count against the transfer budget.
    fn read_waiting(
        &mut self,
        mut read: impl FnMut(BorrowedFd<'_>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        loop {
            match read(self.conn.fd.as_fd()) {
                Ok(n) => {
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

    pub(super) fn body_done(&self) -> bool {
        match &self.body {
            RequestBody::None => true,
            RequestBody::Length(left) => *left == 0,
            RequestBody::Chunked(decoder) => decoder.is_done(),
            RequestBody::FastCgi(decoder) => decoder.is_done(),
        }
    }

    /// Reads and discards what the app left of the body, so the connection can carry the
    /// next request. Gives up (the connection then closes) on large or broken bodies.
    pub(super) fn drain_body(&mut self) -> bool {
        if self.body_failed || !self.body_remaining_known {
            return false;
        }
        if let RequestBody::Length(left) = self.body {
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

    pub(super) fn read_body_inner(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        loop {
            match &mut self.body {
                RequestBody::None => return Ok(0),
                RequestBody::FastCgi(_) => return self.read_fastcgi_stdin(out, max),
                RequestBody::Length(left) => {
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
                    let n = self.read_waiting(|fd| sys::fd::read_limited(fd, out, want))?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the client closed the connection before sending the whole body",
                        ));
                    }
                    if let RequestBody::Length(left) = &mut self.body {
                        *left -= n as u64;
                    }
                    return Ok(n);
                }
                RequestBody::Chunked(decoder) => {
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

    /// The app's read, or the spool's: counts the bytes against `limit-post` and notes why a
    /// read failed for the status the client gets.
    pub(super) fn read_body_within_limit(
        &mut self,
        out: &mut Vec<u8>,
        max: usize,
    ) -> io::Result<usize> {
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
                    peer = %self.log.remote_addr,
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
                peer = %self.log.remote_addr,
                error = %err,
                "bad or incomplete request body; the connection will close"
            );
        }
        result
    }
}

/// A request body read ahead of the app: in memory up to `post-buffering` bytes, beyond that
/// in an unlinked temporary file (as uWSGI does), so a large upload does not sit in RAM.
pub(super) enum Spool {
    Memory { data: Vec<u8>, position: usize },
    File(std::fs::File),
}

impl Spool {
    pub(super) fn read(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
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
