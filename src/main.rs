//! The entry point: loads the config (the machine's facts go in as a `Context`), answers the
//! one-shot actions (`--help`, `--version`, `--print-config`, `--reload`/`--stop PIDFILE`,
//! `--cheaper-algo-list`), does what must precede every role and logging itself (`umask`,
//! the `logto`/`daemonize` file on fds 1 and 2, `daemonize`'s detach, the tracing
//! subscriber), then starts the role: `--check-config`, the emperor (after its hook phases)
//! or a vassal master (after the emperor's `hook-as-vassal` lines). Only here do errors
//! become exit codes; what a role does lives in its module.

use std::ffi::OsString;
use std::process::ExitCode;

use kaiser::config::{self, Action, Context};
use kaiser::logging::error_chain;
use kaiser::{logging, sys, vassal};

fn context() -> Context {
    let uid = sys::process::uid();
    let gid = sys::process::gid();
    let user = sys::process::lookup_user(&uid.to_string())
        .map(|(_, _, name)| name)
        .unwrap_or_else(|_| uid.to_string());
    let now_micros = sys::clock::unix_us();
    Context {
        cwd: std::env::current_dir().unwrap_or_else(|_| "/".into()),
        hostname: sys::process::hostname(),
        uid,
        user,
        gid,
        group: gid.to_string(),
        cpu_count: sys::process::cpu_count(),
        binary: std::env::current_exe().unwrap_or_else(|_| "kaiser".into()),
        now_unix: now_micros / 1_000_000,
        now_micros,
        is_reload: vassal::is_reexec(),
    }
}

/// Prints an error and its chain of causes, one per line.
fn report(err: &dyn std::error::Error) {
    eprintln!("kaiser: error: {err}");
    let mut source = err.source();
    while let Some(cause) = source {
        eprintln!("  caused by: {cause}");
        source = cause.source();
    }
}

