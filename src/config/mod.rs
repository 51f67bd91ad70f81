//! Configuration: uWSGI's INI dialect, command-line flags and `UWSGI_*` environment
//! variables, turned into one typed, validated [`Config`].
//!
//! The pipeline has separate stages: raw sources → ordered entries (with file and line) →
//! expanded entries (`%d`, `%(key)`, `$(ENV)`, `@(file)`) → typed config. This module reads
//! config files but does no other I/O: no sockets, no processes, no Python. Facts about the
//! machine that expansion needs (cwd, hostname, uid, …) come in through [`Context`], so every
//! stage can be tested with fixed inputs.
//!
//! CONTRACT (other modules build on this surface; extend it, do not break it):
//! - [`load`] takes argv (without argv[0]) and the environment and returns [`Loaded`].
//! - [`Config`] fields below are what the vassal, worker and emperor read.
//!
//! Where the stages live:
//! - `cli.rs`: argv to entries (long and short forms, bare config files);
//! - `ini.rs`: the uWSGI INI dialect (repeated keys, no inline comments);
//! - `formats/`: uWSGI's YAML subset, JSON and XML, read into the same lines as INI;
//! - `alarms.rs`, `carbon.rs`: the alarm subsystem's and the Carbon pusher's options;
//! - `fastrouter.rs`: the fastrouter's options;
//! - `expand.rs`: magic variables, `$(ENV)`, `@(file)`, `%(placeholder)` with arithmetic;
//! - `logic.rs`: `if-*` … `endif` and `for*` … `endfor` blocks;
//! - `numbers.rs`: numeric values read as uWSGI's `atoi` reads them, with warnings;
//! - `sources.rs`: env → argv → files in uWSGI's order, `include` in place, `inherit` last;
//! - `options.rs`: the one option table, `--help` and the README table;
//! - `typed.rs`: entries to [`Config`], statuses, strict mode, unknown keys;
//! - `hints.rs`: the blog-post mistakes; `diagnostics.rs`: origins and messages;
//! - `show.rs`: `--show-config` and `--print-config`;
//! - `extra.rs`: the Python loading, process and HTTP options of issue 15, typed and shown;
//! - `zergpool.rs`: `zergpool` values.
//!
//! Deliberate differences from uWSGI 2.0 (each also noted where it is implemented): values
//! that uWSGI would misread are errors, not silent surprises (an inline comment that changes
//! the value, `key==value`, a non-numeric number, two sockets on one address); an unknown key
//! that no `%(…)` uses is a warning; a known uWSGI option kaiser does not implement is an
//! error; unique prefixes of long options are not accepted.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

mod alarms;
mod cache;
mod carbon;
mod cheaper;
mod cli;
mod cron;
pub mod daemons;
mod diagnostics;
mod emperor_extra;
mod expand;
mod extra;
mod fastrouter;
mod formats;
pub(crate) use formats::Format;
mod hints;
pub mod hooks;
mod ini;
pub mod jail;
mod logging;
mod logic;
mod numbers;
mod options;
mod pcre;
mod raw;
mod schemes;
mod shared_sockets;
mod show;
mod sources;
mod statics;
pub mod subscriptions;
mod typed;
mod values;
mod zergpool;

pub use cheaper::{BusynessConfig, CheaperAlgo, CheaperConfig};
pub use logging::{LogOptions, LoggerSpec, LoggerTarget, Pattern, Route};

pub use alarms::{AlarmAction, AlarmConfig, AlarmFd, AlarmSpec, LogAlarm};
pub use cache::CacheSpec;
pub use carbon::{CarbonConfig, IdleAvg};
pub use cron::CronCommand;
pub use diagnostics::{Diagnostic, LoadConfigError, Origin};
pub use emperor_extra::EmperorExtra;
pub use extra::Extra;
pub use fastrouter::FastrouterConfig;
pub use statics::{ExpiresOn, ExpiresRule, FileServeMode, StaticConfig, StaticMap, StaticMapKind};
pub use zergpool::ZergPool;

