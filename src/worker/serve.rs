//! The request threads' loop: accept, read a request head, run it, keep the connection.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::exchange::{ConnExchange, Framing as BodyFraming};
use super::Shared;
use crate::config::Protocol;
use crate::protocol::{http, uwsgi};
use crate::python::RequestVars;
use crate::sys;
use crate::sys::net::BindAddr;

pub const STOP_TOKEN: u64 = u64::MAX;
const LISTENER_BASE: u64 = u64::MAX - 1 - 4096;

pub fn listener_token(index: usize) -> u64 {
    LISTENER_BASE + index as u64
}

/// One client connection and the bytes read from it but not yet consumed.
pub struct Conn {
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
}

/// One open connection in the [`AcceptGate`](super::gate::AcceptGate)'s count.
pub struct OpenConn(std::sync::Arc<super::gate::AcceptGate>);

impl Drop for OpenConn {
    fn drop(&mut self) {
        self.0.closed_one();
    }
}

const READ_SIZE: usize = 16 * 1024;
/// How many queued connections a stopping worker takes from the backlog at most.
const BACKLOG_DRAIN: usize = 1024;

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
        let wait = shared.gate.wait_hint().unwrap_or(Duration::from_secs(1));
        if let Err(err) = shared.epoll.wait(&mut events, max_events, Some(wait)) {
            tracing::error!(error = %err, "epoll_wait failed");
            return;
        }
        if last_sweep.elapsed() >= Duration::from_secs(1) {
            last_sweep = Instant::now();
            sweep_idle(shared);
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
                accept_from(shared, (token - LISTENER_BASE) as usize);
                continue;
            }
            let conn = lock_conns(shared).remove(&(token as i32));
            if let Some(conn) = conn {
                drive(shared, conn);
            }
        }
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

fn lock_conns(shared: &Shared) -> std::sync::MutexGuard<'_, ConnTable> {
    shared.conns.lock().unwrap_or_else(|p| p.into_inner())
}

