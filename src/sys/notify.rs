//! The sd_notify datagram protocol (`READY=1`, `STATUS=…`, `RELOADING=1`, `STOPPING=1`),
//! spoken to systemd through `NOTIFY_SOCKET` or to the emperor through the inherited
//! channel named by `KAISER_EMPEROR_FD`. One sender serves both: a vassal says the same
//! things to whichever supervisor started it, and the emperor uses it to talk to systemd.
//! Parsing what a vassal sends is the emperor's (`emperor::sd_notify`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use super::net::{send_datagram_to, try_send_datagram_to, BindAddr};

/// The environment variable naming the vassal's end of the emperor channel.
pub const EMPEROR_FD_ENV: &str = "KAISER_EMPEROR_FD";

pub enum Notifier {
    None,
    Systemd(BindAddr),
    /// A SOCK_SEQPACKET socket shared with the emperor; EOF on it means the emperor died.
    Emperor(OwnedFd),
}

impl Notifier {
    /// Takes the notification target out of the environment (removing the variables, so
    /// that workers and the Python app do not inherit them).
    pub fn from_env() -> io::Result<Self> {
        if let Some(raw) = std::env::var_os(EMPEROR_FD_ENV) {
            std::env::remove_var(EMPEROR_FD_ENV);
            std::env::remove_var("NOTIFY_SOCKET");
            let raw: i32 = raw.to_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("`{EMPEROR_FD_ENV}` is not an fd number"),
                )
            })?;
            let fd = super::fd::adopt_inherited(raw)?;
            super::fd::set_cloexec(fd.as_fd(), true)?;
            return Ok(Notifier::Emperor(fd));
        }
        let notifier = Self::systemd_from_env();
        std::env::remove_var("NOTIFY_SOCKET");
        Ok(notifier)
    }

    /// Systemd's `NOTIFY_SOCKET` alone (`@name` is an abstract address), leaving the
    /// environment as it is: for the emperor, which reports to systemd whatever started it
    /// and removes the variable from each vassal's environment itself.
    pub fn systemd_from_env() -> Self {
        use std::os::unix::ffi::OsStrExt;
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return Notifier::None;
        };
        let bytes = path.as_bytes();
        Notifier::Systemd(match bytes.first() {
            Some(b'@') => BindAddr::Abstract(bytes[1..].to_vec()),
            _ => BindAddr::Unix(PathBuf::from(path)),
        })
    }

    /// Sends one message (newline-separated `KEY=VALUE` lines). Failures are returned for
    /// the caller to log; a supervisor that went away must not stop the server.
    pub fn notify(&self, message: &str) -> io::Result<()> {
        match self {
            Notifier::None => Ok(()),
            Notifier::Systemd(addr) => send_datagram_to(addr, message.as_bytes()),
            Notifier::Emperor(fd) => super::fd::send(fd.as_fd(), message.as_bytes()).map(|_| ()),
        }
    }

    /// [`Notifier::notify`] to systemd without waiting: a full `NOTIFY_SOCKET` queue gives
    /// `WouldBlock` (for the emperor's event loop, which must not wait on its reader).
    pub fn try_notify(&self, message: &str) -> io::Result<()> {
        match self {
            Notifier::Systemd(addr) => try_send_datagram_to(addr, message.as_bytes()),
            other => other.notify(message),
        }
    }

    /// The emperor channel, for the master to watch for EOF.
    pub fn emperor_channel(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Notifier::Emperor(fd) => Some(fd.as_fd()),
            _ => None,
        }
    }

    pub fn raw_emperor_fd(&self) -> Option<i32> {
        match self {
            Notifier::Emperor(fd) => Some(fd.as_raw_fd()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("kaiser-sdn-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir is writable");
        let path = dir.join("notify");
        let listener = std::os::unix::net::UnixDatagram::bind(&path).expect("bind notify socket");
        let notifier = Notifier::Systemd(BindAddr::Unix(path));
        notifier.notify("READY=1\nSTATUS=x").expect("datagram sent");
        let mut buf = [0u8; 64];
        let len = listener.recv(&mut buf).expect("datagram arrives");
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=x");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
