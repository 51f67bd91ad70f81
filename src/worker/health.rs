//! `health-check-path`: a probe answered by the worker, never by the app, so that a load
//! balancer's or Kubernetes' health check does not queue behind application requests.
//!
//! Two places answer it:
//! - a request thread, right after parsing a request head and before anything reaches
//!   Python (`serve.rs` calls [`Health::is_probe`] on the parsed head, whatever its
//!   protocol);
//! - the worker's probe thread, a plain thread that never touches Python, while every
//!   request thread is busy. Then nobody accepts, so a probe would wait in the backlog for
//!   as long as the slowest request. The probe thread accepts instead, peeks at the request
//!   without consuming it (`MSG_PEEK`), answers a probe itself, and hands anything else to
//!   the request threads through the worker's epoll set, its bytes unread, exactly as a
//!   kept-alive connection waits there. It takes at most [`MAX_TAKEN`] such connections
//!   while the worker stays saturated: a probe queued behind more than that waits like any
//!   request, which is the right answer for an instance that overloaded.
//!
//! The answer is `200 ok`, or `503 draining` once the master started a graceful stop
//! (`health-drain-delay`, see `vassal/master/drain.rs`) or the worker is stopping, or 503
//! when the app failed to load and `need-app = false` serves 500s in its place. Probes
//! are not logged and not counted in the request figures: they are not the app's traffic.
//! Connections are closed after the answer.
//!
//! It does not decide when the vassal drains, and never runs Python.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::conn::{self, Conn};
use super::request_head::ParsedHead;
use super::Shared;
use crate::config::Protocol;
use crate::sys;

/// Connections the probe thread takes from the backlog per saturated spell, probe or not.
pub const MAX_TAKEN: usize = 64;
/// How long the probe thread waits for a taken connection's request head.
const HEAD_WAIT: Duration = Duration::from_millis(100);
/// How long a whole request taken from the backlog may wait for a request thread.
const QUEUED_WAIT: Duration = Duration::from_secs(24 * 3600);
/// Before taking a connection, another worker with an idle thread gets this long to take it.
const GRACE: Duration = Duration::from_millis(1);

pub struct Health {
    path: Box<[u8]>,
    threads: usize,
    /// Request threads between a parsed head and the end of their request.
    busy: AtomicUsize,
    /// The probe thread waits for saturation: only then does [`Health::enter`] wake it (a
    /// condvar notification is a system call; a request must not pay one for nothing).
    sleeping: AtomicBool,
    /// `need-app = false` and the app failed to load: every request gets a 500, so probes
    /// fail too (a readiness probe keeps traffic away, a liveness probe restarts it).
    app_unavailable: bool,
    /// Locked only when the worker becomes saturated, to wake the probe thread.
    saturated: Mutex<()>,
    wake: Condvar,
}

