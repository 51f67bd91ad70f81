//! Expanded entries to the typed [`Config`]: statuses from the option table (implemented,
//! no-op, refused), what each implemented option sets (`apply`), strict mode,
//! unknown keys and the checks that need the whole configuration (two sockets on one
//! address). How a single value is read (numbers, booleans, addresses, …) is `values.rs`.
//!
//! Scalars take the last entry, list options accumulate, as in uWSGI. Every problem is
//! collected, none stops the others from being found.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use super::diagnostics::{did_you_mean, Origin, Report};
use super::options::{self, Kind, OptionSpec, Status};
use super::sources::Entry;
use super::{emperor_extra, extra, hints, numbers, Action, Address, Config, Protocol, SocketSpec};

/// `buffer-size` is a 16-bit field in uWSGI.
const MAX_BUFFER_SIZE: usize = 65535;

use super::values::*;
/// The value readers other config files use through here.
pub(crate) use super::values::{address, megabytes, uwsgi_bool};

pub(crate) fn build(
    entries: &[Entry],
    files: Vec<PathBuf>,
    used_as_placeholder: &HashSet<String>,
    report: &mut Report,
) -> Config {
    let mut config = Config {
        name: files
            .first()
            .and_then(|file| file.file_stem())
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| "kaiser".to_string()),
        files,
        ..Config::default()
    };
    let mut sockets: Vec<&Entry> = Vec::new();
    let mut protocol = Protocol::Uwsgi;
    let mut abstract_sockets = false;
    let mut shared: Vec<&Entry> = Vec::new();
    let mut unknown: Vec<&Entry> = Vec::new();
    for entry in entries.iter().filter(|e| !e.placeholder_only) {
        if entry.key.is_empty() {
            report.error(
                &entry.origin,
                "",
                format!("the line `={}` has no key before `=`", entry.value),
            );
            continue;
        }
        let Some(spec) = options::find(&entry.key) else {
            unknown.push(entry);
            continue;
        };
        if let Status::Refused(why) = spec.status {
            report.error(
                &entry.origin,
                &entry.key,
                format!("`{}` is refused: {why}", entry.key),
            );
            continue;
        }
        let Some(value) = prepare_value(spec, entry, report) else {
            continue;
        };
        let applied = match spec.status {
            Status::NoOp(_) => check_noop(spec, &value),
            _ => match spec.name {
                "socket" | "http-socket" | "http" | "scgi-socket" | "scgi-nph-socket"
                | "puwsgi-socket" | "raw-socket"
                | "fastcgi-socket" | "fastcgi-nph-socket" => {
                    sockets.push(entry);
                    Ok(())
                }
                // The key as written tells the table and the subject (`error-route-status`).
                "route" | "error-route" | "response-route" | "final-route" => {
                    config.routes.add(&entry.key, &value)
                }
                "collect-header" | "pull-header" => {
                    config.routes.collect(&value, spec.name == "pull-header")
                }
                "abstract-socket" => {
                    abstract_sockets = uwsgi_bool(&value);
                    Ok(())
                }
                "shared-socket" => {
                    shared.push(entry);
                    Ok(())
                }
                "protocol" => match value.as_str() {
                    "uwsgi" => {
                        protocol = Protocol::Uwsgi;
                        Ok(())
                    }
                    "http" | "http11" => {
                        protocol = Protocol::Http;
                        Ok(())
                    }
                    "puwsgi" => {
                        protocol = Protocol::Puwsgi;
                        Ok(())
                    }
                    "raw" => {
                        protocol = Protocol::Raw;
                        Ok(())
                    }
                    "fastcgi" => {
                        protocol = Protocol::FastCgi { nph: false };
                        Ok(())
                    }
                    "fastcgi-nph" => {
                        protocol = Protocol::FastCgi { nph: true };
                        Ok(())
                    }
                    other => Err(format!(
                        "kaiser speaks `uwsgi`, `http`, `fastcgi`, `fastcgi-nph`, `puwsgi` and `raw` on `socket` entries, not `{other}`"
                    )),
                },
                "gevent" => {
                    report.warn(
                        &entry.origin,
                        &entry.key,
                        format!(
                            "kaiser has no gevent/async loop engine: each worker serves `{}` cores as request threads instead (`threads`); an app that calls `gevent.monkey.patch_all()` must pass `thread=False` (gevent's patched locks deadlock when real threads share them)",
                            entry.key
                        ),
                    );
                    apply(&mut config, spec, &value)
                }
                _ => apply(&mut config, spec, &value),
            },
        };
        match applied {
            Ok(()) => super::show::keep_as_written(&mut config, spec.name, &entry.key, &value),
            Err(message) => report.error(&entry.origin, &entry.key, message),
        }
    }
    if let Err(message) = config.routes.check() {
        report.error(&super::diagnostics::Origin::Whole, "route-label", message);
    }
    split_module_callable(&mut config);
    // uWSGI's async cores per worker become request threads (the warning above says so).
    config.threads = config.threads.max(config.async_cores);
    config.sockets = build_sockets(&sockets, protocol, report);
    super::shared_sockets::resolve(&mut config.sockets, &shared, abstract_sockets, report);
    super::cheaper::check(&mut config, entries, report);
    super::alarms::check(&config.alarm, entries, report);
    super::raw::check(&config, entries, report);
    for entry in unknown {
        unknown_key(entry, config.strict, used_as_placeholder, report);
    }
    config
}

