//! On-demand vassals (as uWSGI): for `foo.ini` the emperor binds its socket itself and starts
//! no process. `emperor-on-demand-directory DIR` names it `DIR/foo.socket`;
//! `emperor-on-demand-extension EXT` reads it from the file `foo.iniEXT` (a unix path, or
//! `host:port` for TCP). The first connection (the socket
//! turns readable; nothing is accepted) starts the vassal, which gets the socket
//! (`KAISER_ON_DEMAND_FD`) and serves the waiting connection from the backlog: none is
//! refused. When the vassal exits after serving (`idle` + `die-on-idle`, or any exit once it
//! was ready), the socket is watched again. The vassal's INI names the same socket
//! (`socket = DIR/foo.socket`, or `http-socket` for HTTP) so that it knows the protocol.
//! `emperor-on-demand-exec CMD` takes the first line `CMD <vassal file>` prints; the
//! command runs on a task ([`ask_exec`]) and its answer comes back to the loop as a report,
//! so a slow command holds up only its own vassal.
//!
//! It owns the socket and the wait for a connection; when to start or stop the vassal is the
//! state machine's (`state.rs`, `State::Waiting`).

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sys;
use crate::sys::net::BindAddr;

/// The environment variable naming the on-demand socket's fd in the vassal.
pub const FD_ENV: &str = "KAISER_ON_DEMAND_FD";

/// The backlog of an on-demand socket (uWSGI uses its `listen`, 100 by default).
const BACKLOG: u32 = 1024;

/// Where an on-demand vassal's socket comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// `emperor-on-demand-directory`: `DIR/<name without extension>.socket`.
    Directory(PathBuf),
    /// `emperor-on-demand-extension`: the first line of the file `<vassal file>EXT`.
    Extension(String),
    /// `emperor-on-demand-exec`: the first line printed by `CMD <vassal file>` (run by
    /// `sh -c`, bounded by [`EXEC_TIMEOUT`]).
    Exec(String),
}

/// How long `emperor-on-demand-exec`'s command may take (uWSGI waits for it, blocking its
/// whole loop; kaiser waits on a task, and only this vassal waits).
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum BindOnDemandError {
    #[error("cannot read the on-demand socket name from `{}`", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` names no socket", .path.display())]
    Empty { path: PathBuf },
    #[error("`emperor-on-demand-exec` command `{command}` failed: {reason}")]
    Exec { command: String, reason: String },
    #[error("cannot bind the on-demand socket `{address}`")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
}

pub struct OnDemand {
    fd: OwnedFd,
    local: BindAddr,
    waiter: Option<tokio::task::JoinHandle<()>>,
}

impl OnDemand {
    /// Binds the socket `source` names for the vassal file `vassal`: a path is a unix socket
    /// (mode 0666, as uWSGI), `host:port` a TCP one. A stale socket file is replaced.
    /// `Ok(None)`: with `emperor-on-demand-extension`, a vassal without the file is an
    /// ordinary one. `emperor-on-demand-exec` is asked first with [`ask_exec`], whose
    /// answer goes to [`OnDemand::bind_address`]; here it gives `Ok(None)`.
    pub fn bind(source: &Source, vassal: &Path) -> Result<Option<Self>, BindOnDemandError> {
        let address = match source {
            Source::Directory(dir) => {
                let stem = vassal.file_stem().unwrap_or_default();
                dir.join(stem)
                    .with_extension("socket")
                    .to_string_lossy()
                    .into_owned()
            }
            Source::Extension(extension) => {
                let mut name = vassal.as_os_str().to_owned();
                name.push(extension);
                let path = PathBuf::from(name);
                let text = match std::fs::read_to_string(&path) {
                    Ok(text) => text,
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(source) => return Err(BindOnDemandError::Read { path, source }),
                };
                match text.lines().next().map(str::trim) {
                    Some(line) if !line.is_empty() => line.to_owned(),
                    _ => return Err(BindOnDemandError::Empty { path }),
                }
            }
            Source::Exec(_) => return Ok(None),
        };
        Self::bind_address(address).map(Some)
    }

    /// Binds `address` (a unix path, or `host:port`), as [`OnDemand::bind`] does.
    pub fn bind_address(address: String) -> Result<Self, BindOnDemandError> {
        let bind_error = |source| BindOnDemandError::Bind {
            address: address.clone(),
            source,
        };
        // uWSGI's rule, shared with `stats` (`@name` is abstract, `:` is TCP); a relative
        // unix path is taken from the emperor's cwd, as uWSGI binds it.
        let wanted = match sys::net::resolve_listen_address(&address).map_err(bind_error)? {
            BindAddr::Unix(path) => BindAddr::Unix(std::path::absolute(path).map_err(bind_error)?),
            other => other,
        };
        let options = sys::net::ListenOptions {
            // A port scan's bare connect must not start the vassal: wait for data.
            defer_accept: true,
            ..sys::net::ListenOptions::default()
        };
        let fd = sys::net::bind_listener(&wanted, BACKLOG, options).map_err(bind_error)?;
        if let BindAddr::Unix(path) = &wanted {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
                .map_err(bind_error)?;
        }
        let local = sys::net::local_addr(fd.as_fd()).unwrap_or(wanted);
        Ok(OnDemand {
            fd,
            local,
            waiter: None,
        })
    }

    /// The bound address (`/run/od/app.socket`, `127.0.0.1:3031`).
    pub fn address(&self) -> String {
        self.local.to_string()
    }

    /// The listening fd, for the vassal to inherit.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Waits (on a task) for a connection to arrive, then calls `woken` once. Nothing is
    /// accepted: the connection stays in the backlog for the vassal.
    pub fn arm(&mut self, woken: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        self.disarm();
        let watched: OwnedFd = self.fd.as_fd().try_clone_to_owned()?;
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

/// Runs `command <vassal>` (`/bin/sh -c`) and returns the first line it printed, trimmed
/// (empty: not an on-demand vassal). At most [`EXEC_TIMEOUT`]; then the command is killed.
pub async fn ask_exec(command: String, vassal: PathBuf) -> Result<String, BindOnDemandError> {
    let failed = |reason: String| BindOnDemandError::Exec {
        command: command.clone(),
        reason,
    };
    let child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{command} \"$1\""))
        .arg("sh")
        .arg(&vassal)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| failed(error.to_string()))?;
    let output = match tokio::time::timeout(EXEC_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => return Err(failed(error.to_string())),
        // Dropping the future drops the child, which `kill_on_drop` kills (tokio reaps it).
        Err(_) => {
            return Err(failed(format!(
                "no answer within {} s",
                EXEC_TIMEOUT.as_secs()
            )))
        }
    };
    if !output.status.success() {
        return Err(failed(format!("it exited with {}", output.status)));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text.lines().next().unwrap_or("").trim().to_owned())
}

impl Drop for OnDemand {
    fn drop(&mut self) {
        self.disarm();
        if let BindAddr::Unix(path) = &self.local {
            let _ = std::fs::remove_file(path);
        }
    }
}
