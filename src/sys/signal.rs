//! Signals as file descriptors: masters and workers block the signals they handle and read
//! them from a signalfd inside their event loop, so no code runs in async-signal context.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

pub use libc::{
    SIGCHLD, SIGHUP, SIGINT, SIGKILL, SIGPIPE, SIGQUIT, SIGTERM, SIGTSTP, SIGUSR1, SIGUSR2,
};

#[derive(Clone, Copy)]
pub struct SigSet(libc::sigset_t);

impl SigSet {
    pub fn empty() -> Self {
        // SAFETY: sigemptyset initialises the zeroed set it is given.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            SigSet(set)
        }
    }

    pub fn of(signals: &[libc::c_int]) -> Self {
        let mut set = Self::empty();
        for &sig in signals {
            // SAFETY: `set` is an initialised sigset and `sig` a valid signal number.
            unsafe { libc::sigaddset(&mut set.0, sig) };
        }
        set
    }
}

/// Makes sure none of `signals` is ignored, for a process that reads them from a signalfd:
/// an ignored signal is discarded when it is sent, blocked or not, so it never reaches the
/// signalfd. `nohup` ignores SIGHUP, and a shell script's `cmd &` ignores SIGINT and
/// SIGQUIT; without this, `kill -HUP` would not reload a master started that way (uWSGI
/// installs its own handlers, so it reacts there). Only SIG_IGN is changed (to SIG_DFL):
/// the caller blocks these signals, so a handler Python installed never runs anyway.
pub fn stop_ignoring(signals: &[libc::c_int]) {
    for &sig in signals {
        // SAFETY: a zeroed sigaction is a valid out-parameter, which lives on this stack
        // frame; with a null `act`, sigaction only queries.
        let ignored = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_IGN
        };
        if ignored {
            // SAFETY: resetting a disposition to SIG_DFL is always sound.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
}

/// Blocks `set` for the calling thread (threads created later inherit the mask).
pub fn block(set: &SigSet) -> io::Result<()> {
    // SAFETY: pthread_sigmask reads a valid set; the old mask is not requested.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set.0, std::ptr::null_mut()) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(())
}

/// Unblocks `set` for the calling thread.
pub fn unblock(set: &SigSet) -> io::Result<()> {
    // SAFETY: pthread_sigmask reads a valid set; the old mask is not requested.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set.0, std::ptr::null_mut()) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(())
}

/// Restores the default disposition of `signals` and unblocks every signal: what a forked
/// worker does with the signals kaiser itself uses. Other dispositions stay as inherited,
/// so a Python handler the app installed (`signal.signal` at import, in the master) keeps
/// working in the worker.
pub fn reset(signals: &[libc::c_int]) {
    for &sig in signals {
        // SAFETY: resetting a disposition to SIG_DFL is always sound.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    let empty = SigSet::empty();
    // SAFETY: setting an empty mask on the calling thread.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &empty.0, std::ptr::null_mut()) };
}

/// The signals kaiser's master handles, and SIGCHLD, which it reaps with: a child the master
/// forks puts each back to its default first (`process::become_child_of`), then blocks and
/// reads those it handles itself.
pub const MASTER_SIGNALS: [libc::c_int; 8] = [
    libc::SIGHUP,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGTSTP,
    libc::SIGCHLD,
];

/// Ignores SIGPIPE: writes to a closed peer then fail with EPIPE instead of killing us.
pub fn ignore_sigpipe() {
    // SAFETY: setting SIG_IGN is always sound.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// A non-blocking, close-on-exec signalfd for `set` (which the caller has blocked).
pub struct SignalFd(OwnedFd);

impl SignalFd {
    pub fn new(set: &SigSet) -> io::Result<Self> {
        // SAFETY: creating a new signalfd from a valid set.
        let fd = unsafe { libc::signalfd(-1, &set.0, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: signalfd returned a fresh fd that we now own.
        Ok(SignalFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The next pending signal, or `None` when there is none.
    pub fn read(&self) -> io::Result<Option<libc::c_int>> {
        // SAFETY: signalfd_siginfo is plain old data; all-zero is a valid value.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` is a writable buffer of exactly `size` bytes.
        let ret = unsafe {
            libc::read(
                self.0.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        };
        if ret < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(err),
            };
        }
        Ok(Some(info.ssi_signo as libc::c_int))
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Sends `sig` to `pid` (a negative pid names a process group). ESRCH is not an error: the
/// process is already gone, which is what the caller wanted.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill has no memory effects.
    if unsafe { libc::kill(pid, sig) } < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ESRCH) {
            return Err(err);
        }
    }
    Ok(())
}

pub fn name(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTSTP => "SIGTSTP",
        _ => "signal",
    }
}
