//! `--show-config` and `--print-config`: the effective configuration as an `[uwsgi]` INI text.
//!
//! Rendered from the typed [`Config`] rather than from the raw entries, so includes,
//! placeholders and overridden scalars are already resolved and loading the text back gives
//! the same configuration (`config/tests/show_round_trip.rs` checks it for every implemented
//! option: a new `Config` field needs its line here). Options at their default are left out.
//! Compiled values that keep no text (routes, `log-format`, log encoders) come from
//! `Config::as_written`. This module only formats; it must not change the configuration.

use std::fmt::Write;

use super::subscriptions::Subscription;
use super::{Address, Config, Protocol};

/// Options kept as written (`Config::as_written`): their order matters (routes) or their
/// typed form is compiled (templates, encoders) and keeps no text to print.
const ROUTING: &[&str] = &[
    "route",
    "error-route",
    "response-route",
    "final-route",
    "collect-header",
    "pull-header",
];
const LOGGING: &[&str] = &["log-format", "log-encoder", "log-req-encoder"];

/// The canonical name of `key` (an alias such as `route-host` gives `route`).
fn canonical(key: &str) -> &'static str {
    super::options::find(key).map_or("", |spec| spec.name)
}

/// Called for every applied entry: keeps those of [`ROUTING`] and [`LOGGING`] as written
/// (a route under the key as written, which names its subject). `log-format` is one value,
/// so a later one replaces the earlier. The list is kept in the order `render` prints it
/// (`log-format`, the encoders, then the routes), so that it reads back the same.
pub(crate) fn keep_as_written(config: &mut Config, name: &str, key: &str, value: &str) {
    if ROUTING.contains(&name) {
        config.as_written.push((key.to_owned(), value.to_owned()));
    } else if LOGGING.contains(&name) {
        if name == "log-format" {
            config.as_written.retain(|(key, _)| key != "log-format");
            config
                .as_written
                .insert(0, (name.to_owned(), value.to_owned()));
            return;
        }
        let first_route = config
            .as_written
            .iter()
            .position(|(key, _)| !LOGGING.contains(&key.as_str()))
            .unwrap_or(config.as_written.len());
        config
            .as_written
            .insert(first_route, (name.to_owned(), value.to_owned()));
    }
}

