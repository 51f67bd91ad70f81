//! The `stats` server: on each connection the master writes the stats JSON and closes
//! (with `stats-http`, after reading the request, behind a minimal HTTP/1.0 head).
//!
//! It runs inside the master's single-threaded poll loop, so nothing here blocks: the
//! listener and client sockets are non-blocking, a client that does not read gets its
//! document from a buffer as its socket drains, and any client still connected after
//! [`CLIENT_TIMEOUT`] is dropped. A stalled client therefore costs a buffer and an fd, never
//! the master's attention. It does not know what the JSON says (`stats.rs`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::sys;
use crate::sys::net::BindAddr;

/// How long one client may take to send its request (`stats-http`) and read the answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections beyond this many in progress are closed at once.
const MAX_CLIENTS: usize = 64;

/// Which document a client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    /// uWSGI's stats JSON.
    Json,
    /// Prometheus' text exposition (`/metrics` on `stats-http`, or `stats-prometheus`).
    Prometheus,
}

#[derive(Debug, thiserror::Error)]
pub enum BindStatsError {
    #[error("cannot resolve the stats address `{address}`")]
    Resolve {
        address: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot bind the stats server on `{address}`")]
    Bind {
        address: String,
        #[source]
        source: io::Error,
    },
}

pub struct StatsServer {
    listeners: Vec<Listening>,
    clients: Vec<Client>,
}

/// One listening socket: `stats` (JSON, or HTTP with `/metrics` too) or `stats-prometheus`.
struct Listening {
    fd: OwnedFd,
    local: BindAddr,
    http: bool,
    prometheus_only: bool,
}

struct Client {
    fd: OwnedFd,
    deadline: Instant,
    http: bool,
    prometheus_only: bool,
    /// `None` while waiting for the HTTP request; then the bytes still to send.
    pending: Option<(Vec<u8>, usize)>,
}

/// uWSGI's rule ([`sys::net::resolve_listen_address`], shared with the emperor).
pub fn parse_address(address: &str) -> Result<BindAddr, BindStatsError> {
    sys::net::resolve_listen_address(address).map_err(|source| BindStatsError::Resolve {
        address: address.to_string(),
        source,
    })
}

impl StatsServer {
    /// Binds `stats` and `stats-prometheus`, if either is set.
    pub fn from_config(config: &crate::config::Config) -> Result<Option<Self>, BindStatsError> {
        let mut listeners = Vec::new();
        if let Some(address) = &config.stats {
            let listening = bind(address, config.stats_http, false, config.chmod_socket)?;
            tracing::info!(address = %listening.local, http = config.stats_http, "stats server listening");
            listeners.push(listening);
        }
        if let Some(address) = &config.stats_prometheus {
            let listening = bind(address, true, true, config.chmod_socket)?;
            tracing::info!(address = %listening.local, "Prometheus metrics listening (/metrics)");
            listeners.push(listening);
        }
        Ok((!listeners.is_empty()).then_some(StatsServer {
            listeners,
            clients: Vec::new(),
        }))
    }

    /// Descriptors a forked worker must close (it must not hold a client's connection open).
    pub fn raw_fds(&self) -> Vec<RawFd> {
        self.listeners
            .iter()
            .map(|l| l.fd.as_raw_fd())
            .chain(self.clients.iter().map(|c| c.fd.as_raw_fd()))
            .collect()
    }

    /// What to poll: the listeners first, then each client for reading or writing.
    pub fn poll_fds(&self) -> Vec<(BorrowedFd<'_>, i16)> {
        self.listeners
            .iter()
            .map(|l| (l.fd.as_fd(), sys::poll::READABLE))
            .chain(self.clients.iter().map(|client| {
                let events = if client.pending.is_some() {
                    sys::poll::WRITABLE
                } else {
                    sys::poll::READABLE
                };
                (client.fd.as_fd(), events)
            }))
            .collect()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.clients.iter().map(|c| c.deadline).min()
    }

    /// Handles the poll results for [`StatsServer::poll_fds`] (same order), then drops
    /// clients past their deadline. `render` makes the document asked for.
    pub fn on_events(&mut self, revents: &[i16], mut render: impl FnMut(Document) -> Vec<u8>) {
        let now = Instant::now();
        let first_client = self.listeners.len();
        let mut keep = Vec::with_capacity(self.clients.len());
        let clients = std::mem::take(&mut self.clients);
        for (index, mut client) in clients.into_iter().enumerate() {
            let ready = revents.get(index + first_client).copied().unwrap_or(0) != 0;
            if ready {
                if client.pending.is_none() {
                    // stats-http: one read of the request is enough, as in uWSGI.
                    let mut request = [0u8; 4096];
                    match sys::fd::read(client.fd.as_fd(), &mut request) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Ok(0) | Err(_) => continue,
                        Ok(n) => {
                            let document = if client.prometheus_only || asks_metrics(&request[..n])
                            {
                                Document::Prometheus
                            } else {
                                Document::Json
                            };
                            client.pending = Some((http_document(document, &mut render), 0));
                        }
                    }
                }
                if client.pending.is_some() && !flush(&mut client) {
                    continue;
                }
            }
            if client.deadline <= now {
                continue;
            }
            keep.push(client);
        }
        self.clients = keep;
        for index in 0..self.listeners.len() {
            if revents.get(index).copied().unwrap_or(0) != 0 {
                self.accept_all(index, now, &mut render);
            }
        }
    }