fn signal_pidfile(path: &std::path::Path, sig: libc::c_int) -> ExitCode {
    let pid: Option<i32> = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let Some(pid) = pid else {
        eprintln!("kaiser: error: cannot read a pid from `{}`", path.display());
        return ExitCode::from(1);
    };
    match sys::signal::kill(pid, sig) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!(
                "kaiser: error: cannot signal pid {pid} from `{}`: {err}",
                path.display()
            );
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let loaded = match config::load(&args, &env, &context()) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(vassal::exit::CONFIG as u8);
        }
    };
    match &loaded.config.action {
        Action::Help => {
            print!("{}", config::help_text());
            return ExitCode::SUCCESS;
        }
        Action::Version => {
            println!("kaiser {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Action::PrintConfig => {
            for warning in &loaded.warnings {
                eprintln!("kaiser: warning: {warning}");
            }
            for message in &loaded.config.print {
                eprintln!("{message}");
            }
            print!("{}", loaded.show_config);
            return ExitCode::SUCCESS;
        }
        Action::Reload(path) => return signal_pidfile(path, libc::SIGHUP),
        Action::Stop(path) => return signal_pidfile(path, libc::SIGTERM),
        Action::CheaperAlgoList => {
            println!("\n*** kaiser cheaper algorithms ***");
            for algo in config::CheaperAlgo::ALL {
                println!("{}", algo.name());
            }
            println!("--- end of cheaper algorithms list ---\n");
            return ExitCode::SUCCESS;
        }
        Action::Pause(path) => return signal_pidfile(path, libc::SIGTSTP),
        Action::Get(keys) => {
            // uWSGI's `--get`: the first entry of each key, nothing for a key without one
            // (or a flag without a value).
            for key in keys {
                let first = loaded.options.iter().find(|(name, _)| name == key);
                if let Some((_, value)) = first.filter(|(_, value)| !value.is_empty()) {
                    println!("{value}");
                }
            }
            return ExitCode::SUCCESS;
        }
        Action::DumpOptions => {
            for name in config::option_names() {
                println!("{name}");
            }
            return ExitCode::SUCCESS;
        }
        Action::CheckConfig | Action::Run => {}
    }
    if let (Action::Run, Some(mask)) = (&loaded.config.action, loaded.config.umask) {
        sys::process::set_umask(mask);
    }
    let log_file = match (&loaded.config.logto, &loaded.config.daemonize) {
        (Some(path), _) => Some((path, "logto")),
        (None, Some(path)) => Some((path, "daemonize")),
        (None, None) => None,
    };
    // A master re-executed by a reload keeps its log master's pipe on fds 1 and 2.
    let log_master_adopted = std::env::var_os(logging::master::ENV).is_some();
    if let (Action::Run, Some((path, option)), false) =
        (&loaded.config.action, log_file, log_master_adopted)
    {
        if let Err(err) = logging::redirect_to(path, &loaded.config) {
            eprintln!(
                "kaiser: error: cannot open the log file `{}` (`{option}`): {err}",
                path.display()
            );
            return ExitCode::from(vassal::exit::CONFIG as u8);
        }
    }
    if let (Action::Run, Some(_)) = (&loaded.config.action, &loaded.config.daemonize) {
        // After the log file is open, so that a bad path fails here with a status. As in
        // uWSGI, a vassal of the emperor only logs to the file, and so does a master
        // re-executed by a reload (it is detached already).
        let under_emperor = std::env::var_os(sys::notify::EMPEROR_FD_ENV).is_some();
        if !under_emperor && !vassal::is_reexec() {
            if let Err(err) = sys::fork::detach() {
                eprintln!("kaiser: error: cannot daemonize: {err}");
                return ExitCode::from(vassal::exit::CONFIG as u8);
            }
        }
    }
    logging::init_with_date(
        loaded
            .config
            .log
            .date
            .then(|| loaded.config.log.date_format.clone()),
    );
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    for message in &loaded.config.print {
        tracing::info!("{message}");
    }
    if loaded.config.show_config && loaded.config.action == Action::Run {
        // uWSGI's `show-config` logs the configuration and carries on; Docker images run
        // `uwsgi --show-config` to get it into their logs.
        eprint!(
            ";kaiser instance configuration\n{};end of configuration\n",
            loaded.show_config
        );
    }
    if loaded.config.action == Action::CheckConfig {
        return match kaiser::check::check_config(&loaded.config, &loaded.options) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                report(&err);
                ExitCode::from(err.exit_code() as u8)
            }
        };
    }
    if !loaded.config.emperor.is_empty() {
        let span = tracing::info_span!("emperor");
        let _entered = span.enter();
        if let Err(err) = kaiser::hooks::run_emperor_phases(&loaded.config.hooks) {
            tracing::error!("{} (a failed hook is fatal)", error_chain(&err));
            return ExitCode::from(1);
        }
        for daemon in &loaded.config.daemons {
            tracing::warn!(
                "`{} = {}` is not run by the emperor; put it in a vassal's config",
                daemon.option,
                daemon.text
            );
        }
        // uWSGI would also run this instance's own sockets and app beside its emperor; kaiser
        // runs an emperor config as the emperor only, and says so rather than leave a socket
        // nobody answers on.
        let config = &loaded.config;
        let served: Vec<&str> = config
            .sockets
            .iter()
            .map(|socket| socket.option.as_str())
            .chain(config.wsgi_file.iter().map(|_| "wsgi-file"))
            .chain(config.module.iter().map(|_| "module"))
            .chain(config.mount.iter().map(|_| "mount"))
            .collect();
        if !served.is_empty() {
            tracing::warn!(
                "`{}` not served: kaiser runs an emperor config as the emperor only (uWSGI \
                 would also serve this instance's own app); put the app in a vassal's config",
                served.join("`, `")
            );
        }
        return match kaiser::emperor::run(&loaded.config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                report(&err);
                ExitCode::from(1)
            }
        };
    }
    let span = tracing::info_span!("vassal", name = %loaded.config.name);
    let _entered = span.enter();
    kaiser::emperor::vassal_hooks::run_start_hook_from_env();
    if let Err(err) = kaiser::hooks::run_as_vassal_from_env() {
        tracing::error!("{} (a failed hook is fatal)", error_chain(&err));
        return ExitCode::from(vassal::exit::CONFIG as u8);
    }
    match vassal::run(loaded.clone(), args) {
        Ok(code) => ExitCode::from(code as u8),
        Err(err) => {
            tracing::error!("{}", error_chain(&err));
            ExitCode::from(err.exit_code() as u8)
        }
    }
}
