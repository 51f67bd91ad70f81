//! The master's process set-up beyond binding and the privilege drop itself, in uWSGI's
//! order (`uwsgi_as_root` and friends): `immediate-uid`/`-gid` first thing; then, after the
//! sockets are bound, `limit-as`, `pidfile`/`safe-pidfile`, Python's initialisation when a
//! `chroot` follows (uWSGI initialises Python before it too, so the standard library need
//! not be inside the jail), `chroot`; the supplementary groups of the drop (`initgroups`
//! unless `no-initgroups`, or exactly the `add-gid` groups); and after the drop,
//! `pidfile2`/`safe-pidfile2`. Also `unenv`, and the CPUs `cpu-affinity` gives a worker.
//!
//! It must not bind sockets or touch the app: those stay in `master/mod.rs`.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::python::{self, InterpreterOptions};
use crate::sys;
use crate::sys::privileges::Groups;

#[derive(Debug, thiserror::Error)]
pub enum ProcessSetupError {
    #[error("cannot drop privileges to `{spec}` (`{option}`)")]
    Immediate {
        option: &'static str,
        spec: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot limit the address space to {megabytes} MB (`limit-as`)")]
    LimitAs {
        megabytes: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write pidfile `{}` (`{option}`)", .path.display())]
    Pidfile {
        option: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot chroot to `{}` (`chroot`)", .path.display())]
    Chroot {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot resolve group `{spec}` (`add-gid`)")]
    AddGid {
        spec: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Python(#[from] python::InitPythonError),
}

/// `immediate-gid` then `immediate-uid`, before anything is bound or opened.
pub fn immediate(config: &Config) -> Result<(), ProcessSetupError> {
    let extra = &config.extra;
    // A master re-executed for a reload already runs as the user it dropped to.
    if super::is_reexec() || extra.immediate_uid.is_none() && extra.immediate_gid.is_none() {
        return Ok(());
    }
    let failed = |option, spec: &String| {
        let spec = spec.clone();
        move |source| ProcessSetupError::Immediate {
            option,
            spec,
            source,
        }
    };
    let gid = match &extra.immediate_gid {
        Some(spec) => {
            Some(sys::process::lookup_group(spec).map_err(failed("immediate-gid", spec))?)
        }
        None => None,
    };
    let uid = match &extra.immediate_uid {
        Some(spec) => Some(
            sys::process::lookup_user(spec)
                .map_err(failed("immediate-uid", spec))?
                .0,
        ),
        None => None,
    };
    if let (Some(gid), Some(spec)) = (gid, &extra.immediate_gid) {
        sys::privileges::drop_to(None, Some(gid), &Groups::Clear)
            .map_err(failed("immediate-gid", spec))?;
    }
    if let (Some(uid), Some(spec)) = (uid, &extra.immediate_uid) {
        sys::privileges::drop_to(Some(uid), None, &Groups::Keep)
            .map_err(failed("immediate-uid", spec))?;
    }
    tracing::info!(
        uid = sys::process::uid(),
        gid = sys::process::gid(),
        "immediate-uid/-gid: dropped privileges before binding"
    );
    Ok(())
}

/// After binding, before the privilege drop: `limit-as`, `pidfile`, `safe-pidfile`.
pub fn before_drop(config: &Config) -> Result<(), ProcessSetupError> {
    let extra = &config.extra;
    if extra.limit_as > 0 {
        sys::privileges::limit_address_space(extra.limit_as).map_err(|source| {
            ProcessSetupError::LimitAs {
                megabytes: extra.limit_as / (1024 * 1024),
                source,
            }
        })?;
    }
    // As uWSGI, not again on a reload: the pid is the same, and the master may no longer
    // have the rights to write where root did.
    if super::is_reexec() {
        return Ok(());
    }
    if let Some(path) = &config.pidfile {
        write_pidfile("pidfile", path, false)?;
    }
    if let Some(path) = &extra.safe_pidfile {
        write_pidfile("safe-pidfile", path, true)?;
    }
    Ok(())
}

/// `chroot`, once users and groups are resolved and before they are set (it needs root):
/// Python is initialised first unless the app is loaded lazily.
pub fn chroot(config: &Config, interpreter: &InterpreterOptions) -> Result<(), ProcessSetupError> {
    // A master re-executed for a reload is inside the jail already.
    if super::is_reexec() {
        return Ok(());
    }
    if let Some(dir) = &config.extra.chroot {
        if !config.lazy_apps {
            python::initialize(interpreter)?;
        }
        // `/proc` is usually not inside the jail; fork's thread check reads it.
        let _ = sys::fork::keep_thread_count_source();
        sys::privileges::chroot(dir).map_err(|source| ProcessSetupError::Chroot {
            path: dir.clone(),
            source,
        })?;
        tracing::info!(path = %dir.display(), "chroot");
    }
    Ok(())
}

/// After the privilege drop: `pidfile2`, `safe-pidfile2`.
pub fn after_drop(config: &Config) -> Result<(), ProcessSetupError> {
    if super::is_reexec() {
        return Ok(());
    }
    if let Some(path) = &config.extra.pidfile2 {
        write_pidfile("pidfile2", path, false)?;
    }
    if let Some(path) = &config.extra.safe_pidfile2 {
        write_pidfile("safe-pidfile2", path, true)?;
    }
    Ok(())
}

/// The pidfiles this config writes, for `vacuum` to remove.
pub fn pidfiles(config: &Config) -> Vec<&Path> {
    let extra = &config.extra;
    [
        &config.pidfile,
        &extra.pidfile2,
        &extra.safe_pidfile,
        &extra.safe_pidfile2,
    ]
    .into_iter()
    .flatten()
    .map(PathBuf::as_path)
    .collect()
}

/// Writes this process's pid; `safe` writes a temporary file beside it and renames it into
/// place, so a reader never sees a partial pidfile.
fn write_pidfile(option: &'static str, path: &Path, safe: bool) -> Result<(), ProcessSetupError> {
    let text = format!("{}\n", sys::process::getpid());
    let written = if safe {
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(format!(".tmp{}", sys::process::getpid()));
        let temporary = PathBuf::from(temporary);
        std::fs::write(&temporary, &text).and_then(|()| std::fs::rename(&temporary, path))
    } else {
        std::fs::write(path, &text)
    };
    written.map_err(|source| ProcessSetupError::Pidfile {
        option,
        path: path.to_path_buf(),
        source,
    })
}

/// The supplementary groups for dropping to `user` (its name) with primary group `gid`;
/// `changing_gid` says whether the drop sets a group at all (a non-root master dropping
/// only to its own uid cannot change its groups, and keeps them).
pub fn groups(
    config: &Config,
    user: Option<(&str, u32)>,
    changing_gid: bool,
) -> Result<Groups, ProcessSetupError> {
    let extra = &config.extra;
    if !extra.add_gid.is_empty() {
        let mut list = Vec::new();
        for spec in &extra.add_gid {
            list.push(sys::process::lookup_group(spec).map_err(|source| {
                ProcessSetupError::AddGid {
                    spec: spec.clone(),
                    source,
                }
            })?);
        }
        return Ok(Groups::List(list));
    }
    Ok(match user {
        Some((name, gid)) if !extra.no_initgroups => {
            Groups::List(sys::privileges::user_groups(name, gid).map_err(|source| {
                ProcessSetupError::AddGid {
                    spec: format!("groups of {name}"),
                    source,
                }
            })?)
        }
        _ if changing_gid => Groups::Clear,
        _ => Groups::Keep,
    })
}

/// Whether a non-root process already has the uid and gid a drop asks for: a master
/// re-executed for a reload, which could not drop again (only root may set groups), and need
/// not. uWSGI skips its whole root set-up when not root.
pub fn already_dropped(uid: Option<u32>, gid: Option<u32>) -> bool {
    let now_uid = sys::process::uid();
    now_uid != 0
        && uid.is_none_or(|uid| uid == now_uid)
        && gid.is_none_or(|gid| gid == sys::process::gid())
}

/// `unenv`: removes the variables, after `env` set its own.
pub fn apply_unenv(config: &Config) {
    for name in &config.extra.unenv {
        std::env::remove_var(name);
    }
}

/// The CPUs of worker `id` with `cpu-affinity = per_worker` on `cpu_count` CPUs, as
/// uWSGI's `uwsgi_set_cpu_affinity`: worker 1 from CPU 0, each next one from where the
/// previous stopped, wrapping round.
pub fn cpus_for(per_worker: u32, id: u32, cpu_count: u32) -> Vec<usize> {
    if per_worker == 0 || cpu_count == 0 {
        return Vec::new();
    }
    let count = cpu_count as usize;
    let base = ((id.saturating_sub(1) as usize) * per_worker as usize) % count;
    (0..per_worker as usize)
        .map(|j| (base + j) % count)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_affinity_as_uwsgi() {
        assert_eq!(cpus_for(1, 1, 2), vec![0]);
        assert_eq!(cpus_for(1, 2, 2), vec![1]);
        assert_eq!(cpus_for(1, 3, 2), vec![0]);
        assert_eq!(cpus_for(2, 2, 4), vec![2, 3]);
        assert_eq!(cpus_for(3, 2, 4), vec![3, 0, 1]);
        assert_eq!(cpus_for(0, 1, 4), Vec::<usize>::new());
    }
}
