//! What the emperor tells systemd through `NOTIFY_SOCKET` (sd_notify(3)): a `STATUS=` line
//! that follows the vassal table, `READY=1` once the vassals have settled (at start and after
//! an emperor-wide reload, bounded by [`SETTLE_TIMEOUT`]), and `WATCHDOG=1` at half of
//! `WATCHDOG_USEC`.
//!
//! It only reports: it must not change a vassal's state, and a systemd that is absent or gone
//! must change nothing else (sends are best effort).

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::Governor;
use crate::emperor::state::State;

/// Upper bound on holding back systemd's READY=1 (start) or the end of a reload while vassals
/// are still starting; below systemd's default TimeoutStartSec of 90 s.
pub(super) const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// `WATCHDOG_USEC` (honouring `WATCHDOG_PID`): we ping at half the interval, as sd_watchdog_enabled(3) advises.
pub(super) fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
        if pid.to_str()?.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Messages kept while `NOTIFY_SOCKET`'s queue is full; past this the oldest are dropped.
const MAX_PENDING: usize = 32;
/// How soon the loop retries sending them.
pub(super) const NOTIFY_RETRY: Duration = Duration::from_millis(50);

impl Governor {
    /// Sends one sd_notify message to systemd, when it asked for them, without ever waiting:
    /// while the receiver's queue is full (a reader that does not keep up, the kernel keeps
    /// 10 datagrams) messages wait in order in `notify_pending` and the loop retries them
    /// (`flush_notify`); a newer `STATUS=` replaces a waiting one. A failure is logged, never
    /// fatal: systemd going away must not take the vassals with it.
    pub(super) fn notify_systemd(&mut self, message: &str) {
        let status_only = |text: &str| text.starts_with("STATUS=") && !text.contains('\n');
        if status_only(message) {
            self.notify_pending.retain(|waiting| !status_only(waiting));
        }
        self.notify_pending.push_back(message.to_owned());
        while self.notify_pending.len() > MAX_PENDING {
            self.notify_pending.pop_front();
        }
        self.flush_notify();
    }

    /// Sends the waiting messages until the queue is full again.
    pub(super) fn flush_notify(&mut self) {
        while let Some(message) = self.notify_pending.front() {
            match self.notifier.try_notify(message) {
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(error) => tracing::debug!(%error, message, "sd_notify send failed"),
                Ok(()) => {}
            }
            self.notify_pending.pop_front();
        }
    }

    /// The watchdog ping when due, the settling READY=1, and `STATUS=` when it changed; run
    /// after every wake-up.
    pub(super) fn tell_systemd(&mut self, now: Instant) {
        self.flush_notify();
        if let Some((interval, last)) = self.watchdog {
            if now >= last + interval {
                self.notify_systemd("WATCHDOG=1");
                self.watchdog = Some((interval, now));
            }
        }
        self.check_settled(now);
        let status = self.status_line();
        if status != self.last_status {
            self.notify_systemd(&format!("STATUS={status}"));
            self.last_status = status;
        }
    }

    pub(super) fn status_line(&self) -> String {
        if self.shutdown.is_some() {
            return format!("stopping, {} vassals left", self.vassals.len());
        }
        let count = |wanted: &[State]| {
            self.vassals
                .values()
                .filter(|vassal| wanted.contains(&vassal.life.state))
                .count()
        };
        let mut line = format!(
            "governing {} vassals, {} ready, {} starting, {} failed",
            self.vassals.len(),
            count(&[State::Ready, State::Reloading]),
            count(&[State::Starting]),
            count(&[State::Failed, State::Throttled]),
        );
        let waiting = count(&[State::Waiting]);
        if waiting > 0 {
            line.push_str(&format!(", {waiting} waiting on demand"));
        }
        line
    }

    /// READY=1 once every vassal is ready or has failed (or the settle timeout passed), after
    /// the start and after an emperor-wide reload.
    fn check_settled(&mut self, now: Instant) {
        let Some(deadline) = self.settle_deadline else {
            return;
        };
        let unsettled = self
            .vassals
            .values()
            .filter(|vassal| matches!(vassal.life.state, State::Starting | State::Reloading))
            .count()
            // Files still waiting for `emperor-on-demand-exec`'s answer are vassals too.
            + self.on_demand_asking.len();
        if unsettled > 0 && now < deadline {
            return;
        }
        if unsettled > 0 {
            warn!(
                unsettled,
                timeout_s = SETTLE_TIMEOUT.as_secs(),
                "vassals still starting, reporting ready anyway"
            );
        }
        self.settle_deadline = None;
        let status = self.status_line();
        info!(status = %status, "emperor ready");
        self.notify_systemd(&format!("READY=1\nSTATUS={status}"));
        self.last_status = status;
    }
}
