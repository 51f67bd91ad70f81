//! uWSGI's fastrouter: a gateway process the master forks (and respawns), kept out of the
//! workers, that accepts uwsgi-protocol connections (nginx's `uwsgi_pass`) on its
//! `fastrouter` addresses, picks a node for each request by key and relays the request and
//! the response between the two (`relay.rs`). Keys map to nodes through, in uWSGI's order:
//! `fastrouter-use-pattern`, the subscription server (`nodes.rs`), `fastrouter-use-base`,
//! `fastrouter-use-socket`, then the static `fastrouter-to` nodes.
//!
//! The master binds the listeners and the subscription sockets ([`GatewaySockets::bind`]),
//! so a respawned router serves the same addresses; the router process runs one tokio event
//! loop. A bad request, an unknown key or a dead node ends that one connection, never the
//! router. This module must not touch the workers or Python.

mod carry;
mod nodes;
mod relay;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::{Config, FastrouterConfig};
use crate::sys;
use crate::sys::net::BindAddr;
use crate::sys::process::Pid;

use super::sockets::BindSocketError;
use nodes::{Announcement, StaticNodes, Subscriptions};

/// The router's sockets, bound by the master before it forks the router.
pub struct GatewaySockets {
    /// Each listener with its address, and that address as written.
    listeners: Vec<(OwnedFd, BindAddr, String)>,
    /// Each subscription socket with its address as written.
    subscriptions: Vec<(SubscriptionSocket, String)>,
    /// `fastrouter-stats`, like a listener.
    stats: Option<(OwnedFd, BindAddr, String)>,
}

enum SubscriptionSocket {
    Udp(std::net::UdpSocket),
    Unix(std::os::unix::net::UnixDatagram),
}

impl SubscriptionSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            SubscriptionSocket::Udp(s) => s.as_fd(),
            SubscriptionSocket::Unix(s) => s.as_fd(),
        }
    }
}

