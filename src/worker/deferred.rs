//! Responses sent together at the end of a batch of events.
//!
//! A worker's request threads share one queue. A single thread takes up to 32 ready
//! connections from one `epoll_wait` and serves them one by one; each of several threads takes
//! one at a time. A response that is whole in the write buffer (head and body together, the
//! connection kept alive) is not sent at once but queued here, and the queue goes out when the
//! batch is over, just before the thread waits again: with several threads, when the last
//! thread still serving goes back to waiting (see "What bounds the wait"). Sending N
//! responses back to back costs the kernel less than N sends spaced by N app calls: on
//! loopback each send delivers the segment
//! into the client's socket and wakes its epoll there and then, and the client's structures
//! are still in this core's cache for the next send; the client also finds several responses
//! per wake-up. Measured on the 2-core VM with 64 keep-alive clients (`bench/README.md`):
//! hello world 157k → 166k requests a second, the kernel's share of a request 2.2 → 1.9 µs.
//!
//! What bounds the wait:
//! - A request that ends [`HOLD`] or more after the oldest queued response's request started
//!   sends the queue, its own response included. A queue of quick responses (hello world,
//!   a few µs each) goes out at the batch's end; one of responses that take longer (a
//!   minimal Flask view takes about 90 µs) every few requests, so that no client waits long
//!   for its neighbours' app calls, while the client still finds several responses per
//!   wake-up. That wake-up is what batching saves most on: a client asleep on another core
//!   is woken by an interprocessor interrupt sent from inside the server's `send`, which on
//!   this VM costs the server's core about 15 µs (`bench/README.md`).
//! - With several request threads, a thread that finishes its batch while a sibling is still
//!   serving leaves the queue to that sibling, as long as it has more to do itself: it looks
//!   for its next event without waiting, and when there is none it sends the queue before it
//!   sleeps. So the queue waits only while every thread is busy, that is under load, and
//!   then the rules above bound it. Measured with two threads, Flask over HTTP
//!   (`bench/README.md`): 12,644 → 15,073 requests a second.
//! - Nothing is queued while the worker's typical request (a moving average of the last
//!   eight or so) takes [`HOLD`] or more: such requests send the queue as they end anyway,
//!   and an app that waits on a database gains nothing from batching; queueing would only
//!   keep the ticker below awake.
//! - A response queued before an app call that then runs long is sent by the ticker thread:
//!   it looks every [`TICK`] while the worker is busy, and sends a queue it saw at its last
//!   look and that nobody has sent since. No response waits more than two ticks.
//! - Anything else that happens to a connection with a queued response (the next pipelined
//!   request, on whichever thread; closing it; a stop) sends the queue first, so bytes on a
//!   connection keep their order: a connection remembers the queue's flush count when its
//!   response was queued ([`Deferred::queue`]), and [`Deferred::flush_if_still_queued`]
//!   sends the queue if no flush happened since.
//!
//! A queued send that fails shuts the connection down: the thread then sees it closed. The
//! request's log line was written as if the response went out (it was complete and valid;
//! only the network failed afterwards).

use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::sys;

/// How long a queued response may wait for the requests after it (see the module's doc).
pub const HOLD: Duration = Duration::from_micros(500);

/// How often the ticker looks at the queue while the worker is busy.
const TICK: Duration = Duration::from_millis(2);

/// Ticks in a row that found the queue empty, after which the ticker stops looking until the
/// next queued response wakes it.
const IDLE_TICKS: u32 = 100;

/// Buffers kept for reuse (each at most [`SPARE_MAX_BYTES`]).
const SPARES: usize = 64;
const SPARE_MAX_BYTES: usize = 64 * 1024;

thread_local! {
    /// The worker's queue, on its request thread (set by `serve::thread_loop`).
    static CURRENT: std::cell::RefCell<Option<std::sync::Arc<Deferred>>> =
        const { std::cell::RefCell::new(None) };
}

