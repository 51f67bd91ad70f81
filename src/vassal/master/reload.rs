//! Stops and reloads: graceful and brutal, of the whole vassal (vetted, then a re-exec) or of
//! its workers only (`w`, `W`, chain `c`), and the master FIFO's commands that start them.

use super::*;

impl Master<'_> {
    pub(super) fn begin_stop(&mut self, fast: bool, why: &str) {
        if let Phase::Stopping {
            fast: already_fast, ..
        } = self.phase
        {
            if already_fast || !fast {
                return;
            }
        }
        if let Phase::Checking { pid, .. } = self.phase {
            let _ = sys::signal::kill(pid, libc::SIGKILL);
        }
        let mercy = if fast {
            Duration::from_secs(3)
        } else {
            crate::vassal::process_table::whole_mercy(self.config)
        };
        tracing::info!(reason = why, fast, "shutting down");
        let _ = self.notifier.notify("STOPPING=1\nSTATUS=stopping");
        let sig = if fast { libc::SIGINT } else { libc::SIGTERM };
        let deadline = Instant::now() + mercy;
        for pid in self.children.stopped_with_vassal() {
            self.stop_child(pid, sig, Why::Shutdown { fast }, deadline);
        }
        // Nothing is respawned any more, and a respawn that was due must not wake the loop.
        self.children.cancel_respawns();
        self.phase = Phase::Stopping { fast };
    }

    /// Graceful reload, step 1: vet the new config (and app import) in a separate
    /// `--check-config` process while the current workers keep serving. A brutal reload
    /// (`R`) is vetted the same way, so a broken config never costs the running workers.
    pub(super) fn begin_reload(&mut self, brutal: bool) -> Result<(), RunVassalError> {
        if self.config.extra.exit_on_reload {
            // uWSGI's `exit-on-reload`: whoever asked for a reload (a supervisor, a deploy
            // script) restarts the process itself.
            self.begin_stop(brutal, "exit-on-reload: a reload was asked for");
            return Ok(());
        }
        if self.config.extra.chroot.is_some() && self.phase == Phase::Running {
            // The binary (and /proc/self/exe) is outside the jail: a re-exec cannot work.
            tracing::warn!("reload inside a `chroot`: kaiser cannot re-execute itself there; reloading the workers instead (they re-import the app only with lazy-apps)");
            return self.workers_reload();
        }
        if self.phase != Phase::Running {
            tracing::info!("reload requested while busy; ignoring");
            return Ok(());
        }
        let kind = if brutal { "brutal" } else { "graceful" };
        tracing::info!("{kind} reload: checking the new configuration");
        let _ = self.notifier.notify("RELOADING=1\nSTATUS=reloading");
        let exe = std::env::current_exe()?;
        let mut command = std::process::Command::new(exe);
        command
            .args(&self.args)
            .arg("--check-config")
            // The check reads the config as the re-exec will, `if-reload` blocks included.
            .env(RELOADS_ENV, (self.reloads + 1).to_string())
            .stdin(std::process::Stdio::null());
        // Importing the app again takes a burst of CPU (half a second for Flask here) while
        // the current workers keep serving, often on the same cores. At nice 10 the check
        // takes what they leave rather than a fair share, so a reload does not slow the
        // requests in flight; the reload itself may take longer on a busy machine.
        // SAFETY: the closure runs between fork and exec and makes one system call, nice(2).
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                sys::process::lower_priority(sys::process::IMPORT_NICE);
                Ok(())
            });
        }
        let child = command.spawn()?;
        self.phase = Phase::Checking {
            pid: child.id() as Pid,
            deadline: Instant::now() + crate::vassal::process_table::whole_mercy(self.config),
            brutal,
        };
        // The child is reaped by `reap` through waitpid; dropping the handle does not wait.
        drop(child);
        Ok(())
    }

    /// Graceful reload, step 2: re-exec with the sockets inherited, or keep serving.
    pub(super) fn on_check_done(&mut self, how: ExitKind) -> Result<(), RunVassalError> {
        let brutal = matches!(self.phase, Phase::Checking { brutal: true, .. });
        self.phase = Phase::Running;
        if how != ExitKind::Code(0) {
            tracing::error!(%how, "reload aborted: the new configuration does not load; the current workers keep serving");
            let n = self.processes;
            let _ = self.notifier.notify(&format!(
                "READY=1\nSTATUS=serving with {n} workers (reload failed)"
            ));
            return Ok(());
        }
        if brutal {
            tracing::info!("brutal reload: killing the workers");
            for pid in self.worker_pids() {
                let _ = sys::signal::kill(pid, libc::SIGINT);
            }
        }
        let err = self.reexec();
        tracing::error!(error = %err, "re-exec for reload failed; the current workers keep serving");
        let _ = self.notifier.notify("READY=1");
        Ok(())
    }

    pub(super) fn reexec(&mut self) -> std::io::Error {
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => return e,
        };
        self.stop_daemons_for_reexec();
        self.stop_gateways_for_reexec();
        let mut fds = Vec::new();
        for socket in &self.sockets {
            if let Err(e) = sys::fd::set_cloexec(socket.fd.as_fd(), false) {
                return e;
            }
            fds.push(socket.fd.as_raw_fd().to_string());
        }
        if let Err(e) = self.zergpools.keep_across_exec() {
            self.zergpools.undo_exec();
            return e;
        }
        if let Some(Err(e)) = self.gateways.as_ref().map(|g| g.keep_across_exec()) {
            self.undo_gateways_exec();
            self.zergpools.undo_exec();
            return e;
        }
        if let Some(raw) = self.notifier.raw_emperor_fd() {
            if let Some(channel) = self.notifier.emperor_channel() {
                let _ = sys::fd::set_cloexec(channel, false);
            }
            std::env::set_var(EMPEROR_FD_ENV, raw.to_string());
        }
        std::env::set_var(LISTEN_FDS_ENV, fds.join(","));
        sockets::mark_activated_for_exec(&self.sockets);
        let old: Vec<String> = self.worker_pids().iter().map(|p| p.to_string()).collect();
        std::env::set_var(OLD_WORKERS_ENV, old.join(","));
        std::env::set_var(RELOADS_ENV, (self.reloads + 1).to_string());
        self.pass_running_on();
        std::env::set_var(sys::shm::CARRIED_ENV, sys::shm::carry_across_exec(true));
        tracing::info!(
            sockets = fds.len(),
            workers = old.len(),
            "re-executing the master; current workers serve until the new ones accept"
        );
        use std::os::unix::process::CommandExt;
        // exec only returns on failure. The signal mask is inherited across exec, and the
        // new image blocks the same signals before it reads them, so none is lost.
        let err = std::process::Command::new(exe).args(&self.args).exec();
        // Undo what the failed exec needed.
        for socket in &self.sockets {
            let _ = sys::fd::set_cloexec(socket.fd.as_fd(), true);
        }
        sys::shm::carry_across_exec(false);
        self.zergpools.undo_exec();
        self.undo_gateways_exec();
        for key in [
            LISTEN_FDS_ENV,
            OLD_WORKERS_ENV,
            RELOADS_ENV,
            EMPEROR_FD_ENV,
            cheaper::RUNNING_ENV,
            sockets::ACTIVATED_FDS_ENV,
            sys::shm::CARRIED_ENV,
        ] {
            std::env::remove_var(key);
        }
        self.resume_daemons();
        self.resume_gateways();
        err
    }

    pub(super) fn finish(&mut self) -> i32 {
        if self.config.vacuum {
            if let Some(fifo) = &self.upkeep.fifo {
                fifo.remove();
            }
            sockets::vacuum(&self.sockets);
            self.zergpools.vacuum();
            if let Some(gateways) = &self.gateways {
                gateways.vacuum();
            }
            for path in super::super::process_setup::pidfiles(self.config) {
                if std::fs::remove_file(path).is_ok() {
                    tracing::info!(path = %path.display(), "vacuum: removed pidfile");
                }
            }
        }
        tracing::info!("goodbye");
        self.exit_code
    }
    pub(super) fn on_fifo(&mut self) -> Result<(), RunVassalError> {
        let Some(fifo) = self.upkeep.fifo.as_mut() else {
            return Ok(());
        };
        for command in fifo.read_commands() {
            tracing::info!(?command, "master fifo command");
            match command {
                Command::Reload => self.begin_reload(false)?,
                Command::BrutalReload => self.begin_reload(true)?,
                Command::WorkersReload => self.workers_reload()?,
                Command::BrutalWorkersReload => self.brutal_workers_reload(),
                Command::ChainReload => self.chain_reload(),
                Command::Stop => self.stop_after_drain("master fifo `q`"),
                Command::BrutalStop => self.begin_stop(true, "master fifo `Q`"),
                Command::Stats => self.log_stats(),
                Command::Pause => self.toggle_pause(),
                Command::CheaperMore => self.cheaper_fifo(1),
                Command::CheaperFewer => self.cheaper_fifo(-1),
                Command::Log(log) => {
                    if !crate::logging::master::command(log) {
                        tracing::warn!(?log, "master fifo: no log master runs (it starts with `logto` or `daemonize` next to `master-fifo`, or with `log-master`)");
                    }
                }
                Command::Unsupported(byte) => tracing::warn!(
                    "master fifo: command `{}` is not supported by kaiser; ignoring it",
                    byte as char
                ),
            }
        }
        Ok(())
    }

    pub(super) fn note_preloaded(&self, what: &str) {
        if !self.config.lazy_apps {
            tracing::info!("{what}: without lazy-apps the new workers fork from the app preloaded in the master; to load new application code, reload (`r`, SIGHUP, touch-reload)");
        }
    }

    /// `w`, `touch-workers-reload`: every worker replaced at once, each new one forked
    /// before its old one is told to stop, so capacity never dips.
    pub(super) fn workers_reload(&mut self) -> Result<(), RunVassalError> {
        if self.phase != Phase::Running {
            tracing::info!("workers reload requested while busy; ignoring");
            return Ok(());
        }
        tracing::info!("workers reload: replacing every worker");
        self.note_preloaded("workers reload");
        self.upkeep.replacements.abort();
        for id in self.worker_ids() {
            if !self.replace_worker(id, &Cause::WorkersReload)? {
                self.upkeep.replacements.request(id, Cause::WorkersReload);
            }
        }
        Ok(())
    }

    /// `W`: every worker exits at once and is respawned; requests in flight are cut.
    pub(super) fn brutal_workers_reload(&mut self) {
        if self.phase != Phase::Running {
            tracing::info!("brutal workers reload requested while busy; ignoring");
            return;
        }
        tracing::info!("brutal workers reload: stopping every worker now; they are respawned");
        self.upkeep.replacements.abort();
        for pid in self.worker_ids().filter_map(|id| self.worker_pid(id)) {
            let _ = sys::signal::kill(pid, libc::SIGINT);
        }
    }

    /// `c`, `touch-chain-reload`: workers replaced one at a time, the next when the new
    /// one accepts.
    pub(super) fn chain_reload(&mut self) {
        if self.phase != Phase::Running {
            tracing::info!("chain reload requested while busy; ignoring");
            return;
        }
        tracing::info!("chain reload: replacing workers one at a time");
        self.note_preloaded("chain reload");
        for id in self.worker_ids() {
            self.upkeep.replacements.request(id, Cause::ChainReload);
        }
    }
}
