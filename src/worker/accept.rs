//! Accept policy: when a request thread takes a new connection from a listener, how a
//! stopping worker empties its backlog, and which connections it closes when it stops.
//!
//! It does not read or serve requests: an accepted connection goes to `serve::drive`.

use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::conn::{lock_conns, Conn, FlushFirst, OpenConn};
use super::serve::{drive, STOP_TOKEN};
use super::turn::Turn;
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
/// connection on the nginx path, where each request comes on a new connection. It follows
/// the listener with a [`Chain`] instead. Returns whether a connection was accepted.
pub(super) fn accept_from(shared: &Shared, index: usize) -> bool {
    let accepted = accept_one(shared, index);
    shared
        .backlog_pending
        .store(accepted && shared.multithreaded, Ordering::Relaxed);
    accepted
}

/// How many connections a chain takes, counting the one that woke it, before the thread
/// looks at its epoll set again: as many as one wait hands out.
const CHAIN_AT_MOST: usize = 32;
/// The most listener wake-ups served singly after chains that found the backlog empty.
const REST_AT_MOST: u32 = 16;

/// Behind nginx every request is a new connection, and a loaded single-threaded worker spent
/// one `epoll_wait` per request only to hear that the listener was still ready. So when a
/// listener's wake-up was the only event of its wait (nothing else is waiting on this thread),
/// the worker takes the next connection straight from the backlog after serving one, as a
/// multithreaded worker does (`backlog_pending`), up to [`CHAIN_AT_MOST`]: parked connections
/// that become ready meanwhile wait at most that many requests, as they would behind a full
/// batch of events, and a stop or pause is noticed between two connections.
///
/// An accept that finds the backlog empty costs a system call the wait would not have. A
/// chain that took at least one connection paid for it; one that took none rests for the
/// next wake-ups, twice as many each time (up to [`REST_AT_MOST`]), so that a worker that gets
/// one connection at a time pays it for at most one connection in 17.
///
/// Connections are only taken once the previous one was served, so none waits in this
/// thread's hands while another worker could serve it: while this thread is not in
/// `epoll_wait`, `EPOLLEXCLUSIVE` wakes the other workers for new connections.
pub(super) struct Chain {
    /// Listener wake-ups still to serve without a chain.
    rest: u32,
    /// The rest after the next chain that takes nothing.
    next_rest: u32,
}

impl Chain {
    pub(super) fn new() -> Self {
        Chain {
            rest: 0,
            next_rest: 1,
        }
    }

    /// After a connection from listener `index` was served, the wait's only event.
    pub(super) fn follow(&mut self, shared: &Shared, index: usize, turn: &mut Turn) {
        if shared.multithreaded || !self.starts() {
            return;
        }
        let mut taken = 0;
        while taken < CHAIN_AT_MOST - 1 {
            if shared.stopping.load(Ordering::Acquire) || shared.paused.load(Ordering::Relaxed) {
                break;
            }
            turn.between_requests();
            if !accept_one(shared, index) {
                self.missed(taken);
                return;
            }
            taken += 1;
        }
        self.next_rest = 1;
    }

    /// Whether this wake-up starts a chain (else it is one of a rest's).
    fn starts(&mut self) -> bool {
        if self.rest > 0 {
            self.rest -= 1;
            return false;
        }
        true
    }

    /// A chain found the backlog empty after taking `taken` connections.
    fn missed(&mut self, taken: usize) {
        if taken == 0 {
            self.rest = self.next_rest;
            self.next_rest = (self.next_rest * 2).min(REST_AT_MOST);
        } else {
            self.next_rest = 1;
        }
    }
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
                _flush_first: FlushFirst,
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
                queued_at: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// How many of `wakeups` listener wake-ups start a chain when every chain takes `taken`.
    fn chains_started(wakeups: usize, taken: usize) -> usize {
        let mut chain = Chain::new();
        let mut started = 0;
        for _ in 0..wakeups {
            if chain.starts() {
                started += 1;
                chain.missed(taken);
            }
        }
        started
    }

    #[test]
    fn a_worker_getting_one_connection_at_a_time_rarely_tries_the_backlog() {
        // Rests of 1, 2, 4, 8, 16, 16, ...: the failed accepts cost one connection in 17.
        let started = chains_started(1_700, 0);
        assert!(
            started <= 1_700 / 17 + 5,
            "{started} chains for 1,700 wake-ups"
        );
    }

    #[test]
    fn a_loaded_worker_chains_on_every_wake_up() {
        assert_eq!(chains_started(100, 5), 100);
    }

    #[test]
    fn a_chain_that_took_connections_ends_the_rest_growth() {
        let mut chain = Chain::new();
        for _ in 0..10 {
            while !chain.starts() {}
            chain.missed(0);
        }
        assert_eq!(chain.rest, REST_AT_MOST);
        while !chain.starts() {}
        chain.missed(3);
        assert_eq!(
            chain.next_rest, 1,
            "a useful chain starts the rests small again"
        );
        while !chain.starts() {}
        chain.missed(0);
        assert_eq!(chain.rest, 1);
    }
}