/// Makes `deferred` the calling request thread's queue.
pub fn set_current(deferred: Option<std::sync::Arc<Deferred>>) {
    CURRENT.with(|current| *current.borrow_mut() = deferred);
}

/// Queues `bytes` for `fd` on the calling thread's queue, for the request that started at
/// `started`: the queue's flush count then (see [`Deferred::queue`]), or `None` (and `bytes`
/// untouched) when the thread has no queue, or the worker's requests take [`HOLD`] or more
/// (see [`Deferred::batching`]). `unblock` is called before waiting for the queue.
pub fn queue_current(
    fd: RawFd,
    bytes: &mut Vec<u8>,
    started: Instant,
    unblock: &mut dyn FnMut(),
) -> Option<u64> {
    CURRENT.with(|current| {
        current
            .borrow()
            .as_deref()
            .filter(|deferred| deferred.batching())
            .map(|deferred| deferred.queue(fd, bytes, started, unblock))
    })
}

/// At the end of a request (`started` to `ended`): counts its length in the worker's typical
/// request, and sends the calling thread's queue if its oldest response's request started
/// [`HOLD`] or more before.
pub fn request_ended(started: Instant, ended: Instant) {
    let _ = CURRENT.try_with(|current| {
        if let Some(deferred) = current.borrow().as_deref() {
            deferred.count_request(ended.saturating_duration_since(started));
            deferred.flush_if_held_since(ended);
        }
    });
}

/// Sends the calling thread's queue now.
pub fn flush_current() {
    // `try_with`: a connection may be dropped while the thread's locals are being destroyed
    // (nothing is queued on such a thread: only request threads queue, and they flush as
    // they leave their loop).
    let _ = CURRENT.try_with(|current| {
        if let Some(deferred) = current.borrow().as_deref() {
            deferred.flush();
        }
    });
}

pub struct Deferred {
    state: Mutex<State>,
    /// Wakes an idle ticker.
    wake: Condvar,
    /// Something is queued: lets a flush with nothing to send (every closed connection) skip
    /// the lock.
    pending: AtomicBool,
    /// How long a queued send may wait for a client that does not read (`socket-timeout`).
    timeout: Duration,
    /// Request threads between taking events from `epoll_wait` and waiting again.
    serving: AtomicUsize,
    /// How many times the queue was sent, read without the lock (`flush_if_still_queued`).
    sent: AtomicU64,
    /// The worker's typical request, in µs: a moving average over its last eight or so.
    typical_us: AtomicU64,
}

#[derive(Default)]
struct State {
    queue: Vec<(RawFd, Vec<u8>)>,
    /// When the request of the queue's first response started.
    oldest: Option<Instant>,
    spares: Vec<Vec<u8>>,
    /// Counts the flushes: the ticker sends only a queue that was there at its last look
    /// and that no flush emptied since.
    flushes: u64,
    ticker_idle: bool,
}

impl Deferred {
    pub fn new(timeout: Duration) -> Self {
        Deferred {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            pending: AtomicBool::new(false),
            timeout,
            serving: AtomicUsize::new(0),
            sent: AtomicU64::new(0),
            typical_us: AtomicU64::new(0),
        }
    }

    /// Counts one request's length in the typical request (an exponential moving average,
    /// weight 1/8; threads racing on it lose an update at worst).
    pub fn count_request(&self, length: Duration) {
        let length = length.as_micros().min(u128::from(u32::MAX)) as i64;
        let typical = self.typical_us.load(Ordering::Relaxed) as i64;
        let typical = typical + (length - typical) / 8;
        self.typical_us
            .store(typical.max(0) as u64, Ordering::Relaxed);
    }

    /// Whether responses are queued at all: only while the worker's typical request is
    /// shorter than [`HOLD`]. Longer requests (an app waiting on a database) would send the
    /// queue as they end anyway; queueing their responses would only keep the ticker awake.
    pub fn batching(&self) -> bool {
        self.typical_us.load(Ordering::Relaxed) < HOLD.as_micros() as u64
    }