/// Applies the hints that change how a value is read, giving the value to parse, or `None`
/// when the value cannot mean what was written (an error is reported).
fn prepare_value(spec: &OptionSpec, entry: &Entry, report: &mut Report) -> Option<String> {
    let value = entry.value.as_str();
    let free_text = matches!(spec.kind, Kind::Text | Kind::KeyValue | Kind::Marker)
        || matches!(spec.status, Status::NoOp(_));
    // `=N` names the Nth `shared-socket` (see shared_sockets.rs).
    let shared_reference = spec.kind == Kind::Address
        && value.len() > 1
        && value[1..].bytes().all(|b| b.is_ascii_digit());
    if value.starts_with('=') && !shared_reference {
        let message = hints::doubled_equals_message(&entry.key, value);
        if free_text {
            report.warn(&entry.origin, &entry.key, message);
        } else {
            report.error(&entry.origin, &entry.key, message);
            return None;
        }
    }
    // A bare `chmod-socket` means 0666, so only a written mode is read as a number.
    let numeric = matches!(
        spec.kind,
        Kind::Int | Kind::Seconds | Kind::Millis | Kind::Megabytes
    ) || (spec.kind == Kind::Mode && !value.is_empty());
    if numeric {
        return match numbers::read(&entry.key, value, spec.kind == Kind::Megabytes) {
            numbers::Reading::Number { digits, warning } => {
                if let Some(warning) = warning {
                    report.warn(&entry.origin, &entry.key, warning);
                }
                Some(digits)
            }
            numbers::Reading::Error(message) => {
                report.error(&entry.origin, &entry.key, message);
                None
            }
        };
    }
    let Some(at) = hints::inline_comment(value) else {
        return Some(value.to_string());
    };
    let intended = value[..at].trim_end();
    if free_text {
        // A no-op boolean (`no-orphans = true ; comment`) still reads as the same boolean.
        let same = matches!(spec.kind, Kind::Bool | Kind::OptionalBool)
            && uwsgi_bool(value) == uwsgi_bool(intended);
        let message = hints::inline_comment_message(&entry.key, value, same);
        report.warn(&entry.origin, &entry.key, message);
        return Some(value.to_string());
    }
    // uWSGI reads booleans as "true unless false/off/no/0", so a trailing comment sometimes
    // does no harm; then a warning is enough. (Numbers were read above, as `atoi` does.)
    let same_meaning = match spec.kind {
        Kind::Bool | Kind::OptionalBool => uwsgi_bool(value) == uwsgi_bool(intended),
        _ => false,
    };
    let message = hints::inline_comment_message(&entry.key, value, same_meaning);
    if same_meaning {
        report.warn(&entry.origin, &entry.key, message);
        Some(intended.to_string())
    } else {
        report.error(&entry.origin, &entry.key, message);
        None
    }
}

