//! Hooks: uWSGI's `hook-PHASE = action:argument` and `exec-PHASE = command` lines, parsed
//! once while the config is typed, so an unknown action or a malformed argument is a config
//! error with file and line rather than a failure at start-up.
//!
//! This module only describes hooks (phase, action, argument); running them is
//! `crate::hooks`, and deciding when each phase happens is the master's and the worker's.
//! The actions are uWSGI 2.0's (`core/hooks.c`). Those that call C functions of the uWSGI
//! binary by name (`call:`, `callret:`, `callint:`, `callintret:`), or need a uWSGI subsystem
//! kaiser does not have (`alarm:`, `rpc:`, `retryrpc:`, `spinningfifo:`),
//! are refused with a reason. `unix_signal:N FUNCTION` is accepted for the master's own
//! actions and changes what the master does on that signal.

use std::path::PathBuf;

/// When a hook runs. The names in logs are uWSGI's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookPhase {
    /// First thing in the master, on every start and re-exec.
    Asap,
    /// In the master before it drops privileges; only when started as root.
    AsRoot,
    /// In the master after it drops privileges; only when started as root.
    AsUser,
    /// Before the app is imported (the master, or each worker with `lazy-apps`).
    PreApp,
    /// After the app is imported (the master, or each worker with `lazy-apps`).
    PostApp,
    /// In each worker right after fork.
    PostFork,
    /// In each worker once it accepts.
    Accepting,
    /// In each worker once it accepts, on its first spawn in this master only.
    AcceptingOnce,
    /// In worker 1 once it accepts.
    Accepting1,
    /// In worker 1 once it accepts, on its first spawn in this master only.
    Accepting1Once,
    /// In the master when its loop starts (after the workers are forked).
    MasterStart,
    /// In the master when it exits (not fatal).
    AsUserAtexit,
    /// `hook-touch = FILE action`: in the master when FILE changes (not fatal).
    Touch,
    /// In an emperor's config: run first thing in each vassal it starts, before the vassal binds its sockets.
    AsVassal,
    /// In the master on its first start, after `asap`, before `unshare` (`crate::jail`).
    PreJail,
    /// In the master on every start, after `pre-jail`.
    InJail,
    /// In the master right after `unshare` moved it into new namespaces (only then).
    PostJail,
    /// In each mule when it starts.
    AsMule,
    /// In an emperor's config: in the emperor after each vassal starts (not fatal).
    AsEmperor,
    /// In an emperor's config: in the emperor when it starts.
    EmperorStart,
    /// In a vassal's config: when its emperor stops it (not fatal).
    EmperorStop,
    /// In a vassal's config: when its emperor reloads it (not fatal).
    EmperorReload,
}

