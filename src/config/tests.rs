//! End-to-end cases for [`super::load`]: files, argv and environment in, effective
//! configuration (as `--show-config` prints it) or the list of problems out.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::expand::tests::test_context;
use super::sources::{absolute, FileSystem};
use super::*;

/// An in-memory tree of config files, relative names under the test cwd (`/srv/cwd`).
struct MemFs(HashMap<String, String>);

impl MemFs {
    fn new(files: &[(&str, &str)]) -> Self {
        let cwd = test_context().cwd;
        MemFs(
            files
                .iter()
                .map(|(name, text)| (absolute(&cwd, name), text.to_string()))
                .collect(),
        )
    }
}

impl FileSystem for MemFs {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.0
            .get(path.to_str().unwrap_or(""))
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }

    fn inode(&self, _: &Path) -> Option<u64> {
        Some(7)
    }

    /// Files are the map's keys; directories are their ancestors.
    fn stat(&self, path: &Path) -> Option<logic::PathKind> {
        let path = path.to_str().unwrap_or("");
        if self.0.contains_key(path) {
            return Some(logic::PathKind::File);
        }
        let prefix = format!("{}/", path.trim_end_matches('/'));
        self.0
            .keys()
            .any(|file| file.starts_with(&prefix))
            .then_some(logic::PathKind::Dir)
    }

    fn readable(&self, path: &Path) -> bool {
        self.stat(path).is_some()
    }

    fn list_dir(&self, path: &Path) -> Vec<(String, bool)> {
        let prefix = format!("{}/", path.to_str().unwrap_or("").trim_end_matches('/'));
        let mut names: Vec<(String, bool)> = self
            .0
            .keys()
            .filter_map(|file| file.strip_prefix(&prefix))
            .map(|rest| match rest.split_once('/') {
                Some((dir, _)) => (dir.to_string(), true),
                None => (rest.to_string(), false),
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

fn args(line: &str) -> Vec<OsString> {
    line.split_whitespace().map(OsString::from).collect()
}

fn run(
    files: &[(&str, &str)],
    argv: &str,
    env: &[(&str, &str)],
) -> Result<Loaded, LoadConfigError> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    load_with(&args(argv), &env, &test_context(), &MemFs::new(files))
}

/// The show-config body as `key = value` items joined by ` | `, or `error: ` and the
/// problems joined by ` || `.
fn render(result: &Result<Loaded, LoadConfigError>) -> String {
    match result {
        Ok(loaded) => loaded
            .show_config
            .lines()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" | "),
        Err(error) => format!(
            "error: {}",
            error
                .problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" || ")
        ),
    }
}

/// One `app.ini` holding `ini`, loaded with `kaiser --ini app.ini`.
fn check(ini: &str, expected: &str) {
    let result = run(&[("app.ini", ini)], "--ini app.ini", &[]);
    assert_eq!(render(&result), expected, "loading:\n{ini}");
}

/// Several files, an argv and an environment.
fn check_with(files: &[(&str, &str)], argv: &str, env: &[(&str, &str)], expected: &str) {
    let result = run(files, argv, env);
    assert_eq!(
        render(&result),
        expected,
        "files {files:?}, argv {argv:?}, env {env:?}"
    );
}

/// The warnings (joined by ` || `) of loading `app.ini`.
fn check_warnings(ini: &str, expected: &str) {
    let result = run(&[("app.ini", ini)], "--ini app.ini", &[]);
    let loaded = result.unwrap_or_else(|e| panic!("loading {ini:?} failed:\n{e}"));
    assert_eq!(
        loaded.warnings.join(" || "),
        expected,
        "warnings of:\n{ini}"
    );
}

#[test]
fn dialect() {
    check("[uwsgi]\nprocesses = 4", "processes = 4");
    check("[uwsgi]\nprocesses = 2\nprocesses = 4", "processes = 4");
    check(
        "[uwsgi]\nsocket = :1\nsocket = :2",
        "socket = :1 | socket = :2",
    );
    check("[uwsgi]\nvacuum", "vacuum = true");
    check("[uwsgi]\nvacuum = off", "");
    check("[uwsgi]\nvacuum = No", "");
    check("[uwsgi]\nvacuum = 0", "");
    check("[uwsgi]\nvacuum = yes please", "vacuum = true");
    check(
        "[uwsgi]\nbatch-scheduling = false",
        "batch-scheduling = false",
    );
    check("[uwsgi]\nbatch-scheduling = true", "");
    check("[uwsgi]\ncallable = \"app\"", "callable = \"app\"");
    check("[uwsgi]\n; processes = 3\n# processes = 5\n", "");
    check(
        "[other]\nprocesses = 3\n[uwsgi]\nthreads = 2",
        "threads = 2",
    );
    check(
        "[uwsgi]\nthreads = 2\n[other]\nx = 1\n[uwsgi]\nprocesses = 3",
        "processes = 3 | threads = 2",
    );
    check("[uwsgi]\nenv = A=b=c", "env = A=b=c");
    check(
        "[uwsgi]\n= 4",
        "error: app.ini:2: the line `=4` has no key before `=`",
    );
    check_with(
        &[("app.ini", "[prod]\nprocesses = 8\n[uwsgi]\nprocesses = 1")],
        "--ini app.ini:prod",
        &[],
        "processes = 8",
    );
    check_with(
        &[("app.ini", "[prod]\nprocesses = 8\n[uwsgi]\nprocesses = 2")],
        "app.ini:",
        &[],
        "processes = 2",
    );
    check_with(
        &[(
            "app.ini",
            "[uwsgi]\nprocesses = 2\nini = :extra\n[extra]\nthreads = 3",
        )],
        "app.ini",
        &[],
        "processes = 2 | threads = 3",
    );
}

#[test]
fn magic_variables() {
    let conf = |ini: &str, expected: &str| {
        check_with(
            &[("conf/app.ini", ini)],
            "--ini conf/app.ini",
            &[],
            expected,
        )
    };
    conf(
        "[uwsgi]\nwsgi-file = %dapp.py",
        "wsgi-file = /srv/cwd/conf/app.py",
    );
    conf("[uwsgi]\npidfile = /run/%n.pid", "pidfile = /run/app.pid");
    conf("[uwsgi]\nchdir = %v/%c", "chdir = /srv/cwd/conf");
    conf("[uwsgi]\nprocesses = %k", "processes = 4");
    conf("[uwsgi]\nuid = %U\ngid = %G", "uid = www-data | gid = www");
    conf(
        "[uwsgi]\npidfile = /tmp/%h-%N.pid",
        "pidfile = /tmp/web1-app.pid",
    );
    conf("[uwsgi]\nchdir = /x%Y/100%%", "chdir = /x/100%%");
    check_with(
        &[("conf/app.ini", "[%n]\nprocesses = 3")],
        "--ini conf/app.ini:app",
        &[],
        "processes = 3",
    );
    // Bare arguments, like `include`, do not set the uppercase variables.
    check_with(
        &[("app.ini", "[uwsgi]\npidfile = /tmp/[%N]")],
        "app.ini",
        &[],
        "pidfile = /tmp/[]",
    );
    // An included file sees its own `%d` and the first file's `%D`.
    check_with(
        &[
            ("app.ini", "[uwsgi]\ninclude = sub/base.ini"),
            ("sub/base.ini", "[uwsgi]\nchdir = %d\npidfile = %D%n.pid"),
        ],
        "--ini app.ini",
        &[],
        "chdir = /srv/cwd/sub/ | pidfile = /srv/cwd/base.pid",
    );
}

#[test]
fn placeholders() {
    check(
        "[uwsgi]\nproject = mysite\nchdir = /var/www/%(project)",
        "chdir = /var/www/mysite",
    );
    check(
        "[uwsgi]\nbase = 2\nprocesses = %(base + 1)",
        "processes = 3",
    );
    check(
        "[uwsgi]\nprocesses = 3\nthreads = %(processes * 2)",
        "processes = 3 | threads = 6",
    );
    check(
        "[uwsgi]\nset-ph = n=2\nset-ph = n=3\nprocesses = %(n)",
        "processes = 2",
    );
    check("[uwsgi]\nchdir = /a/%(nope)", "chdir = /a/%%(nope)");
    check("[uwsgi]\nprocesses = %(later)\nlater = 7", "processes = 7");
    check("[uwsgi]\na = %(b)\nb = %(a)\nchdir = %(a)", "error: app.ini:2: a: placeholders refer to each other in a loop || app.ini:3: b: placeholders refer to each other in a loop || app.ini:4: chdir: placeholders refer to each other in a loop");
    check("[uwsgi]\nset = processes=3", "processes = 3");
    check(
        "[uwsgi]\nset = processes",
        "error: app.ini:2: set: expected `name=value`, got `processes`",
    );
    check_with(
        &[("app.ini", "[uwsgi]\nchdir = /srv/%(app)")],
        "--set-ph app=blog --ini app.ini",
        &[],
        "chdir = /srv/blog",
    );
}

