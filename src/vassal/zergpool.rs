//! uWSGI's zergpool (`zergpool = POOL:ADDRESS[,ADDRESS…]`): the master binds each pool's
//! addresses and hands them, all at once, to every zerg that connects to the pool's unix
//! socket POOL (a kaiser or uWSGI instance with `zerg = POOL`), so that several instances
//! accept on the same listening sockets. Each pool is a [`ZergServer`] (`zerg.rs`, shared
//! with `zerg-server`), polled from the master's timer tick.
//!
//! uWSGI runs the pools in a gateway process the master forks; here the master answers them
//! itself, like `zerg-server`: nothing to respawn, and the sockets live exactly as long as
//! the master. A reload's re-exec hands every pool's listener and sockets to the new image
//! (`KAISER_ZERGPOOL_FDS`, like `KAISER_LISTEN_FDS`), which takes them back by pool path and
//! address: the pool keeps its path and the same sockets (a port-0 address keeps its port),
//! so zergs attached before the reload and zergs attaching after it share them, and a zerg
//! connecting during the reload waits in the pool's backlog instead of being refused.
//! (uWSGI closes them on reload and binds again, which fails while zergs still listen.)
//!
//! The pooled sockets are not this instance's own: no worker accepts on them. It must not
//! serve requests or bind anything after start-up.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use super::sockets::{self, BindSocketError};
use super::zerg::ZergServer;
use crate::config::{Address, Config, Protocol, SocketSpec};
use crate::sys;
use crate::sys::net::BindAddr;

/// The pools handed across a reload's exec: `LISTENER:SOCKET,SOCKET;LISTENER:…` (fds).
pub const CARRIED_ENV: &str = "KAISER_ZERGPOOL_FDS";

/// Every `zergpool` of the instance (none: nothing to do).
#[derive(Default)]
pub struct ZergPools {
    pools: Vec<Pool>,
}

struct Pool {
    server: ZergServer,
    sockets: Vec<OwnedFd>,
}

/// A pool the previous image handed over.
struct Carried {
    listener: OwnedFd,
    path: PathBuf,
    sockets: Vec<(OwnedFd, BindAddr)>,
}

impl ZergPools {
    /// Binds every pool and its sockets, or takes them back from the previous image on a
    /// reload. Called with the instance's own sockets, before privileges are dropped, so
    /// `chmod-socket` and `chown-socket` apply as to any socket.
    pub fn bind(config: &Config) -> Result<ZergPools, BindSocketError> {
        let mut carried = take_carried();
        let backlog = sockets::backlog(config);
        let spec = |address: Address| SocketSpec {
            protocol: Protocol::Uwsgi,
            address,
            option: "zergpool".to_string(),
        };
        let mut pools = Vec::new();
        for pool in &config.zergpools {
            let before = carried
                .iter()
                .position(|c| c.path == pool.path)
                .map(|at| carried.remove(at));
            let (listener, mut kept) = match before {
                Some(Carried {
                    listener, sockets, ..
                }) => (listener, sockets),
                None => {
                    let pool_spec = spec(Address::Unix(pool.path.clone()));
                    let wanted = sockets::resolve(&pool_spec)?;
                    (
                        sockets::bind_new(config, &pool_spec, &wanted, backlog)?.0,
                        Vec::new(),
                    )
                }
            };
            let mut fds = Vec::new();
            for address in &pool.sockets {
                let socket_spec = spec(address.clone());
                let wanted = sockets::resolve(&socket_spec)?;
                let fd = match kept
                    .iter()
                    .position(|(_, local)| sockets::same_address(&wanted, local))
                {
                    Some(at) => {
                        let (fd, local) = kept.remove(at);
                        tracing::info!(pool = %pool.path.display(), address = %local, fd = fd.as_raw_fd(), "zergpool socket kept from before the reload");
                        fd
                    }
                    None => {
                        let (fd, local) =
                            sockets::bind_new(config, &socket_spec, &wanted, backlog)?;
                        tracing::info!(pool = %pool.path.display(), address = %local, fd = fd.as_raw_fd(), "zergpool socket bound");
                        fd
                    }
                };
                fds.push(fd);
            }
            for (_, local) in kept {
                tracing::info!(pool = %pool.path.display(), address = %local, "closing a zergpool socket the new config no longer names");
            }
            let server = ZergServer::adopt(listener, pool.path.clone()).map_err(|source| {
                BindSocketError::Bind {
                    option: "zergpool".to_string(),
                    address: pool.path.display().to_string(),
                    source,
                }
            })?;
            tracing::info!(pool = %pool.path.display(), sockets = fds.len(), "zergpool enabled");
            pools.push(Pool {
                server,
                sockets: fds,
            });
        }
        for gone in carried {
            tracing::info!(pool = %gone.path.display(), "closing a zergpool the new config no longer names");
        }
        Ok(ZergPools { pools })
    }