    /// A request thread took events from `epoll_wait` and serves them.
    pub fn batch_started(&self) {
        self.serving.fetch_add(1, Ordering::AcqRel);
    }

    /// A request thread served its events; true when no other thread is serving any, and the
    /// queue is this thread's to send.
    pub fn batch_ended(&self) -> bool {
        self.serving.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// Something is queued: a thread must not sleep on it (see the module's doc).
    pub fn pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Sends the queue if it was not sent since a response was queued at flush count `queued`:
    /// that response may still be in it.
    pub fn flush_if_still_queued(&self, queued: u64) {
        if self.sent.load(Ordering::Acquire) == queued {
            self.flush();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues the whole response in `bytes` for the connection `fd`; `bytes` is left with an
    /// empty buffer to reuse. Returns the flush count, for [`Self::flush_if_still_queued`].
    /// The ticker, or a sibling thread, may hold the queue while it waits for a client that
    /// reads slowly: then `unblock` is called first (the app's caller lets the GIL go, as it
    /// does before any wait for a client).
    pub fn queue(
        &self,
        fd: RawFd,
        bytes: &mut Vec<u8>,
        started: Instant,
        unblock: &mut dyn FnMut(),
    ) -> u64 {
        let mut state = match self.state.try_lock() {
            Ok(state) => state,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                unblock();
                self.lock()
            }
        };
        let spare = state.spares.pop().unwrap_or_default();
        state.queue.push((fd, std::mem::replace(bytes, spare)));
        state.oldest.get_or_insert(started);
        self.pending.store(true, Ordering::Release);
        if state.ticker_idle {
            state.ticker_idle = false;
            self.wake.notify_one();
        }
        state.flushes
    }

    /// Sends the queue if its first response's request started [`HOLD`] or more before `now`.
    pub fn flush_if_held_since(&self, now: Instant) {
        if self.pending.load(Ordering::Acquire) {
            let mut state = self.lock();
            if state
                .oldest
                .is_some_and(|oldest| now.saturating_duration_since(oldest) >= HOLD)
            {
                self.send_all(&mut state);
            }
        }
    }

    /// Sends everything queued, in order.
    pub fn flush(&self) {
        if self.pending.load(Ordering::Acquire) {
            self.send_all(&mut self.lock());
        }
    }

    fn send_all(&self, state: &mut State) {
        let mut queue = std::mem::take(&mut state.queue);
        for (fd, mut bytes) in queue.drain(..) {
            // SAFETY: a connection's fd closes only after the queue is sent (`Conn`'s
            // `FlushFirst` field drops first; `conn::linger` flushes before its shutdown), so
            // `fd` is still the connection's it was queued for.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            if send_whole(fd, &bytes, self.timeout).is_err() {
                sys::net::shutdown_both(fd);
            }
            if state.spares.len() < SPARES && bytes.capacity() <= SPARE_MAX_BYTES {
                bytes.clear();
                state.spares.push(bytes);
            }
        }
        state.queue = queue;
        state.oldest = None;
        state.flushes += 1;
        self.sent.store(state.flushes, Ordering::Release);
        self.pending.store(false, Ordering::Release);
    }

    /// The ticker thread: sends a queue that waited through a whole tick (the request thread
    /// is in a long app call), and sleeps while nothing is queued.
    pub fn tick_forever(&self) {
        let mut state = self.lock();
        let mut idle_ticks = 0;
        loop {
            if state.queue.is_empty() && idle_ticks >= IDLE_TICKS {
                state.ticker_idle = true;
                while state.ticker_idle {
                    state = self.wake.wait(state).unwrap_or_else(|p| p.into_inner());
                }
                idle_ticks = 0;
            }
            let seen = (!state.queue.is_empty()).then_some(state.flushes);
            state = self
                .wake
                .wait_timeout(state, TICK)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            if state.queue.is_empty() {
                idle_ticks += 1;
            } else {
                idle_ticks = 0;
                if seen == Some(state.flushes) {
                    self.send_all(&mut state);
                }
            }
        }
    }
}

/// Sends `bytes` whole, waiting for a client that reads slowly up to `timeout` at a time.
fn send_whole(fd: BorrowedFd<'_>, mut bytes: &[u8], timeout: Duration) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match sys::fd::send(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if !sys::poll::wait_one(fd, sys::poll::WRITABLE, timeout)? {
                    return Err(std::io::ErrorKind::TimedOut.into());
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;
    use std::time::Instant;

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (a, b)
    }

