//! Forking workers: which scoreboard bank a new process writes and the `WorkerSetup` it is
//! handed. It does not decide when a worker is needed (the loop, recycling and the cheaper
//! do), nor reap or respawn anything (`children.rs`).

use super::*;

impl Master<'_> {
    /// A scoreboard bank that no live process of this master writes, preferring worker
    /// `id`'s own two, so that a replacement never shares cores with the worker it replaces
    /// (`worker/scoreboard.rs`).
    pub(super) fn free_bank(&self, id: u32) -> Option<usize> {
        let workers = self.scoreboard.workers();
        let in_use = |bank: usize| self.children.entries().any(|e| e.bank == Some(bank));
        let own = (id as usize).saturating_sub(1);
        [own, own + workers]
            .into_iter()
            .chain(0..self.scoreboard.banks())
            .find(|&bank| bank < self.scoreboard.banks() && !in_use(bank))
    }

    /// Forks worker `id`'s process into its seat.
    pub(super) fn spawn(&mut self, id: u32) -> Result<(), RunVassalError> {
        let kind = Kind::Worker(id);
        let respawns = self.children.respawns(kind);
        // Live processes never outnumber the banks: `replace_worker` only adds one when a
        // bank is free, and a respawn follows the death that freed one.
        let bank = self
            .free_bank(id)
            .expect("a worker is spawned only when a scoreboard bank is free");
        if let Some(slot) = self.scoreboard.process(id, bank) {
            slot.prepare_spawn(bank, respawns + 1, unix_secs());
        }
        let forked = match &self.app {
            Some(_) => python::fork()?,
            None => sys::fork::fork()?,
        };
        match forked {
            Forked::Child => {
                let mut close_fds: Vec<RawFd> = vec![
                    self.signals.as_fd().as_raw_fd(),
                    self.ready_read.as_raw_fd(),
                ];
                close_fds.extend(self.notifier.raw_emperor_fd());
                close_fds.extend(self.upkeep.fifo_raw_fd());
                close_fds.extend(self.stats.iter().flat_map(|s| s.raw_fds()));
                close_fds.extend(self.gateways.iter().flat_map(|g| g.raw_fds()));
                let app = match (&self.app, self.lazy.take()) {
                    (Some(app), _) => AppSource::Preloaded(app),
                    (None, Some((spec, interpreter, module))) => AppSource::Lazy {
                        spec: Box::new(spec),
                        interpreter,
                        module,
                    },
                    (None, None) => {
                        unreachable!("a master has either a preloaded app or a lazy spec")
                    }
                };
                let config = self.config;
                worker::run(WorkerSetup {
                    id,
                    bank,
                    master_pid: sys::process::getppid(),
                    threads: config.threads.max(1),
                    processes: config.processes.max(1),
                    batch_scheduling: config.batch_scheduling,
                    thread_stack: match config.threads_stacksize {
                        0 => sys::process::default_thread_stack(),
                        kb => usize::try_from(kb.saturating_mul(1024)).unwrap_or(usize::MAX),
                    },
                    listeners: self.listeners.clone(),
                    app,
                    settings: Settings {
                        buffer_size: config.buffer_size,
                        socket_timeout: config.socket_timeout,
                        keepalive_timeout: config.socket_timeout.max(Duration::from_secs(30)),
                        disable_logging: config.disable_logging,
                        log_conditions: config.log_conditions,
                        disable_write_exception: config.disable_write_exception,
                        manage_script_name: config.manage_script_name,
                        add_headers: config
                            .add_header
                            .iter()
                            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
                            .collect(),
                        line_format: crate::worker::LineFormat {
                            micros: config.log_micros,
                            memory_report: config.memory_report,
                        },
                        log_x_forwarded_for: config.log_x_forwarded_for,
                        request_log: crate::worker::request_log::Settings::from_config(
                            config,
                            crate::logging::master::request_pipe(),
                        ),
                        post_buffering: config.post_buffering,
                        limit_post: config.limit_post,
                        max_connections: self.max_connections,
                        limit_post_default: config.limit_post_default,
                        transfer: crate::worker::TransferLimit {
                            timeout: config.transfer_timeout,
                            min_rate: config.transfer_min_rate,
                        },
                        recycle: worker::limits::RecycleLimits {
                            max_requests: replacement::max_requests_for(config, id),
                            reload_on_rss: config.reload_on_rss,
                            reload_on_as: config.reload_on_as,
                            min_worker_lifetime: config.min_worker_lifetime,
                        },
                        options: worker::options::RequestOptions {
                            proxy_protocol: config.extra.proxy_protocol,
                            reaper: config.extra.reaper,
                            reload_on_exception: config.extra.reload_on_exception,
                        },
                        statics: Arc::new(config.statics.clone()),
                        health_check_path: config.health_check_path.as_deref().map(Into::into),
                        routes: (!config.routes.is_empty())
                            .then(|| Arc::new(config.routes.clone())),
                    },
                    ready_fd: self.ready_write.as_raw_fd(),
                    close_fds,
                    scoreboard: self.scoreboard.clone(),
                    hooks: &config.hooks,
                    options: worker::options::ProcessOptions {
                        cpus: crate::vassal::process_setup::cpus_for(
                            config.extra.cpu_affinity,
                            id,
                            sys::process::cpu_count(),
                        ),
                        skip_atexit: config.extra.skip_atexit,
                        disable_file_wrapper: config.extra.wsgi_disable_file_wrapper,
                        py_autoreload: config.extra.py_autoreload,
                        py_autoreload_ignore: config.extra.py_autoreload_ignore.clone(),
                        py_tracebacker: config.py_tracebacker.clone(),
                    },
                })
            }
            Forked::Parent { child } => {
                if let Some(board) = self.scoreboard.process(id, bank) {
                    board.set_pid(child as u64);
                }
                self.children.insert(Entry {
                    bank: Some(bank),
                    ..Entry::new(kind, child, Instant::now())
                });
                if respawns == 0 {
                    tracing::info!(worker = id, pid = child, "spawned worker");
                } else {
                    tracing::info!(worker = id, pid = child, respawns, "respawned worker");
                }
                Ok(())
            }
        }
    }
}
