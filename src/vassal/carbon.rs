//! uWSGI's Carbon pusher (the `carbon` plugin, `carbon_push_stats`): the instance's figures as
//! Graphite plaintext lines, `ROOT.HOST.ID.NAME VALUE UNIX_TIME`, with uWSGI's names, so
//! existing dashboards keep working. Pure: the master passes in the stats snapshot it also
//! serves as JSON; sending is `master/carbon.rs`'s.
//!
//! Pushed: `requests`, per worker (unless `carbon-no-workers`) `requests`, `avg_rt` (µs),
//! `tx`, `busyness` (% of the period spent in requests), `harakiri`, `respawns`,
//! `exceptions`, and with `memory-report` `rss_size`/`vsz_size`; then the totals `avg_rt`,
//! `tx`, `busyness`, `active_workers`, `busy_workers`, `idle_workers`, `cheaped_workers`
//! (with `cheaper`), `harakiri`, `respawns`, `exceptions` (and `rss_size`/`vsz_size`).

use std::collections::HashMap;
use std::fmt::Write;

use crate::config::{CarbonConfig, IdleAvg};
use crate::vassal::stats::VassalStats;

/// What one push needs to remember for the next: each worker's time in requests, and the
/// request count, for `busyness` and `carbon-idle-avg`.
#[derive(Debug, Default)]
pub struct Sampling {
    running_us: HashMap<u32, u64>,
    last_requests: Option<u64>,
}

/// The names before each figure: `ROOT` + `HOST` + `.` + `ID`.
pub fn prefix(config: &CarbonConfig, hostname: &str, first_socket: &str) -> String {
    let host: String = match config.hostname_dots {
        Some(dot) => hostname.replace('.', &dot.to_string()),
        None => hostname.to_string(),
    };
    let id = config
        .id
        .clone()
        .unwrap_or_else(|| first_socket.replace('.', "_"));
    format!("{}{host}.{id}", config.root)
}