pub(crate) fn render(config: &Config) -> String {
    let default = Config::default();
    let mut out = String::from("[uwsgi]\n");
    let mut line = |key: &str, value: &str| {
        // `%` would be eaten by magic expansion when the text is read back.
        let _ = writeln!(out, "{key} = {}", value.replace('%', "%%"));
    };
    let path = |p: &std::path::Path| p.display().to_string();

    if config.strict {
        line("strict", "true");
    }
    if config.show_config {
        line("show-config", "true");
    }
    if let Some(file) = &config.wsgi_file {
        line("wsgi-file", &path(file));
    }
    if let Some(file) = &config.python_raw {
        line("python-raw", &path(file));
    }
    if let Some(module) = &config.module {
        line("module", module);
    }
    if config.callable != default.callable {
        line("callable", &config.callable);
    }
    if let Some(dir) = &config.chdir {
        line("chdir", &path(dir));
    }
    for dir in &config.pythonpath {
        line("pythonpath", &path(dir));
    }
    if let Some(home) = &config.home {
        line("home", &path(home));
    }
    for (name, value) in &config.env {
        line("env", &format!("{name}={value}"));
    }
    if config.need_app != default.need_app {
        line("need-app", &config.need_app.to_string());
    }
    if config.lazy_apps != default.lazy_apps {
        line("lazy-apps", &config.lazy_apps.to_string());
    }

    if config.processes != default.processes {
        line("processes", &config.processes.to_string());
    }
    if config.threads != default.threads {
        line("threads", &config.threads.to_string());
    }
    if let Some(uid) = &config.uid {
        line("uid", uid);
    }
    if let Some(gid) = &config.gid {
        line("gid", gid);
    }
    if let Some(pidfile) = &config.pidfile {
        line("pidfile", &path(pidfile));
    }
    if config.vacuum {
        line("vacuum", "true");
    }
    if config.batch_scheduling != default.batch_scheduling {
        line("batch-scheduling", &config.batch_scheduling.to_string());
    }
    if config.worker_reload_mercy != default.worker_reload_mercy {
        line(
            "worker-reload-mercy",
            &config.worker_reload_mercy.as_secs().to_string(),
        );
    }
    if config.reload_mercy != default.reload_mercy {
        line("reload-mercy", &config.reload_mercy.as_secs().to_string());
    }

    // `protocol` applies to every `socket` entry, so one line restores them all.
    let socket_protocol = config
        .sockets
        .iter()
        .find(|s| s.option == "socket")
        .map(|s| s.protocol);
    match socket_protocol {
        Some(Protocol::Http) => line("protocol", "http"),
        Some(Protocol::Puwsgi) => line("protocol", "puwsgi"),
        Some(Protocol::Raw) => line("protocol", "raw"),
        Some(Protocol::FastCgi { nph: false }) => line("protocol", "fastcgi"),
        Some(Protocol::FastCgi { nph: true }) => line("protocol", "fastcgi-nph"),
        _ => {}
    }
    for socket in &config.sockets {
        line(&socket.option, &render_address(&socket.address));
    }
    if let Some(mode) = config.chmod_socket {
        line("chmod-socket", &format!("{mode:o}"));
    }
    if let Some(owner) = &config.chown_socket {
        line("chown-socket", owner);
    }
    if config.listen != default.listen {
        line("listen", &config.listen.to_string());
    }
    if config.buffer_size != default.buffer_size {
        line("buffer-size", &config.buffer_size.to_string());
    }
    if config.post_buffering != default.post_buffering {
        line("post-buffering", &config.post_buffering.to_string());
    }
    if config.limit_post != default.limit_post {
        line("limit-post", &config.limit_post.to_string());
    }
    if config.limit_post_default != default.limit_post_default {
        line("limit-post-default", &config.limit_post_default.to_string());
    }
    if config.max_worker_connections != default.max_worker_connections {
        line(
            "max-worker-connections",
            &config.max_worker_connections.to_string(),
        );
    }
    if config.transfer_timeout != default.transfer_timeout {
        line(
            "transfer-timeout",
            &config.transfer_timeout.as_secs().to_string(),
        );
    }
    if config.transfer_min_rate != default.transfer_min_rate {
        line("transfer-min-rate", &config.transfer_min_rate.to_string());
    }
    if config.socket_timeout != default.socket_timeout {
        line(
            "socket-timeout",
            &config.socket_timeout.as_secs().to_string(),
        );
    }

    if let Some(logto) = &config.logto {
        line("logto", &path(logto));
    }
    if let Some(daemonize) = &config.daemonize {
        line("daemonize", &path(daemonize));
    }
    if config.disable_logging {
        line("disable-logging", "true");
    }
    let log = &config.log_conditions;
    for (name, on) in [
        ("log-4xx", log.status_4xx),
        ("log-5xx", log.status_5xx),
        ("log-zero", log.zero),
        ("log-sendfile", log.sendfile),
        ("log-ioerror", log.io_error),
        ("log-micros", config.log_micros),
        ("log-x-forwarded-for", config.log_x_forwarded_for),
        ("memory-report", config.memory_report),
        ("disable-write-exception", config.disable_write_exception),
        ("manage-script-name", config.manage_script_name),
        ("reuse-port", config.reuse_port),
        ("freebind", config.freebind),
        ("so-keepalive", config.so_keepalive),
        ("no-defer-accept", config.no_defer_accept),
        ("no-server", config.no_server),
        ("no-site", config.no_site),
    ] {
        if on {
            line(name, "true");
        }
    }
    if log.slow_ms != 0 {
        line("log-slow", &log.slow_ms.to_string());
    }
    if log.big_bytes != 0 {
        line("log-big", &log.big_bytes.to_string());
    }
    render_logging(config, &mut line);
    for (name, value) in &config.add_header {
        line("add-header", &format!("{name}: {value}"));
    }
    for (point, target) in &config.mount {
        line(
            "mount",
            &format!("{}={target}", if point.is_empty() { "/" } else { point }),
        );
    }

    if config.max_fd != 0 {
        line("max-fd", &config.max_fd.to_string());
    }
    for message in &config.print {
        line("print", message);
    }

    if config.threads_stacksize != 0 {
        line("threads-stacksize", &config.threads_stacksize.to_string());
    }
    if let Some(mask) = config.umask {
        line("umask", &format!("{mask:03o}"));
    }

    if config.max_requests != default.max_requests {
        line("max-requests", &config.max_requests.to_string());
    }
    if config.max_requests_delta != default.max_requests_delta {
        line("max-requests-delta", &config.max_requests_delta.to_string());
    }
    if let Some(harakiri) = config.harakiri {
        line("harakiri", &harakiri.as_secs().to_string());
    }
    if config.harakiri_verbose {
        line("harakiri-verbose", "true");
    }
    if config.harakiri_graceful_timeout != default.harakiri_graceful_timeout {
        line(
            "harakiri-graceful-timeout",
            &config.harakiri_graceful_timeout.as_secs().to_string(),
        );
    }
    for file in &config.touch_reload {
        line("touch-reload", &path(file));
    }
    for fifo in &config.master_fifo {
        line("master-fifo", &path(fifo));
    }
    if let Some(stats) = &config.stats {
        line("stats", stats);
    }
    render_recycling(config, &default, &mut line);
    config.statics.show(&mut line);
    render_spooler(config, &default, &mut line);
    if config.stats_http {
        line("stats-http", "true");
    }
    if config.stats_minified {
        line("stats-minified", "true");
    }
    if config.stats_no_cores {
        line("stats-no-cores", "true");
    }
    super::cheaper::show(&config.cheaper, &mut line);
    if let Some(address) = &config.stats_prometheus {
        line("stats-prometheus", address);
    }
    if let Some(health) = &config.health_check_path {
        line("health-check-path", health);
    }
    if !config.health_drain_delay.is_zero() {
        line(
            "health-drain-delay",
            &config.health_drain_delay.as_secs().to_string(),
        );
    }
    if !config.heartbeat.is_zero() {
        line("heartbeat", &config.heartbeat.as_secs().to_string());
    }

    for watched in &config.emperor {
        line("emperor", watched);
    }
    if config.emperor_throttle != default.emperor_throttle {
        line(
            "emperor-throttle",
            &config.emperor_throttle.as_millis().to_string(),
        );
    }
    if config.emperor_max_throttle != default.emperor_max_throttle {
        line(
            "emperor-max-throttle",
            &config.emperor_max_throttle.as_millis().to_string(),
        );
    }
    if let Some(stats) = &config.emperor_stats {
        line("emperor-stats", stats);
    }
    if let Some(address) = &config.emperor_stats_prometheus {
        line("emperor-stats-prometheus", address);
    }
    if !config.emperor_required_heartbeat.is_zero() {
        line(
            "emperor-required-heartbeat",
            &config.emperor_required_heartbeat.as_secs().to_string(),
        );
    }
    if let Some(dir) = &config.emperor_on_demand_directory {
        line("emperor-on-demand-directory", &path(dir));
    }
    if let Some(extension) = &config.emperor_on_demand_extension {
        line("emperor-on-demand-extension", extension);
    }
    if let Some(command) = &config.emperor_on_demand_exec {
        line("emperor-on-demand-exec", command);
    }
    if config.emperor_tyrant {
        line("emperor-tyrant", "true");
    }
    if let Some(path) = &config.emperor_pidfile {
        line("emperor-pidfile", &path.display().to_string());
    }
    for file in &config.vassals_include {
        line("vassals-include", file);
    }
    for file in &config.vassals_include_before {
        line("vassals-include-before", file);
    }
    for file in &config.vassals_inherit {
        line("vassals-inherit", file);
    }
    for file in &config.vassals_inherit_before {
        line("vassals-inherit-before", file);
    }
    // Hooks and daemons as written: their order matters and the values are not normalised.
    for hook in &config.hooks {
        line(&hook.option, &hook.text);
    }
    if config.daemons_honour_stdin {
        line("daemons-honour-stdin", "true");
    }
    for daemon in &config.daemons {
        line(&daemon.option, &daemon.text);
    }
    // Routes as written, in order: `goto` and labels depend on it.
    for (key, value) in &config.as_written {
        if ROUTING.contains(&canonical(key)) {
            line(key, value);
        }
    }
    super::extra::render(&config.extra, &mut line);
    super::alarms::render(&config.alarm, &mut line);
    super::carbon::render(&config.carbon, &mut line);
    super::fastrouter::render(&config.fastrouter, &mut line);
    if let Some(socket) = &config.py_tracebacker {
        line("py-tracebacker", &path(socket));
    }
    super::emperor_extra::render(&config.emperor_extra, &mut line);
    for pool in &config.zergpools {
        line("zergpool", &pool.to_string());
    }
    for server in &config.zerg {
        line("zerg", &path(server));
    }
    if config.zerg_fallback {
        line("zerg-fallback", "true");
    }
    if let Some(server) = &config.zerg_server {
        line("zerg-server", &path(server));
    }
    for subscription in &config.subscriptions {
        line("subscribe2", &subscription_text(subscription));
    }
    if config.subscribe_freq != default.subscribe_freq {
        line(
            "subscribe-freq",
            &config.subscribe_freq.as_secs().to_string(),
        );
    }
    for (option, mask) in [
        ("unshare", config.unshare.before_post_jail),
        ("unshare2", config.unshare.after_post_jail),
    ] {
        if mask != 0 {
            line(option, &super::jail::names(mask));
        }
    }
    if config.async_cores != 0 {
        line("gevent", &config.async_cores.to_string());
    }
    out
}