#[test]
fn environment() {
    check_with(&[], "", &[("UWSGI_PROCESSES", "3")], "processes = 3");
    check_with(
        &[],
        "--processes 5",
        &[("UWSGI_PROCESSES", "3")],
        "processes = 5",
    );
    check_with(
        &[("app.ini", "[uwsgi]\nprocesses = 2")],
        "--ini app.ini",
        &[("UWSGI_PROCESSES", "3")],
        "processes = 2",
    );
    check_with(&[], "", &[("UWSGI_MAX_REQUESTS", "5")], "max-requests = 5");
    check_with(
        &[],
        "",
        &[("UWSGI_SOCKET", ":9000"), ("UWSGI_HTTP_SOCKET", ":9001")],
        "socket = :9000 | http-socket = :9001",
    );
    check_with(
        &[],
        "",
        &[
            ("UWSGI_EMPEROR_FD", "3"),
            ("UWSGI_RELOADS", "1"),
            ("UWSGI_VASSAL_PROCESSES", "9"),
        ],
        "",
    );
    check_with(
        &[("app.ini", "[uwsgi]\nthreads = 4")],
        "",
        &[("UWSGI_INI", "app.ini")],
        "threads = 4",
    );
    check_with(
        &[("app.ini", "[uwsgi]\nchdir = $(APP_HOME)/src")],
        "app.ini",
        &[("APP_HOME", "/opt/app")],
        "chdir = /opt/app/src",
    );
    check_with(
        &[("app.ini", "[uwsgi]\nchdir = $(NOPE:-/srv)/src")],
        "app.ini",
        &[],
        "chdir = /srv/src",
    );
    check_with(
        &[
            ("app.ini", "[uwsgi]\nhome = @(venv.txt)"),
            ("venv.txt", "/opt/venv\n"),
        ],
        "app.ini",
        &[],
        "home = /opt/venv",
    );
    check_with(
        &[("app.ini", "[uwsgi]\nhome = @(missing.txt)")],
        "app.ini",
        &[],
        "error: app.ini:2: home: cannot read `missing.txt` for `@(missing.txt)`: entity not found",
    );
}

#[test]
fn command_line_forms() {
    check_with(
        &[],
        "-s :80 -p 2 -M -T",
        &[],
        "processes = 2 | socket = :80",
    );
    check_with(
        &[],
        "--socket=:80 --workers=3 --threads 2",
        &[],
        "processes = 3 | threads = 2 | socket = :80",
    );
    check_with(&[], "-p4 -R 100 -L -b 8192 -l 64 -z 9", &[], "processes = 4 | listen = 64 | buffer-size = 8192 | socket-timeout = 9 | disable-logging = true | max-requests = 100");
    check_with(
        &[],
        "--need-app=false --lazy-apps",
        &[],
        "need-app = false | lazy-apps = true",
    );
    check_with(
        &[],
        "-C --socket /tmp/a.sock",
        &[],
        "socket = /tmp/a.sock | chmod-socket = 666",
    );
    check_with(
        &[],
        "-H /venv -w app:create_app",
        &[],
        "module = app | callable = create_app | home = /venv",
    );
    check_with(&[], "-S processes=3", &[], "processes = 3");
    check_with(
        &[],
        "app.py --http :8000",
        &[],
        "wsgi-file = app.py | http = :8000",
    );
    check_with(&[], "--max_requests 5", &[], "error: command line argument 1: unknown option `--max_requests` (did you mean `--max-requests`?)");
    check_with(&[], "-Q /tmp/spool", &[], "spooler = /tmp/spool");
    check_with(&[], "--daemonize /tmp/log", &[], "daemonize = /tmp/log");
    check_with(&[], "-d /tmp/log", &[], "daemonize = /tmp/log");
    check_with(&[], "--daemonize2 /tmp/log", &[], "daemonize = /tmp/log");
    check_with(
        &[],
        "app.yaml",
        &[],
        "error: command line argument 1: yaml: cannot read `app.yaml`: entity not found",
    );
    check_with(&[], "", &[("UWSGI_PLUGINS", "python3")], "");
}

#[test]
fn precedence_of_command_line_and_files() {
    let p = [("p.ini", "[uwsgi]\nprocesses = 2")];
    check_with(&p, "--processes 4 --ini p.ini", &[], "processes = 2");
    check_with(&p, "--ini p.ini --processes 4", &[], "processes = 4");
    check_with(&p, "-p 4 p.ini", &[], "processes = 2");
    check_with(
        &p,
        "--socket :1 --ini p.ini --socket :2",
        &[],
        "processes = 2 | socket = :1 | socket = :2",
    );
}

#[test]
fn include_and_inherit() {
    let base = ("base.ini", "[uwsgi]\nprocesses = 2\nthreads = 8");
    check_with(
        &[
            base,
            ("app.ini", "[uwsgi]\ninclude = base.ini\nprocesses = 4"),
        ],
        "app.ini",
        &[],
        "processes = 4 | threads = 8",
    );
    check_with(
        &[
            base,
            ("app.ini", "[uwsgi]\ninherit = base.ini\nprocesses = 4"),
        ],
        "app.ini",
        &[],
        "processes = 2 | threads = 8",
    );
    check_with(
        &[
            base,
            ("app.ini", "[uwsgi]\nprocesses = 4\ninclude = base.ini"),
        ],
        "app.ini",
        &[],
        "processes = 2 | threads = 8",
    );
    check_with(
        &[base, ("app.ini", "[uwsgi]\nprocesses = 4")],
        "--inherit base.ini --ini app.ini",
        &[],
        "processes = 2 | threads = 8",
    );
    check_with(
        &[("app.ini", "[uwsgi]\ninclude = app.ini")],
        "app.ini",
        &[],
        "error: app.ini:2: include: `app.ini` includes itself",
    );
    check_with(
        &[("app.ini", "[uwsgi]\ninclude = nope.ini")],
        "app.ini",
        &[],
        "error: app.ini:2: include: cannot read `nope.ini`: entity not found",
    );
    check_with(
        &[],
        "--ini nope.ini",
        &[],
        "error: command line argument 1: ini: cannot read `nope.ini`: entity not found",
    );
    check_with(&[("app.ini", "[uwsgi]\ninclude = http://x/a.ini")], "app.ini", &[], "error: app.ini:2: include: cannot load `http://x/a.ini`: kaiser reads config files from the filesystem only");
    // Templates are not expanded after the passes, exactly as uWSGI.
    check_with(
        &[
            ("t.ini", "[uwsgi]\nchdir = /srv/%(name)"),
            ("app.ini", "[uwsgi]\nname = x\ninherit = t.ini"),
        ],
        "app.ini",
        &[],
        "chdir = /srv/%%(name)",
    );
}

#[test]
fn strict_mode() {
    check(
        "[uwsgi]\nstrict = true\nprocesses = 2\nproject = x",
        "error: app.ini:4: project: unknown option",
    );
    check(
        "[uwsgi]\nproject = x\nstrict = true",
        "error: app.ini:2: project: unknown option",
    );
    check(
        "[uwsgi]\nstrict\nmax_requests = 5",
        "error: app.ini:3: max_requests: unknown option (did you mean `max-requests`?)",
    );
    check("[uwsgi]\nstrict\nproject = x\nchdir = /%(project)", "error: app.ini:3: project: unknown option; in strict mode define placeholders with `set-ph = project=…`");
    check(
        "[uwsgi]\nstrict\nset-ph = project=x\nchdir = /%(project)",
        "strict = true | chdir = /x",
    );
    check(
        "[uwsgi]\nstrict\nset = project=x",
        "error: app.ini:3: project: unknown option",
    );
    check("[uwsgi]\nstrict = true\nstrict = false\nproject = x", "");
    check_with(
        &[],
        "--strict",
        &[("UWSGI_BOGUS", "1")],
        "error: environment `UWSGI_BOGUS`: bogus: unknown option",
    );
}

#[test]
fn unknown_keys_warn_with_did_you_mean() {
    check_warnings(
        "[uwsgi]\nmax_requests = 5",
        "app.ini:2: max_requests: unknown option, ignored (did you mean `max-requests`?)",
    );
    check_warnings("[uwsgi]\npy-callos-afterfork = true", "app.ini:2: py-callos-afterfork: unknown option, ignored (did you mean `py-call-osafterfork`?)");
    check_warnings(
        "[uwsgi]\nworkers_count = 5",
        "app.ini:2: workers_count: unknown option, ignored",
    );
    check_warnings("[uwsgi]\nproject = x\nchdir = /%(project)", "");
    check_warnings(
        "[uwsgi]\nchdir = /%(nope)",
        "app.ini:2: chdir: placeholder `%(nope)` is not defined, so it is left as is",
    );
    check_warnings(
        "[other]\nprocesses = 2",
        "command line argument 1: ini: section `[uwsgi]` not found in `app.ini`",
    );
}

