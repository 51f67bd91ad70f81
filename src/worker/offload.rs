//! Offload threads (`offload-threads`): they finish sending static file bodies that a client
//! did not take at once, so that a request thread is free as soon as the answer is decided.
//!
//! Each thread has its own epoll set and a queue. A request thread that meets a full socket
//! hands the connection and what is left to send ([`Job`]) to one thread, round robin; the
//! thread waits for the socket to be writable and sends with non-blocking `sendfile`, for any
//! number of connections at once. A transfer that makes no progress for `socket-timeout`
//! is dropped (the connection closes). A finished keep-alive connection goes back to the
//! request threads' epoll set (`conn::resume`) for its next request.
//!
//! These threads never run Python, parse requests or log request lines; the request thread
//! logged the request when it handed it over (uWSGI's `via offload()`).

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::conn::{self, Conn};
use super::statics::Transfer;
use super::Shared;
use crate::sys;

/// A connection with the rest of a static answer to send.
pub struct Job {
    pub conn: Conn,
    pub transfer: Transfer,
    /// The connection serves another request once this answer is out.
    pub keep_alive: bool,
    pub timeout: Duration,
}

/// The offload threads of one worker.
pub struct Offload {
    lanes: Vec<Lane>,
    next: AtomicUsize,
    /// Jobs handed over and not yet finished: a stopping worker waits for them.
    pub in_flight: AtomicUsize,
}

struct Lane {
    queue: Mutex<Vec<Job>>,
    wake: sys::poll::EventFd,
}

const WAKE_TOKEN: u64 = u64::MAX;

impl Offload {
    /// `threads` lanes; their threads start with [`Offload::start`].
    pub fn new(threads: u32) -> std::io::Result<Self> {
        let lanes = (0..threads.max(1))
            .map(|_| {
                Ok(Lane {
                    queue: Mutex::new(Vec::new()),
                    wake: sys::poll::EventFd::new()?,
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Offload {
            lanes,
            next: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
        })
    }

    /// Starts one thread per lane. They live as long as the worker.
    pub fn start(shared: &Arc<Shared>) -> std::io::Result<()> {
        let Some(offload) = shared.offload.as_ref() else {
            return Ok(());
        };
        for index in 0..offload.lanes.len() {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("offload {index}"))
                .stack_size(256 * 1024)
                .spawn(move || run(&shared, index))?;
        }
        Ok(())
    }

    pub fn submit(&self, job: Job) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
        let lane = &self.lanes[index];
        lane.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(job);
        lane.wake.signal();
    }
}

struct Active {
    job: Job,
    last_progress: Instant,
}

fn run(shared: &Shared, index: usize) {
    let Some(offload) = shared.offload.as_ref() else {
        return;
    };
    let lane = &offload.lanes[index];
    let epoll = match sys::poll::Epoll::new() {
        Ok(epoll) => epoll,
        Err(err) => {
            tracing::error!(error = %err, "offload thread cannot create its epoll set");
            return;
        }
    };
    if let Err(err) = epoll.add(lane.wake.as_fd(), sys::poll::EPOLLIN, WAKE_TOKEN) {
        tracing::error!(error = %err, "offload thread cannot watch its queue");
        return;
    }
    let mut active: HashMap<RawFd, Active> = HashMap::new();
    let mut events = Vec::with_capacity(64);
    let mut last_sweep = Instant::now();
    loop {
        let wait = if active.is_empty() {
            None
        } else {
            Some(Duration::from_secs(1))
        };
        if epoll.wait(&mut events, 64, wait).is_err() {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        for &(token, _) in events.iter() {
            if token == WAKE_TOKEN {
                lane.wake.drain();
                let jobs =
                    std::mem::take(&mut *lane.queue.lock().unwrap_or_else(|p| p.into_inner()));
                for job in jobs {
                    let fd = job.conn.fd.as_raw_fd();
                    // Level-triggered: a socket that is writable now is served on the next
                    // wait at once.
                    match epoll.add(job.conn.fd.as_fd(), sys::poll::EPOLLOUT, fd as u64) {
                        Ok(()) => {
                            active.insert(
                                fd,
                                Active {
                                    job,
                                    last_progress: Instant::now(),
                                },
                            );
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "offload cannot watch a connection; closing it");
                            done(shared, offload, job, false);
                        }
                    }
                }
                continue;
            }
            let fd = token as RawFd;
            let Some(entry) = active.get_mut(&fd) else {
                continue;
            };
            let result = entry.job.transfer.advance(entry.job.conn.fd.as_fd());
            match result {
                Ok(false) => entry.last_progress = Instant::now(),
                Ok(true) | Err(_) => {
                    let entry = active.remove(&fd).expect("the entry was just found");
                    let _ = epoll.delete(fd);
                    done(shared, offload, entry.job, result.is_ok());
                }
            }
        }
        if last_sweep.elapsed() >= Duration::from_secs(1) {
            last_sweep = Instant::now();
            let now = Instant::now();
            let stale: Vec<RawFd> = active
                .iter()
                .filter(|(_, a)| now.duration_since(a.last_progress) > a.job.timeout)
                .map(|(fd, _)| *fd)
                .collect();
            for fd in stale {
                if let Some(entry) = active.remove(&fd) {
                    let _ = epoll.delete(fd);
                    tracing::debug!(peer = %entry.job.conn.peer_addr, "static transfer stalled past socket-timeout; closing");
                    done(shared, offload, entry.job, false);
                }
            }
        }
    }
}

/// A transfer ended: the connection goes back for its next request, or closes.
fn done(shared: &Shared, offload: &Offload, job: Job, complete: bool) {
    if complete && job.keep_alive && !shared.stopping.load(Ordering::Acquire) {
        conn::resume(shared, job.conn);
    }
    offload.in_flight.fetch_sub(1, Ordering::AcqRel);
}

/// Sends the rest of a job on the calling thread, each wait bounded by its timeout. For a
/// worker without offload threads. Returns the connection if it stays open.
pub fn send_blocking(mut job: Job) -> Option<(Conn, bool)> {
    loop {
        match job.transfer.advance(job.conn.fd.as_fd()) {
            Ok(true) => return Some((job.conn, job.keep_alive)),
            Ok(false) => {
                match sys::poll::wait_one(job.conn.fd.as_fd(), sys::poll::WRITABLE, job.timeout) {
                    Ok(true) => {}
                    _ => return None,
                }
            }
            Err(_) => return None,
        }
    }
}
