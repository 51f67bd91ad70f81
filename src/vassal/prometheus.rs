//! The vassal's `/metrics` document: the figures of the stats JSON (`stats.rs`) plus the
//! status classes and duration histogram of `worker/request_metrics.rs`, in Prometheus'
//! text format. Pure: the master passes the same snapshot it gives the JSON, so the two
//! documents agree figure for figure.
//!
//! Naming: `kaiser_` prefix, `_total` counters, seconds and bytes as base units. Per-worker
//! series carry `worker="<id>"` (the id in logs, stable across respawns, so counters stay
//! monotonic); sockets carry `socket="<address>"`.

use crate::protocol::prometheus::{Exposition, Kind};
use crate::worker::request_metrics::{WorkerMetrics, BUCKETS_US, RECYCLE_REASONS, STATUS_CLASSES};

use super::stats::VassalStats;

/// Everything `/metrics` shows.
pub struct MetricsInput<'a> {
    pub stats: &'a VassalStats,
    /// Per worker, in the order of `stats.workers`.
    pub requests: Vec<WorkerMetrics>,
    pub uptime_secs: f64,
    /// The vassal is draining before a stop (health probes fail).
    pub draining: bool,
    /// Indexed like [`RECYCLE_REASONS`].
    pub recycles: [u64; RECYCLE_REASONS.len()],
}

/// The `reason` label of a recycle (one of [`RECYCLE_REASONS`]).
pub(super) fn recycle_reason(cause: &super::replacement::Cause) -> &'static str {
    use super::replacement::Cause;
    use crate::worker::to_master::Limit;
    match cause {
        Cause::Asked {
            limit: Limit::MaxRequests,
            ..
        } => "max-requests",
        Cause::Asked {
            limit: Limit::ReloadOnRss,
            ..
        } => "reload-on-rss",
        Cause::Asked {
            limit: Limit::ReloadOnAs,
            ..
        } => "reload-on-as",
        Cause::Asked {
            limit: Limit::Exception,
            ..
        } => "reload-on-exception",
        Cause::Lifetime { .. } => "max-worker-lifetime",
        Cause::ChainReload => "chain-reload",
        Cause::WorkersReload => "workers-reload",
    }
}