impl HookPhase {
    /// The phase as uWSGI's log lines name it (`running "…" (as root)...`).
    pub fn name(self) -> &'static str {
        match self {
            HookPhase::Asap => "asap",
            HookPhase::AsRoot => "as root",
            HookPhase::AsUser => "as user",
            HookPhase::PreApp => "pre app",
            HookPhase::PostApp => "post app",
            HookPhase::PostFork => "post-fork",
            HookPhase::Accepting => "accepting",
            HookPhase::AcceptingOnce => "accepting-once",
            HookPhase::Accepting1 => "accepting1",
            HookPhase::Accepting1Once => "accepting1-once",
            HookPhase::MasterStart => "master-start",
            HookPhase::AsUserAtexit => "atexit",
            HookPhase::Touch => "touch",
            HookPhase::AsVassal => "as-vassal",
            HookPhase::PreJail => "pre-jail",
            HookPhase::InJail => "in-jail",
            HookPhase::PostJail => "post-jail",
            HookPhase::AsMule => "as-mule",
            HookPhase::AsEmperor => "as-emperor",
            HookPhase::EmperorStart => "emperor-start",
            HookPhase::EmperorStop => "emperor-stop",
            HookPhase::EmperorReload => "emperor-reload",
        }
    }

    /// A failed hook stops the instance, as in uWSGI, except at exit and on touch.
    pub fn fatal(self) -> bool {
        !matches!(
            self,
            HookPhase::AsUserAtexit
                | HookPhase::Touch
                | HookPhase::AsEmperor
                | HookPhase::EmperorStop
                | HookPhase::EmperorReload
        )
    }

    /// Whether the phase runs in the master process itself (not in a worker, and not only
    /// with `lazy-apps` in the workers): where `unix_signal` makes sense.
    fn in_master(self) -> bool {
        matches!(
            self,
            HookPhase::Asap | HookPhase::AsRoot | HookPhase::AsUser | HookPhase::MasterStart
        )
    }

    /// The phase of a `hook-*` or `exec-*` option, and whether it is the `exec-*` shortcut.
    pub(crate) fn of_option(option: &str) -> Option<(HookPhase, bool)> {
        let (rest, exec) = if let Some(rest) = option.strip_prefix("hook-") {
            (rest, false)
        } else {
            (option.strip_prefix("exec-")?, true)
        };
        let phase = match rest {
            "asap" => HookPhase::Asap,
            "as-root" => HookPhase::AsRoot,
            "as-user" => HookPhase::AsUser,
            "pre-app" => HookPhase::PreApp,
            "post-app" => HookPhase::PostApp,
            "post-fork" if !exec => HookPhase::PostFork,
            "accepting" if !exec => HookPhase::Accepting,
            "accepting-once" if !exec => HookPhase::AcceptingOnce,
            "accepting1" if !exec => HookPhase::Accepting1,
            "accepting1-once" if !exec => HookPhase::Accepting1Once,
            "master-start" if !exec => HookPhase::MasterStart,
            "as-user-atexit" => HookPhase::AsUserAtexit,
            "touch" if !exec => HookPhase::Touch,
            "as-vassal" => HookPhase::AsVassal,
            "pre-jail" => HookPhase::PreJail,
            "in-jail" => HookPhase::InJail,
            "post-jail" => HookPhase::PostJail,
            "as-mule" if !exec => HookPhase::AsMule,
            "as-emperor" => HookPhase::AsEmperor,
            "emperor-start" if !exec => HookPhase::EmperorStart,
            "emperor-stop" if !exec => HookPhase::EmperorStop,
            "emperor-reload" if !exec => HookPhase::EmperorReload,
            _ => return None,
        };
        Some((phase, exec))
    }
}

/// One hook line, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub phase: HookPhase,
    /// The option as written (`hook-master-start`, `exec-asap`), for `--show-config`.
    pub option: String,
    /// The value as written, for logs and `--show-config`.
    pub text: String,
    /// `exec-*` shortcut: uWSGI runs these after the phase's `hook-*` lines.
    pub shortcut: bool,
    /// `!action:…`: logged without its argument (uWSGI's private hooks).
    pub private: bool,
    /// `hook-touch`: the file whose change runs the action.
    pub touch: Option<PathBuf>,
    pub action: HookAction,
}

/// What `write:`-like actions do to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// `write`, `writen`: create or truncate.
    Truncate,
    /// `append`, `appendn`: create or append.
    Append,
    /// `writefifo`: an existing FIFO, opened without blocking; no reader is not an error.
    Fifo,
}

/// What `wait_for_*` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    Any,
    File,
    Dir,
}

/// Who owns a file after `chown:` (names) or `chown2:` (numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Names { user: String, group: String },
    Ids { uid: u32, gid: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookAction {
    /// `exec:` (fatal on a non-zero status) and `safeexec:` (never fails): `/bin/sh -c`.
    Exec {
        command: String,
        safe: bool,
    },
    Chdir(PathBuf),
    /// `mkdir:`; an existing directory is not an error in kaiser (it is in uWSGI).
    Mkdir(PathBuf),
    /// `putenv:NAME=VALUE`; `putenv:NAME` unsets, as glibc's `putenv` does.
    Putenv {
        name: String,
        value: Option<String>,
    },
    Chmod {
        path: PathBuf,
        mode: u32,
    },
    Chown {
        path: PathBuf,
        owner: Owner,
    },
    Sticky(PathBuf),
    /// `create:`, `creat:`: create or truncate, mode 0666 less the umask.
    Create(PathBuf),
    Write {
        path: PathBuf,
        text: String,
        mode: WriteMode,
        newline: bool,
    },
    Unlink(PathBuf),
    /// `wait_for_fs:`, `wait_for_file:`, `wait_for_dir:`: up to 60 s, as uWSGI.
    WaitFor {
        path: PathBuf,
        kind: WaitFor,
    },
    /// `print:`, `log:`: a line in the log.
    Print(String),
    /// `exit:[code]`.
    Exit(i32),
    /// `unix_signal:N FUNCTION`: what the master does when it receives signal N.
    UnixSignal {
        signal: i32,
        action: MasterAction,
    },
    /// `mount:FS SOURCE TARGET [FLAGS [DATA]]` (and `mount-PHASE`): mount(2).
    Mount {
        fs: String,
        source: String,
        target: PathBuf,
        flags: u64,
        data: Option<String>,
    },
    /// `umount:TARGET [FLAGS]` (and `umount-PHASE`): umount2(2), `rec` first unmounting
    /// everything below TARGET.
    Umount {
        target: PathBuf,
        flags: u64,
    },
}

/// The uWSGI master functions that `unix_signal` can bind, as kaiser's master actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterAction {
    /// `gracefully_kill_them_all`: stop, letting requests finish.
    GracefulStop,
    /// `kill_them_all`: stop now.
    FastStop,
    /// `grace_them_all`: graceful reload.
    GracefulReload,
    /// `reap_them_all`: brutal reload.
    BrutalReload,
    /// `stats`: log the workers' figures.
    Stats,
    /// `suspend_resume_them_all`: pause or resume.
    TogglePause,
}

