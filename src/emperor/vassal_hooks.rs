//! `vassals-start-hook` and `vassals-stop-hook` (uWSGI's `core/emperor.c`): a program run as
//! `PROGRAM VASSAL` (no shell; `VASSAL` is the name uWSGI gives it: the file name for a
//! directory monitor, the path for a glob), with `UWSGI_VASSALS_DIR` naming the vassals
//! directory.
//!
//! The start hook runs in the vassal's own process, first thing, as uWSGI runs it in the
//! forked child before exec (same user under `emperor-tyrant`); the emperor hands it over in
//! [`START_HOOK_ENV`]. Its exit status is logged and never stops the vassal. The stop hook runs
//! from the emperor each time a vassal's process ends, on a task: the loop never waits for it.

use std::path::Path;

/// The variable through which the emperor hands the start hook to a vassal:
/// `PROGRAM\nVASSAL`.
pub const START_HOOK_ENV: &str = "KAISER_VASSALS_START_HOOK";

/// uWSGI's variable naming the vassals directory for both hooks.
pub const VASSALS_DIR_ENV: &str = "UWSGI_VASSALS_DIR";

/// The emperor's side: the value of [`START_HOOK_ENV`] for one vassal.
pub fn start_hook_env(program: &str, vassal: &str) -> String {
    format!("{program}\n{vassal}")
}

/// The vassal's side: runs the start hook its emperor handed over, once (the variable is
/// removed, so a re-exec on reload does not run it again), and logs its exit status.
pub fn run_start_hook_from_env() {
    let Ok(value) = std::env::var(START_HOOK_ENV) else {
        return;
    };
    std::env::remove_var(START_HOOK_ENV);
    let Some((program, vassal)) = value.split_once('\n') else {
        return;
    };
    tracing::info!("[emperor] running vassal start-hook: {program} {vassal}");
    let mut command = std::process::Command::new(program);
    command.arg(vassal);
    crate::sys::process::clean_signals_on_exec(&mut command);
    match command.status() {
        Ok(status) => tracing::info!(
            "[emperor] {vassal} start-hook returned {}",
            status
                .code()
                .map_or_else(|| status.to_string(), |code| code.to_string())
        ),
        Err(error) => {
            tracing::warn!(%error, "[emperor] {vassal} start-hook `{program}` could not run")
        }
    }
}

/// The emperor's side of the stop hook: runs `program vassal` on a task and logs its exit
/// status; never waited for by the loop, never fatal.
pub fn spawn_stop_hook(program: &str, vassal: &str, vassals_dir: Option<&Path>) {
    tracing::info!("[emperor] running vassal stop-hook: {program} {vassal}");
    let mut command = tokio::process::Command::new(program);
    command.arg(vassal).stdin(std::process::Stdio::null());
    if let Some(dir) = vassals_dir {
        command.env(VASSALS_DIR_ENV, dir);
    }
    let (program, vassal) = (program.to_owned(), vassal.to_owned());
    match command.spawn() {
        Ok(mut child) => {
            tokio::spawn(async move {
                match child.wait().await {
                    Ok(status) => tracing::info!(
                        "[emperor] {vassal} stop-hook returned {}",
                        status
                            .code()
                            .map_or_else(|| status.to_string(), |code| code.to_string())
                    ),
                    Err(error) => {
                        tracing::warn!(%error, "[emperor] {vassal} stop-hook: wait failed")
                    }
                }
            });
        }
        Err(error) => {
            tracing::warn!(%error, "[emperor] {vassal} stop-hook `{program}` could not run")
        }
    }
}
