//! The request threads' loop: wait for events, hand listeners to the accept policy
//! (`accept.rs`), and read a ready connection's requests until it would block
//! ([`drive`]): parse the head by the listener's protocol, answer a health probe, or serve
//! the request (`request.rs`), then park the connection or read the next pipelined request.
//!
//! It does not decide what a request gets (`request.rs`) or how a connection is armed
//! (`conn.rs`).

use std::cell::Cell;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::accept::{accept_from, accept_one, offloads_done, stop_accepting};
use super::conn::{self, close, discard, linger, lock_conns, park, Conn, READ_SIZE};
use super::request_head::ParsedHead;
use super::Shared;
use crate::config::Protocol;
use crate::protocol::{http, response, uwsgi};
use crate::sys;

pub const STOP_TOKEN: u64 = u64::MAX;
const LISTENER_BASE: u64 = u64::MAX - 1 - 4096;

pub fn listener_token(index: usize) -> u64 {
    LISTENER_BASE + index as u64
}

thread_local! {
    /// This request thread's core index (its scoreboard slot), `None` off request threads.
    static CORE: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The calling request thread's core index.
pub fn current_core() -> Option<usize> {
    CORE.with(|core| core.get())
}

pub fn thread_loop(shared: &Shared, core: usize) {
    CORE.with(|cell| cell.set(Some(core)));
    if let Some(slot) = shared.slot().and_then(|w| w.core(core)) {
        slot.set_thread(sys::process::thread_ident(), sys::process::gettid() as u64);
    }
    let mut events = Vec::with_capacity(8);
    // With several threads, take one event at a time so that a ready connection is never
    // queued behind another one on a busy thread while a sibling is idle.
    let max_events = if shared.multithreaded { 1 } else { 32 };
    let mut last_sweep = Instant::now();
    let mut turn = super::turn::Turn::new();
    let mut chain = super::accept::Chain::new();
    super::deferred::set_current(shared.deferred.clone());
    loop {
        if shared.stopping.load(Ordering::Acquire)
            && lock_conns(shared).is_empty()
            && offloads_done(shared)
        {
            // Pass the stop on: wake a sibling so every thread gets to exit.
            let _ = shared.epoll.modify(
                shared.stop.as_fd(),
                sys::poll::EPOLLIN | sys::poll::EPOLLONESHOT,
                STOP_TOKEN,
            );
            return;
        }
        if shared.backlog_pending.load(Ordering::Relaxed)
            && !shared.stopping.load(Ordering::Acquire)
            && !shared.paused.load(Ordering::Relaxed)
            && shared.gate.is_open()
        {
            for index in 0..shared.listeners.len() {
                accept_from(shared, index);
            }
        }
        shared.gate.maybe_reopen(shared);
        let mut wait = shared.gate.wait_hint().unwrap_or(Duration::from_secs(1));
        // A queue left to a sibling still serving: take the next event if one is ready, but
        // do not sleep on the queue; a wait that finds nothing sends it below (`deferred.rs`).
        if shared.deferred.as_ref().is_some_and(|d| d.pending()) {
            wait = Duration::ZERO;
        }
        if let Err(err) = shared.epoll.wait(&mut events, max_events, Some(wait)) {
            tracing::error!(error = %err, "epoll_wait failed");
            return;
        }
        if let (Some(deferred), false) = (&shared.deferred, events.is_empty()) {
            deferred.batch_started();
        }
        if last_sweep.elapsed() >= Duration::from_secs(1) {
            last_sweep = Instant::now();
            conn::sweep_idle(shared);
        }
        if events.is_empty()
            && !shared.stopping.load(Ordering::Acquire)
            && !shared.paused.load(Ordering::Relaxed)
            && shared.gate.is_open()
        {
            // A quiet second: look at the backlog ourselves. With EPOLLEXCLUSIVE a
            // connection's wake-up goes to one worker; if that worker died before accepting
            // (harakiri, a crash), nobody else is woken until the next connection arrives.
            // This bounds such a stall to one second.
            for index in 0..shared.listeners.len() {
                accept_one(shared, index);
            }
        }
        for &(token, _) in events.iter() {
            // A thread handed several ready events at once is saturated: every request waits
            // in a queue anyway, and yielding would only add switches between busy workers
            // (10% fewer Flask requests a second with 64 keep-alive clients). It gives way
            // only when it takes one event at a time. (A thread of a multithreaded worker
            // always takes one: for those this tells nothing, and they always may yield.)
            if events.len() == 1 {
                turn.between_requests();
            }
            if token == STOP_TOKEN {
                stop_accepting(shared);
                continue;
            }
            if token >= LISTENER_BASE {
                let index = (token - LISTENER_BASE) as usize;
                if accept_from(shared, index) && events.len() == 1 {
                    chain.follow(shared, index, &mut turn);
                }
                continue;
            }
            let conn = lock_conns(shared).remove(&(token as i32));
            if let Some(conn) = conn {
                drive(shared, conn);
            }
        }
        // The batch is over: its responses go out together (`deferred.rs`), unless a sibling
        // thread is still serving: the last one to finish sends them. A wait that ended
        // without events (a look that found nothing to do, or a quiet second) sends them too.
        if let Some(deferred) = &shared.deferred {
            if events.is_empty() || deferred.batch_ended() {
                deferred.flush();
            }
        }
    }
}

/// Reads and serves requests on `conn` until it would block, closes, or is parked.
pub(super) fn drive(shared: &Shared, mut conn: Conn) {
    if conn.linger_until.is_some() {
        discard(shared, conn);
        return;
    }
    // Its last response may still be queued, by this thread or another: it goes first.
    if let (Some(queued), Some(deferred)) = (conn.queued_at.take(), &shared.deferred) {
        deferred.flush_if_still_queued(queued);
    }
    let max_head = shared.settings.buffer_size;
    let protocol = shared.listeners[conn.listener].protocol;
    if protocol == Protocol::Raw {
        // Nothing to parse: the connection itself is the request (`raw.rs`).
        super::raw::serve(shared, conn);
        return;
    }
    loop {
        let proxy = super::proxy_header::strip(shared, &mut conn, protocol);
        if proxy == super::proxy_header::Step::Invalid {
            close(shared, conn);
            return;
        }
        // FastCGI: management records in front of a request are answered first.
        let Ok(records_ready) = super::fastcgi::answer_management(shared, &mut conn, protocol)
        else {
            close(shared, conn);
            return;
        };
        if !conn.buf.is_empty() && proxy == super::proxy_header::Step::Ready && records_ready {
            // Parse from a buffer taken out of the connection, so that a complete request
            // can move the connection into its exchange while the head is still borrowed.
            let buf = std::mem::take(&mut conn.buf);
            match parse(&buf, protocol, max_head) {
                Ok(Some(head)) => {
                    conn.buf = buf[head.len()..].to_vec();
                    if shared.health.as_ref().is_some_and(|h| h.is_probe(&head)) {
                        super::health::answer(
                            shared,
                            conn,
                            head.is_head(),
                            head.protocol(),
                            head.fastcgi_id(),
                        );
                        return;
                    }
                    let next = super::request::serve(shared, conn, head);
                    super::read_buffer::keep(buf);
                    match next {
                        Some(next) => {
                            conn = next;
                            // Back to the queue rather than read again: a client that answers
                            // within microseconds would otherwise keep this thread to itself
                            // while other connections wait (seen as a 1 s p99 with 64
                            // keep-alive clients). A request already pipelined in the buffer
                            // is served first.
                            if conn.buf.is_empty() {
                                park(shared, conn);
                                return;
                            }
                            // A pipelined request: the last response goes out before
                            // anything else can be written here.
                            if let Some(deferred) = &shared.deferred {
                                deferred.flush();
                            }
                            continue;
                        }
                        None => return,
                    }
                }
                Ok(None) => conn.buf = buf,
                Err(err) => {
                    refuse(shared, conn, err);
                    return;
                }
            }
        }
        super::read_buffer::lend(&mut conn.buf);
        match sys::fd::read_append(conn.fd.as_fd(), &mut conn.buf, READ_SIZE) {
            Ok(0) => {
                close(shared, conn);
                return;
            }
            Ok(_) => {
                let now = Instant::now();
                if !conn.partial {
                    // The first bytes of a new request on a kept-alive connection.
                    conn.head_deadline = now + shared.settings.socket_timeout;
                }
                conn.partial = true;
                conn.last_active = now;
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                // An idle keep-alive connection is closed on stop; a new one has a request
                // on its way and is served.
                if shared.stopping.load(Ordering::Acquire) && conn.buf.is_empty() && !conn.fresh {
                    close(shared, conn);
                    return;
                }
                // A new connection's first request is bounded by `socket-timeout`, as a
                // started one is; only between requests does the keep-alive timeout apply.
                conn.partial = conn.fresh || !conn.buf.is_empty();
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

/// Why a request head was refused.
pub(super) enum BadHead {
    Http(http::ParseHttpError),
    Uwsgi(uwsgi::ParseUwsgiError),
    Scgi(crate::protocol::scgi::ParseScgiError),
    FastCgi(crate::protocol::fastcgi::ParseFastCgiError),
}

/// Parses the request head at the start of `buf` by the listener's protocol; `Ok(None)`:
/// more bytes are needed.
pub(super) fn parse(
    buf: &[u8],
    protocol: Protocol,
    max_head: usize,
) -> Result<Option<ParsedHead<'_>>, BadHead> {
    match protocol {
        Protocol::Http => http::parse_request_head(buf, max_head)
            .map(|head| head.map(ParsedHead::Http))
            .map_err(BadHead::Http),
        Protocol::Uwsgi => uwsgi::parse_packet(buf, max_head)
            .map(|packet| packet.map(ParsedHead::Uwsgi))
            .map_err(BadHead::Uwsgi),
        Protocol::Scgi { nph } => crate::protocol::scgi::parse_request(buf, max_head)
            .map(|packet| packet.map(|packet| ParsedHead::Scgi(packet, nph)))
            .map_err(BadHead::Scgi),
        Protocol::Puwsgi => uwsgi::parse_packet(buf, max_head)
            .map(|packet| packet.map(ParsedHead::Puwsgi))
            .map_err(BadHead::Uwsgi),
        // `drive` hands a raw connection to `raw.rs` before anything is parsed.
        Protocol::Raw => Ok(None),
        Protocol::FastCgi { nph } => crate::protocol::fastcgi::parse_request(buf, max_head)
            .map(|request| request.map(|request| ParsedHead::FastCgi(request, nph)))
            .map_err(BadHead::FastCgi),
    }
}

/// Answers a refused head and closes the connection. Over HTTP the client gets the status
/// (and the connection lingers, so the answer is not lost to a reset); the uwsgi protocol has
/// no way to report an error, so the connection just closes.
fn refuse(shared: &Shared, conn: Conn, err: BadHead) {
    match err {
        BadHead::Http(err) => {
            tracing::warn!(peer = %conn.peer_addr, error = %err, "bad HTTP request; closing the connection");
            let status = err.status();
            let reply = response::simple_response(
                status,
                response::reason_phrase(status),
                &format!("{err}\n"),
            );
            let _ = sys::fd::send(conn.fd.as_fd(), &reply);
            linger(shared, conn);
        }
        BadHead::Uwsgi(err) => {
            tracing::warn!(error = %err, "bad uwsgi packet; closing the connection");
            close(shared, conn);
        }
        BadHead::Scgi(err) => {
            tracing::warn!(error = %err, "bad SCGI request; closing the connection");
            close(shared, conn);
        }
        BadHead::FastCgi(err) => {
            tracing::warn!(peer = %conn.peer_addr, error = %err, "bad FastCGI request; closing the connection");
            close(shared, conn);
        }
    }
}