    fn accept_all(
        &mut self,
        index: usize,
        now: Instant,
        render: &mut impl FnMut(Document) -> Vec<u8>,
    ) {
        let listening = &self.listeners[index];
        loop {
            let fd = match sys::net::accept(listening.fd.as_fd()) {
                Ok(Some((fd, _))) => fd,
                Ok(None) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "stats server: accept failed");
                    return;
                }
            };
            if self.clients.len() >= MAX_CLIENTS {
                tracing::warn!("stats server: too many clients in progress; closing a new one");
                continue;
            }
            let mut client = Client {
                fd,
                deadline: now + CLIENT_TIMEOUT,
                http: listening.http,
                prometheus_only: listening.prometheus_only,
                pending: None,
            };
            if !client.http {
                client.pending = Some((render(Document::Json), 0));
                // Most documents fit the socket buffer: done in one write.
                if !flush(&mut client) {
                    continue;
                }
            }
            self.clients.push(client);
        }
    }
}

/// Binds one listener; a unix socket gets `chmod_socket`'s mode when set, as in uWSGI.
fn bind(
    address: &str,
    http: bool,
    prometheus_only: bool,
    chmod_socket: Option<u32>,
) -> Result<Listening, BindStatsError> {
    let wanted = parse_address(address)?;
    // No TCP_DEFER_ACCEPT: the stats client never speaks first.
    let fd = sys::net::bind_listener(&wanted, 64, sys::net::ListenOptions::default())
        .and_then(|fd| sys::fd::set_nonblocking(fd.as_fd(), true).map(|()| fd))
        .map_err(|source| BindStatsError::Bind {
            address: address.to_string(),
            source,
        })?;
    if let (BindAddr::Unix(path), Some(mode)) = (&wanted, chmod_socket) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(
            |source| BindStatsError::Bind {
                address: address.to_string(),
                source,
            },
        )?;
    }
    let local = sys::net::local_addr(fd.as_fd()).unwrap_or(wanted);
    Ok(Listening {
        fd,
        local,
        http,
        prometheus_only,
    })
}

/// `GET /metrics` (with or without a query string) on `stats-http`.
fn asks_metrics(request: &[u8]) -> bool {
    let line = request.split(|b| *b == b'\n').next().unwrap_or(b"");
    let mut parts = line.split(|b| *b == b' ');
    let _method = parts.next();
    let target = parts.next().unwrap_or(b"");
    let path = target.split(|b| *b == b'?').next().unwrap_or(b"");
    path == b"/metrics"
}

/// The answer to an HTTP client: a minimal HTTP/1.0 head and the document.
fn http_document(document: Document, render: &mut impl FnMut(Document) -> Vec<u8>) -> Vec<u8> {
    let content_type = match document {
        Document::Json => "application/json",
        Document::Prometheus => crate::protocol::prometheus::CONTENT_TYPE,
    };
    let body = render(document);
    let mut out = format!(
        "HTTP/1.0 200 OK\r\nConnection: close\r\nAccess-Control-Allow-Origin: *\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Sends what the socket takes now. False once the client is done (all sent, or gone).
fn flush(client: &mut Client) -> bool {
    let Some((bytes, sent)) = client.pending.as_mut() else {
        return true;
    };
    while *sent < bytes.len() {
        match sys::fd::send(client.fd.as_fd(), &bytes[*sent..]) {
            Ok(n) => *sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_uwsgi() {
        let check = |text: &str, expected: &str| {
            let got = match parse_address(text) {
                Ok(addr) => addr.to_string(),
                Err(e) => format!("error: {e}"),
            };
            assert_eq!(got, expected, "{text}");
        };
        check("127.0.0.1:9191", "127.0.0.1:9191");
        check(":9191", "0.0.0.0:9191");
        check("/run/app/stats.sock", "/run/app/stats.sock");
        check("@app-stats", "@app-stats");
        check(
            "127.0.0.1:x",
            "error: cannot resolve the stats address `127.0.0.1:x`",
        );
    }

    #[test]
    fn only_the_metrics_path_asks_for_metrics() {
        assert!(asks_metrics(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(asks_metrics(b"GET /metrics?name[]=x HTTP/1.1\r\n"));
        assert!(!asks_metrics(b"GET / HTTP/1.1\r\n"));
        assert!(!asks_metrics(b"GET /metricsx HTTP/1.1\r\n"));
    }
}