/// Facts about the running process that magic variables need (`%v %h %k %u %g %t %b`).
#[derive(Debug, Clone)]
pub struct Context {
    pub cwd: PathBuf,
    pub hostname: String,
    pub uid: u32,
    pub user: String,
    pub gid: u32,
    pub group: String,
    pub cpu_count: u32,
    pub binary: PathBuf,
    pub now_unix: u64,
    pub now_micros: u64,
    /// This start is a reload (the master re-executed itself), for `if-reload`.
    pub is_reload: bool,
}

/// What the command line asks kaiser to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run: an emperor when `emperor` is set, otherwise a vassal master.
    Run,
    Help,
    Version,
    /// `--check-config`: parse, validate, import the app, exit 0 or 1.
    CheckConfig,
    /// `--print-config`: print the effective options as an INI and exit.
    PrintConfig,
    /// `--reload PIDFILE`: send SIGHUP to the pid in the file.
    Reload(PathBuf),
    /// `--stop PIDFILE`: send SIGTERM (graceful) to the pid in the file.
    Stop(PathBuf),
    /// `--cheaper-algo-list`: print the cheaper algorithms' names and exit.
    CheaperAlgoList,
    /// `--pause PIDFILE` (`suspend`, `resume`): send SIGTSTP, which toggles the pause.
    Pause(PathBuf),
    /// `--get KEY`: print each key's first value and exit.
    Get(Vec<String>),
    /// `--dump-options`: print every option name and alias and exit.
    DumpOptions,
}

