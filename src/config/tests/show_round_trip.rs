//! `--print-config` round trip, option by option: for every implemented row of the option
//! table, a config setting it (to a value that is not its default) is rendered by
//! `show::render` and loaded back, and the two [`Config`]s must be equal. A row that leaves
//! no trace in [`Config`] (actions, config loading and logic) is listed with its reason.

use super::*;
use crate::config::options::{Kind, Status, OPTIONS};

/// Rows that do not set a [`Config`] field, so there is nothing for `render` to show.
const NOT_IN_CONFIG: &[(&str, &str)] = &[
    ("help", "an action, answered before the config is read"),
    ("version", "an action, answered before the config is read"),
    (
        "check-config",
        "an action (`Config::action`), not an option to print",
    ),
    (
        "print-config",
        "an action (`Config::action`), not an option to print",
    ),
    ("reload", "an action on another instance"),
    ("stop", "an action on another instance"),
    ("pause", "an action on another instance"),
    ("get", "an action"),
    ("dump-options", "an action"),
    ("cheaper-algo-list", "an action"),
    ("ini", "loads a file: the output is what it loaded"),
    ("include", "loads a file: the output is what it loaded"),
    ("inherit", "loads a file: the output is what it loaded"),
    ("xml", "loads a file: the output is what it loaded"),
    ("yaml", "loads a file: the output is what it loaded"),
    ("json", "loads a file: the output is what it loaded"),
    ("config", "loads a file: the output is what it loaded"),
    ("ini-paste", "loads a file: the output is what it loaded"),
    ("set", "sets another option: the output shows that option"),
    (
        "set-placeholder",
        "a placeholder, already expanded in the output",
    ),
    ("for", "config logic, already expanded in the output"),
    ("endfor", "config logic, already expanded in the output"),
    ("if-env", "config logic, already expanded in the output"),
    ("if-reload", "config logic, already expanded in the output"),
    ("endif", "config logic, already expanded in the output"),
    (
        "declare-option",
        "declares an option: the output shows what its uses set",
    ),
    (
        "inject-before",
        "loads a file: the output is what it loaded",
    ),
    (
        "raw-modifier1",
        "only checked: kaiser accepts modifier1 0 alone, its only behaviour",
    ),
];

/// Lines an option needs before it loads or has an effect.
fn prerequisite(name: &str) -> &'static str {
    match name {
        "protocol" => "socket = 127.0.0.1:3031\n",
        "raw-socket" => "python-raw = /srv/raw.py\n",
        "shared-socket" => "socket = =0\n",
        "abstract-socket" => "socket = /run/app.sock\n",
        "cheaper" | "cheaper-initial" => "processes = 9\n",
        n if n.contains("alarm") && n != "alarm" => "alarm = a cmd:true\n",
        _ => "",
    }
}

/// The rows that bind a listening socket.
const LISTENING: &[&str] = &[
    "socket",
    "http-socket",
    "http",
    "scgi-socket",
    "scgi-nph-socket",
    "puwsgi-socket",
    "raw-socket",
    "fastcgi-socket",
    "fastcgi-nph-socket",
];

