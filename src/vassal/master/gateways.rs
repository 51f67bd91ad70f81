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
                let kept = sockets.raw_fds();
                let mut close_fds = self.master_only_fds();
                close_fds.retain(|fd| !kept.contains(fd));
                let own: Vec<String> = self.sockets.iter().map(|s| s.local.to_string()).collect();
                crate::vassal::fastrouter::run(
                    sockets,
                    &self.config.fastrouter,
                    &own,
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

impl Master<'_> {
    /// Before a reload's re-exec: the router is stopped and waited for (uWSGI's reload
    /// restarts its gateways too; relays under way are cut, and the subscription table starts
    /// empty until the nodes announce themselves again); its sockets go on to the new image.
    pub(super) fn stop_gateways_for_reexec(&mut self) {
        let routers: Vec<Pid> = self
            .children
            .entries()
            .filter(|e| matches!(e.kind, Kind::Gateway(_)))
            .map(|e| e.pid)
            .collect();
        let deadline = Instant::now() + self.config.reload_mercy;
        for pid in routers {
            // Its default action: it ends at once.
            let _ = sys::signal::kill(pid, libc::SIGTERM);
            loop {
                match sys::process::try_wait(pid) {
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Ok(None) => {
                        let _ = sys::signal::kill(pid, libc::SIGKILL);
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Ok(Some(how)) => {
                        tracing::info!(pid, %how, "fastrouter stopped for the reload");
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.children.exited(pid, true);
        }
    }

    /// The re-exec failed: the router's sockets close on exec again.
    pub(super) fn undo_gateways_exec(&self) {
        if let Some(gateways) = &self.gateways {
            gateways.undo_exec();
        }
    }

    /// The re-exec failed: the router runs again.
    pub(super) fn resume_gateways(&mut self) {
        if self.gateways.is_some() && self.children.pid_of(Kind::Gateway(0)).is_none() {
            self.schedule_respawn(Kind::Gateway(0));
        }
    }
}