/// A listening address as written in the config; resolved and bound by the vassal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `host:port`, `:port` (host empty → all IPv4 addresses), `[::1]:port`.
    Tcp { host: String, port: u16 },
    /// A filesystem path.
    Unix(PathBuf),
    /// `@name`: a Linux abstract unix socket (the name without the `@`).
    Abstract(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `socket` / `uwsgi-socket`: the uwsgi binary protocol (nginx `uwsgi_pass`).
    Uwsgi,
    /// `http-socket` / `http`: HTTP/1.1 parsed by the workers themselves.
    Http,
    /// `scgi-socket` / `scgi-nph-socket` (`nph`: an HTTP status line instead of `Status:`).
    Scgi { nph: bool },
    /// `puwsgi-socket`: uwsgi packets, several requests one after another on a connection.
    Puwsgi,
    /// `raw-socket`: no protocol; each connection is handed to the `python-raw` handler.
    Raw,
    /// `fastcgi-socket` / `fastcgi-nph-socket` (nginx `fastcgi_pass`; `nph`: an HTTP status
    /// line instead of `Status:`).
    FastCgi { nph: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSpec {
    pub protocol: Protocol,
    pub address: Address,
    /// The option it came from (`socket`, `http-socket`, `http`, …) for messages.
    pub option: String,
}

/// The typed, validated configuration of one kaiser process.
///
/// `module` never contains `:callable`: `module = pkg.mod:app` is split into `module` and
/// `callable` while loading.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub action: Action,
    /// Config files read, in order (for `%` expansion and messages).
    pub files: Vec<PathBuf>,
    /// The vassal name used in logs: the first ini file's stem, else `kaiser`.
    pub name: String,
    pub strict: bool,
    /// `show-config`: log the effective options at start, then run (as uWSGI).
    pub show_config: bool,

    // --- application ---
    pub wsgi_file: Option<PathBuf>,
    /// `python-raw`: the file whose callable serves `raw-socket` connections.
    pub python_raw: Option<PathBuf>,
    pub module: Option<String>,
    pub callable: String,
    pub chdir: Option<PathBuf>,
    pub pythonpath: Vec<PathBuf>,
    /// `home` / `virtualenv` / `venv` / `pyhome`.
    pub home: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub need_app: bool,
    pub lazy_apps: bool,

    // --- processes ---
    pub processes: u32,
    pub threads: u32,
    pub worker_reload_mercy: Duration,
    pub reload_mercy: Duration,
    pub pidfile: Option<PathBuf>,
    pub vacuum: bool,
    /// Workers run under `SCHED_BATCH` (see `sys::process::use_batch_scheduling`).
    pub batch_scheduling: bool,
    pub uid: Option<String>,
    pub gid: Option<String>,

    // --- sockets ---
    pub sockets: Vec<SocketSpec>,
    /// `chmod-socket`: bare means 0o666.
    pub chmod_socket: Option<u32>,
    /// `chown-socket`: `user` or `user:group`.
    pub chown_socket: Option<String>,
    pub listen: u32,
    pub buffer_size: usize,
    pub post_buffering: usize,
    /// `limit-post`: the largest request body accepted, in bytes (0: no limit).
    pub limit_post: u64,
    /// `max-worker-connections` (0: derived from the open-files limit).
    pub max_worker_connections: u64,
    /// `max-fd`: the open-files limit (soft and hard `RLIMIT_NOFILE`) to set; 0 keeps it.
    pub max_fd: u64,
    /// `print`: messages to log once the configuration is read, in order.
    pub print: Vec<String>,
    /// `no-site`: start Python without importing `site` (`python -S`).
    pub no_site: bool,
    /// `limit-post-default`: the cap on chunked and post-buffered bodies when `limit_post`
    /// is 0 (0: none).
    pub limit_post_default: u64,
    pub socket_timeout: Duration,
    /// `transfer-timeout`: how long a body read, and a response write, may wait on the
    /// client in total, before `transfer_min_rate` extends it (zero: no total deadline).
    pub transfer_timeout: Duration,
    /// `transfer-min-rate`: bytes a second that extend `transfer_timeout` (0: none).
    pub transfer_min_rate: u64,

    // --- logging ---
    /// `logto`: where stdout and stderr go (a file, appended to).
    pub logto: Option<PathBuf>,
    /// `daemonize`: detach, then log to this file as `logto` does.
    pub daemonize: Option<PathBuf>,
    pub disable_logging: bool,
    /// `log-4xx`, `log-5xx`, …: what still gets a line with `disable-logging`.
    pub log_conditions: crate::protocol::log::LogConditions,
    /// `log-format`, loggers, routing, encoders, rotation (`config/logging.rs`).
    pub log: LogOptions,
    /// `add-header = Name: value`, each added to every response.
    pub add_header: Vec<(String, String)>,
    /// `mount = /point=target`: (mountpoint without a trailing `/`, target), in order.
    pub mount: Vec<(String, String)>,
    pub manage_script_name: bool,
    /// `disable-write-exception`: the app's `write()` does not raise for a departed client.
    pub disable_write_exception: bool,
    pub log_micros: bool,
    pub log_x_forwarded_for: bool,
    pub memory_report: bool,
    /// `threads-stacksize` in KB (0: the stack limit, as Python's own threads get).
    pub threads_stacksize: u64,
    /// `umask`, set first thing.
    pub umask: Option<u32>,
    /// `reuse-port`: `SO_REUSEPORT` on the TCP listeners.
    pub reuse_port: bool,
    /// `so-keepalive`: `SO_KEEPALIVE` on the TCP listeners (and so on their connections).
    pub so_keepalive: bool,
    /// `no-defer-accept`: do not set `TCP_DEFER_ACCEPT` on the TCP listeners.
    pub no_defer_accept: bool,
    /// `no-server`: run with no socket even when nothing else (daemons, crons, spoolers,
    /// zergpools) would make an instance without one useful.
    pub no_server: bool,
    /// `freebind`: `IP_FREEBIND` on the TCP listeners (bind an address not yet configured).
    pub freebind: bool,
    /// `subscribe-to`, `subscribe2`: uWSGI subscription servers to announce this instance to.
    pub subscriptions: Vec<subscriptions::Subscription>,
    /// `subscribe-freq`.
    pub subscribe_freq: Duration,
    /// `zerg`: zerg servers to take the listening sockets from.
    pub zerg: Vec<PathBuf>,
    /// `zerg-fallback`.
    pub zerg_fallback: bool,
    /// `zerg-server`: hand the listening sockets to zergs connecting here.
    pub zerg_server: Option<PathBuf>,
    /// `zergpool`: pools of sockets this instance binds and hands to zergs (`zergpool.rs`).
    pub zergpools: Vec<ZergPool>,
    /// `static-map`, `check-static`, `static-expires-*`, `offload-threads`, …
    pub statics: StaticConfig,

    // --- lifecycle: reloads and recycling (issue 5) ---
    pub max_requests: u64,
    pub max_requests_delta: u64,
    pub harakiri: Option<Duration>,
    pub harakiri_verbose: bool,
    pub harakiri_graceful_timeout: Duration,
    /// `harakiri-queue-threshold`: harakiri only while the listen queue is this deep (0: off).
    pub harakiri_queue_threshold: u64,
    pub touch_reload: Vec<PathBuf>,
    pub master_fifo: Vec<PathBuf>,
    pub stats: Option<String>,
    /// Kaiser extension: a random 0..=N added to each worker's `max-requests` at each spawn.
    pub max_requests_jitter: u64,
    /// Zero means off.
    pub max_worker_lifetime: Duration,
    pub max_worker_lifetime_delta: Duration,
    /// Applies to `max-requests`, `reload-on-rss` and `reload-on-as` (as in uWSGI).
    pub min_worker_lifetime: Duration,
    /// Bytes; zero means off. Checked by the worker after a request.
    pub reload_on_rss: u64,
    pub reload_on_as: u64,
    /// Bytes; zero means off. Checked by the master every cycle; the worker is killed.
    pub evil_reload_on_rss: u64,
    pub evil_reload_on_as: u64,
    /// `idle`: zero means off.
    pub idle: Duration,
    pub die_on_idle: bool,
    /// `cheap`: start with no worker, as `idle`'s cheap mode.
    pub cheap: bool,
    pub touch_chain_reload: Vec<PathBuf>,
    pub touch_workers_reload: Vec<PathBuf>,
    /// `touch-signal = FILE SIGNAL`: (file, uWSGI signal).
    pub touch_signal: Vec<(PathBuf, u8)>,
    /// `fs-brutal-reload`: files whose change asks for a brutal reload.
    pub fs_brutal_reload: Vec<PathBuf>,
    pub stats_http: bool,
    pub stats_minified: bool,
    pub stats_no_cores: bool,
    /// `cheaper` and its `cheaper-*` options (adaptive worker count, issue 18).
    pub cheaper: CheaperConfig,

    // --- issue 15: Python loading, process and HTTP options (see `extra.rs`) ---
    pub extra: Extra,
    /// `stats-prometheus`: an address serving `/metrics` alone.
    pub stats_prometheus: Option<String>,
    /// `health-check-path`: answered by the worker, never the app.
    pub health_check_path: Option<String>,
    /// `health-drain-delay`: zero means stop at once.
    pub health_drain_delay: Duration,
    /// `heartbeat`: zero means off.
    pub heartbeat: Duration,

    // --- emperor ---
    /// The spooler (issue 19): `spooler` dirs, each served by `spooler_processes` processes.
    pub spooler: SpoolerConfig,
    /// `locks`: user locks 1..=N beside lock 0.
    pub locks: u32,
    /// Mules: one entry per mule, its script or `""` for a message loop (`mule`, `mules`).
    pub mules: Vec<String>,
    /// `farm = NAME:1,2`: named groups of mule ids.
    pub farms: Vec<(String, Vec<u32>)>,
    pub mule_msg_size: usize,
    /// `mule-harakiri` (zero: off).
    pub mule_harakiri: Duration,
    /// `timer`/`rbtimer`: (signal, seconds) the master raises.
    pub timers: Vec<(u8, u64)>,
    /// `cron`, `unique-cron`, `cron2`: commands the master runs.
    pub crons: Vec<CronCommand>,
    pub cron_harakiri: Duration,
    /// `cache2` entries, in order.
    pub cache2: Vec<CacheSpec>,
    /// The legacy `cache = N` (items; 0: none) and its `cache-blocksize`.
    pub cache_items: u64,
    pub cache_blocksize: u64,

    pub emperor: Vec<String>,
    pub emperor_throttle: Duration,
    pub emperor_max_throttle: Duration,
    pub emperor_stats: Option<String>,
    /// `emperor-stats-prometheus`: the emperor's `/metrics` address.
    pub emperor_stats_prometheus: Option<String>,
    /// `emperor-required-heartbeat`: zero means off.
    pub emperor_required_heartbeat: Duration,
    /// `emperor-on-demand-directory`: on-demand vassals' sockets go here.
    pub emperor_on_demand_directory: Option<PathBuf>,
    /// `emperor-on-demand-extension`: a vassal's socket is named in `<file><extension>`.
    pub emperor_on_demand_extension: Option<String>,
    /// `emperor-on-demand-exec`: a command printing a vassal's socket.
    pub emperor_on_demand_exec: Option<String>,
    pub emperor_tyrant: bool,
    /// `emperor-pidfile`.
    pub emperor_pidfile: Option<PathBuf>,
    pub vassals_include: Vec<String>,
    pub vassals_include_before: Vec<String>,
    pub vassals_inherit: Vec<String>,
    pub vassals_inherit_before: Vec<String>,
    /// `emperor-nofollow`, wrappers, `vassals-set`, start/stop hooks, … (`emperor_extra.rs`).
    pub emperor_extra: EmperorExtra,
    /// `unshare`, `unshare2` (`jail.rs`).
    pub unshare: jail::Unshare,
    /// `gevent`/`async`/`asyncio`: uWSGI's async cores per worker, served as threads.
    pub async_cores: u32,

    // --- hooks and external daemons (issue 15) ---
    /// Every `hook-*`/`exec-*` line in config order, typed (`hooks.rs`).
    pub hooks: Vec<hooks::Hook>,
    /// `route*`, `error-route*`, `response-route*`, `final-route*`: internal routing.
    pub routes: crate::routing::RouteTables,
    /// `attach-daemon` and its variants, in config order (`daemons.rs`).
    pub daemons: Vec<daemons::DaemonSpec>,
    /// `daemons-honour-stdin`: every daemon keeps the master's stdin.
    pub daemons_honour_stdin: bool,
    /// `alarm` and its triggers (`alarms.rs`).
    pub alarm: AlarmConfig,
    /// `carbon` and its tuning (`carbon.rs`).
    pub carbon: CarbonConfig,
    /// `fastrouter` and its options (`fastrouter.rs`).
    pub fastrouter: FastrouterConfig,
    /// `py-tracebacker`: each worker serves its threads' stacks on `PATH<id>`.
    pub py_tracebacker: Option<PathBuf>,
    /// Entries whose typed form keeps no text to print back (`route*`, `collect-header`,
    /// `log-format`, `log-encoder`, …): (key, value) in config order, for `--print-config`
    /// (`show.rs`).
    pub as_written: Vec<(String, String)>,
}

impl Default for Config {
    /// The defaults of an empty configuration (uWSGI 2.1's where they differ from 2.0).
    fn default() -> Self {
        Config {
            action: Action::Run,
            files: Vec::new(),
            name: "kaiser".to_string(),
            strict: false,
            show_config: false,
            wsgi_file: None,
            python_raw: None,
            module: None,
            callable: "application".to_string(),
            chdir: None,
            pythonpath: Vec::new(),
            home: None,
            env: Vec::new(),
            need_app: true,
            lazy_apps: false,
            processes: 1,
            threads: 1,
            worker_reload_mercy: Duration::from_secs(60),
            reload_mercy: Duration::from_secs(30),
            pidfile: None,
            vacuum: false,
            batch_scheduling: true,
            uid: None,
            gid: None,
            sockets: Vec::new(),
            chmod_socket: None,
            chown_socket: None,
            listen: 1024,
            buffer_size: 4096,
            post_buffering: 0,
            limit_post: 0,
            max_worker_connections: 0,
            max_fd: 0,
            print: Vec::new(),
            no_site: false,
            limit_post_default: 1 << 30,
            socket_timeout: Duration::from_secs(4),
            transfer_timeout: Duration::from_secs(60),
            transfer_min_rate: 1024,
            logto: None,
            daemonize: None,
            disable_logging: false,
            log_conditions: Default::default(),
            log: LogOptions::default(),
            disable_write_exception: false,
            mount: Vec::new(),
            add_header: Vec::new(),
            manage_script_name: false,
            log_micros: false,
            log_x_forwarded_for: false,
            memory_report: false,
            umask: None,
            threads_stacksize: 0,
            reuse_port: false,
            freebind: false,
            subscriptions: Vec::new(),
            subscribe_freq: Duration::from_secs(10),
            zerg: Vec::new(),
            zerg_fallback: false,
            zerg_server: None,
            zergpools: Vec::new(),
            so_keepalive: false,
            no_defer_accept: false,
            no_server: false,
            statics: StaticConfig::default(),
            max_requests: 0,
            max_requests_delta: 0,
            harakiri: None,
            harakiri_verbose: false,
            harakiri_graceful_timeout: Duration::from_secs(3),
            harakiri_queue_threshold: 0,
            touch_reload: Vec::new(),
            master_fifo: Vec::new(),
            stats: None,
            max_requests_jitter: 0,
            max_worker_lifetime: Duration::ZERO,
            max_worker_lifetime_delta: Duration::ZERO,
            min_worker_lifetime: Duration::from_secs(10),
            reload_on_rss: 0,
            reload_on_as: 0,
            evil_reload_on_rss: 0,
            evil_reload_on_as: 0,
            idle: Duration::ZERO,
            die_on_idle: false,
            cheap: false,
            touch_chain_reload: Vec::new(),
            touch_workers_reload: Vec::new(),
            touch_signal: Vec::new(),
            fs_brutal_reload: Vec::new(),
            stats_http: false,
            stats_minified: false,
            stats_no_cores: false,
            extra: Extra::default(),
            cheaper: CheaperConfig::default(),
            spooler: SpoolerConfig::default(),
            locks: 0,
            mules: Vec::new(),
            farms: Vec::new(),
            mule_msg_size: 65536,
            mule_harakiri: Duration::ZERO,
            timers: Vec::new(),
            crons: Vec::new(),
            cron_harakiri: Duration::ZERO,
            cache2: Vec::new(),
            cache_items: 0,
            cache_blocksize: cache::DEFAULT_BLOCKSIZE,
            stats_prometheus: None,
            health_check_path: None,
            health_drain_delay: Duration::ZERO,
            heartbeat: Duration::ZERO,
            emperor: Vec::new(),
            emperor_throttle: Duration::from_millis(1000),
            emperor_max_throttle: Duration::from_millis(180_000),
            emperor_stats: None,
            emperor_stats_prometheus: None,
            emperor_required_heartbeat: Duration::ZERO,
            emperor_on_demand_directory: None,
            emperor_on_demand_extension: None,
            emperor_on_demand_exec: None,
            emperor_tyrant: false,
            emperor_pidfile: None,
            vassals_include: Vec::new(),
            vassals_include_before: Vec::new(),
            vassals_inherit: Vec::new(),
            vassals_inherit_before: Vec::new(),
            emperor_extra: EmperorExtra::default(),
            unshare: jail::Unshare::default(),
            async_cores: 0,
            hooks: Vec::new(),
            routes: crate::routing::RouteTables::default(),
            daemons: Vec::new(),
            daemons_honour_stdin: false,
            alarm: AlarmConfig::default(),
            carbon: CarbonConfig::default(),
            fastrouter: FastrouterConfig::default(),
            py_tracebacker: None,
            as_written: Vec::new(),
        }
    }
}

impl Config {
    /// Every cache to create: the legacy `cache` first (it is uWSGI's default cache), then
    /// each `cache2`.
    pub fn caches(&self) -> Vec<CacheSpec> {
        let legacy = (self.cache_items > 0)
            .then(|| CacheSpec::legacy(self.cache_items, self.cache_blocksize));
        legacy
            .into_iter()
            .chain(self.cache2.iter().cloned())
            .collect()
    }
}

/// The spooler options (`spooler`, `spooler-*`).
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolerConfig {
    /// `spooler`: directories served by this instance, in order (the first is the default).
    pub dirs: Vec<PathBuf>,
    /// `spooler-external`: directories `spool()` may target, served by another instance.
    pub external: Vec<PathBuf>,
    pub processes: u32,
    pub frequency: Duration,
    /// `spooler-harakiri` (zero: off).
    pub harakiri: Duration,
    /// `spooler-max-tasks` (0: never recycle).
    pub max_tasks: u64,
    pub chdir: Option<PathBuf>,
    pub ordered: bool,
    pub quiet: bool,
    /// `spooler-import`: modules or `.py` files imported in each spooler process.
    pub imports: Vec<String>,
}

impl Default for SpoolerConfig {
    fn default() -> Self {
        SpoolerConfig {
            dirs: Vec::new(),
            external: Vec::new(),
            processes: 1,
            frequency: Duration::from_secs(30),
            harakiri: Duration::ZERO,
            max_tasks: 0,
            chdir: None,
            ordered: false,
            quiet: false,
            imports: Vec::new(),
        }
    }
}

/// The result of loading: the config plus non-fatal diagnostics to log.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// Each `origin: key: message`, like errors, in the order they were written.
    pub warnings: Vec<String>,
    /// `--show-config`/`--print-config` output: the effective options as an INI text.
    pub show_config: String,
    /// Every expanded entry in order, `(key as written, value)`, for Python's `uwsgi.opt`
    /// (a flag given without a value has the value `""`). Placeholders from `set-ph` are
    /// not included.
    pub options: Vec<(String, String)>,
}

