//! The cheaper subsystem's options (`cheaper`, `cheaper-*`, `cheaper-busyness-*`): their typed
//! form, their values, the checks that need several of them at once, and their lines in
//! `--show-config`.
//!
//! The checks follow uWSGI's `core/init.c:sanitize_args`: `cheaper` must be below
//! `processes` (uWSGI exits with `invalid cheaper value: must be lower than processes`),
//! `cheaper-initial` is clamped into `[cheaper, processes]` with a warning, and the RSS limits
//! must be ordered. Where uWSGI silently does something surprising, kaiser says so instead: an
//! unknown `cheaper-algo` is an error (uWSGI falls back to `spare`), and `cheaper-*` options
//! without `cheaper` get a warning (uWSGI ignores them). kaiser always reads workers' RSS from
//! /proc, so the RSS limits do not need `memory-report` as they do in uWSGI.
//!
//! This module decides nothing at run time; `vassal::cheaper` does.

use std::time::Duration;

use super::diagnostics::{Origin, Report};
use super::options;
use super::sources::Entry;
use super::Config;

/// The algorithm that decides how many workers run (`cheaper-algo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CheaperAlgo {
    /// uWSGI's default: one more worker after `cheaper-overload` cycles with every worker
    /// busy, one fewer every `cheaper-overload` cycles with more than one idle.
    #[default]
    Spare,
    /// Keep `cheaper` idle workers ready; one fewer after `cheaper-idle` cycles with more.
    Spare2,
    /// One more worker while the listen queue holds more than `cheaper-overload`
    /// connections, one fewer while it holds fewer.
    Backlog,
    /// The share of time the workers spend in requests, between `cheaper-busyness-min`
    /// and `-max`, with emergency workers when the listen queue fills.
    Busyness,
    /// Only the master FIFO's `+` and `-` change the count.
    Manual,
}

impl CheaperAlgo {
    /// Every algorithm, in the order `cheaper-algo-list` prints them (uWSGI's registration
    /// order, the busyness plugin last).
    pub const ALL: [CheaperAlgo; 5] = [
        CheaperAlgo::Spare,
        CheaperAlgo::Spare2,
        CheaperAlgo::Backlog,
        CheaperAlgo::Manual,
        CheaperAlgo::Busyness,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CheaperAlgo::Spare => "spare",
            CheaperAlgo::Spare2 => "spare2",
            CheaperAlgo::Backlog => "backlog",
            CheaperAlgo::Busyness => "busyness",
            CheaperAlgo::Manual => "manual",
        }
    }

    fn parse(value: &str) -> Result<CheaperAlgo, String> {
        CheaperAlgo::ALL
            .into_iter()
            .find(|algo| algo.name() == value)
            .ok_or_else(|| {
                let names: Vec<String> = CheaperAlgo::ALL
                    .iter()
                    .map(|a| format!("`{}`", a.name()))
                    .collect();
                format!(
                    "unknown cheaper algorithm `{value}` (kaiser has {})",
                    names.join(", ")
                )
            })
    }
}

/// `cheaper-busyness-*` (uWSGI's `plugins/cheaper_busyness`), with its defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct BusynessConfig {
    /// Percent; above it workers are spawned.
    pub max: u64,
    /// Percent; below it workers are stopped once the cheap timer expires.
    pub min: u64,
    /// Cycles of low busyness before a worker is stopped (times `cheaper-overload`).
    pub multiplier: u64,
    /// Added to the multiplier when a stopped worker had to be spawned back too soon.
    pub penalty: u64,
    /// Connections waiting in the listen queue that trigger emergency workers.
    pub backlog_alert: u64,
    /// The shorter multiplier used while emergency workers run.
    pub backlog_multiplier: u64,
    /// Emergency workers spawned at a time.
    pub backlog_step: u32,
    /// A listen queue that stays non-empty this long also triggers an emergency worker.
    pub backlog_nonzero: Duration,
    pub verbose: bool,
}

impl Default for BusynessConfig {
    fn default() -> Self {
        BusynessConfig {
            max: 50,
            min: 25,
            multiplier: 10,
            penalty: 2,
            backlog_alert: 33,
            backlog_multiplier: 3,
            backlog_step: 1,
            backlog_nonzero: Duration::from_secs(60),
            verbose: false,
        }
    }
}

/// The cheaper subsystem's settings. `count == 0` means it is off.
#[derive(Debug, Clone, PartialEq)]
pub struct CheaperConfig {
    /// `cheaper`: the fewest workers that run (0: off, all `processes` run).
    pub count: u32,
    /// `cheaper-initial`: workers started first; 0 means `count`. After loading it is
    /// within `[count, processes]`.
    pub initial: u32,
    /// `cheaper-step`: workers spawned at a time (0 behaves as 1, as in uWSGI).
    pub step: u32,
    /// `cheaper-overload`: cycles (seconds) for spare and busyness, queued connections for
    /// backlog.
    pub overload: u64,
    pub algo: CheaperAlgo,
    /// `cheaper-idle`: spare2's idle cycles before one worker is stopped.
    pub idle: u64,
    /// Bytes, total over the running workers; 0 is off.
    pub rss_limit_soft: u64,
    pub rss_limit_hard: u64,
    pub busyness: BusynessConfig,
}

