//! What is attached to the master besides its workers (issue 15): the hooks that run in the
//! master (`hook-master-start`, `hook-touch`, `hook-as-user-atexit`, `unix_signal`
//! rebindings) and the external daemons (`vassal::daemons`). The loop in `mod.rs` calls
//! these at its few points; the actions themselves live in `crate::hooks` and
//! `vassal::daemons`.

use super::*;
use crate::config::hooks::{HookPhase, MasterAction};
use crate::hooks::{self, TouchHooks};
use crate::vassal::daemons::{Daemons, Exited};
use crate::vassal::process_table::Exit;

pub(super) struct Attached {
    touch: TouchHooks,
    pub daemons: Daemons,
}

impl Attached {
    pub fn new(config: &Config, now: Instant) -> Attached {
        Attached {
            touch: TouchHooks::new(&config.hooks),
            daemons: Daemons::new(&config.daemons, config.daemons_honour_stdin, now),
        }
    }
}

/// `hook-asap`/`exec-asap`, first thing in the master, on every start and re-exec.
pub(super) fn run_asap_hooks(config: &Config) -> Result<(), RunVassalError> {
    // uWSGI sets `env` while it parses the config, so asap commands see those variables;
    // `chdir` comes later there too. The master sets them again afterwards, harmlessly.
    if hooks::any(&config.hooks, HookPhase::Asap) {
        for (key, value) in &config.env {
            std::env::set_var(key, value);
        }
    }
    hooks::run_phase(&config.hooks, HookPhase::Asap)?;
    if hooks::any(&config.hooks, HookPhase::AsVassal) {
        tracing::warn!("hook-as-vassal/exec-as-vassal belong in an emperor's config; ignored here");
    }
    Ok(())
}

/// `as-root` hooks, the privilege drop, `as-user` hooks. As in uWSGI, both phases run only
/// when the master starts as root (after a reload that dropped privileges, it no longer is).
pub(super) fn drop_privileges_between_hooks(
    config: &Config,
    interpreter: &crate::python::InterpreterOptions,
    reloads: u64,
) -> Result<(), RunVassalError> {
    let as_root = sys::process::uid() == 0;
    if as_root {
        hooks::run_phase(&config.hooks, HookPhase::AsRoot)?;
    }
    drop_privileges(config, interpreter)?;
    if as_root {
        hooks::run_phase(&config.hooks, HookPhase::AsUser)?;
    } else if reloads == 0
        && [HookPhase::AsRoot, HookPhase::AsUser]
            .iter()
            .any(|phase| hooks::any(&config.hooks, *phase))
    {
        tracing::info!("hook-as-root/hook-as-user (and exec-as-*) not run: kaiser was not started as root (as in uWSGI)");
    }
    Ok(())
}

impl Master<'_> {
    /// `hook-emperor-stop` and `hook-emperor-reload`: uWSGI runs them when its emperor's stop
    /// or reload message arrives; kaiser's emperor orders with SIGTERM and SIGHUP, so they run
    /// on those signals while this master has an emperor. Not fatal, as in uWSGI.
    pub(super) fn on_emperor_order(&mut self, sig: libc::c_int) {
        if self.notifier.emperor_channel().is_none() {
            return;
        }
        let phase = match sig {
            libc::SIGTERM | libc::SIGQUIT => HookPhase::EmperorStop,
            libc::SIGHUP => HookPhase::EmperorReload,
            _ => return,
        };
        let _ = hooks::run_phase(&self.config.hooks, phase);
    }

    /// When the loop starts, after the workers are forked: the daemons, then the
    /// `hook-master-start` lines (uWSGI's order). A failed hook stops the vassal at once,
    /// as uWSGI's `kill_them_all`.
    pub(super) fn on_master_start(&mut self) {
        self.attached
            .daemons
            .start_all(&mut self.children, Instant::now());
        if let Err(err) = hooks::run_phase(&self.config.hooks, HookPhase::MasterStart) {
            tracing::error!(
                "{}; stopping the vassal (a failed hook is fatal)",
                hooks::error_chain(&err)
            );
            self.exit_code = exit::CONFIG;
            self.begin_stop(true, "hook-master-start failed");
        }
    }

    /// A signal that a `unix_signal` hook bound to something other than kaiser's default.
    /// Returns false when the signal keeps its default meaning.
    pub(super) fn on_rebound_signal(&mut self, sig: libc::c_int) -> Result<bool, RunVassalError> {
        let Some(action) = hooks::signal_override(&self.config.hooks, sig) else {
            return Ok(false);
        };
        let why = format!(
            "{} (unix_signal {})",
            sys::signal::name(sig),
            action.uwsgi_name()
        );
        match action {
            MasterAction::GracefulStop => self.begin_stop(false, &why),
            MasterAction::FastStop => self.begin_stop(true, &why),
            MasterAction::GracefulReload => self.begin_reload(false)?,
            MasterAction::BrutalReload => self.begin_reload(true)?,
            MasterAction::Stats => self.log_stats(),
            MasterAction::TogglePause => self.toggle_pause(),
        }
        Ok(true)
    }

    /// Daemon `index`'s process `pid` exited (the process table reaped it).
    pub(super) fn on_daemon_exit(&mut self, index: usize, pid: Pid, how: ExitKind, exit: Exit) {
        let daemons = &mut self.attached.daemons;
        let now = Instant::now();
        if daemons.on_exit(index, pid, how, exit, &mut self.children, now) == Exited::StopVassal {
            self.begin_stop(false, "attach-control-daemon died");
        }
    }

    /// Every loop turn: daemons (respawns, pidfiles, stop with the vassal) and `hook-touch`.
    pub(super) fn attached_tick(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Stopping { .. }) {
            if !self.attached.daemons.stopping() {
                let kill_at = now + self.config.reload_mercy;
                self.attached
                    .daemons
                    .stop_all(&mut self.children, false, kill_at);
            }
        } else {
            self.attached.touch.check(&self.config.hooks);
        }
        self.attached.daemons.tick(&mut self.children, now);
    }

    /// Right before the master re-execs for a reload: plain daemons are stopped (the new
    /// image starts them again), as uWSGI does.
    pub(super) fn stop_daemons_for_reexec(&mut self) {
        self.attached
            .daemons
            .stop_now(&mut self.children, self.config.reload_mercy);
    }

    /// The re-exec failed: the daemons stopped for it run again.
    pub(super) fn resume_daemons(&mut self) {
        self.attached
            .daemons
            .resume(&mut self.children, Instant::now());
    }

    /// `hook-as-user-atexit`, `exec-as-user-atexit`: when the master exits (not fatal).
    pub(super) fn at_exit(&self) {
        let _ = hooks::run_phase(&self.config.hooks, HookPhase::AsUserAtexit);
    }

    /// The stats document's `daemons` list, as uWSGI's (present only with daemons).
    pub(super) fn add_daemon_stats(&self, document: &mut serde_json::Value) {
        if let (Some(list), Some(object)) = (
            self.attached.daemons.stats(&self.children),
            document.as_object_mut(),
        ) {
            object.insert("daemons".to_string(), list);
        }
    }
}
