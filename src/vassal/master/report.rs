//! What the master tells about its workers: SIGUSR1's log lines and the stats server's document.

use super::*;
use crate::vassal::stats_server::Document;

impl Master<'_> {
    /// SIGUSR1: per-worker figures from the scoreboard, one line each (uWSGI's `stats()`).
    pub(super) fn log_stats(&self) {
        tracing::info!("*** kaiser stats: {} workers ***", self.processes);
        for id in self.worker_ids() {
            let Some(board) = self.scoreboard.worker(id) else {
                continue;
            };
            let s = board.snapshot();
            tracing::info!(
                "worker {} (pid: {}) {}: requests {} (since spawn {}), exceptions {}, harakiri {}, respawns {}, avg_rt {} us, tx {} bytes",
                id,
                self.worker_pid(id).unwrap_or(0),
                s.status(),
                s.requests,
                s.delta_requests,
                s.exceptions,
                s.harakiri_count,
                s.respawn_count,
                s.avg_rt_us,
                s.tx,
            );
            for core in s.cores.iter().filter(|c| c.in_request) {
                tracing::info!(
                    "worker {} core {}: {} from {} since {}",
                    id,
                    core.id,
                    core.request,
                    core.remote,
                    core.request_start_unix_us / 1_000_000
                );
            }
        }
        self.attached.daemons.log(&self.children);
    }

    pub(super) fn on_stats_events(&mut self, revents: &[i16]) {
        let Some(mut stats) = self.stats.take() else {
            return;
        };
        stats.on_events(revents, |document| match document {
            Document::Json => self.stats_document(),
            Document::Prometheus => self.metrics_document(),
        });
        self.stats = Some(stats);
    }

    pub(super) fn stats_document(&self) -> Vec<u8> {
        let mut document = crate::vassal::stats::render(&self.stats_snapshot());
        self.add_daemon_stats(&mut document);
        crate::vassal::stats::to_bytes(&document, self.config.stats_minified)
    }

    /// `/metrics`: the stats JSON's figures and the request histogram, in Prometheus' format.
    pub(super) fn metrics_document(&self) -> Vec<u8> {
        let stats = self.stats_snapshot();
        let metrics = self.scoreboard.metrics();
        let requests = stats
            .workers
            .iter()
            .map(|w| metrics.snapshot(w.id))
            .collect();
        crate::vassal::prometheus::render(&crate::vassal::prometheus::MetricsInput {
            stats: &stats,
            requests,
            uptime_secs: self.started.elapsed().as_secs_f64(),
            draining: metrics.draining(),
            recycles: metrics.recycles(),
        })
    }

    pub(super) fn stats_snapshot(&self) -> crate::vassal::stats::VassalStats {
        let sockets = self
            .sockets
            .iter()
            .map(|socket| {
                let (queue, max_queue) = sys::net::listen_queue(socket.fd.as_fd())
                    .or_else(|| sys::sock_diag::unix_listen_queue(socket.fd.as_fd()))
                    .unwrap_or((0, self.config.listen));
                crate::vassal::stats::SocketStats {
                    name: socket.local.to_string(),
                    proto: sockets::protocol_name(socket.spec.protocol),
                    queue,
                    max_queue,
                }
            })
            .collect();
        let workers = self
            .worker_ids()
            .filter_map(|id| {
                let snapshot = self.scoreboard.worker(id)?.snapshot();
                let pid = self.worker_pid(id).unwrap_or(0);
                Some(crate::vassal::stats::WorkerStats {
                    id,
                    rss: sys::process::rss_bytes(pid)
                        .filter(|_| pid > 0)
                        .unwrap_or(0),
                    vsz: sys::process::vsz_bytes(pid)
                        .filter(|_| pid > 0)
                        .unwrap_or(0),
                    snapshot,
                })
            })
            .collect();
        crate::vassal::stats::VassalStats {
            version: concat!("kaiser-", env!("CARGO_PKG_VERSION")).to_string(),
            pid: sys::process::getpid() as u32,
            uid: sys::process::uid(),
            gid: sys::process::gid(),
            cwd: std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            sockets,
            workers,
            with_cores: !self.config.stats_no_cores,
            extra: self.stats_sections(),
        }
    }
}