/// A value for `name` that loads and differs from its default.
fn sample(name: &str, kind: Kind, default: &str) -> &'static str {
    match name {
        "umask" => "022",
        "optimize" => "2",
        // Above the soft limit, which gets the usual sample.
        "cheaper-rss-limit-hard" => "9",
        "collect-header" | "pull-header" => "X-Served-By SERVED_BY",
        "alarm-backlog" | "alarm-segfault" => "a",
        "mount" => "/app=app.py",
        "add-header" => "X-A: b",
        "hook-touch" => "/tmp/flag print:x",
        "touch-exec" => "/tmp/flag true",
        n if n.starts_with("hook-") => "print:x",
        n if n.starts_with("smart-attach-daemon") => "/tmp/x.pid sleep 9",
        "attach-daemon2" => "cmd=sleep 9",
        "cheaper-algo" => "backlog",
        n if n.ends_with("logger") => "stdio",
        n if n.ends_with("route") => "^/x$ log:hi",
        n if n.ends_with("encoder") => "nl",
        n if n.starts_with("static-map") => "/s=/srv",
        n if n.starts_with("static-expires-type") => "text/css=60",
        n if n.starts_with("static-expires") => "x 60",
        "file-serve-mode" => "nginx",
        "cache2" => "name=a,items=1",
        "farm" => "f:1,2",
        "subscribe-to" => "127.0.0.1:7171:example.com",
        "subscribe2" => "server=127.0.0.1:7171,key=k",
        "zergpool" => "/tmp/zp:127.0.0.1:3031",
        "timer" | "rbtimer" => "1 2",
        "cron" | "unique-cron" => "-1 -1 -1 -1 -1 true",
        "cron2" => "minute=-1 true",
        "health-check-path" => "/healthz",
        "alarm" => "a cmd:true",
        "alarm-fd" => "a 3 m",
        "touch-signal" => "/tmp/flag 17",
        "carbon" => "127.0.0.1:2003",
        "carbon-idle-avg" => "zero",
        n if n.ends_with("log-alarm") => "a x",
        n if n.starts_with("unshare") => "net,uts",
        n if n.starts_with("mount-") => "tmpfs none /x",
        "vassals-set" => "processes=2",
        "emperor-extra-extension" => ".conf",
        "protocol" => "http",
        "shared-socket" => "127.0.0.1:3033",
        "abstract-socket" => "@abs",
        "fastrouter-use-socket" => "1",
        n if n.ends_with("socket") || n == "http" => "127.0.0.1:3031",
        _ => match kind {
            Kind::Int | Kind::Seconds | Kind::Millis if default == "7" => "3",
            Kind::Int | Kind::Seconds | Kind::Millis => "7",
            Kind::Bool | Kind::OptionalBool if default == "true" => "false",
            Kind::Bool | Kind::OptionalBool => "true",
            Kind::KeyValue | Kind::Define => "A=b",
            Kind::Mode => "640",
            Kind::Megabytes => "1.5",
            Kind::Address => "127.0.0.1:3031",
            Kind::Path => "/srv/x",
            _ => "x",
        },
    }
}

/// Files and lengths are facts of the loading, not options.
fn normalize(mut config: Config) -> Config {
    config.files.clear();
    config.name.clear();
    config
}

/// `ini` loaded, rendered and loaded again: (first config, its rendering, second config).
fn round_trip(ini: &str) -> Result<(Config, String, Config), String> {
    let first = run(&[("app.ini", ini)], "--ini app.ini", &[])
        .map_err(|e| format!("does not load:\n{ini}\n{e}"))?;
    let again = run(&[("shown.ini", &first.show_config)], "--ini shown.ini", &[])
        .map_err(|e| format!("its rendering does not load:\n{}\n{e}", first.show_config))?;
    Ok((
        normalize(first.config),
        first.show_config,
        normalize(again.config),
    ))
}

