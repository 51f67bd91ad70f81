//! `heartbeat = N`: every N seconds the master tells its supervisor it is alive with
//! `WATCHDOG=1` (on the emperor channel, or to systemd when run directly under a unit with
//! `WatchdogSec=`), but only while it is healthy: running, and with at least one worker
//! accepting (or none on purpose, in `idle` cheap mode). A master whose workers all died,
//! or whose loop is stuck, falls silent, and the emperor's `emperor-required-heartbeat` (or
//! systemd's watchdog) restarts it.
//!
//! It only decides when to send; the emperor's side is `emperor/heartbeat.rs`.

use super::*;

impl Master<'_> {
    /// When the next heartbeat is due, for the loop's timeout.
    pub(super) fn heartbeat_deadline(&self) -> Option<Instant> {
        self.next_heartbeat
    }

    pub(super) fn heartbeat_tick(&mut self, now: Instant) {
        let Some(at) = self.next_heartbeat else {
            return;
        };
        if now < at {
            return;
        }
        self.next_heartbeat = Some(now + self.config.heartbeat);
        // Cheap mode (`idle`) has no workers on purpose: the master watches the sockets.
        let healthy = matches!(self.phase, Phase::Running | Phase::Checking { .. })
            && (self.is_cheap() || self.worker_ids().any(|id| self.worker_ready(id)));
        if healthy {
            let _ = self.notifier.notify("WATCHDOG=1");
        } else {
            tracing::debug!("no worker accepts: heartbeat withheld");
        }
    }
}