fn check_noop(spec: &OptionSpec, value: &str) -> Result<(), String> {
    if spec.name == "plugins" {
        // `plugins = python3` and friends are how uWSGI loads what kaiser has built in.
        for plugin in value.split([',', ' ']).filter(|p| !p.is_empty()) {
            let builtin = plugin.starts_with("python")
                || super::hints::BUILTIN_PLUGINS.contains(&plugin.trim());
            if !builtin && plugin.contains('/') {
                continue; // a plugin directory
            }
            if !builtin {
                return Err(format!(
                    "plugin `{plugin}` is not available: kaiser is a Python-only server with the python plugin built in"
                ));
            }
        }
        return Ok(());
    }
    check_kind(spec.kind, value)
}

/// Validates a value against its kind without using it.
fn check_kind(kind: Kind, value: &str) -> Result<(), String> {
    match kind {
        Kind::Int | Kind::Seconds | Kind::Millis => number(value).map(drop),
        Kind::Megabytes => megabytes(value).map(drop),
        Kind::Address => address(value).map(drop),
        Kind::KeyValue => key_value(value).map(drop),
        Kind::Mode => mode(value).map(drop),
        _ => Ok(()),
    }
}

/// Sets an implemented option on `config`. The match is on the canonical name from the
/// option table; a test checks every implemented option is handled here.
fn apply(config: &mut Config, spec: &OptionSpec, value: &str) -> Result<(), String> {
    let v = value;
    let parsers = extra::Parsers {
        text,
        path,
        number,
        megabytes,
        boolean: uwsgi_bool,
    };
    if let Some(applied) = extra::apply(&mut config.extra, spec.name, v, &parsers) {
        return applied;
    }
    if let Some(applied) = emperor_extra::apply(&mut config.emperor_extra, spec.name, v, &parsers) {
        return applied;
    }
    match spec.name {
        "help" => config.action = Action::Help,
        "version" => config.action = Action::Version,
        "check-config" if uwsgi_bool(v) => config.action = Action::CheckConfig,
        "print-config" if uwsgi_bool(v) => config.action = Action::PrintConfig,
        "show-config" => config.show_config = uwsgi_bool(v),
        "check-config" | "print-config" => {}
        "reload" => config.action = Action::Reload(path(v)?),
        "pause" => config.action = Action::Pause(path(v)?),
        "get" => match &mut config.action {
            Action::Get(keys) => keys.push(text(v)?),
            _ => config.action = Action::Get(vec![text(v)?]),
        },
        "dump-options" if uwsgi_bool(v) => config.action = Action::DumpOptions,
        "dump-options" => {}
        "stop" => config.action = Action::Stop(path(v)?),
        // Loading options and config logic were applied while the sources were read.
        "ini" | "include" | "inherit" | "set" | "set-placeholder" | "for" | "endfor" | "if-env"
        | "if-reload" | "endif" | "ini-paste" | "declare-option" => {}
        "yaml" | "json" | "xml" | "config" | "inject-before" => {}
        "strict" => config.strict = uwsgi_bool(v),

        "wsgi-file" => config.wsgi_file = Some(path(v)?),
        "python-raw" => config.python_raw = Some(path(v)?),
        "raw-modifier1" => super::raw::check_modifier1(number(v)?)?,
        "module" => config.module = Some(text(v)?),
        "callable" => config.callable = text(v)?,
        "mount" => config.mount.push(mount(v)?),
        "manage-script-name" => config.manage_script_name = uwsgi_bool(v),
        "chdir" => config.chdir = Some(path(v)?),
        "pythonpath" => config.pythonpath.push(path(v)?),
        "home" => config.home = Some(path(v)?),
        "env" => config.env.push(key_value(v)?),
        "need-app" => config.need_app = uwsgi_bool(v),
        "lazy-apps" | "lazy" => config.lazy_apps = uwsgi_bool(v),

        "processes" => config.processes = at_least_one(v)?,
        "threads" => config.threads = at_least_one(v)?,
        "uid" => config.uid = Some(text(v)?),
        "gid" => config.gid = Some(text(v)?),
        "pidfile" => config.pidfile = Some(path(v)?),
        "vacuum" => config.vacuum = uwsgi_bool(v),
        "batch-scheduling" => config.batch_scheduling = uwsgi_bool(v),
        "threads-stacksize" => config.threads_stacksize = number(v)?,
        "worker-reload-mercy" => config.worker_reload_mercy = seconds(v)?,
        "reload-mercy" => config.reload_mercy = seconds(v)?,

        "chmod-socket" => config.chmod_socket = Some(mode(v)?),
        "chown-socket" => config.chown_socket = Some(text(v)?),
        "listen" => config.listen = at_least_one(v)?,
        "buffer-size" => {
            // uWSGI clamps the 16-bit field; we do the same rather than refuse old files.
            let size = usize::try_from(number(v)?).unwrap_or(usize::MAX);
            config.buffer_size = size.min(MAX_BUFFER_SIZE);
        }
        "post-buffering" => {
            config.post_buffering = usize::try_from(number(v)?).unwrap_or(usize::MAX)
        }
        "socket-timeout" => config.socket_timeout = seconds(v)?,
        "limit-post" => config.limit_post = number(v)?,
        "max-worker-connections" => config.max_worker_connections = number(v)?,
        "max-fd" => config.max_fd = number(v)?,
        "print" => config.print.push(v.to_string()),
        "no-site" => config.no_site = uwsgi_bool(v),
        "limit-post-default" => config.limit_post_default = number(v)?,
        "transfer-timeout" => config.transfer_timeout = seconds(v)?,
        "transfer-min-rate" => config.transfer_min_rate = number(v)?,
        "add-header" => config.add_header.push(header(v)?),
        "umask" => config.umask = Some(mode(v)?),
        "reuse-port" => config.reuse_port = uwsgi_bool(v),
        "freebind" => config.freebind = uwsgi_bool(v),
        "subscribe-to" => config
            .subscriptions
            .push(super::subscriptions::parse_subscribe_to(v)?),
        "subscribe2" => config
            .subscriptions
            .push(super::subscriptions::parse_subscribe2(v)?),
        "subscribe-freq" => config.subscribe_freq = seconds(v)?.max(Duration::from_secs(1)),
        "zerg" => config.zerg.push(path(v)?),
        "zerg-fallback" => config.zerg_fallback = uwsgi_bool(v),
        "zerg-server" => config.zerg_server = Some(path(v)?),
        "zergpool" => super::zergpool::add(&mut config.zergpools, v)?,
        "so-keepalive" => config.so_keepalive = uwsgi_bool(v),
        "no-defer-accept" => config.no_defer_accept = uwsgi_bool(v),
        "no-server" => config.no_server = uwsgi_bool(v),
        name if super::statics::OPTION_NAMES.contains(&name) => {
            config.statics.apply(name, v, uwsgi_bool(v))?
        }

        "disable-logging" => config.disable_logging = uwsgi_bool(v),
        // uWSGI's `logto = HOST:PORT` logs over UDP: a `socket:` logger in the log master.
        "logto" if super::logging::is_udp_address(v) => {
            super::logging::apply(&mut config.log, "log-socket", v)?
        }
        "logto" => config.logto = Some(log_file(v)?),
        "daemonize" | "daemonize2" => config.daemonize = Some(log_file(v)?),
        name if super::logging::NAMES.contains(&name) => {
            super::logging::apply(&mut config.log, name, v)?
        }
        "log-4xx" => config.log_conditions.status_4xx = uwsgi_bool(v),
        "log-5xx" => config.log_conditions.status_5xx = uwsgi_bool(v),
        "log-zero" => config.log_conditions.zero = uwsgi_bool(v),
        "log-sendfile" => config.log_conditions.sendfile = uwsgi_bool(v),
        "log-ioerror" => config.log_conditions.io_error = uwsgi_bool(v),
        "log-slow" => config.log_conditions.slow_ms = number(v)?,
        "log-big" => config.log_conditions.big_bytes = number(v)?,
        "disable-write-exception" => config.disable_write_exception = uwsgi_bool(v),
        "log-micros" => config.log_micros = uwsgi_bool(v),
        "log-x-forwarded-for" => config.log_x_forwarded_for = uwsgi_bool(v),
        "memory-report" => config.memory_report = uwsgi_bool(v),

        "max-requests" => config.max_requests = number(v)?,
        "max-requests-delta" => config.max_requests_delta = number(v)?,
        "harakiri" => {
            let timeout = seconds(v)?;
            config.harakiri = (!timeout.is_zero()).then_some(timeout);
        }
        "touch-reload" | "fs-reload" => config.touch_reload.push(path(v)?),
        "touch-exec" => {
            let (file, command) = v
                .trim()
                .split_once(char::is_whitespace)
                .ok_or_else(|| format!("expected `FILE COMMAND`, got `{v}`"))?;
            let mut hook =
                super::hooks::parse("hook-touch", &format!("{file} exec:{}", command.trim()))?;
            hook.option = "touch-exec".to_string();
            hook.text = v.to_string();
            config.hooks.push(hook);
        }
        "master-fifo" => config.master_fifo.push(path(v)?),
        "harakiri-verbose" => config.harakiri_verbose = uwsgi_bool(v),
        "harakiri-graceful-timeout" => config.harakiri_graceful_timeout = seconds(v)?,
        "harakiri-queue-threshold" => config.harakiri_queue_threshold = number(v)?,
        "stats" => config.stats = Some(text(v)?),
        "max-requests-jitter" => config.max_requests_jitter = number(v)?,
        "max-worker-lifetime" => config.max_worker_lifetime = seconds(v)?,
        "max-worker-lifetime-delta" => config.max_worker_lifetime_delta = seconds(v)?,
        "min-worker-lifetime" => config.min_worker_lifetime = seconds(v)?,
        "reload-on-rss" => config.reload_on_rss = megabytes(v)?,
        "reload-on-as" => config.reload_on_as = megabytes(v)?,
        "evil-reload-on-rss" => config.evil_reload_on_rss = megabytes(v)?,
        "evil-reload-on-as" => config.evil_reload_on_as = megabytes(v)?,
        "idle" => config.idle = seconds(v)?,
        "die-on-idle" => config.die_on_idle = uwsgi_bool(v),
        "cheap" => config.cheap = uwsgi_bool(v),
        "touch-chain-reload" => config.touch_chain_reload.push(path(v)?),
        "touch-workers-reload" => config.touch_workers_reload.push(path(v)?),
        "touch-signal" => {
            let (file, signal) = v
                .trim()
                .split_once(' ')
                .ok_or_else(|| format!("expected `FILE SIGNAL`, got `{v}`"))?;
            let signal = signal.trim().parse::<u8>().map_err(|_| {
                format!(
                    "expected a uWSGI signal number (0-255), got `{}`",
                    signal.trim()
                )
            })?;
            config.touch_signal.push((path(file)?, signal));
        }
        "fs-brutal-reload" => config.fs_brutal_reload.push(path(v)?),
        "py-tracebacker" => config.py_tracebacker = Some(path(v)?),
        "stats-http" => config.stats_http = uwsgi_bool(v),
        "stats-minified" => config.stats_minified = uwsgi_bool(v),
        "stats-no-cores" => config.stats_no_cores = uwsgi_bool(v),
        "cheaper-algo-list" if uwsgi_bool(v) => config.action = Action::CheaperAlgoList,
        "cheaper-algo-list" => {}
        name if super::cheaper::owns(name) => super::cheaper::apply(&mut config.cheaper, name, v)?,
        "spooler" => config.spooler.dirs.push(path(v)?),
        "spooler-external" => config.spooler.external.push(path(v)?),
        "spooler-processes" => config.spooler.processes = at_least_one(v)?,
        "spooler-frequency" => config.spooler.frequency = seconds(v)?.max(Duration::from_secs(1)),
        "spooler-harakiri" => config.spooler.harakiri = seconds(v)?,
        "spooler-max-tasks" => config.spooler.max_tasks = number(v)?,
        "spooler-chdir" => config.spooler.chdir = Some(path(v)?),
        "spooler-ordered" => config.spooler.ordered = uwsgi_bool(v),
        "spooler-quiet" => config.spooler.quiet = uwsgi_bool(v),
        "spooler-import" => config.spooler.imports.push(text(v)?),
        "mule" => config.mules.push(v.to_string()),
        "mules" => config
            .mules
            .extend(std::iter::repeat_n(String::new(), number(v)? as usize)),
        "farm" => config.farms.push(farm(v)?),
        "mule-harakiri" => config.mule_harakiri = seconds(v)?,
        "mule-msg-size" => config.mule_msg_size = number(v)?.clamp(1, 1 << 24) as usize,
        "timer" | "rbtimer" => config.timers.push(super::cron::parse_timer(v)?),
        "cron" => config.crons.push(super::cron::parse_cron(v, false)?),
        "unique-cron" => config.crons.push(super::cron::parse_cron(v, true)?),
        "cron2" => config.crons.push(super::cron::parse_cron2(v)?),
        "cron-harakiri" => config.cron_harakiri = seconds(v)?,
        "cache2" => config.cache2.push(super::cache::parse_cache2(v)?),
        "cache" => config.cache_items = number(v)?,
        "cache-blocksize" => config.cache_blocksize = number(v)?.max(1),
        "locks" => {
            config.locks = u32::try_from(number(v)?).map_err(|_| "too many locks".to_string())?
        }
        "stats-prometheus" => config.stats_prometheus = Some(text(v)?),
        "health-check-path" => config.health_check_path = Some(health_path(v)?),
        "health-drain-delay" => config.health_drain_delay = seconds(v)?,
        "heartbeat" => config.heartbeat = seconds(v)?,
        "emperor-required-heartbeat" => config.emperor_required_heartbeat = seconds(v)?,

        "emperor" => config.emperor.push(text(v)?),
        "emperor-throttle" => config.emperor_throttle = Duration::from_millis(number(v)?),
        "emperor-max-throttle" => config.emperor_max_throttle = Duration::from_millis(number(v)?),
        "emperor-stats" => config.emperor_stats = Some(text(v)?),
        "emperor-stats-prometheus" => config.emperor_stats_prometheus = Some(text(v)?),
        "emperor-on-demand-directory" => config.emperor_on_demand_directory = Some(path(v)?),
        "emperor-on-demand-extension" => config.emperor_on_demand_extension = Some(text(v)?),
        "emperor-on-demand-exec" => config.emperor_on_demand_exec = Some(text(v)?),
        "emperor-tyrant" => config.emperor_tyrant = uwsgi_bool(v),
        "emperor-pidfile" => config.emperor_pidfile = Some(path(v)?),
        "vassals-include" => config.vassals_include.push(text(v)?),
        "vassals-include-before" => config.vassals_include_before.push(text(v)?),
        "vassals-inherit" => config.vassals_inherit.push(text(v)?),
        "vassals-inherit-before" => config.vassals_inherit_before.push(text(v)?),
        "unshare" => config.unshare.before_post_jail |= super::jail::parse(v)?,
        "unshare2" => config.unshare.after_post_jail |= super::jail::parse(v)?,
        "gevent" => config.async_cores = at_least_one(v)?,
        name if name.starts_with("mount-") || name.starts_with("umount-") => {
            config.hooks.push(super::hooks::parse_mount(name, v)?)
        }
        name if super::hooks::HookPhase::of_option(name).is_some() => {
            config.hooks.push(super::hooks::parse(name, v)?)
        }
        "daemons-honour-stdin" => config.daemons_honour_stdin = uwsgi_bool(v),
        name if super::alarms::NAMES.contains(&name) => {
            super::alarms::apply(&mut config.alarm, name, v)?
        }
        name if super::carbon::NAMES.contains(&name) => {
            super::carbon::apply(&mut config.carbon, name, v)?
        }
        name if super::fastrouter::NAMES.contains(&name) => {
            super::fastrouter::apply(&mut config.fastrouter, name, v)?
        }
        "attach-daemon"
        | "attach-daemon2"
        | "smart-attach-daemon"
        | "smart-attach-daemon2"
        | "attach-control-daemon" => config.daemons.push(super::daemons::parse(spec.name, v)?),
        other => {
            return Err(format!(
                "option `{other}` is marked implemented but kaiser does not apply it (a bug)"
            ))
        }
    }
    Ok(())
}