impl MasterAction {
    fn of_uwsgi(function: &str) -> Option<MasterAction> {
        Some(match function {
            "gracefully_kill_them_all" => MasterAction::GracefulStop,
            "kill_them_all" => MasterAction::FastStop,
            "grace_them_all" => MasterAction::GracefulReload,
            "reap_them_all" => MasterAction::BrutalReload,
            "stats" => MasterAction::Stats,
            "suspend_resume_them_all" => MasterAction::TogglePause,
            _ => return None,
        })
    }

    pub fn uwsgi_name(self) -> &'static str {
        match self {
            MasterAction::GracefulStop => "gracefully_kill_them_all",
            MasterAction::FastStop => "kill_them_all",
            MasterAction::GracefulReload => "grace_them_all",
            MasterAction::BrutalReload => "reap_them_all",
            MasterAction::Stats => "stats",
            MasterAction::TogglePause => "suspend_resume_them_all",
        }
    }

    /// What kaiser's master does on `signal` without any `unix_signal` hook; `None` for a
    /// signal the master does not handle.
    pub fn default_for(signal: i32) -> Option<MasterAction> {
        Some(match signal {
            libc::SIGTERM | libc::SIGQUIT => MasterAction::GracefulStop,
            libc::SIGINT => MasterAction::FastStop,
            libc::SIGHUP => MasterAction::GracefulReload,
            libc::SIGUSR1 => MasterAction::Stats,
            libc::SIGTSTP => MasterAction::TogglePause,
            _ => return None,
        })
    }

    /// A few words for logs: what the action does.
    pub fn describe(self) -> &'static str {
        match self {
            MasterAction::GracefulStop => "stops gracefully",
            MasterAction::FastStop => "stops at once",
            MasterAction::GracefulReload => "reloads gracefully",
            MasterAction::BrutalReload => "reloads brutally",
            MasterAction::Stats => "logs its stats",
            MasterAction::TogglePause => "pauses or resumes",
        }
    }
}

/// Parses one `hook-*`/`exec-*` entry. The error is the message for the entry's line.
pub fn parse(option: &str, value: &str) -> Result<Hook, String> {
    let (phase, shortcut) = HookPhase::of_option(option)
        .ok_or_else(|| format!("`{option}` is not a hook phase kaiser knows"))?;
    let mut hook = Hook {
        phase,
        option: option.to_string(),
        text: value.to_string(),
        shortcut,
        private: false,
        touch: None,
        action: HookAction::Print(String::new()),
    };
    if shortcut {
        if value.trim().is_empty() {
            return Err("expected a command to run, got an empty value".to_string());
        }
        hook.action = HookAction::Exec {
            command: value.to_string(),
            safe: false,
        };
        return Ok(hook);
    }
    let mut spec = value;
    if phase == HookPhase::Touch {
        let Some((file, rest)) = value.split_once(' ') else {
            return Err(format!("expected `FILE action:argument`, got `{value}`"));
        };
        hook.touch = Some(PathBuf::from(file));
        spec = rest.trim_start();
    }
    let Some((name, argument)) = spec.split_once(':') else {
        return Err(format!(
            "expected `action:argument` (such as `exec:/usr/bin/true` or `print:hello`), got `{spec}`"
        ));
    };
    let name = match name.strip_prefix('!') {
        Some(name) => {
            hook.private = true;
            name
        }
        None => name,
    };
    hook.action = action(name, argument)?;
    let accepting = matches!(
        phase,
        HookPhase::Accepting
            | HookPhase::AcceptingOnce
            | HookPhase::Accepting1
            | HookPhase::Accepting1Once
    );
    if accepting && matches!(hook.action, HookAction::Putenv { .. }) {
        return Err(format!(
            "`putenv` in `{option}` would change the environment while request threads run; use `hook-post-fork`"
        ));
    }
    if let HookAction::UnixSignal { .. } = hook.action {
        if !phase.in_master() {
            return Err(format!(
                "`unix_signal` changes what the master does on a signal; put it in `hook-master-start` (or `hook-asap`), not `{option}`"
            ));
        }
    }
    Ok(hook)
}

