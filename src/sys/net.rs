//! Listening sockets: bind (TCP, unix path, abstract), accept, and naming addresses.
//!
//! Binding is done by hand rather than through `std::net` because kaiser needs control of
//! the backlog, of unix socket modes, and of fds that survive exec.

use std::ffi::OsStr;
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::fd::cvt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
    /// The abstract name without the leading NUL.
    Abstract(Vec<u8>),
}

impl std::fmt::Display for BindAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindAddr::Tcp(addr) => write!(f, "{addr}"),
            BindAddr::Unix(path) => write!(f, "{}", path.display()),
            BindAddr::Abstract(name) => write!(f, "@{}", String::from_utf8_lossy(name)),
        }
    }
}

/// `storage` seen as one of the concrete `sockaddr_*` types.
///
/// # Safety
/// `T` must be a `sockaddr_*` type, which `sockaddr_storage` is large and aligned enough for.
unsafe fn storage_as<T>(storage: &mut libc::sockaddr_storage) -> &mut T {
    // SAFETY: the caller vouches for the size and alignment of `T`.
    unsafe { &mut *(storage as *mut libc::sockaddr_storage).cast::<T>() }
}

fn socket(domain: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: creating a new socket.
    let fd = cvt(unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: a fresh fd that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn setsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: passing a pointer to a c_int with its size.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Encodes a socket address into a `sockaddr_storage`.
fn encode(addr: &BindAddr) -> io::Result<(libc::sockaddr_storage, libc::socklen_t)> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        BindAddr::Tcp(SocketAddr::V4(v4)) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { storage_as::<libc::sockaddr_in>(&mut storage) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(v4.ip().octets()),
            };
            mem::size_of::<libc::sockaddr_in>()
        }
        BindAddr::Tcp(SocketAddr::V6(v6)) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
            let sin6 = unsafe { storage_as::<libc::sockaddr_in6>(&mut storage) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: v6.ip().octets(),
            };
            sin6.sin6_scope_id = v6.scope_id();
            mem::size_of::<libc::sockaddr_in6>()
        }
        BindAddr::Unix(_) | BindAddr::Abstract(_) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_un.
            let sun = unsafe { storage_as::<libc::sockaddr_un>(&mut storage) };
            sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
            let (bytes, offset): (&[u8], usize) = match addr {
                BindAddr::Unix(path) => (path.as_os_str().as_bytes(), 0),
                BindAddr::Abstract(name) => (name.as_slice(), 1),
                BindAddr::Tcp(_) => unreachable!("matched above"),
            };
            // One byte stays NUL: the terminator for a path, the marker for an abstract name.
            if bytes.len() + 1 > sun.sun_path.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "unix socket name is {} bytes, longer than the {} the kernel allows",
                        bytes.len(),
                        sun.sun_path.len() - 1
                    ),
                ));
            }
            for (i, b) in bytes.iter().enumerate() {
                sun.sun_path[i + offset] = *b as libc::c_char;
            }
            let path_offset = mem::size_of::<libc::sa_family_t>();
            match addr {
                BindAddr::Abstract(_) => path_offset + 1 + bytes.len(),
                _ => path_offset + bytes.len() + 1,
            }
        }
    };
    Ok((storage, len as libc::socklen_t))
}

fn decode(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<BindAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(BindAddr::Tcp(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            // uWSGI reports IPv4-mapped peers as plain IPv4 (REMOTE_ADDR).
            let ip = match ip.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(ip),
            };
            Some(BindAddr::Tcp(SocketAddr::new(
                ip,
                u16::from_be(sin6.sin6_port),
            )))
        }
        libc::AF_UNIX => {
            // SAFETY: the family says the storage holds a sockaddr_un.
            let sun =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_un>() };
            let path_len = (len as usize).saturating_sub(mem::size_of::<libc::sa_family_t>());
            let raw: Vec<u8> = sun.sun_path[..path_len.min(sun.sun_path.len())]
                .iter()
                .map(|&c| c as u8)
                .collect();
            if raw.first() == Some(&0) && raw.len() > 1 {
                Some(BindAddr::Abstract(raw[1..].to_vec()))
            } else {
                let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
                Some(BindAddr::Unix(PathBuf::from(OsStr::from_bytes(
                    &raw[..end],
                ))))
            }
        }
        _ => None,
    }
}

/// `TCP_DEFER_ACCEPT` timeout for listening sockets, in seconds.
const DEFER_ACCEPT_SECS: libc::c_int = 5;

