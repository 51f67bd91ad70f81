//! Runs hook actions (`hook-*`, `exec-*`, typed by `config::hooks`) in the process that calls
//! it, with uWSGI's log lines (`running "exec:…" (as root)...`) and failure rules: in a fatal
//! phase the first failure stops the phase and is returned; otherwise failures are logged.
//!
//! The master and the worker decide when each phase happens and what a fatal failure does to
//! the instance; this module only performs actions and reports. It also answers which
//! signals `unix_signal` rebinds in the master, and watches `hook-touch` files. It must not
//! fork directly (commands go through `std::process::Command`, which is safe in a
//! multithreaded worker) or know about workers, sockets or Python.

use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::config::hooks::{Hook, HookAction, HookPhase, MasterAction, Owner, WaitFor, WriteMode};
use crate::sys;

/// Where hook failures are formatted; public here too for the callers that run hooks.
pub use crate::logging::error_chain;

/// How long `wait_for_*` waits (uWSGI's `wait-for-fs-timeout` default).
const WAIT_FOR_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
#[error("hook `{text}` ({phase}) failed")]
pub struct RunHookError {
    pub phase: &'static str,
    pub text: String,
    #[source]
    pub source: HookFailure,
}

#[derive(Debug, thiserror::Error)]
pub enum HookFailure {
    #[error("command exited with status {0}")]
    Status(String),
    #[error("`{}` did not appear within {} seconds", .path.display(), .seconds)]
    Timeout { path: PathBuf, seconds: u64 },
    #[error("cannot find user or group `{0}`")]
    Owner(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The hooks of `phase` in the order uWSGI runs them: `hook-*` lines first, then the
/// `exec-*` shortcuts, each group in config order.
fn of_phase(hooks: &[Hook], phase: HookPhase) -> impl Iterator<Item = &Hook> {
    let lines = hooks
        .iter()
        .filter(move |h| h.phase == phase && !h.shortcut);
    let shortcuts = hooks.iter().filter(move |h| h.phase == phase && h.shortcut);
    lines.chain(shortcuts)
}

/// Whether any hook is configured for `phase` (callers skip their bookkeeping otherwise).
pub fn any(hooks: &[Hook], phase: HookPhase) -> bool {
    hooks.iter().any(|h| h.phase == phase)
}

/// Runs every hook of `phase`. In a fatal phase the first failure ends the phase and is
/// returned; in the others each failure is logged and the rest still run.
pub fn run_phase(hooks: &[Hook], phase: HookPhase) -> Result<(), RunHookError> {
    for hook in of_phase(hooks, phase) {
        if let Err(err) = run_one(hook) {
            if phase.fatal() {
                return Err(err);
            }
            tracing::error!("{}", error_chain(&err));
        }
    }
    Ok(())
}

/// Runs one hook, whatever its phase (also `hook-touch` lines).
pub fn run_one(hook: &Hook) -> Result<(), RunHookError> {
    let phase = hook.phase.name();
    if hook.private {
        tracing::info!("running --- PRIVATE HOOK --- ({phase})...");
    } else {
        tracing::info!("running \"{}\" ({phase})...", hook.text);
    }
    perform(&hook.action).map_err(|source| RunHookError {
        phase,
        text: if hook.private {
            "--- PRIVATE HOOK ---".to_string()
        } else {
            hook.text.clone()
        },
        source,
    })
}

fn perform(action: &HookAction) -> Result<(), HookFailure> {
    match action {
        HookAction::Exec { command, safe } => {
            let mut shell = std::process::Command::new("/bin/sh");
            shell.arg("-c").arg(command);
            sys::process::clean_signals_on_exec(&mut shell);
            let status = shell.status()?;
            if status.success() {
                return Ok(());
            }
            let code = match status.code() {
                Some(code) => code.to_string(),
                None => format!("{status}"),
            };
            tracing::warn!("command \"{command}\" exited with non-zero code: {code}");
            if *safe {
                return Ok(());
            }
            Err(HookFailure::Status(code))
        }
        HookAction::Chdir(path) => Ok(std::env::set_current_dir(path)?),
        HookAction::Mkdir(path) => match std::fs::DirBuilder::new().mode(0o777).create(path) {
            // uWSGI fails here, which makes `hook-asap = mkdir:…` fatal on every restart
            // after the first; an existing directory is what the line asks for.
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {
                tracing::info!(path = %path.display(), "mkdir: the directory exists already");
                Ok(())
            }
            other => Ok(other?),
        },
        HookAction::Putenv { name, value } => {
            match value {
                Some(value) => std::env::set_var(name, value),
                None => std::env::remove_var(name),
            }
            Ok(())
        }
        HookAction::Chmod { path, mode } => Ok(std::fs::set_permissions(
            path,
            std::fs::Permissions::from_mode(*mode),
        )?),
        HookAction::Chown { path, owner } => {
            let (uid, gid) = match owner {
                Owner::Ids { uid, gid } => (*uid, *gid),
                Owner::Names { user, group } => {
                    let (uid, _, _) = sys::process::lookup_user(user)
                        .map_err(|_| HookFailure::Owner(user.clone()))?;
                    let gid = sys::process::lookup_group(group)
                        .map_err(|_| HookFailure::Owner(group.clone()))?;
                    (uid, gid)
                }
            };
            Ok(sys::process::chown(path, Some(uid), Some(gid))?)
        }
        HookAction::Sticky(path) => {
            let mode = std::fs::metadata(path)?.permissions().mode();
            Ok(std::fs::set_permissions(
                path,
                std::fs::Permissions::from_mode(mode | libc::S_ISVTX),
            )?)
        }
        HookAction::Create(path) => {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o666)
                .open(path)?;
            Ok(())
        }
        HookAction::Write {
            path,
            text,
            mode,
            newline,
        } => write(path, text, *mode, *newline),
        HookAction::Unlink(path) => Ok(std::fs::remove_file(path)?),
        HookAction::WaitFor { path, kind } => wait_for(path, *kind),
        HookAction::Print(text) => {
            tracing::info!("{text}");
            Ok(())
        }
        HookAction::Exit(code) => {
            tracing::info!(code, "exit hook: exiting");
            std::process::exit(*code)
        }
        HookAction::Mount {
            fs,
            source,
            target,
            flags,
            data,
        } => Ok(sys::mount::mount(
            fs,
            source,
            target,
            *flags,
            data.as_deref(),
        )?),
        HookAction::Umount { target, flags } => Ok(sys::mount::umount(target, *flags)?),
        HookAction::UnixSignal { signal, action } => {
            let name = sys::signal::name(*signal);
            match MasterAction::default_for(*signal) {
                Some(default) if default == *action => tracing::info!(
                    "unix_signal:{signal} {}: kaiser's master already {} on {name}; nothing to change",
                    action.uwsgi_name(),
                    action.describe(),
                ),
                Some(default) => tracing::info!(
                    "unix_signal:{signal} {}: the master now {} on {name} (kaiser's default: {})",
                    action.uwsgi_name(),
                    action.describe(),
                    default.describe(),
                ),
                None => {}
            }
            Ok(())
        }
    }
}

fn write(path: &Path, text: &str, mode: WriteMode, newline: bool) -> Result<(), HookFailure> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    match mode {
        WriteMode::Truncate => options.create(true).truncate(true).mode(0o666),
        WriteMode::Append => options.create(true).append(true).mode(0o666),
        WriteMode::Fifo => options.custom_flags(libc::O_NONBLOCK),
    };
    let mut file = match options.open(path) {
        // A FIFO nobody reads is not an error (uWSGI's `writefifo`).
        Err(err) if mode == WriteMode::Fifo && err.raw_os_error() == Some(libc::ENXIO) => {
            return Ok(())
        }
        other => other?,
    };
    let mut bytes = text.as_bytes().to_vec();
    if newline {
        bytes.push(b'\n');
    }
    io::Write::write_all(&mut file, &bytes)?;
    Ok(())
}