impl GatewaySockets {
    /// `None` without `fastrouter`.
    pub fn bind(config: &Config) -> Result<Option<GatewaySockets>, BindSocketError> {
        let router = &config.fastrouter;
        // Taken even when the new config has no router, so that none leaks into children.
        let mut carried = carry::take();
        if !router.enabled() {
            return Ok(None);
        }
        let error = |option: &str, address: &str| {
            let (option, address) = (option.to_string(), address.to_string());
            move |source| BindSocketError::Bind {
                option,
                address,
                source,
            }
        };
        let mut listeners = Vec::new();
        for address in &router.listen {
            let addr = sys::net::resolve_listen_address(address).map_err(|source| {
                BindSocketError::Resolve {
                    option: "fastrouter".into(),
                    address: address.clone(),
                    source,
                }
            })?;
            let options = sys::net::ListenOptions {
                defer_accept: false,
                reuse_port: config.reuse_port,
                keepalive: config.so_keepalive,
                freebind: config.freebind,
            };
            let fd = match carry::claim(&mut carried, "fastrouter", address) {
                Some(fd) => fd,
                None => sys::net::bind_listener(&addr, super::sockets::backlog(config), options)
                    .map_err(error("fastrouter", address))?,
            };
            let local = sys::net::local_addr(std::os::fd::AsFd::as_fd(&fd)).unwrap_or(addr.clone());
            tracing::info!(address = %local, "fastrouter: listening");
            listeners.push((fd, addr, address.clone()));
        }
        let mut stats = None;
        if let Some(address) = &router.stats {
            let addr = sys::net::resolve_listen_address(address).map_err(|source| {
                BindSocketError::Resolve {
                    option: "fastrouter-stats".into(),
                    address: address.clone(),
                    source,
                }
            })?;
            let fd = match carry::claim(&mut carried, "fastrouter-stats", address) {
                Some(fd) => fd,
                None => sys::net::bind_listener(
                    &addr,
                    super::sockets::backlog(config),
                    sys::net::ListenOptions {
                        // The stats server speaks first.
                        defer_accept: false,
                        reuse_port: false,
                        keepalive: false,
                        freebind: false,
                    },
                )
                .map_err(error("fastrouter-stats", address))?,
            };
            let local = sys::net::local_addr(fd.as_fd()).unwrap_or(addr.clone());
            tracing::info!(address = %local, "fastrouter: stats server listening");
            stats = Some((fd, addr, address.clone()));
        }
        let mut subscriptions = Vec::new();
        for address in &router.subscription_servers {
            let bind = error("fastrouter-subscription-server", address);
            let udp = address.contains(':') && !address.starts_with('/');
            if let Some(fd) = carry::claim(&mut carried, "fastrouter-subscription-server", address)
            {
                let socket = if udp {
                    SubscriptionSocket::Udp(std::net::UdpSocket::from(fd))
                } else {
                    SubscriptionSocket::Unix(std::os::unix::net::UnixDatagram::from(fd))
                };
                tracing::info!(address = %address, "fastrouter: subscription server listening (kept across the reload)");
                subscriptions.push((socket, address.clone()));
                continue;
            }
            let socket = if udp {
                // `:7171`, `*:7171` and `0:7171` are every IPv4 interface, as for listeners.
                let resolved = match sys::net::resolve_listen_address(address) {
                    Ok(BindAddr::Tcp(addr)) => addr,
                    Ok(_) | Err(_) => {
                        return Err(BindSocketError::Resolve {
                            option: "fastrouter-subscription-server".into(),
                            address: address.clone(),
                            source: std::io::Error::new(
                                std::io::ErrorKind::InvalidInput,
                                "expected HOST:PORT or a unix socket path",
                            ),
                        })
                    }
                };
                let socket = std::net::UdpSocket::bind(resolved).map_err(bind)?;
                let local = socket
                    .local_addr()
                    .map_or(address.clone(), |a| a.to_string());
                tracing::info!(address = %local, "fastrouter: subscription server listening");
                SubscriptionSocket::Udp(socket)
            } else {
                // A stale socket file of a previous run goes, as with the listeners.
                if std::fs::symlink_metadata(address)
                    .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
                {
                    let _ = std::fs::remove_file(address);
                }
                let socket = std::os::unix::net::UnixDatagram::bind(address).map_err(bind)?;
                tracing::info!(address = %address, "fastrouter: subscription server listening");
                SubscriptionSocket::Unix(socket)
            };
            subscriptions.push((socket, address.clone()));
        }
        Ok(Some(GatewaySockets {
            listeners,
            subscriptions,
            stats,
        }))
    }

    /// Every fd, for the other children to close.
    pub fn raw_fds(&self) -> Vec<RawFd> {
        let mut fds: Vec<RawFd> = self
            .listeners
            .iter()
            .map(|(fd, _, _)| fd.as_raw_fd())
            .collect();
        fds.extend(
            self.subscriptions
                .iter()
                .map(|(s, _)| s.as_fd().as_raw_fd()),
        );
        fds
    }

    /// Before a reload's re-exec: the sockets stay open for the new image (`carry.rs`).
    pub fn keep_across_exec(&self) -> std::io::Result<()> {
        let mut named = Vec::new();
        for (fd, _, address) in &self.listeners {
            named.push((fd.as_fd(), "fastrouter", address.as_str()));
        }
        for (socket, address) in &self.subscriptions {
            named.push((
                socket.as_fd(),
                "fastrouter-subscription-server",
                address.as_str(),
            ));
        }
        carry::keep(&named)
    }

    /// The re-exec failed.
    pub fn undo_exec(&self) {
        let mut fds: Vec<BorrowedFd<'_>> =
            self.listeners.iter().map(|(fd, _, _)| fd.as_fd()).collect();
        fds.extend(self.subscriptions.iter().map(|(s, _)| s.as_fd()));
        fds.extend(self.stats.iter().map(|(fd, _, _)| fd.as_fd()));
        carry::undo(&fds);
    }

