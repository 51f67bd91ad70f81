//! journald's native protocol: one datagram per entry on `/run/systemd/journal/socket`, made
//! of `KEY=VALUE\n` fields, or `KEY\n<u64 LE length><value>\n` for a value with a newline
//! (systemd's "Native Journal Protocol", <https://systemd.io/JOURNAL_NATIVE_PROTOCOL/>).
//!
//! Written by hand: it is one `sendto` per event, and the encoding is small enough to test
//! byte for byte. It does not pass oversized entries through a memfd as sd_journal_send
//! does; a message longer than [`MAX_MESSAGE`] is cut instead.

use std::fmt::Write as _;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::OnceLock;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Where journald listens for native entries.
pub const DEFAULT_SOCKET: &str = "/run/systemd/journal/socket";
/// Names another socket (tests run without journald).
pub const SOCKET_ENV: &str = "KAISER_JOURNAL_SOCKET";
/// Longer messages are cut here, far below the datagram size journald accepts.
pub const MAX_MESSAGE: usize = 32 * 1024;

/// Encodes one journal entry. Field names must be uppercase ASCII letters, digits and `_`
/// (the caller's constants are); values are any bytes.
pub fn encode(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in fields {
        out.extend_from_slice(key.as_bytes());
        if value.contains('\n') {
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        } else {
            out.push(b'=');
        }
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out
}

/// syslog(3) priorities, as journald's `PRIORITY=` wants them.
pub fn priority(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "3",
        Level::WARN => "4",
        Level::INFO => "6",
        Level::DEBUG | Level::TRACE => "7",
    }
}

/// Sends every event to journald. The vassal name and worker id come from the `vassal{name}`
/// and `worker{id}` spans, or from a `vassal`/`worker` field of the event itself (the
/// emperor's events about a vassal carry one), so both sides show up under one `VASSAL=`.
pub struct JournalLayer {
    socket: UnixDatagram,
    target: PathBuf,
    /// The first `vassal`/`worker` span this process opened: threads that never entered the
    /// span (a worker's request threads) still belong to it. A forked worker inherits the
    /// master's vassal name and records its own id.
    process_vassal: OnceLock<String>,
    process_worker: OnceLock<String>,
}

/// What a span contributes to an entry, kept in the span's extensions.
struct SpanFields {
    /// `vassal{name=site}`, as the stderr format shows it.
    label: String,
    vassal: Option<String>,
    worker: Option<String>,
}

/// journald's native socket, when this process runs under journald (`JOURNAL_STREAM` set)
/// and the socket (or [`SOCKET_ENV`]'s) exists.
pub fn native_socket() -> Option<PathBuf> {
    std::env::var_os("JOURNAL_STREAM")?;
    let target =
        std::env::var_os(SOCKET_ENV).map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from);
    target.exists().then_some(target)
}

impl JournalLayer {
    /// The layer, when the journal's socket (or [`SOCKET_ENV`]'s) exists.
    pub fn from_env() -> Option<Self> {
        let target = std::env::var_os(SOCKET_ENV)
            .map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from);
        if !target.exists() {
            return None;
        }
        Self::to(target).ok()
    }

    pub fn to(target: PathBuf) -> std::io::Result<Self> {
        // Non-blocking: a journald that falls behind must not stall the server; the entry
        // then goes to stderr (the journal's stream) instead.
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(JournalLayer {
            socket,
            target,
            process_vassal: OnceLock::new(),
            process_worker: OnceLock::new(),
        })
    }

    fn send(&self, fields: &[(&str, &str)]) {
        if self.socket.send_to(&encode(fields), &self.target).is_err() {
            // journald is gone or refused the entry: the line must not be lost.
            if let Some((_, message)) = fields.iter().find(|(key, _)| *key == "MESSAGE") {
                // Not `eprintln!`: it panics when stderr is broken too.
                use std::io::Write as _;
                let _ = writeln!(std::io::stderr().lock(), "{message}");
            }
        }
    }
}

/// Collects an event's or span's fields: `message` apart, `vassal`/`worker`/`name`/`id`
/// remembered, everything as ` key=value` text.
#[derive(Default)]
struct Collect {
    message: String,
    rest: String,
    vassal: Option<String>,
    worker: Option<String>,
    name: Option<String>,
    id: Option<String>,
}

impl Collect {
    fn put(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => {
                self.message = value;
                return;
            }
            "vassal" => self.vassal = Some(value.clone()),
            "worker" => self.worker = Some(value.clone()),
            "name" => self.name = Some(value.clone()),
            "id" => self.id = Some(value.clone()),
            _ => {}
        }
        let _ = write!(self.rest, " {}={value}", field.name());
    }
}

