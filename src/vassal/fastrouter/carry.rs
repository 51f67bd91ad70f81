//! The router's sockets across a reload's re-exec: the master clears their close-on-exec
//! flag and names them in `KAISER_GATEWAY_FDS` (`fd option address`, one a line), and the new
//! image takes back each one whose option and address, as written, it still has. So a
//! reload keeps the router's addresses (even a port-0 one) and its backlog, and a client
//! connecting meanwhile waits instead of being refused. An address the new config drops is
//! closed. This module only hands fds over; binding stays in `mod.rs`.

use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};

use crate::sys;

const GATEWAY_FDS_ENV: &str = "KAISER_GATEWAY_FDS";

/// A socket handed over by the previous image.
pub(super) struct Carried {
    pub option: String,
    pub address: String,
    pub fd: OwnedFd,
}

/// The sockets the previous image handed over (none on a first start), close-on-exec again.
pub(super) fn take() -> Vec<Carried> {
    let Some(text) = std::env::var_os(GATEWAY_FDS_ENV) else {
        return Vec::new();
    };
    std::env::remove_var(GATEWAY_FDS_ENV);
    let text = text.to_string_lossy().into_owned();
    let mut carried = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ' ');
        let (Some(fd), Some(option), Some(address)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Ok(fd) = fd.parse::<RawFd>() else {
            continue;
        };
        // SAFETY: fcntl(F_GETFD) only asks whether the number is an open descriptor.
        if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            continue;
        }
        // SAFETY: the previous image of this master left this descriptor open for us and
        // named it only here; nothing else in this process owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let _ = sys::fd::set_cloexec(fd.as_fd(), true);
        carried.push(Carried {
            option: option.to_string(),
            address: address.to_string(),
            fd,
        });
    }
    carried
}

/// Takes the carried socket of `option` at `address`, if there is one.
pub(super) fn claim(carried: &mut Vec<Carried>, option: &str, address: &str) -> Option<OwnedFd> {
    let at = carried
        .iter()
        .position(|c| c.option == option && c.address == address)?;
    Some(carried.remove(at).fd)
}

/// Before the exec: `sockets` (`(fd, option, address)`) stay open and are named.
pub(super) fn keep(sockets: &[(std::os::fd::BorrowedFd<'_>, &str, &str)]) -> std::io::Result<()> {
    let mut text = String::new();
    for (fd, option, address) in sockets {
        sys::fd::set_cloexec(*fd, false)?;
        use std::os::fd::AsRawFd;
        text.push_str(&format!("{} {option} {address}\n", fd.as_raw_fd()));
    }
    std::env::set_var(GATEWAY_FDS_ENV, text);
    Ok(())
}

/// The exec failed: close-on-exec again, and no name left behind.
pub(super) fn undo(sockets: &[std::os::fd::BorrowedFd<'_>]) {
    for fd in sockets {
        let _ = sys::fd::set_cloexec(*fd, true);
    }
    std::env::remove_var(GATEWAY_FDS_ENV);
}
