//! File descriptors by hand: reads, writes and sends (retried on EINTR), `sendfile`, the
//! non-blocking and close-on-exec flags, pipes, FIFOs, datagram pairs, `dup2`, and the fds a
//! process inherits across exec. For the sockets a worker drives itself and the log master's
//! pipes and files.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// A negative return of a system call as `errno`'s error.
pub(super) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// `read(2)` and `sendto(2)` as plain system calls. glibc's wrappers of both are
/// cancellation points: in a process with threads each call also enters and leaves
/// asynchronous cancellation, two atomic read-modify-writes around the system call (1% of a
/// hello-world worker's CPU under `perf`). kaiser never cancels a thread, so the request
/// path's reads and sends go straight to the kernel.
///
/// SAFETY (both): as for the libc functions: `buf` valid for `len` bytes.
unsafe fn sys_read(fd: RawFd, buf: *mut libc::c_void, len: usize) -> libc::ssize_t {
    libc::syscall(libc::SYS_read, fd, buf, len) as libc::ssize_t
}

unsafe fn sys_send(
    fd: RawFd,
    buf: *const libc::c_void,
    len: usize,
    flags: libc::c_int,
) -> libc::ssize_t {
    let no_address: *const libc::sockaddr = std::ptr::null();
    libc::syscall(
        libc::SYS_sendto,
        fd,
        buf,
        len,
        flags,
        no_address,
        0 as libc::socklen_t,
    ) as libc::ssize_t
}

/// Makes a byte-count system call again while a signal interrupts it (EINTR).
fn retrying(mut call: impl FnMut() -> libc::ssize_t) -> io::Result<usize> {
    loop {
        match cvt_size(call()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// What the fd number `fd` refers to now, as `(st_dev, st_ino)`; `None` when it is closed.
/// Code that lends an fd number to someone who may close it (a `python-raw` handler) compares
/// this before and after, so it never writes to, or closes, a number reused for another file.
pub fn identity(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: `stat` is plain old data; fstat fills it for a valid fd.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `stat` is a writable struct of the right type; an invalid fd is EBADF.
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return None;
    }
    Some((stat.st_dev, stat.st_ino))
}

/// `read(2)`, retrying on EINTR.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid writable slice of `buf.len()` bytes and `fd` is open.
    retrying(|| unsafe { sys_read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
}

/// Reads into the spare capacity of `buf`, growing it by `at_least` first if needed.
pub fn read_append(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, at_least: usize) -> io::Result<usize> {
    if buf.capacity() - buf.len() < at_least {
        buf.reserve(at_least);
    }
    let spare = buf.capacity() - buf.len();
    read_limited(fd, buf, spare)
}

/// Appends at most `limit` bytes read from `fd` to `buf` (a body must not swallow the next
/// pipelined request), retrying on EINTR.
pub fn read_limited(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, limit: usize) -> io::Result<usize> {
    buf.reserve(limit);
    let spare = &mut buf.spare_capacity_mut()[..limit];
    loop {
        // SAFETY: `spare` is valid for writes of `spare.len()` bytes; `read` initialises
        // exactly the returned count, which is what `set_len` then exposes.
        let ret = unsafe { sys_read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) };
        match cvt_size(ret) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(n) => {
                // SAFETY: `n` bytes past the old length were just written by `read`.
                unsafe { buf.set_len(buf.len() + n) };
                return Ok(n);
            }
        }
    }
}

/// `send(2)` with MSG_NOSIGNAL (a peer that went away gives EPIPE, never SIGPIPE).
pub fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    send_with_flags(fd, buf, libc::MSG_NOSIGNAL)
}

/// `send(2)` with MSG_MORE as well: more data follows at once (a file body after its
/// head), so the kernel may hold a partial segment back instead of sending it alone.
pub fn send_more(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    send_with_flags(fd, buf, libc::MSG_NOSIGNAL | libc::MSG_MORE)
}

