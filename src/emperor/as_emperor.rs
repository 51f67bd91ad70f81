//! `hook-as-emperor`, `exec-as-emperor` and `mount-as-emperor`: hook lines the emperor runs
//! after each vassal starts (uWSGI's `uwsgi_emperor_vassal_start`). Commands see
//! `UWSGI_VASSAL_CONFIG`, `UWSGI_VASSAL_PID`, `UWSGI_VASSAL_UID` and `UWSGI_VASSAL_GID`, as
//! uWSGI's `exec-as-emperor` commands do. A failure is logged, never fatal (uWSGI runs them
//! with `fatal = 0`).
//!
//! They run in order on tokio's blocking pool, so a slow command never holds up the loop;
//! one vassal's lines finish before the next line starts, and nothing waits for them.

use crate::config::hooks::{Hook, HookAction, HookPhase};

/// The vassal just started, as the hooks' commands see it.
pub struct StartedVassal {
    /// The vassal's name as uWSGI gives it (file name, or path for a glob).
    pub config: String,
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Runs the `as-emperor` lines for `vassal` in the background; does nothing without any.
pub fn spawn(hooks: &[Hook], vassal: StartedVassal) {
    let mut lines: Vec<Hook> = hooks
        .iter()
        .filter(|hook| hook.phase == HookPhase::AsEmperor)
        .cloned()
        .collect();
    if lines.is_empty() {
        return;
    }
    // uWSGI's order: the hook lines, then the `exec-as-emperor` shortcuts.
    lines.sort_by_key(|hook| hook.shortcut);
    tokio::task::spawn_blocking(move || {
        for hook in &lines {
            match &hook.action {
                HookAction::Exec { command, safe } => run_command(command, *safe, &vassal),
                _ => {
                    if let Err(error) = crate::hooks::run_one(hook) {
                        tracing::error!("{}", crate::hooks::error_chain(&error));
                    }
                }
            }
        }
    });
}

fn run_command(command: &str, safe: bool, vassal: &StartedVassal) {
    tracing::info!(
        "running \"{command}\" (as-emperor for vassal \"{}\" pid: {} uid: {} gid: {})...",
        vassal.config,
        vassal.pid,
        vassal.uid,
        vassal.gid
    );
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .env("UWSGI_VASSAL_CONFIG", &vassal.config)
        .env("UWSGI_VASSAL_PID", vassal.pid.to_string())
        .env("UWSGI_VASSAL_UID", vassal.uid.to_string())
        .env("UWSGI_VASSAL_GID", vassal.gid.to_string())
        .status();
    match status {
        Ok(status) => {
            let code = status
                .code()
                .map_or_else(|| status.to_string(), |code| code.to_string());
            if status.success() || safe {
                tracing::info!("command \"{command}\" exited with code: {code}");
            } else {
                tracing::warn!("command \"{command}\" exited with code: {code}");
            }
        }
        Err(error) => tracing::error!(%error, "command \"{command}\" could not run"),
    }
}
