//! The log master's pipes: `SOCK_SEQPACKET` socketpairs, where each `write(2)` is one
//! message that arrives whole (a line is never mixed with another writer's), with the
//! sender's pid on each message (`SO_PASSCRED`), so a writer's partial lines can be joined;
//! and the bare pair that is the emperor's channel to a vassal.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// The largest message the pair is sized for (the kernel may allow less to a non-root user).
pub const MAX_MESSAGE: usize = 4 << 20;

/// A connected `SOCK_SEQPACKET` pair, both ends close-on-exec: (read end, write end).
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = channel_pair()?;
    set_int(read.as_fd_ref(), libc::SOL_SOCKET, libc::SO_PASSCRED, 1)?;
    // A unix socket's queue is the sender's buffer, and one message must fit in it: a single
    // `write` larger than it fails with EMSGSIZE. SO_SNDBUF is capped at net.core.wmem_max
    // (about 200 KiB); SO_SNDBUFFORCE, allowed to root (CAP_NET_ADMIN), is not.
    let size = MAX_MESSAGE as libc::c_int;
    let sndbuf = (write.as_fd_ref(), libc::SOL_SOCKET);
    if set_int(sndbuf.0, sndbuf.1, libc::SO_SNDBUFFORCE, size).is_err() {
        let _ = set_int(sndbuf.0, sndbuf.1, libc::SO_SNDBUF, size);
    }
    Ok((read, write))
}

/// A bare connected `SOCK_SEQPACKET` pair, both ends close-on-exec: message boundaries like
/// datagrams, EOF like a stream (the emperor's channel to each vassal).
pub fn channel_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    let ret = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fds that we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

trait AsFdRef {
    fn as_fd_ref(&self) -> BorrowedFd<'_>;
}

impl AsFdRef for OwnedFd {
    fn as_fd_ref(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(self)
    }
}

fn set_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: a pointer to a c_int with its size.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// What one receive gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// A message of this many bytes from this pid (0 when the kernel gave none).
    Message { len: usize, pid: libc::pid_t },
    /// Every write end is closed.
    Eof,
    /// Nothing queued (the socket is non-blocking).
    Empty,
}

/// Receives one message into `buf` without blocking. A message longer than `buf` is cut.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Received> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one SCM_CREDENTIALS message, aligned as cmsghdr wants.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; zeroed is valid and every pointer is set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let len = loop {
        // SAFETY: msg points at live buffers of the sizes it names.
        let ret = unsafe {
            libc::recvmsg(
                fd.as_raw_fd(),
                &mut msg,
                libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
            )
        };
        if ret >= 0 {
            break ret as usize;
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(Received::Empty),
            _ => return Err(err),
        }
    };
    if len == 0 && msg.msg_controllen == 0 {
        return Ok(Received::Eof);
    }
    let mut pid = 0;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled, within
    // msg_controllen; an SCM_CREDENTIALS payload is a `ucred`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_CREDENTIALS
            {
                let cred: libc::ucred = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                pid = cred.pid;
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(Received::Message { len, pid })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn messages_arrive_whole_with_the_sender_pid() {
        let (read, write) = pair().unwrap();
        crate::sys::fd::write(write.as_fd(), b"one\n").unwrap();
        crate::sys::fd::write(write.as_fd(), b"two").unwrap();
        let mut buf = [0u8; 64];
        let me = std::process::id() as libc::pid_t;
        assert_eq!(
            recv(read.as_fd(), &mut buf).unwrap(),
            Received::Message { len: 4, pid: me }
        );
        assert_eq!(&buf[..4], b"one\n");
        assert_eq!(
            recv(read.as_fd(), &mut buf).unwrap(),
            Received::Message { len: 3, pid: me }
        );
        assert_eq!(recv(read.as_fd(), &mut buf).unwrap(), Received::Empty);
        drop(write);
        assert_eq!(recv(read.as_fd(), &mut buf).unwrap(), Received::Eof);
    }
}