#[test]
fn blog_post_hints() {
    check("[uwsgi]\nuid = www-data # Ubuntu default user", "error: app.ini:2: uid: the whole text `www-data # Ubuntu default user` is the value because uWSGI INI files have no inline comments (it is not what was meant); move the comment to its own line above `uid`");
    check("[uwsgi]\npidfile=uwsgi.pid // pid file", "error: app.ini:2: pidfile: the whole text `uwsgi.pid // pid file` is the value because uWSGI INI files have no inline comments (it is not what was meant); move the comment to its own line above `pidfile`");
    check("[uwsgi]\nvacuum = false ; never", "error: app.ini:2: vacuum: the whole text `false ; never` is the value because uWSGI INI files have no inline comments (it is not what was meant); move the comment to its own line above `vacuum`");
    check("[uwsgi]\nvacuum = true ; clean up", "vacuum = true");
    check_warnings("[uwsgi]\nsocket-timeout = 60   ; seconds", "app.ini:2: socket-timeout: the whole text `60   ; seconds` is the value because uWSGI INI files have no inline comments (uWSGI happens to read the same value here); move the comment to its own line above `socket-timeout`");
    check(
        "[uwsgi]\nsocket-timeout = 60   ; seconds",
        "socket-timeout = 60",
    );
    check("[uwsgi]\nsocket==:8080", "error: app.ini:2: socket: the value `=:8080` starts with `=` (written `socket==:8080`?); write `socket = :8080`");
    check("[uwsgi]\nprocesses==4", "error: app.ini:2: processes: the value `=4` starts with `=` (written `processes==4`?); write `processes = 4`");
    check_warnings("[uwsgi]\nlog-encoder = json {\"t\":${unix},\"m\":\"${msg}\"}\nlog-req-encoder = format ${msg}", "");
    check_warnings("[uwsgi]\nchdir = $HOME/app", "app.ini:2: chdir: `$HOME` is not expanded; uWSGI config files write environment variables as `$(HOME)`");
    check_warnings("[uwsgi]\nenv = STAMP=%Y-%m", "app.ini:2: env: `%Y`, `%m` removed: uWSGI deletes `%` sequences that are not magic variables and replaces the ones that are (`%d` is the file's directory); write `%%` for a literal `%`, as strftime formats need");
    check("[uwsgi]\nsocket = :8080\nhttp = :8080", "error: app.ini:3: http: `:8080` is already used by `socket` at app.ini:2; a uwsgi `socket` and an HTTP socket cannot share an address, give each its own port or path");
    check(
        "[uwsgi]\nsocket = /tmp/a.sock\nsocket = /tmp/a.sock",
        "error: app.ini:3: socket: `/tmp/a.sock` is already used by `socket` at app.ini:2",
    );
    check(
        "[uwsgi]\nprocesses = four",
        "error: app.ini:2: processes: expected a whole number, got `four`",
    );
    check(
        "[uwsgi]\nprocesses = 0",
        "error: app.ini:2: processes: must be at least 1, got `0`",
    );
    check(
        "[uwsgi]\nsocket-timeout = -1",
        "error: app.ini:2: socket-timeout: must not be negative, got `-1`",
    );
}

#[test]
fn all_problems_of_a_file_at_once() {
    check(
        "[uwsgi]\nprocesses = x\nhttps-socket = :9\nsocket = :http\nstrict\nbogus = 1",
        "error: app.ini:2: processes: expected a whole number, got `x` || \
         app.ini:3: https-socket: `https-socket` is refused: kaiser does not terminate TLS: put nginx (or another proxy) in front and use `http-socket` or `socket` behind it; a TLS stack would add a heavy dependency for what the front end does better || \
         app.ini:4: socket: invalid port `http` in `:http` || \
         app.ini:6: bogus: unknown option",
    );
}

#[test]
fn statuses() {
    check(
        "[uwsgi]\nhttps-socket = :9",
        "error: app.ini:2: https-socket: `https-socket` is refused: kaiser does not terminate TLS: put nginx (or another proxy) in front and use `http-socket` or `socket` behind it; a TLS stack would add a heavy dependency for what the front end does better",
    );
    check(
        "[uwsgi]\nspooler = /tmp/spool\nspooler-processes = 2\nspooler-quiet\nlocks = 4",
        "spooler = /tmp/spool | spooler-processes = 2 | spooler-quiet = true | locks = 4",
    );
    check(
        "[uwsgi]\nlogto = /var/log/app.log",
        "logto = /var/log/app.log",
    );
    check(
        "[uwsgi]\nlogto = 127.0.0.1:1717",
        "logger = socket:127.0.0.1:1717",
    );
    check("[uwsgi]\ndaemonize = 127.0.0.1:1717", "error: app.ini:2: daemonize: logging to a UDP address (`127.0.0.1:1717`) is not supported yet: give a file path, or log to stderr and let systemd or the emperor collect it");
    check(
        "[uwsgi]\nlogto2 = /var/log/app.log",
        "logto2 = /var/log/app.log",
    );
    check("[uwsgi]\nlog-reopen = true", "");
    check(
        "[uwsgi]\nadd-header = X-A:  b c \nadd-header = X-B: d",
        "add-header = X-A: b c | add-header = X-B: d",
    );
    check(
        "[uwsgi]\nadd-header = no colon",
        "error: app.ini:2: add-header: expected `Name: value`, got `no colon`",
    );
    check("[uwsgi]\nmax-vars = 200", "");
    check("[uwsgi]\nlazy = true", "lazy-apps = true");
    check("[uwsgi]\nhttps = :443,cert.pem,key.pem", "error: app.ini:2: https: `https` is refused: kaiser does not terminate TLS: put nginx (or another proxy) in front and use `http-socket` or `socket` behind it; a TLS stack would add a heavy dependency for what the front end does better");
    check("[uwsgi]\nhttp-timeout = 300\nhttp-keepalive\nhttp-auto-chunked\nhttp-raw-body\nhttp-to = /tmp/app.sock\nhttp-processes = 4\nhttp-websockets\nno-orphans\ncap = setgid,setuid\nclose-on-exec", "");
    check("[uwsgi]\nharakiri-verbose = false", "");
    check("[uwsgi]\nmaster = true\nenable-threads\nsingle-interpreter\ndie-on-term\nthunder-lock\nauto-procname\npy-call-osafterfork", "");
    check("[uwsgi]\nplugins = python3", "");
    check("[uwsgi]\nplugin = python311,http", "");
    // Plugins whose features kaiser has built in (loggers, routers, gevent), as real
    // configs load them (tests/fixtures/real-configs: geopuzzle, backurne, jupyter-jsc).
    check(
        "[uwsgi]\nplugins = python3,logfile\nplugins = python3, syslog",
        "",
    );
    check(
        "[uwsgi]\nneed-plugins = http,router_static,python3\nplugin = gevent",
        "",
    );
    check("[uwsgi]\nplugins = python3,sentry", "error: app.ini:2: plugins: plugin `sentry` is not available: kaiser is a Python-only server with the python plugin built in");
    check("[uwsgi]\nplugins = php", "error: app.ini:2: plugins: plugin `php` is not available: kaiser is a Python-only server with the python plugin built in");
    check("[uwsgi]\nfor = a b\nendfor", "");
}

/// Options the public-config survey (tests/config_survey.rs) found in real configs.
#[test]
fn survey_options() {
    check("[uwsgi]\nmax-fd = 10000", "max-fd = 10000");
    check("[uwsgi]\nno-defer-accept = 1", "no-defer-accept = true");
    check("[uwsgi]\nno-site = True", "no-site = true");
    check(
        "[uwsgi]\nprint = hello\niprint = again",
        "print = hello | print = again",
    );
    check(
        "[uwsgi]\ncollect-header = X-Sendfile X_SENDFILE\npull-header = X-A A",
        "collect-header = X-Sendfile X_SENDFILE | pull-header = X-A A",
    );
    check(
        "[uwsgi]\ncollect-header = X-Sendfile",
        "error: app.ini:2: collect-header: expected `HEADER VAR`, got `X-Sendfile`",
    );
    check(
        "[uwsgi]\npypy-wsgi = app:ocapp",
        "module = app | callable = ocapp",
    );
    check(
        "[uwsgi]\nno-default-app = true\nmaster-as-root\nvhost\nprofiler = pycall\ncatch-exceptions\nno-threads-wait\nchunked-input-limit = 10485760\nignore-script-name",
        "",
    );
}

