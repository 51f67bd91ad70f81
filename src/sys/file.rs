//! File operations the spool directory needs beyond `std::fs`: an exclusive lock that dies
//! with its holder, file times, and random bits for unique names.

use std::io;
use std::os::fd::AsRawFd;

/// Takes an exclusive open-file-description lock on all of `file` without waiting: `false`
/// when another process holds one (or a classic `fcntl` lock, as uWSGI's writers take while
/// writing: the two kinds conflict). The lock goes with the last close of the description,
/// including when the process is killed.
pub fn try_lock_file(file: &std::fs::File) -> io::Result<bool> {
    // SAFETY: flock is plain old data; all-zero is a valid start (whole file from offset 0).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: a valid open fd and a pointer to an initialised flock.
    let ret = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &lock) };
    if ret == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(err),
    }
}

/// Sets a file's access and modification times (uWSGI's `at`: a task file dated in the
/// future waits until then).
pub fn set_times(file: &std::fs::File, unix_secs: u64) -> io::Result<()> {
    let time = libc::timespec {
        tv_sec: unix_secs as libc::time_t,
        tv_nsec: 0,
    };
    let times = [time, time];
    // SAFETY: a valid fd and an array of two initialised timespecs.
    let ret = unsafe { libc::futimens(file.as_raw_fd(), times.as_ptr()) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Four random bytes from the kernel, for names that must not collide.
pub fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    // SAFETY: the buffer is valid for 4 bytes of writes.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != 4 {
        return std::process::id()
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos()));
    }
    u32::from_ne_bytes(bytes) >> 1
}
