//! The emperor's stats server (`emperor-stats`): binds the address, accepts clients and
//! sends each the JSON document, bounded so that clients cannot pile up. Like the vassal's
//! (`vassal/stats_server.rs`), a client gets at most [`CLIENT_TIMEOUT`] to take the whole
//! document, and at most [`MAX_CLIENTS`] are served at once; others are closed at once.
//!
//! It does not build the document (`stats.rs`) or decide when to serve (the governor's loop).

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;
use tracing::debug;

use crate::sys::net::BindAddr;

/// How long one client may take to read the whole document.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);
/// Clients served at once.
pub const MAX_CLIENTS: usize = 64;
/// The listen backlog (uWSGI's default `listen` is 100).
const BACKLOG: u32 = 128;

pub enum StatsListener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

pub enum StatsStream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

impl StatsListener {
    /// `:` in the address means TCP, `@name` an abstract unix socket, anything else a unix
    /// socket path, as in uWSGI: the vassal's parser ([`crate::sys::net::resolve_listen_address`]).
    /// A socket file left by a previous run is replaced.
    pub async fn bind(address: &str) -> std::io::Result<Self> {
        let wanted = crate::sys::net::resolve_listen_address(address)?;
        let options = crate::sys::net::ListenOptions {
            // The server writes first: a deferred accept would hold clients back for seconds.
            defer_accept: false,
            ..crate::sys::net::ListenOptions::default()
        };
        let fd = crate::sys::net::bind_listener(&wanted, BACKLOG, options)?;
        crate::sys::fd::set_nonblocking(fd.as_fd(), true)?;
        Ok(match wanted {
            BindAddr::Tcp(_) => StatsListener::Tcp(tokio::net::TcpListener::from_std(
                std::net::TcpListener::from(fd),
            )?),
            BindAddr::Unix(_) | BindAddr::Abstract(_) => StatsListener::Unix(
                tokio::net::UnixListener::from_std(std::os::unix::net::UnixListener::from(fd))?,
            ),
        })
    }

    /// Whether the socket is a path in the file system (removed at exit).
    pub fn is_path(&self, address: &str) -> bool {
        matches!(self, StatsListener::Unix(_)) && !address.starts_with('@')
    }
}

pub async fn accept(listener: &Option<StatsListener>) -> std::io::Result<StatsStream> {
    match listener {
        None => std::future::pending().await,
        Some(StatsListener::Tcp(listener)) => Ok(StatsStream::Tcp(listener.accept().await?.0)),
        Some(StatsListener::Unix(listener)) => Ok(StatsStream::Unix(listener.accept().await?.0)),
    }
}

/// Sends `body` to the client on a task of its own, unless [`MAX_CLIENTS`] are being served
/// already (the client is then closed at once).
pub fn serve(stream: StatsStream, body: String, clients: &Arc<Semaphore>) {
    let Ok(permit) = clients.clone().try_acquire_owned() else {
        debug!("emperor-stats: too many clients at once; closing this one");
        return;
    };
    tokio::spawn(async move {
        let result = match stream {
            StatsStream::Tcp(mut stream) => send_bounded(&mut stream, body.as_bytes()).await,
            StatsStream::Unix(mut stream) => send_bounded(&mut stream, body.as_bytes()).await,
        };
        if let Err(error) = result {
            debug!(%error, "emperor-stats client went away or did not read in time");
        }
        drop(permit);
    });
}

/// [`serve`] for an HTTP client (`emperor-stats-prometheus`): reads the request head first
/// (closing with it unread would reset the connection under the answer), then sends a
/// minimal HTTP/1.0 answer, all within [`CLIENT_TIMEOUT`].
pub fn serve_http(
    stream: StatsStream,
    content_type: &'static str,
    body: Vec<u8>,
    clients: &Arc<Semaphore>,
) {
    let Ok(permit) = clients.clone().try_acquire_owned() else {
        debug!("emperor-stats: too many clients at once; closing this one");
        return;
    };
    tokio::spawn(async move {
        let answer = |body: &[u8]| {
            let mut out = format!(
                "HTTP/1.0 200 OK\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            out.extend_from_slice(body);
            out
        };
        let result = tokio::time::timeout(CLIENT_TIMEOUT, async {
            match stream {
                StatsStream::Tcp(mut stream) => {
                    read_head(&mut stream).await?;
                    stream.write_all(&answer(&body)).await
                }
                StatsStream::Unix(mut stream) => {
                    read_head(&mut stream).await?;
                    stream.write_all(&answer(&body)).await
                }
            }
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => debug!(%error, "emperor metrics client went away"),
            Err(_) => debug!("emperor metrics client did not ask or read in time"),
        }
        drop(permit);
    });
}

/// Reads until the end of an HTTP request head (a blank line), at most 8 KiB.
async fn read_head(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}

async fn send_bounded(stream: &mut (impl AsyncWrite + Unpin), body: &[u8]) -> std::io::Result<()> {
    send_within(stream, body, CLIENT_TIMEOUT).await
}

/// Writes `body` whole within `limit`, or fails with `TimedOut`.
async fn send_within(
    stream: &mut (impl AsyncWrite + Unpin),
    body: &[u8],
    limit: Duration,
) -> std::io::Result<()> {
    match tokio::time::timeout(limit, stream.write_all(body)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    }

    #[test]
    fn a_client_that_never_reads_is_given_up_on() {
        runtime().block_on(async {
            // A 64-byte pipe whose reader never reads: the write can never finish.
            let (mut writer, _reader) = tokio::io::duplex(64);
            let body = vec![b'x'; 4096];
            let result = send_within(&mut writer, &body, Duration::from_millis(50)).await;
            assert_eq!(
                result.map_err(|e| e.kind()),
                Err(std::io::ErrorKind::TimedOut)
            );
        });
    }

    #[test]
    fn a_reading_client_gets_the_whole_document() {
        runtime().block_on(async {
            let (mut writer, mut reader) = tokio::io::duplex(64);
            let body = vec![b'x'; 4096];
            let reading = async {
                let mut got = Vec::new();
                tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut got)
                    .await
                    .map(|_| got)
            };
            let writing = async {
                let result = send_within(&mut writer, &body, Duration::from_secs(5)).await;
                drop(writer);
                result
            };
            let (got, sent) = tokio::join!(reading, writing);
            sent.expect("sent");
            assert_eq!(got.expect("read").len(), 4096);
        });
    }

    #[test]
    fn clients_past_the_cap_are_not_served() {
        let clients = Arc::new(Semaphore::new(MAX_CLIENTS));
        let held: Vec<_> = (0..MAX_CLIENTS)
            .map(|_| clients.clone().try_acquire_owned().expect("a permit"))
            .collect();
        assert!(clients.clone().try_acquire_owned().is_err());
        drop(held);
        assert!(clients.try_acquire_owned().is_ok());
    }
}