    /// Removes the unix socket files (`vacuum`).
    pub fn vacuum(&self) {
        for (_, addr, _) in self.listeners.iter().chain(&self.stats) {
            if let BindAddr::Unix(path) = addr {
                let _ = std::fs::remove_file(path);
            }
        }
        for (socket, _) in &self.subscriptions {
            if let SubscriptionSocket::Unix(s) = socket {
                if let Some(path) = s
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_pathname().map(|p| p.to_path_buf()))
                {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
}

/// What the router shares between its connections.
pub(crate) struct Router {
    config: FastrouterConfig,
    subscriptions: Mutex<Subscriptions>,
    statics: Mutex<StaticNodes>,
    has_subscriptions: bool,
    /// Connections being served.
    active: std::sync::atomic::AtomicU64,
    /// The listeners' addresses, for the stats document.
    addresses: Vec<String>,
    /// `fastrouter-use-socket`'s address.
    to_socket: Option<String>,
}

/// The router process, after the fork: runs until the master stops it. `close_fds` are the
/// master's own descriptors (and the workers' sockets), closed first.
pub fn run(
    sockets: &GatewaySockets,
    config: &FastrouterConfig,
    own_sockets: &[String],
    master: Pid,
    close_fds: &[RawFd],
) -> ! {
    sys::process::become_child_of(master, close_fds);
    let pid = sys::process::getpid();
    let span = tracing::info_span!("fastrouter", pid);
    let _entered = span.enter();
    sys::process::set_name("kaiser fastrouter");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "fastrouter: cannot start its event loop");
            sys::process::exit_now(1);
        }
    };
    let result = runtime.block_on(async {
        start(sockets, config, own_sockets)?.await;
        Ok::<(), std::io::Error>(())
    });
    if let Err(err) = result {
        tracing::error!(error = %err, "fastrouter: cannot use its sockets");
    }
    sys::process::exit_now(1);
}

/// The router on the current tokio runtime, from its sockets (duplicated, so `sockets`
/// stays the caller's): the returned future serves until its tasks end. Called inside a
/// runtime: the router process's own, or the emperor's when an emperor config has a
/// `fastrouter`.
/// `own_sockets` are the instance's own socket addresses, for `fastrouter-use-socket`.
pub fn start(
    sockets: &GatewaySockets,
    config: &FastrouterConfig,
    own_sockets: &[String],
) -> std::io::Result<impl std::future::Future<Output = ()> + 'static> {
    let router = Arc::new(Router {
        config: config.clone(),
        subscriptions: Mutex::new(Subscriptions::new(config.subscription_tolerance)),
        statics: Mutex::new(StaticNodes::new(&config.to, config.gracetime)),
        has_subscriptions: !sockets.subscriptions.is_empty(),
        active: std::sync::atomic::AtomicU64::new(0),
        addresses: sockets
            .listeners
            .iter()
            .map(|(_, _, a)| a.clone())
            .collect(),
        to_socket: config.use_socket.and_then(|n| own_sockets.get(n).cloned()),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for (socket, _) in &sockets.subscriptions {
        let socket = subscription_socket(socket)?;
        tasks.spawn(subscription_server(socket, router.clone()));
    }
    for (fd, addr, _) in &sockets.listeners {
        let listener = listener(fd, addr)?;
        tasks.spawn(relay::accept_loop(listener, router.clone()));
    }
    if let Some((fd, addr, _)) = &sockets.stats {
        let listener = listener(fd, addr)?;
        tasks.spawn(stats_server(listener, router.clone()));
    }
    tracing::info!("fastrouter: serving");
    Ok(async move {
        while let Some(done) = tasks.join_next().await {
            if let Err(err) = done {
                tracing::error!(error = %err, "fastrouter: a task ended");
            }
        }
    })
}

/// A listening socket, in the event loop.
pub(crate) enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

fn listener(fd: &OwnedFd, addr: &BindAddr) -> std::io::Result<Listener> {
    let fd = fd.try_clone()?;
    Ok(match addr {
        BindAddr::Tcp(_) => {
            let std = std::net::TcpListener::from(fd);
            std.set_nonblocking(true)?;
            Listener::Tcp(tokio::net::TcpListener::from_std(std)?)
        }
        _ => {
            let std = std::os::unix::net::UnixListener::from(fd);
            std.set_nonblocking(true)?;
            Listener::Unix(tokio::net::UnixListener::from_std(std)?)
        }
    })
}

enum AsyncDatagram {
    Udp(tokio::net::UdpSocket),
    Unix(tokio::net::UnixDatagram),
}

fn subscription_socket(socket: &SubscriptionSocket) -> std::io::Result<AsyncDatagram> {
    Ok(match socket {
        SubscriptionSocket::Udp(s) => {
            let s = s.try_clone()?;
            s.set_nonblocking(true)?;
            AsyncDatagram::Udp(tokio::net::UdpSocket::from_std(s)?)
        }
        SubscriptionSocket::Unix(s) => {
            let s = s.try_clone()?;
            s.set_nonblocking(true)?;
            AsyncDatagram::Unix(tokio::net::UnixDatagram::from_std(s)?)
        }
    })
}

/// Reads subscription datagrams into the table, and drops silent nodes once a second.
async fn subscription_server(socket: AsyncDatagram, router: Arc<Router>) {
    let mut buf = vec![0u8; 65536];
    let mut sweep = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        let received = tokio::select! {
            received = async {
                match &socket {
                    AsyncDatagram::Udp(s) => s.recv(&mut buf).await,
                    AsyncDatagram::Unix(s) => s.recv(&mut buf).await,
                }
            } => received,
            _ = sweep.tick() => {
                let dropped = router.table().expire(Instant::now());
                for (key, address) in dropped {
                    tracing::warn!(key, address, seconds = router.config.subscription_tolerance.as_secs(), "fastrouter: node dropped (no announcement within subscription-tolerance)");
                }
                continue;
            }
        };
        let len = match received {
            Ok(len) => len,
            Err(err) => {
                tracing::warn!(error = %err, "fastrouter: cannot read a subscription");
                continue;
            }
        };
        let outcome = router.table().handle(&buf[..len], Instant::now());
        match outcome {
            Ok(Announcement::New { key, address }) => {
                tracing::info!(key, address, "fastrouter: new node")
            }
            Ok(Announcement::Removed { key, address }) => {
                tracing::info!(key, address, "fastrouter: node unsubscribed")
            }
            Ok(Announcement::Refreshed | Announcement::Unknown) => {}
            Err(err) => tracing::warn!(error = %err, "fastrouter: bad subscription packet ignored"),
        }
    }
}

