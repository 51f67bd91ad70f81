//! A minimal inotify: one non-blocking fd whose readability means "something was added to a
//! watched directory". The spooler polls it beside its signalfd, so a new task wakes it at
//! once; it rescans the directory rather than interpreting each event.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A file was moved in (a complete task, renamed into place) or created (a task file, or a
/// priority directory, written in place by uWSGI).
pub const ARRIVALS: u32 = libc::IN_MOVED_TO | libc::IN_CREATE;

pub struct Inotify(OwnedFd);

impl Inotify {
    pub fn new() -> io::Result<Self> {
        // SAFETY: inotify_init1 takes flags only and returns a new fd or -1.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd that nothing else owns.
        Ok(Inotify(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Watches `dir` for `mask`; watching a directory twice is harmless.
    pub fn watch(&self, dir: &Path, mask: u32) -> io::Result<()> {
        let path = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
        // SAFETY: a valid inotify fd and a NUL-terminated path.
        let wd = unsafe { libc::inotify_add_watch(self.0.as_raw_fd(), path.as_ptr(), mask) };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads and discards every queued event; true if there was any.
    pub fn drain(&self) -> bool {
        let mut any = false;
        let mut buf = [0u8; 4096];
        while let Ok(n) = super::fd::read(self.0.as_fd(), &mut buf) {
            if n == 0 {
                break;
            }
            any = true;
        }
        any
    }
}

impl AsFd for Inotify {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