#[test]
fn typed_values() {
    check("[uwsgi]\nworkers = 3", "processes = 3");
    check("[uwsgi]\nvenv = /v", "home = /v");
    check("[uwsgi]\npyhome = /v", "home = /v");
    check(
        "[uwsgi]\npp = /a\npython-path = /b\npythonpath = /c",
        "pythonpath = /a | pythonpath = /b | pythonpath = /c",
    );
    check("[uwsgi]\nfile = app.py", "wsgi-file = app.py");
    check("[uwsgi]\nwsgi = app", "module = app");
    check(
        "[uwsgi]\nmodule = app:application2",
        "module = app | callable = application2",
    );
    check(
        "[uwsgi]\ncallable = x\nmodule = app:app",
        "module = app | callable = app",
    );
    check("[uwsgi]\nchmod-socket", "chmod-socket = 666");
    check("[uwsgi]\nchmod-socket = 660", "chmod-socket = 660");
    check(
        "[uwsgi]\nchmod = 9",
        "error: app.ini:2: chmod: expected an octal file mode such as `660`, got `9`",
    );
    check("[uwsgi]\nbuffer-size = 100000", "buffer-size = 65535");
    check(
        "[uwsgi]\nbuffer-size = 32768\npost-buffering = 8192\nlisten = 100\nsocket-timeout = 10",
        "listen = 100 | buffer-size = 32768 | post-buffering = 8192 | socket-timeout = 10",
    );
    check("[uwsgi]\nmax-requests = 0", "");
    check(
        "[uwsgi]\nstats-server = 127.0.0.1:9191\nstats-min\nstats-http = true\nstats-no-cores\nstats-no-metrics",
        "stats = 127.0.0.1:9191 | stats-http = true | stats-minified = true | stats-no-cores = true",
    );
    check(
        "[uwsgi]\nharakiri = 30\nharakiri-verbose\nharakiri-graceful-timeout = 5",
        "harakiri = 30 | harakiri-verbose = true | harakiri-graceful-timeout = 5",
    );
    check("[uwsgi]\nharakiri = 0\nharakiri-graceful-timeout = 3", "");
    check(
        "[uwsgi]\nharakiri-graceful-signal = 15\nharakiri-queue-threshold = 3",
        "harakiri-queue-threshold = 3",
    );
    check(
        "[uwsgi]\nhttp-socket = 127.0.0.1:0\nsocket = 127.0.0.1:0",
        "http-socket = 127.0.0.1:0 | socket = 127.0.0.1:0",
    );
    check(
        "[uwsgi]\nneed-app = false\nlazy-apps = true",
        "need-app = false | lazy-apps = true",
    );
    check(
        "[uwsgi]\nenv = NOVALUE",
        "error: app.ini:2: env: expected `NAME=value`, got `NOVALUE`",
    );
    check(
        "[uwsgi]\nemperor-max-throttle = 60000\nemperor-throttle = 500",
        "emperor-throttle = 500 | emperor-max-throttle = 60000",
    );
    check(
        "[uwsgi]\nhttp-socket = [::1]:8000\nhttp11-socket = @kaiser\nuwsgi-socket = 127.0.0.1:0",
        "http-socket = [::1]:8000 | http11-socket = @kaiser | uwsgi-socket = 127.0.0.1:0",
    );
    check(
        "[uwsgi]\nprotocol = http\nsocket = :80\nuwsgi-socket = :81",
        "protocol = http | socket = :80 | uwsgi-socket = :81",
    );
    check(
        "[uwsgi]\nprotocol = fastcgi\nsocket = :80\nfastcgi-nph-socket = :81",
        "protocol = fastcgi | socket = :80 | fastcgi-nph-socket = :81",
    );
    check("[uwsgi]\nprotocol = scgi", "error: app.ini:2: protocol: kaiser speaks `uwsgi`, `http`, `fastcgi`, `fastcgi-nph`, `puwsgi` and `raw` on `socket` entries, not `scgi`");
    check(
        "[uwsgi]\nstats-server = 127.0.0.1:9191\nstats-http = true\nstats-minified = true",
        "stats = 127.0.0.1:9191 | stats-http = true | stats-minified = true",
    );
}

#[test]
fn reload_and_recycling_values() {
    check(
        "[uwsgi]\nmaster-fifo = /tmp/f\nmaster-fifo = /tmp/g\ntouch-reload = /tmp/t",
        "touch-reload = /tmp/t | master-fifo = /tmp/f | master-fifo = /tmp/g",
    );
    check(
        "[uwsgi]\ntouch-chain-reload = /tmp/c\ntouch-workers-reload = /tmp/w",
        "touch-chain-reload = /tmp/c | touch-workers-reload = /tmp/w",
    );
    check(
        "[uwsgi]\nmax-requests = 1000\nmax-requests-delta = 10\nmax-requests-jitter = 50",
        "max-requests = 1000 | max-requests-delta = 10 | max-requests-jitter = 50",
    );
    check(
        "[uwsgi]\nmax-worker-lifetime = 3600\nmax-worker-lifetime-delta = 30\nmin-worker-lifetime = 0",
        "max-worker-lifetime = 3600 | max-worker-lifetime-delta = 30 | min-worker-lifetime = 0",
    );
    check("[uwsgi]\nmin-worker-lifetime = 10", "");
    check(
        "[uwsgi]\nreload-on-rss = 512\nreload-on-as = 1.5\nevil-reload-on-rss = 1024\nevil-reload-on-as = 4096",
        "reload-on-rss = 512 | reload-on-as = 1.5 | evil-reload-on-rss = 1024 | evil-reload-on-as = 4096",
    );
    check(
        "[uwsgi]\nreload-on-rss = lots",
        "error: app.ini:2: reload-on-rss: expected a size in megabytes such as `512` or `1.5`, got `lots`",
    );
    check(
        "[uwsgi]\ntouch-exec = /tmp/l",
        "error: app.ini:2: touch-exec: expected `FILE COMMAND`, got `/tmp/l`",
    );
    check(
        "[uwsgi]\ntouch-signal = /tmp/l 17\nfs-brutal-reload = /tmp/b\nalarm = a log:x\nlog-alarm = a ^x\nalarm-freq = 9",
        "touch-signal = /tmp/l 17 | fs-brutal-reload = /tmp/b | alarm = a log:x | log-alarm = a ^x | alarm-freq = 9",
    );
    check(
        "[uwsgi]\ntouch-signal = /tmp/l",
        "error: app.ini:2: touch-signal: expected `FILE SIGNAL`, got `/tmp/l`",
    );
}

#[test]
fn sockets_are_typed() {
    let loaded = run(
        &[],
        "-s :8080 --http-socket /run/a.sock --http @x --socket [::1]:0",
        &[],
    )
    .expect("loads");
    let sockets: Vec<(Protocol, Address, &str)> = loaded
        .config
        .sockets
        .iter()
        .map(|s| (s.protocol, s.address.clone(), s.option.as_str()))
        .collect();
    assert_eq!(
        sockets,
        vec![
            (
                Protocol::Uwsgi,
                Address::Tcp {
                    host: String::new(),
                    port: 8080
                },
                "socket"
            ),
            (
                Protocol::Http,
                Address::Unix(PathBuf::from("/run/a.sock")),
                "http-socket"
            ),
            (Protocol::Http, Address::Abstract("x".into()), "http"),
            (
                Protocol::Uwsgi,
                Address::Tcp {
                    host: "::1".into(),
                    port: 0
                },
                "socket"
            ),
        ]
    );
}

#[test]
fn actions_and_names() {
    let action = |argv: &str| run(&[("app.ini", "[uwsgi]\n")], argv, &[]).map(|l| l.config.action);
    assert_eq!(action("--help --bogus"), Ok(Action::Help));
    assert_eq!(action("--bogus -h"), Ok(Action::Help));
    assert_eq!(action("--version nope.conf"), Ok(Action::Version));
    assert_eq!(action("app.ini"), Ok(Action::Run));
    assert_eq!(action("--check-config app.ini"), Ok(Action::CheckConfig));
    assert_eq!(
        action("--print-config --ini app.ini"),
        Ok(Action::PrintConfig)
    );
    // uWSGI's `show-config` logs the configuration and then runs.
    assert_eq!(action("--show-config --ini app.ini"), Ok(Action::Run));
    let shows =
        |argv: &str| run(&[("app.ini", "[uwsgi]\n")], argv, &[]).map(|l| l.config.show_config);
    assert_eq!(shows("--show-config --ini app.ini"), Ok(true));
    assert_eq!(shows("--ini app.ini"), Ok(false));
    assert_eq!(
        action("--reload /run/app.pid"),
        Ok(Action::Reload("/run/app.pid".into()))
    );
    assert_eq!(
        action("--stop /run/app.pid"),
        Ok(Action::Stop("/run/app.pid".into()))
    );

    let loaded = run(
        &[
            ("conf/mysite.ini", "[uwsgi]\ninclude = base.ini"),
            ("base.ini", ""),
        ],
        "conf/mysite.ini",
        &[],
    )
    .expect("loads");
    assert_eq!(loaded.config.name, "mysite");
    assert_eq!(
        loaded.config.files,
        vec![PathBuf::from("conf/mysite.ini"), PathBuf::from("base.ini")]
    );
    assert_eq!(run(&[], "-s :1", &[]).expect("loads").config.name, "kaiser");
    let options = run(
        &[("app.ini", "[uwsgi]\nmaster\nset-ph = x=1\nprocesses = %(x)")],
        "app.ini",
        &[],
    )
    .expect("loads")
    .options;
    assert_eq!(
        options,
        vec![
            ("ini".into(), "app.ini".into()),
            ("master".into(), String::new()),
            ("processes".into(), "1".into())
        ]
    );
}

#[test]
fn defaults() {
    let config = run(&[], "", &[])
        .expect("an empty configuration loads")
        .config;
    assert_eq!(config, Config::default());
    assert_eq!(
        (config.processes, config.threads, config.callable.as_str()),
        (1, 1, "application")
    );
    assert!(config.need_app && !config.lazy_apps);
    assert_eq!(config.worker_reload_mercy, Duration::from_secs(60));
    assert_eq!(config.reload_mercy, Duration::from_secs(30));
    assert_eq!(
        (config.listen, config.buffer_size, config.post_buffering),
        (1024, 4096, 0)
    );
    assert_eq!(config.socket_timeout, Duration::from_secs(4));
    assert_eq!(config.emperor_throttle, Duration::from_secs(1));
    assert_eq!(config.emperor_max_throttle, Duration::from_secs(180));
}

