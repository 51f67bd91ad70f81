//! A client connection between requests: its state, the table of parked connections, and
//! how one is parked (epoll arming), closed, or left to linger after an error.
//!
//! It does not read requests or decide when to accept (`serve.rs`, `accept.rs`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::serve::current_core;
use super::Shared;
use crate::sys;

/// One client connection and the bytes read from it but not yet consumed.
pub struct Conn {
    /// Before `fd`: fields drop in order (see [`FlushFirst`]).
    pub _flush_first: FlushFirst,
    pub fd: OwnedFd,
    pub listener: usize,
    pub peer_addr: String,
    pub peer_port: String,
    pub buf: Vec<u8>,
    pub last_active: Instant,
    /// A request head has started arriving (slow clients get `socket-timeout`, idle
    /// keep-alive connections the keep-alive timeout).
    pub partial: bool,
    /// No request has been served on it yet.
    pub fresh: bool,
    /// Already added to the worker's epoll set (later parks re-arm with `EPOLL_CTL_MOD`).
    pub registered: bool,
    /// Armed edge-triggered for reading and still so: a single-threaded worker parks it
    /// again without a system call (see [`park_with`]).
    pub edge_armed: bool,
    /// The last request's body was not read to its end: the client may still be sending it.
    pub body_pending: bool,
    /// Closing after an error: what the client still sends is read and dropped until it
    /// closes or this deadline passes (see [`linger`]).
    pub linger_until: Option<Instant>,
    /// When the request head now arriving must be whole: `socket-timeout` after accept, or
    /// after its first byte on a kept-alive connection, however slowly it trickles in.
    pub head_deadline: Instant,
    /// Counts the connection as open in the worker's accept gate until dropped.
    pub _open: OpenConn,
    /// `enable-proxy-protocol`: the start was checked for a PROXY header.
    pub proxy_checked: bool,
    /// Its last response was queued (`deferred.rs`) when the queue had been sent this many
    /// times: if it still has, the queue goes out before anything else touches the connection
    /// (another request thread may pick it up next).
    pub queued_at: Option<u64>,
}

/// Sends a response queued for the connection (`deferred.rs`) before its fd closes, however
/// the connection ends: the queue holds the fd's number, which must not name another
/// connection's socket by the time it is sent. Only request threads queue, so the calling
/// thread's queue is the one. A field declared before `Conn::fd`, so dropped first.
pub struct FlushFirst;

impl Drop for FlushFirst {
    fn drop(&mut self) {
        super::deferred::flush_current();
    }
}

/// One open connection in the [`AcceptGate`](super::gate::AcceptGate)'s count.
pub struct OpenConn(pub(super) std::sync::Arc<super::gate::AcceptGate>);

impl Drop for OpenConn {
    fn drop(&mut self) {
        self.0.closed_one();
    }
}

/// How much one `read` of a connection asks for.
pub(super) const READ_SIZE: usize = 16 * 1024;

impl Conn {
    /// Readies a connection whose request was answered for its next request: a request
    /// already pipelined in its buffer has its head's clock start `now` (when the last one
    /// ended).
    pub(super) fn next_request(&mut self, shared: &Shared, now: Instant) {
        self.partial = !self.buf.is_empty();
        if self.partial {
            self.head_deadline = now + shared.settings.socket_timeout;
        }
        self.fresh = false;
        self.last_active = now;
    }
}

/// The parked connections, by fd. File descriptors are small distinct integers, so they are
/// their own hash: SipHash showed up at 1% of a worker's time on the nginx path.
pub type ConnTable = HashMap<RawFd, Conn, BuildHasherDefault<FdHasher>>;

#[derive(Default)]
pub struct FdHasher(u64);

impl Hasher for FdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8) | u64::from(byte);
        }
    }
    fn write_i32(&mut self, fd: i32) {
        self.0 = fd as u32 as u64;
    }
}

pub(super) fn lock_conns(shared: &Shared) -> std::sync::MutexGuard<'_, ConnTable> {
    shared.conns.lock().unwrap_or_else(|p| p.into_inner())
}

/// Gives a kept-alive connection back to the request threads after an offload thread sent
/// its answer. A request already read into its buffer (pipelined) must not wait for the
/// socket to become readable: it is armed for writability too, which fires at once.
pub(super) fn resume(shared: &Shared, mut conn: Conn) {
    // An edge that came while the offload thread held it found no connection in the table
    // and was dropped: re-arming makes the kernel check readiness again.
    conn.edge_armed = false;
    conn.next_request(shared, Instant::now());
    let extra = if conn.buf.is_empty() {
        0
    } else {
        sys::poll::EPOLLOUT
    };
    park_with(shared, conn, extra);
}

/// Parks a connection until it is readable again.
///
/// The connection enters the table and is armed under the table lock: a thread woken for
/// it blocks on the lock until it is there, and nothing can close it in between.
pub(super) fn park(shared: &Shared, conn: Conn) {
    park_with(shared, conn, 0);
}