/// `module = pkg.mod:callable` names the callable too, and then it wins over `callable`
/// (uWSGI's python loader does the same), so the app loader gets both parts separately.
fn split_module_callable(config: &mut Config) {
    let Some(module) = config.module.take() else {
        return;
    };
    match module.split_once(':') {
        Some((name, callable)) if !callable.is_empty() => {
            config.module = Some(name.to_string());
            config.callable = callable.to_string();
        }
        _ => config.module = Some(module),
    }
}

fn build_sockets(entries: &[&Entry], protocol: Protocol, report: &mut Report) -> Vec<SocketSpec> {
    let mut sockets: Vec<(SocketSpec, &Origin)> = Vec::new();
    for entry in entries {
        let socket_protocol = match entry.key.as_str() {
            // `protocol` changes the default sockets only; `uwsgi-socket` is explicit.
            "socket" => protocol,
            "uwsgi-socket" => Protocol::Uwsgi,
            "scgi-socket" => Protocol::Scgi { nph: false },
            "scgi-nph-socket" => Protocol::Scgi { nph: true },
            "puwsgi-socket" => Protocol::Puwsgi,
            "raw-socket" => Protocol::Raw,
            "fastcgi-socket" => Protocol::FastCgi { nph: false },
            "fastcgi-nph-socket" => Protocol::FastCgi { nph: true },
            _ => Protocol::Http,
        };
        let address = match address(&entry.value) {
            Ok(address) => address,
            Err(message) => {
                report.error(&entry.origin, &entry.key, message);
                continue;
            }
        };
        // Port 0 asks the kernel for a fresh port each time, so two of them never clash.
        let ephemeral = matches!(address, Address::Tcp { port: 0, .. });
        if let Some((earlier, origin)) = sockets
            .iter()
            .find(|(s, _)| !ephemeral && s.address == address)
        {
            let why = if earlier.protocol != socket_protocol {
                "; a uwsgi `socket` and an HTTP socket cannot share an address, give each its own port or path"
            } else {
                ""
            };
            report.error(
                &entry.origin,
                &entry.key,
                format!(
                    "`{}` is already used by `{}` at {origin}{why}",
                    entry.value, earlier.option
                ),
            );
            continue;
        }
        sockets.push((
            SocketSpec {
                protocol: socket_protocol,
                address,
                option: entry.key.clone(),
            },
            &entry.origin,
        ));
    }
    sockets.into_iter().map(|(socket, _)| socket).collect()
}