fn action(name: &str, argument: &str) -> Result<HookAction, String> {
    let path = |what: &str| -> Result<PathBuf, String> {
        if argument.is_empty() {
            Err(format!("`{what}:` needs a path"))
        } else {
            Ok(PathBuf::from(argument))
        }
    };
    let file_and_text = |what: &str| -> Result<(PathBuf, String), String> {
        match argument.split_once(' ') {
            Some((file, text)) if !file.is_empty() => Ok((PathBuf::from(file), text.to_string())),
            _ => Err(format!("`{what}:` expects `FILE TEXT`, got `{argument}`")),
        }
    };
    let write = |mode: WriteMode, newline: bool, what: &str| -> Result<HookAction, String> {
        // `appendn:FILE` alone appends a bare newline.
        let (path, text) = if newline && mode == WriteMode::Append && !argument.contains(' ') {
            (path(what)?, String::new())
        } else {
            file_and_text(what)?
        };
        Ok(HookAction::Write {
            path,
            text,
            mode,
            newline,
        })
    };
    Ok(match name {
        "exec" | "safeexec" => {
            if argument.trim().is_empty() {
                return Err(format!("`{name}:` needs a command"));
            }
            HookAction::Exec {
                command: argument.to_string(),
                safe: name == "safeexec",
            }
        }
        "cd" | "chdir" => HookAction::Chdir(path(name)?),
        "mkdir" => HookAction::Mkdir(path(name)?),
        "putenv" => match argument.split_once('=') {
            Some((key, value)) if !key.is_empty() => HookAction::Putenv {
                name: key.to_string(),
                value: Some(value.to_string()),
            },
            None if !argument.is_empty() => HookAction::Putenv {
                name: argument.to_string(),
                value: None,
            },
            _ => return Err(format!("`putenv:` expects `NAME=VALUE`, got `{argument}`")),
        },
        "chmod" => {
            let (file, mode) = file_and_text(name)?;
            let mode = u32::from_str_radix(mode.trim(), 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| format!("`chmod:` expects an octal mode such as `660`, got `{mode}`"))?;
            HookAction::Chmod { path: file, mode }
        }
        "chown" | "chown2" => {
            let parts: Vec<&str> = argument.split(' ').collect();
            let [file, user, group] = parts[..] else {
                return Err(format!("`{name}:` expects `FILE USER GROUP`, got `{argument}`"));
            };
            let owner = if name == "chown" {
                Owner::Names {
                    user: user.to_string(),
                    group: group.to_string(),
                }
            } else {
                match (user.parse(), group.parse()) {
                    (Ok(uid), Ok(gid)) => Owner::Ids { uid, gid },
                    _ => return Err(format!("`chown2:` takes a numeric uid and gid, got `{user} {group}`")),
                }
            };
            HookAction::Chown {
                path: PathBuf::from(file),
                owner,
            }
        }
        "sticky" => HookAction::Sticky(path(name)?),
        "create" | "creat" => HookAction::Create(path(name)?),
        "write" => write(WriteMode::Truncate, false, name)?,
        "writen" => write(WriteMode::Truncate, true, name)?,
        "append" => write(WriteMode::Append, false, name)?,
        "appendn" => write(WriteMode::Append, true, name)?,
        "writefifo" => write(WriteMode::Fifo, false, name)?,
        "unlink" => HookAction::Unlink(path(name)?),
        "wait_for_fs" => HookAction::WaitFor {
            path: path(name)?,
            kind: WaitFor::Any,
        },
        "wait_for_file" => HookAction::WaitFor {
            path: path(name)?,
            kind: WaitFor::File,
        },
        "wait_for_dir" => HookAction::WaitFor {
            path: path(name)?,
            kind: WaitFor::Dir,
        },
        "print" | "log" => HookAction::Print(argument.to_string()),
        // uWSGI: `exit:` alone (or one character) exits 0, else atoi.
        "exit" => HookAction::Exit(if argument.len() > 1 {
            atoi(argument)
        } else {
            0
        }),
        "unix_signal" => unix_signal(argument)?,
        "call" | "callret" | "callint" | "callintret" => {
            return Err(format!(
                "`{name}:` calls a C function of the uWSGI binary by name, and kaiser has no such functions; run a command with `exec:` instead"
            ))
        }
        "mount" => mount(argument)?,
        "umount" => umount(argument)?,
        "alarm" | "rpc" | "retryrpc" | "spinningfifo" | "hostname" | "wait_for_socket" => {
            return Err(format!(
                "`{name}:` is not supported by kaiser (it needs a uWSGI subsystem kaiser does not have)"
            ))
        }
        other => {
            return Err(format!(
                "unknown hook action `{other}` (kaiser knows exec, safeexec, chdir, mkdir, putenv, chmod, chown, chown2, sticky, create, write, writen, append, appendn, writefifo, unlink, wait_for_fs, wait_for_file, wait_for_dir, print, log, exit, unix_signal, mount, umount)"
            ))
        }
    })
}