/// Stop accepting; close idle connections that have nothing pending, and let those with a
/// request already on the wire be served (with `Connection: close`). A connection accepted but
/// not yet heard from is a client about to send its first request: it is served too, within
/// `socket-timeout`.
fn stop_accepting(shared: &Shared) {
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

/// Closes connections idle past their timeout.
fn sweep_idle(shared: &Shared) {
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
            now.duration_since(c.last_active) > shared.limits.keepalive_timeout
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
fn accept_from(shared: &Shared, index: usize) {
    let accepted = accept_one(shared, index);
    shared
        .backlog_pending
        .store(accepted && shared.multithreaded, Ordering::Relaxed);
}

/// Accepts one connection and serves it. A stopping worker still accepts the connection
/// that woke it (and serves it with `Connection: close`): the wake-up went to it alone.
/// Returns whether one was accepted.
fn accept_one(shared: &Shared, index: usize) -> bool {
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
    match sys::net::accept(listener.fd()) {
        Ok(Some((fd, peer))) => {
            shared.gate.accepted(shared);
            let open = OpenConn(shared.gate.clone());
            if listener.is_tcp {
                sys::net::set_nodelay(fd.as_fd());
            }
            let (peer_addr, peer_port) = match peer {
                Some(BindAddr::Tcp(addr)) => (addr.ip().to_string(), addr.port().to_string()),
                _ => (String::new(), String::new()),
            };
            Some(Conn {
                fd,
                listener: index,
                peer_addr,
                peer_port,
                buf: Vec::new(),
                last_active: Instant::now(),
                // A new connection's first request is bounded by `socket-timeout`.
                partial: true,
                registered: false,
                edge_armed: false,
                fresh: true,
                body_pending: false,
                linger_until: None,
                head_deadline: Instant::now() + shared.limits.socket_timeout,
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
fn offloads_done(shared: &Shared) -> bool {
    shared
        .offload
        .as_ref()
        .is_none_or(|offload| offload.in_flight.load(Ordering::Acquire) == 0)
}

/// Gives a kept-alive connection back to the request threads after an offload thread sent
/// its answer. A request already read into its buffer (pipelined) must not wait for the
/// socket to become readable: it is armed for writability too, which fires at once.
pub(super) fn resume(shared: &Shared, mut conn: Conn) {
    // An edge that came while the offload thread held it found no connection in the table
    // and was dropped: re-arming makes the kernel check readiness again.
    conn.edge_armed = false;
    conn.partial = !conn.buf.is_empty();
    conn.fresh = false;
    conn.last_active = Instant::now();
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

/// Reads and serves requests on `conn` until it would block, closes, or is parked.
fn drive(shared: &Shared, mut conn: Conn) {
    if conn.linger_until.is_some() {
        discard(shared, conn);
        return;
    }
    let max_head = shared.limits.buffer_size;
    let protocol = shared.listeners[conn.listener].protocol;
    loop {
        let proxy = super::proxy_header::strip(shared, &mut conn, protocol);
        if proxy == super::proxy_header::Step::Invalid {
            close(shared, conn);
            return;
        }
        if !conn.buf.is_empty() && proxy == super::proxy_header::Step::Ready {
            // Parse from a buffer taken out of the connection, so that a complete request
            // can move the connection into its exchange while the head is still borrowed.
            let buf = std::mem::take(&mut conn.buf);
            match protocol {
                Protocol::Http => match http::parse_request_head(&buf, max_head) {
                    Ok(Some(head)) => {
                        conn.buf = buf[head.len..].to_vec();
                        if shared
                            .health
                            .as_ref()
                            .is_some_and(|h| h.is_probe_http(&head))
                        {
                            super::health::answer(shared, conn, head.method == b"HEAD");
                            return;
                        }
                        match serve_http(shared, conn, head) {
                            Some(next) => {
                                conn = next;
                                super::read_buffer::keep(buf);
                                // Back to the queue rather than read again: a client that
                                // answers within microseconds would otherwise keep this
                                // thread to itself while other connections wait (seen as a
                                // 1 s p99 with 64 keep-alive clients). A request already
                                // pipelined in the buffer is served first.
                                if conn.buf.is_empty() {
                                    park(shared, conn);
                                    return;
                                }
                                continue;
                            }
                            None => return,
                        }
                    }
                    Ok(None) => conn.buf = buf,
                    Err(err) => {
                        tracing::warn!(peer = %conn.peer_addr, error = %err, "bad HTTP request; closing the connection");
                        let status = err.status();
                        let reply = crate::protocol::response::simple_response(
                            status,
                            reason(status),
                            &format!("{err}\n"),
                        );
                        let _ = sys::fd::send(conn.fd.as_fd(), &reply);
                        linger(shared, conn);
                        return;
                    }
                },
                Protocol::Uwsgi => match uwsgi::parse_packet(&buf, shared.limits.buffer_size) {
                    Ok(Some(packet)) => {
                        conn.buf = buf[packet.len..].to_vec();
                        if shared
                            .health
                            .as_ref()
                            .is_some_and(|h| h.is_probe_uwsgi(&packet))
                        {
                            let head_only = super::health::is_head_uwsgi(&packet);
                            super::health::answer(shared, conn, head_only);
                            return;
                        }
                        serve_uwsgi(shared, conn, packet);
                        super::read_buffer::keep(buf);
                        return;
                    }
                    Ok(None) => conn.buf = buf,
                    Err(err) => {
                        tracing::warn!(error = %err, "bad uwsgi packet; closing the connection");
                        close(shared, conn);
                        return;
                    }
                },
                // Served as a uwsgi packet; the exchange writes SCGI's head.
                Protocol::Scgi { .. } => match crate::protocol::scgi::parse_request(&buf, max_head)
                {
                    Ok(Some(packet)) => {
                        conn.buf = buf[packet.len..].to_vec();
                        serve_uwsgi(shared, conn, packet);
                        super::read_buffer::keep(buf);
                        return;
                    }
                    Ok(None) => conn.buf = buf,
                    Err(err) => {
                        tracing::warn!(error = %err, "bad SCGI request; closing the connection");
                        close(shared, conn);
                        return;
                    }
                },
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
                    conn.head_deadline = now + shared.limits.socket_timeout;
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

/// Closes a connection. Closing the fd also removes it from the epoll set (no other
/// process or fd shares the connection), so no `EPOLL_CTL_DEL` is needed.
fn close(_shared: &Shared, mut conn: Conn) {
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
fn linger(shared: &Shared, mut conn: Conn) {
    sys::net::shutdown_write(conn.fd.as_fd());
    conn.buf.clear();
    conn.linger_until = Some(Instant::now() + shared.limits.socket_timeout);
    discard(shared, conn);
}

/// Reads and drops what a lingering connection's client sends; closes on EOF, an error or
/// the deadline, else waits for more. The connection's own buffer takes the bytes.
fn discard(shared: &Shared, mut conn: Conn) {
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

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// Serves one HTTP request whose head is at the start of `conn.buf`. Returns the
/// connection if it stays open for another request.
fn serve_http(shared: &Shared, conn: Conn, head: http::RequestHead<'_>) -> Option<Conn> {
    let conn = match super::statics::serve_http(shared, conn, &head) {
        Ok(next) => return next,
        Err(conn) => conn,
    };
    let framing = match head.body {
        http::BodyFraming::None => BodyFraming::None,
        http::BodyFraming::Length(n) => BodyFraming::Length(n),
        http::BodyFraming::Chunked => {
            BodyFraming::Chunked(http::ChunkedDecoder::new(shared.limits.buffer_size))
        }
    };
    let vars = http::cgi_vars(&head);
    let listener = conn.listener;
    let peer_addr = conn.peer_addr.clone();
    let peer_port = conn.peer_port.clone();
    let mut exchange = ConnExchange::new(
        conn,
        shared,
        framing,
        Protocol::Http,
        head.version,
        head.method == b"HEAD",
        head.keep_alive && !shared.stopping.load(Ordering::Acquire),
        head.expect_continue,
    );
    super::log_recycle::set_lossy(&mut exchange.log.method, head.method);
    super::log_recycle::set_lossy(&mut exchange.log.uri, head.target);
    exchange.log.protocol.push_str(head.version.as_str());
    exchange.log.var_count = vars.len() + 8;
    exchange.log.packet_size = vars.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    if shared.limits.log_x_forwarded_for {
        if let Some((_, value)) = vars
            .iter()
            .find(|(k, _)| k.as_ref() == b"HTTP_X_FORWARDED_FOR")
        {
            exchange.log.forwarded_for = String::from_utf8_lossy(value.as_ref()).into_owned();
        }
    }
    super::request_log::capture(
        &shared.limits.request_log,
        &mut exchange.log,
        vars.iter().map(|(k, v)| (k.as_ref(), v.as_ref())),
    );
    begin_request(shared, &mut exchange);
    if !within_limit_post(shared, &mut exchange) || !prebuffer(shared, &mut exchange) {
        return finish(
            shared,
            Box::new(exchange),
            crate::python::Outcome {
                aborted: true,
                app_error: false,
            },
        );
    }
    let mut iter = vars.iter().map(|(k, v)| (k.as_ref(), v.as_ref()));
    let request = RequestVars {
        listener,
        vars: &mut iter,
        remote: Some((peer_addr.as_str(), peer_port.as_str())),
    };
    let (exchange, outcome) = run_app(shared, request, Box::new(exchange));
    finish(shared, exchange, outcome)
}

/// Serves one uwsgi-protocol request. The connection always closes afterwards: the
/// response is close-delimited, as nginx's `uwsgi_pass` expects.
fn serve_uwsgi(shared: &Shared, conn: Conn, packet: uwsgi::Packet<'_>) {
    let Err(conn) = super::statics::serve_uwsgi(shared, conn, &packet) else {
        return;
    };
    let packet_len = packet.len;
    let find = |name: &[u8]| {
        packet
            .vars
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    };
    let content_length: u64 = find(b"CONTENT_LENGTH")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let framing = if content_length > 0 {
        BodyFraming::Length(content_length)
    } else {
        BodyFraming::None
    };
    let version = match find(b"SERVER_PROTOCOL") {
        Some(b"HTTP/1.1") => http::Version::Http11,
        _ => http::Version::Http10,
    };
    let is_head = find(b"REQUEST_METHOD") == Some(b"HEAD");
    let listener = conn.listener;
    let protocol = shared.listeners[conn.listener].protocol;
    let mut exchange = ConnExchange::new(
        conn, shared, framing, protocol, version, is_head, false, false,
    );
    exchange.log.method =
        String::from_utf8_lossy(find(b"REQUEST_METHOD").unwrap_or(b"")).into_owned();
    exchange.log.uri = String::from_utf8_lossy(
        find(b"REQUEST_URI")
            .or_else(|| find(b"PATH_INFO"))
            .unwrap_or(b""),
    )
    .into_owned();
    exchange.log.protocol =
        String::from_utf8_lossy(find(b"SERVER_PROTOCOL").unwrap_or(b"HTTP/1.0")).into_owned();
    exchange.log.remote_addr =
        String::from_utf8_lossy(find(b"REMOTE_ADDR").unwrap_or(b"")).into_owned();
    exchange.log.remote_user =
        String::from_utf8_lossy(find(b"REMOTE_USER").unwrap_or(b"")).into_owned();
    exchange.log.var_count = packet.vars.len();
    if shared.limits.log_x_forwarded_for {
        if let Some(value) = find(b"HTTP_X_FORWARDED_FOR") {
            exchange.log.forwarded_for = String::from_utf8_lossy(value).into_owned();
        }
    }
    exchange.log.packet_size = packet_len - uwsgi::HEADER_LEN;
    super::request_log::capture(
        &shared.limits.request_log,
        &mut exchange.log,
        packet.vars.iter().map(|(k, v)| (*k, *v)),
    );
    begin_request(shared, &mut exchange);
    if !within_limit_post(shared, &mut exchange) || !prebuffer(shared, &mut exchange) {
        let outcome = crate::python::Outcome {
            aborted: true,
            app_error: false,
        };
        if let Some(conn) = finish(shared, Box::new(exchange), outcome) {
            close(shared, conn);
        }
        return;
    }
    let mut iter = packet.vars.iter().map(|(k, v)| (*k, *v));
    let request = RequestVars {
        listener,
        vars: &mut iter,
        remote: None,
    };
    let (exchange, outcome) = run_app(shared, request, Box::new(exchange));
    if let Some(conn) = finish(shared, exchange, outcome) {
        close(shared, conn);
    }
}

/// The app, behind the internal routes when there are any (`route*`: `crate::routing`).
fn run_app(
    shared: &Shared,
    request: RequestVars<'_>,
    exchange: Box<dyn crate::python::Exchange>,
) -> (Box<dyn crate::python::Exchange>, crate::python::Outcome) {
    match &shared.limits.routes {
        None => shared.runner.run(request, exchange),
        Some(routes) => crate::routing::serve(routes, request, exchange, |request, exchange| {
            shared.runner.run(request, exchange)
        }),
    }
}

/// The head is parsed: show the request on the scoreboard (its harakiri clock starts) and
/// let harakiri answer on its connection.
/// `post-buffering`: the body is read whole before the app runs. A body that does not arrive
/// is answered here (400, or 408 on `socket-timeout`) and the app is not called.
fn prebuffer(shared: &Shared, exchange: &mut ConnExchange) -> bool {
    let threshold = shared.limits.post_buffering;
    if threshold == 0 {
        return true;
    }
    if exchange.prebuffer(threshold).is_ok() {
        return true;
    }
    use crate::python::Exchange;
    let status = exchange
        .request_error_status()
        .unwrap_or(b"400 Bad Request");
    let body: &[u8] = if status.starts_with(b"413") {
        limit_message(exchange.body_limit().1)
    } else {
        b"the request body did not arrive whole\n"
    };
    answer_body_error(exchange, status, body);
    false
}

/// The 413's body, naming the option that refused the body.
fn limit_message(option: &str) -> &'static [u8] {
    match option {
        "limit-post-default" => {
            b"the request body is larger than this server accepts (limit-post-default)\n"
        }
        _ => b"the request body is larger than this server accepts (limit-post)\n",
    }
}

/// `limit-post` (or `limit-post-default` for a post-buffered body): a declared body over the
/// limit is answered 413 before the app runs. (A chunked one fails when its reading passes
/// the limit; see `ConnExchange::read_body`.)
fn within_limit_post(_shared: &Shared, exchange: &mut ConnExchange) -> bool {
    let (limit, option) = exchange.body_limit();
    match exchange.declared_length() {
        Some(length) if limit != 0 && length > limit => {
            tracing::warn!(peer = %exchange.log.remote_addr, length, limit, option, "the request body is larger than {option}; answered 413");
            answer_body_error(exchange, b"413 Content Too Large", limit_message(option));
            false
        }
        _ => true,
    }
}

/// Answers a request whose body will not reach the app; the connection then closes.
fn answer_body_error(exchange: &mut ConnExchange, status: &[u8], body: &[u8]) {
    use crate::python::Exchange;
    let headers = [(b"Content-Type".to_vec(), b"text/plain".to_vec())];
    let head = crate::python::ResponseHead {
        status,
        headers: &headers,
        content_length: Some(body.len() as u64),
    };
    let _ = exchange.respond(Some(head), body, true);
}

fn begin_request(shared: &Shared, exchange: &mut ConnExchange) {
    if let Some(health) = &shared.health {
        health.enter();
    }
    let Some(core) = current_core() else {
        return;
    };
    if let Some(inflight) = shared.inflight.get(core) {
        inflight.start(exchange.raw_fd());
        exchange.inflight = Some(inflight.clone());
    }
    if let Some(slot) = shared.slot().and_then(|w| w.core(core)) {
        let log = &exchange.log;
        slot.begin_request(
            crate::sys::clock::monotonic_us(),
            &log.method,
            &log.uri,
            &log.remote_addr,
        );
    }
}

/// Logs the request and decides whether the connection lives on.
/// What the request path knows of a finished request besides its log record.
pub(super) struct Finished {
    /// The worker's request count, this one included.
    pub total: u64,
    pub core: Option<usize>,
    pub app_error: bool,
    /// `uwsgi.log_this_request()`.
    pub asked: bool,
    /// `uwsgi.set_logvar()`.
    pub logvars: Vec<(String, String)>,
    /// A `donotlog` route ran: no request line, whatever the log conditions say.
    pub silenced: bool,
}

/// Accounts a finished request, app or static file alike: the worker's scoreboard totals,
/// the Prometheus counters and, when its conditions hold, the request line.
pub(super) fn account(shared: &Shared, log: &super::exchange::RequestLog, finished: Finished) {
    let elapsed_us = log.elapsed.as_micros() as u64;
    if let Some(worker) = shared.slot() {
        worker.count_request(
            elapsed_us,
            (log.header_bytes as u64).saturating_add(log.body_bytes),
            finished.app_error,
        );
        shared
            .scoreboard
            .metrics()
            .record(shared.worker_id, log.status, elapsed_us);
    }
    let limits = &shared.limits;
    if !finished.silenced
        && limits
            .log_conditions
            .should_log(limits.disable_logging, &log.facts(finished.asked))
    {
        let origin = super::request_log::Origin {
            pid: shared.pid,
            worker_id: shared.worker_id,
            total_requests: finished.total,
            core: finished.core.unwrap_or(0),
            logvars: finished.logvars,
        };
        super::request_log::write(&limits.request_log, limits.line_format, log, &origin);
    }
}

fn finish(
    shared: &Shared,
    exchange: Box<dyn crate::python::Exchange>,
    outcome: crate::python::Outcome,
) -> Option<Conn> {
    let exchange: Box<ConnExchange> = exchange
        .into_any()
        .downcast()
        .expect("the exchange given to the runner is a ConnExchange");
    if let Some(health) = &shared.health {
        health.leave();
    }
    let total = shared.requests.fetch_add(1, Ordering::Relaxed) + 1;
    // Before the connection can close: harakiri must not answer on a reused fd.
    let core = current_core();
    if let Some(inflight) = core.and_then(|c| shared.inflight.get(c)) {
        inflight.finish();
    }
    if let Some(slot) = shared.slot().and_then(|w| w.core(core?)) {
        slot.end_request();
    }
    let (conn, reusable, log) = exchange.into_parts(outcome);
    // A `donotlog` route: no line for this request.
    let silenced = shared.limits.routes.is_some() && crate::routing::take_do_not_log();
    let asked = crate::python::take_log_this_request();
    // Taken whether or not the line is written, so none leaks into the next request.
    let logvars = crate::python::take_logvars();
    account(
        shared,
        &log,
        Finished {
            total,
            core,
            app_error: outcome.app_error,
            asked,
            logvars,
            silenced,
        },
    );
    // After the request is counted: a replacement asked for here must not be seen (stats,
    // metrics) before the request that asked for it.
    super::after_request(shared, total);
    super::options::after_request(shared, outcome.app_error);
    if core.is_some() {
        super::log_recycle::recycle(log);
    }
    let mut conn = conn?;
    if !reusable || shared.stopping.load(Ordering::Acquire) {
        if conn.body_pending {
            linger(shared, conn);
        } else {
            close(shared, conn);
        }
        return None;
    }
    let now = Instant::now();
    conn.partial = !conn.buf.is_empty();
    if conn.partial {
        // A pipelined request: its head's clock starts now.
        conn.head_deadline = now + shared.limits.socket_timeout;
    }
    conn.fresh = false;
    conn.last_active = now;
    Some(conn)
}
