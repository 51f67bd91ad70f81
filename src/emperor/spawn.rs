//! Starting one vassal process: its command line, its environment, and the channel fd it
//! inherits. This is the contract with the vassal (see `mod.rs`), so it is kept in one place.
//!
//! The emperor never forks except through `Command::spawn`, which execs at once.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The environment variable naming the vassal's end of the channel.
pub const CHANNEL_ENV: &str = "KAISER_EMPEROR_FD";

/// What the vassal is started with, besides its config file.
#[derive(Debug, Clone, Default)]
pub struct VassalArgs {
    pub inherit_before: Vec<String>,
    pub include_before: Vec<String>,
    pub inherit: Vec<String>,
    pub include: Vec<String>,
    /// `vassals-set`: `NAME=VALUE`, each passed as `--set NAME=VALUE`.
    pub set: Vec<String>,
    /// `hook-as-vassal`/`exec-as-vassal` lines, for [`crate::hooks::AS_VASSAL_ENV`].
    pub as_vassal: Option<String>,
}

/// argv after the program: `[--inherit T]* [--include I]* [--set S]* --ini FILE [--inherit T]*
/// [--include I]*`, the order of uWSGI's `uwsgi_emperor_spawn_vassal` (reference §2.4).
pub fn vassal_argv(args: &VassalArgs, config: &Path) -> Vec<OsString> {
    fn push(argv: &mut Vec<OsString>, flag: &str, values: &[String]) {
        for value in values {
            argv.push(flag.into());
            argv.push(value.into());
        }
    }
    let mut argv = Vec::new();
    push(&mut argv, "--inherit", &args.inherit_before);
    push(&mut argv, "--include", &args.include_before);
    push(&mut argv, "--set", &args.set);
    let name = config.file_name().unwrap_or_default().to_string_lossy();
    argv.push(super::monitor::config_flag(&name).into());
    argv.push(config.as_os_str().to_owned());
    push(&mut argv, "--inherit", &args.inherit);
    push(&mut argv, "--include", &args.include);
    argv
}

