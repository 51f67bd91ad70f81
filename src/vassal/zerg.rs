//! uWSGI's zerg mode. `zerg = PATH`: instead of binding, this instance asks a zerg server on
//! the unix socket PATH for its listening sockets and serves them (as `socket`s); with
//! `zerg-fallback` an unreachable server is a warning and the configured sockets are bound
//! as usual. It asks on the first start only: a reload's new image gets them back with the
//! other listening sockets (`startup.rs`), as uWSGI does. `zerg-server = PATH`: this master hands its own listening sockets to every
//! zerg that connects to PATH. [`ZergServer`] is the one server side: `zergpool`
//! (`zergpool.rs`) runs one per pool, handing over the pool's sockets instead.
//!
//! The protocol is uWSGI's (core/socket.c `uwsgi_manage_zerg`, core/io.c
//! `uwsgi_attach_fd`): one message, the 10 bytes `uwsgi-zerg` and a native `int` count,
//! with the fds attached as `SCM_RIGHTS`.
//!
//! The server side is polled from the master's timer tick (at most a second late), so that
//! the master's event loop needs no new source; it never blocks: a zerg that does not read
//! its message is dropped.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::sockets::{BoundSocket, Inherited};
use crate::config::Config;
use crate::sys;

const MAGIC: &[u8; 10] = b"uwsgi-zerg";
/// Room for more sockets than any instance binds (uWSGI starts with 8 and asks again).
const MAX_FDS: usize = 1024;
/// uWSGI's connect timeout for the zerg server.
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum AttachZergError {
    #[error("cannot get sockets from the zerg server `{}` (`zerg`; `zerg-fallback` binds the configured sockets instead)", .path.display())]
    Attach {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on `{}` (`zerg-server`)", .path.display())]
    Serve {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `zerg`: the sockets every zerg server gives.
pub fn attach(config: &Config) -> Result<Vec<Inherited>, AttachZergError> {
    let mut sockets = Vec::new();
    for path in &config.zerg {
        match attach_one(path) {
            Ok(got) => {
                tracing::info!(server = %path.display(), sockets = got.len(), "zerg sockets attached");
                sockets.extend(got);
            }
            Err(source) if config.zerg_fallback => {
                tracing::warn!(server = %path.display(), error = %source, "zerg server unavailable; zerg-fallback: binding the configured sockets");
            }
            Err(source) => {
                return Err(AttachZergError::Attach {
                    path: path.clone(),
                    source,
                })
            }
        }
    }
    Ok(sockets)
}

fn attach_one(path: &Path) -> std::io::Result<Vec<Inherited>> {
    let stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    let mut payload = [0u8; MAGIC.len() + 4];
    let (len, fds) = sys::scm::recv_fds(stream.as_fd(), &mut payload, MAX_FDS)?;
    if !payload[..len].starts_with(MAGIC) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the peer is not a zerg server (no `uwsgi-zerg` greeting)",
        ));
    }
    fds.into_iter()
        .map(|fd| {
            let local = sys::net::local_addr(fd.as_fd())?;
            Ok(Inherited {
                fd,
                local,
                // Served as `socket` entries, as uWSGI adds zerg sockets.
                name: Some("socket".to_string()),
                activated: true,
            })
        })
        .collect()
}

/// A unix listener that hands a set of listening sockets to every zerg that connects: the
/// master's own (`zerg-server`) or a pool's (`zergpool`).
pub struct ZergServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ZergServer {
    /// `zerg-server`, bound afresh.
    pub fn bind(config: &Config) -> Result<Option<ZergServer>, AttachZergError> {
        let Some(path) = &config.zerg_server else {
            return Ok(None);
        };
        let serve_error = |source| AttachZergError::Serve {
            path: path.clone(),
            source,
        };
        // A socket file left by a previous run would make bind fail.
        if std::fs::symlink_metadata(path).is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_socket()
        }) {
            let _ = std::fs::remove_file(path);
        }
        let listener = UnixListener::bind(path).map_err(serve_error)?;
        let server = ZergServer::adopt(listener.into(), path.clone()).map_err(serve_error)?;
        tracing::info!(path = %path.display(), "zerg server enabled");
        Ok(Some(server))
    }

    /// Serves zergs on `listener`, a listening unix socket bound to `path`.
    pub(super) fn adopt(listener: OwnedFd, path: PathBuf) -> std::io::Result<ZergServer> {
        let listener = UnixListener::from(listener);
        listener.set_nonblocking(true)?;
        Ok(ZergServer { listener, path })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn listener(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// `zerg-server`: hands `sockets` to every zerg waiting to connect.
    pub fn tick(&self, sockets: &[BoundSocket]) {
        let fds: Vec<RawFd> = sockets.iter().map(|s| s.fd.as_raw_fd()).collect();
        self.hand_over(&fds);
    }

    /// Hands `fds` to every zerg waiting to connect, without blocking.
    pub(super) fn hand_over(&self, fds: &[RawFd]) {
        let mut payload = MAGIC.to_vec();
        payload.extend_from_slice(&(fds.len() as i32).to_ne_bytes());
        while let Ok((zerg, _)) = self.listener.accept() {
            // Never wait on a zerg: one message into an empty socket buffer does not block.
            let _ = zerg.set_nonblocking(true);
            match sys::scm::send_fds(zerg.as_fd(), &payload, fds) {
                Ok(()) => {
                    tracing::info!(server = %self.path.display(), sockets = fds.len(), "zerg: sockets handed over")
                }
                Err(err) => {
                    tracing::warn!(server = %self.path.display(), error = %err, "zerg: cannot hand sockets over")
                }
            }
        }
    }
}