impl Visit for Collect {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

impl<S> Layer<S> for JournalLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut collect = Collect::default();
        attrs.record(&mut collect);
        let name = attrs.metadata().name();
        let label = if collect.rest.is_empty() {
            name.to_owned()
        } else {
            format!("{name}{{{}}}", collect.rest.trim_start().replace(' ', ","))
        };
        let (vassal, worker) = match name {
            "vassal" => (collect.name, None),
            "worker" => (None, collect.id),
            _ => (None, None),
        };
        if let Some(vassal) = &vassal {
            let _ = self.process_vassal.set(vassal.clone());
        }
        if let Some(worker) = &worker {
            let _ = self.process_worker.set(worker.clone());
        }
        span.extensions_mut().insert(SpanFields {
            label,
            vassal,
            worker,
        });
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut collect = Collect::default();
        event.record(&mut collect);
        let mut labels = Vec::new();
        let (mut vassal, mut worker) = (None, None);
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    labels.push(fields.label.clone());
                    vassal = fields.vassal.clone().or(vassal);
                    worker = fields.worker.clone().or(worker);
                }
            }
        }
        let vassal = collect
            .vassal
            .or(vassal)
            .or_else(|| self.process_vassal.get().cloned());
        let worker = collect
            .worker
            .or(worker)
            .or_else(|| self.process_worker.get().cloned());
        let mut message = String::new();
        if !labels.is_empty() {
            message.push_str(&labels.join(":"));
            message.push_str(": ");
        }
        message.push_str(&collect.message);
        message.push_str(&collect.rest);
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" [cut]");
        }
        let mut fields = vec![
            ("MESSAGE", message.as_str()),
            ("PRIORITY", priority(event.metadata().level())),
            ("SYSLOG_IDENTIFIER", "kaiser"),
        ];
        if let Some(vassal) = &vassal {
            fields.push(("VASSAL", vassal));
        }
        if let Some(worker) = &worker {
            fields.push(("WORKER_ID", worker));
        }
        self.send(&fields);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt as _;

    #[test]
    fn encoding() {
        fn check(fields: &[(&str, &str)], expected: &[u8]) {
            assert_eq!(
                encode(fields),
                expected,
                "{fields:?} encoded as {:?}",
                String::from_utf8_lossy(&encode(fields))
            );
        }
        check(&[], b"");
        check(&[("MESSAGE", "hi")], b"MESSAGE=hi\n");
        check(&[("MESSAGE", "")], b"MESSAGE=\n");
        check(
            &[("MESSAGE", "a=b c"), ("PRIORITY", "6")],
            b"MESSAGE=a=b c\nPRIORITY=6\n",
        );
        check(
            &[("MESSAGE", "two\nlines"), ("VASSAL", "site")],
            b"MESSAGE\n\x09\0\0\0\0\0\0\0two\nlines\nVASSAL=site\n",
        );
    }

    #[test]
    fn priorities_follow_syslog() {
        assert_eq!(priority(&Level::ERROR), "3");
        assert_eq!(priority(&Level::WARN), "4");
        assert_eq!(priority(&Level::INFO), "6");
        assert_eq!(priority(&Level::DEBUG), "7");
        assert_eq!(priority(&Level::TRACE), "7");
    }

    /// Parses the simple (`KEY=VALUE`) form, which is all these events produce.
    fn fields_of(datagram: &[u8]) -> Vec<(String, String)> {
        String::from_utf8_lossy(datagram)
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect()
    }

    #[test]
    fn spans_and_event_fields_become_journal_fields() {
        let dir = std::env::temp_dir().join(format!("kaiser-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir is writable");
        let path = dir.join("journal.sock");
        let journal = UnixDatagram::bind(&path).expect("bind a journal stand-in");
        let layer = JournalLayer::to(path).expect("unbound datagram socket");
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let vassal = tracing::info_span!("vassal", name = "site");
            let _vassal = vassal.enter();
            tracing::warn!(pid = 7, "worker died");
            let worker = tracing::info_span!("worker", id = 2, pid = 8);
            let _worker = worker.enter();
            tracing::info!("accepting");
        });
        tracing::subscriber::with_default(
            tracing_subscriber::registry()
                .with(JournalLayer::to(dir.join("journal.sock")).expect("unbound datagram socket")),
            || {
                let emperor = tracing::info_span!("emperor");
                let _emperor = emperor.enter();
                tracing::error!(vassal = %"blog", "vassal failed");
                tracing::info!("emperor ready");
            },
        );
        let mut buf = vec![0u8; 4096];
        let mut next = || {
            let len = journal.recv(&mut buf).expect("an entry arrives");
            fields_of(&buf[..len])
        };
        let owned = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            next(),
            owned(&[
                ("MESSAGE", "vassal{name=site}: worker died pid=7"),
                ("PRIORITY", "4"),
                ("SYSLOG_IDENTIFIER", "kaiser"),
                ("VASSAL", "site"),
            ])
        );
        assert_eq!(
            next(),
            owned(&[
                ("MESSAGE", "vassal{name=site}:worker{id=2,pid=8}: accepting"),
                ("PRIORITY", "6"),
                ("SYSLOG_IDENTIFIER", "kaiser"),
                ("VASSAL", "site"),
                ("WORKER_ID", "2"),
            ])
        );
        assert_eq!(
            next(),
            owned(&[
                ("MESSAGE", "emperor: vassal failed vassal=blog"),
                ("PRIORITY", "3"),
                ("SYSLOG_IDENTIFIER", "kaiser"),
                ("VASSAL", "blog"),
            ])
        );
        assert_eq!(
            next(),
            owned(&[
                ("MESSAGE", "emperor: emperor ready"),
                ("PRIORITY", "6"),
                ("SYSLOG_IDENTIFIER", "kaiser"),
            ])
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