/// Reads a listening address the way uWSGI reads `stats`, `emperor-stats` and on-demand
/// sockets: `@name` is an abstract unix socket, an address with `:` is TCP (`:9191`, `*:9191`
/// and `0:9191` are every IPv4 interface, `[::1]:9191` is IPv6, a host name is resolved),
/// anything else a unix socket path. One parser for the vassal and the emperor.
pub fn resolve_listen_address(address: &str) -> io::Result<BindAddr> {
    if let Some(name) = address.strip_prefix('@') {
        return Ok(BindAddr::Abstract(name.as_bytes().to_vec()));
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Ok(BindAddr::Unix(address.into()));
    };
    let port: u16 = port.parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid port `{port}`"),
        )
    })?;
    let host = match host.trim_start_matches('[').trim_end_matches(']') {
        "" | "*" | "0" => "0.0.0.0",
        other => other,
    };
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port))?
        .next()
        .map(BindAddr::Tcp)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address found"))
}

/// Binds and listens. For a unix path, a stale socket file left by a previous run is removed
/// first (as uWSGI does); any other existing file is an error rather than clobbered.
pub fn bind_listener(addr: &BindAddr, backlog: u32, options: ListenOptions) -> io::Result<OwnedFd> {
    let domain = match addr {
        BindAddr::Tcp(SocketAddr::V4(_)) => libc::AF_INET,
        BindAddr::Tcp(SocketAddr::V6(_)) => libc::AF_INET6,
        _ => libc::AF_UNIX,
    };
    let fd = socket(domain)?;
    match addr {
        BindAddr::Tcp(_) => {
            setsockopt_int(fd.as_fd_(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
            if options.reuse_port {
                setsockopt_int(fd.as_fd_(), libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
            }
            if options.freebind {
                // ip(7): also honoured on IPv6 sockets at this level.
                setsockopt_int(fd.as_fd_(), libc::SOL_IP, libc::IP_FREEBIND, 1)?;
            }
            if options.keepalive {
                // Accepted connections inherit it from the listener.
                setsockopt_int(fd.as_fd_(), libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
            }
        }
        BindAddr::Unix(path) => remove_stale_socket(path)?,
        BindAddr::Abstract(_) => {}
    }
    let (storage, len) = encode(addr)?;
    // SAFETY: `storage` holds a valid address of `len` bytes.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&storage as *const libc::sockaddr_storage).cast(),
            len,
        )
    })?;
    // SAFETY: listen on a bound socket.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog.min(i32::MAX as u32) as libc::c_int) })?;
    if let (BindAddr::Tcp(_), true) = (addr, options.defer_accept) {
        // Both protocols have the client speak first, so let the kernel hand over a
        // connection only once its first bytes arrived (uWSGI does the same): a worker
        // thread that accepts then finds the request there, instead of parking an empty
        // connection in its own epoll set where only its own threads can serve it. The
        // value is the seconds the kernel waits for data before accepting anyway.
        setsockopt_int(
            fd.as_fd_(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            DEFER_ACCEPT_SECS,
        )?;
    }
    Ok(fd)
}

/// Socket options of a TCP listener (ignored for unix sockets).
#[derive(Debug, Clone, Copy, Default)]
pub struct ListenOptions {
    /// `TCP_DEFER_ACCEPT`: off for servers whose client never speaks first (the stats server
    /// writes on accept), where it would hold every connection back for seconds.
    pub defer_accept: bool,
    pub reuse_port: bool,
    pub keepalive: bool,
    /// `IP_FREEBIND`: bind an address that is not (yet) on an interface.
    pub freebind: bool,
}

trait AsFdExt {
    fn as_fd_(&self) -> BorrowedFd<'_>;
}
impl AsFdExt for OwnedFd {
    fn as_fd_(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(self)
    }
}

fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("`{}` exists and is not a socket", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The address a socket is bound to (resolves port 0 to the real port).
pub fn local_addr(fd: BorrowedFd<'_>) -> io::Result<BindAddr> {
    // SAFETY: sockaddr_storage is plain old data.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` and `len` describe a writable buffer.
    cvt(unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    })?;
    decode(&storage, len)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unknown socket family"))
}

/// Accepts one connection, non-blocking and close-on-exec, with its peer address.
/// `Ok(None)` when there is nothing to accept right now.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<Option<(OwnedFd, Option<BindAddr>)>> {
    // SAFETY: sockaddr_storage is plain old data.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let accepted = accept_into(
        listener,
        (&mut storage as *mut libc::sockaddr_storage).cast(),
        &mut len,
    )?;
    Ok(accepted.map(|fd| (fd, decode(&storage, len))))
}

/// Accepts a connection without asking for the peer's address: for unix-socket listeners,
/// whose peers have none worth reporting (a connecting client's socket is unnamed). Saves
/// the address's copy out of the kernel and its decoding. `Ok(None)`: nothing to accept.
pub fn accept_unnamed(listener: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    accept_into(listener, std::ptr::null_mut(), std::ptr::null_mut())
}