pub(crate) fn render_address(address: &Address) -> String {
    match address {
        Address::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
        Address::Tcp { host, port } => format!("{host}:{port}"),
        Address::Unix(path) => path.display().to_string(),
        Address::Abstract(name) => format!("@{name}"),
    }
}

/// The recycling and touch options (issue 5), kept apart so that their lines stay together.
fn render_recycling(config: &Config, default: &Config, line: &mut impl FnMut(&str, &str)) {
    let secs = |d: std::time::Duration| d.as_secs().to_string();
    // Megabytes with decimals, as they were written (`1.5`); whole numbers stay whole.
    let mb = |bytes: u64| {
        let value = bytes as f64 / (1024.0 * 1024.0);
        format!("{value}")
    };
    if config.max_requests_jitter != default.max_requests_jitter {
        line(
            "max-requests-jitter",
            &config.max_requests_jitter.to_string(),
        );
    }
    if config.max_worker_lifetime != default.max_worker_lifetime {
        line("max-worker-lifetime", &secs(config.max_worker_lifetime));
    }
    if config.max_worker_lifetime_delta != default.max_worker_lifetime_delta {
        line(
            "max-worker-lifetime-delta",
            &secs(config.max_worker_lifetime_delta),
        );
    }
    if config.idle != default.idle {
        line("idle", &secs(config.idle));
    }
    if config.cheap {
        line("cheap", "true");
    }
    if config.die_on_idle {
        line("die-on-idle", "true");
    }
    if config.min_worker_lifetime != default.min_worker_lifetime {
        line("min-worker-lifetime", &secs(config.min_worker_lifetime));
    }
    for (key, value, default) in [
        ("reload-on-rss", config.reload_on_rss, default.reload_on_rss),
        ("reload-on-as", config.reload_on_as, default.reload_on_as),
        (
            "evil-reload-on-rss",
            config.evil_reload_on_rss,
            default.evil_reload_on_rss,
        ),
        (
            "evil-reload-on-as",
            config.evil_reload_on_as,
            default.evil_reload_on_as,
        ),
    ] {
        if value != default {
            line(key, &mb(value));
        }
    }
    for file in &config.touch_chain_reload {
        line("touch-chain-reload", &file.display().to_string());
    }
    for file in &config.touch_workers_reload {
        line("touch-workers-reload", &file.display().to_string());
    }
    for (file, signal) in &config.touch_signal {
        line("touch-signal", &format!("{} {signal}", file.display()));
    }
    for file in &config.fs_brutal_reload {
        line("fs-brutal-reload", &file.display().to_string());
    }
    if config.harakiri_queue_threshold != default.harakiri_queue_threshold {
        line(
            "harakiri-queue-threshold",
            &config.harakiri_queue_threshold.to_string(),
        );
    }
}