pub fn render(input: &MetricsInput<'_>) -> Vec<u8> {
    let stats = input.stats;
    let mut doc = Exposition::new();
    let ids: Vec<String> = stats.workers.iter().map(|w| w.id.to_string()).collect();

    doc.family(
        "kaiser_info",
        Kind::Gauge,
        "the version of kaiser serving this vassal",
    )
    .sample("kaiser_info", &[("version", &stats.version)], 1.0);
    doc.family(
        "kaiser_uptime_seconds",
        Kind::Gauge,
        "seconds since the vassal's master started",
    )
    .sample("kaiser_uptime_seconds", &[], input.uptime_secs);
    doc.family(
        "kaiser_draining",
        Kind::Gauge,
        "1 while the vassal drains before a stop (health checks answer 503)",
    )
    .sample("kaiser_draining", &[], f64::from(u8::from(input.draining)));

    let per_worker = |doc: &mut Exposition,
                      name: &str,
                      kind: Kind,
                      help: &str,
                      value: &dyn Fn(&super::stats::WorkerStats) -> f64| {
        doc.family(name, kind, help);
        for (worker, id) in stats.workers.iter().zip(&ids) {
            doc.sample(name, &[("worker", id)], value(worker));
        }
    };
    per_worker(
        &mut doc,
        "kaiser_worker_requests_total",
        Kind::Counter,
        "requests served by the worker (all its processes)",
        &|w| w.snapshot.requests as f64,
    );
    per_worker(
        &mut doc,
        "kaiser_worker_exceptions_total",
        Kind::Counter,
        "requests whose app raised an exception",
        &|w| w.snapshot.exceptions as f64,
    );
    per_worker(
        &mut doc,
        "kaiser_worker_harakiri_total",
        Kind::Counter,
        "requests ended by harakiri",
        &|w| w.snapshot.harakiri_count as f64,
    );
    per_worker(
        &mut doc,
        "kaiser_worker_spawns_total",
        Kind::Counter,
        "times the worker was spawned (the stats JSON's respawn_count: 1 at the first spawn)",
        &|w| w.snapshot.respawn_count as f64,
    );
    per_worker(
        &mut doc,
        "kaiser_worker_transmitted_bytes_total",
        Kind::Counter,
        "bytes sent to clients",
        &|w| w.snapshot.tx as f64,
    );
    per_worker(
        &mut doc,
        "kaiser_worker_busy",
        Kind::Gauge,
        "1 while any thread of the worker serves a request",
        &|w| f64::from(u8::from(w.snapshot.status() == "busy")),
    );
    per_worker(
        &mut doc,
        "kaiser_worker_busy_threads",
        Kind::Gauge,
        "request threads of the worker serving a request now",
        &|w| w.snapshot.cores.iter().filter(|c| c.in_request).count() as f64,
    );
    per_worker(
        &mut doc,
        "kaiser_worker_rss_bytes",
        Kind::Gauge,
        "resident memory of the worker's process",
        &|w| w.rss as f64,
    );
    per_worker(
        &mut doc,
        "kaiser_worker_vsz_bytes",
        Kind::Gauge,
        "address space of the worker's process",
        &|w| w.vsz as f64,
    );
    per_worker(
        &mut doc,
        "kaiser_worker_average_response_seconds",
        Kind::Gauge,
        "uWSGI's avg_rt: a running average of request durations",
        &|w| w.snapshot.avg_rt_us as f64 / 1e6,
    );

    let busy = stats
        .workers
        .iter()
        .filter(|w| w.snapshot.status() == "busy")
        .count();
    doc.family(
        "kaiser_workers",
        Kind::Gauge,
        "workers by state (busy: serving a request)",
    )
    .sample("kaiser_workers", &[("state", "busy")], busy as f64)
    .sample(
        "kaiser_workers",
        &[("state", "idle")],
        (stats.workers.len() - busy) as f64,
    );

    doc.family(
        "kaiser_worker_recycles_total",
        Kind::Counter,
        "workers replaced by the master, by reason (evil-memory: killed over evil-reload-on-rss/as)",
    );
    for (reason, count) in RECYCLE_REASONS.iter().zip(input.recycles) {
        doc.sample(
            "kaiser_worker_recycles_total",
            &[("reason", reason)],
            count as f64,
        );
    }

    doc.family(
        "kaiser_responses_total",
        Kind::Counter,
        "responses by status class (other: none was sent)",
    );
    for (figures, id) in input.requests.iter().zip(&ids) {
        for (class, count) in STATUS_CLASSES.iter().zip(figures.status) {
            doc.sample(
                "kaiser_responses_total",
                &[("worker", id), ("code", class)],
                count as f64,
            );
        }
    }

    doc.family(
        "kaiser_request_duration_seconds",
        Kind::Histogram,
        "time from the request head to the end of the response",
    );
    for (figures, id) in input.requests.iter().zip(&ids) {
        let mut cumulative = 0u64;
        for (index, count) in figures.buckets.iter().enumerate() {
            cumulative += count;
            let le = match BUCKETS_US.get(index) {
                Some(bound) => format!("{}", *bound as f64 / 1e6),
                None => "+Inf".to_string(),
            };
            doc.sample(
                "kaiser_request_duration_seconds_bucket",
                &[("worker", id), ("le", &le)],
                cumulative as f64,
            );
        }
        doc.sample(
            "kaiser_request_duration_seconds_sum",
            &[("worker", id)],
            figures.sum_us as f64 / 1e6,
        );
        doc.sample(
            "kaiser_request_duration_seconds_count",
            &[("worker", id)],
            cumulative as f64,
        );
    }

    doc.family(
        "kaiser_listen_queue",
        Kind::Gauge,
        "connections waiting in the socket's backlog",
    );
    for socket in &stats.sockets {
        doc.sample(
            "kaiser_listen_queue",
            &[("socket", &socket.name), ("proto", socket.proto)],
            f64::from(socket.queue),
        );
    }
    doc.family(
        "kaiser_listen_queue_max",
        Kind::Gauge,
        "the socket's backlog size",
    );
    for socket in &stats.sockets {
        doc.sample(
            "kaiser_listen_queue_max",
            &[("socket", &socket.name), ("proto", socket.proto)],
            f64::from(socket.max_queue),
        );
    }
    doc.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vassal::stats::{SocketStats, WorkerStats};
    use crate::worker::scoreboard::{CoreSnapshot, WorkerSnapshot};

    #[test]
    fn histogram_is_cumulative_and_counts_match() {
        let stats = VassalStats {
            version: "kaiser-test".into(),
            sockets: vec![SocketStats {
                name: "127.0.0.1:1".into(),
                proto: "http",
                queue: 2,
                max_queue: 100,
            }],
            workers: vec![WorkerStats {
                id: 1,
                snapshot: WorkerSnapshot {
                    requests: 3,
                    cores: vec![CoreSnapshot {
                        in_request: true,
                        ..CoreSnapshot::default()
                    }],
                    ..WorkerSnapshot::default()
                },
                ..WorkerStats::default()
            }],
            ..VassalStats::default()
        };
        let mut figures = WorkerMetrics::default();
        figures.buckets[0] = 2;
        figures.buckets[11] = 1;
        figures.status[1] = 3;
        figures.sum_us = 12_500_000;
        let text = String::from_utf8(render(&MetricsInput {
            stats: &stats,
            requests: vec![figures],
            uptime_secs: 1.5,
            draining: false,
            recycles: [0, 0, 0, 0, 0, 2, 0, 0],
        }))
        .expect("utf-8");
        for line in [
            "kaiser_worker_requests_total{worker=\"1\"} 3",
            "kaiser_request_duration_seconds_bucket{worker=\"1\",le=\"0.005\"} 2",
            "kaiser_request_duration_seconds_bucket{worker=\"1\",le=\"10\"} 2",
            "kaiser_request_duration_seconds_bucket{worker=\"1\",le=\"+Inf\"} 3",
            "kaiser_request_duration_seconds_sum{worker=\"1\"} 12.5",
            "kaiser_request_duration_seconds_count{worker=\"1\"} 3",
            "kaiser_responses_total{worker=\"1\",code=\"2xx\"} 3",
            "kaiser_workers{state=\"busy\"} 1",
            "kaiser_listen_queue{socket=\"127.0.0.1:1\",proto=\"http\"} 2",
            "kaiser_uptime_seconds 1.5",
            "kaiser_worker_recycles_total{reason=\"chain-reload\"} 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
    }
}