/// `mount-PHASE = ARGS` and `umount-PHASE = ARGS`: the `mount:`/`umount:` action in that
/// phase's hooks (uWSGI runs them after the phase's hook lines; kaiser in config order).
pub(crate) fn parse_mount(option: &str, value: &str) -> Result<Hook, String> {
    let (action, phase) = match option.strip_prefix("umount-") {
        Some(phase) => ("umount", phase),
        None => ("mount", option.strip_prefix("mount-").unwrap_or(option)),
    };
    let mut hook = parse(&format!("hook-{phase}"), &format!("{action}:{value}"))?;
    hook.option = option.to_string();
    hook.text = value.to_string();
    Ok(hook)
}

/// uWSGI's mount flag names (`core/mount.c`) and the `MS_*`/`MNT_*` values they stand for.
const MOUNT_FLAGS: [(&str, u64); 20] = [
    ("bind", libc::MS_BIND),
    ("dirsync", libc::MS_DIRSYNC),
    ("mandlock", libc::MS_MANDLOCK),
    ("move", libc::MS_MOVE),
    ("noatime", libc::MS_NOATIME),
    ("nodev", libc::MS_NODEV),
    ("noexec", libc::MS_NOEXEC),
    ("rdonly", libc::MS_RDONLY),
    ("readonly", libc::MS_RDONLY),
    ("ro", libc::MS_RDONLY),
    ("remount", libc::MS_REMOUNT),
    ("nosuid", libc::MS_NOSUID),
    ("sync", libc::MS_SYNCHRONOUS),
    ("force", libc::MNT_FORCE as u64),
    ("detach", libc::MNT_DETACH as u64),
    ("rec", libc::MS_REC),
    ("recursive", libc::MS_REC),
    ("private", libc::MS_PRIVATE),
    ("shared", libc::MS_SHARED),
    ("slave", libc::MS_SLAVE),
];

fn mount_flags(text: Option<&str>) -> Result<u64, String> {
    let mut flags = 0;
    for name in text
        .unwrap_or("")
        .split(',')
        .filter(|n| !n.is_empty() && *n != "defaults")
    {
        let Some((_, flag)) = MOUNT_FLAGS.iter().find(|(known, _)| *known == name) else {
            return Err(format!("unknown mount flag `{name}`"));
        };
        flags |= flag;
    }
    Ok(flags)
}

