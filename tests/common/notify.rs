//! A stand-in for systemd's notification socket: tests point `NOTIFY_SOCKET` at it and read
//! the sd_notify datagrams (`READY=1`, `STATUS=…`, `RELOADING=1`, `STOPPING=1`, …) that
//! kaiser sends, as systemd (or an emperor) would.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::tempdir::TempDir;

pub struct NotifyListener {
    socket: UnixDatagram,
    path: PathBuf,
    /// Every datagram received, in order.
    received: Vec<String>,
    /// How many of `received` earlier `recv_until` calls have looked at.
    consumed: usize,
    _dir: TempDir,
}

impl NotifyListener {
    pub fn new() -> NotifyListener {
        let dir = TempDir::new("notify");
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path)
            .unwrap_or_else(|error| panic!("cannot bind {}: {error}", path.display()));
        NotifyListener {
            socket,
            path,
            received: Vec::new(),
            consumed: 0,
            _dir: dir,
        }
    }

    /// The value for `NOTIFY_SOCKET`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for a datagram, after those earlier calls returned or skipped, for which
    /// `predicate` holds (e.g. `|m| m.lines().any(|l| l == "READY=1")`), and returns it.
    /// The messages skipped on the way stay in [`NotifyListener::messages`].
    pub fn recv_until(
        &mut self,
        predicate: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let first_looked_at = self.consumed;
        loop {
            while self.consumed < self.received.len() {
                let message = &self.received[self.consumed];
                self.consumed += 1;
                if predicate(message) {
                    return Ok(message.clone());
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "timed out after {timeout:?} waiting for a matching notification on {}; \
                     received meanwhile: {:?}",
                    self.path.display(),
                    &self.received[first_looked_at..]
                ));
            }
            self.socket
                .set_read_timeout(Some(deadline - now))
                .expect("setting a read timeout");
            let mut buffer = vec![0u8; 64 * 1024];
            match self.socket.recv(&mut buffer) {
                Ok(n) => self
                    .received
                    .push(String::from_utf8_lossy(&buffer[..n]).into_owned()),
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(error) => panic!("recv on {} failed: {error}", self.path.display()),
            }
        }
    }

    /// Waits for a datagram containing the line `line` exactly, e.g. `"READY=1"`.
    pub fn recv_line(&mut self, line: &str, timeout: Duration) -> Result<String, String> {
        self.recv_until(|message| message.lines().any(|l| l == line), timeout)
    }

    /// Every datagram received so far.
    pub fn messages(&self) -> &[String] {
        &self.received
    }
}

impl Default for NotifyListener {
    fn default() -> Self {
        NotifyListener::new()
    }
}