/// The spooler's options and `locks` (issue 19).
fn render_spooler(config: &Config, default: &Config, line: &mut impl FnMut(&str, &str)) {
    let spooler = &config.spooler;
    let defaults = &default.spooler;
    for dir in &spooler.dirs {
        line("spooler", &dir.display().to_string());
    }
    for dir in &spooler.external {
        line("spooler-external", &dir.display().to_string());
    }
    if spooler.processes != defaults.processes {
        line("spooler-processes", &spooler.processes.to_string());
    }
    if spooler.frequency != defaults.frequency {
        line(
            "spooler-frequency",
            &spooler.frequency.as_secs().to_string(),
        );
    }
    if spooler.harakiri != defaults.harakiri {
        line("spooler-harakiri", &spooler.harakiri.as_secs().to_string());
    }
    if spooler.max_tasks != defaults.max_tasks {
        line("spooler-max-tasks", &spooler.max_tasks.to_string());
    }
    if let Some(dir) = &spooler.chdir {
        line("spooler-chdir", &dir.display().to_string());
    }
    if spooler.ordered {
        line("spooler-ordered", "true");
    }
    if spooler.quiet {
        line("spooler-quiet", "true");
    }
    for module in &spooler.imports {
        line("spooler-import", module);
    }
    for cache in &config.cache2 {
        line(
            "cache2",
            &format!(
                "name={},items={},blocksize={},keysize={},expires={}{}{}",
                cache.name,
                cache.items,
                cache.blocksize,
                cache.keysize,
                cache.expires,
                if cache.purge_lru { ",purge_lru=1" } else { "" },
                if cache.clear_on_full {
                    ",clear_on_full=1"
                } else {
                    ""
                },
            ),
        );
    }
    if config.cache_items != default.cache_items {
        line("cache", &config.cache_items.to_string());
    }
    if config.cache_blocksize != default.cache_blocksize {
        line("cache-blocksize", &config.cache_blocksize.to_string());
    }
    for mule in &config.mules {
        line("mule", mule);
    }
    for (name, ids) in &config.farms {
        let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
        line("farm", &format!("{name}:{}", ids.join(",")));
    }
    if config.mule_harakiri != default.mule_harakiri {
        line("mule-harakiri", &config.mule_harakiri.as_secs().to_string());
    }
    if config.mule_msg_size != default.mule_msg_size {
        line("mule-msg-size", &config.mule_msg_size.to_string());
    }
    for (signal, seconds) in &config.timers {
        line("timer", &format!("{signal} {seconds}"));
    }
    for cron in &config.crons {
        let [minute, hour, day, month, week] = cron.fields;
        line(
            "cron2",
            &format!(
                "minute={minute},hour={hour},day={day},month={month},week={week},unique={},harakiri={} {}",
                u8::from(cron.unique),
                cron.harakiri,
                cron.command
            ),
        );
    }
    if config.cron_harakiri != default.cron_harakiri {
        line("cron-harakiri", &config.cron_harakiri.as_secs().to_string());
    }
    if config.locks != default.locks {
        line("locks", &config.locks.to_string());
    }
}

