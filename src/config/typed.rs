//! Expanded entries to the typed [`Config`]: value parsing, statuses from the option table
//! (implemented, no-op, not yet supported), strict mode, unknown keys and the checks that
//! need the whole configuration (two sockets on one address).
//!
//! Scalars take the last entry, list options accumulate, as in uWSGI. Every problem is
//! collected, none stops the others from being found.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use super::diagnostics::{did_you_mean, Origin, Report};
use super::options::{self, Kind, OptionSpec, Status};
use super::sources::Entry;
use super::{extra, hints, numbers, Action, Address, Config, Protocol, SocketSpec};

/// `buffer-size` is a 16-bit field in uWSGI.
const MAX_BUFFER_SIZE: usize = 65535;

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
        if let Status::NotYet(hint) = spec.status {
            let switched_off = matches!(spec.kind, Kind::Bool) && !uwsgi_bool(&entry.value);
            if !switched_off {
                let hint = if hint.is_empty() {
                    String::new()
                } else {
                    format!("; {hint}")
                };
                report.error(
                    &entry.origin,
                    &entry.key,
                    format!(
                        "`{}` is a uWSGI option that kaiser does not support yet{hint}",
                        entry.key
                    ),
                );
            }
            continue;
        }
        let Some(value) = prepare_value(spec, entry, report) else {
            continue;
        };
        let applied = match spec.status {
            Status::NoOp(_) => check_noop(spec, &value),
            _ => match spec.name {
                "socket" | "http-socket" | "http" | "scgi-socket" | "scgi-nph-socket" => {
                    sockets.push(entry);
                    Ok(())
                }
                // The key as written tells the table and the subject (`error-route-status`).
                "route" | "error-route" | "response-route" | "final-route" => {
                    config.routes.add(&entry.key, &value)
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
                    other => Err(format!(
                        "kaiser speaks `uwsgi` and `http` on `socket` entries, not `{other}`"
                    )),
                },
                _ => apply(&mut config, spec, &value),
            },
        };
        if let Err(message) = applied {
            report.error(&entry.origin, &entry.key, message);
        }
    }
    if let Err(message) = config.routes.check() {
        report.error(&super::diagnostics::Origin::Whole, "route-label", message);
    }
    split_module_callable(&mut config);
    config.sockets = build_sockets(&sockets, protocol, report);
    super::shared_sockets::resolve(&mut config.sockets, &shared, abstract_sockets, report);
    super::cheaper::check(&mut config, entries, report);
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
        let message = hints::inline_comment_message(&entry.key, value, false);
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
            let builtin =
                plugin.starts_with("python") || plugin == "http" || plugin == "router_http";
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
    match spec.name {
        "help" => config.action = Action::Help,
        "version" => config.action = Action::Version,
        "check-config" if uwsgi_bool(v) => config.action = Action::CheckConfig,
        "print-config" if uwsgi_bool(v) => config.action = Action::PrintConfig,
        "show-config" => config.show_config = uwsgi_bool(v),
        "check-config" | "print-config" => {}
        "reload" => config.action = Action::Reload(path(v)?),
        "stop" => config.action = Action::Stop(path(v)?),
        // Loading options and config logic were applied while the sources were read.
        "ini" | "include" | "inherit" | "set" | "set-placeholder" | "for" | "endfor" | "if-env"
        | "if-reload" | "endif" | "ini-paste" | "declare-option" => {}
        "strict" => config.strict = uwsgi_bool(v),

        "wsgi-file" => config.wsgi_file = Some(path(v)?),
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
        "so-keepalive" => config.so_keepalive = uwsgi_bool(v),
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
        name if super::hooks::HookPhase::of_option(name).is_some() => {
            config.hooks.push(super::hooks::parse(name, v)?)
        }
        "daemons-honour-stdin" => config.daemons_honour_stdin = uwsgi_bool(v),
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

/// uWSGI's `uwsgi_opt_true`: false only for `false`, `off`, `no` (any case) and `0`.
pub(crate) fn uwsgi_bool(value: &str) -> bool {
    !(value.eq_ignore_ascii_case("false")
        || value.eq_ignore_ascii_case("off")
        || value.eq_ignore_ascii_case("no")
        || value == "0")
}

/// `farm = NAME:1,2,3`.
fn farm(value: &str) -> Result<(String, Vec<u32>), String> {
    let (name, ids) = value
        .split_once(':')
        .ok_or_else(|| format!("expected `NAME:MULE,MULE`, got `{value}`"))?;
    let ids = ids
        .split(',')
        .map(|id| id.trim().parse::<u32>().ok().filter(|id| *id >= 1))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("farm `{name}`: mule ids are numbers from 1, got `{ids}`"))?;
    if name.is_empty() {
        return Err(format!("expected `NAME:MULE,MULE`, got `{value}`"));
    }
    Ok((name.to_string(), ids))
}