    /// Queues `bytes` for `server`, from a thread that needs no GIL let go.
    fn put(deferred: &Deferred, server: &UnixStream, bytes: &[u8], started: Instant) {
        deferred.queue(server.as_raw_fd(), &mut bytes.to_vec(), started, &mut || {});
    }

    #[test]
    fn a_flush_sends_every_queued_response_in_order_and_reuses_the_buffers() {
        let deferred = Deferred::new(Duration::from_secs(1));
        let (server, mut client) = pair();
        for part in [&b"first "[..], b"second"] {
            let mut bytes = part.to_vec();
            deferred.queue(server.as_raw_fd(), &mut bytes, Instant::now(), &mut || {});
            assert!(bytes.is_empty());
        }
        deferred.flush();
        let mut got = [0u8; 12];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"first second");
        assert_eq!(deferred.lock().spares.len(), 2);
        assert!(!deferred.pending.load(Ordering::Acquire));
    }

    #[test]
    fn a_queue_is_held_until_its_oldest_request_started_hold_ago() {
        let deferred = Deferred::new(Duration::from_secs(1));
        let (server, mut client) = pair();
        client.set_nonblocking(true).unwrap();
        let started = Instant::now();
        put(&deferred, &server, b"first", started);
        let later = started + HOLD / 2;
        put(&deferred, &server, b"second", later);
        deferred.flush_if_held_since(started + HOLD - Duration::from_micros(1));
        let mut got = [0u8; 16];
        assert_eq!(
            client.read(&mut got).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::WouldBlock),
            "sent before the oldest request started HOLD ago"
        );
        deferred.flush_if_held_since(started + HOLD);
        client.set_nonblocking(false).unwrap();
        let mut got = [0u8; 11];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"firstsecond");
        assert!(
            deferred.lock().oldest.is_none(),
            "a sent queue has no oldest"
        );
    }

    #[test]
    fn the_last_thread_to_end_its_batch_sends_the_queue() {
        let deferred = Deferred::new(Duration::from_secs(1));
        deferred.batch_started();
        deferred.batch_started();
        assert!(!deferred.batch_ended(), "a sibling is still serving");
        assert!(deferred.batch_ended(), "the last one to end");
        deferred.batch_started();
        assert!(deferred.batch_ended(), "a thread alone always is the last");
    }

    #[test]
    fn responses_are_queued_only_while_the_typical_request_is_shorter_than_the_hold() {
        let deferred = Deferred::new(Duration::from_secs(1));
        assert!(deferred.batching(), "a new worker batches");
        for _ in 0..8 {
            deferred.count_request(Duration::from_micros(80));
        }
        assert!(deferred.batching(), "Flask-like requests");
        deferred.count_request(Duration::from_millis(50));
        assert!(
            !deferred.batching(),
            "one 50 ms request among short ones is enough to stop"
        );
        let mut short_ones = 0;
        while !deferred.batching() {
            deferred.count_request(Duration::from_micros(80));
            short_ones += 1;
            assert!(short_ones < 100, "never batches again");
        }
        assert!(
            (10..40).contains(&short_ones),
            "batching again after {short_ones} short requests"
        );
    }

    #[test]
    fn a_connection_s_check_sends_the_queue_only_if_its_response_may_still_be_in_it() {
        let deferred = Deferred::new(Duration::from_secs(1));
        let (server, mut client) = pair();
        client.set_nonblocking(true).unwrap();
        let queued = deferred.queue(
            server.as_raw_fd(),
            &mut b"first".to_vec(),
            Instant::now(),
            &mut || {},
        );
        deferred.flush();
        // Queued after that flush: a check for the first response must not send it.
        put(&deferred, &server, b"second", Instant::now());
        deferred.flush_if_still_queued(queued);
        let mut got = [0u8; 16];
        assert_eq!(client.read(&mut got).unwrap(), 5, "only the first was sent");
        assert_eq!(&got[..5], b"first");
        let queued = deferred.queue(
            server.as_raw_fd(),
            &mut b"third".to_vec(),
            Instant::now(),
            &mut || {},
        );
        deferred.flush_if_still_queued(queued);
        client.set_nonblocking(false).unwrap();
        let mut got = [0u8; 11];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"secondthird");
    }

    #[test]
    fn the_ticker_sends_a_response_left_queued_behind_a_long_app_call() {
        let deferred = Arc::new(Deferred::new(Duration::from_secs(1)));
        let ticker = deferred.clone();
        std::thread::spawn(move || ticker.tick_forever());
        // Let it go idle first (100 empty looks), so the queue has to wake it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !deferred.lock().ticker_idle {
            assert!(Instant::now() < deadline, "the ticker never went idle");
            std::thread::sleep(TICK * 10);
        }
        let (server, mut client) = pair();
        let queued = Instant::now();
        put(&deferred, &server, b"late", queued);
        // Nobody flushes: the request thread would be inside the app.
        let mut got = [0u8; 4];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"late");
        let waited = queued.elapsed();
        assert!(waited >= TICK, "sent after {waited:?}, before a whole tick");
        assert!(waited < Duration::from_secs(1), "sent after {waited:?}");
    }

    #[test]
    fn queueing_behind_a_busy_ticker_lets_the_gil_go_first() {
        let deferred = Arc::new(Deferred::new(Duration::from_secs(1)));
        let (server, _client) = pair();
        let mut unblocked = false;
        deferred.queue(
            server.as_raw_fd(),
            &mut b"free".to_vec(),
            Instant::now(),
            &mut || unblocked = true,
        );
        assert!(!unblocked, "an uncontended queue must not let the GIL go");
        // The ticker holds the queue (as while it waits on a slow client) until the queueing
        // thread lets the GIL go; were it never to, the holder gives up after a while and the
        // assertion below fails.
        let held = deferred.clone();
        let (locked, release) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let holder = std::thread::spawn(move || {
            let _state = held.lock();
            locked.0.send(()).unwrap();
            let _ = release.1.recv_timeout(Duration::from_secs(5));
        });
        locked.1.recv().unwrap();
        let release = release.0;
        deferred.queue(
            server.as_raw_fd(),
            &mut b"busy".to_vec(),
            Instant::now(),
            &mut || {
                unblocked = true;
                let _ = release.send(());
            },
        );
        assert!(
            unblocked,
            "waiting for the queue without letting the GIL go"
        );
        assert_eq!(deferred.lock().queue.len(), 2);
        holder.join().unwrap();
    }

    #[test]
    fn a_queued_send_to_a_client_that_left_shuts_the_connection_down() {
        let deferred = Deferred::new(Duration::from_secs(1));
        let (server, client) = pair();
        drop(client);
        put(&deferred, &server, b"nobody reads", Instant::now());
        deferred.flush();
        // Shut down for reading too: the request thread's next read sees the end.
        let mut rest = Vec::new();
        assert_eq!((&server).read_to_end(&mut rest).unwrap(), 0);
    }
}
