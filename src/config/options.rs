//! The one option table: every option kaiser knows, with aliases, type, default and status.
//!
//! The table drives command-line parsing (arity, short forms), typed conversion (which
//! options are implemented, no-ops or refused), `kaiser --help` and the README's option
//! table. It holds no logic beyond lookups and rendering; what an implemented option does to
//! [`super::Config`] lives in `typed.rs`, keyed by the canonical name.

/// How a value is read. Also decides command-line arity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `false`/`off`/`no`/`0` are false, anything else (even empty) is true. No argument on
    /// the command line.
    Bool,
    /// A non-negative integer.
    Int,
    /// Megabytes, decimals allowed (`reload-on-rss = 1.5`).
    Megabytes,
    /// Whole seconds.
    Seconds,
    /// Whole milliseconds.
    Millis,
    /// A socket address (`:8080`, `host:port`, `[::1]:80`, a path, `@abstract`).
    Address,
    Path,
    /// `NAME=value`.
    KeyValue,
    /// Free text.
    Text,
    /// One word that names something (a Python module, a callable): it cannot hold a
    /// space, so an inline comment after it is an error, not a warning.
    Name,
    /// A user or group, by name or number (`www-data`, `33`, `www-data:www`).
    Owner,
    /// A file mode in octal; the value is optional (bare means 0666).
    Mode,
    /// Loads a config file (`ini`, `include`, `inherit`).
    Load,
    /// Defines a placeholder or option (`set`, `set-ph`): `name=value`.
    Define,
    /// Selects what kaiser does (`--check-config`); no argument.
    ActionFlag,
    /// Selects what kaiser does and takes an argument (`--reload PIDFILE`).
    ActionArg,
    /// A flag whose value is optional and only given as `--name=value` (`need-app`).
    OptionalBool,
    /// A marker whose value is ignored (`endif`, `endfor`).
    Marker,
}

impl Kind {
    /// Whether the command-line form takes the next argument as its value.
    pub fn takes_value(self) -> Arity {
        match self {
            Kind::Bool | Kind::ActionFlag => Arity::None,
            Kind::Mode | Kind::OptionalBool | Kind::Marker => Arity::Optional,
            _ => Arity::Required,
        }
    }

