//! Readiness: `poll(2)` for the master's few fds and for a worker thread waiting on one
//! socket, `epoll(7)` for a worker's shared connection set, and `eventfd(2)` for wake-ups.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

pub const READABLE: i16 = libc::POLLIN;
pub const WRITABLE: i16 = libc::POLLOUT;

fn millis(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(d) => d.as_millis().min(i32::MAX as u128) as libc::c_int,
    }
}

/// Waits until each fd has one of its `events` (or an error/hangup), or the timeout passes.
/// Returns the `revents` of each fd, all zero on timeout. EINTR counts as a timeout: the
/// master's loop looks at everything again anyway.
pub fn poll(fds: &[(BorrowedFd<'_>, i16)], timeout: Option<Duration>) -> io::Result<Vec<i16>> {
    match poll_once(fds, timeout) {
        Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(vec![0; fds.len()]),
        other => other,
    }
}

/// One `poll(2)`; EINTR is an error.
fn poll_once(fds: &[(BorrowedFd<'_>, i16)], timeout: Option<Duration>) -> io::Result<Vec<i16>> {
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|(fd, events)| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: *events,
            revents: 0,
        })
        .collect();
    // SAFETY: `pollfds` is a valid array of `len` pollfd structs.
    let ret = unsafe {
        libc::poll(
            pollfds.as_mut_ptr(),
            pollfds.len() as libc::nfds_t,
            millis(timeout),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pollfds.iter().map(|p| p.revents).collect())
}

/// Waits for one fd; true when it is ready (or in error, which the next read/write reports),
/// false when `timeout` passed. A signal handler interrupting the wait (an app's
/// `signal.setitimer`, a profiler's SIGPROF) does not end it: the wait resumes for what is
/// left of `timeout`.
pub fn wait_one(fd: BorrowedFd<'_>, events: i16, timeout: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match poll_once(&[(fd, events)], Some(left)) {
            Ok(revents) => return Ok(revents[0] != 0),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
}

pub const EPOLLIN: u32 = libc::EPOLLIN as u32;
pub const EPOLLOUT: u32 = libc::EPOLLOUT as u32;
pub const EPOLLEXCLUSIVE: u32 = libc::EPOLLEXCLUSIVE as u32;
pub const EPOLLONESHOT: u32 = libc::EPOLLONESHOT as u32;
pub const EPOLLRDHUP: u32 = libc::EPOLLRDHUP as u32;
pub const EPOLLET: u32 = libc::EPOLLET as u32;

pub struct Epoll(OwnedFd);

impl Epoll {
    pub fn new() -> io::Result<Self> {
        // SAFETY: creating a new epoll instance.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd that we own.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: `event` is a valid epoll_event; the kernel copies it.
        if unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd, &mut event) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn add(&self, fd: BorrowedFd<'_>, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd.as_raw_fd(), events, token)
    }

    pub fn modify(&self, fd: BorrowedFd<'_>, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd.as_raw_fd(), events, token)
    }

    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Waits for events; fills `out` with `(token, events)`, at most `max` of them (and at
    /// most [`Epoll::MAX_EVENTS`]). EINTR gives no events.
    pub fn wait(
        &self,
        out: &mut Vec<(u64, u32)>,
        max: usize,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        out.clear();
        // On the stack: a worker thread waits here between requests, so no allocation.
        let mut events =
            [const { std::mem::MaybeUninit::<libc::epoll_event>::uninit() }; Self::MAX_EVENTS];
        let max = max.clamp(1, Self::MAX_EVENTS);
        // SAFETY: `events` has room for `max` entries; epoll_wait writes at most that many
        // and returns the count.
        let n = unsafe {
            libc::epoll_wait(
                self.0.as_raw_fd(),
                events.as_mut_ptr().cast(),
                max as libc::c_int,
                millis(timeout),
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(err);
        }
        out.extend(events[..n as usize].iter().map(|e| {
            // SAFETY: epoll_wait initialised the first `n` entries.
            let e = unsafe { e.assume_init_ref() };
            (e.u64, e.events)
        }));
        Ok(())
    }

    /// The most events one [`Epoll::wait`] returns.
    pub const MAX_EVENTS: usize = 64;
}

/// An eventfd used as a level-triggered "something changed" flag shared by threads.
pub struct EventFd(OwnedFd);

impl EventFd {
    pub fn new() -> io::Result<Self> {
        // SAFETY: creating a new eventfd.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd that we own.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a valid u64. A full counter (EAGAIN) still leaves the
        // fd readable, which is all a waiter needs.
        unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}

impl EventFd {
    /// Resets the counter, so a level-triggered waiter sleeps until the next `signal`.
    pub fn drain(&self) {
        let mut count: u64 = 0;
        // SAFETY: reading 8 bytes into a valid u64; EAGAIN (already zero) is fine.
        unsafe { libc::read(self.0.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
