//! The master's mule hooks: fork a mule into its seat of the process table (the table reaps
//! it, respawns it and stops it with the vassal, as every child), and `mule-harakiri`.

use super::*;
use crate::mule::{self, MuleSetup, PythonSource};

impl Master<'_> {
    pub(super) fn spawn_mule(&mut self, index: usize) -> Result<(), RunVassalError> {
        let forked = match &self.app {
            Some(_) => python::fork()?,
            None => sys::fork::fork()?,
        };
        match forked {
            Forked::Child => {
                let python = match &self.lazy {
                    Some((_, interpreter, module)) => PythonSource::Lazy {
                        interpreter: interpreter.clone(),
                        module: module.clone(),
                    },
                    None => PythonSource::Preloaded,
                };
                mule::run(MuleSetup {
                    id: index as u32 + 1,
                    script: self.config.mules[index].clone(),
                    master_pid: sys::process::getppid(),
                    close_fds: self.master_only_fds(),
                    python,
                    hooks: self.config.hooks.clone(),
                })
            }
            Forked::Parent { child } => {
                let kind = Kind::Mule(index);
                let respawns = self.children.respawns(kind);
                self.children.insert(Entry {
                    state: State::Serving,
                    ..Entry::new(kind, child, Instant::now())
                });
                let id = index + 1;
                if respawns == 0 {
                    tracing::info!(mule = id, pid = child, "spawned mule");
                } else {
                    tracing::info!(mule = id, pid = child, respawns, "respawned mule");
                }
                Ok(())
            }
        }
    }

    /// `mule-harakiri`: a mule handling one message for too long is killed (and respawned).
    pub(super) fn mules_tick(&mut self) {
        let limit = self.config.mule_harakiri;
        if !limit.is_zero() {
            // The mule writes its start on `CLOCK_MONOTONIC` (`python/mules.rs`).
            let now_us = sys::clock::monotonic_us();
            for (index, pid) in self.live(Kind::Mule) {
                let since = python::mule_busy_since(index as u32 + 1);
                if since > 0 && now_us.saturating_sub(since) > limit.as_micros() as u64 {
                    tracing::warn!(
                        mule = index + 1,
                        pid,
                        "mule-harakiri: a message has been handled for too long; killing the mule"
                    );
                    let _ = sys::signal::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}