fn mount(argument: &str) -> Result<HookAction, String> {
    let mut parts = argument.splitn(5, ' ');
    let (Some(fs), Some(source), Some(target)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!(
            "`mount:` expects `FS SOURCE TARGET [FLAGS [DATA]]` (such as `tmpfs none /run/app`, or `none /src /dst bind`), got `{argument}`"
        ));
    };
    if target.is_empty() {
        return Err(format!("`mount:` needs a target, got `{argument}`"));
    }
    Ok(HookAction::Mount {
        // uWSGI passes an empty type as NULL (bind mounts, remounts): `none` means that too.
        fs: if fs == "none" {
            String::new()
        } else {
            fs.to_string()
        },
        source: source.to_string(),
        target: PathBuf::from(target),
        flags: mount_flags(parts.next())?,
        data: parts.next().map(str::to_string),
    })
}

fn umount(argument: &str) -> Result<HookAction, String> {
    let (target, flags) = match argument.split_once(' ') {
        Some((target, flags)) => (target, Some(flags)),
        None => (argument, None),
    };
    if target.is_empty() {
        return Err("`umount:` needs a target".to_string());
    }
    Ok(HookAction::Umount {
        target: PathBuf::from(target),
        flags: mount_flags(flags)?,
    })
}

fn unix_signal(argument: &str) -> Result<HookAction, String> {
    let Some((number, function)) = argument.split_once(' ') else {
        return Err(format!(
            "`unix_signal:` expects `SIGNUM FUNCTION` (such as `unix_signal:15 gracefully_kill_them_all`), got `{argument}`"
        ));
    };
    let signal: i32 = number
        .trim()
        .parse()
        .map_err(|_| format!("`unix_signal:` expects a signal number, got `{number}`"))?;
    let function = function.trim();
    let action = MasterAction::of_uwsgi(function).ok_or_else(|| {
        format!(
            "`unix_signal:` cannot bind `{function}`: kaiser's master maps gracefully_kill_them_all, kill_them_all, grace_them_all, reap_them_all, stats and suspend_resume_them_all"
        )
    })?;
    if MasterAction::default_for(signal).is_none() {
        return Err(format!(
            "`unix_signal:{signal}`: kaiser's master handles only signals 1 (SIGHUP), 2 (SIGINT), 3 (SIGQUIT), 10 (SIGUSR1), 15 (SIGTERM) and 20 (SIGTSTP)"
        ));
    }
    Ok(HookAction::UnixSignal { signal, action })
}

