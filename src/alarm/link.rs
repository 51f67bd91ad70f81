//! The log master's way to hand `signal:` and `mule:` alarms to the vassal master: a
//! `SOCK_SEQPACKET` pair made before the log master forks, one message per alarm
//! (`NAME`, a NUL, the message). The vassal master reads its end without blocking once a
//! second; the end survives the master's re-exec on reload (its number in
//! `KAISER_ALARM_LINK`), as the log master does.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::OnceLock;

use crate::config::{AlarmAction, AlarmConfig};
use crate::sys;
use crate::sys::seqpacket::Received;

const ENV: &str = "KAISER_ALARM_LINK";

static MASTER_END: OnceLock<Option<RawFd>> = OnceLock::new();

/// Both ends, between their creation and the log master's fork.
pub struct Link {
    master: OwnedFd,
    log_master: OwnedFd,
}

impl Link {
    /// A link when some `log-alarm` names a `signal:` or `mule:` alarm; `None` otherwise.
    pub fn create(config: &AlarmConfig) -> io::Result<Option<Link>> {
        let needed = config.log.iter().filter(|rule| !rule.negate).any(|rule| {
            rule.alarms.iter().any(|name| {
                config.find(name).is_some_and(|alarm| {
                    matches!(alarm.action, AlarmAction::Signal(_) | AlarmAction::Mule(_))
                })
            })
        });
        if !needed {
            return Ok(None);
        }
        let (master, log_master) = sys::seqpacket::channel_pair()?;
        sys::fd::set_nonblocking(master.as_fd(), true)?;
        Ok(Some(Link { master, log_master }))
    }

    /// In the log master: its end (the master's end is closed).
    pub fn into_log_master_end(self) -> OwnedFd {
        self.log_master
    }

    /// In the vassal master: keeps its end open across the re-exec of a reload.
    pub fn keep_master_end(self) -> io::Result<()> {
        drop(self.log_master);
        sys::fd::set_cloexec(self.master.as_fd(), false)?;
        let fd = self.master.as_raw_fd();
        std::mem::forget(self.master);
        std::env::set_var(ENV, fd.to_string());
        let _ = MASTER_END.set(Some(fd));
        Ok(())
    }
}

/// The vassal master's end: the one kept at the log master's start, or the one a previous
/// generation of this master handed over.
fn master_end() -> Option<BorrowedFd<'static>> {
    let fd = (*MASTER_END.get_or_init(|| std::env::var(ENV).ok()?.parse().ok()))?;
    // SAFETY: the fd was kept open (and not close-on-exec) for this purpose by
    // `keep_master_end` in this process or the one it was executed from, and nothing closes
    // it: it lives as long as the process.
    Some(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// In the log master: hands alarm `name` with `message` to the vassal master. A full queue
/// drops the alarm rather than stop the logs.
pub fn send(link: BorrowedFd<'_>, name: &str, message: &[u8]) {
    let mut packet = Vec::with_capacity(name.len() + 1 + message.len());
    packet.extend_from_slice(name.as_bytes());
    packet.push(0);
    packet.extend_from_slice(message);
    if let Err(error) = sys::fd::send(link, &packet) {
        eprintln!("[uwsgi-alarm] cannot hand alarm `{name}` to the master: {error}");
    }
}

/// In the vassal master: the alarms handed over since the last call.
pub fn receive() -> Vec<(String, Vec<u8>)> {
    let Some(fd) = master_end() else {
        return Vec::new();
    };
    let mut received = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(Received::Message { len, .. }) = sys::seqpacket::recv(fd, &mut buf) {
        let packet = &buf[..len];
        if let Some(nul) = packet.iter().position(|&b| b == 0) {
            let name = String::from_utf8_lossy(&packet[..nul]).into_owned();
            received.push((name, packet[nul + 1..].to_vec()));
        }
    }
    received
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_round_trips() {
        let (a, b) = sys::seqpacket::channel_pair().unwrap();
        sys::fd::set_nonblocking(a.as_fd(), true).unwrap();
        send(b.as_fd(), "page", b"line one\n");
        let mut buf = vec![0u8; 100];
        let Received::Message { len, .. } = sys::seqpacket::recv(a.as_fd(), &mut buf).unwrap()
        else {
            panic!("no packet");
        };
        assert_eq!(&buf[..len], b"page\0line one\n");
    }
}
