//! Accept policy: when a request thread takes a new connection from a listener, how a
//! stopping worker empties its backlog, and which connections it closes when it stops.
//!
//! It does not read or serve requests: an accepted connection goes to `serve::drive`.

use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::conn::{lock_conns, Conn, OpenConn};
use super::serve::{drive, STOP_TOKEN};
use super::Shared;
use crate::sys;
use crate::sys::net::BindAddr;

/// How many queued connections a stopping worker takes from the backlog at most.
const BACKLOG_DRAIN: usize = 1024;

/// Stop accepting; close idle connections that have nothing pending, and let those with a
/// request already on the wire be served (with `Connection: close`). A connection accepted but
/// not yet heard from is a client about to send its first request: it is served too, within
/// `socket-timeout`.
pub(super) fn stop_accepting(shared: &Shared) {
    for listener in shared.listeners.iter() {
        let _ = shared.epoll.delete(listener.fd);
    }
    // A connection whose EPOLLEXCLUSIVE wake-up came to this worker just before the listener
    // left the set wakes nobody else: take whatever is in the backlog now and serve it.
    // Later arrivals wake the workers still listening.
    for index in 0..shared.listeners.len() {
        for _ in 0..BACKLOG_DRAIN {
            if !accept_one(shared, index) {
                break;
            }
        }
    }
    let mut conns = lock_conns(shared);
    let idle: Vec<i32> = conns
        .iter()
        .filter(|(_, conn)| !conn.fresh && conn.buf.is_empty() && !has_pending_input(conn))
        .map(|(fd, _)| *fd)
        .collect();
    for fd in idle {
        if let Some(conn) = conns.remove(&fd) {
            let _ = shared.epoll.delete(conn.fd.as_raw_fd());
        }
    }
    drop(conns);
    // Wake the next thread so it notices the stop too.
    let _ = shared.epoll.modify(
        shared.stop.as_fd(),
        sys::poll::EPOLLIN | sys::poll::EPOLLONESHOT,
        STOP_TOKEN,
    );
}

fn has_pending_input(conn: &Conn) -> bool {
    sys::poll::wait_one(conn.fd.as_fd(), sys::poll::READABLE, Duration::ZERO).unwrap_or(false)
}

/// Takes one new connection and serves it on this thread.
///
/// One per wake-up: a second connection taken here would wait behind the first while a
/// sibling thread or an idle worker could have had it (every idle thread of this worker is
/// also woken for the level-triggered listener, and the kernel skips workers with none,
/// `EPOLLEXCLUSIVE`).
///
/// When all threads are busy, though, the listener only gets its turn in the epoll queue
/// behind every ready connection, and a wave of new clients (256 slow requests, say) would
/// time out in the backlog. So a successful accept sets `backlog_pending`, and every thread
/// that finishes a request takes one more connection first, until the backlog is empty.
///
/// A single-threaded worker takes up to 32 events per wait, the listener among them whenever
/// it is ready, so it needs no such flag; setting it would cost a failed `accept4` after every
/// connection on the nginx path, where each request comes on a new connection.
pub(super) fn accept_from(shared: &Shared, index: usize) {
    let accepted = accept_one(shared, index);
    shared
        .backlog_pending
        .store(accepted && shared.multithreaded, Ordering::Relaxed);
}

/// Accepts one connection and serves it. A stopping worker still accepts the connection
/// that woke it (and serves it with `Connection: close`): the wake-up went to it alone.
/// Returns whether one was accepted.
pub(super) fn accept_one(shared: &Shared, index: usize) -> bool {
    match accept_conn(shared, index) {
        Some(conn) => {
            drive(shared, conn);
            true
        }
        None => false,
    }
}

pub(super) fn accept_conn(shared: &Shared, index: usize) -> Option<Conn> {
    if !shared.gate.is_open() {
        return None;
    }
    let listener = &shared.listeners[index];
    // A unix socket's peer has no address kaiser reports (REMOTE_ADDR comes from the uwsgi
    // packet or is empty), and no Nagle to turn off: it is accepted without either.
    let accepted = if listener.is_tcp {
        sys::net::accept(listener.fd()).map(|conn| {
            conn.map(|(fd, peer)| {
                sys::net::set_nodelay(fd.as_fd());
                (fd, peer)
            })
        })
    } else {
        sys::net::accept_unnamed(listener.fd()).map(|conn| conn.map(|fd| (fd, None)))
    };
    match accepted {
        Ok(Some((fd, peer))) => {
            shared.gate.accepted(shared);
            let open = OpenConn(shared.gate.clone());
            let (peer_addr, peer_port) = match peer {
                Some(BindAddr::Tcp(addr)) => (addr.ip().to_string(), addr.port().to_string()),
                _ => (String::new(), String::new()),
            };
            let now = Instant::now();
            Some(Conn {
                fd,
                listener: index,
                peer_addr,
                peer_port,
                buf: Vec::new(),
                last_active: now,
                // A new connection's first request is bounded by `socket-timeout`.
                partial: true,
                registered: false,
                edge_armed: false,
                fresh: true,
                body_pending: false,
                linger_until: None,
                head_deadline: now + shared.settings.socket_timeout,
                _open: open,
                proxy_checked: false,
            })
        }
        Ok(None) => None,
        Err(err) => {
            shared.gate.accept_failed(shared, &err);
            None
        }
    }
}

/// Whether no offload thread still holds a connection of this worker.
pub(super) fn offloads_done(shared: &Shared) -> bool {
    shared
        .offload
        .as_ref()
        .is_none_or(|offload| offload.in_flight.load(Ordering::Acquire) == 0)
}