fn fixture(name: &str) -> &'static str {
    match name {
        "django.ini" => include_str!("testdata/django.ini"),
        "flask.ini" => include_str!("testdata/flask.ini"),
        "bloomberg.ini" => include_str!("testdata/bloomberg.ini"),
        "emperor.ini" => include_str!("testdata/emperor.ini"),
        _ => unreachable!("no fixture `{name}`"),
    }
}

fn check_fixture(name: &str, expected: &str) {
    let path = format!("/etc/uwsgi/vassals/{name}");
    let result = run(
        &[(path.as_str(), fixture(name))],
        &format!("--ini {path}"),
        &[],
    );
    let rendered = match &result {
        Ok(loaded) => loaded.show_config.clone(),
        Err(error) => format!("error:\n{error}\n"),
    };
    assert_eq!(rendered, expected, "fixture {name}");
}

#[test]
fn fixture_django() {
    check_fixture(
        "django.ini",
        "[uwsgi]\n\
         module = mysite.wsgi\n\
         chdir = /var/www/mysite\n\
         home = /var/www/mysite/venv\n\
         env = DJANGO_SETTINGS_MODULE=mysite.settings\n\
         processes = 5\n\
         uid = www-data\n\
         gid = www-data\n\
         vacuum = true\n\
         socket = /run/uwsgi/mysite.sock\n\
         chmod-socket = 664\n",
    );
}

#[test]
fn fixture_flask() {
    check_fixture(
        "flask.ini",
        "[uwsgi]\n\
         module = app\n\
         callable = app\n\
         chdir = /etc/uwsgi/vassals/\n\
         home = /etc/uwsgi/vassals/venv\n\
         processes = 5\n\
         threads = 2\n\
         vacuum = true\n\
         socket = myproject.sock\n\
         http = :5000\n\
         chmod-socket = 660\n",
    );
}

#[test]
fn fixture_bloomberg_lists_every_problem() {
    let path = "/etc/uwsgi/vassals/bloomberg.ini";
    let error = run(
        &[(path, fixture("bloomberg.ini"))],
        &format!("--ini {path}"),
        &[],
    )
    .expect_err("the production block has an option uWSGI does not know either");
    let lines: Vec<String> = error
        .problems
        .iter()
        .map(|p| format!("{}: {}", p.origin, p.key))
        .collect();
    let f = |line: u32, key: &str| format!("{path}:{line}: {key}");
    assert_eq!(
        lines,
        vec![
            f(15, "py-callos-afterfork"),
            // `max-worker-lifetime = 3600 ; …` only warns: the comment leaves the number whole.
            // `reload-on-rss = 2048 ; …` and the cheaper-busyness block (lines 22-33) load:
            // uWSGI's atoi rule leaves their numbers whole; the spooler (line 38) is supported.
        ]
    );
    assert!(error.to_string().contains(&format!(
        "{path}:15: py-callos-afterfork: unknown option (did you mean `py-call-osafterfork`?)"
    )));
}