    fn doc_name(self) -> &'static str {
        match self {
            Kind::Bool | Kind::OptionalBool => "bool",
            Kind::Int => "int",
            Kind::Megabytes => "size (MB)",
            Kind::Seconds => "seconds",
            Kind::Millis => "milliseconds",
            Kind::Address => "address",
            Kind::Path => "path",
            Kind::KeyValue => "`NAME=VALUE`",
            Kind::Text => "string",
            Kind::Name => "name",
            Kind::Owner => "user/group",
            Kind::Mode => "octal mode",
            Kind::Load => "file[:section]",
            Kind::Define => "`name=value`",
            Kind::ActionFlag => "flag",
            Kind::ActionArg => "pidfile",
            Kind::Marker => "marker",
        }
    }

    fn metavar(self) -> &'static str {
        match self {
            Kind::Bool | Kind::ActionFlag | Kind::Marker => "",
            Kind::OptionalBool => "[=BOOL]",
            Kind::Int => " N",
            Kind::Megabytes => " MB",
            Kind::Seconds => " SECS",
            Kind::Millis => " MS",
            Kind::Address => " ADDR",
            Kind::Path => " PATH",
            Kind::KeyValue => " NAME=VALUE",
            Kind::Text => " VALUE",
            Kind::Name => " NAME",
            Kind::Owner => " USER",
            Kind::Mode => "[=MODE]",
            Kind::Load => " FILE[:SECTION]",
            Kind::Define => " NAME=VALUE",
            Kind::ActionArg => " PIDFILE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arity {
    None,
    /// Only `--name=value` carries a value; `--name value` leaves `value` as an argument,
    /// as with getopt's `optional_argument`.
    Optional,
    Required,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Implemented,
    /// Accepted and documented as doing nothing in kaiser, with the reason.
    NoOp(&'static str),
    /// A uWSGI option kaiser refuses by design, with the reason and what to do instead.
    Refused(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Group {
    Actions,
    Loading,
    Application,
    Processes,
    Sockets,
    Logging,
    Lifecycle,
    Static,
    Emperor,
}

impl Group {
    const ALL: [Group; 9] = [
        Group::Actions,
        Group::Loading,
        Group::Application,
        Group::Processes,
        Group::Sockets,
        Group::Logging,
        Group::Lifecycle,
        Group::Static,
        Group::Emperor,
    ];

    fn title(self) -> &'static str {
        match self {
            Group::Actions => "Actions",
            Group::Loading => "Loading configuration",
            Group::Application => "Python application",
            Group::Processes => "Processes and privileges",
            Group::Sockets => "Sockets and HTTP",
            Group::Logging => "Logging",
            Group::Lifecycle => "Reloading, recycling and monitoring",
            Group::Static => "Static files",
            Group::Emperor => "Emperor",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct OptionSpec {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub short: Option<char>,
    pub kind: Kind,
    /// Repeated entries accumulate instead of the last one winning.
    pub multi: bool,
    pub group: Group,
    pub status: Status,
    pub default: &'static str,
    pub doc: &'static str,
}

impl OptionSpec {
    const fn new(name: &'static str, kind: Kind, group: Group, doc: &'static str) -> Self {
        OptionSpec {
            name,
            aliases: &[],
            short: None,
            kind,
            multi: false,
            group,
            status: Status::Implemented,
            default: "",
            doc,
        }
    }
    const fn aliases(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }
    const fn short(mut self, short: char) -> Self {
        self.short = Some(short);
        self
    }
    const fn multi(mut self) -> Self {
        self.multi = true;
        self
    }
    const fn default(mut self, default: &'static str) -> Self {
        self.default = default;
        self
    }
    const fn noop(mut self, why: &'static str) -> Self {
        self.status = Status::NoOp(why);
        self
    }
    const fn refuse(mut self, why: &'static str) -> Self {
        self.status = Status::Refused(why);
        self
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.name).chain(self.aliases.iter().copied())
    }
}

use Group::*;
use Kind::*;

const fn opt(name: &'static str, kind: Kind, group: Group, doc: &'static str) -> OptionSpec {
    OptionSpec::new(name, kind, group, doc)
}

/// Every option kaiser recognises. Names and aliases are uWSGI 2.0's (core and the python
/// plugin), so existing files keep working; the status column is the honest state of kaiser.
pub(crate) static OPTIONS: &[OptionSpec] = &[
    // --- actions ---
    opt("help", ActionFlag, Actions, "print this help and exit").aliases(&["usage"]).short('h'),
    opt("version", ActionFlag, Actions, "print the version and exit"),
    opt("check-config", ActionFlag, Actions, "parse and validate the configuration (and import the app), exit 0 or 1"),
    opt("show-config", Bool, Actions, "print the effective options as an `[uwsgi]` INI to the log, then run (as uWSGI)"),
    opt("print-config", ActionFlag, Actions, "print the effective options as an `[uwsgi]` INI to stdout and exit (kaiser extension)"),
    opt("reload", ActionArg, Actions, "gracefully reload the instance whose pid is in PIDFILE (SIGHUP)"),
    opt("stop", ActionArg, Actions, "gracefully stop the instance whose pid is in PIDFILE (SIGTERM; uWSGI 2.0 sends SIGINT)"),
    opt("pause", ActionArg, Actions, "pause or resume the instance whose pid is in PIDFILE (SIGTSTP toggles whether its workers accept connections; `suspend` and `resume` send the same toggle, as in uWSGI)").aliases(&["suspend", "resume"]),
    opt("get", Text, Actions, "print the value of this option (its first entry) and exit 0; repeat it for several").multi(),
    opt("dump-options", Bool, Actions, "print every option name and alias, one per line, and exit"),
    // --- loading ---
    opt("ini", Load, Loading, "load an INI file (its `[uwsgi]` section, or `file:section`) at this point").multi(),
    opt("include", Load, Loading, "load a config file at this point; later entries override it").multi(),
    opt("inherit", Load, Loading, "load a config file as a template, appended at the end so it overrides the including file (as uWSGI does)").multi(),
    opt("set", Define, Loading, "set an option (or a placeholder) as `name=value`").short('S').multi(),
    opt("set-placeholder", Define, Loading, "define a placeholder `name=value` (allowed in strict mode)").aliases(&["set-ph"]).multi(),
    opt("strict", Bool, Loading, "make unknown keys errors instead of warnings").default("false"),
    opt("xml", Load, Loading, "load an XML config file at this point: the `<uwsgi>` element's children (`file.xml:ID` picks `<uwsgi id=\"ID\">`)").aliases(&["xmlconfig"]).short('x').multi(),
    opt("yaml", Load, Loading, "load a YAML config file at this point (uWSGI's line-based subset: `uwsgi:` then indented `key: value` lines; `file.yaml:section`)").aliases(&["yml"]).short('y').multi(),
    opt("json", Load, Loading, "load a JSON config file at this point: the `uwsgi` object, an array repeating an option (`file.json:object`)").aliases(&["js"]).short('j').multi(),
    opt("config", Load, Loading, "load a config file at this point, its format chosen by extension (`.ini`, `.yaml`/`.yml`, `.json`/`.js`, `.xml`)").multi(),
    opt("for", Text, Loading, "config logic: repeat each line up to `endfor` once per space-separated word, with `%(_)` the word").aliases(&["for-glob", "for-times", "for-readline"]),
    opt("endfor", Marker, Loading, "end a `for` block (`end` and `end-for` too)").aliases(&["end-for"]),
    opt("if-env", Text, Loading, "config logic: keep each line up to `endif` only if the test holds, with `%(_)` the matched value (the variable's or option's value, the path, the hostname)").aliases(&[
        "if-not-env", "ifenv", "if-opt", "if-not-opt", "if-exists", "if-not-exists", "ifexists",
        "if-file", "if-not-file", "if-dir", "if-not-dir", "ifdir", "if-directory",
        "if-hostname", "if-not-hostname", "if-plugin", "if-not-plugin", "ifplugin",
        "if-hostname-match", "if-not-hostname-match",
    ]),
    opt("if-reload", Bool, Loading, "config logic: keep each line up to `endif` only when the master re-executed itself for a reload").aliases(&["if-not-reload"]),
    opt("endif", Marker, Loading, "end an `if-*` block").aliases(&["end-if", "end"]),
    opt("declare-option", Text, Loading, "declare a custom option: `name=key=value;key=value`, where `$1`, `$2`… stand for the words of its value").aliases(&["declare-option2"]).multi(),
    opt("inject-before", Path, Loading, "put this file's text before that of every config file read after this entry (`inject-after`: after it)").aliases(&["inject-after"]).multi(),
    // --- application ---
    opt("wsgi-file", Path, Application, "load the WSGI application from this Python file (`pypy-wsgi-file`: the PyPy plugin's name for it, loaded in CPython)").aliases(&["file", "pypy-wsgi-file"]),
    opt("module", Name, Application, "load the WSGI application from this module (`pkg.mod` or `pkg.mod:callable`); `pypy-wsgi` is the PyPy plugin's name for it, loaded in CPython").aliases(&["wsgi", "pypy-wsgi"]).short('w'),
    opt("callable", Name, Application, "name of the WSGI callable in the module or file").default("application"),
    opt("python-raw", Path, Application, "load the callable (`callable`, default `application`) of this Python file to serve `raw-socket` connections: it is called with the connection's fd"),
    opt("chdir", Path, Application, "change to this directory before loading the app"),
    opt("pythonpath", Path, Application, "add a directory to `sys.path` (a glob pattern adds each match, as in uWSGI)").aliases(&["python-path", "pp"]).multi(),
    opt("home", Path, Application, "use this virtualenv (made with `python -m venv` from the same Python)").aliases(&["virtualenv", "venv", "pyhome"]).short('H'),
    opt("env", KeyValue, Application, "set an environment variable for the app").multi(),
    opt("need-app", OptionalBool, Application, "exit if the app cannot be loaded (uWSGI 2.1 default; 2.0 defaulted to off)").default("true"),
    opt("lazy-apps", Bool, Application, "load the app in each worker after fork instead of in the master").default("false"),
    opt("enable-threads", Bool, Application, "enable Python threads").short('T').noop("Python threads are always enabled"),
    opt("profiler", Text, Application, "enable uWSGI's named profiler (`pycall`, `pyline`)").noop("kaiser has no per-call profiler hooks; profile the app with `py-spy` or `cProfile`"),
    opt("single-interpreter", Bool, Application, "use one Python interpreter").short('i').noop("kaiser always uses a single interpreter"),
    opt("py-call-osafterfork", Bool, Application, "let workers handle OS signals in Python").noop("kaiser always calls `PyOS_AfterFork_Child` in workers"),
    opt("py-call-uwsgi-fork-hooks", Bool, Application, "call CPython's fork hooks").noop("kaiser always calls `PyOS_BeforeFork`/`PyOS_AfterFork_*`"),
    opt("plugins", Text, Application, "load uWSGI plugins").aliases(&["plugin", "need-plugin", "need-plugins", "plugins-dir", "plugin-dir"]).multi()
        .noop("kaiser is Python-only and has the python plugin built in; `python*`, `http` and the plugins whose features kaiser has built in (`logfile`, `syslog`, `rsyslog`, `logsocket`, `systemd_logger`, `router_static`, `router_basicauth`, `router_rewrite`, `router_redirect`, `cheaper_busyness`, `gevent`, `ugreen`) are accepted, other plugins are refused"),
    opt("wsgi-env-behaviour", Text, Application, "WSGI environ allocation strategy").aliases(&["wsgi-env-behavior"]).noop("kaiser builds a fresh environ per request"),
    opt("chdir2", Path, Application, "change to this directory after the app is loaded (in the master, or in each worker with `lazy-apps`)"),
    opt("unenv", Text, Application, "remove this variable from the environment the app sees (after `env`)").multi(),
    opt("lazy", Bool, Application, "`lazy-apps` under its old name (uWSGI's `lazy` also reloads only the workers on SIGHUP; kaiser re-executes the master, which re-imports nothing itself in lazy mode, so the app is reloaded either way)").default("false"),
    opt("mount", Text, Application, "`/point=target`: load another app (a `.py`/`.wsgi` file or `pkg.mod[:callable]`) for requests whose SCRIPT_NAME is `/point`").multi(),
    opt("catch-exceptions", Bool, Application, "send the Python traceback of a failed request to the client (uWSGI marks it for testing only)").noop("kaiser logs the traceback and answers 500 without it: a traceback in the response shows clients the code, paths and settings"),
    opt("ignore-script-name", Bool, Application, "do not use SCRIPT_NAME to choose the app").noop("kaiser chooses by SCRIPT_NAME only among `mount`s and gives every other request to the main app, which is what this option gives a config without mounts (MoinMoin's setup, which the option is documented for); with mounts, kaiser still chooses them by SCRIPT_NAME"),
    opt("no-default-app", Bool, Application, "do not give requests that no mount claims to the default app").noop("kaiser gives a request whose SCRIPT_NAME no `mount` claims to the main app (`module`/`wsgi-file`), or to the first mount when there is none; uWSGI with this option answers it with 500 instead"),
    opt("manage-script-name", Bool, Application, "move the longest mountpoint that starts PATH_INFO into SCRIPT_NAME, so mounts work without nginx setting SCRIPT_NAME").default("false"),
    opt("import", Name, Application, "import this Python module (or `.py` file) before the app, where the app is imported").aliases(&["pyimport", "py-import", "python-import"]).multi(),
    opt("shared-import", Name, Application, "import this Python module (or `.py` file) before `import` modules and the app (uWSGI imports it in the master; kaiser, where the app is imported: the master, or each worker with `lazy-apps`)").aliases(&["shared-pyimport", "shared-py-import", "shared-python-import"]).multi(),
    opt("eval", Text, Application, "run this Python code as the app's module; its `callable` (`application`) is the app"),
    opt("paste", Text, Application, "load the app with paste.deploy's `loadapp` (`config:/path/app.ini`; a bare path gets `config:`); PasteDeploy must be installed in the app's venv"),
    opt("paste-logger", Bool, Application, "with `paste`: configure Python logging from the paste file (`logging.config.fileConfig`)").default("false"),
    opt("ini-paste", Load, Loading, "load this INI file's `[uwsgi]` section and its app with paste.deploy (`ini` + `paste = config:FILE`)").aliases(&["ini-paste-logged"]),
    opt("pyargv", Text, Application, "`sys.argv[1:]`, split on spaces (`sys.argv[0]` is `uwsgi`, or `py-programname`)"),
    opt("no-site", Bool, Application, "start Python without importing `site` (`python -S`): no site-packages on `sys.path` unless `pythonpath` adds them").default("false"),
    opt("optimize", Int, Application, "Python's optimisation level, as `python -O` (1) or `-OO` (2)").short('O').default("0"),
    opt("py-tracebacker", Path, Application, "each worker answers a connection to the unix socket `PATH<worker id>` with its threads' Python stacks (uWSGI's format; read it with `nc -U`)"),
    opt("py-autoreload", Seconds, Application, "every N seconds, check the files of the loaded Python modules and gracefully reload when one changed (development; 0: off)").aliases(&["py-auto-reload", "python-autoreload", "python-auto-reload"]).default("0"),
    opt("py-auto-reload-ignore", Name, Application, "with `py-autoreload`: do not check this module's file").aliases(&["py-autoreload-ignore"]).multi(),
    opt("py-executable", Path, Application, "set `sys.executable` (default: the venv's `bin/python`, or the Python kaiser embeds)").aliases(&["py-sys-executable"]),
    opt("py-programname", Text, Application, "Python's program name and `sys.argv[0]`").aliases(&["py-program-name"]),
    opt("wsgi-disable-file-wrapper", Bool, Application, "leave `wsgi.file_wrapper` out of the environ").default("false"),
    opt("spooler-import", Text, Application, "import a module (or a `.py` file) in each spooler process").aliases(&["spooler-pyimport", "spooler-py-import", "spooler-python-import"]).multi(),

    opt("gevent", Int, Application, "uWSGI's gevent loop with N async cores per worker: kaiser runs N request threads per worker instead, with a warning; an app that monkey-patches must call `gevent.monkey.patch_all(thread=False)`").aliases(&["async", "asyncio"]),
    opt("ugreen", Bool, Application, "uWSGI's green-thread suspend engine for `async`").aliases(&["greenlet"]).noop("kaiser serves `async`/`gevent` cores as request threads, which need no suspend engine"),
    opt("gevent-monkey-patch", Bool, Application, "call `gevent.monkey.patch_all()` before loading the app").aliases(&["gevent-early-monkey-patch"]).noop("kaiser runs requests on threads and does not patch: gevent's patched locks deadlock when real threads share them; an app that wants cooperative sockets calls `gevent.monkey.patch_all(thread=False)` itself"),
    // --- processes ---
    opt("processes", Int, Processes, "number of worker processes").aliases(&["workers"]).short('p').default("1"),
    opt("threads", Int, Processes, "Python threads per worker").default("1"),
    opt("master", Bool, Processes, "enable the master process").short('M').noop("kaiser always runs a master"),
    opt("uid", Owner, Processes, "drop privileges to this user (name or number)"),
    opt("vhost", Bool, Processes, "uWSGI's virtual hosting mode: apps keyed by SERVER_NAME").noop("kaiser serves the apps it loaded (`module`, `wsgi-file`, `mount`) for every Host; uWSGI's vhost mode only changes which key dynamically loaded apps (`UWSGI_SCRIPT` from the web server) are stored under, and kaiser loads no apps at request time"),
    opt("master-as-root", Bool, Processes, "leave the master running as root").noop("kaiser's master drops privileges with the workers (`uid`/`gid`), after binding the sockets and running the root hook phases; nothing it does afterwards needs root"),
    opt("gid", Owner, Processes, "drop privileges to this group (name or number)"),
    opt("pidfile", Path, Processes, "write the master's pid to this file (before dropping privileges)"),
    opt("vacuum", Bool, Processes, "remove unix sockets and the pidfile on exit").default("false"),
    opt("batch-scheduling", Bool, Processes, "run workers under SCHED_BATCH: a worker woken by a request does not preempt the front end still sending it; `false`: the normal policy, as uWSGI").default("true"),
    opt("no-threads-wait", Bool, Processes, "do not wait for the app's threads when a worker stops").noop("a stopping kaiser worker runs the app's exit handlers and exits without finalizing the interpreter, so it never waits for threads the app started (uWSGI's `Py_Finalize` does unless this is set)"),
    opt("worker-reload-mercy", Seconds, Processes, "how long a worker may take to finish on reload or shutdown").default("60"),
    opt("reload-mercy", Seconds, Processes, "how long the master waits for all processes on reload or shutdown").default("30"),
    opt("die-on-term", Bool, Processes, "exit on SIGTERM").noop("SIGTERM always stops kaiser gracefully (uWSGI 2.1 and systemd semantics)"),
    opt("thunder-lock", Bool, Processes, "serialise accept()").noop("kaiser's workers do not suffer the thundering herd it works around"),
    opt("auto-procname", Bool, Processes, "give processes meaningful names").noop("process titles are not changed yet"),
    opt("procname-prefix", Text, Processes, "prefix process names").aliases(&["procname-prefix-spaced", "procname-append", "procname", "procname-master"]).noop("process titles are not changed yet"),
    opt("pidfile2", Path, Processes, "write the master's pid to this file after dropping privileges"),
    opt("safe-pidfile", Path, Processes, "`pidfile`, written to a temporary file and renamed into place"),
    opt("safe-pidfile2", Path, Processes, "`pidfile2`, written to a temporary file and renamed into place"),
    opt("mule-reload-mercy", Seconds, Processes, "how long a mule may take to reload").noop("a mule stops at once on SIGTERM; the vassal's mercy bounds it"),
    opt("exit-on-reload", Bool, Processes, "stop gracefully when a reload is asked for (SIGHUP, `touch-reload`, FIFO `r`) instead of reloading").default("false"),

    opt("locks", Int, Processes, "user locks for `uwsgi.lock(N)`: N more beside lock 0, shared by every process of the instance").default("0"),
    opt("umask", Text, Processes, "set the umask (octal, e.g. `022`) first thing, before sockets, pidfile and `logto` are created"),
    opt("chroot", Path, Processes, "chroot to this directory after binding the sockets, before dropping privileges; Python is initialised before, the app is loaded after, from inside it"),
    opt("cap", Text, Processes, "capabilities to keep after dropping privileges").noop("kaiser binds every socket before dropping privileges, so binding ports below 1024 needs no capability; no capability is kept after the drop (grant one with systemd's `AmbientCapabilities` if the app needs it)"),
    opt("unshare", Text, Processes, "`net,ipc,uts,pid,mount,user,…`: move the master (and so its workers) into new Linux namespaces on its first start, as root, before it binds its sockets; then `hook-post-jail` runs").multi(),
    opt("unshare2", Text, Processes, "as `unshare`, after `hook-post-jail`").multi(),
    opt("add-gid", Owner, Processes, "add this supplementary group when dropping privileges").multi(),
    opt("no-initgroups", Bool, Processes, "do not give the `uid` user its supplementary groups from /etc/group when dropping privileges").default("false"),
    opt("immediate-uid", Owner, Processes, "drop to this user first thing, before binding sockets"),
    opt("immediate-gid", Owner, Processes, "drop to this group first thing, before binding sockets"),
    opt("daemonize", Path, Processes, "detach from the terminal and log to this file (`logto`); under the emperor and on reload, only `logto`").short('d'),
    opt("daemonize2", Path, Processes, "`daemonize` (uWSGI detaches after loading the app; kaiser detaches before, so an app that fails to load reports it in this file)"),
    opt("threads-stacksize", Int, Processes, "stack size of the request threads in KB (default: the stack limit, `ulimit -s`, as for the threads Python starts; 8 MiB if unlimited)").aliases(&["thread-stacksize"]).default("0"),
    opt("no-orphans", Bool, Processes, "kill the workers if the master dies").noop("kaiser's workers always get SIGKILL when their master dies (`PR_SET_PDEATHSIG`)"),
    opt("reaper", Bool, Processes, "after each request, reap the worker's exited child processes (apps that start processes without waiting for them)").short('r').default("false"),
    opt("close-on-exec", Bool, Processes, "set close-on-exec on the sockets").aliases(&["close-on-exec2"]).noop("kaiser opens every connection and listening socket close-on-exec; only its own re-exec on reload inherits the listeners"),
    opt("limit-as", Megabytes, Processes, "limit the address space of the master and workers (`RLIMIT_AS`) to this many MB").default("0"),
    opt("cpu-affinity", Int, Processes, "pin each worker to this many CPUs, worker 1 from CPU 0, the next from where it stopped, wrapping round (0: off)").default("0"),
    opt("idle", Seconds, Processes, "after this many seconds without a request, stop the workers until the next connection (cheap mode; 0: off)").default("0"),
    opt("die-on-idle", Bool, Processes, "with `idle`: stop the vassal instead of going cheap").default("false"),
    opt("cheap", Bool, Processes, "start in cheap mode: no worker until the first connection (then `cheaper` of them, or all)").default("false"),
    opt("honour-stdin", Bool, Processes, "do not remap stdin to /dev/null").noop("kaiser leaves stdin as it found it (uWSGI points it at /dev/null unless this is set); only `daemonize` reads it from /dev/null"),
    opt("skip-atexit", Bool, Processes, "a worker stopping gracefully does not run the app's `atexit` handlers (nor `uwsgi.atexit`)").aliases(&["skip-atexit-teardown"]).default("false"),
    // Hooks (`config/hooks.rs` parses the `action:argument` values; `hooks.rs` runs them).
    opt("hook-asap", Text, Processes, "run a hook action (`exec:`, `mkdir:`, `write:`, `print:`, …) first thing in the master, on every start and reload").multi(),
    opt("hook-as-root", Text, Processes, "run a hook action in the master before it drops privileges (only when started as root, as uWSGI)").multi(),
    opt("hook-as-user", Text, Processes, "run a hook action in the master after it drops privileges (only when started as root, as uWSGI)").multi(),
    opt("hook-pre-app", Text, Processes, "run a hook action before the app is imported (in the master; in each worker with `lazy-apps`)").multi(),
    opt("hook-post-app", Text, Processes, "run a hook action after the app is imported (in the master; in each worker with `lazy-apps`)").multi(),
    opt("hook-post-fork", Text, Processes, "run a hook action in each worker right after fork").multi(),
    opt("hook-accepting", Text, Processes, "run a hook action in each worker once it accepts").multi(),
    opt("hook-accepting-once", Text, Processes, "run a hook action in each worker once it accepts, on its first spawn only").multi(),
    opt("hook-accepting1", Text, Processes, "run a hook action in worker 1 once it accepts").multi(),
    opt("hook-accepting1-once", Text, Processes, "run a hook action in worker 1 once it accepts, on its first spawn only").multi(),
    opt("hook-master-start", Text, Processes, "run a hook action when the master's loop starts; `unix_signal:N FUNCTION` rebinds what the master does on signal N").multi(),
    opt("hook-as-user-atexit", Text, Processes, "run a hook action when the master exits (failures are logged)").multi(),
    opt("hook-touch", Text, Processes, "`FILE action:argument`: run a hook action in the master when FILE is touched").multi(),
    opt("hook-as-vassal", Text, Emperor, "in the emperor's config: run a hook action first thing in each vassal it starts (before it binds its sockets)").multi(),
    opt("exec-asap", Text, Processes, "run a command (`/bin/sh -c`) first thing in the master; a failure stops it").multi(),
    opt("exec-as-root", Text, Processes, "run a command before dropping privileges (only when started as root)").multi(),
    opt("exec-as-user", Text, Processes, "run a command after dropping privileges (only when started as root)").multi(),
    opt("exec-pre-app", Text, Processes, "run a command before the app is imported").multi(),
    opt("exec-post-app", Text, Processes, "run a command after the app is imported").multi(),
    opt("exec-as-user-atexit", Text, Processes, "run a command when the master exits").multi(),
    opt("exec-as-vassal", Text, Emperor, "in the emperor's config: run a command first thing in each vassal it starts (before it binds its sockets)").multi(),
    opt("hook-pre-jail", Text, Processes, "run a hook action in the master on its first start, after `hook-asap`, before `unshare`").multi(),
    opt("exec-pre-jail", Text, Processes, "run a command (`/bin/sh -c`) in the master on its first start, after `hook-asap`, before `unshare`").multi(),
    opt("hook-in-jail", Text, Processes, "run a hook action in the master on every start, after `hook-pre-jail` (kaiser's jail is `unshare` and `chroot`)").multi(),
    opt("exec-in-jail", Text, Processes, "run a command in the master on every start, after `hook-pre-jail`").multi(),
    opt("hook-post-jail", Text, Processes, "run a hook action in the master right after `unshare` moved it into new namespaces (only then, as uWSGI)").multi(),
    opt("exec-post-jail", Text, Processes, "run a command in the master right after `unshare` moved it into new namespaces").multi(),
    opt("hook-as-mule", Text, Processes, "run a hook action in each mule when it starts (a failure ends that mule)").multi(),
    opt("hook-as-gateway", Text, Processes, "hooks run in gateway processes").multi().noop("kaiser has no gateway processes (its HTTP router runs in the workers); nothing runs"),
    opt("mount-asap", Text, Processes, "`FS SOURCE TARGET [FLAGS [DATA]]`: mount(2) first thing in the master (`none` for no type); flags as uWSGI's: `bind,rec,ro,nosuid,nodev,noexec,private,…`; a failure is fatal").multi(),
    opt("mount-pre-jail", Text, Processes, "`FS SOURCE TARGET [FLAGS [DATA]]`: mount(2) in the master's first start, before `unshare` (`none` for no type)").multi(),
    opt("mount-in-jail", Text, Processes, "`FS SOURCE TARGET [FLAGS [DATA]]`: mount(2) in the master on every start, after `pre-jail` (`none` for no type)").multi(),
    opt("mount-post-jail", Text, Processes, "`FS SOURCE TARGET [FLAGS [DATA]]`: mount(2) in the master right after `unshare` (`none` for no type)").multi(),
    opt("mount-as-root", Text, Processes, "`FS SOURCE TARGET [FLAGS [DATA]]`: mount(2) in the master before it drops privileges (root only) (`none` for no type)").multi(),
    opt("mount-as-vassal", Text, Processes, "`FS SOURCE TARGET [FLAGS [DATA]]`: mount(2) in an emperor's config: first thing in each vassal (`none` for no type)").multi(),
    opt("mount-as-emperor", Text, Processes, "`FS SOURCE TARGET [FLAGS [DATA]]`: mount(2) in an emperor's config: in the emperor after each vassal starts (`none` for no type)").multi(),
    opt("umount-asap", Text, Processes, "`TARGET [FLAGS]`: umount2(2) first thing in the master (`rec` unmounts everything below TARGET first, `detach` is lazy)").multi(),
    opt("umount-pre-jail", Text, Processes, "`TARGET [FLAGS]`: umount2(2) in the master's first start, before `unshare`").multi(),
    opt("umount-in-jail", Text, Processes, "`TARGET [FLAGS]`: umount2(2) in the master on every start, after `pre-jail`").multi(),
    opt("umount-post-jail", Text, Processes, "`TARGET [FLAGS]`: umount2(2) in the master right after `unshare`").multi(),
    opt("umount-as-root", Text, Processes, "`TARGET [FLAGS]`: umount2(2) in the master before it drops privileges (root only)").multi(),
    opt("umount-as-vassal", Text, Processes, "`TARGET [FLAGS]`: umount2(2) in an emperor's config: first thing in each vassal").multi(),
    opt("umount-as-emperor", Text, Processes, "`TARGET [FLAGS]`: umount2(2) in an emperor's config: in the emperor after each vassal starts").multi(),
    opt("hook-as-emperor", Text, Emperor, "in the emperor's config: run a hook action in the emperor after each vassal starts").multi(),
    opt("exec-as-emperor", Text, Emperor, "in the emperor's config: run a command after each vassal starts, with `UWSGI_VASSAL_CONFIG`, `_PID`, `_UID`, `_GID` set (the emperor does not wait for it)").multi(),
    opt("hook-emperor-start", Text, Emperor, "in the emperor's config: run a hook action when the emperor starts (a failure stops it)").multi(),
    opt("hook-emperor-stop", Text, Emperor, "in a vassal's config: run a hook action when its emperor stops it").multi(),
    opt("hook-emperor-reload", Text, Emperor, "in a vassal's config: run a hook action when its emperor reloads it").multi(),
    opt("hook-emperor-lost", Text, Emperor, "in a vassal's config: run a hook action when the connection to its emperor is lost").multi()
        .noop("kaiser's vassals are started with `PR_SET_PDEATHSIG=SIGKILL` and die with their emperor, so no vassal outlives it to run this"),
    opt("call-asap", Text, Processes, "call a C function of the uWSGI binary at a phase").aliases(&["call-pre-app", "call-post-app", "call-as-root", "call-as-user", "call-as-user-atexit", "call-pre-jail", "call-post-jail", "call-in-jail", "call-as-vassal", "call-as-emperor", "after-request-hook", "after-request-call"]).multi()
        .noop("kaiser has no uWSGI C functions to call by name, so nothing is called; run a command with the matching `exec-*` option"),
    // External daemons (`config/daemons.rs` parses them; `vassal/daemons.rs` supervises them).
    opt("attach-daemon", Text, Processes, "run this command (`/bin/sh -c`) beside the workers, restart it when it dies (throttled), stop it with the vassal").multi(),
    opt("attach-daemon2", Text, Processes, "`attach-daemon` as `key=value` pairs: `cmd`, `pidfile`, `daemonize`, `freq`, `control`, `stopsignal`, `reloadsignal`, `touch`, `stdin`, `uid`, `gid`, `chdir`, `max_throttle`, `notifypid`").multi(),
    opt("smart-attach-daemon", Text, Processes, "`PIDFILE COMMAND`: a daemon that daemonizes itself, tracked through its pidfile; it survives reloads and shutdown, as in uWSGI").multi(),
    opt("smart-attach-daemon2", Text, Processes, "`PIDFILE COMMAND`: as `smart-attach-daemon` for a command that stays in the foreground; kaiser writes the pidfile").multi(),
    opt("daemons-honour-stdin", Bool, Processes, "give the attached daemons the master's stdin instead of `/dev/null`").default("false"),
    opt("attach-control-daemon", Text, Processes, "as `attach-daemon`, but the vassal stops gracefully when the daemon dies").multi(),
    opt("legion-attach-daemon", Text, Processes, "daemons run only by the legion's lord").aliases(&["legion-attach-daemon2", "legion-smart-attach-daemon", "legion-smart-attach-daemon2"]).multi().noop("kaiser has no legions, so it is never a legion's lord and never runs these daemons (as uWSGI on a node that is not lord); use `attach-daemon` to run one on this node"),
    // --- sockets ---
    opt("socket", Address, Sockets, "listen with the uwsgi protocol (nginx `uwsgi_pass`)").aliases(&["uwsgi-socket"]).short('s').multi(),
    opt("http-socket", Address, Sockets, "listen with HTTP/1.1, parsed by the workers").aliases(&["http11-socket"]).multi(),
    opt("http", Address, Sockets, "serve HTTP on this address (kaiser serves it from the workers; there is no separate router process)").multi(),
    opt("protocol", Text, Sockets, "protocol of `socket` entries: `uwsgi`, `http`, `fastcgi`, `fastcgi-nph`, `puwsgi` or `raw`").aliases(&["socket-protocol"]).default("uwsgi"),
    opt("chmod-socket", Mode, Sockets, "mode of unix sockets in octal (bare: 666)").aliases(&["chmod"]).short('C'),
    opt("chown-socket", Owner, Sockets, "owner of unix sockets (`user` or `user:group`)"),
    opt("listen", Int, Sockets, "listen backlog (capped at net.core.somaxconn; uWSGI defaults to 100)").short('l').default("1024"),
    opt("buffer-size", Int, Sockets, "maximum size of a request's headers in bytes (at most 65535)").short('b').default("4096"),
    opt("post-buffering", Int, Sockets, "read the whole request body before calling the app: up to this many bytes in memory, the rest in an anonymous temp file (0: the app reads from the socket)").default("0"),
    opt("socket-timeout", Seconds, Sockets, "timeout for socket reads and writes").short('z').default("4"),
    opt("https-socket", Address, Sockets, "listen with HTTPS").aliases(&["https", "ssl-socket", "suwsgi-socket", "https2"]).multi().refuse("kaiser does not terminate TLS: put nginx (or another proxy) in front and use `http-socket` or `socket` behind it; a TLS stack would add a heavy dependency for what the front end does better"),
    opt("shared-socket", Address, Sockets, "a socket bound by the master for a `socket`, `http-socket` or `http` written `=N` (the Nth `shared-socket`, from 0); kaiser binds every socket in the master before dropping privileges, so `=N` is the same as writing the address there").aliases(&["undeferred-shared-socket"]).multi(),
    opt("scgi-socket", Address, Sockets, "listen with SCGI (nginx `scgi_pass`); answers with CGI's `Status:` line").multi(),
    opt("scgi-nph-socket", Address, Sockets, "listen with SCGI, answering with an HTTP status line (non-parsed headers)").multi(),
    opt("fastcgi-socket", Address, Sockets, "listen with FastCGI (nginx `fastcgi_pass`, `fastcgi_keep_conn` too); answers with CGI's `Status:` line").multi(),
    opt("fastcgi-nph-socket", Address, Sockets, "listen with FastCGI, answering with an HTTP status line (non-parsed headers)").multi(),
    opt("raw-socket", Address, Sockets, "listen in uWSGI's raw mode: nothing is parsed, each connection's fd is handed to the `python-raw` callable, what it returns is written back and the connection closed").multi(),
    opt("raw-modifier1", Int, Sockets, "the plugin that serves `raw-socket` connections; only 0 (Python, `python-raw`) exists in kaiser").default("0"),
    opt("raw-modifier2", Int, Sockets, "modifier2 of `raw-socket` connections").noop("uWSGI's Python plugin ignores modifier2 for raw connections, and so does kaiser"),
    opt("puwsgi-socket", Address, Sockets, "listen with persistent uwsgi: uwsgi packets (each followed by its `CONTENT_LENGTH` body) one after another on a connection; a response is kept on the connection when its length is known (`Content-Length`, or no body), else it ends with the connection").multi(),
    opt("abstract-socket", Bool, Sockets, "bind every unix socket path in the abstract namespace (`/run/app.sock` as `@/run/app.sock`; an address written `@name` is abstract anyway)").short('a').default("false"),
    opt("reuse-port", Bool, Sockets, "set SO_REUSEPORT on the TCP sockets, so several instances can bind one port").default("false"),
    opt("so-keepalive", Bool, Sockets, "set SO_KEEPALIVE on the TCP sockets (their connections inherit it)").default("false"),
    opt("no-server", Bool, Sockets, "run without a socket: the master, its daemons, crons, spoolers and mules, and no worker (an instance with `attach-daemon`, a cron, a spooler or a `zergpool` and no socket runs so anyway, as in uWSGI)").default("false"),
    opt("no-defer-accept", Bool, Sockets, "do not set `TCP_DEFER_ACCEPT` on the TCP listeners: accept a connection before its first bytes arrive (for protocols where the server speaks first, or load balancers that probe with empty connections)").default("false"),
    opt("tcp-nodelay", Bool, Sockets, "set TCP_NODELAY").noop("kaiser always sets TCP_NODELAY on TCP connections"),
    opt("freebind", Bool, Sockets, "set IP_FREEBIND on the TCP sockets: bind an address not (yet) on any interface, e.g. a failover IP").default("false"),
    opt("map-socket", Text, Sockets, "map sockets to workers").multi().noop("every kaiser worker serves every socket; to give a socket workers of its own, serve it from a vassal of its own (a second INI with the same app)"),
    opt("http-timeout", Seconds, Sockets, "timeout of uWSGI's HTTP router").noop("there is no router between the client and the worker, so nothing cuts a slow response short: `socket-timeout` bounds each read and write, `harakiri` a request's run time"),
    opt("http-keepalive", Bool, Sockets, "keep-alive in uWSGI's HTTP router").noop("kaiser's HTTP sockets always keep HTTP/1.1 connections alive (and HTTP/1.0 ones that ask)"),
    opt("http-auto-chunked", Bool, Sockets, "chunked responses from uWSGI's HTTP router").noop("kaiser always sends a response without `Content-Length` chunked to HTTP/1.1 clients"),
    opt("http-auto-gzip", Bool, Sockets, "gzip in uWSGI's HTTP router").noop("kaiser does not compress responses; let nginx gzip them"),
    opt("http-raw-body", Bool, Sockets, "pass the raw request body through uWSGI's HTTP router").noop("the workers read the body themselves: `wsgi.input` gives the body, a chunked one decoded"),
    opt("http-to", Text, Sockets, "the uwsgi socket uWSGI's HTTP router forwards to").multi().noop("kaiser's workers serve `http` themselves, so there is nothing to forward to; the same app serves `http` and `socket`"),
    opt("http-processes", Int, Sockets, "number of uWSGI HTTP router processes").aliases(&["http-workers"]).noop("there is no router process: every worker serves HTTP"),
    opt("http-websockets", Bool, Sockets, "WebSocket support in uWSGI's HTTP router").noop("kaiser serves WSGI, which has no connection upgrade: an `Upgrade: websocket` request reaches the app as a plain request, and `uwsgi.websocket_handshake` is not provided; serve WebSockets from an ASGI server behind the same nginx"),
    opt("http-socket-modifier1", Int, Sockets, "modifier1 for http sockets").aliases(&["http-modifier1", "http-socket-modifier2"]).noop("the modifier only picks one of uWSGI's language plugins; kaiser runs the Python app for every request, and a config that loads another plugin is refused at `plugins`"),
    opt("fastcgi-modifier1", Int, Sockets, "modifier1 for FastCGI sockets").aliases(&["fastcgi-modifier2", "scgi-modifier1", "scgi-modifier2", "https-socket-modifier1", "https-socket-modifier2"]).noop("the modifier only picks one of uWSGI's language plugins; kaiser runs the Python app for every request, and a config that loads another plugin is refused at `plugins`"),
    opt("add-header", Text, Sockets, "`Name: value`: a header added to every response").multi(),
    opt("route", Text, Sockets, "internal routing: `REGEX ACTION:ARGS` on PATH_INFO, run by the worker before the app (`route-host`, `route-uri`, `route-qs`, `route-remote-addr`, `route-user-agent`, `route-referer`, `route-remote-user` match other variables; `route-if = COND:ARGS ACTION:ARGS`; `route-run = ACTION:ARGS`; `route-label = NAME` for `goto`); see the README's Internal routing").aliases(&["route-host", "route-uri", "route-qs", "route-remote-addr", "route-user-agent", "route-referer", "route-remote-user", "route-if", "route-if-not", "route-run", "route-label"]).multi(),
    opt("error-route", Text, Sockets, "internal routing when the app's response status is known (`error-route-status = 404 ACTION:ARGS`); the same forms as `route`").aliases(&["error-route-status", "error-route-host", "error-route-uri", "error-route-qs", "error-route-remote-addr", "error-route-user-agent", "error-route-referer", "error-route-remote-user", "error-route-if", "error-route-if-not", "error-route-run", "error-route-label"]).multi(),
    opt("response-route", Text, Sockets, "internal routing on the app's response head, before it is sent (`addheader`, `delheader`, …); the same forms as `route`").aliases(&["response-route-status", "response-route-host", "response-route-uri", "response-route-qs", "response-route-remote-addr", "response-route-user-agent", "response-route-referer", "response-route-remote-user", "response-route-if", "response-route-if-not", "response-route-run", "response-route-label"]).multi(),
    opt("collect-header", Text, Sockets, "`HEADER VAR`: copy the app's response header into the request variable VAR before the error and response routes run (`response-route-if = equal:${VAR};…`)").aliases(&["response-header-collect"]).multi(),
    opt("pull-header", Text, Sockets, "`HEADER VAR`: as `collect-header`, and drop the header from the response").multi(),
    opt("final-route", Text, Sockets, "internal routing after the response was sent (`log`, `logvar`, …); the same forms as `route`").aliases(&["final-route-status", "final-route-host", "final-route-uri", "final-route-qs", "final-route-remote-addr", "final-route-user-agent", "final-route-referer", "final-route-remote-user", "final-route-if", "final-route-if-not", "final-route-run", "final-route-label"]).multi(),
    opt("max-worker-connections", Int, Sockets, "connections one worker holds open at once; at the cap it stops accepting and new ones wait in the backlog (kaiser's own; 0: the open-files limit less 64)").default("0"),
    opt("max-fd", Int, Processes, "set the open-files limit (soft and hard `RLIMIT_NOFILE`) of the master and its workers to N at startup, as uWSGI does (raising the hard limit needs root); 0: raise the soft limit to the hard one").default("0"),
    opt("limit-post", Int, Sockets, "the largest request body accepted, in bytes; a larger one is answered 413 and the app is not called (0: no limit)").default("0"),
    opt("limit-post-default", Int, Sockets, "with `limit-post` at 0, the largest chunked request body, or body read ahead by `post-buffering`, accepted in bytes (larger: 413); a body with a Content-Length that the app reads itself stays unlimited (0: no limit)").default("1073741824"),
    opt("chunked-input-limit", Int, Sockets, "the largest part `uwsgi.chunked_read()` returns, in bytes").noop("kaiser has no `uwsgi.chunked_read()`: it decodes a chunked body into `wsgi.input`, whose whole size `limit-post-default` bounds"),
    opt("chunked-input-timeout", Seconds, Sockets, "how long `uwsgi.chunked_read()` waits for a part").noop("kaiser has no `uwsgi.chunked_read()`: `socket-timeout` bounds each read of a chunked body and `transfer-timeout` the whole body"),
    opt("transfer-timeout", Seconds, Sockets, "the total time a request body, and a response, may keep a request thread waiting on a slow client (beyond it: 408, or the connection closes); `transfer-min-rate` extends it (0: only `socket-timeout` per wait)").default("60"),
    opt("transfer-min-rate", Int, Sockets, "bytes per second a client must move to keep its `transfer-timeout` growing: each byte read or written adds 1/rate seconds (0: a fixed deadline)").default("1024"),
    opt("post-buffering-bufsize", Int, Sockets, "the chunk size uWSGI reads a post-buffered body in").noop("kaiser reads a buffered body in its own chunks; `post-buffering` alone decides what is held in memory and what goes to a temp file"),
    opt("enable-proxy-protocol", Bool, Sockets, "on HTTP sockets, read a PROXY protocol header (v1 text or v2 binary) before the request when one comes, and take REMOTE_ADDR and REMOTE_PORT from it (any client can send one: use it only behind a proxy that does)").aliases(&["http-enable-proxy-protocol"]).default("false"),
    opt("upload-progress", Path, Sockets, "uWSGI's upload progress files (`DIR/<X-Progress-ID>.js`, written while `post-buffering` reads a body)").noop("kaiser writes no progress files: uploads work, but a page polling for the file finds none; nginx's upload progress module (`track_uploads`, `report_uploads`) reports the same JSON from the front end"),
    opt("zerg", Path, Sockets, "take the listening sockets from the zerg server on this unix socket (served as `socket`s) instead of binding them").multi(),
    opt("zerg-fallback", Bool, Sockets, "when the zerg server cannot be reached, bind the configured sockets instead of failing").default("false"),
    opt("zerg-server", Path, Sockets, "hand this instance's listening sockets to every zerg that connects to this unix socket (answered within a second)"),
    opt("zergpool", Text, Sockets, "`POOL:ADDRESS[,ADDRESS…]`: bind each ADDRESS and hand them all to every zerg that connects to the unix socket POOL (`zerg = POOL`); answered by the master within a second, kept across reloads. An instance with pools and no socket of its own runs no workers").aliases(&["zerg-pool"]).multi(),
    opt("subscribe-to", Text, Sockets, "`[ADDRESS=]SERVER:PORT:KEY[,MODIFIER1]`: announce this instance's first socket (or ADDRESS) for KEY to a uWSGI subscription server (fastrouter, HTTP router) every `subscribe-freq` seconds; unsubscribed when the vassal stops").aliases(&["st", "subscribe"]).multi(),
    opt("subscribe2", Text, Sockets, "`server=…,key=…[,addr=…][,socket=N][,weight=…][,modifier1=…][,modifier2=…][,backup=…]`: a subscription in key=value form").multi(),
    opt("subscribe-freq", Seconds, Sockets, "seconds between subscription announcements").default("10"),
    opt("fastrouter", Address, Sockets, "run a fastrouter on this address: a process of its own (respawned by the master) that reads each uwsgi-protocol request's vars, picks a node by key (`UWSGI_FASTROUTER_KEY`, else `HTTP_HOST`, else `SERVER_NAME`) and relays the request and the response; a key without a node closes the connection").multi(),
    opt("fastrouter-subscription-server", Address, Sockets, "map keys to the nodes that announce themselves here (`subscribe-to` of other instances; UDP `host:port` or a unix datagram path); several nodes of a key take turns by `weight`; a node is dropped when it unsubscribes or stops announcing for `subscription-tolerance` seconds").multi(),
    opt("fastrouter-use-pattern", Text, Sockets, "map a key to the node address made from this pattern, `%s` replaced by the key (`/run/%s.sock`)"),
    opt("fastrouter-use-base", Text, Sockets, "map a key to this prefix followed by the key (`/run/sockets/` gives `/run/sockets/KEY`)"),
    opt("fastrouter-to", Text, Sockets, "forward every request to these nodes, in turn (repeat it for several); a node that refuses a connection is skipped for `fastrouter-gracetime` seconds").multi(),
    opt("fastrouter-timeout", Seconds, Sockets, "how long the fastrouter waits for a request's header, for a node to accept the connection, and for either side to move during the relay").default("60"),
    opt("fastrouter-fallback", Text, Sockets, "nodes tried in order when the chosen node cannot be reached").multi(),
    opt("fastrouter-fallback-on-no-key", Bool, Sockets, "send a request whose key has no node to the `fastrouter-fallback` nodes").default("false"),
    opt("fastrouter-subscription-fallback-key", Text, Sockets, "the subscribed key whose nodes take requests whose own key has none"),
    opt("fastrouter-force-key", Text, Sockets, "use this key for every request instead of reading it from the vars"),
    opt("fastrouter-gracetime", Seconds, Sockets, "how long a `fastrouter-to` node that refused a connection is skipped").default("30"),
    opt("fastrouter-quiet", Bool, Sockets, "do not log failed connections to nodes").default("false"),
    opt("subscription-tolerance", Seconds, Sockets, "a subscribed node that has not announced itself for this long is dropped by the subscription server").default("17"),
    opt("fastrouter-processes", Int, Sockets, "fastrouter processes to prefork").aliases(&["fastrouter-workers"]).noop("kaiser runs one fastrouter process per instance: its event loop serves every connection, and a second process would see only part of the subscription datagrams"),
    opt("fastrouter-zerg", Text, Sockets, "attach the fastrouter to a zerg server").noop("the fastrouter listens on its `fastrouter` addresses only"),
    opt("fastrouter-use-cache", Text, Sockets, "map keys to nodes through a uWSGI cache").noop("kaiser's fastrouter does not read caches: use `fastrouter-subscription-server`, `fastrouter-use-pattern`, `fastrouter-use-base` or `fastrouter-to`"),
    opt("fastrouter-use-code-string", Text, Sockets, "map keys to nodes by calling code").noop("kaiser has no code-string plugin: use `fastrouter-use-pattern` or a subscription server"),
    opt("fastrouter-use-socket", Int, Sockets, "forward every request to this instance's own Nth socket (0, or empty: the first), after the pattern, subscription and base maps"),
    opt("fastrouter-events", Int, Sockets, "the router's maximum number of concurrent events").noop("kaiser's event loop has no fixed event array; connections are bounded by the open-files limit"),
    opt("fastrouter-cheap", Bool, Sockets, "stop accepting while no node is subscribed").noop("the router always accepts; a request without a node is closed"),
    opt("fastrouter-subscription-slot", Int, Sockets, "deprecated in uWSGI").noop("deprecated in uWSGI itself (useless since its new subscription implementation)"),
    opt("fastrouter-post-buffering", Int, Sockets, "buffer request bodies larger than this before connecting to a node").aliases(&["fastrouter-post-buffering-dir"]).noop("kaiser's fastrouter streams the body to the node as it comes; the node's own `post-buffering` applies"),
    opt("fastrouter-stats", Address, Sockets, "serve the router's stats document here (TCP `host:port` or a unix socket path): uWSGI's layout, with its listeners, its `fastrouter-to` nodes and every subscribed key with its nodes; written on connect, then the connection is closed").aliases(&["fastrouter-stats-server", "fastrouter-ss"]),
    opt("fastrouter-harakiri", Seconds, Sockets, "the fastrouter's harakiri").noop("the router has no blocking request handler to kill; `fastrouter-timeout` bounds its waits"),
    opt("fastrouter-uid", Owner, Sockets, "the user the fastrouter runs as").aliases(&["fastrouter-gid"]).noop("the router runs as the instance's `uid`/`gid`"),
    opt("fastrouter-resubscribe", Text, Sockets, "forward subscriptions to another subscription server").aliases(&["fastrouter-resubscribe-bind"]).noop("subscriptions are not forwarded; let the instances `subscribe-to` every router"),
    opt("fastrouter-buffer-size", Int, Sockets, "the router's internal buffer size").noop("kaiser's router sizes its own buffers; a request's vars may be up to 64 KiB"),
    opt("fastrouter-emperor-socket", Text, Sockets, "ask an Emperor to spawn vassals for subscribed keys").noop("kaiser's router does not spawn vassals; use the Emperor's `on-demand` sockets"),
    opt("fastrouter-defer-connect-timeout", Seconds, Sockets, "how long a deferred connection waits for a spawned vassal").noop("kaiser's router does not spawn vassals, so it never defers a connection"),
    opt("fastrouter-max-retries", Int, Sockets, "after a subscribed or `fastrouter-to` node refuses a connection (a subscribed one is dropped until it announces itself again), how many other nodes of the same map are tried before the `fastrouter-fallback` nodes").default("3"),
    opt("max-vars", Int, Sockets, "maximum number of request variables").short('v').noop("kaiser has no limit of its own on the number of variables; `buffer-size` bounds the request head"),
    // --- logging ---
    opt("disable-logging", Bool, Logging, "do not log requests").short('L').default("false"),
    opt("logto", Path, Logging, "append every log line (kaiser's, the requests', the app's stdout and stderr) to this file, reopened at each reload"),
    opt("logto2", Path, Logging, "`logto`, opened by the log master after the privilege drop"),
    opt("log-format", Text, Logging, "format of request lines: `%(addr) %(method) %(uri) %(status)`…, every uWSGI variable; empty values print `-`").aliases(&["logformat"]),
    opt("log-format-strftime", Bool, Logging, "`%(ftime)` in `log-format` uses `log-date`'s strftime format").aliases(&["logformat-strftime"]).default("false"),
    opt("log-date", OptionalBool, Logging, "kaiser's own lines start with the date (ctime), or with this strftime format").aliases(&["logdate"]),
    opt("log-maxsize", Int, Logging, "the log master rotates the log file past this many bytes, renaming it to `log-backupname` or `FILE.TIMESTAMP`"),
    opt("log-backupname", Path, Logging, "the name a rotated log file gets (overwritten at each rotation)"),
    opt("log-truncate", Bool, Logging, "empty the `logto`/`daemonize` file when first opening it (not on reload)").default("false"),
    opt("logfile-chown", Bool, Logging, "give the `logto`/`daemonize` file to `uid`/`gid`").default("false"),
    opt("logfile-chmod", Mode, Logging, "set the `logto`/`daemonize` file's mode"),
    opt("log-syslog", OptionalBool, Logging, "log to syslog (`logger = syslog:IDENT`), with this ident"),
    opt("log-socket", Text, Logging, "log to this socket (`logger = socket:ADDRESS`)"),
    opt("log-reopen", Bool, Logging, "reopen the `logto` file on reload").noop("kaiser reopens the `logto` file at every reload"),
    opt("log-master", Bool, Logging, "workers send their output to a log master process, the only writer of the log (whole lines, rotation, loggers)").aliases(&["threaded-logger"]).default("false"),
    opt("log-master-bufsize", Int, Logging, "the log master's buffer").aliases(&["log-master-stream", "log-master-req-stream"]).noop("kaiser's log master reads whole lines of up to 256 KiB"),
    opt("logger", Text, Logging, "add a logger: `[ID ]file:PATH`, `stdio`, `syslog[:IDENT]`, `rsyslog:HOST:PORT`, `socket:ADDRESS`, `systemd`").multi(),
    opt("req-logger", Text, Logging, "add a logger for request lines only (same forms as `logger`)").aliases(&["logger-req"]).multi(),
    opt("log-route", Text, Logging, "`ID REGEX`: lines matching REGEX go to the logger named ID").multi(),
    opt("log-req-route", Text, Logging, "`ID REGEX`: request lines matching REGEX go to the request logger named ID").multi(),
    opt("log-encoder", Text, Logging, "encode lines: `prefix TEXT`, `suffix TEXT`, `nl`, `format …${msg}…`, `json [TEMPLATE]`; `NAME:ID` for one logger").multi(),
    opt("log-req-encoder", Text, Logging, "encode request lines (same forms as `log-encoder`)").multi(),
    opt("log-drain", Text, Logging, "drop lines matching this regex").multi(),
    opt("log-filter", Text, Logging, "keep only lines matching one of these regexes").multi(),
    opt("log-prefix", Text, Logging, "put this text in front of every line the log master writes").aliases(&["logprefix"]),
    opt("log-4xx", Bool, Logging, "log requests answered 400–499 even with `disable-logging`").default("false"),
    opt("log-5xx", Bool, Logging, "log requests answered 500–599 even with `disable-logging`").default("false"),
    opt("log-zero", Bool, Logging, "log requests with an empty response body even with `disable-logging`").default("false"),
    opt("log-sendfile", Bool, Logging, "log responses sent with sendfile (`wsgi.file_wrapper`) even with `disable-logging`").default("false"),
    opt("log-ioerror", Bool, Logging, "log requests that hit a read or write error on the connection even with `disable-logging` (uWSGI: only read and write errors together)").default("false"),
    opt("log-slow", Millis, Logging, "log requests that take this many ms or more even with `disable-logging` (0: off)").default("0"),
    opt("log-big", Int, Logging, "log responses whose body is this many bytes or more even with `disable-logging` (0: off)").default("0"),
    opt("log-micros", Bool, Logging, "request lines give the time in microseconds (`in N micros`)").default("false"),
    opt("log-x-forwarded-for", Bool, Logging, "request lines show the `X-Forwarded-For` header as the client address, when there is one").default("false"),
    opt("print", Text, Logging, "log this message when the configuration has been read (uWSGI prints it while parsing; `iprint` is the same)").aliases(&["iprint"]).multi(),
    opt("memory-report", Bool, Logging, "request lines start with the worker's address space and RSS, as uWSGI's `-m`").short('m').default("false"),
    opt("harakiri-verbose", Bool, Logging, "on harakiri, also log each stuck thread's syscall and wait channel").default("false"),
    opt("ignore-sigpipe", Bool, Logging, "do not report SIGPIPE").noop("kaiser ignores SIGPIPE and reports broken connections once, quietly"),
    opt("ignore-write-errors", Bool, Logging, "do not report write errors").aliases(&["write-errors-exception-only"]).noop("kaiser does not log a client that goes away mid-response"),
    opt("disable-write-exception", Bool, Logging, "the app's `write()` does not raise `OSError` when the client has gone away").default("false"),
    opt("write-errors-tolerance", Int, Logging, "write errors allowed before `write()` raises").noop("kaiser raises `OSError` in the app at the first failed write to a departed client, as uWSGI with its default tolerance of 0; `disable-write-exception` makes every failed write silent instead"),
    // --- lifecycle ---
    opt("max-requests", Int, Lifecycle, "recycle a worker after this many requests (0: never)").short('R').default("0"),
    opt("max-requests-delta", Int, Lifecycle, "add (worker_id - 1) × delta to `max-requests` so workers do not recycle together").default("0"),
    opt("max-requests-jitter", Int, Lifecycle, "add a random 0..=N to each worker's `max-requests` at every spawn (kaiser extension, like gunicorn's `max_requests_jitter`)").default("0"),
    opt("touch-reload", Path, Lifecycle, "gracefully reload when this file's mtime changes, or it is created or deleted").multi(),
    opt("touch-chain-reload", Path, Lifecycle, "chain-reload the workers (one at a time) when this file is touched").multi(),
    opt("touch-workers-reload", Path, Lifecycle, "reload the workers (not the master) when this file is touched").multi(),
    opt("master-fifo", Path, Lifecycle, "control the master through this FIFO (`r` `R` `w` `W` `c` `q` `Q` `s` `p`, `+`/`-` one more/fewer worker with `cheaper`, `0`-`9` pick the active one; the first is active)").multi(),
    opt("max-worker-lifetime", Seconds, Lifecycle, "recycle a worker after it has run this many seconds (0: never)").default("0"),
    opt("max-worker-lifetime-delta", Seconds, Lifecycle, "add (worker_id - 1) × delta seconds to `max-worker-lifetime`").default("0"),
    opt("min-worker-lifetime", Seconds, Lifecycle, "a worker younger than this is not recycled by `max-requests`, `reload-on-rss` or `reload-on-as`").default("10"),
    opt("reload-on-rss", Megabytes, Lifecycle, "recycle a worker whose resident memory exceeds this after a request (0: off)").default("0"),
    opt("reload-on-as", Megabytes, Lifecycle, "recycle a worker whose address space exceeds this after a request (0: off)").default("0"),
    opt("evil-reload-on-rss", Megabytes, Lifecycle, "the master kills a worker whose resident memory exceeds this, at any time (0: off)").default("0"),
    opt("evil-reload-on-as", Megabytes, Lifecycle, "the master kills a worker whose address space exceeds this, at any time (0: off)").default("0"),
    opt("harakiri", Seconds, Lifecycle, "a request running this long gets a 504, its Python stack logged, and its worker replaced (0: off)").short('t').default("0"),
    opt("stats", Text, Lifecycle, "serve stats JSON on this address (`host:port`, a unix path or `@abstract`; uwsgitop reads it)").aliases(&["stats-server"]),
    opt("stats-http", Bool, Lifecycle, "answer stats clients over HTTP").default("false"),
    opt("stats-minified", Bool, Lifecycle, "stats JSON on one line").aliases(&["stats-min"]).default("false"),
    opt("stats-prometheus", Text, Lifecycle, "serve Prometheus metrics over HTTP on this address (any path; also `/metrics` on a `stats-http` server)"),
    opt("health-check-path", Text, Lifecycle, "answer `GET` on this path (e.g. `/healthz`) with 200 without calling the app, even while every request thread is busy; 503 while draining"),
    opt("health-drain-delay", Seconds, Lifecycle, "on a graceful stop (SIGTERM/SIGQUIT), fail `health-check-path` with 503 and keep serving this long before closing the sockets (0: stop at once)").default("0"),
    opt("stats-no-cores", Bool, Lifecycle, "leave per-thread `cores` out of the stats").default("false"),
    opt("stats-no-metrics", Bool, Lifecycle, "leave metrics out of the stats").noop("kaiser's stats have no metrics section"),
    opt("harakiri-graceful-timeout", Seconds, Lifecycle, "after harakiri's 504 and traceback, how long the worker's other requests may run before SIGKILL (0: kill at once)").default("3"),
    opt("harakiri-queue-threshold", Int, Lifecycle, "end a request past `harakiri` only while the deepest listen queue holds at least this many connections (0: always)").default("0"),
    opt("harakiri-graceful-signal", Int, Lifecycle, "the signal of uWSGI's graceful harakiri attempt").noop("kaiser's graceful phase is its own: the worker gets SIGUSR2, answers the stuck request 504 and logs its stack; no other signal is sent"),
    opt("harakiri-no-arh", Bool, Lifecycle, "no harakiri during the after-request hook").noop("kaiser runs no after-request hook (`uwsgi.after_req_hook`), so harakiri never covers one"),
    opt("reload-on-exception", Bool, Lifecycle, "replace a worker after a request in which the app raised").default("false"),
    opt("touch-logreopen", Path, Lifecycle, "the log master reopens the log file when this file is touched (after logrotate renamed it)").multi(),
    opt("touch-logrotate", Path, Lifecycle, "the log master rotates the log file when this file is touched").multi(),
    opt("touch-exec", Text, Lifecycle, "`FILE COMMAND`: run COMMAND (`/bin/sh -c`) in the master when FILE is touched (as `hook-touch = FILE exec:COMMAND`)").multi(),
    opt("fs-reload", Path, Lifecycle, "gracefully reload when this file or directory changes (as `touch-reload`, checked on every turn of the master's loop)").multi(),
    opt("touch-signal", Text, Lifecycle, "`FILE SIGNAL`: raise the uWSGI signal when the file's mtime changes, or it is created or deleted (checked every second)").aliases(&["fs-signal"]).multi(),
    opt("fs-brutal-reload", Path, Lifecycle, "reload brutally (workers killed, not drained, as FIFO `R`) when this file's mtime changes, or it is created or deleted").multi(),
    opt("cheaper", Int, Lifecycle, "adaptive worker count: the fewest workers that run (below `processes`, the most; 0: off, all run)").default("0"),
    opt("cheaper-initial", Int, Lifecycle, "workers started first (default: `cheaper`)").default("0"),
    opt("cheaper-step", Int, Lifecycle, "workers spawned at a time (0 behaves as 1)").default("0"),
    opt("cheaper-overload", Int, Lifecycle, "spare, busyness: cycles (seconds) before acting; backlog: queued connections above which workers are added").default("3"),
    opt("cheaper-algo", Text, Lifecycle, "how the worker count follows the load: `spare`, `spare2`, `backlog`, `busyness` or `manual` (FIFO `+`/`-` only)").default("spare"),
    opt("cheaper-idle", Int, Lifecycle, "spare2: idle cycles before one worker is stopped").default("10"),
    opt("cheaper-rss-limit-soft", Int, Lifecycle, "bytes: no worker is spawned while the workers' total RSS is above this (0: off)").default("0"),
    opt("cheaper-rss-limit-hard", Int, Lifecycle, "bytes: one worker is stopped while the workers' total RSS is above this (needs the soft limit; 0: off)").default("0"),
    opt("cheaper-busyness-max", Int, Lifecycle, "busyness: percent of time in requests above which workers are spawned").default("50"),
    opt("cheaper-busyness-min", Int, Lifecycle, "busyness: percent below which a worker is stopped once the cheap timer expires").default("25"),
    opt("cheaper-busyness-multiplier", Int, Lifecycle, "busyness: low cycles (times `cheaper-overload`) before a worker is stopped").default("10"),
    opt("cheaper-busyness-penalty", Int, Lifecycle, "busyness: added to the multiplier when a stopped worker is needed back too soon").default("2"),
    opt("cheaper-busyness-backlog-alert", Int, Lifecycle, "busyness: queued connections that trigger emergency workers at once").default("33"),
    opt("cheaper-busyness-backlog-multiplier", Int, Lifecycle, "busyness: the shorter multiplier while emergency workers run").default("3"),
    opt("cheaper-busyness-backlog-step", Int, Lifecycle, "busyness: emergency workers spawned at a time").default("1"),
    opt("cheaper-busyness-backlog-nonzero", Seconds, Lifecycle, "busyness: a listen queue non-empty this long also spawns an emergency worker").default("60"),
    opt("cheaper-busyness-verbose", Bool, Lifecycle, "busyness: log every cycle's figures").default("false"),
    opt("cheaper-algo-list", ActionFlag, Lifecycle, "print the cheaper algorithms and exit").aliases(&["cheaper-algos-list", "cheaper-list"]),
    opt("spooler", Path, Lifecycle, "run a spooler on this directory (created if missing); repeatable").short('Q').multi(),
    opt("spooler-processes", Int, Lifecycle, "spooler processes per `spooler` directory").default("1"),
    opt("spooler-frequency", Seconds, Lifecycle, "how often a spooler rescans its directory when nothing wakes it (new tasks wake it at once)").aliases(&["spooler-freq"]).default("30"),
    opt("spooler-harakiri", Seconds, Lifecycle, "kill a spooler whose task runs longer than this (the task runs again)").default("0"),
    opt("spooler-max-tasks", Int, Lifecycle, "recycle a spooler after this many tasks").default("0"),
    opt("spooler-chdir", Path, Lifecycle, "directory a spooler changes to before each task"),
    opt("spooler-ordered", Bool, Lifecycle, "run tasks in name order, priority directories first").default("false"),
    opt("spooler-quiet", Bool, Lifecycle, "do not log each task").default("false"),
    opt("spooler-external", Path, Lifecycle, "a spool directory served by another instance: `spool()` may target it").multi(),
    opt("mule", Text, Lifecycle, "add a mule: a process forked from the master that runs a script (`mule = task.py`), or, given an empty value, waits for `uwsgi.mule_msg()` messages").multi(),
    opt("mules", Int, Lifecycle, "add N mules that wait for messages").default("0"),
    opt("farm", Text, Lifecycle, "a named group of mules, `NAME:1,2`: `mule_msg(msg, NAME)` goes to one of them").multi(),
    opt("mule-msg-size", Int, Lifecycle, "the largest mule message, in bytes").default("65536"),
    opt("mule-harakiri", Seconds, Lifecycle, "kill a mule whose handling of one message (`mule_msg_hook`) runs longer than this; it is respawned").default("0"),
    opt("cache2", Text, Lifecycle, "create a shared cache: `name=NAME,items=N[,blocksize=BYTES,keysize=BYTES,expires=SECS,purge_lru=1]`").multi(),
    opt("cache", Int, Lifecycle, "legacy: a cache named `default` of N items").default("0"),
    opt("cache-blocksize", Int, Lifecycle, "legacy `cache`: the largest value, in bytes").default("65536"),
    opt("cache-store", Path, Lifecycle, "persist the legacy cache to a file").aliases(&["cache-store-sync"]).noop("kaiser's caches live in shared memory only: the items survive a reload (the re-executed master takes the memory over) but not a stop, and no file is written"),
    opt("queue", Text, Lifecycle, "a shared queue, or shared memory areas").aliases(&["sharedarea", "py-sharedarea"]).noop("kaiser creates no shared queue or sharedarea: its `uwsgi` module has no `queue_*` or `sharedarea_*` functions (the cache, `uwsgi.cache_*`, is there)"),
    opt("timer", Text, Lifecycle, "raise uWSGI signal SIG every SECS seconds: `SIG SECS`").aliases(&["signal-timer"]).multi(),
    opt("rbtimer", Text, Lifecycle, "as `timer`").aliases(&["signal-rbtimer"]).multi(),
    opt("cron", Text, Lifecycle, "run a command from the master: `MINUTE HOUR DAY MONTH WEEKDAY COMMAND` (-1 or `*`: any; -N or `*/N`: every N)").multi(),
    opt("unique-cron", Text, Lifecycle, "as `cron`, not started again while the previous run goes on").multi(),
    opt("cron2", Text, Lifecycle, "a cron as `minute=M,hour=H,day=D,month=M,week=W,unique=1,harakiri=S COMMAND`").multi(),
    opt("cron-harakiri", Seconds, Lifecycle, "kill a cron command running longer than this").default("0"),
    opt("legion-cron", Text, Lifecycle, "a cron run by the legion's lord").multi().noop("kaiser has no legions, so it is never a legion's lord and the command never runs, as on a uWSGI node that is not the lord; use `cron` to run it here"),
    opt("enable-metrics", Bool, Lifecycle, "uWSGI's metrics subsystem, and the switches of its options").aliases(&["metrics-no-cores", "metrics-dir-restore", "metric-dir-restore", "carbon-use-metrics"]).noop("kaiser has no uWSGI metric tree: its counters are in `stats` and on `stats-prometheus`; `uwsgi.metric_*` does not exist (`carbon` pushes the stats' figures)"),
    opt("metric", Text, Lifecycle, "uWSGI's custom metrics, their thresholds and metric files").aliases(&["metric-threshold", "metric-alarm", "alarm-metric", "metrics-dir", "metric-dir"]).multi().noop("kaiser has no custom metrics, so no thresholds raise alarms and no metric files are written; its counters are in `stats` and on `stats-prometheus`"),
    opt("carbon", Text, Lifecycle, "push the stats' figures to this Carbon (Graphite) server, `HOST:PORT`, every `carbon-freq` seconds (plaintext protocol, uWSGI's node names)").multi(),
    opt("carbon-freq", Seconds, Lifecycle, "how often `carbon` pushes").default("60"),
    opt("carbon-timeout", Seconds, Lifecycle, "how long a `carbon` push may wait to connect and to write").default("3"),
    opt("carbon-id", Text, Lifecycle, "the node after the hostname (default: the first socket's address, dots as `_`)"),
    opt("carbon-root", Text, Lifecycle, "the first node of every `carbon` name").default("uwsgi"),
    opt("carbon-hostname-dots", Text, Lifecycle, "a character to replace the dots of the hostname in `carbon` names"),
    opt("carbon-no-workers", Bool, Lifecycle, "push only the totals, not each worker's figures").default("false"),
    opt("carbon-idle-avg", Text, Lifecycle, "what `avg_rt` shows after a period without requests: `last`, `zero` or `none` (not pushed)").default("last"),
    opt("carbon-max-retry", Int, Lifecycle, "retries of a failed `carbon` push").aliases(&["carbon-retry-delay"]).noop("a failed push is logged and the next one comes `carbon-freq` seconds later; kaiser does not retry in between"),
    opt("carbon-name-resolve", Bool, Lifecycle, "allow host names as `carbon` servers").aliases(&["carbon-resolve-names"]).noop("kaiser always resolves a `carbon` host name"),
    opt("alarm", Text, Lifecycle, "define an alarm `NAME PLUGIN:ARG`: `cmd:COMMAND` (the message on its stdin), `signal:N`, `log:TEXT` or `mule:N`").multi(),
    opt("log-alarm", Text, Lifecycle, "`ALARM[,ALARM…] REGEXP`: raise the alarms when a log line matches (starts the log master)").aliases(&["alarm-log"]).multi(),
    opt("not-log-alarm", Text, Lifecycle, "`ALARM[,ALARM…] REGEXP`: a matching log line raises no alarm from the `log-alarm` lines after this one").aliases(&["not-alarm-log"]).multi(),
    opt("alarm-backlog", Text, Lifecycle, "raise these alarms when a socket's listen queue is full (checked every second)").aliases(&["backlog-alarm", "lq-alarm", "alarm-lq", "alarm-listen-queue", "listen-queue-alarm"]).multi(),
    opt("alarm-segfault", Text, Lifecycle, "raise these alarms when a worker dies of a segmentation fault").aliases(&["segfault-alarm"]).multi(),
    opt("alarm-freq", Seconds, Lifecycle, "an alarm repeats the same message at most this often").default("3"),
    opt("alarm-msg-size", Int, Lifecycle, "alarm messages are cut to this many bytes").default("8192"),
    opt("alarm-list", Bool, Lifecycle, "log the alarm plugins at start (`cmd`, `signal`, `mule`, `log`)").aliases(&["alarms-list"]),
    opt("alarm-fd", Text, Lifecycle, "`ALARM FD[:BYTES] MESSAGE`: when the inherited descriptor FD is readable, read BYTES (1; 8 for an eventfd) and raise the alarm with MESSAGE (checked every second)").multi(),
    opt("alarm-cheap", Bool, Lifecycle, "run curl alarms in the main alarm thread").noop("kaiser's alarms have no threads: a `cmd:` alarm is a child process the master does not wait for"),
    opt("heartbeat", Seconds, Lifecycle, "every N seconds, while a worker accepts, send `WATCHDOG=1` to the emperor (or to systemd when run directly) (0: off)").default("0"),
    opt("vassal-sos", Int, Lifecycle, "ask the emperor for reinforcements (broodlord mode)").aliases(&["vassal-sos-backlog"]).noop("kaiser's emperor has no broodlord mode and spawns no zerg instances; scale a busy vassal with `cheaper` and `processes`"),
    // --- static files ---
    opt("static-map", Text, Static, "`/mountpoint=/dir` (or `=/file`): serve files under `/dir` for paths starting with `/mountpoint`, from the worker, without Python; a missing file falls through to the app").multi(),
    opt("static-map2", Text, Static, "like `static-map`, but the whole path (mountpoint included) is looked up under the directory").multi(),
    opt("check-static", Path, Static, "serve the file under this directory named by any request's path, if there is one").aliases(&["static-check"]).multi(),
    opt("static-index", Text, Static, "file to serve when a directory is requested (`index.html`), tried in order").multi(),
    opt("static-skip-ext", Text, Static, "never serve files ending with this suffix (`.php`); such requests go to the app").multi(),
    opt("static-safe", Path, Static, "a directory that files reached through symlinks out of a static root may be in").multi(),
    opt("static-expires-type", Text, Static, "`mime/type=SECONDS`: `Expires` now plus SECONDS for files of this type").multi(),
    opt("static-expires-type-mtime", Text, Static, "`mime/type=SECONDS`: `Expires` the file's mtime plus SECONDS").multi(),
    opt("static-expires", Text, Static, "`REGEXP SECONDS`: `Expires` now plus SECONDS for files whose path matches").multi(),
    opt("static-expires-mtime", Text, Static, "`REGEXP SECONDS`: like `static-expires`, from the file's mtime").multi(),
    opt("static-expires-uri", Text, Static, "`REGEXP SECONDS`: `Expires` for static files whose `REQUEST_URI` matches").multi(),
    opt("static-expires-uri-mtime", Text, Static, "`REGEXP SECONDS`: like `static-expires-uri`, from the file's mtime").multi(),
    opt("static-expires-path-info", Text, Static, "`REGEXP SECONDS`: `Expires` for static files whose `PATH_INFO` matches").multi(),
    opt("static-expires-path-info-mtime", Text, Static, "`REGEXP SECONDS`: like `static-expires-path-info`, from the file's mtime").multi(),
    opt("static-gzip-all", Bool, Static, "serve `FILE.gz` (or `FILE.br`) instead of FILE to clients that accept it, when it exists").default("false"),
    opt("static-gzip", Text, Static, "`REGEXP`: like `static-gzip-all`, for files whose path matches").multi(),
    opt("static-gzip-dir", Text, Static, "like `static-gzip-all`, for files whose path starts with this prefix").aliases(&["static-gzip-prefix"]).multi(),
    opt("static-gzip-ext", Text, Static, "like `static-gzip-all`, for files whose path ends with this suffix").aliases(&["static-gzip-suffix"]).multi(),
    opt("mimefile", Path, Static, "a `mime.types` file for static files' `Content-Type` (default `/etc/mime.types`; a built-in table fills the gaps)").aliases(&["mime-file"]).multi(),
    opt("offload-threads", Int, Static, "threads per worker that finish sending static files a client does not take at once, so request threads never wait on slow clients (0: one when static files are served)").aliases(&["offload-thread", "static-offload-to-thread"]).default("0"),
    opt("honour-range", Bool, Static, "honour `Range` headers").noop("kaiser always honours `Range` for static files (206, 416); an app's responses are the app's"),
    opt("static-cache-paths", Int, Static, "cache resolved static paths").aliases(&["static-cache-paths-name"]).noop("kaiser resolves a static path with one `openat2` per request; there is no cache to keep"),
    opt("disable-sendfile", Bool, Static, "send files with read/write instead of sendfile").noop("kaiser always sends static files, and `wsgi.file_wrapper` bodies of known length, with sendfile"),
    opt("check-static-docroot", Bool, Static, "also serve the file named by the path under each uwsgi request's `DOCUMENT_ROOT` (nginx's `$document_root`), tried after the mappings").default("false"),
    opt("file-serve-mode", Text, Static, "let the front end send static files: `x-accel-redirect` (or `nginx`) answers with an `X-Accel-Redirect` header naming the file, `x-sendfile` with `X-Sendfile`, and no body").aliases(&["fileserve-mode"]),
    // --- emperor ---
    opt("emperor", Text, Emperor, "run as the Emperor, watching this directory or glob for vassal files").multi(),
    opt("emperor-throttle", Millis, Emperor, "throttle step for vassals that keep dying, in ms").default("1000"),
    opt("emperor-max-throttle", Millis, Emperor, "maximum throttle for vassals that keep dying, in ms (3 minutes)").default("180000"),
    opt("emperor-stats-prometheus", Text, Emperor, "serve the Emperor's Prometheus metrics over HTTP on this address (vassals by state, restarts, throttling)"),
    opt("emperor-stats", Text, Emperor, "serve the Emperor's stats JSON on this address").aliases(&["emperor-stats-server"]),
    opt("emperor-tyrant", Bool, Emperor, "run each vassal as the owner of its file").default("false"),
    opt("vassals-include", Path, Emperor, "add `--include FILE` after each vassal's file").multi(),
    opt("vassals-include-before", Path, Emperor, "add `--include FILE` before each vassal's file").multi(),
    opt("vassals-inherit", Path, Emperor, "add `--inherit FILE` after each vassal's file").multi(),
    opt("vassals-inherit-before", Path, Emperor, "add `--inherit FILE` before each vassal's file").multi(),
    opt("emperor-freq", Seconds, Emperor, "how often uWSGI's emperor polls its directories").noop("kaiser is told of changes by inotify and rescans every 5 s anyway (every second where inotify is not available)"),
    opt("emperor-pidfile", Path, Emperor, "write the Emperor's pid to this file at start"),
    opt("emperor-procname", Text, Emperor, "the Emperor's process title").noop("process titles are not changed yet (as `procname`)"),
    opt("emperor-nofollow", Bool, Emperor, "a vassal file that is a symlink is judged by the link itself, not its target: editing the target does not reload the vassal, replacing the link does").default("false"),
    opt("emperor-tyrant-nofollow", Bool, Emperor, "with `emperor-tyrant`: run a vassal whose file is a symlink as the owner of the link, not of its target").default("false"),
    opt("emperor-on-demand-directory", Path, Emperor, "on-demand vassals: bind `DIR/<vassal>.socket` and start the vassal at its first connection (its INI names that socket)").aliases(&["emperor-on-demand-dir"]),
    opt("emperor-on-demand-extension", Text, Emperor, "on-demand vassals: the socket (a unix path or `host:port`) is the first line of `<vassal file><EXT>`; vassals without that file start at once").aliases(&["emperor-on-demand-ext"]),
    opt("emperor-on-demand-exec", Text, Emperor, "on-demand vassals: the socket is the first line `CMD <vassal file>` prints (empty: start at once; 5 s at most)"),
    opt("emperor-graceful-shutdown", Bool, Emperor, "stop the vassals gracefully when the Emperor stops").noop("the Emperor always stops its vassals gracefully on SIGTERM and SIGQUIT (SIGKILL after `reload-mercy`); SIGINT is the fast stop"),
    opt("emperor-required-heartbeat", Seconds, Emperor, "a ready vassal that sent heartbeats and then none for this long is killed and respawned (0: off)").aliases(&["emperor-curse-tolerance"]).default("0"),
    opt("emperor-wrapper", Path, Emperor, "run vassals with this program instead of kaiser, with the same arguments (it should end by exec-ing kaiser)"),
    opt("emperor-wrapper-override", Path, Emperor, "programs tried before `emperor-wrapper` (or kaiser), in order; the first that can be executed runs the vassal").multi(),
    opt("emperor-wrapper-fallback", Path, Emperor, "programs tried, in order, when `emperor-wrapper` (or kaiser) cannot be executed").multi(),
    opt("vassals-set", Text, Emperor, "`NAME=VALUE`: add `--set NAME=VALUE` to each vassal's command line, before its file (so the file's own value wins)").aliases(&["vassal-set"]).multi(),
    opt("vassals-start-hook", Text, Emperor, "run `COMMAND VASSAL` (no shell) first thing in each vassal, with `UWSGI_VASSALS_DIR` set; its exit status is logged, never fatal"),
    opt("vassals-stop-hook", Text, Emperor, "run `COMMAND VASSAL` (no shell) from the emperor each time a vassal's process ends (the emperor does not wait for it)"),
    opt("emperor-extra-extension", Text, Emperor, "also govern files ending with this suffix (`.conf`); they are read as INI (`--ini FILE`)").aliases(&["emperor-extra-ext"]).multi(),
    opt("emperor-no-blacklist", Bool, Emperor, "a vassal that keeps dying before it is ready is retried every `emperor-throttle` instead of backing off up to `emperor-max-throttle`").default("false"),
    opt("emperor-broodlord", Int, Emperor, "broodlord mode: spawn zerg instances when a vassal asks (`vassal-sos`)").noop("kaiser's emperor spawns no zerg instances; vassals scale with `cheaper` and `processes`"),
    opt("emperor-use-clone", Text, Emperor, "spawn vassals with clone() in new namespaces").noop("kaiser starts vassals with fork and exec; put `unshare` in the vassals' configs (or `vassals-set = unshare=…`) for namespaces"),
    opt("emperor-magic-exec", Bool, Emperor, "run executable vassal files and read their output as the config (`exec://`)").noop("kaiser reads every vassal file as INI text, executable or not; generate the INI beforehand"),
    opt("early-emperor", Bool, Emperor, "start the emperor before the master's own setup").noop("kaiser's emperor is a process of its own that starts first thing"),
];

/// The option spec for a name or alias, exactly as written (uWSGI matches keys exactly).
pub(crate) fn find(name: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|spec| spec.names().any(|n| n == name))
}

pub(crate) fn find_short(short: char) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|spec| spec.short == Some(short))
}

pub(crate) fn all_names() -> impl Iterator<Item = &'static str> {
    OPTIONS.iter().flat_map(|spec| spec.names())
}

