//! `health-drain-delay`: a graceful stop (SIGTERM, SIGQUIT, master FIFO `q`) first makes `health-check-path`
//! answer 503 while everything keeps serving, and only after the delay stops the workers and
//! closes the sockets, so that load balancers and Kubernetes take the instance out of
//! rotation before a connection can be refused. A second stop signal during the delay stops
//! at once; SIGINT always does.
//!
//! The flag lives in the scoreboard (`worker/request_metrics.rs`), where every worker's
//! health answer reads it. This module only times the drain; stopping is `reload.rs`'s.

use super::*;

impl Master<'_> {
    /// A graceful stop was asked for (`why` names the signal).
    pub(super) fn stop_after_drain(&mut self, why: &'static str) {
        let delay = self.config.health_drain_delay;
        let drains = self.config.health_check_path.is_some()
            && !delay.is_zero()
            && !matches!(self.phase, Phase::Stopping { .. });
        if !drains || self.drain_until.take().is_some() {
            self.begin_stop(false, why);
            return;
        }
        self.scoreboard.metrics().set_draining(true);
        let _ = self.notifier.notify("STATUS=draining");
        tracing::info!(
            reason = why,
            delay_secs = delay.as_secs(),
            "draining: health checks answer 503; stopping after health-drain-delay"
        );
        self.drain_until = Some((Instant::now() + delay, why));
    }

    /// When the drain ends, for the loop's timeout.
    pub(super) fn drain_deadline(&self) -> Option<Instant> {
        self.drain_until.map(|(at, _)| at)
    }

    pub(super) fn drain_tick(&mut self, now: Instant) {
        if let Some((at, why)) = self.drain_until {
            if now >= at {
                self.drain_until = None;
                tracing::info!("drain delay over");
                self.begin_stop(false, why);
            }
        }
    }
}