fn wait_for(path: &Path, kind: WaitFor) -> Result<(), HookFailure> {
    tracing::info!(
        "waiting for {} (max {} seconds) ...",
        path.display(),
        WAIT_FOR_TIMEOUT.as_secs()
    );
    let deadline = Instant::now() + WAIT_FOR_TIMEOUT;
    loop {
        let found = std::fs::metadata(path).is_ok_and(|m| match kind {
            WaitFor::Any => true,
            WaitFor::File => m.is_file(),
            WaitFor::Dir => m.is_dir(),
        });
        if found {
            tracing::info!("{} found", path.display());
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(HookFailure::Timeout {
                path: path.to_path_buf(),
                seconds: WAIT_FOR_TIMEOUT.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The environment variable through which the emperor hands its `hook-as-vassal` and
/// `exec-as-vassal` lines to each vassal it starts: `option=value` lines. uWSGI runs them in
/// the forked child before exec; kaiser's emperor never runs code between fork and exec
/// beyond system calls, so the vassal runs them first thing instead (same process, same
/// privileges, before it binds or drops anything).
pub const AS_VASSAL_ENV: &str = "KAISER_AS_VASSAL_HOOKS";

/// The emperor's side: its as-vassal lines in [`AS_VASSAL_ENV`]'s form, if it has any.
pub fn as_vassal_env(hooks: &[Hook]) -> Option<String> {
    let lines: Vec<String> = hooks
        .iter()
        .filter(|h| h.phase == HookPhase::AsVassal)
        .map(|h| format!("{}={}", h.option, h.text))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// The vassal's side: runs the lines its emperor handed over, once (the variable is removed,
/// so a re-exec on reload does not run them again). A failure is fatal, as in uWSGI.
pub fn run_as_vassal_from_env() -> Result<(), RunHookError> {
    let Ok(lines) = std::env::var(AS_VASSAL_ENV) else {
        return Ok(());
    };
    std::env::remove_var(AS_VASSAL_ENV);
    let mut hooks = Vec::new();
    for line in lines.lines() {
        let Some((option, value)) = line.split_once('=') else {
            continue;
        };
        let parsed = if option.starts_with("mount-") || option.starts_with("umount-") {
            crate::config::hooks::parse_mount(option, value)
        } else {
            crate::config::hooks::parse(option, value)
        };
        match parsed {
            Ok(hook) => hooks.push(hook),
            // The emperor parsed these already; a line that no longer parses is a bug.
            Err(message) => tracing::error!("ignoring as-vassal hook `{line}`: {message}"),
        }
    }
    run_phase(&hooks, HookPhase::AsVassal)
}

/// In an emperor: its `asap` hooks run (uWSGI runs them in every instance), then
/// `emperor-start`; `as-vassal` ones are for its vassals and `as-emperor` ones run after each
/// vassal starts (`emperor/as_emperor.rs`); the others have no phase in kaiser's emperor and are named in a
/// warning rather than silently skipped.
pub fn run_emperor_phases(hooks: &[Hook]) -> Result<(), RunHookError> {
    run_phase(hooks, HookPhase::Asap)?;
    run_phase(hooks, HookPhase::EmperorStart)?;
    for hook in hooks {
        if !matches!(
            hook.phase,
            HookPhase::Asap | HookPhase::AsVassal | HookPhase::AsEmperor | HookPhase::EmperorStart
        ) {
            tracing::warn!(
                "`{} = {}` does not run in the emperor (it has no such phase); put it in the vassals' configs",
                hook.option,
                hook.text
            );
        }
    }
    Ok(())
}

/// What the master does on `signal` when a `unix_signal` hook rebinds it to something other
/// than kaiser's default; `None` keeps the default. The last binding of a signal wins.
pub fn signal_override(hooks: &[Hook], signal: i32) -> Option<MasterAction> {
    let bound = hooks.iter().rev().find_map(|hook| match hook.action {
        HookAction::UnixSignal { signal: s, action } if s == signal => Some(action),
        _ => None,
    })?;
    (MasterAction::default_for(signal) != Some(bound)).then_some(bound)
}

/// `hook-touch` files, checked by the master once per loop turn (uWSGI checks touches once
/// per master cycle). A file fires when its mtime changes, when it appears and when it goes.
pub struct TouchHooks {
    watched: Vec<(usize, Option<SystemTime>)>,
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl TouchHooks {
    pub fn new(hooks: &[Hook]) -> TouchHooks {
        let watched = hooks
            .iter()
            .enumerate()
            .filter_map(|(index, hook)| Some((index, mtime(hook.touch.as_ref()?))))
            .collect();
        TouchHooks { watched }
    }

    /// Runs the actions of the files that changed since the last call (not fatal).
    pub fn check(&mut self, hooks: &[Hook]) {
        for (index, seen) in &mut self.watched {
            let hook = &hooks[*index];
            let Some(path) = &hook.touch else { continue };
            let now = mtime(path);
            if now != *seen {
                *seen = now;
                tracing::info!(path = %path.display(), "hook-touch: `{}` was touched", path.display());
                if let Err(err) = run_one(hook) {
                    tracing::error!("{}", error_chain(&err));
                }
            }
        }
    }
}
