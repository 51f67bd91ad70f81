//! The worker's side of FastCGI that is not one request's exchange: management records
//! (request id 0: `FCGI_GET_VALUES` and the like) waiting at the front of a connection are
//! answered here, between requests, before the next request's head is parsed.
//!
//! It does not parse records (`protocol::fastcgi`) or frame a response's records
//! (`exchange/fastcgi.rs`).

use std::os::fd::AsFd;

use super::conn::Conn;
use super::Shared;
use crate::config::Protocol;
use crate::protocol::fastcgi::{self, Management};
use crate::sys;

/// Answers and takes off the management records at the front of `conn.buf` of a FastCGI
/// listener's connection. `Ok(false)`: one has not arrived whole (read more before parsing a
/// request); `Err`: the connection must close (a malformed record, or the answer could not
/// be sent).
pub(super) fn answer_management(
    shared: &Shared,
    conn: &mut Conn,
    protocol: Protocol,
) -> Result<bool, ()> {
    if !matches!(protocol, Protocol::FastCgi { .. }) {
        return Ok(true);
    }
    // A worker serves as many requests at once as it has request threads.
    let capacity = shared.inflight.len().max(1);
    loop {
        match fastcgi::management(&conn.buf, capacity) {
            Ok(Management::None) => return Ok(true),
            Ok(Management::NeedMore) => return Ok(false),
            Ok(Management::Answered { consumed, reply }) => {
                conn.buf.drain(..consumed);
                send(shared, conn, &reply).map_err(|err| {
                    tracing::warn!(peer = %conn.peer_addr, error = %err, "cannot answer a FastCGI management record; closing the connection");
                })?;
            }
            Err(err) => {
                tracing::warn!(peer = %conn.peer_addr, error = %err, "bad FastCGI record; closing the connection");
                return Err(());
            }
        }
    }
}

/// Sends a short reply, waiting at most `socket-timeout` whenever the socket is full.
fn send(shared: &Shared, conn: &Conn, mut reply: &[u8]) -> std::io::Result<()> {
    while !reply.is_empty() {
        match sys::fd::send(conn.fd.as_fd(), reply) {
            Ok(n) => reply = &reply[n..],
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                let timeout = shared.settings.socket_timeout;
                if !sys::poll::wait_one(conn.fd.as_fd(), sys::poll::WRITABLE, timeout)? {
                    return Err(std::io::ErrorKind::TimedOut.into());
                }
            }
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
