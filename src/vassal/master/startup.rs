//! The master's start-up, from the loaded config to the first forks: sockets, the stats
//! server, privileges, the log master, spoolers, signals, locks and caches, the app's
//! preload, and the `Master` the event loop then runs. It does not run the loop.

use super::*;

/// This process is a master re-executed by a graceful reload.
pub fn is_reexec() -> bool {
    std::env::var_os(RELOADS_ENV).is_some()
}

/// Runs a vassal master to completion and returns its exit code.
pub fn run(loaded: Loaded, args: Vec<OsString>) -> Result<i32, RunVassalError> {
    let config = &loaded.config;
    let started = Instant::now();
    let notifier = Notifier::from_env()?;
    let _ = notifier.notify(&format!(
        "MAINPID={}\nSTATUS=starting",
        sys::process::getpid()
    ));
    let reloads: u64 = std::env::var(RELOADS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    std::env::remove_var(RELOADS_ENV);
    let old_workers: Vec<Pid> = std::env::var(OLD_WORKERS_ENV)
        .ok()
        .map(|v| v.split(',').filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default();
    std::env::remove_var(OLD_WORKERS_ENV);
    let mut inherited = sockets::take_inherited();
    attached::run_asap_hooks(config)?;
    crate::vassal::process_setup::immediate(config)?;
    crate::jail::enter(config, reloads)?;
    inherited.extend(crate::vassal::socket_activation::take());
    // As uWSGI (`uwsgi_setup_zerg` only when not a reload): after a reload the zerg sockets
    // come back with the others, and attaching again would serve each one twice.
    if reloads == 0 {
        inherited.extend(crate::vassal::zerg::attach(config)?);
    }

    if let Some(dir) = &config.chdir {
        std::env::set_current_dir(dir).map_err(|source| RunVassalError::Chdir {
            path: dir.clone(),
            source,
        })?;
    }
    for (key, value) in &config.env {
        std::env::set_var(key, value);
    }
    crate::vassal::process_setup::apply_unenv(config);
    // systemd may pass sockets the INI does not name (`socket_activation.rs`).
    // An instance with something else to run needs no socket (see `serverless` below).
    if config.sockets.is_empty()
        && !runs_without_sockets(config)
        && !inherited.iter().any(sockets::names_its_option)
    {
        return Err(RunVassalError::NoSocket);
    }
    let bound = sockets::bind_all(config, &mut inherited)?;
    let zergpools = crate::vassal::zergpool::ZergPools::bind(config)?;
    let gateways = crate::vassal::fastrouter::GatewaySockets::bind(config)?;
    // uWSGI forks no worker when it has no socket (`numproc = 0`): the master runs its
    // daemons, crons, spoolers, mules and zergpools alone. It imports the app only when the
    // config names one (spoolers and mules may use its functions).
    let serverless = bound.is_empty() && runs_without_sockets(config);
    let stats = StatsServer::from_config(config)?;
    let interpreter = crate::vassal::python_setup::interpreter_options(config);
    let spec = crate::vassal::python_setup::app_spec(config);
    // `pidfile` before dropping privileges, `pidfile2` after, as uWSGI (process_setup.rs).
    crate::vassal::process_setup::before_drop(config)?;
    attached::drop_privileges_between_hooks(config, &interpreter, reloads)?;
    crate::vassal::process_setup::after_drop(config)?;
    crate::logging::master::start(config)?;
    // After dropping privileges, so the directories belong to the user the app runs as.
    let spoolers = crate::vassal::spooler::Spoolers::new(&config.spooler)?;
    if let Some(handle) = spoolers.handle() {
        python::set_spooler_api(Box::new(handle));
    }
    // Locks and caches the previous master handed over through a reload's exec.
    sys::shm::adopt_carried();
    // Before anything forks and before the app is imported, which may take one.
    crate::signals::create(
        config.processes.max(1) as usize,
        spoolers.len(),
        config.mules.len(),
    )?;
    if let Some(board) = crate::signals::board() {
        let now_ms = sys::clock::unix_ms();
        for (signal, seconds) in &config.timers {
            board.add_timer(*signal, *seconds, 0, now_ms);
        }
    }
    python::create_locks(config.locks)?;
    python::create_caches(&config.caches())?;
    sys::shm::drop_unclaimed();
    python::create_mules(config.mules.len(), &config.farms, config.mule_msg_size)?;
    let fifo =
        MasterFifo::open(&config.master_fifo).map_err(|source| RunVassalError::MasterFifo {
            path: config.master_fifo[0].clone(),
            source,
        })?;
    let module = ModuleInfo {
        numproc: config.processes,
        master_pid: sys::process::getpid(),
        buffer_size: config.buffer_size,
        started_on: sys::clock::unix_secs(),
        threads: config.threads,
        options: loaded.options.clone(),
    };
    if serverless {
        tracing::info!("no socket: the master runs its daemons, crons, spoolers, mules, zergpools and fastrouter and forks no worker");
    }
    let (app, lazy) = if serverless && !crate::vassal::python_setup::names_an_app(config) {
        (None, Some((spec, interpreter, module)))
    } else if config.lazy_apps {
        tracing::info!("lazy-apps: each worker imports the app after fork");
        (None, Some((spec, interpreter, module)))
    } else {
        (Some(preload(config, &interpreter, &spec, module)?), None)
    };

    let own = [
        libc::SIGHUP,
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGCHLD,
        libc::SIGUSR1,
        libc::SIGTSTP,
    ];
    let handled = sys::signal::SigSet::of(&own);
    sys::signal::block(&handled)?;
    // After blocking: from here a signal sent waits in the signalfd, none is lost or fatal.
    sys::signal::stop_ignoring(&own);
    sys::signal::ignore_sigpipe();
    let signals = sys::signal::SignalFd::new(&handled)?;
    let (ready_read, ready_write) = sys::fd::pipe()?;
    sys::fd::set_nonblocking(ready_read.as_fd(), true)?;

    let listeners = Arc::new(bound.iter().map(listener_of).collect::<Vec<_>>());
    let processes = if serverless {
        0
    } else {
        config.processes.max(1)
    };
    let mut children = ProcessTable::default();
    children.add_seats((1..=processes).map(Kind::Worker), None);
    // Spoolers and mules are forked by the loop's first `respawn_due`.
    children.add_seats((0..spoolers.len()).map(Kind::Spooler), Some(started));
    children.add_seats((0..config.mules.len()).map(Kind::Mule), Some(started));
    // One router process (`fastrouter-processes` is a no-op), forked by the first `respawn_due`.
    children.add_seats(gateways.iter().map(|_| Kind::Gateway(0)), Some(started));
    let attached = attached::Attached::new(config, started);
    attached.daemons.add_seats(&mut children);
    for pid in old_workers {
        children.insert(Entry {
            state: State::Retiring,
            ..Entry::new(Kind::Previous, pid, started)
        });
    }
    let carbon = carbon::CarbonPush::new(config, &bound, started);
    let subscriptions = crate::vassal::subscription::Subscriptions::new(config, &bound, started);
    let zerg_server = crate::vassal::zerg::ZergServer::bind(config)?;
    let mut master = Master {
        config,
        subscriptions,
        zerg_server,
        zergpools,
        gateways,
        max_connections: connection_cap(config),
        args,
        sockets: bound,
        listeners,
        notifier,
        app,
        lazy,
        processes,
        children,
        phase: Phase::Running,
        started,
        announced_ready: false,
        ready_read,
        ready_write,
        signals,
        reloads,
        exit_code: exit::OK,
        upkeep: Upkeep {
            fifo,
            touches: Touches::new(config),
            replacements: ReplacementQueue::default(),
            from_workers: Vec::new(),
            next_memory_check: started,
        },
        scoreboard: Arc::new(Scoreboard::new(config.processes, config.threads)?),
        paused: false,
        idle: (!serverless && (config.idle > Duration::ZERO || config.cheap))
            .then(|| IdleWatch::new(config.idle, config.die_on_idle, started)),
        harakiri: Harakiri::new(HarakiriSettings {
            timeout: config.harakiri,
            grace: config.harakiri_graceful_timeout,
            verbose: config.harakiri_verbose,
            queue_threshold: config.harakiri_queue_threshold,
        }),
        stats,
        attached,
        cheaper: cheaper::CheaperRun::new(config, started).filter(|_| !serverless),
        spoolers,
        crons: crate::vassal::cron::Crons::new(&config.crons, config.cron_harakiri),
        drain_until: None,
        next_heartbeat: (!config.heartbeat.is_zero()).then(|| started + config.heartbeat),
        alarming: alarming::Alarming::new(config),
        carbon,
    };
    let initial = master.initial_workers();
    if !master.start_cheap() {
        for id in master.worker_ids() {
            if !master.keep_cheap(id, initial) {
                master.spawn(id)?;
            }
        }
    }
    if serverless {
        master.all_ready();
    }
    master.on_master_start();
    master.respawn_due(Instant::now())?;
    master.event_loop()
}

/// Whether the instance has something to run without a socket, as uWSGI counts it: attached
/// daemons, crons, spoolers, zergpools, a fastrouter, or `no-server`.
fn runs_without_sockets(config: &Config) -> bool {
    config.no_server
        || config.fastrouter.enabled()
        || !config.zergpools.is_empty()
        || !config.daemons.is_empty()
        || !config.crons.is_empty()
        || !config.spooler.dirs.is_empty()
}

/// Raises the open-files limit (logged) and derives each worker's connection cap from it,
/// unless `max-worker-connections` sets one: the limit less 64 descriptors for the
/// listeners, the worker's own pipes and what the app opens.
pub(super) fn connection_cap(config: &Config) -> usize {
    if config.max_fd > 0 {
        match sys::process::set_nofile_limit(config.max_fd) {
            Ok(()) => tracing::info!(limit = config.max_fd, "set the open-files limit (`max-fd`)"),
            Err(err) => {
                tracing::error!(limit = config.max_fd, error = %err, "cannot set the open-files limit (`max-fd`)")
            }
        }
    }
    let limit = match sys::process::raise_nofile_limit() {
        Ok((before, after)) => {
            if after > before {
                tracing::info!(
                    before,
                    after,
                    "raised the open-files limit (soft RLIMIT_NOFILE) to the hard limit"
                );
            }
            after
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot read or raise the open-files limit");
            1024
        }
    };
    match config.max_worker_connections {
        0 => usize::try_from(limit.saturating_sub(64).max(16)).unwrap_or(usize::MAX),
        n => usize::try_from(n).unwrap_or(usize::MAX),
    }
}

fn preload(
    config: &Config,
    interpreter: &InterpreterOptions,
    spec: &AppSpec,
    module: ModuleInfo,
) -> Result<App, RunVassalError> {
    python::initialize(interpreter)?;
    python::install_uwsgi_module(module).map_err(|e| RunVassalError::Module(e.to_string()))?;
    crate::hooks::run_phase(&config.hooks, HookPhase::PreApp)?;
    let app = match python::load_app(spec) {
        Ok(app) => app,
        Err(err) if !config.need_app => {
            tracing::error!("{err}");
            tracing::warn!("need-app is off: serving 500 for every request until the app loads");
            python::App::unavailable(&err.to_string())?
        }
        Err(err) => return Err(err.into()),
    };
    crate::hooks::run_phase(&config.hooks, HookPhase::PostApp)?;
    let threads = sys::fork::thread_count()?;
    if threads > 1 {
        return Err(RunVassalError::ThreadsAtImport { threads });
    }
    python::freeze_heap();
    tracing::info!(app = %app.description, "app preloaded in the master");
    Ok(app)
}

pub(super) fn unix_secs() -> u64 {
    sys::clock::unix_secs()
}

pub(super) fn drop_privileges(
    config: &Config,
    interpreter: &InterpreterOptions,
) -> Result<(), RunVassalError> {
    let gid =
        match &config.gid {
            Some(spec) => Some(sys::process::lookup_group(spec).map_err(|source| {
                RunVassalError::Privileges {
                    spec: spec.clone(),
                    source,
                }
            })?),
            None => None,
        };
    let uid = match &config.uid {
        Some(spec) => {
            let (uid, primary, name) =
                sys::process::lookup_user(spec).map_err(|source| RunVassalError::Privileges {
                    spec: spec.clone(),
                    source,
                })?;
            Some((uid, primary, name))
        }
        None => None,
    };
    let gid = gid.or(uid
        .as_ref()
        .map(|(_, primary, _)| *primary)
        .filter(|_| sys::process::uid() == 0));
    let user = uid
        .as_ref()
        .zip(gid)
        .map(|((_, _, name), gid)| (name.as_str(), gid));
    let groups = crate::vassal::process_setup::groups(config, user, gid.is_some())?;
    crate::vassal::process_setup::chroot(config, interpreter)?;
    let target_uid = uid.as_ref().map(|(u, _, _)| *u);
    if uid.is_none() && gid.is_none()
        || crate::vassal::process_setup::already_dropped(target_uid, gid)
    {
        return Ok(());
    }
    sys::privileges::drop_to(uid.map(|(u, _, _)| u), gid, &groups).map_err(|source| {
        RunVassalError::Privileges {
            spec: config
                .uid
                .clone()
                .or(config.gid.clone())
                .unwrap_or_default(),
            source,
        }
    })?;
    tracing::info!(
        uid = sys::process::uid(),
        gid = sys::process::gid(),
        "dropped privileges"
    );
    Ok(())
}

fn listener_of(socket: &BoundSocket) -> Listener {
    let (server_name, server_port, is_tcp) = match &socket.local {
        // uWSGI's http-socket sets SERVER_NAME to the machine's hostname whatever address
        // it is bound to (`proto/http.c`, `uwsgi.hostname`); nginx sends its own in uwsgi
        // packets, which override this default.
        BindAddr::Tcp(addr) => (sys::process::hostname(), addr.port().to_string(), true),
        // uWSGI's http-socket on a unix path reports the hostname and port 80.
        _ => (sys::process::hostname(), "80".to_string(), false),
    };
    Listener {
        fd: socket.fd.as_raw_fd(),
        protocol: socket.spec.protocol,
        server_name,
        server_port,
        is_tcp,
    }
}