fn number(value: &str) -> Result<u64, String> {
    if value.starts_with('-') {
        return Err(format!("must not be negative, got `{value}`"));
    }
    value
        .parse::<u64>()
        .map_err(|_| format!("expected a whole number, got `{value}`"))
}

fn at_least_one(value: &str) -> Result<u32, String> {
    let n = number(value)?;
    match u32::try_from(n) {
        Ok(0) => Err("must be at least 1, got `0`".to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{value}` is too large")),
    }
}

/// `health-check-path`: an absolute path, matched exactly (a query string is ignored).
fn health_path(value: &str) -> Result<String, String> {
    let value = value.trim();
    if !value.starts_with('/') || value.contains(['?', ' ']) {
        return Err(format!(
            "`{value}` is not an absolute path without a query (e.g. `/healthz`)"
        ));
    }
    Ok(value.to_string())
}

fn seconds(value: &str) -> Result<Duration, String> {
    number(value).map(Duration::from_secs)
}

/// Megabytes with decimals (`uwsgi_opt_set_megabytes`), as bytes.
pub(crate) fn megabytes(value: &str) -> Result<u64, String> {
    match value.parse::<f64>() {
        Ok(mb) if mb >= 0.0 && mb.is_finite() => Ok((mb * 1024.0 * 1024.0) as u64),
        _ => Err(format!(
            "expected a size in megabytes such as `512` or `1.5`, got `{value}`"
        )),
    }
}

fn mode(value: &str) -> Result<u32, String> {
    if value.is_empty() {
        return Ok(0o666);
    }
    match u32::from_str_radix(value, 8) {
        Ok(mode) if mode <= 0o7777 => Ok(mode),
        _ => Err(format!(
            "expected an octal file mode such as `660`, got `{value}`"
        )),
    }
}

/// `add-header = Name: value`, checked as a response header is.
fn header(value: &str) -> Result<(String, String), String> {
    let Some((name, value_part)) = value.split_once(':') else {
        return Err(format!("expected `Name: value`, got `{value}`"));
    };
    let (name, value_part) = (name.trim(), value_part.trim());
    crate::protocol::response::validate_header(name.as_bytes(), value_part.as_bytes())
        .map_err(|e| format!("`{value}`: {e}"))?;
    Ok((name.to_string(), value_part.to_string()))
}

/// `mount = /point=target`. The mountpoint loses a trailing `/` (SCRIPT_NAME never ends in
/// one), so `/` itself becomes the empty, root mountpoint.
fn mount(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((point, target))
            if !target.trim().is_empty() && (point.is_empty() || point.starts_with('/')) =>
        {
            Ok((
                point.trim_end_matches('/').to_string(),
                target.trim().to_string(),
            ))
        }
        _ => Err(format!(
            "expected `/mountpoint=app.py` or `/mountpoint=package.module:callable`, got `{value}`"
        )),
    }
}

/// A `logto` file; uWSGI's UDP form (`host:port`) is refused with what to do instead.
fn log_file(value: &str) -> Result<PathBuf, String> {
    let udp = !value.contains('/')
        && value
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    if udp {
        return Err(format!(
            "logging to a UDP address (`{value}`) is not supported yet: give a file path, or log to stderr and let systemd or the emperor collect it"
        ));
    }
    path(value)
}

fn path(value: &str) -> Result<PathBuf, String> {
    if value.is_empty() {
        return Err("expected a path, got an empty value".to_string());
    }
    Ok(PathBuf::from(value))
}

fn text(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err("expected a value, got an empty one".to_string());
    }
    Ok(value.to_string())
}

fn key_value(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((name, v)) if !name.is_empty() => Ok((name.to_string(), v.to_string())),
        _ => Err(format!("expected `NAME=value`, got `{value}`")),
    }
}

/// Parses a socket address the way uWSGI decides between TCP and unix sockets: a value with
/// a `/` or without a `:` is a path; `@name` is a Linux abstract socket.
pub(crate) fn address(value: &str) -> Result<Address, String> {
    if value.is_empty() {
        return Err(
            "expected an address such as `:8080` or `/run/app.sock`, got an empty value"
                .to_string(),
        );
    }
    if let Some(name) = value.strip_prefix('@') {
        if name.is_empty() {
            return Err("an abstract socket needs a name after `@`".to_string());
        }
        return Ok(Address::Abstract(name.to_string()));
    }
    if value.contains('/') || !value.contains(':') {
        return Ok(Address::Unix(PathBuf::from(value)));
    }
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let Some((host, port)) = rest.split_once("]:") else {
            return Err(format!("expected `[address]:port`, got `{value}`"));
        };
        (host, port)
    } else {
        let (host, port) = value.rsplit_once(':').expect("the value contains `:`");
        if host.contains(':') {
            return Err(format!(
                "write IPv6 addresses in brackets, e.g. `[::1]:8080`, got `{value}`"
            ));
        }
        (host, port)
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("invalid port `{port}` in `{value}`"))?;
    Ok(Address::Tcp {
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_address(value: &str, expected: Result<Address, &str>) {
        assert_eq!(
            address(value),
            expected.map_err(str::to_string),
            "address {value:?}"
        );
    }

    fn tcp(host: &str, port: u16) -> Result<Address, &'static str> {
        Ok(Address::Tcp {
            host: host.into(),
            port,
        })
    }

    #[test]
    fn addresses() {
        check_address(":8080", tcp("", 8080));
        check_address("127.0.0.1:80", tcp("127.0.0.1", 80));
        check_address("0.0.0.0:0", tcp("0.0.0.0", 0));
        check_address("[::1]:80", tcp("::1", 80));
        check_address("[::]:9000", tcp("::", 9000));
        check_address("localhost:80", tcp("localhost", 80));
        check_address("/run/app.sock", Ok(Address::Unix("/run/app.sock".into())));
        check_address("app.sock", Ok(Address::Unix("app.sock".into())));
        check_address("./a:b.sock", Ok(Address::Unix("./a:b.sock".into())));
        check_address("@kaiser", Ok(Address::Abstract("kaiser".into())));
        check_address("@", Err("an abstract socket needs a name after `@`"));
        check_address(":http", Err("invalid port `http` in `:http`"));
        check_address(":70000", Err("invalid port `70000` in `:70000`"));
        check_address(
            "::1:80",
            Err("write IPv6 addresses in brackets, e.g. `[::1]:8080`, got `::1:80`"),
        );
        check_address("[::1]80", Err("expected `[address]:port`, got `[::1]80`"));
    }

    #[test]
    fn values() {
        for (value, expected) in [
            ("", true),
            ("true", true),
            ("yes", true),
            ("1", true),
            ("whatever", true),
            ("false", false),
            ("OFF", false),
            ("No", false),
            ("0", false),
        ] {
            assert_eq!(uwsgi_bool(value), expected, "bool {value:?}");
        }
        assert_eq!(number("12"), Ok(12));
        assert_eq!(number("-1"), Err("must not be negative, got `-1`".into()));
        assert_eq!(
            number("4 workers"),
            Err("expected a whole number, got `4 workers`".into())
        );
        assert_eq!(at_least_one("0"), Err("must be at least 1, got `0`".into()));
        assert_eq!(megabytes("1.5"), Ok(1572864));
        assert_eq!(megabytes("512"), Ok(536870912));
        assert!(megabytes("lots").is_err());
        assert_eq!(mode(""), Ok(0o666));
        assert_eq!(mode("660"), Ok(0o660));
        assert_eq!(mode("0644"), Ok(0o644));
        assert!(mode("999").is_err());
        assert_eq!(key_value("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(key_value("A").is_err());
        assert!(key_value("=b").is_err());
    }

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
                    | "protocol"
                    | "abstract-socket"
                    | "shared-socket"
                    | "route"
                    | "error-route"
                    | "response-route"
                    | "final-route"
            ) {
                continue;
            }
            let sample = match spec.kind {
                // A string that must be an octal mask (a bare `--umask` would make no sense).
                _ if spec.name == "umask" => "022",
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
                _ if matches!(spec.name, "timer" | "rbtimer") => "1 2",
                _ if matches!(spec.name, "cron" | "unique-cron") => "-1 -1 -1 -1 -1 true",
                _ if spec.name == "cron2" => "minute=-1 true",
                _ if spec.name == "health-check-path" => "/healthz",
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
