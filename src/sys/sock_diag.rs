//! The accept queue of a listening unix socket, from the kernel's `sock_diag` netlink
//! interface (`unix_diag(7)`): for a listener, `UNIX_DIAG_RQLEN` reports the connections
//! waiting for `accept` and the backlog. `TCP_INFO` gives the same for TCP
//! (`net::listen_queue`); unix sockets have no socket option for it (uWSGI reads it with an
//! ioctl that only exists in a patched kernel).
//!
//! One request per call on a fresh netlink socket; it does not cache or log.

use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const UDIAG_SHOW_RQLEN: u32 = 0x10;
const UNIX_DIAG_RQLEN: u16 = 4;
/// `TCP_LISTEN` in the kernel's socket states, which unix sockets share.
const LISTEN_STATE: u32 = 10;

/// `struct nlmsghdr` followed by `struct unix_diag_req`.
#[repr(C)]
struct Request {
    len: u32,
    kind: u16,
    flags: u16,
    seq: u32,
    pid: u32,
    family: u8,
    protocol: u8,
    pad: u16,
    states: u32,
    ino: u32,
    show: u32,
    cookie: [u32; 2],
}

/// `(waiting, backlog)` of the listening unix socket `fd`; `None` if it is not one or the
/// kernel does not answer.
pub fn unix_listen_queue(fd: BorrowedFd<'_>) -> Option<(u32, u32)> {
    // SAFETY: `stat` is plain old data; fstat fills it for a valid fd.
    let mut stat: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: `stat` is a writable struct of the right type.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) } != 0 {
        return None;
    }
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return None;
    }
    let ino = u32::try_from(stat.st_ino).ok()?;
    // SAFETY: creating a new socket; the fd is owned below.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    };
    if raw < 0 {
        return None;
    }
    // SAFETY: a fresh fd that nothing else owns.
    let netlink = unsafe { OwnedFd::from_raw_fd(raw) };
    let request = Request {
        len: mem::size_of::<Request>() as u32,
        kind: SOCK_DIAG_BY_FAMILY,
        flags: libc::NLM_F_REQUEST as u16,
        seq: 1,
        pid: 0,
        family: libc::AF_UNIX as u8,
        protocol: 0,
        pad: 0,
        states: 1 << LISTEN_STATE,
        ino,
        show: UDIAG_SHOW_RQLEN,
        // INET_DIAG_NOCOOKIE: look the socket up by inode alone.
        cookie: [u32::MAX, u32::MAX],
    };
    // SAFETY: sockaddr_nl is plain old data; zero is "the kernel".
    let mut kernel: libc::sockaddr_nl = unsafe { mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: `request` and `kernel` are valid for the lengths given.
    let sent = unsafe {
        libc::sendto(
            netlink.as_raw_fd(),
            (&request as *const Request).cast(),
            mem::size_of::<Request>(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return None;
    }
    let mut buf = [0u8; 1024];
    // A bounded wait: the kernel answers at once, but never block the master on it.
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: `timeout` is a valid timeval for SO_RCVTIMEO.
    unsafe {
        libc::setsockopt(
            netlink.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    // SAFETY: `buf` is writable for its length.
    let received =
        unsafe { libc::recv(netlink.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    let received = usize::try_from(received).ok()?;
    parse_rqlen(&buf[..received])
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The `UNIX_DIAG_RQLEN` attribute of the first message in `reply`, if it describes a
/// listening socket.
fn parse_rqlen(reply: &[u8]) -> Option<(u32, u32)> {
    const HEADER: usize = 16; // struct nlmsghdr
    const MESSAGE: usize = 16; // struct unix_diag_msg
    let len = u32_at(reply, 0)? as usize;
    if u16_at(reply, 4)? == NLMSG_ERROR || len > reply.len() {
        return None;
    }
    // `udiag_state`: an exact lookup by inode answers for any socket, not only listeners.
    if u32::from(*reply.get(HEADER + 2)?) != LISTEN_STATE {
        return None;
    }
    let mut at = HEADER + MESSAGE;
    while at + 4 <= len {
        let attr_len = usize::from(u16_at(reply, at)?);
        let kind = u16_at(reply, at + 2)?;
        if attr_len < 4 {
            return None;
        }
        if kind == UNIX_DIAG_RQLEN && attr_len >= 12 {
            return Some((u32_at(reply, at + 4)?, u32_at(reply, at + 8)?));
        }
        at += attr_len.next_multiple_of(4);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::{UnixListener, UnixStream};

    #[test]
    fn a_unix_listeners_queue_counts_unaccepted_connections() {
        let dir = std::env::temp_dir().join(format!("kaiser-sockdiag-{}", std::process::id()));
        let _ = std::fs::create_dir(&dir);
        let path = dir.join("l.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("bind");
        assert_eq!(unix_listen_queue(listener.as_fd()).map(|q| q.0), Some(0));
        let clients: Vec<UnixStream> = (0..3)
            .map(|_| UnixStream::connect(&path).expect("connect"))
            .collect();
        let (waiting, backlog) = unix_listen_queue(listener.as_fd()).expect("an answer");
        assert_eq!(waiting, 3);
        assert!(backlog >= 3, "backlog {backlog}");
        drop(clients);
        let (stream, _) = UnixStream::pair().expect("pair");
        assert_eq!(unix_listen_queue(stream.as_fd()), None, "not a listener");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn replies_without_the_attribute_or_errors_give_nothing() {
        assert_eq!(parse_rqlen(&[]), None);
        let mut error = vec![0u8; 36];
        error[..4].copy_from_slice(&36u32.to_ne_bytes());
        error[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        assert_eq!(parse_rqlen(&error), None);
        let mut reply = vec![0u8; 32 + 12];
        reply[..4].copy_from_slice(&44u32.to_ne_bytes());
        reply[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        reply[18] = LISTEN_STATE as u8;
        reply[32..34].copy_from_slice(&12u16.to_ne_bytes());
        reply[34..36].copy_from_slice(&UNIX_DIAG_RQLEN.to_ne_bytes());
        reply[36..40].copy_from_slice(&7u32.to_ne_bytes());
        reply[40..44].copy_from_slice(&128u32.to_ne_bytes());
        assert_eq!(parse_rqlen(&reply), Some((7, 128)));
    }
}
