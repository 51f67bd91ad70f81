//! The Emperor: `kaiser --emperor DIR` governs one vassal per `*.ini` file.
//!
//! It watches directories and globs (inotify through `notify`, debounced, with a periodic
//! rescan as a safety net), spawns each vassal by exec-ing this same binary with
//! `--ini FILE`, follows each vassal's lifecycle from the messages on its channel and its
//! exit, throttles crash loops, and speaks sd_notify to systemd. It never embeds Python and
//! never forks except to exec a vassal.
//!
//! # The contract with a vassal
//! - argv: `[--inherit T]* [--include I]* --ini FILE [--inherit T]* [--include I]*`
//!   (the `-before` variants first); cwd is the vassals directory; stdin is `/dev/null`;
//!   stdout and stderr are one pipe the emperor reads a line at a time and writes as
//!   `[NAME] LINE` on its own stderr, or under journald as an entry with `VASSAL=NAME`
//!   (`vassal_logs.rs`); its own process group; `PR_SET_PDEATHSIG=SIGKILL`.
//! - env: the emperor's, minus `NOTIFY_SOCKET`/`WATCHDOG_*`/`LISTEN_*`, with
//!   `UWSGI_VASSAL_xxx` renamed to `UWSGI_xxx`, plus `KAISER_EMPEROR_FD=<n>`, the vassal's end
//!   of a `SOCK_SEQPACKET` socketpair.
//! - vassal → emperor: sd_notify datagrams (`MAINPID=`, `STATUS=`, `READY=1` once workers
//!   accept, `RELOADING=1` … `READY=1` around a reload, `STOPPING=1`). A reload the vassal
//!   refuses (its `--check-config` of the new file failed) ends with `READY=1` and a
//!   `STATUS=` containing `reload failed`: the old workers still serve.
//! - emperor → vassal: SIGHUP graceful reload, SIGTERM graceful stop, SIGKILL to the process
//!   group after `reload-mercy`; EOF on the channel means the emperor is gone.
//! - exit codes: 0 requested stop, 1 config error (waits for an edit), 22 app import failure,
//!   anything else a crash. Deaths before `READY=1` are throttled (1 s, doubling, capped).
//!
//! Module map: [`monitor`] (what files are vassals, snapshots and diffs), [`debounce`],
//! [`state`] (the per-vassal state machine), [`backoff`], [`spawn`] (the process contract),
//! [`sd_notify`], [`stats`] (uWSGI's emperor-stats JSON), `governor` (the event loop that
//! ties them together and the only part doing I/O beyond spawning; its children hold the
//! vassal record, the filesystem watch, the stats glue and the systemd reports).

mod as_emperor;
pub mod backoff;
pub mod debounce;
mod governor;
mod heartbeat;
pub mod monitor;
mod on_demand;
mod prometheus;
pub mod sd_notify;
pub mod spawn;
pub mod state;
pub mod stats;
mod stats_server;
pub mod vassal_hooks;
mod vassal_logs;

use std::time::Duration;

use crate::config::Config;

