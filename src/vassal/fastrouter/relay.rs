//! One fastrouter connection: read the uwsgi packet's header and vars, find the key and its
//! node, connect, forward the packet (with the node's modifiers for a subscribed node) and
//! then relay bytes both ways until both sides are done, as uWSGI's `fastrouter.c` does.
//!
//! Whatever goes wrong (a malformed packet, no key, a key without a node, a node that cannot
//! be reached) closes this connection and nothing else; uWSGI answers nothing either.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::nodes::{from_pattern, Target};
use super::{Listener, Router};
use crate::protocol::uwsgi::{parse_vars, HEADER_LEN, MAX_VARS};

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Accepts for ever; each connection is its own task.
pub(super) async fn accept_loop(listener: Listener, router: Arc<Router>) {
    loop {
        let accepted: std::io::Result<Box<dyn Stream>> = match &listener {
            Listener::Tcp(l) => l.accept().await.map(|(s, _)| {
                let _ = s.set_nodelay(true);
                Box::new(s) as Box<dyn Stream>
            }),
            Listener::Unix(l) => l
                .accept()
                .await
                .map(|(s, _)| Box::new(s) as Box<dyn Stream>),
        };
        match accepted {
            Ok(client) => {
                tokio::spawn(serve(client, router.clone()));
            }
            Err(err) => {
                tracing::warn!(error = %err, "fastrouter: accept failed");
                // EMFILE and friends: give the open connections a moment to finish.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve(mut client: Box<dyn Stream>, router: Arc<Router>) {
    let _active = Active::new(&router);
    let timeout = router.config.timeout;
    let packet = match tokio::time::timeout(timeout, read_packet(&mut client)).await {
        Ok(Ok(packet)) => packet,
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "fastrouter: cannot read the request's header");
            return;
        }
        Err(_) => {
            tracing::debug!("fastrouter: no request header within fastrouter-timeout");
            return;
        }
    };
    let key = match request_key(&packet, &router) {
        Ok(key) => key,
        Err(why) => {
            tracing::warn!(why, "fastrouter: bad request closed");
            return;
        }
    };
    let mut target = map(&router, &key);
    let to_fallback = router.config.fallback_on_no_key && !router.config.fallback.is_empty();
    if target.is_none() && !to_fallback {
        tracing::warn!(key, "fastrouter: no node for this key; connection closed");
        return;
    }
    // The mapped node, another one of its map for each retry (a subscribed or static node
    // that refused is dropped or skipped first), then the fallbacks in order.
    let mut retries = 0;
    let mut fallbacks = router.config.fallback.iter();
    let fallback = |address: &String| Target {
        address: address.clone(),
        modifiers: None,
        static_index: None,
        subscribed_key: None,
    };
    if target.is_none() {
        target = fallbacks.next().map(fallback);
    }
    loop {
        let Some(current) = target.take() else {
            return;
        };
        let failed = match tokio::time::timeout(timeout, connect(&current.address)).await {
            Ok(Ok(node)) => {
                relay(client, node, packet, current.modifiers, &key, timeout).await;
                return;
            }
            Ok(Err(err)) => err.to_string(),
            Err(_) => "timed out (fastrouter-timeout)".to_string(),
        };
        if !router.config.quiet {
            tracing::error!(
                key,
                node = current.address,
                error = failed,
                retries,
                "fastrouter: cannot connect to the node"
            );
        }
        let remapped = current.static_index.is_some() || current.subscribed_key.is_some();
        if let Some(index) = current.static_index {
            router.statics().mark_dead(index, Instant::now());
        }
        if let Some(subscribed) = &current.subscribed_key {
            if router.table().remove(subscribed, &current.address) {
                tracing::warn!(
                    key = subscribed,
                    node = current.address,
                    "fastrouter: node marked as failed and dropped"
                );
            }
        }
        retries += 1;
        if remapped && retries <= router.config.max_retries {
            target = map(&router, &key);
        }
        if target.is_none() {
            target = fallbacks.next().map(fallback);
        }
    }
}

/// Counts a connection in the stats' `active_sessions` while it lives.
struct Active<'a>(&'a Router);