/// The lines of one push at `now` (Unix seconds). `memory`: `memory-report` is on;
/// `cheaper`: the cheaper subsystem runs (for `cheaped_workers`).
pub fn lines(
    stats: &VassalStats,
    config: &CarbonConfig,
    prefix: &str,
    sampling: &mut Sampling,
    now: u64,
    memory: bool,
    cheaper: bool,
) -> String {
    let mut out = String::new();
    let mut put = |name: &str, value: u64| {
        let _ = writeln!(out, "{prefix}.{name} {value} {now}");
    };
    let total_requests: u64 = stats.workers.iter().map(|w| w.snapshot.requests).sum();
    put("requests", total_requests);
    let idle_period = sampling
        .last_requests
        .is_none_or(|last| last == total_requests);
    let period_us = config.freq.as_micros() as u64;
    let (mut rss, mut vsz, mut tx, mut harakiri, mut respawns, mut exceptions) = (0, 0, 0, 0, 0, 0);
    let (mut avg_rt_sum, mut busyness_sum) = (0, 0);
    let (mut active, mut busy, mut idle, mut cheaped) = (0u64, 0u64, 0u64, 0u64);
    for worker in &stats.workers {
        let s = &worker.snapshot;
        tx += s.tx;
        harakiri += s.harakiri_count;
        respawns += s.respawn_count;
        exceptions += s.exceptions;
        let last = sampling
            .running_us
            .insert(worker.id, s.running_time_us)
            .unwrap_or(s.running_time_us);
        let (avg_rt, busyness) = if s.cheap {
            cheaped += 1;
            (0, 0)
        } else {
            active += 1;
            if s.busy() {
                busy += 1;
            } else {
                idle += 1;
            }
            avg_rt_sum += s.avg_rt_us;
            let spent = s.running_time_us.saturating_sub(last);
            let busyness = if spent == 0 && s.busy() {
                100
            } else {
                (spent * 100 / period_us.max(1)).min(100)
            };
            busyness_sum += busyness;
            if memory {
                rss += worker.rss;
                vsz += worker.vsz;
            }
            (s.avg_rt_us, busyness)
        };
        if config.no_workers {
            continue;
        }
        let id = worker.id;
        put(&format!("worker{id}.requests"), s.requests);
        if memory {
            put(&format!("worker{id}.rss_size"), worker.rss);
            put(&format!("worker{id}.vsz_size"), worker.vsz);
        }
        match (config.idle_avg, idle_period) {
            (IdleAvg::None, true) => {}
            (IdleAvg::Zero, true) => put(&format!("worker{id}.avg_rt"), 0),
            _ => put(&format!("worker{id}.avg_rt"), avg_rt),
        }
        put(&format!("worker{id}.tx"), s.tx);
        put(&format!("worker{id}.busyness"), busyness);
        put(&format!("worker{id}.harakiri"), s.harakiri_count);
        put(&format!("worker{id}.respawns"), s.respawn_count);
        put(&format!("worker{id}.exceptions"), s.exceptions);
    }
    if memory {
        put("rss_size", rss);
        put("vsz_size", vsz);
    }
    let avg_rt = avg_rt_sum.checked_div(active).unwrap_or(0);
    match (config.idle_avg, idle_period) {
        (IdleAvg::None, true) => {}
        (IdleAvg::Zero, true) => put("avg_rt", 0),
        _ => put("avg_rt", avg_rt),
    }
    put("tx", tx);
    put("busyness", busyness_sum.checked_div(active).unwrap_or(0));
    put("active_workers", active);
    put("busy_workers", busy);
    put("idle_workers", idle);
    if cheaper {
        put("cheaped_workers", cheaped);
    }
    put("harakiri", harakiri);
    put("respawns", respawns);
    put("exceptions", exceptions);
    sampling.last_requests = Some(total_requests);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vassal::stats::WorkerStats;
    use crate::worker::scoreboard::WorkerSnapshot;
    use std::time::Duration;

    fn worker(id: u32, requests: u64, running_time_us: u64) -> WorkerStats {
        WorkerStats {
            id,
            snapshot: WorkerSnapshot {
                requests,
                running_time_us,
                avg_rt_us: 1500,
                tx: 100 * requests,
                respawn_count: 1,
                ..WorkerSnapshot::default()
            },
            rss: 0,
            vsz: 0,
        }
    }

    #[test]
    fn uwsgi_names_and_totals() {
        let config = CarbonConfig {
            freq: Duration::from_secs(10),
            hostname_dots: Some('_'),
            ..CarbonConfig::default()
        };
        let prefix = prefix(&config, "web1.example.com", "127.0.0.1:3031");
        assert_eq!(prefix, "uwsgi.web1_example_com.127_0_0_1:3031");
        let stats = VassalStats {
            workers: vec![worker(1, 3, 0), worker(2, 1, 0)],
            ..VassalStats::default()
        };
        let mut sampling = Sampling::default();
        lines(&stats, &config, "p", &mut sampling, 7, false, false);
        let stats = VassalStats {
            workers: vec![worker(1, 5, 5_000_000), worker(2, 1, 0)],
            ..VassalStats::default()
        };
        let text = lines(&stats, &config, "p", &mut sampling, 17, false, false);
        for line in [
            "p.requests 6 17",
            "p.worker1.requests 5 17",
            "p.worker1.avg_rt 1500 17",
            "p.worker1.tx 500 17",
            "p.worker1.busyness 50 17",
            "p.worker2.busyness 0 17",
            "p.worker2.respawns 1 17",
            "p.avg_rt 1500 17",
            "p.tx 600 17",
            "p.busyness 25 17",
            "p.active_workers 2 17",
            "p.idle_workers 2 17",
            "p.respawns 2 17",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "`{line}` missing from:\n{text}"
            );
        }
        // No request since: `carbon-idle-avg = none` leaves `avg_rt` out.
        let quiet = CarbonConfig {
            idle_avg: IdleAvg::None,
            no_workers: true,
            ..config
        };
        let text = lines(&stats, &quiet, "p", &mut sampling, 27, false, false);
        assert!(
            !text.contains("avg_rt") && !text.contains("worker1"),
            "{text}"
        );
    }
}