impl Health {
    pub fn new(path: &str, threads: usize, app_unavailable: bool) -> Self {
        Health {
            app_unavailable,
            path: path.as_bytes().into(),
            threads: threads.max(1),
            busy: AtomicUsize::new(0),
            sleeping: AtomicBool::new(false),
            saturated: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    /// A request thread starts a request (its head is parsed).
    pub fn enter(&self) {
        // SeqCst pairs with the probe thread's store of `sleeping` then load of `busy`: one
        // of the two sides sees the other, so a saturation is never slept through.
        if self.busy.fetch_add(1, Ordering::SeqCst) + 1 >= self.threads
            && self.sleeping.load(Ordering::SeqCst)
        {
            let _guard = self.saturated.lock().unwrap_or_else(|p| p.into_inner());
            self.wake.notify_all();
        }
    }

    pub fn leave(&self) {
        self.busy.fetch_sub(1, Ordering::Relaxed);
    }

    fn is_saturated(&self) -> bool {
        self.busy.load(Ordering::SeqCst) >= self.threads
    }

    pub(super) fn is_probe(&self, head: &ParsedHead<'_>) -> bool {
        matches!(head.method(), b"GET" | b"HEAD") && head.raw_path() == &*self.path
    }
}

/// Answers a probe on `conn` and closes it. The head is the protocol's, as the app's and
/// static files' are: CGI's `Status:` line over SCGI and FastCGI (unless their `-nph`
/// variants), an HTTP status line otherwise. Over FastCGI (`fastcgi`: the request id) the
/// answer goes in records, and the connection lingers: the rest of the request's stdin may
/// still be unread.
pub fn answer(
    shared: &Shared,
    conn: Conn,
    head_only: bool,
    protocol: Protocol,
    fastcgi: Option<u16>,
) {
    let draining =
        shared.stopping.load(Ordering::Acquire) || shared.scoreboard.metrics().draining();
    let unavailable = shared.health.as_ref().is_some_and(|h| h.app_unavailable);
    let (status, body) = if draining {
        ("503 Service Unavailable", "draining\n")
    } else if unavailable {
        ("503 Service Unavailable", "the app failed to load\n")
    } else {
        ("200 OK", "ok\n")
    };
    let status_line = match protocol {
        Protocol::Scgi { nph: false } | Protocol::FastCgi { nph: false } => "Status:",
        _ => "HTTP/1.1",
    };
    let mut reply = format!(
        "{status_line} {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        reply.push_str(body);
    }
    if let Some(id) = fastcgi {
        let mut records = crate::protocol::fastcgi::stdout_header(id, reply.len()).to_vec();
        records.extend_from_slice(reply.as_bytes());
        records.extend_from_slice(&crate::protocol::fastcgi::end_request(id));
        let _ = sys::fd::send(conn.fd.as_fd(), &records);
        conn::linger(shared, conn);
        return;
    }
    let _ = sys::fd::send(conn.fd.as_fd(), reply.as_bytes());
    sys::net::shutdown_write(conn.fd.as_fd());
}

/// Starts the worker's probe thread, if `health-check-path` is set.
pub fn start_probe_thread(shared: &Arc<Shared>) {
    if shared.health.is_none() {
        return;
    }
    let shared = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("kaiser-health".into())
        .stack_size(256 * 1024)
        .spawn(move || probe_loop(&shared));
    if let Err(err) = spawned {
        tracing::warn!(error = %err, "cannot start the health probe thread; probes are answered by request threads only");
    }
}

fn probe_loop(shared: &Shared) {
    let Some(health) = shared.health.as_ref() else {
        return;
    };
    let mut taken = 0usize;
    loop {
        if shared.stopping.load(Ordering::Acquire) {
            return;
        }
        if !health.is_saturated() || taken >= MAX_TAKEN {
            let guard = health.saturated.lock().unwrap_or_else(|p| p.into_inner());
            health.sleeping.store(true, Ordering::SeqCst);
            let saturated = health.is_saturated();
            if !saturated {
                taken = 0;
                let _ = health
                    .wake
                    .wait_timeout(guard, Duration::from_millis(200))
                    .unwrap_or_else(|p| p.into_inner());
            } else {
                drop(guard);
            }
            health.sleeping.store(false, Ordering::SeqCst);
            if saturated && taken >= MAX_TAKEN {
                std::thread::sleep(Duration::from_millis(20));
            }
            continue;
        }
        // Paused, or at its connection cap: the listeners stay readable and nothing may be
        // accepted, so polling them would spin.
        if shared.paused.load(Ordering::Relaxed) || !shared.gate.is_open() {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let fds: Vec<_> = shared
            .listeners
            .iter()
            // A raw connection has no head to tell a probe by: the request threads take it.
            .map(|l| match l.protocol {
                crate::config::Protocol::Raw => (l.fd(), 0),
                _ => (l.fd(), sys::poll::READABLE),
            })
            .collect();
        let revents = match sys::poll::poll(&fds, Some(Duration::from_millis(50))) {
            Ok(revents) => revents,
            Err(err) => {
                tracing::warn!(error = %err, "health probe thread: poll failed; it stops");
                return;
            }
        };
        drop(fds);
        for (index, revent) in revents.into_iter().enumerate() {
            if revent == 0 || !health.is_saturated() {
                continue;
            }
            if another_worker_is_free(shared) {
                // Its idle thread is woken for this connection too: let it have it.
                std::thread::sleep(GRACE);
            }
            if let Some(conn) = super::accept::accept_conn(shared, index) {
                taken += 1;
                triage(shared, health, conn);
            }
        }
    }
}

fn another_worker_is_free(shared: &Shared) -> bool {
    let board = &shared.scoreboard;
    (1..=board.workers() as u32)
        .filter(|id| *id != shared.worker_id)
        .any(|id| board.has_free_thread(id))
}

/// A connection the probe thread took: answered here if it is a probe, else left, unread,
/// for the request threads.
fn triage(shared: &Shared, health: &Health, mut conn: Conn) {
    let protocol = shared.listeners[conn.listener].protocol;
    let max_head = shared.settings.buffer_size;
    let mut buf = vec![0u8; max_head.min(16 * 1024)];
    let deadline = Instant::now() + HEAD_WAIT;
    loop {
        let n = match sys::net::peek(conn.fd.as_fd(), &mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(_) => return,
        };
        if n > 0 {
            let probe = match super::serve::parse(&buf[..n], protocol, max_head) {
                Ok(Some(head)) => Some(health.is_probe(&head).then_some((
                    head.len(),
                    head.is_head(),
                    head.protocol(),
                    head.fastcgi_id(),
                ))),
                Ok(None) => None,
                Err(_) => Some(None),
            };
            match probe {
                Some(Some((len, head_only, protocol, fastcgi))) => {
                    // Consume the probe's head (it arrived whole: peek saw it).
                    let mut consumed = 0;
                    while consumed < len {
                        match sys::fd::read(conn.fd.as_fd(), &mut buf[..len - consumed]) {
                            Ok(0) | Err(_) => return,
                            Ok(read) => consumed += read,
                        }
                    }
                    answer(shared, conn, head_only, protocol, fastcgi);
                    return;
                }
                // A whole request that is not a probe, or a bad one: the request threads
                // serve (or refuse) it. It waits for a free thread as it would have in the
                // backlog, so `socket-timeout` (meant for slow clients) does not apply.
                Some(None) => {
                    conn.head_deadline = Instant::now() + QUEUED_WAIT;
                    break;
                }
                None if n == buf.len() => break,
                None => {}
            }
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if n == 0 {
            let _ = sys::poll::wait_one(conn.fd.as_fd(), sys::poll::READABLE, deadline - now);
        } else {
            // Part of a head: readable already, so poll would not wait for the rest.
            std::thread::sleep(Duration::from_millis(1).min(deadline - now));
        }
    }
    conn::park(shared, conn);
}