/// The log master's options (`logging.rs`): files, loggers, routing, rotation.
fn render_logging(config: &Config, line: &mut impl FnMut(&str, &str)) {
    let log = &config.log;
    let path = |p: &std::path::Path| p.display().to_string();
    for (key, value) in &config.as_written {
        if key == "log-format" {
            line(key, value);
        }
    }
    if log.format_strftime {
        line("log-format-strftime", "true");
    }
    if log.date {
        line("log-date", log.date_format.as_deref().unwrap_or("true"));
    }
    if let Some(file) = &log.logto2 {
        line("logto2", &path(file));
    }
    if log.master {
        line("log-master", "true");
    }
    for logger in &log.loggers {
        line("logger", &super::logging::logger_text(logger));
    }
    for logger in &log.req_loggers {
        line("req-logger", &super::logging::logger_text(logger));
    }
    for route in &log.routes {
        line(
            "log-route",
            &format!("{} {}", route.id, route.pattern.as_str()),
        );
    }
    for route in &log.req_routes {
        line(
            "log-req-route",
            &format!("{} {}", route.id, route.pattern.as_str()),
        );
    }
    for (key, value) in &config.as_written {
        if key == "log-encoder" || key == "log-req-encoder" {
            line(key, value);
        }
    }
    for pattern in &log.drain {
        line("log-drain", pattern.as_str());
    }
    for pattern in &log.filter {
        line("log-filter", pattern.as_str());
    }
    if let Some(prefix) = &log.prefix {
        line("log-prefix", prefix);
    }
    if log.maxsize != 0 {
        line("log-maxsize", &log.maxsize.to_string());
    }
    if let Some(file) = &log.backupname {
        line("log-backupname", &path(file));
    }
    for file in &log.touch_reopen {
        line("touch-logreopen", &path(file));
    }
    for file in &log.touch_rotate {
        line("touch-logrotate", &path(file));
    }
    if log.truncate {
        line("log-truncate", "true");
    }
    if log.chown {
        line("logfile-chown", "true");
    }
    if let Some(mode) = log.chmod {
        line("logfile-chmod", &format!("{mode:o}"));
    }
}

/// A subscription as `subscribe2` reads it back, every field spelled out (`subscribe-to`
/// and `subscribe2` differ in their default weight).
fn subscription_text(subscription: &Subscription) -> String {
    let mut text = format!("server={},key={}", subscription.server, subscription.key);
    if let Some(address) = &subscription.address {
        let _ = write!(text, ",addr={address}");
    }
    if let Some(socket) = subscription.socket {
        let _ = write!(text, ",socket={socket}");
    }
    let _ = write!(
        text,
        ",weight={},modifier1={},modifier2={}",
        subscription.weight, subscription.modifier1, subscription.modifier2
    );
    if let Some(backup) = subscription.backup {
        let _ = write!(text, ",backup={backup}");
    }
    text
}