/// argv WITHOUT argv[0]; env = the process environment pairs; ctx = machine facts.
///
/// Reads the config files named by argv and env (and `@(file)`); does no other I/O.
/// `--help`/`-h` and `--version` return at once, whatever else argv holds.
pub fn load(
    args: &[OsString],
    env: &[(String, String)],
    ctx: &Context,
) -> Result<Loaded, LoadConfigError> {
    load_with(args, env, ctx, &sources::RealFs)
}

/// `kaiser --help` text: options by group, one line each.
pub fn help_text() -> String {
    options::help_text()
}

/// Every option name and alias kaiser knows, in table order (`--dump-options`).
pub fn option_names() -> Vec<&'static str> {
    options::all_names().collect()
}

/// The README's option table (Markdown): name, aliases, type, default, status, one-line doc.
pub fn option_table_markdown() -> String {
    options::markdown()
}

fn load_with(
    args: &[OsString],
    env: &[(String, String)],
    ctx: &Context,
    fs: &dyn sources::FileSystem,
) -> Result<Loaded, LoadConfigError> {
    if let Some(early) = cli::early_action(args) {
        let action = match early {
            cli::Early::Help => Action::Help,
            cli::Early::Version => Action::Version,
        };
        return Ok(Loaded {
            config: Config {
                action,
                ..Config::default()
            },
            warnings: Vec::new(),
            show_config: String::new(),
            options: Vec::new(),
        });
    }
    let mut report = diagnostics::Report::default();
    let cli_entries = cli::parse(args, &mut report);
    let collected = sources::collect(&cli_entries, env, ctx, fs, &mut report);
    let config = typed::build(
        &collected.entries,
        collected.files.clone(),
        &collected.used_as_placeholder,
        &mut report,
    );
    let files: Vec<String> = collected
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    if !report.errors.is_empty() {
        let mut problems = report.errors;
        diagnostics::sort(&mut problems, &files);
        return Err(LoadConfigError { problems });
    }
    let mut warnings = report.warnings;
    diagnostics::sort(&mut warnings, &files);
    Ok(Loaded {
        show_config: show::render(&config),
        config,
        warnings: warnings.iter().map(ToString::to_string).collect(),
        options: collected
            .entries
            .iter()
            .filter(|e| !e.placeholder_only)
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect(),
    })
}

#[cfg(test)]
mod tests;
