//! The master's mule hooks: fork the mules after the app is preloaded, respawn one that ends,
//! and count them among `worker_pids` so stops and reloads end them too.

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
                    script: self.mules.script(index).to_string(),
                    master_pid: sys::process::getppid(),
                    close_fds: self.master_only_fds(),
                    python,
                    hooks: self.config.hooks.clone(),
                })
            }
            Forked::Parent { child } => {
                let respawns = self.mules.respawns(index);
                self.mules.spawned(index, child);
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

    pub(super) fn reap_mule(&mut self, pid: Pid, how: ExitKind) -> bool {
        let stopping = matches!(self.phase, Phase::Stopping { .. });
        let Some(index) = self.mules.exited(pid, !stopping) else {
            return false;
        };
        let id = index + 1;
        if stopping {
            tracing::info!(mule = id, pid, %how, "mule stopped");
        } else {
            tracing::warn!(mule = id, pid, %how, "mule ended, respawning");
        }
        true
    }

    pub(super) fn mules_tick(&mut self, now: Instant) -> Result<(), RunVassalError> {
        let limit = self.config.mule_harakiri;
        if !limit.is_zero() {
            // The mule writes its start on `CLOCK_MONOTONIC` (`python/mules.rs`).
            let now_us = sys::clock::monotonic_us();
            for (index, pid) in self.mules.live() {
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
        for index in self.mules.due(now) {
            self.spawn_mule(index)?;
        }
        Ok(())
    }
}
