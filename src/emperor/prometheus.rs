//! The emperor's `/metrics` (`emperor-stats-prometheus`): vassals by state, each vassal's
//! state, readiness, restarts and throttling, in Prometheus' text format. Pure: the governor
//! passes the same snapshot the stats JSON is made of (`stats.rs`), so both agree.

use crate::protocol::prometheus::{Exposition, Kind};

use super::state::State;
use super::stats::EmperorStats;

const STATES: [State; 7] = [
    State::Starting,
    State::Ready,
    State::Reloading,
    State::Stopping,
    State::Failed,
    State::Throttled,
    State::Waiting,
];

pub fn render(stats: &EmperorStats) -> Vec<u8> {
    let mut doc = Exposition::new();
    doc.family(
        "kaiser_emperor_info",
        Kind::Gauge,
        "the version of kaiser running the emperor",
    )
    .sample("kaiser_emperor_info", &[("version", &stats.version)], 1.0);
    doc.family("kaiser_emperor_vassals", Kind::Gauge, "vassals by state");
    for state in STATES {
        let count = stats
            .vassals
            .iter()
            .filter(|v| v.state == state.as_str())
            .count();
        doc.sample(
            "kaiser_emperor_vassals",
            &[("state", state.as_str())],
            count as f64,
        );
    }
    let throttled = stats.vassals.iter().filter(|v| v.failures > 0).count();
    doc.family(
        "kaiser_emperor_throttled_vassals",
        Kind::Gauge,
        "vassals whose recent starts failed, respawned after a growing delay (the stats JSON's blacklist)",
    )
    .sample("kaiser_emperor_throttled_vassals", &[], throttled as f64);

    doc.family(
        "kaiser_emperor_vassal_state",
        Kind::Gauge,
        "1 for the vassal's current state",
    );
    for vassal in &stats.vassals {
        doc.sample(
            "kaiser_emperor_vassal_state",
            &[("vassal", &vassal.id), ("state", vassal.state)],
            1.0,
        );
    }
    let per_vassal = |doc: &mut Exposition,
                      name: &str,
                      kind: Kind,
                      help: &str,
                      value: &dyn Fn(&super::stats::VassalStats) -> f64| {
        doc.family(name, kind, help);
        for vassal in &stats.vassals {
            doc.sample(name, &[("vassal", &vassal.id)], value(vassal));
        }
    };
    per_vassal(
        &mut doc,
        "kaiser_emperor_vassal_ready",
        Kind::Gauge,
        "1 while the vassal's workers accept (READY=1)",
        &|v| f64::from(u8::from(v.ready)),
    );
    per_vassal(
        &mut doc,
        "kaiser_emperor_vassal_restarts_total",
        Kind::Counter,
        "times the vassal was started again (the stats JSON's respawns)",
        &|v| v.respawns as f64,
    );
    per_vassal(
        &mut doc,
        "kaiser_emperor_vassal_failures",
        Kind::Gauge,
        "consecutive failed starts (0: not throttled)",
        &|v| f64::from(v.failures),
    );
    per_vassal(
        &mut doc,
        "kaiser_emperor_vassal_throttle_seconds",
        Kind::Gauge,
        "the delay before the vassal's next start while throttled",
        &|v| {
            if v.failures > 0 {
                v.throttle_ms as f64 / 1e3
            } else {
                0.0
            }
        },
    );
    per_vassal(
        &mut doc,
        "kaiser_emperor_vassal_pid",
        Kind::Gauge,
        "the vassal master's pid (0: not running)",
        &|v| f64::from(v.pid),
    );
    doc.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emperor::stats::VassalStats;

    #[test]
    fn vassals_by_state_and_throttled() {
        let stats = EmperorStats {
            version: "kaiser-test".into(),
            vassals: vec![
                VassalStats {
                    id: "a.ini".into(),
                    state: "ready",
                    ready: true,
                    respawns: 2,
                    pid: 7,
                    ..VassalStats::default()
                },
                VassalStats {
                    id: "b.ini".into(),
                    state: "throttled",
                    failures: 3,
                    throttle_ms: 4000,
                    ..VassalStats::default()
                },
            ],
            ..EmperorStats::default()
        };
        let text = String::from_utf8(render(&stats)).expect("utf-8");
        for line in [
            "kaiser_emperor_vassals{state=\"ready\"} 1",
            "kaiser_emperor_vassals{state=\"throttled\"} 1",
            "kaiser_emperor_vassals{state=\"failed\"} 0",
            "kaiser_emperor_throttled_vassals 1",
            "kaiser_emperor_vassal_state{vassal=\"a.ini\",state=\"ready\"} 1",
            "kaiser_emperor_vassal_restarts_total{vassal=\"a.ini\"} 2",
            "kaiser_emperor_vassal_throttle_seconds{vassal=\"b.ini\"} 4",
            "kaiser_emperor_vassal_ready{vassal=\"b.ini\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
    }
}
