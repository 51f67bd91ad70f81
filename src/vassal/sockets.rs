//! Binding the configured sockets, or adopting them from the previous image on a reload.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;

use crate::config::{Address, Config, Protocol, SocketSpec};
use crate::sys;
use crate::sys::net::BindAddr;

/// The environment variable listing listening fds handed across a reload's exec.
pub const LISTEN_FDS_ENV: &str = "KAISER_LISTEN_FDS";
/// Those of them systemd or the emperor passed (`socket_activation.rs`): still not ours to
/// vacuum after the reload.
pub const ACTIVATED_FDS_ENV: &str = "KAISER_ACTIVATED_FDS";

/// Before a reload's exec: names the passed sockets for the next image, as `fd=option`
/// (the option they serve, so a socket the INI does not name is adopted again).
pub fn mark_activated_for_exec(sockets: &[BoundSocket]) {
    let activated: Vec<String> = sockets
        .iter()
        .filter(|s| s.activated)
        .map(|s| format!("{}={}", s.fd.as_raw_fd(), s.spec.option))
        .collect();
    std::env::set_var(ACTIVATED_FDS_ENV, activated.join(","));
}

pub struct BoundSocket {
    pub fd: OwnedFd,
    pub spec: SocketSpec,
    pub local: BindAddr,
    /// Passed by systemd (`socket_activation.rs`): the unit owns it, `vacuum` leaves its
    /// file alone.
    pub activated: bool,
}

