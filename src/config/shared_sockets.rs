//! `shared-socket` and `abstract-socket`, applied to the typed sockets.
//!
//! uWSGI binds a `shared-socket` in the master before it drops privileges, and a `socket`,
//! `http-socket` or `http` written `=N` uses the Nth one (from 0), so a port below 1024 can be
//! served by an unprivileged instance. kaiser's master binds every socket before dropping
//! privileges anyway, so `=N` simply stands for that address. A shared socket that nothing
//! references would be served by nobody (uWSGI's gateways are what use them): it is not bound,
//! with a warning.
//!
//! `abstract-socket` makes every unix socket path abstract, as uWSGI's `-a` does.

use super::diagnostics::{Origin, Report};
use super::sources::Entry;
use super::{Address, SocketSpec};

pub(super) fn resolve(
    sockets: &mut [SocketSpec],
    shared: &[&Entry],
    abstract_sockets: bool,
    report: &mut Report,
) {
    let mut used = vec![false; shared.len()];
    for socket in sockets.iter_mut() {
        let Address::Unix(path) = &socket.address else {
            continue;
        };
        let text = path.to_string_lossy();
        if let Some(index) = text
            .strip_prefix('=')
            .and_then(|digits| digits.parse::<usize>().ok())
        {
            let Some(entry) = shared.get(index) else {
                report.error(
                    &Origin::Whole,
                    &socket.option,
                    format!(
                        "`{} = ={index}` names shared socket {index}, but there {}",
                        socket.option,
                        match shared.len() {
                            0 => "is no `shared-socket`".to_string(),
                            1 => "is only one `shared-socket` (=0)".to_string(),
                            n => format!("are only {n} (=0 to ={})", n - 1),
                        }
                    ),
                );
                continue;
            };
            match super::typed::address(&entry.value) {
                Ok(address) => {
                    used[index] = true;
                    socket.address = address;
                }
                Err(message) => report.error(&entry.origin, &entry.key, message),
            }
        }
    }
    for (entry, used) in shared.iter().zip(used) {
        if !used {
            report.warn(
                &entry.origin,
                &entry.key,
                format!(
                    "no `socket`, `http-socket` or `http` uses this shared socket (write `= ={}` there); it is not bound",
                    shared.iter().position(|e| std::ptr::eq(*e, *entry)).unwrap_or(0)
                ),
            );
        }
    }
    if abstract_sockets {
        for socket in sockets.iter_mut() {
            if let Address::Unix(path) = &socket.address {
                socket.address = Address::Abstract(path.to_string_lossy().into_owned());
            }
        }
    }
}