fn unknown_key(entry: &Entry, strict: bool, used: &HashSet<String>, report: &mut Report) {
    let suggestion = did_you_mean(&entry.key, options::all_names());
    let hint = suggestion
        .map(|name| format!(" (did you mean `{name}`?)"))
        .unwrap_or_default();
    if strict {
        let placeholder = if used.contains(&entry.key) && suggestion.is_none() {
            format!(
                "; in strict mode define placeholders with `set-ph = {}=…`",
                entry.key
            )
        } else {
            String::new()
        };
        report.error(
            &entry.origin,
            &entry.key,
            format!("unknown option{hint}{placeholder}"),
        );
    } else if !used.contains(&entry.key) {
        // uWSGI silently keeps unknown keys as placeholders; a key that no `%(…)` uses is
        // much more likely a typo.
        report.warn(
            &entry.origin,
            &entry.key,
            format!("unknown option, ignored{hint}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_implemented_option_is_applied() {
        for spec in options::OPTIONS
            .iter()
            .filter(|s| s.status == Status::Implemented)
        {
            // Typed in `build`, which knows the key as written (see the `route` tests there).
            if matches!(
                spec.name,
                "socket"
                    | "http-socket"
                    | "http"
                    | "scgi-socket"
                    | "scgi-nph-socket"
                    | "puwsgi-socket"
                    | "raw-socket"
                    | "fastcgi-socket"
                    | "fastcgi-nph-socket"
                    | "protocol"
                    | "abstract-socket"
                    | "shared-socket"
                    | "route"
                    | "error-route"
                    | "response-route"
                    | "final-route"
                    | "collect-header"
                    | "pull-header"
            ) {
                continue;
            }
            let sample = match spec.kind {
                // A string that must be an octal mask (a bare `--umask` would make no sense).
                _ if spec.name == "umask" => "022",
                _ if spec.name == "raw-modifier1" => "0",
                _ if spec.name == "mount" => "/app=app.py",
                _ if spec.name == "add-header" => "X-A: b",
                _ if spec.name == "hook-touch" => "/tmp/flag print:x",
                _ if spec.name == "touch-exec" => "/tmp/flag true",
                _ if spec.name.starts_with("hook-") => "print:x",
                _ if spec.name.starts_with("smart-attach-daemon") => "/tmp/x.pid sleep 9",
                _ if spec.name == "attach-daemon2" => "cmd=sleep 9",
                _ if spec.name == "cheaper-algo" => "spare",
                _ if spec.name.ends_with("logger") => "stdio",
                _ if spec.name.ends_with("route") => "id x",
                _ if spec.name.ends_with("encoder") => "nl",
                _ if spec.name.starts_with("static-map") => "/s=/srv",
                _ if spec.name.starts_with("static-expires-type") => "text/css=60",
                _ if spec.name.starts_with("static-expires") => "x 60",
                _ if spec.name == "file-serve-mode" => "nginx",
                _ if spec.name == "cache2" => "name=a,items=1",
                _ if spec.name == "farm" => "f:1,2",
                _ if spec.name == "subscribe-to" => "127.0.0.1:7171:example.com",
                _ if spec.name == "subscribe2" => "server=127.0.0.1:7171,key=k",
                _ if spec.name == "zergpool" => "/tmp/zp:127.0.0.1:3031",
                _ if matches!(spec.name, "timer" | "rbtimer") => "1 2",
                _ if matches!(spec.name, "cron" | "unique-cron") => "-1 -1 -1 -1 -1 true",
                _ if spec.name == "cron2" => "minute=-1 true",
                _ if spec.name == "health-check-path" => "/healthz",
                _ if spec.name == "alarm" => "a cmd:true",
                _ if spec.name == "alarm-fd" => "a 3 m",
                _ if spec.name == "touch-signal" => "/tmp/flag 17",
                _ if spec.name == "carbon" => "127.0.0.1:2003",
                _ if spec.name == "carbon-idle-avg" => "zero",
                _ if spec.name.ends_with("log-alarm") => "a x",
                _ if spec.name.starts_with("unshare") => "net,uts",
                _ if spec.name.starts_with("mount-") => "tmpfs none /x",
                _ if spec.name == "vassals-set" => "processes=2",
                _ if spec.name == "emperor-extra-extension" => ".conf",
                Kind::Int | Kind::Seconds | Kind::Millis => "2",
                Kind::KeyValue | Kind::Define => "A=b",
                Kind::Mode => "660",
                Kind::Megabytes => "1.5",
                _ => "x",
            };
            let mut config = Config::default();
            assert_eq!(
                apply(&mut config, spec, sample),
                Ok(()),
                "option `{}`",
                spec.name
            );
        }
    }
}