/// `sendmsg(2)` of several buffers in one call (a record header and its content), with
/// MSG_NOSIGNAL, retrying on EINTR.
pub fn send_vectored(fd: BorrowedFd<'_>, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: an all-zero msghdr is valid (no name, no control data).
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSlice` is ABI-compatible with `iovec` on Unix (std documents it so); sendmsg only
    // reads through the pointer.
    message.msg_iov = bufs.as_ptr().cast_mut().cast();
    message.msg_iovlen = bufs.len() as _;
    // SAFETY: `message` points at `bufs.len()` valid iovecs borrowed for this call, and `fd`
    // is an open socket.
    retrying(|| unsafe { libc::sendmsg(fd.as_raw_fd(), &message, libc::MSG_NOSIGNAL) })
}

fn send_with_flags(fd: BorrowedFd<'_>, buf: &[u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: `buf` is a valid readable slice and `fd` is an open socket.
    retrying(|| unsafe { sys_send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), flags) })
}

/// `write(2)` to a non-socket (a pipe or a log file), retrying on EINTR.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid readable slice and `fd` is open.
    retrying(|| unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) })
}

/// `sendfile(2)` from `file` at `offset` to the socket `out`.
pub fn sendfile(
    out: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: &mut i64,
    count: usize,
) -> io::Result<usize> {
    // SAFETY: both fds are open and `offset` points to a valid off_t.
    retrying(|| unsafe { libc::sendfile(out.as_raw_fd(), file.as_raw_fd(), offset, count) })
}

pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    set_flag(fd, (libc::F_GETFL, libc::F_SETFL), libc::O_NONBLOCK, on)
}

pub fn set_cloexec(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    set_flag(fd, (libc::F_GETFD, libc::F_SETFD), libc::FD_CLOEXEC, on)
}

/// Sets or clears one bit of the flags that the `fcntl` commands `get`/`set` read and write.
fn set_flag(
    fd: BorrowedFd<'_>,
    (get, set): (libc::c_int, libc::c_int),
    bit: libc::c_int,
    on: bool,
) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL and F_GETFD/F_SETFD on an open fd have no memory effects.
    unsafe {
        let flags = cvt(libc::fcntl(fd.as_raw_fd(), get))?;
        let flags = if on { flags | bit } else { flags & !bit };
        cvt(libc::fcntl(fd.as_raw_fd(), set, flags))?;
    }
    Ok(())
}

/// A close-on-exec, non-blocking `AF_UNIX` datagram socketpair: each `send` on one end is
/// one message read whole from the other (mule messages).
pub fn datagram_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: socketpair returned two fresh fds that we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A pipe whose both ends are close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Takes ownership of an fd number inherited from the parent process (named in the
/// environment), after checking that it is open.
pub fn adopt_inherited(raw: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only queries the descriptor table.
    cvt(unsafe { libc::fcntl(raw, libc::F_GETFD) })?;
    // SAFETY: the fd is open and, by the inheritance contract, nobody else in this process
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Duplicates `fd` onto `target` (dup2), for stdio redirection in a child.
pub fn dup2(fd: BorrowedFd<'_>, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 only manipulates the descriptor table.
    cvt(unsafe { libc::dup2(fd.as_raw_fd(), target) })?;
    Ok(())
}

/// Creates a FIFO at `path` with `mode` (mkfifo(3)); the caller removes what was there.
pub fn mkfifo(path: &std::path::Path, mode: u32) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))?;
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    cvt(unsafe { libc::mkfifo(path.as_ptr(), mode as libc::mode_t) })?;
    Ok(())
}

/// Closes every fd above 2 of this process except `keep`: what a freshly forked helper
/// process does so it holds none of its parent's sockets or pipes.
pub fn close_all_except(keep: &[RawFd]) {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    // Collected first: the directory's own fd is among the entries while it is read.
    let fds: Vec<RawFd> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: closing an fd number this process holds and does not use afterwards;
            // the caller is a freshly forked process that owns none of them as Rust objects
            // it will use (their owners are dropped or never touched again).
            unsafe {
                libc::close(fd);
            }
        }
    }
}