    /// Hands each pool's sockets to the zergs waiting on it.
    pub fn tick(&self) {
        for pool in &self.pools {
            let fds: Vec<RawFd> = pool.sockets.iter().map(AsRawFd::as_raw_fd).collect();
            pool.server.hand_over(&fds);
        }
    }

    /// Before a reload's exec: every pool's fds stay open across it and are named in
    /// [`CARRIED_ENV`]. [`ZergPools::undo_exec`] reverses this if the exec fails.
    pub fn keep_across_exec(&self) -> std::io::Result<()> {
        let mut carried = Vec::new();
        for pool in &self.pools {
            sys::fd::set_cloexec(pool.server.listener(), false)?;
            for fd in &pool.sockets {
                sys::fd::set_cloexec(fd.as_fd(), false)?;
            }
            let sockets: Vec<String> = pool
                .sockets
                .iter()
                .map(|fd| fd.as_raw_fd().to_string())
                .collect();
            carried.push(format!(
                "{}:{}",
                pool.server.listener().as_raw_fd(),
                sockets.join(",")
            ));
        }
        std::env::set_var(CARRIED_ENV, carried.join(";"));
        Ok(())
    }

    /// After a failed exec: the fds are this image's alone again.
    pub fn undo_exec(&self) {
        for pool in &self.pools {
            let _ = sys::fd::set_cloexec(pool.server.listener(), true);
            for fd in &pool.sockets {
                let _ = sys::fd::set_cloexec(fd.as_fd(), true);
            }
        }
        std::env::remove_var(CARRIED_ENV);
    }

    /// `vacuum`: removes the pools' socket files and their unix sockets' files.
    pub fn vacuum(&self) {
        for pool in &self.pools {
            let mut paths = vec![pool.server.path().to_path_buf()];
            for fd in &pool.sockets {
                if let Ok(BindAddr::Unix(path)) = sys::net::local_addr(fd.as_fd()) {
                    paths.push(path);
                }
            }
            for path in paths {
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "vacuum: removed zergpool socket")
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => {
                        tracing::warn!(path = %path.display(), error = %err, "vacuum: cannot remove zergpool socket")
                    }
                }
            }
        }
    }
}

/// The pools the previous image named in [`CARRIED_ENV`]; a pool whose listener is not an
/// open unix socket is dropped with its sockets.
fn take_carried() -> Vec<Carried> {
    let Ok(list) = std::env::var(CARRIED_ENV) else {
        return Vec::new();
    };
    std::env::remove_var(CARRIED_ENV);
    let mut pools = Vec::new();
    for item in list.split(';').filter(|item| !item.is_empty()) {
        let (listener, sockets) = item.split_once(':').unwrap_or((item, ""));
        let sockets: Vec<(OwnedFd, BindAddr)> =
            sockets.split(',').filter_map(adopt).collect::<Vec<_>>();
        match adopt(listener) {
            Some((listener, BindAddr::Unix(path))) => pools.push(Carried {
                listener,
                path,
                sockets,
            }),
            _ => tracing::warn!(
                fds = item,
                "a zergpool handed over by the previous image has no unix listener; closing it"
            ),
        }
    }
    pools
}

/// One inherited fd, close-on-exec again, with its address.
fn adopt(raw: &str) -> Option<(OwnedFd, BindAddr)> {
    let raw: RawFd = raw.parse().ok()?;
    let fd = match sys::fd::adopt_inherited(raw) {
        Ok(fd) => fd,
        Err(err) => {
            tracing::warn!(fd = raw, error = %err, "inherited zergpool fd is not open");
            return None;
        }
    };
    let _ = sys::fd::set_cloexec(fd.as_fd(), true);
    match sys::net::local_addr(fd.as_fd()) {
        Ok(local) => Some((fd, local)),
        Err(err) => {
            tracing::warn!(fd = raw, error = %err, "inherited zergpool fd is not a socket; closing it");
            None
        }
    }
}