fn status_doc(status: Status) -> String {
    match status {
        Status::Implemented => "implemented".to_string(),
        Status::NoOp(why) => format!("no-op: {why}"),
        Status::Refused(why) => format!("refused: {why}"),
    }
}

/// `kaiser --help`: options that work, by group, one line each; then the uWSGI options
/// that are recognised but refused.
pub(crate) fn help_text() -> String {
    let mut out = String::from(
        "kaiser: a Python application server that runs uWSGI configurations\n\n\
         usage: kaiser [OPTIONS] [FILE.ini ...]\n       \
         kaiser --ini FILE.ini[:SECTION] [OPTIONS]\n       \
         kaiser --emperor DIR\n\n\
         Every option works as `--name VALUE`, `--name=VALUE`, or `name = VALUE` in an `[uwsgi]` INI\n\
         section, and as a `UWSGI_NAME` environment variable.\n",
    );
    for group in Group::ALL {
        out.push_str(&format!("\n{}:\n", group.title()));
        for spec in OPTIONS
            .iter()
            .filter(|spec| spec.group == group && !matches!(spec.status, Status::Refused(_)))
        {
            let short = spec.short.map(|c| format!("-{c}, ")).unwrap_or_default();
            let flag = format!("{short}--{}{}", spec.name, spec.kind.metavar());
            let mut doc = spec.doc.to_string();
            if !spec.aliases.is_empty() {
                doc.push_str(&format!(" (also: {})", spec.aliases.join(", ")));
            }
            if !spec.default.is_empty() {
                doc.push_str(&format!(" [default: {}]", spec.default));
            }
            if let Status::NoOp(_) = spec.status {
                doc.push_str(" [accepted, no effect]");
            }
            out.push_str(&format!("  {flag:<34} {doc}\n"));
        }
    }
    let refused: Vec<&str> = OPTIONS
        .iter()
        .filter(|spec| matches!(spec.status, Status::Refused(_)))
        .flat_map(|spec| spec.names())
        .collect();
    out.push_str(&format!(
        "\nRecognised uWSGI options that kaiser refuses by design, such as `https` (an error if\nused; the README's option table says why):\n{}\n",
        wrap(&refused.join(", "), 92, "  ")
    ));
    out
}

fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut lines = Vec::new();
    let mut line = String::from(indent);
    for word in text.split(' ') {
        if line.len() + word.len() + 1 > width && line.trim() != "" {
            lines.push(line.trim_end().to_string());
            line = String::from(indent);
        }
        line.push_str(word);
        line.push(' ');
    }
    lines.push(line.trim_end().to_string());
    lines.join("\n")
}

/// The README's option table, in Markdown.
pub(crate) fn markdown() -> String {
    let mut out = String::from(
        "| option | aliases (and related options sharing the row) | type | default | status | description |\n\
         |---|---|---|---|---|---|\n",
    );
    for group in Group::ALL {
        for spec in OPTIONS.iter().filter(|spec| spec.group == group) {
            let mut aliases: Vec<String> = spec.aliases.iter().map(|a| format!("`{a}`")).collect();
            if let Some(short) = spec.short {
                aliases.insert(0, format!("`-{short}`"));
            }
            let kind = if spec.multi {
                format!("{} (repeatable)", spec.kind.doc_name())
            } else {
                spec.kind.doc_name().to_string()
            };
            let default = if spec.default.is_empty() {
                String::new()
            } else {
                format!("`{}`", spec.default)
            };
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} | {} |\n",
                spec.name,
                aliases.join(" "),
                kind,
                default,
                status_doc(spec.status),
                spec.doc.replace('|', "\\|"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_and_shorts_are_unique() {
        let mut seen = HashSet::new();
        for name in all_names() {
            assert!(seen.insert(name), "option name `{name}` appears twice");
        }
        let mut shorts = HashSet::new();
        for short in OPTIONS.iter().filter_map(|spec| spec.short) {
            assert!(
                shorts.insert(short),
                "short option `-{short}` appears twice"
            );
        }
    }

    #[test]
    fn uwsgi_short_forms_are_present() {
        for (short, long) in [
            ('s', "socket"),
            ('p', "processes"),
            ('M', "master"),
            ('b', "buffer-size"),
            ('t', "harakiri"),
            ('L', "disable-logging"),
            ('R', "max-requests"),
            ('z', "socket-timeout"),
            ('l', "listen"),
            ('d', "daemonize"),
            ('m', "memory-report"),
            ('T', "enable-threads"),
            ('i', "single-interpreter"),
            ('Q', "spooler"),
            ('S', "set"),
            ('H', "home"),
            ('w', "module"),
            ('h', "help"),
        ] {
            assert_eq!(
                find_short(short).map(|spec| spec.name),
                Some(long),
                "-{short}"
            );
        }
    }

    #[test]
    fn help_has_one_line_per_working_option() {
        let help = help_text();
        assert!(help.contains("  -p, --processes N"), "{help}");
        assert!(help.contains("--emperor-max-throttle MS"), "{help}");
        assert!(help.contains("--spooler PATH"), "{help}");
        assert!(help.contains("https-socket"), "{help}");
        assert!(
            !help.contains("--https-socket"),
            "refused options are listed by name only"
        );
    }

    #[test]
    fn markdown_has_a_row_per_option() {
        let table = markdown();
        assert_eq!(table.lines().count(), OPTIONS.len() + 2);
        assert!(table.contains("| `processes` | `-p` `workers` | int | `1` | implemented |"));
        assert!(table.contains("| `cheaper` |"));
        assert!(table.contains("| refused: "));
    }
}
