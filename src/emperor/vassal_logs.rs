//! Every line a vassal writes (its master's and workers' logs, request lines, the app's
//! prints and tracebacks, even a config error before it starts) names the vassal it came
//! from. The vassal's stdout and stderr are one pipe read here, a line at a time:
//! - on the emperor's stderr, each line is written as `[NAME] LINE` in one `write(2)`, so
//!   lines of different vassals never mix and `grep '^\[site\] '` picks one app;
//! - under journald, each line is a native entry with `VASSAL=NAME` (and `PRIORITY=6`), so
//!   `journalctl -u emperor.uwsgi.service VASSAL=site` shows one app. (The vassal's own
//!   events and request lines reach the journal natively, with `WORKER_ID=` too.)
//!
//! A line longer than 64 KiB is passed on in pieces. This module does not parse or filter.

use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use tokio::io::AsyncBufReadExt as _;

/// The longest piece relayed at once.
const MAX_LINE: usize = 64 * 1024;

/// The prefix of a vassal's lines on the emperor's stderr.
pub fn prefix(name: &str) -> String {
    format!("[{name}] ")
}

/// Relays the vassal `name`'s output pipe until every writer closed it.
pub fn relay(name: String, output: OwnedFd) {
    let Ok(receiver) = tokio::net::unix::pipe::Receiver::from_owned_fd(output) else {
        return;
    };
    let journal = crate::logging::journal::native_socket();
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::with_capacity(MAX_LINE, receiver);
        let mut line = Vec::with_capacity(1024);
        let prefix = prefix(&name);
        let socket = journal
            .as_ref()
            .and_then(|_| std::os::unix::net::UnixDatagram::unbound().ok())
            // A journald that falls behind must not stall the emperor: the line then goes
            // to stderr, the journal's stream.
            .filter(|socket| socket.set_nonblocking(true).is_ok());
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            emit(&prefix, &name, &line, journal.as_ref().zip(socket.as_ref()));
        }
    });
}

fn emit(
    prefix: &str,
    name: &str,
    line: &[u8],
    journal: Option<(&PathBuf, &std::os::unix::net::UnixDatagram)>,
) {
    for piece in line.chunks(MAX_LINE) {
        let text = String::from_utf8_lossy(piece);
        let text = text.trim_end_matches('\n');
        if let Some((path, socket)) = journal {
            let entry = crate::logging::journal::encode(&[
                ("MESSAGE", text),
                ("PRIORITY", "6"),
                ("SYSLOG_IDENTIFIER", "kaiser"),
                ("VASSAL", name),
            ]);
            if socket.send_to(&entry, path).is_ok() {
                continue;
            }
        }
        let mut out = Vec::with_capacity(prefix.len() + text.len() + 1);
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(text.as_bytes());
        out.push(b'\n');
        let _ = std::io::stderr().lock().write_all(&out);
    }
}
