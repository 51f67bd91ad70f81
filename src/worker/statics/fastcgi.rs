//! Static files over FastCGI (`fastcgi-socket`, `fastcgi-nph-socket`): the answer's bytes go
//! in `FCGI_STDOUT` records, then the empty `FCGI_STDOUT` and `FCGI_END_REQUEST`, and the
//! request's (empty) stdin stream is read off the connection, so that `FCGI_KEEP_CONN` can
//! carry the next request.
//!
//! The head (and a small body) are wrapped into records when the answer is planned
//! ([`frame`]); the file's range is sent by [`Transfer::advance`](super::Transfer) record by
//! record (an 8-byte header, then `sendfile(2)` of at most 65535 bytes; nginx and uWSGI use
//! no padding, nor does kaiser), on the request thread or an offload thread alike, which
//! therefore need nothing FastCGI-specific.
//!
//! It does not look files up, plan answers or account for requests (`lookup.rs`,
//! `answer.rs`), and it does not read a request body: a request whose stdin carries bytes is
//! the app's.

use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use crate::protocol::fastcgi::{self, StdinDecoder};
use crate::sys;
use crate::worker::conn::Conn;

/// Where a FastCGI answer stands in its records, beyond the bytes already framed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Records {
    /// The request id every record carries.
    pub(super) id: u16,
    /// Bytes of the current `FCGI_STDOUT` record still to come from the file.
    pub(super) left: usize,
    /// The end of the response (empty `FCGI_STDOUT`, `FCGI_END_REQUEST`) is still to be
    /// framed after the file.
    pub(super) end: bool,
}

/// Wraps `head` (the answer's head and any body it carries) into `FCGI_STDOUT` records of
/// request `id`; with no file to follow and `end`, the end of the response is appended too.
/// Returns the framed bytes and what is left for [`Transfer::advance`](super::Transfer).
pub(super) fn frame(head: &[u8], id: u16, file_follows: bool, end: bool) -> (Vec<u8>, Records) {
    let records = head.len().div_ceil(fastcgi::MAX_CONTENT);
    let mut out = Vec::with_capacity(head.len() + fastcgi::HEADER_LEN * (records + 3));
    for content in head.chunks(fastcgi::MAX_CONTENT) {
        out.extend_from_slice(&fastcgi::stdout_header(id, content.len()));
        out.extend_from_slice(content);
    }
    let end_now = end && !file_follows;
    if end_now {
        out.extend_from_slice(&fastcgi::end_request(id));
    }
    let records = Records {
        id,
        left: 0,
        end: end && !end_now,
    };
    (out, records)
}

/// What the request's stdin stream turned out to be.
pub(super) enum Stdin {
    /// It ended empty (nginx's GET: one empty `FCGI_STDIN`), and it was taken off the
    /// connection's buffer: the next request starts there.
    Ended,
    /// It carries bytes, is broken, or did not arrive within `socket-timeout`: the app's path
    /// reads (or refuses) it. Nothing was taken off the buffer.
    NotEmpty,
}

/// Reads request `id`'s stdin stream up to its end, waiting at most `timeout` for it (nginx
/// sends it with the params, so it is nearly always in the buffer already).
pub(super) fn take_empty_stdin(conn: &mut Conn, id: u16, timeout: Duration) -> Stdin {
    let deadline = Instant::now() + timeout;
    loop {
        let mut decoder = StdinDecoder::new(id, None);
        let mut sink = Vec::new();
        match decoder.decode(&conn.buf, &mut sink, 1) {
            Ok(decoded) if sink.is_empty() && decoded.done => {
                conn.buf.drain(..decoded.consumed);
                return Stdin::Ended;
            }
            Ok(_) if sink.is_empty() => {}
            Ok(_) | Err(_) => return Stdin::NotEmpty,
        }
        match read_more(conn, deadline) {
            Ok(true) => {}
            Ok(false) | Err(_) => return Stdin::NotEmpty,
        }
    }
}

/// Appends what arrives on the connection before `deadline`; false at EOF or on timeout.
fn read_more(conn: &mut Conn, deadline: Instant) -> io::Result<bool> {
    loop {
        match sys::fd::read_append(conn.fd.as_fd(), &mut conn.buf, 4096) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero()
                    || !sys::poll::wait_one(conn.fd.as_fd(), sys::poll::READABLE, left)?
                {
                    return Ok(false);
                }
            }
            Err(e) => return Err(e),
        }
    }
}
