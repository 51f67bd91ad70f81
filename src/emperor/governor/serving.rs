//! The glue between the vassal table and the stats listeners: binding `emperor-stats` and
//! `emperor-stats-prometheus`, taking a snapshot of the table ([`EmperorStats`]) for each
//! client, and handing the rendered body to [`stats_server`], which writes it from a task of
//! its own under its bounds.
//!
//! Rendering lives in [`crate::emperor::stats`] and [`crate::emperor::prometheus`], the
//! listeners in [`stats_server`]. This file must not write to a client from the loop, nor
//! keep a snapshot between clients.

use std::time::Instant;

use tracing::{info, warn};

use super::{millis, Governor};
use crate::emperor::on_demand::OnDemand;
use crate::emperor::state::State;
use crate::emperor::stats::{self, EmperorStats, VassalStats};
use crate::emperor::stats_server::{self, StatsListener, StatsStream};
use crate::emperor::EmperorError;

/// Binds `address`, or returns `None` when the option is not set.
async fn bind(address: &Option<String>) -> Result<Option<StatsListener>, EmperorError> {
    match address {
        Some(address) => StatsListener::bind(address)
            .await
            .map(Some)
            .map_err(|source| EmperorError::Stats {
                address: address.clone(),
                source,
            }),
        None => Ok(None),
    }
}

/// The `emperor-stats` and `emperor-stats-prometheus` listeners, while the loop runs.
pub(super) struct Listeners {
    pub(super) stats: Option<StatsListener>,
    pub(super) prometheus: Option<StatsListener>,
}

impl Listeners {
    pub(super) async fn bind(
        stats_address: &Option<String>,
        prometheus_address: &Option<String>,
    ) -> Result<Self, EmperorError> {
        let stats = bind(stats_address).await?;
        match &stats {
            Some(StatsListener::Tcp(listener)) => {
                if let Ok(address) = listener.local_addr() {
                    info!(%address, "serving emperor stats (uwsgitop {address})");
                }
            }
            Some(StatsListener::Unix(_)) => {
                let address = stats_address.as_deref().unwrap_or_default();
                info!(address, "serving emperor stats (uwsgitop {address})");
            }
            None => {}
        }
        let prometheus = bind(prometheus_address).await?;
        match (&prometheus, prometheus_address) {
            (Some(StatsListener::Tcp(tcp)), _) => {
                if let Ok(address) = tcp.local_addr() {
                    info!(%address, "serving emperor Prometheus metrics (/metrics)");
                }
            }
            (Some(_), Some(address)) => {
                info!(address, "serving emperor Prometheus metrics (/metrics)")
            }
            _ => {}
        }
        Ok(Listeners { stats, prometheus })
    }

    /// Removes the socket files the listeners created (not an abstract name or a TCP port).
    pub(super) fn remove_paths(
        &self,
        stats_address: &Option<String>,
        prometheus_address: &Option<String>,
    ) {
        for (listener, path) in [
            (&self.stats, stats_address),
            (&self.prometheus, prometheus_address),
        ] {
            if let (Some(listener), Some(path)) = (listener, path) {
                if listener.is_path(path) {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
}

impl Governor {
    fn stats(&self) -> EmperorStats {
        let now = Instant::now();
        EmperorStats {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            uid: crate::sys::process::uid(),
            gid: crate::sys::process::gid(),
            cwd: std::env::current_dir()
                .map(|dir| dir.display().to_string())
                .unwrap_or_default(),
            monitors: self
                .monitors
                .iter()
                .map(|state| state.monitor.arg().to_owned())
                .collect(),
            tyrant: self.settings.tyrant,
            throttle_ms: millis(self.settings.throttle),
            vassals: self
                .vassals
                .values()
                .map(|vassal| VassalStats {
                    id: vassal.file_name.clone(),
                    config: vassal.path.display().to_string(),
                    pid: vassal.pid.unwrap_or(0),
                    state: vassal.life.state.as_str(),
                    status: vassal.status.clone(),
                    born: vassal.born,
                    last_mod: u64::try_from(vassal.stamp.mtime_sec).unwrap_or(0),
                    ready: matches!(vassal.life.state, State::Ready | State::Reloading),
                    last_ready: vassal.last_ready,
                    first_run: vassal.first_run,
                    last_run: vassal.last_run,
                    cursed: vassal.cursed,
                    uid: vassal.stamp.uid,
                    gid: vassal.stamp.gid,
                    monitor: self.monitors[vassal.monitor_idx].monitor.arg().to_owned(),
                    respawns: vassal.spawns.saturating_sub(1),
                    failures: vassal.life.failures,
                    throttle_ms: vassal.retry_at.map_or(millis(vassal.retry_delay), |at| {
                        millis(at.saturating_duration_since(now))
                    }),
                    first_failure: vassal.first_failure,
                    last_failure: vassal.last_failure,
                    on_demand: vassal
                        .on_demand
                        .as_ref()
                        .map(OnDemand::address)
                        .unwrap_or_default(),
                })
                .collect(),
        }
    }

    pub(super) fn serve_stats(&self, accepted: std::io::Result<StatsStream>) {
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                warn!(%error, "emperor-stats accept failed");
                return;
            }
        };
        let body = stats::render(&self.stats()).to_string();
        stats_server::serve(stream, body, &self.stats_clients);
    }

    pub(super) fn serve_metrics(&self, accepted: std::io::Result<StatsStream>) {
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                warn!(%error, "emperor-stats-prometheus accept failed");
                return;
            }
        };
        let body = crate::emperor::prometheus::render(&self.stats());
        stats_server::serve_http(
            stream,
            crate::protocol::prometheus::CONTENT_TYPE,
            body,
            &self.stats_clients,
        );
    }
}
