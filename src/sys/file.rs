//! Opening files beneath a directory without ever leaving it: `openat2(2)` with
//! `RESOLVE_BENEATH`, which makes the kernel refuse (`EXDEV`) any resolution, through `..`
//! or a symlink, that would leave the directory, with no window between check and open.
//!
//! And what the spool directory needs beyond `std::fs`: an exclusive lock that dies with its
//! holder, file times, and random bits for unique names.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `struct open_how` of `linux/openat2.h` (libc's is `non_exhaustive`).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Opens a directory as an `O_PATH` handle to resolve names beneath it.
pub fn open_dir_handle(path: &Path) -> io::Result<OwnedFd> {
    let path = c_path(path.as_os_str().as_bytes())?;
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `relative` (no leading `/`; empty means the directory itself) read-only beneath
/// `dir`. Errors: `EXDEV` when the name leads out of `dir` (a symlink to elsewhere),
/// `ELOOP` for a "magic" `/proc` link, `ENOSYS` on kernels before 5.6, and the usual
/// `ENOENT`, `ENOTDIR` and `EACCES`.
pub fn open_beneath(dir: BorrowedFd<'_>, relative: &[u8]) -> io::Result<OwnedFd> {
    let relative = if relative.is_empty() { b"." } else { relative };
    let path = c_path(relative)?;
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK) as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
    };
    loop {
        // SAFETY: `path` is NUL-terminated and `how` is a valid `open_how` of the size
        // passed; both outlive the call, which only reads them.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    }
}

/// Opens an absolute path read-only, refusing a symlink as the last component.
pub fn open_no_follow(path: &Path) -> io::Result<OwnedFd> {
    let path = c_path(path.as_os_str().as_bytes())?;
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_NOFOLLOW,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn c_path(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

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
        return std::process::id() ^ (super::clock::unix_us() % 1_000_000) as u32;
    }
    u32::from_ne_bytes(bytes) >> 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn stays_beneath() {
        let base = std::env::temp_dir().join(format!("kaiser-beneath-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(base.join("secret"), "secret").unwrap();
        std::fs::write(root.join("sub/file"), "file").unwrap();
        std::os::unix::fs::symlink(base.join("secret"), root.join("out")).unwrap();
        std::os::unix::fs::symlink("sub/file", root.join("in")).unwrap();
        let dir = open_dir_handle(&root).unwrap();
        let read = |name: &str| {
            open_beneath(dir.as_fd(), name.as_bytes())
                .map(|fd| {
                    std::fs::read_to_string(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap()
                })
                .map_err(|e| e.raw_os_error())
        };
        assert_eq!(read("sub/file"), Ok("file".to_string()));
        assert_eq!(read("in"), Ok("file".to_string()));
        assert_eq!(read("sub/../sub/file"), Ok("file".to_string()));
        assert_eq!(read("../secret"), Err(Some(libc::EXDEV)));
        assert_eq!(read("out"), Err(Some(libc::EXDEV)));
        assert_eq!(read("/etc/passwd"), Err(Some(libc::EXDEV)));
        assert_eq!(read("missing"), Err(Some(libc::ENOENT)));
        assert!(open_beneath(dir.as_fd(), b"").is_ok());
        assert!(open_beneath(dir.as_fd(), b"a\0b").is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