impl Default for CheaperConfig {
    fn default() -> Self {
        CheaperConfig {
            count: 0,
            initial: 0,
            step: 0,
            overload: 3,
            algo: CheaperAlgo::Spare,
            idle: 10,
            rss_limit_soft: 0,
            rss_limit_hard: 0,
            busyness: BusynessConfig::default(),
        }
    }
}

impl CheaperConfig {
    pub fn enabled(&self) -> bool {
        self.count > 0
    }

    /// Workers started at once (and after `idle`'s cheap mode): `cheaper-initial`, else
    /// `cheaper`; every worker when cheaper is off.
    pub fn initial_workers(&self, processes: u32) -> u32 {
        if !self.enabled() {
            return processes;
        }
        self.initial.max(self.count).min(processes)
    }

    /// `cheaper-step`, with 0 read as 1.
    pub fn step(&self) -> u32 {
        self.step.max(1)
    }
}

/// Whether `name` (canonical) is one of this module's options.
pub(crate) fn owns(name: &str) -> bool {
    name == "cheaper" || name.starts_with("cheaper-")
}

/// Sets one cheaper option (canonical `name`) from `value`.
pub(crate) fn apply(config: &mut CheaperConfig, name: &str, value: &str) -> Result<(), String> {
    let number = |v: &str| -> Result<u64, String> {
        v.parse::<u64>()
            .map_err(|_| format!("expected a whole number, got `{v}`"))
    };
    let small = |v: &str| -> Result<u32, String> {
        u32::try_from(number(v)?).map_err(|_| format!("`{v}` is too large"))
    };
    let busyness = &mut config.busyness;
    match name {
        "cheaper" => config.count = small(value)?,
        "cheaper-initial" => config.initial = small(value)?,
        "cheaper-step" => config.step = small(value)?,
        "cheaper-overload" => config.overload = number(value)?,
        "cheaper-algo" => config.algo = CheaperAlgo::parse(value)?,
        "cheaper-idle" => config.idle = number(value)?,
        "cheaper-rss-limit-soft" => config.rss_limit_soft = number(value)?,
        "cheaper-rss-limit-hard" => config.rss_limit_hard = number(value)?,
        "cheaper-busyness-max" => busyness.max = number(value)?,
        "cheaper-busyness-min" => busyness.min = number(value)?,
        "cheaper-busyness-multiplier" => busyness.multiplier = number(value)?,
        "cheaper-busyness-penalty" => busyness.penalty = number(value)?,
        "cheaper-busyness-backlog-alert" => busyness.backlog_alert = number(value)?,
        "cheaper-busyness-backlog-multiplier" => busyness.backlog_multiplier = number(value)?,
        "cheaper-busyness-backlog-step" => busyness.backlog_step = small(value)?,
        "cheaper-busyness-backlog-nonzero" => {
            busyness.backlog_nonzero = Duration::from_secs(number(value)?)
        }
        "cheaper-busyness-verbose" => busyness.verbose = super::typed::uwsgi_bool(value),
        other => return Err(format!("`{other}` is not a cheaper option (a bug)")),
    }
    Ok(())
}

