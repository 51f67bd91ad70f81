//! On-demand vassals (`emperor-on-demand-directory DIR`, as uWSGI): for `foo.ini` the emperor
//! binds `DIR/foo.socket` itself and starts no process. The first connection (the socket
//! turns readable; nothing is accepted) starts the vassal, which gets the socket
//! (`KAISER_ON_DEMAND_FD`) and serves the waiting connection from the backlog: none is
//! refused. When the vassal exits after serving (`idle` + `die-on-idle`, or any exit once it
//! was ready), the socket is watched again. The vassal's INI names the same socket
//! (`socket = DIR/foo.socket`, or `http-socket` for HTTP) so that it knows the protocol.
//!
//! It owns the socket and the wait for a connection; when to start or stop the vassal is the
//! state machine's (`state.rs`, `State::Waiting`).

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

/// The environment variable naming the on-demand socket's fd in the vassal.
pub const FD_ENV: &str = "KAISER_ON_DEMAND_FD";

pub struct OnDemand {
    listener: UnixListener,
    path: PathBuf,
    waiter: Option<tokio::task::JoinHandle<()>>,
}

impl OnDemand {
    /// Binds `dir/<name without extension>.socket` for the vassal file `vassal`, mode 0666
    /// as uWSGI does. A socket file left by a previous emperor is replaced.
    pub fn bind(dir: &Path, vassal: &Path) -> std::io::Result<Self> {
        let stem = vassal
            .file_stem()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        let path = std::path::absolute(dir.join(stem).with_extension("socket"))?;
        if std::fs::symlink_metadata(&path)
            .is_ok_and(|meta| std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()))
        {
            std::fs::remove_file(&path)?;
        }
        let listener = UnixListener::bind(&path)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
        Ok(OnDemand {
            listener,
            path,
            waiter: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The listening fd, for the vassal to inherit.
    pub fn raw_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Waits (on a task) for a connection to arrive, then calls `woken` once. Nothing is
    /// accepted: the connection stays in the backlog for the vassal.
    pub fn arm(&mut self, woken: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        self.disarm();
        let watched: OwnedFd = self.listener.as_fd().try_clone_to_owned()?;
        self.waiter = Some(tokio::spawn(async move {
            // SAFETY: `watched` is an open fd owned by the AsyncFd for its whole life, and an
            // OwnedFd's `as_raw_fd` always returns that same fd.
            let registered = unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(
                    watched,
                    tokio::io::Interest::READABLE,
                )
            };
            match registered {
                Ok(fd) => {
                    if fd.readable().await.is_ok() {
                        woken();
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "cannot watch an on-demand socket")
                }
            }
        }));
        Ok(())
    }

    /// Stops waiting (the vassal runs, or is gone).
    pub fn disarm(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            waiter.abort();
        }
    }
}

impl Drop for OnDemand {
    fn drop(&mut self) {
        self.disarm();
        let _ = std::fs::remove_file(&self.path);
    }
}