/// `fastrouter-stats`: the document, written on connect, then the connection is closed.
async fn stats_server(listener: Listener, router: Arc<Router>) {
    use tokio::io::AsyncWriteExt;
    loop {
        let document = || router.stats_document().to_string();
        let written = match &listener {
            Listener::Tcp(l) => match l.accept().await {
                Ok((mut s, _)) => s.write_all(document().as_bytes()).await,
                Err(err) => Err(err),
            },
            Listener::Unix(l) => match l.accept().await {
                Ok((mut s, _)) => s.write_all(document().as_bytes()).await,
                Err(err) => Err(err),
            },
        };
        if let Err(err) = written {
            tracing::debug!(error = %err, "fastrouter: stats not sent");
        }
    }
}

impl Router {
    /// uWSGI's corerouter stats layout.
    fn stats_document(&self) -> serde_json::Value {
        let now = Instant::now();
        let now_unix = sys::clock::unix_secs();
        let mut document = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": sys::process::getpid(),
            "uid": sys::process::uid(),
            "gid": sys::process::gid(),
            "cwd": std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default(),
            "active_sessions": self.active.load(std::sync::atomic::Ordering::Relaxed),
            "fastrouter": self.addresses,
        });
        if let Some(object) = document.as_object_mut() {
            if !self.config.to.is_empty() {
                object.insert("static_nodes".into(), self.statics().stats(now, now_unix));
            }
            if self.has_subscriptions {
                object.insert("subscriptions".into(), self.table().stats(now, now_unix));
            }
            object.insert("cheap".into(), 0.into());
        }
        document
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Subscriptions> {
        self.subscriptions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn statics(&self) -> std::sync::MutexGuard<'_, StaticNodes> {
        self.statics.lock().unwrap_or_else(|e| e.into_inner())
    }
}