#[test]
fn every_implemented_option_survives_print_config() {
    let mut problems = Vec::new();
    for spec in OPTIONS.iter().filter(|s| s.status == Status::Implemented) {
        if NOT_IN_CONFIG.iter().any(|(name, _)| *name == spec.name) {
            continue;
        }
        let value = sample(spec.name, spec.kind, spec.default);
        let ini = format!(
            "[uwsgi]\n{}{} = {value}\n",
            prerequisite(spec.name),
            spec.name
        );
        match round_trip(&ini) {
            Err(problem) => problems.push(format!("`{}`: {problem}", spec.name)),
            Ok((first, _, _)) if first == normalize(Config::default()) => problems.push(format!(
                "`{} = {value}` leaves the default config (give it a better sample or list it in NOT_IN_CONFIG)",
                spec.name
            )),
            Ok((first, shown, again)) if first != again => problems.push(format!(
                "`{} = {value}` is lost by --print-config, which shows:\n{shown}",
                spec.name
            )),
            Ok(_) => {}
        }
    }
    assert!(
        problems.is_empty(),
        "{} options do not round-trip:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Values the one-sample-per-option test does not reach: aliases that mean something
/// (`route-host`), labels and `goto`, order between repeated entries, loggers with ids and
/// facilities, `%` in values, overridden scalars.
#[test]
fn a_config_with_everything_at_once_survives_print_config() {
    let ini = r"[uwsgi]
processes = 4
cheaper = 2
socket = 127.0.0.1:3031
http-socket = 127.0.0.1:8080
protocol = http
route-host = ^example\.com$ goto:ex
route = ^/old/(.*)$ redirect:/new/$1
route-label = ex
route-uri = ^/x%%20y$ break:404
error-route-status = 404 log:not found
response-route = ^/ addheader:X-A: b
final-route-run = log:done
collect-header = X-Served-By SERVED_BY
pull-header = X-Secret SECRET
log-format = first
log-req-encoder = json
log-format = %%(addr) %%(method) %%(uri) -> %%(status)
log-date = %%Y-%%m-%%d
logger = file:/var/log/a.log
logger = app syslog:myapp,local3
req-logger = rsyslog:127.0.0.1:514,kaiser
log-route = app ^app:
log-encoder = format [${strftime:%%Y}] ${msg}
log-socket = 127.0.0.1:9999
log-syslog = true
log-drain = ^DEBUG
log-filter = ^(?!x)
subscribe-to = 10.0.0.2:3031=127.0.0.1:7171:app.example,5
subscribe2 = server=127.0.0.1:7171,key=k,weight=3,socket=1,backup=2
subscribe-freq = 30
zerg = /run/z1.sock
zerg = /run/z2.sock
zerg-fallback = true
max-worker-connections = 512
carbon-freq = 5
logger = systemd
logger = rsyslog:10.0.0.1:514
req-logger = ops syslog
cache2 = name=c,items=10,blocksize=100,keysize=64,expires=30,purge_lru=1,clear_on_full=1
cache2 = name=d,items=2
cron = -5 */2 * * 1 /bin/true
unique-cron = 0 3 -1 -1 -1 /bin/false
cron2 = minute=-1,unique=1,harakiri=9 run-me
alarm = a cmd:true
alarm = b signal:17
alarm-fd = a 3:8 m
log-alarm = a,b ^boom
not-log-alarm = b ^boom quietly
reload-on-rss = 1.7
evil-reload-on-as = 0.3
reload-on-as = 1025
limit-as = 2.9
need-app
chmod-socket
umask = 007
static-expires-type-mtime = text/css=60
static-map = /s=/srv/static
static-map2 = /t=/srv/t
file-serve-mode = x-sendfile
touch-signal = /tmp/flag 17
hook-pre-app = exec:echo 100%%
attach-daemon2 = cmd=sleep 9,freq=3
env = EMPTY=
";
    let (first, shown, again) = round_trip(ini).unwrap_or_else(|problem| panic!("{problem}"));
    assert_eq!(first, again, "--print-config showed:\n{shown}");
    // The output is a fixed point: printing what it loads gives the same text.
    let (_, shown_again, _) = round_trip(&shown).unwrap_or_else(|problem| panic!("{problem}"));
    assert_eq!(shown_again, shown);
}

/// Every sample of the first test in one config: options that only show up together
/// (`protocol` and the sockets, the alarms and their triggers) and the order of the groups.
#[test]
fn every_implemented_option_at_once_survives_print_config() {
    let mut ini = String::from("[uwsgi]\n");
    for spec in OPTIONS.iter().filter(|s| s.status == Status::Implemented) {
        if NOT_IN_CONFIG.iter().any(|(name, _)| *name == spec.name) {
            continue;
        }
        ini.push_str(prerequisite(spec.name));
        let value = sample(spec.name, spec.kind, spec.default);
        // Each listening socket on its own port: two on one address are refused.
        let value = if LISTENING.contains(&spec.name) {
            format!("127.0.0.1:{}", 4000 + ini.len())
        } else {
            value.to_owned()
        };
        ini.push_str(&format!("{} = {value}\n", spec.name));
    }
    let (first, shown, again) = round_trip(&ini).unwrap_or_else(|problem| panic!("{problem}"));
    assert_eq!(first, again, "--print-config showed:\n{shown}");
}

/// The aliases too: an alias may mean more than its row (`route-host` names the subject,
/// `route-run` has no regexp, `iprint` prints).
#[test]
fn every_alias_of_an_implemented_option_survives_print_config() {
    let mut problems = Vec::new();
    for spec in OPTIONS.iter().filter(|s| s.status == Status::Implemented) {
        if NOT_IN_CONFIG.iter().any(|(name, _)| *name == spec.name) {
            continue;
        }
        for alias in spec.aliases {
            // The route subjects' aliases take other values than a regexp and an action.
            let value = match alias {
                a if a.ends_with("-status") => "404 log:x",
                a if a.ends_with("-if") || a.ends_with("-if-not") => "empty:${QUERY_STRING} log:x",
                a if a.ends_with("-run") => "log:x",
                _ => sample(spec.name, spec.kind, spec.default),
            };
            let ini = format!("[uwsgi]\n{}{alias} = {value}\n", prerequisite(spec.name));
            match round_trip(&ini) {
                Err(problem) => problems.push(format!("`{alias}`: {problem}")),
                Ok((first, _, _)) if first == normalize(Config::default()) => {
                    problems.push(format!("`{alias} = {value}` leaves the default config"))
                }
                Ok((first, shown, again)) if first != again => problems.push(format!(
                    "`{alias} = {value}` is lost by --print-config, which shows:\n{shown}"
                )),
                Ok(_) => {}
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} aliases do not round-trip:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