/// `accept4`, non-blocking and close-on-exec, writing the peer's address to `address` and its
/// length to `len` (both null: no address). `Ok(None)` when there is nothing to accept.
fn accept_into(
    listener: BorrowedFd<'_>,
    address: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
) -> io::Result<Option<OwnedFd>> {
    loop {
        // SAFETY: `address` and `len` are both null (the kernel then writes no address) or
        // describe a writable buffer of `*len` bytes, as the callers above make them.
        let fd = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                address,
                len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                // ECONNABORTED and friends: the peer gave up while queued; nothing to accept.
                Some(libc::EAGAIN) | Some(libc::ECONNABORTED) | Some(libc::EPROTO) => {
                    return Ok(None)
                }
                _ => return Err(err),
            }
        }
        // SAFETY: accept4 returned a fresh fd that we own.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
    }
}

/// TCP_NODELAY on an accepted TCP socket: responses are written whole, so Nagle only adds
/// latency. Errors (a unix socket) are ignored.
pub fn set_nodelay(fd: BorrowedFd<'_>) {
    let _ = setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
}

/// Half-closes the write side, so the peer sees EOF after the last byte we sent.
pub fn shutdown_write(fd: BorrowedFd<'_>) {
    // SAFETY: shutdown has no memory effects.
    unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) };
}

/// Shuts down both directions: the peer sees EOF, and this process's later reads and
/// writes on the socket fail at once (EPIPE) instead of blocking.
pub fn shutdown_both(fd: BorrowedFd<'_>) {
    // SAFETY: shutdown has no memory effects.
    unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
}

/// `TCP_LISTEN` from the kernel's `enum tcp_state` (libc does not name it on Linux).
const TCP_LISTEN: u8 = 10;

/// The accept queue of a listening TCP socket: `(waiting, backlog)`, from `TCP_INFO`
/// (for a listener, Linux reports the queue length in `tcpi_unacked` and the backlog in
/// `tcpi_sacked`). `None` for other sockets.
pub fn listen_queue(fd: BorrowedFd<'_>) -> Option<(u32, u32)> {
    // SAFETY: tcp_info is plain old data; all-zero is a valid value.
    let mut info: libc::tcp_info = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` and `len` describe a writable buffer of the right size.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (ret == 0 && info.tcpi_state == TCP_LISTEN).then_some((info.tcpi_unacked, info.tcpi_sacked))
}

/// `net.core.somaxconn`, the kernel's cap on listen backlogs.
pub fn somaxconn() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Sends one datagram to a unix datagram socket address (path or `@abstract`).
pub fn send_datagram_to(addr: &BindAddr, payload: &[u8]) -> io::Result<()> {
    send_datagram_to_with(addr, payload, 0)
}

/// [`send_datagram_to`] without waiting: a receiver whose queue is full gives `WouldBlock`
/// instead of blocking the caller (an event loop must not wait on a slow reader).
pub fn try_send_datagram_to(addr: &BindAddr, payload: &[u8]) -> io::Result<()> {
    send_datagram_to_with(addr, payload, libc::MSG_DONTWAIT)
}

fn send_datagram_to_with(addr: &BindAddr, payload: &[u8], flags: libc::c_int) -> io::Result<()> {
    // SAFETY: creating a new datagram socket.
    let fd = cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: a fresh fd that we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let (storage, len) = encode(addr)?;
    // SAFETY: valid payload slice and address.
    let ret = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            payload.as_ptr().cast(),
            payload.len(),
            libc::MSG_NOSIGNAL | flags,
            (&storage as *const libc::sockaddr_storage).cast(),
            len,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `recv(2)` with `MSG_PEEK | MSG_DONTWAIT`: copies what has arrived without consuming it,
/// so another thread reading the socket later still gets every byte.
pub fn peek(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a valid writable slice of `buf.len()` bytes and `fd` is open.
        let ret = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if ret >= 0 {
            return Ok(ret as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_follow_uwsgi() {
        fn check(text: &str, expected: &str) {
            let got = match resolve_listen_address(text) {
                Ok(addr) => addr.to_string(),
                Err(error) => format!("error: {error}"),
            };
            assert_eq!(got, expected, "{text}");
        }
        check("127.0.0.1:9191", "127.0.0.1:9191");
        check(":9191", "0.0.0.0:9191");
        check("*:9191", "0.0.0.0:9191");
        check("0:9191", "0.0.0.0:9191");
        check("[::1]:9191", "[::1]:9191");
        check("/run/app/stats.sock", "/run/app/stats.sock");
        check("stats.sock", "stats.sock");
        check("@app-stats", "@app-stats");
        check("127.0.0.1:x", "error: invalid port `x`");
    }
}