/// The checks over several options, once every entry is applied. Errors and warnings
/// point at the line that set the option concerned.
pub(crate) fn check(config: &mut Config, entries: &[Entry], report: &mut Report) {
    let origin_of = |name: &str| -> Origin {
        entries
            .iter()
            .rev()
            .find(|e| !e.placeholder_only && options::find(&e.key).is_some_and(|s| s.name == name))
            .map_or(Origin::Whole, |e| e.origin.clone())
    };
    let key_of = |name: &str| -> String {
        entries
            .iter()
            .rev()
            .find(|e| !e.placeholder_only && options::find(&e.key).is_some_and(|s| s.name == name))
            .map_or_else(|| name.to_string(), |e| e.key.clone())
    };
    let processes = config.processes;
    let cheaper = &mut config.cheaper;
    if !cheaper.enabled() {
        let stray = entries.iter().find(|e| {
            !e.placeholder_only
                && options::find(&e.key).is_some_and(|s| s.name.starts_with("cheaper-"))
                && options::find(&e.key).is_some_and(|s| s.name != "cheaper-algo-list")
        });
        if let Some(entry) = stray {
            report.warn(
                &entry.origin,
                &entry.key,
                "has no effect without `cheaper` (the minimum number of workers); all `processes` run",
            );
        }
        return;
    }
    if cheaper.count >= processes {
        let suggestion = processes.saturating_sub(1).max(1);
        let fix = if processes > 1 {
            format!(
                "set `cheaper` to at most {suggestion} or raise `processes` above {}",
                cheaper.count
            )
        } else {
            format!(
                "raise `processes` above {} (the maximum number of workers), or remove `cheaper`",
                cheaper.count
            )
        };
        report.error(
            &origin_of("cheaper"),
            &key_of("cheaper"),
            format!(
                "`cheaper = {}` must be lower than `processes = {processes}`: `cheaper` is the minimum number of workers and `processes` the maximum (uWSGI refuses this too: `invalid cheaper value: must be lower than processes`); {fix}",
                cheaper.count
            ),
        );
        return;
    }
    if cheaper.initial != 0 && cheaper.initial < cheaper.count {
        report.warn(
            &origin_of("cheaper-initial"),
            &key_of("cheaper-initial"),
            format!(
                "`cheaper-initial = {}` is below `cheaper = {}`; starting {} workers",
                cheaper.initial, cheaper.count, cheaper.count
            ),
        );
        cheaper.initial = cheaper.count;
    } else if cheaper.initial > processes {
        report.warn(
            &origin_of("cheaper-initial"),
            &key_of("cheaper-initial"),
            format!(
                "`cheaper-initial = {}` is above `processes = {processes}`; starting {processes} workers",
                cheaper.initial
            ),
        );
        cheaper.initial = processes;
    }
    if cheaper.rss_limit_hard != 0 && cheaper.rss_limit_soft == 0 {
        report.error(
            &origin_of("cheaper-rss-limit-hard"),
            &key_of("cheaper-rss-limit-hard"),
            "needs `cheaper-rss-limit-soft` too (above it no worker is spawned; above the hard limit one is stopped)",
        );
    } else if cheaper.rss_limit_hard != 0 && cheaper.rss_limit_hard <= cheaper.rss_limit_soft {
        report.error(
            &origin_of("cheaper-rss-limit-hard"),
            &key_of("cheaper-rss-limit-hard"),
            format!(
                "must be higher than `cheaper-rss-limit-soft = {}` (both are bytes)",
                cheaper.rss_limit_soft
            ),
        );
    }
    if cheaper.algo == CheaperAlgo::Busyness && cheaper.busyness.min > cheaper.busyness.max {
        report.error(
            &origin_of("cheaper-busyness-min"),
            &key_of("cheaper-busyness-min"),
            format!(
                "`cheaper-busyness-min = {}` is above `cheaper-busyness-max = {}`: workers would be spawned and stopped in turn",
                cheaper.busyness.min, cheaper.busyness.max
            ),
        );
    }
}

/// The `--show-config` lines of the options that differ from their defaults.
pub(crate) fn show(cheaper: &CheaperConfig, line: &mut dyn FnMut(&str, &str)) {
    let default = CheaperConfig::default();
    let (b, d) = (&cheaper.busyness, &default.busyness);
    let numbers: [(&str, u64, u64); 15] = [
        ("cheaper", cheaper.count.into(), default.count.into()),
        (
            "cheaper-initial",
            cheaper.initial.into(),
            default.initial.into(),
        ),
        ("cheaper-step", cheaper.step.into(), default.step.into()),
        ("cheaper-overload", cheaper.overload, default.overload),
        ("cheaper-idle", cheaper.idle, default.idle),
        (
            "cheaper-rss-limit-soft",
            cheaper.rss_limit_soft,
            default.rss_limit_soft,
        ),
        (
            "cheaper-rss-limit-hard",
            cheaper.rss_limit_hard,
            default.rss_limit_hard,
        ),
        ("cheaper-busyness-max", b.max, d.max),
        ("cheaper-busyness-min", b.min, d.min),
        ("cheaper-busyness-multiplier", b.multiplier, d.multiplier),
        ("cheaper-busyness-penalty", b.penalty, d.penalty),
        (
            "cheaper-busyness-backlog-alert",
            b.backlog_alert,
            d.backlog_alert,
        ),
        (
            "cheaper-busyness-backlog-multiplier",
            b.backlog_multiplier,
            d.backlog_multiplier,
        ),
        (
            "cheaper-busyness-backlog-step",
            b.backlog_step.into(),
            d.backlog_step.into(),
        ),
        (
            "cheaper-busyness-backlog-nonzero",
            b.backlog_nonzero.as_secs(),
            d.backlog_nonzero.as_secs(),
        ),
    ];
    if cheaper.algo != default.algo {
        line("cheaper-algo", cheaper.algo.name());
    }
    for (key, value, default) in numbers {
        if value != default {
            line(key, &value.to_string());
        }
    }
    if b.verbose {
        line("cheaper-busyness-verbose", "true");
    }
}
