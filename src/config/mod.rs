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

use std::path::PathBuf;
use std::time::Duration;

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
    /// `--show-config`: print the effective options as an INI and exit.
    ShowConfig,
    /// `--reload PIDFILE`: send SIGHUP to the pid in the file.
    Reload(PathBuf),
    /// `--stop PIDFILE`: send SIGTERM (graceful) to the pid in the file.
    Stop(PathBuf),
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSpec {
    pub protocol: Protocol,
    pub address: Address,
    /// The option it came from (`socket`, `http-socket`, `http`, …) for messages.
    pub option: String,
}

/// The typed, validated configuration of one kaiser process.
#[derive(Debug, Clone)]
pub struct Config {
    pub action: Action,
    /// Config files read, in order (for `%` expansion and messages).
    pub files: Vec<PathBuf>,
    /// The vassal name used in logs: the first ini file's stem, else `kaiser`.
    pub name: String,
    pub strict: bool,

    // --- application ---
    pub wsgi_file: Option<PathBuf>,
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
    pub socket_timeout: Duration,

    // --- logging ---
    pub disable_logging: bool,

    // --- lifecycle (issue 5; parsed now so INI files carrying them are accepted) ---
    pub max_requests: u64,
    pub max_requests_delta: u64,
    pub harakiri: Option<Duration>,
    pub touch_reload: Vec<PathBuf>,
    pub master_fifo: Vec<PathBuf>,
    pub stats: Option<String>,

    // --- emperor ---
    pub emperor: Vec<String>,
    pub emperor_throttle: Duration,
    pub emperor_max_throttle: Duration,
    pub emperor_stats: Option<String>,
    pub emperor_tyrant: bool,
    pub vassals_include: Vec<String>,
    pub vassals_include_before: Vec<String>,
    pub vassals_inherit: Vec<String>,
    pub vassals_inherit_before: Vec<String>,
}

/// The result of loading: the config plus non-fatal diagnostics to log.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
    /// `--show-config` output: the effective options as an INI text.
    pub show_config: String,
}