/// C's `atoi`: leading digits with an optional sign, 0 when there are none.
fn atoi(text: &str) -> i32 {
    let text = text.trim_start();
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let digits: String = digits.chars().take_while(char::is_ascii_digit).collect();
    digits.parse::<i32>().map(|n| sign * n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(option: &str, value: &str, expected: Result<HookAction, &str>) {
        let got = parse(option, value).map(|hook| hook.action);
        match expected {
            Ok(action) => assert_eq!(got, Ok(action), "{option} = {value}"),
            Err(part) => {
                let message = got.expect_err(value);
                assert!(message.contains(part), "{option} = {value}: {message}");
            }
        }
    }

    fn exec(command: &str) -> HookAction {
        HookAction::Exec {
            command: command.into(),
            safe: false,
        }
    }

    #[test]
    fn mounts() {
        check(
            "hook-asap",
            "mount:tmpfs none /run/app",
            Ok(HookAction::Mount {
                fs: "tmpfs".into(),
                source: "none".into(),
                target: "/run/app".into(),
                flags: 0,
                data: None,
            }),
        );
        check(
            "hook-pre-jail",
            "mount:none /srv /jail/srv bind,rec,ro size=1",
            Ok(HookAction::Mount {
                fs: String::new(),
                source: "/srv".into(),
                target: "/jail/srv".into(),
                flags: libc::MS_BIND | libc::MS_REC | libc::MS_RDONLY,
                data: Some("size=1".into()),
            }),
        );
        check(
            "hook-asap",
            "umount:/jail rec,detach",
            Ok(HookAction::Umount {
                target: "/jail".into(),
                flags: libc::MS_REC | libc::MNT_DETACH as u64,
            }),
        );
        let hook = parse_mount("umount-in-jail", "/jail/proc").expect("a valid umount line");
        assert_eq!(
            (hook.phase, hook.option.as_str(), hook.text.as_str()),
            (HookPhase::InJail, "umount-in-jail", "/jail/proc")
        );
        let hook = parse_mount("mount-as-emperor", "proc none /p").expect("a valid mount line");
        assert_eq!(hook.phase, HookPhase::AsEmperor);
    }

    #[test]
    fn actions() {
        check("hook-asap", "exec:ls -l", Ok(exec("ls -l")));
        check("exec-as-root", "chown x /y", Ok(exec("chown x /y")));
        check(
            "hook-pre-app",
            "print:hi: there",
            Ok(HookAction::Print("hi: there".into())),
        );
        check("hook-pre-app", "log:", Ok(HookAction::Print(String::new())));
        check(
            "hook-as-root",
            "mkdir:/run/app",
            Ok(HookAction::Mkdir("/run/app".into())),
        );
        check(
            "hook-as-user",
            "write:/tmp/x hello world",
            Ok(HookAction::Write {
                path: "/tmp/x".into(),
                text: "hello world".into(),
                mode: WriteMode::Truncate,
                newline: false,
            }),
        );
        check(
            "hook-as-user",
            "appendn:/tmp/x",
            Ok(HookAction::Write {
                path: "/tmp/x".into(),
                text: String::new(),
                mode: WriteMode::Append,
                newline: true,
            }),
        );
        check(
            "hook-asap",
            "putenv:A=b=c",
            Ok(HookAction::Putenv {
                name: "A".into(),
                value: Some("b=c".into()),
            }),
        );
        check(
            "hook-asap",
            "chmod:/tmp/s 660",
            Ok(HookAction::Chmod {
                path: "/tmp/s".into(),
                mode: 0o660,
            }),
        );
        check("hook-asap", "exit:", Ok(HookAction::Exit(0)));
        check("hook-asap", "exit:17", Ok(HookAction::Exit(17)));
        check(
            "hook-master-start",
            "unix_signal:15 gracefully_kill_them_all",
            Ok(HookAction::UnixSignal {
                signal: 15,
                action: MasterAction::GracefulStop,
            }),
        );
        check(
            "hook-master-start",
            "unix_signal:2 gracefully_kill_them_all",
            Ok(HookAction::UnixSignal {
                signal: 2,
                action: MasterAction::GracefulStop,
            }),
        );
    }

    #[test]
    fn refusals_say_why() {
        check(
            "hook-asap",
            "frobnicate:x",
            Err("unknown hook action `frobnicate`"),
        );
        check("hook-asap", "no colon", Err("expected `action:argument`"));
        check("hook-asap", "call:uwsgi_foo", Err("exec:"));
        check(
            "hook-asap",
            "mount:proc /proc",
            Err("expects `FS SOURCE TARGET"),
        );
        check(
            "hook-asap",
            "mount:tmpfs none /x nosync",
            Err("unknown mount flag `nosync`"),
        );
        check("hook-asap", "write:/tmp/x", Err("expects `FILE TEXT`"));
        check("hook-asap", "chmod:/tmp/x rwx", Err("octal mode"));
        check(
            "hook-master-start",
            "unix_signal:15",
            Err("SIGNUM FUNCTION"),
        );
        check(
            "hook-master-start",
            "unix_signal:12 stats",
            Err("handles only signals"),
        );
        check(
            "hook-master-start",
            "unix_signal:15 my_func",
            Err("cannot bind `my_func`"),
        );
        check(
            "hook-post-fork",
            "unix_signal:15 kill_them_all",
            Err("hook-master-start"),
        );
        check("exec-asap", " ", Err("expected a command"));
    }

    #[test]
    fn private_and_touch() {
        let hook = parse("hook-asap", "!exec:echo secret").unwrap();
        assert!(hook.private);
        assert_eq!(hook.action, exec("echo secret"));
        let hook = parse("hook-touch", "/tmp/flag print:touched").unwrap();
        assert_eq!(hook.touch, Some(PathBuf::from("/tmp/flag")));
        assert_eq!(hook.action, HookAction::Print("touched".into()));
        assert!(parse("hook-touch", "print:x").is_err());
    }

    #[test]
    fn phases() {
        assert_eq!(
            HookPhase::of_option("hook-accepting1-once"),
            Some((HookPhase::Accepting1Once, false))
        );
        assert_eq!(
            HookPhase::of_option("exec-post-app"),
            Some((HookPhase::PostApp, true))
        );
        assert_eq!(HookPhase::of_option("exec-post-fork"), None);
        assert!(!HookPhase::Touch.fatal());
        assert!(HookPhase::MasterStart.fatal());
    }
}