#[test]
fn fixture_bloomberg_supported_part_warns_about_inline_comments() {
    let supported: String = fixture("bloomberg.ini")
        .lines()
        .filter(|line| {
            let key = line.split('=').next().unwrap_or("").trim();
            !(key.starts_with("cheaper")
                || key.starts_with("py-callos")
                || ["max-worker-lifetime", "reload-on-rss", "spooler"].contains(&key))
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let loaded =
        run(&[("app.ini", &supported)], "--ini app.ini", &[]).expect("the supported part loads");
    assert_eq!(
        loaded.show_config,
        "[uwsgi]\nstrict = true\nprocesses = 128\nvacuum = true\n\
         logto = /var/log/uwsgi/app.log\ndisable-logging = true\nlog-4xx = true\nlog-5xx = true\n\
         max-requests = 1000\nharakiri = 60\n\
         stats = /tmp/mysvc-stats.sock\n"
    );
    let commented: Vec<&str> = loaded
        .warnings
        .iter()
        .filter(|w| w.contains("no inline comments"))
        .map(|w| w.split(':').nth(2).unwrap_or("").trim())
        .collect();
    assert_eq!(
        commented,
        vec![
            "vacuum",
            "die-on-term",
            "disable-logging",
            "log-4xx",
            "log-5xx",
            "harakiri",
            "max-requests",
            "worker-reload-mercy",
            "processes",
            "procname-prefix"
        ]
    );
}

#[test]
fn fixture_emperor() {
    check_fixture(
        "emperor.ini",
        "[uwsgi]\n\
         uid = root\n\
         gid = root\n\
         emperor = /etc/uwsgi/vassals\n\
         emperor-throttle = 2000\n\
         emperor-stats = 127.0.0.1:9192\n\
         emperor-tyrant = true\n\
         vassals-include = /etc/uwsgi/vassals/vassal-defaults.ini\n",
    );
}

#[test]
fn help_and_table_are_public() {
    assert!(help_text().contains("--socket ADDR"));
    assert!(option_table_markdown().starts_with("| option |"));
}

/// Config lines that load on their own, for the round-trip property.
fn config_line() -> impl Strategy<Value = String> {
    let word = "[a-z][a-z0-9_.]{0,8}";
    let path = "/[a-z0-9_.]{1,8}(/[a-z0-9_.-]{1,8}){0,2}";
    prop_oneof![
        (1u32..64).prop_map(|n| format!("processes = {n}")),
        (1u32..16).prop_map(|n| format!("threads = {n}")),
        (0u64..100_000).prop_map(|n| format!("max-requests = {n}")),
        (0u64..600).prop_map(|n| format!("worker-reload-mercy = {n}")),
        (1u32..4096).prop_map(|n| format!("listen = {n}")),
        (0usize..200_000).prop_map(|n| format!("buffer-size = {n}")),
        (0u32..0o777).prop_map(|n| format!("chmod-socket = {n:o}")),
        (0u64..1_000_000).prop_map(|n| format!("emperor-max-throttle = {n}")),
        any::<bool>().prop_map(|b| format!("vacuum = {b}")),
        any::<bool>().prop_map(|b| format!("need-app = {b}")),
        any::<bool>().prop_map(|b| format!("strict = {b}")),
        any::<bool>().prop_map(|b| format!("log-4xx = {b}")),
        any::<bool>().prop_map(|b| format!("log-ioerror = {b}")),
        any::<bool>().prop_map(|b| format!("disable-write-exception = {b}")),
        path.prop_map(|p| format!("logto = {p}.log")),
        (0u64..100_000).prop_map(|n| format!("log-slow = {n}")),
        (0u64..10_000_000).prop_map(|n| format!("log-big = {n}")),
        (0u64..10_000_000).prop_map(|n| format!("limit-post = {n}")),
        any::<bool>().prop_map(|b| format!("memory-report = {b}")),
        (word, word).prop_map(|(m, t)| format!("mount = /{m}={t}.py")),
        any::<bool>().prop_map(|b| format!("manage-script-name = {b}")),
        any::<bool>().prop_map(|b| format!("so-keepalive = {b}")),
        (0u32..0o777).prop_map(|n| format!("umask = {n:03o}")),
        (0u64..100_000).prop_map(|n| format!("threads-stacksize = {n}")),
        (1u16..65535).prop_map(|p| format!("http-socket = 127.0.0.1:{p}")),
        (1u16..65535).prop_map(|p| format!("socket = [::1]:{p}")),
        path.prop_map(|p| format!("socket = {p}.sock")),
        word.prop_map(|w| format!("socket = @{w}")),
        (word, word).prop_map(|(m, c)| format!("module = {m}:{c}")),
        word.prop_map(|w| format!("callable = {w}")),
        path.prop_map(|p| format!("pythonpath = {p}")),
        path.prop_map(|p| format!("home = {p}")),
        ("[A-Z_]{1,6}", "[a-z0-9%=:/]{0,10}")
            .prop_map(|(k, v)| format!("env = {k}={}", v.replace('%', "%%"))),
        word.prop_map(|w| format!("uid = {w}")),
        path.prop_map(|p| format!("emperor = {p}")),
        Just("protocol = http".to_string()),
        (0u32..6).prop_map(|n| format!("cheaper = {n}")),
        (0u32..80).prop_map(|n| format!("cheaper-initial = {n}")),
        prop_oneof![Just("busyness"), Just("backlog"), Just("spare2")]
            .prop_map(|algo| format!("cheaper-algo = {algo}")),
        (0u64..100).prop_map(|n| format!("cheaper-busyness-max = {n}")),
        (0u64..10).prop_map(|n| format!("cheaper-busyness-backlog-nonzero = {n}")),
        path.prop_map(|p| format!("health-check-path = {p}")),
        (0u64..600).prop_map(|n| format!("health-drain-delay = {n}")),
        (0u64..600).prop_map(|n| format!("heartbeat = {n}")),
        (1u16..65535).prop_map(|p| format!("stats-prometheus = 127.0.0.1:{p}")),
        (0u64..600).prop_map(|n| format!("emperor-required-heartbeat = {n}")),
        path.prop_map(|p| format!("emperor-on-demand-directory = {p}")),
        path.prop_map(|p| format!("zerg = {p}.sock")),
        (word, 1u16..65535).prop_map(|(w, p)| format!("subscribe-to = 127.0.0.1:{p}:{w}")),
        (word, path).prop_map(|(w, p)| format!("logger = {w} file:{p}.log")),
        "[a-z %()]{0,12}".prop_map(|t| format!("log-format = {}", t.replace('%', "%%"))),
        (word, word).prop_map(|(p, w)| format!("route = ^/{p} log:{w}")),
        (word, word).prop_map(|(h, v)| format!("collect-header = X-{h} {v}")),
        (1u64..100_000).prop_map(|n| format!("max-worker-connections = {n}")),
    ]
}

proptest! {
    #[test]
    fn show_config_round_trips(lines in proptest::collection::vec(config_line(), 0..20)) {
        let ini = format!("[uwsgi]\n{}\n", lines.join("\n"));
        let Ok(first) = run(&[("app.ini", &ini)], "--ini app.ini", &[]) else {
            // Duplicate socket addresses are refused; nothing to round-trip.
            return Ok(());
        };
        let again = run(&[("shown.ini", &first.show_config)], "--ini shown.ini", &[])
            .unwrap_or_else(|e| panic!("show-config output does not load:\n{}\n{e}", first.show_config));
        let normalize = |mut config: Config| {
            config.files.clear();
            config.name.clear();
            config
        };
        prop_assert_eq!(normalize(again.config), normalize(first.config));
        prop_assert_eq!(again.show_config, first.show_config);
    }
}

// --- config logic (`logic.rs`): the options each block leaves, as uWSGI's `core/config.c` ---

/// `app.ini` and other files under the test cwd, `--ini app.ini`, an environment and
/// whether this start is a reload.
fn check_logic(files: &[(&str, &str)], env: &[(&str, &str)], is_reload: bool, expected: &str) {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let ctx = Context {
        is_reload,
        ..test_context()
    };
    let result = load_with(&args("--ini app.ini"), &env, &ctx, &MemFs::new(files));
    assert_eq!(render(&result), expected, "files {files:?}, env {env:?}");
}

fn check_logic_ini(ini: &str, env: &[(&str, &str)], expected: &str) {
    check_logic(&[("app.ini", ini)], env, false, expected);
}

#[test]
fn logic_for_loops() {
    check_logic_ini(
        "[uwsgi]\nfor = 8001 8002\nhttp-socket = :%(_)\nendfor",
        &[],
        "http-socket = :8001 | http-socket = :8002",
    );
    check_logic_ini(
        "[uwsgi]\nfor = a  b\nenv = X_%(_)=%(_)\nend-for\nprocesses = 2",
        &[],
        "env = X_a=a | env = X_b=b | processes = 2",
    );
    check_logic_ini(
        "[uwsgi]\nfor-times = 3\nenv = W%(_)=1\nendfor",
        &[],
        "env = W1=1 | env = W2=1 | env = W3=1",
    );
    check_logic_ini("[uwsgi]\nfor-times = 0\nprocesses = 9\nendfor", &[], "");
    check_logic_ini("[uwsgi]\nfor =\nprocesses = 9\nend", &[], "");
    check_logic(
        &[
            (
                "app.ini",
                "[uwsgi]\nfor-readline = paths.txt\npythonpath = %(_)\nendfor",
            ),
            ("paths.txt", "/srv/a\r\n/srv/b\n"),
        ],
        &[],
        false,
        "pythonpath = /srv/a | pythonpath = /srv/b",
    );
    check_logic(
        &[
            (
                "app.ini",
                "[uwsgi]\nfor-glob = conf.d/*.ini\ninclude = %(_)\nendfor\nthreads = 2",
            ),
            ("conf.d/a.ini", "[uwsgi]\nenv = A=1"),
            ("conf.d/b.ini", "[uwsgi]\nenv = B=2"),
            ("conf.d/c.txt", "[uwsgi]\nenv = C=3"),
        ],
        &[],
        false,
        "env = A=1 | env = B=2 | threads = 2",
    );
    // `GLOB_NOCHECK`: no match gives the pattern itself.
    check_logic_ini(
        "[uwsgi]\nfor-glob = /nope/*.py\nenv = F=%(_)\nendfor",
        &[],
        "env = F=/nope/*.py",
    );
    // `$(…)` and `%(…)` are expanded after the block, over the entries it produced.
    check_logic_ini(
        "[uwsgi]\nbase = /srv\nfor = a b\npythonpath = %(base)/%(_)/$(HOME)\nendfor",
        &[("HOME", "h")],
        "pythonpath = /srv/a/h | pythonpath = /srv/b/h",
    );
}

#[test]
fn logic_if_blocks() {
    let ini = "[uwsgi]\nif-env = STAGE\nenv = STAGE_SEEN=%(_)\nprocesses = 4\nendif\nthreads = 2";
    check_logic_ini(
        ini,
        &[("STAGE", "prod")],
        "env = STAGE_SEEN=prod | processes = 4 | threads = 2",
    );
    check_logic_ini(ini, &[], "threads = 2");
    check_logic_ini(
        "[uwsgi]\nif-env = STAGE=prod\nprocesses = 4\nendif",
        &[("STAGE", "dev")],
        "",
    );
    check_logic_ini("[uwsgi]\nif-not-env = PORT\nhttp-socket = :8000\nendif\nif-env = PORT\nhttp-socket = :$(PORT)\nendif", &[("PORT", "9000")], "http-socket = :9000");
    check_logic_ini("[uwsgi]\nif-not-env = PORT\nhttp-socket = :8000\nendif\nif-env = PORT\nhttp-socket = :$(PORT)\nendif", &[], "http-socket = :8000");
    check_logic(
        &[("app.ini", "[uwsgi]\nif-exists = local.ini\ninclude = %(_)\nendif\nif-not-file = missing.ini\nthreads = 3\nendif\nif-dir = conf.d\nenv = D=%(_)\nendif"), ("local.ini", "[uwsgi]\nprocesses = 7"), ("conf.d/x", "")],
        &[],
        false,
        "env = D=conf.d | processes = 7 | threads = 3",
    );
    check_logic_ini("[uwsgi]\nif-file = /srv/cwd\nprocesses = 2\nendif", &[], "");
    check_logic_ini("[uwsgi]\nprocesses = 4\nif-opt = processes=4\nthreads = %(_)\nendif\nif-not-opt = master\nmaster-fifo = /tmp/f\nendif", &[], "processes = 4 | threads = 4 | master-fifo = /tmp/f");
    // `if-opt` is tested again at each line, so it sees what the block added.
    check_logic_ini(
        "[uwsgi]\nif-not-opt = processes\nprocesses = 3\nthreads = 5\nendif",
        &[],
        "processes = 3",
    );
    check_logic_ini("[uwsgi]\nif-hostname = web1\nprocesses = 2\nendif\nif-not-hostname = web1\nthreads = 2\nendif", &[], "processes = 2");
    check_logic_ini("[uwsgi]\nif-plugin = python3\nprocesses = 2\nendif\nif-not-plugin = php\nthreads = 3\nend-if", &[], "processes = 2 | threads = 3");
    let reload = "[uwsgi]\nif-reload\nprocesses = 2\nendif\nif-not-reload\nthreads = 3\nendif";
    check_logic(&[("app.ini", reload)], &[], false, "threads = 3");
    check_logic(&[("app.ini", reload)], &[], true, "processes = 2");
    // On the command line too.
    let result = run(
        &[],
        "--if-env STAGE --processes 3 --endif --threads 2",
        &[("STAGE", "x")],
    );
    assert_eq!(render(&result), "processes = 3 | threads = 2");
    let result = run(&[], "--if-env STAGE --processes 3 --endif --threads 2", &[]);
    assert_eq!(render(&result), "threads = 2");
}

#[test]
fn logic_problems() {
    check_logic_ini(
        "[uwsgi]\nfor = a b\nif-env = X\nprocesses = 2\nendif\nendfor",
        &[("X", "1")],
        "error: app.ini:3: if-env: config logic blocks cannot be nested: `for` at app.ini:2 is still open (close it with `endif` or `endfor` first; uWSGI refuses nesting too)",
    );
    let warnings = |ini: &str| {
        run(&[("app.ini", ini)], "--ini app.ini", &[])
            .expect("loads")
            .warnings
            .join(" || ")
    };
    assert_eq!(
        warnings("[uwsgi]\nif-not-env = X\nprocesses = 2"),
        "app.ini:2: if-not-env: this block has no `endif`, so it ran to the end of the configuration"
    );
    assert_eq!(
        warnings("[uwsgi]\nfor-readline = nope.txt\nenv = A=%(_)\nendfor"),
        "app.ini:2: for-readline: cannot read `nope.txt`: entity not found"
    );
    assert_eq!(warnings("[uwsgi]\nendif\nendfor"), "");
    check(
        "[uwsgi]\nif-hostname-match = ^web\nprocesses = 2\nendif",
        "processes = 2",
    );
}

// --- values as uWSGI reads them (`numbers.rs`, issue 15 part 8) ---

#[test]
fn values_as_uwsgi_reads_them() {
    // One rule for every numeric option: the leading number, and a warning naming the line.
    check(
        "[uwsgi]\nreload-on-rss = 2048 ; comment",
        "reload-on-rss = 2048",
    );
    check_warnings("[uwsgi]\nreload-on-rss = 2048 ; comment", "app.ini:2: reload-on-rss: the whole text `2048 ; comment` is the value because uWSGI INI files have no inline comments (uWSGI happens to read the same value here); move the comment to its own line above `reload-on-rss`");
    check(
        "[uwsgi]\nmax-requests = 1000 ; comment\nharakiri = 60 # s\nlog-slow = 200 // ms",
        "log-slow = 200 | max-requests = 1000 | harakiri = 60",
    );
    check("[uwsgi]\nprocesses = 4 workers", "processes = 4");
    check_warnings("[uwsgi]\nprocesses = 4 workers", "app.ini:2: processes: uWSGI reads only the leading number of `4 workers`, so `processes` is 4; write the number alone");
    // Booleans where a number is expected: `atoi` gives 0.
    check("[uwsgi]\nlog-slow = true", "");
    check_warnings("[uwsgi]\nlog-slow = true", "app.ini:2: log-slow: `log-slow` takes a number; uWSGI reads `true` as 0 (`atoi`), and so does kaiser; write a number");
    check(
        "[uwsgi]\nprocesses = true",
        "error: app.ini:2: processes: must be at least 1, got `0`",
    );
    check("[uwsgi]\nprocesses = $MY_PROCESSES", "error: app.ini:2: processes: expected a whole number, got `$MY_PROCESSES`; `$MY_PROCESSES` is not expanded: uWSGI config files write environment variables as `$(MY_PROCESSES)`");
    // A `;` comment on a name gets the error `#` and `//` get (seed 000's `module` line).
    check("[uwsgi]\nmodule = mysite.wsgi:application ; for Django", "error: app.ini:2: module: the whole text `mysite.wsgi:application ; for Django` is the value because uWSGI INI files have no inline comments (it is not what was meant); move the comment to its own line above `module`");
    check("[uwsgi]\nmodule = mysite.wsgi # for Django", "error: app.ini:2: module: the whole text `mysite.wsgi # for Django` is the value because uWSGI INI files have no inline comments (it is not what was meant); move the comment to its own line above `module`");
    check("[uwsgi]\ncallable = app // Flask", "error: app.ini:2: callable: the whole text `app // Flask` is the value because uWSGI INI files have no inline comments (it is not what was meant); move the comment to its own line above `callable`");
}

// --- the issue-15 options (`extra.rs`) as `--show-config` shows them ---

#[test]
fn python_and_process_options() {
    check(
        "[uwsgi]\nimport = a.b\npyimport = c\nshared-import = d\neval = x=1\npaste = /srv/dev.ini\npaste-logger\npyargv = -v --x\noptimize = 2\npy-autoreload = 2\npy-executable = /v/bin/python\npy-programname = prog\nwsgi-disable-file-wrapper\nchdir2 = /srv\nunenv = A\nunenv = B",
        "shared-import = d | import = a.b | import = c | eval = x=1 | paste = config:/srv/dev.ini | paste-logger = true | pyargv = -v --x | optimize = 2 | py-autoreload = 2 | py-executable = /v/bin/python | py-programname = prog | wsgi-disable-file-wrapper = true | chdir2 = /srv | unenv = A | unenv = B",
    );
    check(
        "[uwsgi]\noptimize = 3",
        "error: app.ini:2: optimize: Python's optimisation level is 0, 1 or 2, got `3`",
    );
    check(
        "[uwsgi]\npidfile2 = /run/a.pid\nsafe-pidfile = /run/b.pid\nsafe-pidfile2 = /run/c.pid\nchroot = /jail\nadd-gid = adm\nadd-gid = 4\nimmediate-uid = nobody\nimmediate-gid = nogroup\nlimit-as = 512\ncpu-affinity = 1\nexit-on-reload\nno-initgroups\nreaper\nskip-atexit\nenable-proxy-protocol\nreload-on-exception",
        "pidfile2 = /run/a.pid | safe-pidfile = /run/b.pid | safe-pidfile2 = /run/c.pid | chroot = /jail | add-gid = adm | add-gid = 4 | immediate-uid = nobody | immediate-gid = nogroup | limit-as = 512 | cpu-affinity = 1 | exit-on-reload = true | no-initgroups = true | reaper = true | skip-atexit = true | enable-proxy-protocol = true | reload-on-exception = true",
    );
    check(
        "[uwsgi]\nhttp-enable-proxy-protocol = 1",
        "enable-proxy-protocol = true",
    );
    check_with(
        &[("dev.ini", "[uwsgi]\nprocesses = 2\n[app:main]\nuse = egg:x")],
        "--ini-paste-logged dev.ini",
        &[],
        "processes = 2 | paste = config:/srv/cwd/dev.ini | paste-logger = true",
    );
}

#[test]
fn declare_option_as_uwsgi() {
    check(
        "[uwsgi]\ndeclare-option = site=chdir=/srv/$1;module=$1.wsgi;processes=$2\nsite = blog 3",
        "module = blog.wsgi | chdir = /srv/blog | processes = 3",
    );
    check(
        "[uwsgi]\ndeclare-option = fast=master=true;threads=4\nfast",
        "threads = 4",
    );
    // Usable as a placeholder, like any key.
    check(
        "[uwsgi]\ndeclare-option = app=wsgi-file=$1\napp = /srv/app.py\nenv = APP=%(app)",
        "wsgi-file = /srv/app.py | env = APP=/srv/app.py",
    );
    check(
        "[uwsgi]\ndeclare-option = broken",
        "error: app.ini:2: declare-option: expected `newoption=key=value;key=value`, got `broken`",
    );
}

#[test]
fn octal_modes_follow_the_number_rule() {
    check(
        "[uwsgi]\nchmod-socket = 660 ; group only",
        "chmod-socket = 660",
    );
    check("[uwsgi]\nchmod-socket", "chmod-socket = 666");
    check(
        "[uwsgi]\nchmod-socket = rw",
        "error: app.ini:2: chmod-socket: expected a whole number, got `rw`",
    );
}

#[test]
fn cheaper_options_and_the_checks_uwsgi_makes_too() {
    check(
        "[uwsgi]\nprocesses = 8\ncheaper = 2\ncheaper-algo = busyness\ncheaper-step = 4\ncheaper-busyness-max = 70",
        "processes = 8 | cheaper-algo = busyness | cheaper = 2 | cheaper-step = 4 | cheaper-busyness-max = 70",
    );
    // Seed 002: `cheaper = 10` with `processes = 8` (uWSGI exits too).
    check(
        "[uwsgi]\nprocesses=8\ncheaper=10\n",
        "error: app.ini:3: cheaper: `cheaper = 10` must be lower than `processes = 8`: `cheaper` is the minimum number of workers and `processes` the maximum (uWSGI refuses this too: `invalid cheaper value: must be lower than processes`); set `cheaper` to at most 7 or raise `processes` above 10",
    );
    check(
        "[uwsgi]\ncheaper = 1",
        "error: app.ini:2: cheaper: `cheaper = 1` must be lower than `processes = 1`: `cheaper` is the minimum number of workers and `processes` the maximum (uWSGI refuses this too: `invalid cheaper value: must be lower than processes`); raise `processes` above 1 (the maximum number of workers), or remove `cheaper`",
    );
    check(
        "[uwsgi]\nprocesses = 4\ncheaper = 1\ncheaper-algo = fancy",
        "error: app.ini:4: cheaper-algo: unknown cheaper algorithm `fancy` (kaiser has `spare`, `spare2`, `backlog`, `manual`, `busyness`)",
    );
    check(
        "[uwsgi]\nprocesses = 4\ncheaper = 1\ncheaper-rss-limit-hard = 100",
        "error: app.ini:4: cheaper-rss-limit-hard: needs `cheaper-rss-limit-soft` too (above it no worker is spawned; above the hard limit one is stopped)",
    );
    check(
        "[uwsgi]\nprocesses = 4\ncheaper = 1\ncheaper-rss-limit-soft = 100\ncheaper-rss-limit-hard = 100",
        "error: app.ini:5: cheaper-rss-limit-hard: must be higher than `cheaper-rss-limit-soft = 100` (both are bytes)",
    );
    check(
        "[uwsgi]\nprocesses = 4\ncheaper = 1\ncheaper-algo = busyness\ncheaper-busyness-min = 60",
        "error: app.ini:5: cheaper-busyness-min: `cheaper-busyness-min = 60` is above `cheaper-busyness-max = 50`: workers would be spawned and stopped in turn",
    );
    check_warnings(
        "[uwsgi]\nprocesses = 4\ncheaper = 2\ncheaper-initial = 9",
        "app.ini:4: cheaper-initial: `cheaper-initial = 9` is above `processes = 4`; starting 4 workers",
    );
    check_warnings(
        "[uwsgi]\nprocesses = 4\ncheaper = 2\ncheaper-initial = 1",
        "app.ini:4: cheaper-initial: `cheaper-initial = 1` is below `cheaper = 2`; starting 2 workers",
    );
    check_warnings(
        "[uwsgi]\nprocesses = 4\ncheaper-step = 2",
        "app.ini:3: cheaper-step: has no effect without `cheaper` (the minimum number of workers); all `processes` run",
    );
    let loaded = run(&[], "--cheaper-algo-list", &[]).expect("loads");
    assert_eq!(loaded.config.action, Action::CheaperAlgoList);
    let cheaper = run(
        &[(
            "app.ini",
            "[uwsgi]\nprocesses = 8\ncheaper = 2\ncheaper-initial = 3",
        )],
        "--ini app.ini",
        &[],
    )
    .expect("loads")
    .config
    .cheaper;
    assert_eq!(
        (cheaper.initial_workers(8), cheaper.step()),
        (3, 1),
        "{cheaper:?}"
    );
    assert_eq!(CheaperConfig::default().initial_workers(8), 8);
}

/// YAML, JSON and XML files feed the same entry stream as INI: magic variables, `include`
/// by extension, placeholders, config logic, and messages with the file and line.
#[test]
fn yaml_json_and_xml_files_load_like_ini() {
    let yaml = "uwsgi:\n  set-ph: port=9000\n  http-socket: :%(port)\n  include: more.json\n  if-env: STAGE\n  processes: 4\n  endif:\n  env: FILE=%n\n";
    let json = "{\"uwsgi\": {\"env\": [\"A=1\", \"B=2\"], \"master\": true, \"include\": \"last.xml:prod\"}}";
    let xml = "<all><uwsgi id=\"dev\"><threads>9</threads></uwsgi>\n<uwsgi id=\"prod\"><threads>2</threads></uwsgi></all>";
    let files = [("app.yaml", yaml), ("more.json", json), ("last.xml", xml)];
    check_with(
        &files,
        "--yaml app.yaml",
        &[("STAGE", "prod")],
        "env = A=1 | env = B=2 | env = FILE=app | processes = 4 | threads = 2 | http-socket = :9000",
    );
    check_with(
        &files,
        "-y app.yaml",
        &[],
        "env = A=1 | env = B=2 | env = FILE=app | threads = 2 | http-socket = :9000",
    );
    check_with(
        &[("a.yml", "prod:\n  processes: x\n")],
        "--yml a.yml:prod",
        &[],
        "error: a.yml:2: processes: expected a whole number, got `x`",
    );
    check_with(
        &[("a.json", "{\"uwsgi\": {\n\"processes\": 2,\n}}")],
        "a.json",
        &[],
        "error: a.json:3: json: invalid JSON: expected a member name in double quotes",
    );
    check_with(
        &[
            ("a.ini", "[uwsgi]\nxml = a.xml\n"),
            ("a.xml", "<uwsgi>\n<processes>3</processes>\n</uwsgi>"),
        ],
        "a.ini",
        &[],
        "processes = 3",
    );
}

/// `config` by extension, `inject-before`/`inject-after`, `if-hostname-match`, and the
/// `pause`/`get`/`dump-options` actions.
#[test]
fn config_inject_hostname_match_and_actions() {
    let action = |argv: &str| run(&[("app.ini", "[uwsgi]\n")], argv, &[]).map(|l| l.config.action);
    assert_eq!(
        action("--resume /run/app.pid"),
        Ok(Action::Pause("/run/app.pid".into()))
    );
    assert_eq!(
        action("--get processes --get socket app.ini"),
        Ok(Action::Get(vec!["processes".into(), "socket".into()]))
    );
    assert_eq!(action("--dump-options"), Ok(Action::DumpOptions));

    check_with(
        &[("a.json", "{\"uwsgi\": {\"processes\": 3}}")],
        "--config a.json",
        &[],
        "processes = 3",
    );
    check_with(
        &[],
        "--config a.conf",
        &[],
        "error: command line argument 1: config: unable to load configuration from `a.conf`: `config` knows `.ini`, `.yaml`/`.yml`, `.json`/`.js` and `.xml` files",
    );
    check_with(
        &[
            ("before.txt", "[uwsgi]\nprocesses = 2\n"),
            ("after.txt", "\n[uwsgi]\nthreads = 4\n"),
            ("app.ini", "[other]\nx = 1\n[uwsgi]\nprocesses = 3\n"),
        ],
        "--inject-before before.txt --inject-after after.txt --ini app.ini",
        &[],
        "processes = 3 | threads = 4",
    );
    check(
        "[uwsgi]\nif-hostname-match = ^web[0-9]+$\nprocesses = 5\nendif\nif-not-hostname-match = ^web\nprocesses = 9\nendif\n",
        "processes = 5",
    );
    check(
        "[uwsgi]\nif-hostname-match = (\nprocesses = 5\nendif\n",
        "error: app.ini:2: if-hostname-match: invalid regular expression `(`: regex parse error:\n    (\n    ^\nerror: unclosed group",
    );
}

#[test]
fn routes_are_typed_with_file_and_line() {
    // `${VAR}` is routing's own placeholder, not a mistyped `$(VAR)`.
    check_warnings(
        "[uwsgi]\nroute-host = ^www\\.(.*)$ redirect-301:https://$1${REQUEST_URI}\nroute-if = empty:${QUERY_STRING} last:",
        "",
    );
    check(
        "[uwsgi]\nroute = ^/old/(.*) redirect-301:/new/$1\nroute-if = equal:${PATH_INFO};/x goto:end\nroute-run = last:\nroute-label = end\nerror-route-status = 404 return:404\nresponse-route-run = addheader:X-A: b\nfinal-route-run = log:done",
        "route = ^/old/(.*) redirect-301:/new/$1 | route-if = equal:${PATH_INFO};/x goto:end | \
         route-run = last: | route-label = end | error-route-status = 404 return:404 | \
         response-route-run = addheader:X-A: b | final-route-run = log:done",
    );
    check(
        "[uwsgi]\nprocesses = 2\nroute-host = ^a nosuch:x\nroute = ^/a uwsgi:127.0.0.1:3031,0,0\nroute-if = bogus:x last:\nroute-run = goto:nowhere",
        "error: app.ini:3: route-host: unknown or unsupported route action `nosuch` || \
         app.ini:4: route: the `uwsgi` route action forwards the request to another server, which kaiser does not do: let nginx route it (`uwsgi_pass`/`proxy_pass` in a `location`) || \
         app.ini:5: route-if: unknown route condition `bogus` (kaiser has exists, isfile, isdir, islink, isexec, empty, regexp, equal, startswith, endswith, contains, ishigher, islower, ishigherequal, islowerequal, ipv4in, ipv6in) || \
         configuration: route-label: `goto:nowhere`: no `route-label = nowhere` in the same table",
    );
}

#[test]
fn shared_and_abstract_sockets() {
    check(
        "[uwsgi]\nshared-socket = 127.0.0.1:8443\nshared-socket = :8080\nhttp-socket = =1\nsocket = =0",
        "http-socket = :8080 | socket = 127.0.0.1:8443",
    );
    check(
        "[uwsgi]\nsocket = =2\nshared-socket = :80",
        "error: configuration: socket: `socket = =2` names shared socket 2, but there is only one `shared-socket` (=0)",
    );
    check_warnings(
        "[uwsgi]\nshared-socket = :80\nhttp-socket = :8080",
        "app.ini:2: shared-socket: no `socket`, `http-socket` or `http` uses this shared socket (write `= =0` there); it is not bound",
    );
    check(
        "[uwsgi]\nabstract-socket\nsocket = /run/app.sock\nhttp-socket = @web",
        "socket = @/run/app.sock | http-socket = @web",
    );
    check(
        "[uwsgi]\nfreebind = true\nhttp-socket = 192.0.2.1:80",
        "http-socket = 192.0.2.1:80 | freebind = true",
    );
    check("[uwsgi]\nhttp-socket-modifier1 = 0\nhttp-modifier1 = 9", "");
    check(
        "[uwsgi]\nfastcgi-modifier1 = 0\nfastcgi-modifier2 = 0\nscgi-modifier1 = 5\nhttps-socket-modifier2 = 1",
        "",
    );
}

#[test]
fn persistent_uwsgi_and_raw_sockets() {
    check(
        "[uwsgi]\npuwsgi-socket = /run/p.sock\nwsgi-file = app.py",
        "wsgi-file = app.py | puwsgi-socket = /run/p.sock",
    );
    // `protocol` switches the `socket` entries, as in uWSGI.
    check(
        "[uwsgi]\nprotocol = puwsgi\nsocket = :3031",
        "protocol = puwsgi | socket = :3031",
    );
    check(
        "[uwsgi]\nraw-socket = :4000\npython-raw = raw.py\nraw-modifier1 = 0\nraw-modifier2 = 9",
        "python-raw = raw.py | raw-socket = :4000",
    );
    check(
        "[uwsgi]\nprotocol = raw\nsocket = :4000\nwsgi-file = app.py",
        "error: app.ini:2: protocol: a raw socket needs `python-raw = FILE`, whose callable is called with each connection's fd (uWSGI would close every connection unanswered)",
    );
    check(
        "[uwsgi]\nraw-socket = :4000\npython-raw = raw.py\nraw-modifier1 = 5",
        "error: app.ini:4: raw-modifier1: kaiser serves raw connections with its Python plugin only (modifier1 0, the `python-raw` callable), not modifier1 5",
    );
}

mod show_round_trip;