/// Errors that stop the emperor itself. A vassal's failure is never one of these.
#[derive(Debug, thiserror::Error)]
pub enum EmperorError {
    #[error("no `emperor` directory or glob given")]
    NoMonitors,
    #[error("cannot start the emperor's event loop")]
    Runtime(#[source] std::io::Error),
    #[error("cannot write `emperor-pidfile` `{}`", .path.display())]
    Pidfile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot find the kaiser executable to run vassals with")]
    CurrentExe(#[source] std::io::Error),
    #[error("cannot listen for `emperor-stats` on `{address}`")]
    Stats {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the fastrouter")]
    Fastrouter(#[source] std::io::Error),
    #[error("cannot handle {signal}")]
    Signal {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// What the emperor takes from [`Config`].
#[derive(Debug, Clone)]
struct Settings {
    monitors: Vec<String>,
    throttle: Duration,
    max_throttle: Duration,
    stats: Option<String>,
    /// `emperor-stats-prometheus`: an address serving `/metrics` over HTTP.
    prometheus: Option<String>,
    /// `emperor-required-heartbeat` (zero: off).
    required_heartbeat: Duration,
    /// `emperor-on-demand-directory` or `-extension`.
    on_demand: Option<on_demand::Source>,
    tyrant: bool,
    /// How long a stopping vassal gets before SIGKILL (`reload-mercy`; 0 means 30 s, as uWSGI).
    mercy: Duration,
    vassal_args: spawn::VassalArgs,
    /// `emperor-nofollow`, `emperor-tyrant-nofollow`, `emperor-extra-extension`.
    scan: monitor::ScanOptions,
    /// `emperor-no-blacklist`: the throttle does not grow.
    no_blacklist: bool,
    /// `emperor-wrapper-override`, the wrapper (or kaiser), `emperor-wrapper-fallback`.
    programs: Vec<std::path::PathBuf>,
    start_hook: Option<String>,
    stop_hook: Option<String>,
    /// The `as-emperor` hook lines (`as_emperor.rs`).
    hooks: Vec<crate::config::hooks::Hook>,
}

impl Settings {
    fn from_config(config: &Config, kaiser: std::path::PathBuf) -> Self {
        let extra = &config.emperor_extra;
        let programs = extra
            .wrapper_override
            .iter()
            .cloned()
            .chain(std::iter::once(extra.wrapper.clone().unwrap_or(kaiser)))
            .chain(extra.wrapper_fallback.iter().cloned())
            .collect();
        Settings {
            monitors: config.emperor.clone(),
            throttle: config.emperor_throttle,
            max_throttle: config.emperor_max_throttle,
            stats: config.emperor_stats.clone(),
            prometheus: config.emperor_stats_prometheus.clone(),
            required_heartbeat: config.emperor_required_heartbeat,
            on_demand: match (
                &config.emperor_on_demand_directory,
                &config.emperor_on_demand_extension,
                &config.emperor_on_demand_exec,
            ) {
                (Some(dir), _, _) => Some(on_demand::Source::Directory(dir.clone())),
                (None, Some(extension), _) => Some(on_demand::Source::Extension(extension.clone())),
                (None, None, Some(command)) => Some(on_demand::Source::Exec(command.clone())),
                (None, None, None) => None,
            },
            tyrant: config.emperor_tyrant,
            mercy: if config.reload_mercy.is_zero() {
                Duration::from_secs(30)
            } else {
                config.reload_mercy
            },
            vassal_args: spawn::VassalArgs {
                inherit_before: config.vassals_inherit_before.clone(),
                include_before: config.vassals_include_before.clone(),
                inherit: config.vassals_inherit.clone(),
                include: config.vassals_include.clone(),
                set: extra.vassals_set.clone(),
                as_vassal: crate::hooks::as_vassal_env(&config.hooks),
            },
            scan: monitor::ScanOptions {
                nofollow: extra.nofollow,
                tyrant_nofollow: extra.tyrant_nofollow,
                extra_extensions: extra.extra_extensions.clone(),
            },
            no_blacklist: extra.no_blacklist,
            programs,
            start_hook: extra.start_hook.clone(),
            stop_hook: extra.stop_hook.clone(),
            hooks: config.hooks.clone(),
        }
    }
}

/// Runs the emperor until it is told to stop (SIGTERM, SIGQUIT, SIGINT) and every vassal is
/// gone. Returns `Ok` on a requested stop, so `main` exits 0.
pub fn run(config: &Config) -> Result<(), EmperorError> {
    if config.emperor.is_empty() {
        return Err(EmperorError::NoMonitors);
    }
    let program = std::env::current_exe().map_err(EmperorError::CurrentExe)?;
    let settings = Settings::from_config(config, program.clone());
    if let Some(path) = &config.emperor_pidfile {
        std::fs::write(path, format!("{}\n", std::process::id())).map_err(|source| {
            EmperorError::Pidfile {
                path: path.clone(),
                source,
            }
        })?;
    }
    // `main` has entered the `emperor` span already.
    tracing::info!(pid = std::process::id(), "starting the kaiser emperor");
    // execve keeps the signal mask: a signal the emperor handles that its starter had
    // blocked would stay pending forever instead of reaching tokio's handlers. (An inherited
    // SIG_IGN needs nothing: installing a handler replaces it.)
    crate::sys::signal::unblock(&crate::sys::signal::SigSet::of(&[
        libc::SIGHUP,
        libc::SIGTERM,
        libc::SIGQUIT,
        libc::SIGINT,
        libc::SIGUSR1,
        libc::SIGCHLD,
    ]))
    .map_err(EmperorError::Runtime)?;
    // A current-thread runtime, driven by this thread for the emperor's whole life: vassals
    // are spawned with PR_SET_PDEATHSIG, which fires when the *thread* that forked them exits,
    // so spawning from a worker thread that a multi-thread runtime may retire would kill
    // healthy vassals.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(EmperorError::Runtime)?;
    // uWSGI runs an emperor config's `fastrouter` beside the emperor; here it shares the
    // emperor's event loop (`vassal/fastrouter/`).
    let router = crate::vassal::fastrouter::GatewaySockets::bind(config)
        .map_err(|e| EmperorError::Fastrouter(std::io::Error::other(e)))?;
    runtime.block_on(async {
        if let Some(sockets) = &router {
            let serving = crate::vassal::fastrouter::start(sockets, &config.fastrouter, &[])
                .map_err(EmperorError::Fastrouter)?;
            tokio::spawn(serving);
        }
        governor::Governor::run(settings).await
    })
}
