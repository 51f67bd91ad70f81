//! Cycle-by-cycle scripts for each algorithm. A script line is what the scoreboard shows at
//! one cycle (a second apart) and what must happen:
//! - slots, one character per worker id: `B` running and busy the whole cycle, `I` running
//!   and idle, `h` running, idle now but busy for half of the cycle, `s` starting (idle, not
//!   to be stopped), `.` cheap, `x` neither (being stopped);
//! - the listen queue, a FIFO delta sent before the cycle (0 for none), and the worker ids
//!   expected to be spawned and stopped.

use super::*;
use crate::config::BusynessConfig;

type Line = (&'static str, u64, i64, &'static [u32], &'static [u32]);

fn config(algo: CheaperAlgo, count: u32, step: u32, overload: u64) -> CheaperConfig {
    CheaperConfig {
        count,
        step,
        overload,
        algo,
        ..CheaperConfig::default()
    }
}

fn run(config: &CheaperConfig, script: &[Line]) {
    run_with_rss(config, script, &[]);
}

/// `rss`: the total RSS at each line (missing: none reported).
fn run_with_rss(config: &CheaperConfig, script: &[Line], rss: &[u64]) {
    let processes = script[0].0.len() as u32;
    let mut cheaper = Cheaper::new(config, processes, 0);
    let mut busy_us = vec![0u64; processes as usize];
    for (line, &(slots, backlog, manual, spawn, stop)) in script.iter().enumerate() {
        let views = slots
            .chars()
            .zip(busy_us.iter_mut())
            .map(|(c, busy_us)| {
                let (state, busy, add) = match c {
                    'B' => (SlotState::Active, true, 1_000_000),
                    'I' => (SlotState::Active, false, 0),
                    'h' => (SlotState::Active, false, 500_000),
                    's' => (SlotState::Active, false, 0),
                    '.' => (SlotState::Cheap, false, 0),
                    'x' => (SlotState::Other, false, 0),
                    other => panic!("unknown slot character {other:?}"),
                };
                *busy_us += add;
                SlotView {
                    state,
                    busy,
                    stoppable: state == SlotState::Active && c != 's',
                    busy_us: *busy_us,
                }
            })
            .collect();
        if manual != 0 {
            cheaper.manual(manual);
        }
        let seen = Observation {
            now_us: (line as u64 + 1) * 1_000_000,
            slots: views,
            backlog,
            rss: rss.get(line).copied(),
        };
        let decision = cheaper.cycle(&seen);
        assert_eq!(
            (decision.spawn.as_slice(), decision.stop.as_slice()),
            (spawn, stop),
            "{} line {} ({slots}, backlog {backlog}, fifo {manual}): expected spawn {spawn:?} stop {stop:?}, got {decision:?}",
            config.algo.name(),
            line + 1
        );
    }
}

#[test]
fn spare_adds_after_overload_cycles_all_busy_and_removes_every_overload_idle_cycles() {
    run(
        &config(CheaperAlgo::Spare, 1, 1, 3),
        &[
            ("I...", 0, 0, &[], &[]), // one spare worker: stable
            ("I...", 0, 0, &[], &[]),
            ("B...", 0, 0, &[], &[]), // overloaded 1 cycle
            ("B...", 0, 0, &[], &[]),
            ("B...", 0, 0, &[2], &[]), // 3 cycles: one more
            ("BI..", 0, 0, &[], &[]),  // one spare again: stable
            ("BB..", 0, 0, &[], &[]),
            ("BB..", 0, 0, &[], &[]),
            ("BB..", 0, 0, &[3], &[]),
            ("III.", 0, 0, &[], &[]), // two spare: idle cycle 1
            ("III.", 0, 0, &[], &[]),
            ("III.", 0, 0, &[], &[3]), // every 3 idle cycles, the highest idle goes
            ("IIx.", 0, 0, &[], &[]),
            ("II..", 0, 0, &[], &[]), // stable: one spare
            ("I...", 0, 0, &[], &[]),
        ],
    );
}

#[test]
fn spare_steps_several_and_a_single_idle_worker_resets_the_overload() {
    run(
        &config(CheaperAlgo::Spare, 2, 3, 2),
        &[
            ("BB....", 0, 0, &[], &[]),
            ("BI....", 0, 0, &[], &[]), // overload count back to 0
            ("BB....", 0, 0, &[], &[]),
            ("BB....", 0, 0, &[3, 4, 5], &[]),
            ("BBBBB.", 0, 0, &[], &[]),
            ("BBBBB.", 0, 0, &[6], &[]), // only one cheap slot left
            ("BBBBBB", 0, 0, &[], &[]),
            ("BBBBBB", 0, 0, &[], &[]), // at processes: nothing to spawn
            ("IIIIII", 0, 0, &[], &[]),
            ("IIIIII", 0, 0, &[], &[6]), // every 2 idle cycles
            ("IIIIIx", 0, 0, &[], &[]),
            ("IIIII.", 0, 0, &[], &[5]),
        ],
    );
}

#[test]
fn spare_never_stops_below_cheaper() {
    run(
        &config(CheaperAlgo::Spare, 2, 1, 1),
        &[
            ("II..", 0, 0, &[], &[]),
            ("II..", 0, 0, &[], &[]),
            ("II..", 0, 0, &[], &[]),
        ],
    );
}

#[test]
fn spare2_keeps_cheaper_idle_workers() {
    let mut spare2 = config(CheaperAlgo::Spare2, 2, 2, 3);
    spare2.idle = 3;
    run(
        &spare2,
        &[
            ("II....", 0, 0, &[], &[]),
            ("BB....", 0, 0, &[3, 4], &[]), // no idle worker: two more (step 2)
            ("BBBI..", 0, 0, &[5], &[]),    // one idle: one more
            ("BBBII.", 0, 0, &[], &[]),
            ("IIIII.", 0, 0, &[], &[]), // 5 idle: idle cycle 1
            ("IIIII.", 0, 0, &[], &[]),
            ("IIIII.", 0, 0, &[], &[5]),
            ("IIIIx.", 0, 0, &[], &[]),
            ("BIII..", 0, 0, &[], &[]),
            ("BIII..", 0, 0, &[], &[4]),
            ("BIIx..", 0, 0, &[], &[]),
        ],
    );
}

#[test]
fn backlog_adds_while_the_queue_is_long_and_removes_while_short() {
    run(
        &config(CheaperAlgo::Backlog, 1, 2, 2),
        &[
            ("B...", 0, 0, &[], &[]),
            ("B...", 5, 0, &[2, 3], &[]), // within the cycle of the burst
            ("BBB.", 3, 0, &[4], &[]),
            ("BBBB", 9, 0, &[], &[]), // at processes
            ("BBBB", 2, 0, &[], &[]), // at the threshold: no change
            ("BIIB", 0, 0, &[], &[3]),
            ("BIxB", 0, 0, &[], &[2]),
            ("Bx.B", 0, 0, &[], &[]), // no idle worker: nothing stopped
            ("B.sB", 0, 0, &[], &[]), // nor one still starting
            ("I..B", 0, 0, &[], &[1]),
            ("x..I", 0, 0, &[], &[]), // at cheaper
        ],
    );
}

#[test]
fn manual_follows_the_fifo_within_bounds() {
    run(
        &config(CheaperAlgo::Manual, 1, 1, 3),
        &[
            ("I..", 0, 0, &[], &[]),
            ("B..", 9, 0, &[], &[]), // the algorithm never acts
            ("I..", 0, 1, &[2], &[]),
            ("II.", 0, 2, &[3], &[]), // one cheap slot left
            ("III", 0, 1, &[], &[]),  // at processes
            ("IBB", 0, -1, &[], &[1]),
            ("xBB", 0, 0, &[], &[]),
            ("BBB", 0, -1, &[], &[3]), // every worker busy: the highest finishes and goes
            ("BBx", 0, 0, &[], &[]),
            ("BI.", 0, -1, &[], &[2]),
            ("Bx.", 0, -1, &[], &[]), // at cheaper: refused
            ("I..", 0, 0, &[], &[]),  // and not remembered
        ],
    );
}

#[test]
fn the_fifo_overrides_the_algorithm_for_one_cycle() {
    run(
        &config(CheaperAlgo::Spare, 1, 1, 1),
        &[
            ("II", 0, -1, &[], &[2]),
            ("Ix", 0, 1, &[], &[]), // the stopping slot cannot be spawned yet
            ("I.", 0, 1, &[2], &[]),
        ],
    );
}

fn busyness(multiplier: u64, backlog_alert: u64) -> CheaperConfig {
    CheaperConfig {
        busyness: BusynessConfig {
            multiplier,
            backlog_alert,
            backlog_nonzero: std::time::Duration::from_secs(3),
            ..BusynessConfig::default()
        },
        ..config(CheaperAlgo::Busyness, 1, 1, 1)
    }
}

#[test]
fn busyness_spawns_above_max_and_stops_below_min_after_the_multiplier() {
    run(
        &busyness(3, 33),
        &[
            ("B...", 0, 0, &[2], &[]), // 100% > 50%
            ("BB..", 0, 0, &[3], &[]),
            // 33%: between min and max, which pushes the cheap timer (due at 5 s) by a cycle.
            ("hhI.", 0, 0, &[], &[]),
            ("III.", 0, 0, &[], &[]), // 0%, but the timer has not expired
            ("III.", 0, 0, &[], &[]),
            ("III.", 0, 0, &[], &[3]), // 6 s
            ("IIx.", 0, 0, &[], &[]),
            ("II..", 0, 0, &[], &[]),
            ("II..", 0, 0, &[], &[2]), // the timer again (3 cycles)
            ("I...", 0, 0, &[], &[]),  // a single worker: nothing to do
        ],
    );
}

#[test]
fn busyness_counts_a_request_in_flight_for_the_time_it_took() {
    // `B` with no request finishing still adds busy time: 100%.
    run(
        &busyness(3, 33),
        &[("BI..", 0, 0, &[], &[]), ("BB..", 0, 0, &[3], &[])],
    );
}

#[test]
fn busyness_spawns_emergency_workers_when_the_queue_fills() {
    let mut config = busyness(3, 4);
    config.busyness.backlog_step = 2;
    run(
        &config,
        &[
            ("hI....", 0, 0, &[], &[]),     // 25%: not below min
            ("II....", 9, 0, &[3, 4], &[]), // 0% but 9 waiting > 4
            ("IIII..", 5, 0, &[5, 6], &[]),
            ("IIIIII", 9, 0, &[], &[]), // at processes
            ("IIIIII", 0, 0, &[], &[]),
            // With emergency workers running the timer is overload × backlog-multiplier.
            ("IIIIII", 0, 0, &[], &[6]),
            ("IIIIIx", 0, 0, &[], &[]),
        ],
    );
}

#[test]
fn busyness_spawns_when_the_queue_stays_non_empty() {
    run(
        &busyness(3, 33),
        &[
            ("hI..", 1, 0, &[], &[]), // the queue starts filling
            ("hI..", 1, 0, &[], &[]),
            ("hI..", 1, 0, &[], &[]),
            ("hI..", 1, 0, &[3], &[]), // non-empty for 3 s
            ("hII.", 0, 0, &[], &[]),
            ("hII.", 1, 0, &[], &[]), // the timer starts over
        ],
    );
    // Measured every 2 cycles.
    let mut slow = busyness(3, 33);
    slow.overload = 2;
    run(
        &slow,
        &[
            ("hI..", 1, 0, &[], &[]), // the queue starts filling
            ("hI..", 1, 0, &[], &[]), // measured: 25%
            ("hI..", 1, 0, &[], &[]),
            ("hI..", 1, 0, &[3], &[]), // measured, and non-empty for 3 s
        ],
    );
}

#[test]
fn busyness_raises_the_multiplier_when_a_stopped_worker_is_needed_back() {
    let config = busyness(2, 33);
    let mut cheaper = Cheaper::new(&config, 3, 0);
    let view = |states: &str, busy_us: &[u64]| -> Vec<SlotView> {
        states
            .chars()
            .zip(busy_us)
            .map(|(c, &busy_us)| SlotView {
                state: match c {
                    '.' => SlotState::Cheap,
                    _ => SlotState::Active,
                },
                busy: c == 'B',
                stoppable: c != '.',
                busy_us,
            })
            .collect()
    };
    let at = |secs: u64, slots: Vec<SlotView>| Observation {
        now_us: secs * 1_000_000,
        slots,
        backlog: 0,
        rss: None,
    };
    // Idle until the timer (2 cycles) lets one go at 2 s.
    assert!(cheaper
        .cycle(&at(1, view("II.", &[0, 0, 0])))
        .stop
        .is_empty());
    assert_eq!(cheaper.cycle(&at(2, view("II.", &[0, 0, 0]))).stop, [2]);
    // Needed back 1 s later: the multiplier grows by the penalty (2).
    let back = cheaper.cycle(&at(3, view("B..", &[1_000_000, 0, 0])));
    assert_eq!(back.spawn, [2]);
    assert!(
        back.note
            .as_deref()
            .is_some_and(|n| n.contains("raised to 4")),
        "{back:?}"
    );
    // Now stopping waits 4 cycles.
    for secs in 4..7 {
        let decision = cheaper.cycle(&at(secs, view("II.", &[1_000_000, 0, 0])));
        assert!(decision.stop.is_empty(), "at {secs} s: {decision:?}");
    }
    assert_eq!(
        cheaper.cycle(&at(7, view("II.", &[1_000_000, 0, 0]))).stop,
        [2]
    );
}

#[test]
fn rss_limits_hold_spawns_and_stop_one_worker() {
    let mut config = config(CheaperAlgo::Backlog, 1, 1, 0);
    config.rss_limit_soft = 100 << 20;
    config.rss_limit_hard = 200 << 20;
    run_with_rss(
        &config,
        &[
            ("B...", 5, 0, &[2], &[]), // below the soft limit
            ("BB..", 5, 0, &[], &[]),  // above the soft limit: no spawn
            ("BB..", 5, 1, &[], &[]),  // not even from the fifo
            ("BI..", 5, 0, &[], &[2]), // above the hard limit: one goes
            ("Bx..", 5, 0, &[], &[]),  // a single worker is never stopped for it
        ],
        &[50 << 20, 150 << 20, 150 << 20, 250 << 20, 250 << 20],
    );
    let mut cheaper = Cheaper::new(&config, 2, 0);
    let held = cheaper.cycle(&Observation {
        now_us: 1_000_000,
        slots: vec![
            SlotView {
                state: SlotState::Active,
                busy: true,
                stoppable: true,
                busy_us: 0,
            },
            SlotView {
                state: SlotState::Cheap,
                busy: false,
                stoppable: false,
                busy_us: 0,
            },
        ],
        backlog: 5,
        rss: Some(150 << 20),
    });
    assert!(held.spawn.is_empty(), "{held:?}");
    assert_eq!(
        held.note.as_deref(),
        Some("workers' total RSS 150 MB is above cheaper-rss-limit-soft (100 MB), not spawning"),
        "{held:?}"
    );
}

#[test]
fn decisions_say_what_was_done() {
    let decision = Decision {
        algorithm: "spare",
        saw: String::new(),
        spawn: vec![3, 4],
        stop: vec![],
        note: None,
    };
    assert_eq!(decision.did(), "spawning workers 3, 4");
    let decision = Decision {
        stop: vec![8],
        spawn: vec![],
        note: Some("not below cheaper = 2 workers".into()),
        ..decision
    };
    assert_eq!(
        decision.did(),
        "stopping worker 8; not below cheaper = 2 workers"
    );
}