/// A listening socket this process got rather than bound: from the previous image on a
/// reload, or from systemd.
pub struct Inherited {
    pub fd: OwnedFd,
    pub local: BindAddr,
    /// systemd's `FileDescriptorName=`, matched against the option's name.
    pub name: Option<String>,
    pub activated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BindSocketError {
    #[error("cannot resolve `{address}` for `{option}`")]
    Resolve {
        option: String,
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot bind `{address}` for `{option}`")]
    Bind {
        option: String,
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set permissions on `{path}` (`chmod-socket`/`chown-socket`)")]
    Permissions {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// `spec`'s address as a socket address (a host name is resolved).
pub fn resolve(spec: &SocketSpec) -> Result<BindAddr, BindSocketError> {
    match &spec.address {
        Address::Unix(path) => Ok(BindAddr::Unix(path.clone())),
        Address::Abstract(name) => Ok(BindAddr::Abstract(name.as_bytes().to_vec())),
        Address::Tcp { host, port } => {
            let host = match host.as_str() {
                "" | "*" | "0" => "0.0.0.0",
                other => other.trim_start_matches('[').trim_end_matches(']'),
            };
            let mut addrs =
                (host, *port)
                    .to_socket_addrs()
                    .map_err(|source| BindSocketError::Resolve {
                        option: spec.option.clone(),
                        address: format!("{host}:{port}"),
                        source,
                    })?;
            let addr: SocketAddr = addrs.next().ok_or_else(|| BindSocketError::Resolve {
                option: spec.option.clone(),
                address: format!("{host}:{port}"),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address found"),
            })?;
            Ok(BindAddr::Tcp(addr))
        }
    }
}

/// Same address, where port 0 matches any port (the inherited socket carries the real one).
pub fn same_address(wanted: &BindAddr, actual: &BindAddr) -> bool {
    match (wanted, actual) {
        (BindAddr::Tcp(w), BindAddr::Tcp(a)) => {
            w.ip() == a.ip() && (w.port() == 0 || w.port() == a.port())
        }
        (w, a) => w == a,
    }
}

/// Binds every configured socket, reusing inherited ones where the address matches.
pub fn bind_all(
    config: &Config,
    inherited: &mut Vec<Inherited>,
) -> Result<Vec<BoundSocket>, BindSocketError> {
    let mut backlog = config.listen;
    if let Some(max) = sys::net::somaxconn() {
        // The default (1024) is capped quietly on kernels with a smaller somaxconn; only a
        // value the user chose deserves a warning.
        if backlog > max && backlog != 1024 {
            tracing::warn!(listen = backlog, somaxconn = max, "`listen` is above net.core.somaxconn; the kernel caps it (raise the sysctl to get more)");
        }
        backlog = backlog.min(max);
    }
    let mut bound = Vec::new();
    for spec in &config.sockets {
        let wanted = resolve(spec)?;
        if let Some(position) = inherited
            .iter()
            .position(|socket| same_address(&wanted, &socket.local))
            .or_else(|| {
                inherited
                    .iter()
                    .position(|socket| socket.name.as_deref() == Some(spec.option.as_str()))
            })
        {
            let Inherited {
                fd,
                local,
                activated,
                ..
            } = inherited.remove(position);
            tracing::info!(protocol = protocol_name(spec.protocol), address = %local, fd = fd.as_raw_fd(), systemd = activated, "listening (inherited)");
            bound.push(BoundSocket {
                fd,
                spec: spec.clone(),
                local,
                activated,
            });
            continue;
        }
        let (fd, local) = bind_new(config, spec, &wanted, backlog)?;
        tracing::info!(protocol = protocol_name(spec.protocol), address = %local, fd = fd.as_raw_fd(), "listening");
        bound.push(BoundSocket {
            fd,
            spec: spec.clone(),
            local,
            activated: false,
        });
    }
    // systemd's sockets named after a socket option serve as that option would, even when
    // the INI names no such address: the unit decides where to listen.
    for socket in std::mem::take(inherited) {
        match unit_spec(&socket) {
            Some(spec) => {
                tracing::info!(protocol = protocol_name(spec.protocol), address = %socket.local, fd = socket.fd.as_raw_fd(), option = %spec.option, "listening (passed by systemd, named after the option)");
                bound.push(BoundSocket {
                    fd: socket.fd,
                    spec,
                    local: socket.local,
                    activated: true,
                });
            }
            None => inherited.push(socket),
        }
    }
    // Inherited sockets no longer in the config are closed (dropped) here.
    for socket in inherited.drain(..) {
        if socket.activated {
            tracing::warn!(address = %socket.local, name = socket.name.as_deref().unwrap_or(""), "systemd passed a socket no option names (by address or by FileDescriptorName=); closing it");
        } else {
            tracing::info!(address = %socket.local, "closing a socket the new config no longer names");
        }
    }
    Ok(bound)
}

/// Binds `wanted` (resolved from `spec`) afresh, as every configured socket is bound: the
/// listen options, then `chmod-socket` and `chown-socket` on a unix path. Returns the fd and
/// its real address (port 0 resolved). `zergpool` binds its sockets through here too.
pub fn bind_new(
    config: &Config,
    spec: &SocketSpec,
    wanted: &BindAddr,
    backlog: u32,
) -> Result<(OwnedFd, BindAddr), BindSocketError> {
    let listen_options = sys::net::ListenOptions {
        // A raw socket's protocol is the app's: its client may wait for the server to speak
        // first, so the accept is not deferred until data arrives (uWSGI binds it
        // `no_defer` too).
        defer_accept: spec.protocol != Protocol::Raw && !config.no_defer_accept,
        reuse_port: config.reuse_port,
        freebind: config.freebind,
        keepalive: config.so_keepalive,
    };
    let fd = sys::net::bind_listener(wanted, backlog, listen_options).map_err(|source| {
        BindSocketError::Bind {
            option: spec.option.clone(),
            address: wanted.to_string(),
            source,
        }
    })?;
    if let BindAddr::Unix(path) = wanted {
        let mode = config.chmod_socket.unwrap_or(0o666);
        // Without `chmod-socket` the socket keeps the umask's mode, as in uWSGI.
        if config.chmod_socket.is_some() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(
                |source| BindSocketError::Permissions {
                    path: path.display().to_string(),
                    source,
                },
            )?;
        }
        if let Some(owner) = &config.chown_socket {
            chown_socket(path, owner).map_err(|source| BindSocketError::Permissions {
                path: path.display().to_string(),
                source,
            })?;
        }
    }
    let local = sys::net::local_addr(fd.as_fd()).unwrap_or_else(|_| wanted.clone());
    Ok((fd, local))
}

/// `listen`, capped by `net.core.somaxconn` (quietly: `bind_all` warns).
pub fn backlog(config: &Config) -> u32 {
    sys::net::somaxconn().map_or(config.listen, |max| config.listen.min(max))
}

/// A passed socket whose `FileDescriptorName=` is a socket option's name.
pub fn names_its_option(socket: &Inherited) -> bool {
    socket.activated && protocol_of_option(socket.name.as_deref().unwrap_or("")).is_some()
}

fn protocol_of_option(name: &str) -> Option<Protocol> {
    match name {
        "http-socket" => Some(Protocol::Http),
        "socket" | "uwsgi-socket" => Some(Protocol::Uwsgi),
        "fastcgi-socket" => Some(Protocol::FastCgi { nph: false }),
        "fastcgi-nph-socket" => Some(Protocol::FastCgi { nph: true }),
        _ => None,
    }
}

/// The spec a passed socket serves under when no configured socket took it.
fn unit_spec(socket: &Inherited) -> Option<SocketSpec> {
    if !socket.activated {
        return None;
    }
    let option = socket.name.clone()?;
    let protocol = protocol_of_option(&option)?;
    let address = match &socket.local {
        BindAddr::Tcp(addr) => Address::Tcp {
            host: addr.ip().to_string(),
            port: addr.port(),
        },
        BindAddr::Unix(path) => Address::Unix(path.clone()),
        BindAddr::Abstract(name) => Address::Abstract(String::from_utf8_lossy(name).into_owned()),
    };
    Some(SocketSpec {
        protocol,
        address,
        option,
    })
}

fn chown_socket(path: &std::path::Path, owner: &str) -> std::io::Result<()> {
    let (user, group) = match owner.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (owner, None),
    };
    let (uid, primary_gid, _) = sys::process::lookup_user(user)?;
    let gid = match group {
        Some(g) => sys::process::lookup_group(g)?,
        None => primary_gid,
    };
    sys::process::chown(path, Some(uid), Some(gid))
}

pub fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Http => "http",
        Protocol::Scgi { nph: false } => "scgi",
        Protocol::Scgi { nph: true } => "scgi-nph",
        Protocol::FastCgi { nph: false } => "fastcgi",
        Protocol::FastCgi { nph: true } => "fastcgi-nph",
        Protocol::Uwsgi => "uwsgi",
        Protocol::Puwsgi => "puwsgi",
        Protocol::Raw => "raw",
    }
}

/// Adopts the listening fds named in the environment by the previous image.
pub fn take_inherited() -> Vec<Inherited> {
    let Some(list) = std::env::var_os(LISTEN_FDS_ENV) else {
        return Vec::new();
    };
    std::env::remove_var(LISTEN_FDS_ENV);
    let activated: Vec<(RawFd, String)> = std::env::var(ACTIVATED_FDS_ENV)
        .unwrap_or_default()
        .split(',')
        .filter_map(|item| {
            let (fd, option) = item.split_once('=')?;
            Some((fd.parse().ok()?, option.to_owned()))
        })
        .collect();
    std::env::remove_var(ACTIVATED_FDS_ENV);
    let mut sockets = Vec::new();
    for item in list.to_string_lossy().split(',').filter(|s| !s.is_empty()) {
        let Ok(raw) = item.parse::<RawFd>() else {
            continue;
        };
        match sys::fd::adopt_inherited(raw) {
            Ok(fd) => {
                let _ = sys::fd::set_cloexec(fd.as_fd(), true);
                match sys::net::local_addr(fd.as_fd()) {
                    Ok(local) => {
                        let passed = activated.iter().find(|(fd, _)| *fd == raw);
                        sockets.push(Inherited {
                            fd,
                            local,
                            name: passed.map(|(_, option)| option.clone()),
                            activated: passed.is_some(),
                        })
                    }
                    Err(err) => {
                        tracing::warn!(fd = raw, error = %err, "inherited fd is not a socket; closing it")
                    }
                }
            }
            Err(err) => {
                tracing::warn!(fd = raw, error = %err, "inherited listening fd is not open")
            }
        }
    }
    sockets
}

/// Removes the unix socket files this vassal created (`vacuum`).
pub fn vacuum(sockets: &[BoundSocket]) {
    for socket in sockets.iter().filter(|s| !s.activated) {
        if let BindAddr::Unix(path) = &socket.local {
            match std::fs::remove_file(path) {
                Ok(()) => tracing::info!(path = %path.display(), "vacuum: removed unix socket"),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %err, "vacuum: cannot remove unix socket")
                }
            }
        }
    }
}
