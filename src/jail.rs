//! The master's jail phase (uWSGI's `pre-jail`, `in-jail`, `post-jail` hooks and `unshare`,
//! `core/uwsgi.c` and `uwsgi_as_root` in `core/utils.c`), run once after `hook-asap`, before
//! the sockets are bound, in uWSGI's order:
//!
//! 1. `hook-pre-jail`/`exec-pre-jail`/`mount-pre-jail`: first start only (not after a reload's
//!    re-exec, which is already jailed);
//! 2. `hook-in-jail` …: every start;
//! 3. as root, first start only: `unshare` (new namespaces for the master, and so for every
//!    process it forks), then `hook-post-jail` … (only when `unshare` moved it, as uWSGI runs
//!    them only "in a jail"), then `unshare2`.
//!
//! `chroot` is `vassal::process_setup`'s, later. Hook failures are fatal, as in uWSGI. This
//! module decides the order; the actions are `crate::hooks`' and the system calls `sys::mount`'s.

use crate::config::hooks::HookPhase;
use crate::config::{jail, Config};
use crate::hooks::{self, RunHookError};
use crate::sys;

#[derive(Debug, thiserror::Error)]
pub enum EnterJailError {
    #[error(transparent)]
    Hook(#[from] RunHookError),
    #[error("cannot unshare `{names}` (`{option}`)")]
    Unshare {
        option: &'static str,
        names: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs the jail phase; `reloads` is how many times this master re-executed itself.
pub fn enter(config: &Config, reloads: u64) -> Result<(), EnterJailError> {
    let first_start = reloads == 0;
    if first_start {
        hooks::run_phase(&config.hooks, HookPhase::PreJail)?;
    }
    hooks::run_phase(&config.hooks, HookPhase::InJail)?;
    let unshare = config.unshare;
    let root = sys::process::uid() == 0;
    if !first_start || (unshare.before_post_jail == 0 && unshare.after_post_jail == 0) {
        return Ok(());
    }
    if !root {
        // uWSGI does all of this in `uwsgi_as_root`, which a non-root start skips.
        tracing::warn!(
            "`unshare` (and `hook-post-jail`) not applied: kaiser was not started as root (as in uWSGI)"
        );
        return Ok(());
    }
    if unshare.before_post_jail != 0 {
        apply("unshare", unshare.before_post_jail)?;
        hooks::run_phase(&config.hooks, HookPhase::PostJail)?;
    }
    if unshare.after_post_jail != 0 {
        apply("unshare2", unshare.after_post_jail)?;
    }
    Ok(())
}

fn apply(option: &'static str, mask: libc::c_int) -> Result<(), EnterJailError> {
    let names = jail::names(mask);
    sys::mount::unshare(mask).map_err(|source| EnterJailError::Unshare {
        option,
        names: names.clone(),
        source,
    })?;
    tracing::info!(namespaces = %names, "[linux-namespace] applied unshare()");
    Ok(())
}
