//! The sd_notify datagram protocol, both ways: sending our state to systemd
//! (`NOTIFY_SOCKET`, see sd_notify(3)) and parsing what vassals send us on their channel,
//! which speaks the same `KEY=VALUE` lines.
//!
//! Written by hand rather than with a crate: it is one datagram send, and `@` means the Linux
//! abstract namespace.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// A connected-on-demand sender to systemd's notify socket; a no-op when systemd did not ask.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` (the caller removes it from vassal environments).
    pub fn from_env() -> Self {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let bytes = path.as_encoded_bytes();
            let address = match bytes.strip_prefix(b"@") {
                Some(name) => SocketAddr::from_abstract_name(name),
                None => SocketAddr::from_pathname(std::path::Path::new(&path)),
            };
            match (UnixDatagram::unbound(), address) {
                (Ok(socket), Ok(address)) => Some((socket, address)),
                (Err(error), _) | (_, Err(error)) => {
                    tracing::warn!(%error, socket = ?path, "cannot use NOTIFY_SOCKET, not notifying systemd");
                    None
                }
            }
        });
        Notifier { target }
    }

    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one datagram of newline-separated `KEY=VALUE` lines. Failures are logged, never
    /// fatal: systemd going away must not take the vassals with it.
    pub fn send(&self, message: &str) {
        if let Some((socket, address)) = &self.target {
            if let Err(error) = socket.send_to_addr(message.as_bytes(), address) {
                tracing::debug!(%error, message, "sd_notify send failed");
            }
        }
    }
}

/// One parsed line of a vassal's datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VassalMessage {
    Ready,
    Reloading,
    Stopping,
    Status(String),
    MainPid(u32),
    /// Any other `KEY=VALUE` (kept for the debug log; sd_notify allows arbitrary keys).
    Other(String, String),
}

/// Parses a datagram. Lines without `=` are skipped, as sd_notify receivers do.
pub fn parse(datagram: &[u8]) -> Vec<VassalMessage> {
    String::from_utf8_lossy(datagram)
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once('=')?;
            Some(match (key, value) {
                ("READY", "1") => VassalMessage::Ready,
                ("RELOADING", "1") => VassalMessage::Reloading,
                ("STOPPING", "1") => VassalMessage::Stopping,
                ("STATUS", status) => VassalMessage::Status(status.to_owned()),
                ("MAINPID", pid) => match pid.parse() {
                    Ok(pid) => VassalMessage::MainPid(pid),
                    Err(_) => VassalMessage::Other(key.to_owned(), value.to_owned()),
                },
                _ => VassalMessage::Other(key.to_owned(), value.to_owned()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(datagram: &str, expected: &[VassalMessage]) {
        assert_eq!(
            parse(datagram.as_bytes()),
            expected,
            "datagram {datagram:?}"
        );
    }

    #[test]
    fn messages() {
        use VassalMessage::*;
        check("", &[]);
        check("READY=1", &[Ready]);
        check("READY=1\n", &[Ready]);
        check(
            "STATUS=4 workers ready\nREADY=1\n",
            &[Status("4 workers ready".into()), Ready],
        );
        check(
            "RELOADING=1\nMONOTONIC_USEC=5",
            &[Reloading, Other("MONOTONIC_USEC".into(), "5".into())],
        );
        check("STOPPING=1", &[Stopping]);
        check("MAINPID=4242", &[MainPid(4242)]);
        check("MAINPID=x", &[Other("MAINPID".into(), "x".into())]);
        check("STATUS=a=b", &[Status("a=b".into())]);
        check("garbage\nREADY=1", &[Ready]);
        check("READY=0", &[Other("READY".into(), "0".into())]);
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("kaiser-sdn-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir is writable");
        let path = dir.join("notify");
        let listener = UnixDatagram::bind(&path).expect("bind notify socket");
        let address = SocketAddr::from_pathname(&path).expect("valid path");
        let notifier = Notifier {
            target: Some((UnixDatagram::unbound().expect("socket"), address)),
        };
        notifier.send("READY=1\nSTATUS=x");
        let mut buf = [0u8; 64];
        let len = listener.recv(&mut buf).expect("datagram arrives");
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=x");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
