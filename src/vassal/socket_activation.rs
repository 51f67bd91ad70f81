//! systemd socket activation (`sd_listen_fds(3)`): a vassal started by a `.socket` unit gets
//! its listening sockets as fds 3.. with `LISTEN_FDS`, `LISTEN_PID` and, optionally,
//! `LISTEN_FDNAMES`. As uWSGI does, a configured socket uses a passed one instead of binding
//! when the addresses are the same; kaiser also matches by name, when the unit's
//! `FileDescriptorName=` is the option's name (`http-socket`, `socket`, `uwsgi-socket`), so
//! the unit may choose the address (`ListenStream=80`) whatever the INI file says; such a
//! socket serves as that option even when the INI names no socket at all.
//!
//! The variables are removed from the environment at once, so workers and the app never
//! see them (and a re-exec on reload passes the sockets on as `KAISER_LISTEN_FDS`, like
//! any inherited socket). It only adopts descriptors; `sockets.rs` decides which configured
//! socket each one serves.

use std::os::fd::{AsFd, RawFd};

use super::sockets::Inherited;
use crate::sys;

/// `SD_LISTEN_FDS_START`.
const FIRST_FD: RawFd = 3;
/// More than any unit passes; bounds a corrupt `LISTEN_FDS`.
const MAX_FDS: usize = 1024;

/// `KAISER_ON_DEMAND_FD`: an on-demand vassal's socket, bound and kept by the emperor
/// (`emperor/on_demand.rs`). Like systemd's, it is the emperor's: `vacuum` leaves it.
const ON_DEMAND_ENV: &str = "KAISER_ON_DEMAND_FD";

/// The sockets systemd (or the emperor, for an on-demand vassal) passed to this process.
pub fn take() -> Vec<Inherited> {
    let mut sockets = take_on_demand();
    sockets.extend(take_systemd());
    sockets
}

fn take_on_demand() -> Vec<Inherited> {
    let Some(value) = std::env::var_os(ON_DEMAND_ENV) else {
        return Vec::new();
    };
    std::env::remove_var(ON_DEMAND_ENV);
    let Some(raw) = value.to_str().and_then(|v| v.parse::<RawFd>().ok()) else {
        tracing::warn!(value = ?value, "{ON_DEMAND_ENV} is not an fd; ignored");
        return Vec::new();
    };
    let fd = match sys::fd::adopt_inherited(raw) {
        Ok(fd) => fd,
        Err(err) => {
            tracing::warn!(fd = raw, error = %err, "the on-demand socket is not open");
            return Vec::new();
        }
    };
    let _ = sys::fd::set_cloexec(fd.as_fd(), true);
    match sys::net::local_addr(fd.as_fd()) {
        Ok(local) => {
            tracing::info!(fd = raw, address = %local, "on-demand socket passed by the emperor");
            vec![Inherited {
                fd,
                local,
                name: None,
                activated: true,
            }]
        }
        Err(err) => {
            tracing::warn!(fd = raw, error = %err, "the on-demand fd is not a socket");
            Vec::new()
        }
    }
}

fn take_systemd() -> Vec<Inherited> {
    let pid = std::env::var("LISTEN_PID").ok();
    let count = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    for key in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(key);
    }
    let Some(count) = count else {
        return Vec::new();
    };
    // Meant for another process (a parent that forgot to unset them): not ours to take.
    if pid.and_then(|p| p.trim().parse::<u32>().ok()) != Some(sys::process::getpid() as u32) {
        tracing::debug!("LISTEN_FDS is set for another process; ignored");
        return Vec::new();
    }
    let count = match count.trim().parse::<usize>() {
        Ok(n) if n <= MAX_FDS => n,
        _ => {
            tracing::warn!(LISTEN_FDS = %count, "LISTEN_FDS is not a sensible count; ignored");
            return Vec::new();
        }
    };
    let names: Vec<String> = names
        .map(|n| n.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    let mut sockets = Vec::new();
    for index in 0..count {
        let raw = FIRST_FD + index as RawFd;
        let fd = match sys::fd::adopt_inherited(raw) {
            Ok(fd) => fd,
            Err(err) => {
                tracing::warn!(fd = raw, error = %err, "socket activation: fd is not open");
                continue;
            }
        };
        let _ = sys::fd::set_cloexec(fd.as_fd(), true);
        let name = names.get(index).filter(|n| !n.is_empty()).cloned();
        match sys::net::local_addr(fd.as_fd()) {
            Ok(local) => {
                tracing::info!(fd = raw, address = %local, name = name.as_deref().unwrap_or(""), "socket passed by systemd");
                sockets.push(Inherited {
                    fd,
                    local,
                    name,
                    activated: true,
                });
            }
            Err(err) => {
                tracing::warn!(fd = raw, error = %err, "socket activation: fd is not a socket; closing it")
            }
        }
    }
    sockets
}