/// Puts a connection in the table and (re-)arms it.
///
/// A worker with one request thread arms connections edge-triggered instead of one-shot: no
/// other thread waits on its epoll set, so nothing can wake for a connection this thread is
/// serving, and a kept-alive connection is parked without an `epoll_ctl` per request. An
/// edge that arrives while the thread serves it stays queued in the epoll set, and one that
/// arrived before its last read only costs a read that would block. With several threads
/// each park re-arms `EPOLLONESHOT`, so that a connection wakes one thread at a time.
fn park_with(shared: &Shared, mut conn: Conn, extra_events: u32) {
    if current_core().is_some() {
        super::read_buffer::give_back(&mut conn.buf);
    }
    let fd = conn.fd.as_raw_fd();
    let token = fd as u64;
    let edge = !shared.multithreaded && extra_events == 0;
    let events = if edge {
        sys::poll::EPOLLIN | sys::poll::EPOLLET | sys::poll::EPOLLRDHUP
    } else {
        sys::poll::EPOLLIN | sys::poll::EPOLLONESHOT | sys::poll::EPOLLRDHUP | extra_events
    };
    let first = !conn.registered;
    conn.registered = true;
    let mut conns = lock_conns(shared);
    if edge && conn.edge_armed {
        conns.insert(fd, conn);
        return;
    }
    conn.edge_armed = edge;
    let armed = if first {
        shared.epoll.add(conn.fd.as_fd(), events, token)
    } else {
        shared.epoll.modify(conn.fd.as_fd(), events, token)
    };
    match armed {
        Ok(()) => {
            conns.insert(fd, conn);
        }
        Err(err) => {
            drop(conns);
            tracing::error!(error = %err, "cannot watch a connection; closing it");
        }
    }
}

/// Closes a connection. Closing the fd also removes it from the epoll set (no other
/// process or fd shares the connection), so no `EPOLL_CTL_DEL` is needed.
pub(super) fn close(_shared: &Shared, mut conn: Conn) {
    if current_core().is_some() {
        super::read_buffer::give_back(&mut conn.buf);
    }
    drop(conn);
}

/// Closes a connection whose client may still be sending (an error answered before the
/// request was read whole). Closing with unread bytes makes the kernel send a reset, which can
/// reach the client, or nginx, before it has read the answer: a 413 would arrive as
/// "connection reset by peer", or as nginx's 502. So the write side is shut (the client sees
/// the answer, then EOF) and what still arrives is dropped until the client closes, for at most
/// `socket-timeout`, without holding a thread: the connection waits in the epoll set.
pub(super) fn linger(shared: &Shared, mut conn: Conn) {
    if let Some(deferred) = &shared.deferred {
        deferred.flush();
    }
    sys::net::shutdown_write(conn.fd.as_fd());
    conn.buf.clear();
    conn.linger_until = Some(Instant::now() + shared.settings.socket_timeout);
    discard(shared, conn);
}

/// Reads and drops what a lingering connection's client sends; closes on EOF, an error or
/// the deadline, else waits for more. The connection's own buffer takes the bytes.
pub(super) fn discard(shared: &Shared, mut conn: Conn) {
    loop {
        if conn
            .linger_until
            .is_some_and(|until| Instant::now() >= until)
        {
            close(shared, conn);
            return;
        }
        conn.buf.clear();
        match sys::fd::read_append(conn.fd.as_fd(), &mut conn.buf, READ_SIZE) {
            Ok(0) => {
                close(shared, conn);
                return;
            }
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                park(shared, conn);
                return;
            }
            Err(_) => {
                close(shared, conn);
                return;
            }
        }
    }
}

/// Closes connections idle past their timeout.
pub(super) fn sweep_idle(shared: &Shared) {
    let now = Instant::now();
    let mut conns = lock_conns(shared);
    let mut slow_heads = 0usize;
    let expired: Vec<i32> = conns
        .iter()
        .filter(|(_, c)| {
            if let Some(until) = c.linger_until {
                return now >= until;
            }
            if c.partial {
                // From the head's start, not its last byte: a client trickling one byte
                // every few seconds (slowloris) must not hold the connection for hours.
                return now >= c.head_deadline;
            }
            now.duration_since(c.last_active) > super::puwsgi::idle_timeout(shared, c.listener)
        })
        .map(|(fd, _)| *fd)
        .collect();
    for fd in expired {
        if let Some(conn) = conns.remove(&fd) {
            if conn.partial && conn.linger_until.is_none() {
                slow_heads += 1;
            }
            let _ = shared.epoll.delete(conn.fd.as_raw_fd());
        }
    }
    drop(conns);
    if slow_heads > 0 {
        // One line per sweep, however many: a slowloris flood must not flood the log.
        tracing::warn!(
            connections = slow_heads,
            "closed connections whose request head did not arrive whole within socket-timeout"
        );
    }
}

/// After a complete answer: readies the connection for its next request when it may carry
/// one (`keep`, and the worker is not stopping), else closes it, lingering if the client may
/// still be sending the body nobody read. `ended`: when the answer was complete.
pub(super) fn keep_or_close(
    shared: &Shared,
    mut conn: Conn,
    keep: bool,
    ended: Instant,
) -> Option<Conn> {
    if !keep || shared.stopping.load(Ordering::Acquire) {
        if conn.body_pending {
            linger(shared, conn);
        } else {
            close(shared, conn);
        }
        return None;
    }
    conn.next_request(shared, ended);
    Some(conn)
}
