//! Forks the fastrouter (`vassal/fastrouter/`), a gateway child of the master with its
//! seat in the process table: respawned when it dies, stopped with the vassal, never a
//! worker. This file only forks; the router's work is in `vassal/fastrouter/`.

use super::*;

impl Master<'_> {
    pub(super) fn spawn_gateway(&mut self, index: usize) -> Result<(), RunVassalError> {
        let Some(sockets) = &self.gateways else {
            return Ok(());
        };
        let forked = match &self.app {
            Some(_) => python::fork()?,
            None => sys::fork::fork()?,
        };
        match forked {
            Forked::Child => {
                // The router keeps its own sockets and closes the master's and the workers'.
                let own = sockets.raw_fds();
                let mut close_fds = self.master_only_fds();
                close_fds.retain(|fd| !own.contains(fd));
                crate::vassal::fastrouter::run(
                    sockets,
                    &self.config.fastrouter,
                    sys::process::getppid(),
                    &close_fds,
                )
            }
            Forked::Parent { child } => {
                let kind = Kind::Gateway(index);
                let respawns = self.children.respawns(kind);
                self.children.insert(Entry {
                    state: State::Serving,
                    ..Entry::new(kind, child, Instant::now())
                });
                if respawns == 0 {
                    tracing::info!(pid = child, "spawned the fastrouter");
                } else {
                    tracing::info!(pid = child, respawns, "respawned the fastrouter");
                }
                Ok(())
            }
        }
    }
}