/// The vassal's environment from the emperor's: systemd's per-service variables are removed
/// (the vassal is not the service's main process), a stale channel variable is dropped, and
/// `UWSGI_VASSAL_xxx=v` becomes `UWSGI_xxx=v`, overriding an existing `UWSGI_xxx`, as uWSGI does.
pub fn vassal_env(
    parent: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    const DROPPED: [&str; 8] = [
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        "UWSGI_RELOADS",
        CHANNEL_ENV,
    ];
    let mut plain: Vec<(OsString, OsString)> = Vec::new();
    let mut injected: Vec<(OsString, OsString)> = Vec::new();
    for (key, value) in parent {
        let Some(text) = key.to_str() else {
            plain.push((key, value));
            continue;
        };
        if DROPPED.contains(&text) {
            continue;
        }
        match text.strip_prefix("UWSGI_VASSAL_") {
            Some(option) if !option.is_empty() => {
                injected.push((format!("UWSGI_{option}").into(), value))
            }
            _ => plain.push((key, value)),
        }
    }
    plain.retain(|(key, _)| !injected.iter().any(|(name, _)| name == key));
    plain.extend(injected);
    plain
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnVassalError {
    #[error("cannot create the channel for `{config}`")]
    Channel {
        config: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start `{program}` for `{config}`")]
    Exec {
        program: PathBuf,
        config: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A running vassal: the process and the emperor's end of its channel.
#[derive(Debug)]
pub struct Spawned {
    pub child: tokio::process::Child,
    pub pid: u32,
    pub channel: OwnedFd,
    /// The read end of the vassal's stdout and stderr (see `vassal_logs.rs`).
    pub output: OwnedFd,
}

/// Everything needed to start one vassal.
#[derive(Debug)]
pub struct SpawnRequest<'a> {
    /// `emperor-wrapper-override`, then the wrapper or kaiser, then `emperor-wrapper-fallback`:
    /// the first that can be executed runs the vassal.
    pub programs: &'a [PathBuf],
    pub config: &'a Path,
    pub cwd: &'a Path,
    pub args: &'a VassalArgs,
    /// `emperor-tyrant`: run as this uid/gid (the config file's owner).
    pub owner: Option<(u32, u32)>,
    /// An on-demand vassal's socket (`on_demand.rs`), inherited by this child alone.
    pub on_demand_fd: Option<RawFd>,
    /// Extra environment for this vassal (`vassals-start-hook`'s variables).
    pub env: &'a [(String, String)],
}

/// Starts a vassal with the first of `request.programs` that can be executed (uWSGI's
/// `emperor-wrapper-override` and `-fallback`). Must be called from the thread that lives as
/// long as the emperor: `PR_SET_PDEATHSIG` fires when the *thread* that forked the child
/// exits, not the process.
pub fn spawn<'a>(request: &SpawnRequest<'a>) -> Result<(Spawned, &'a Path), SpawnVassalError> {
    let mut last_error = None;
    for (idx, program) in request.programs.iter().enumerate() {
        match spawn_program(request, program) {
            Ok(spawned) => return Ok((spawned, program)),
            Err(error @ SpawnVassalError::Exec { .. }) if idx + 1 < request.programs.len() => {
                tracing::warn!(program = %program.display(), cause = %std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default(),
                    "cannot execute this vassal program, trying the next one");
                last_error = Some(error);
            }
            Err(error) => return Err(error),
        }
    }
    Err(last_error.unwrap_or_else(|| SpawnVassalError::Exec {
        program: PathBuf::new(),
        config: request.config.to_owned(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    }))
}

fn spawn_program(request: &SpawnRequest<'_>, program: &Path) -> Result<Spawned, SpawnVassalError> {
    let (ours, theirs) = seqpacket_pair().map_err(|source| SpawnVassalError::Channel {
        config: request.config.to_owned(),
        source,
    })?;
    let child_fd: RawFd = theirs.as_raw_fd();
    let emperor_pid = crate::sys::process::getpid();

    // One pipe for stdout and stderr, so the emperor can name the vassal on each line.
    let (output, output_write) =
        crate::sys::fd::pipe().map_err(|source| SpawnVassalError::Channel {
            config: request.config.to_owned(),
            source,
        })?;
    let stderr_write = output_write
        .try_clone()
        .map_err(|source| SpawnVassalError::Channel {
            config: request.config.to_owned(),
            source,
        })?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(vassal_argv(request.args, request.config))
        .current_dir(request.cwd)
        .env_clear()
        .envs(vassal_env(std::env::vars_os()))
        .envs(request.env.iter().map(|(key, value)| (key, value)))
        .env(CHANNEL_ENV, child_fd.to_string())
        .env_remove(crate::hooks::AS_VASSAL_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::from(output_write))
        .stderr(Stdio::from(stderr_write))
        .process_group(0);
    if let Some(lines) = &request.args.as_vassal {
        command.env(crate::hooks::AS_VASSAL_ENV, lines);
    }
    if let Some(fd) = request.on_demand_fd {
        command.env(super::on_demand::FD_ENV, fd.to_string());
    }
    let on_demand_fd = request.on_demand_fd.unwrap_or(-1);
    if let Some((uid, gid)) = request.owner {
        // std drops supplementary groups (setgroups(0)) when changing uid as root.
        command.uid(uid).gid(gid);
    }
    // The vassal's end was created close-on-exec so that no *other* vassal inherits it; only
    // this child keeps it across exec. The on-demand socket likewise: this vassal's, no other's.
    crate::sys::process::die_with_parent_on_exec(
        command.as_std_mut(),
        emperor_pid,
        [child_fd, on_demand_fd],
    );
    let child = command.spawn().map_err(|source| SpawnVassalError::Exec {
        program: program.to_owned(),
        config: request.config.to_owned(),
        source,
    })?;
    drop(theirs);
    let pid = child
        .id()
        .expect("a freshly spawned child has not been reaped yet");
    // The command keeps the write ends until it is dropped, here: then only the vassal
    // holds them, and the pipe reaches EOF when the vassal and its children are gone.
    drop(command);
    Ok(Spawned {
        child,
        pid,
        channel: ours,
        output,
    })
}

/// The channel: a `SOCK_SEQPACKET` pair, so the vassal sees the emperor die (EOF). Our end
/// is non-blocking for tokio.
fn seqpacket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (ours, theirs) = crate::sys::seqpacket::channel_pair()?;
    crate::sys::fd::set_nonblocking(ours.as_fd(), true)?;
    Ok((ours, theirs))
}

/// Makes a display form of argv for logs ("the same command line a person would type").
pub fn command_line(program: &Path, argv: &[OsString]) -> String {
    std::iter::once(program.as_os_str())
        .chain(argv.iter().map(OsString::as_os_str))
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_order_matches_uwsgi() {
        fn check(args: VassalArgs, expected: &str) {
            let argv = vassal_argv(&args, Path::new("/v/app.ini"));
            assert_eq!(
                command_line(Path::new("kaiser"), &argv),
                expected,
                "{args:?}"
            );
        }
        check(VassalArgs::default(), "kaiser --ini /v/app.ini");
        check(
            VassalArgs {
                inherit_before: vec!["a.ini".into(), "b.ini".into()],
                include_before: vec!["c.ini".into()],
                inherit: vec!["d.ini".into()],
                include: vec!["e.ini".into(), "f.ini".into()],
                set: vec!["processes=4".into()],
                as_vassal: None,
            },
            "kaiser --inherit a.ini --inherit b.ini --include c.ini --set processes=4 --ini /v/app.ini \
             --inherit d.ini --include e.ini --include f.ini",
        );
    }

    #[test]
    fn environment() {
        fn check(parent: &[(&str, &str)], expected: &[(&str, &str)]) {
            let parent = parent
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v)));
            let got = vassal_env(parent);
            let expected: Vec<(OsString, OsString)> =
                expected.iter().map(|(k, v)| (k.into(), v.into())).collect();
            assert_eq!(got, expected);
        }
        check(&[("PATH", "/bin")], &[("PATH", "/bin")]);
        check(
            &[
                ("NOTIFY_SOCKET", "/run/systemd/notify"),
                ("WATCHDOG_USEC", "1"),
                ("LISTEN_FDS", "1"),
                ("KAISER_EMPEROR_FD", "3"),
                ("HOME", "/root"),
            ],
            &[("HOME", "/root")],
        );
        check(
            &[
                ("UWSGI_PROCESSES", "2"),
                ("UWSGI_VASSAL_PROCESSES", "4"),
                ("UWSGI_VASSAL_", "x"),
                ("UWSGI_MASTER", "1"),
            ],
            &[
                ("UWSGI_VASSAL_", "x"),
                ("UWSGI_MASTER", "1"),
                ("UWSGI_PROCESSES", "4"),
            ],
        );
    }
}