impl<'a> Active<'a> {
    fn new(router: &'a Router) -> Active<'a> {
        router.active.fetch_add(1, Ordering::Relaxed);
        Active(router)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The header and the vars block, as read.
async fn read_packet(client: &mut Box<dyn Stream>) -> std::io::Result<Vec<u8>> {
    let mut header = [0u8; HEADER_LEN];
    client.read_exact(&mut header).await?;
    let size = usize::from(u16::from_le_bytes([header[1], header[2]]));
    let mut packet = vec![0u8; HEADER_LEN + size];
    packet[..HEADER_LEN].copy_from_slice(&header);
    client.read_exact(&mut packet[HEADER_LEN..]).await?;
    Ok(packet)
}

/// `fastrouter-force-key`, else `UWSGI_FASTROUTER_KEY`, else `HTTP_HOST`, else
/// `SERVER_NAME` (uWSGI's `fr_get_hostname`).
fn request_key(packet: &[u8], router: &Router) -> Result<String, &'static str> {
    if let Some(key) = &router.config.force_key {
        return Ok(key.clone());
    }
    let size = u16::from_le_bytes([packet[1], packet[2]]);
    let vars =
        parse_vars(&packet[HEADER_LEN..], size, MAX_VARS).map_err(|_| "malformed uwsgi vars")?;
    let find = |name: &[u8]| {
        vars.iter()
            .find(|(k, v)| *k == name && !v.is_empty())
            .map(|(_, v)| *v)
    };
    let key = find(b"UWSGI_FASTROUTER_KEY")
        .or_else(|| find(b"HTTP_HOST"))
        .or_else(|| find(b"SERVER_NAME"))
        .ok_or("no key (HTTP_HOST, SERVER_NAME or UWSGI_FASTROUTER_KEY)")?;
    // uWSGI keeps keys of at most 255 bytes.
    if key.len() > 0xff {
        return Err("key longer than 255 bytes");
    }
    String::from_utf8(key.to_vec()).map_err(|_| "key is not UTF-8")
}

/// The node for `key`, by the first map configured in uWSGI's order: pattern,
/// subscriptions, base, the instance's own socket, static nodes.
fn map(router: &Router, key: &str) -> Option<Target> {
    let config = &router.config;
    let plain = |address: String| Target {
        address,
        modifiers: None,
        static_index: None,
        subscribed_key: None,
    };
    if let Some(pattern) = &config.pattern {
        return Some(plain(from_pattern(pattern, key)));
    }
    if router.has_subscriptions {
        let mut table = router.table();
        return table.pick(key).or_else(|| {
            config
                .subscription_fallback_key
                .as_deref()
                .and_then(|fallback| table.pick(fallback))
        });
    }
    if let Some(base) = &config.base {
        return Some(plain(format!("{base}{key}")));
    }
    if let Some(address) = &router.to_socket {
        return Some(plain(address.clone()));
    }
    let mut statics = router.statics();
    if !statics.is_empty() {
        return statics.pick(Instant::now());
    }
    None
}

/// `host:port` is TCP; a path (or `@name`, abstract) is a unix socket.
async fn connect(address: &str) -> std::io::Result<Box<dyn Stream>> {
    if let Some(name) = address.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        let stream = std::os::unix::net::UnixStream::connect_addr(&addr)?;
        stream.set_nonblocking(true)?;
        return Ok(Box::new(tokio::net::UnixStream::from_std(stream)?));
    }
    if address.starts_with('/') || !address.contains(':') {
        return Ok(Box::new(tokio::net::UnixStream::connect(address).await?));
    }
    let stream = tokio::net::TcpStream::connect(address).await?;
    let _ = stream.set_nodelay(true);
    Ok(Box::new(stream))
}

async fn relay(
    mut client: Box<dyn Stream>,
    mut node: Box<dyn Stream>,
    mut packet: Vec<u8>,
    modifiers: Option<(u8, u8)>,
    key: &str,
    timeout: Duration,
) {
    if let Some((modifier1, modifier2)) = modifiers {
        packet[0] = modifier1;
        packet[3] = modifier2;
    }
    if let Err(err) = node.write_all(&packet).await {
        tracing::warn!(key, error = %err, "fastrouter: cannot send the request to the node");
        return;
    }
    match pump(&mut client, &mut node, timeout).await {
        Ok((up, down)) => tracing::debug!(key, up, down, "fastrouter: request relayed"),
        Err(err) => tracing::debug!(key, error = %err, "fastrouter: relay ended"),
    }
}

/// Bytes both ways until the node has sent its whole response (its end of the stream ends
/// the session, as in uWSGI), or until neither side moved for `timeout`
/// (`fastrouter-timeout`). The client's end of its stream is passed on to the node.
async fn pump(
    client: &mut Box<dyn Stream>,
    node: &mut Box<dyn Stream>,
    timeout: Duration,
) -> std::io::Result<(u64, u64)> {
    let idle = || {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no traffic within fastrouter-timeout",
        )
    };
    let mut up_buf = vec![0u8; 16 * 1024];
    let mut down_buf = vec![0u8; 16 * 1024];
    let (mut up, mut down) = (0u64, 0u64);
    let mut client_open = true;
    loop {
        tokio::select! {
            read = client.read(&mut up_buf), if client_open => {
                let n = read?;
                if n == 0 {
                    client_open = false;
                    let _ = node.shutdown().await;
                    continue;
                }
                tokio::time::timeout(timeout, node.write_all(&up_buf[..n])).await.map_err(|_| idle())??;
                up += n as u64;
            }
            read = node.read(&mut down_buf) => {
                let n = read?;
                if n == 0 {
                    let _ = client.shutdown().await;
                    return Ok((up, down));
                }
                tokio::time::timeout(timeout, client.write_all(&down_buf[..n])).await.map_err(|_| idle())??;
                down += n as u64;
            }
            _ = tokio::time::sleep(timeout) => return Err(idle()),
        }
    }
}
