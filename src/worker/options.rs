//! The issue-15 options a worker applies itself: `cpu-affinity` when it starts, `reaper`
//! and `reload-on-exception` after each request, `skip-atexit` when it stops,
//! `wsgi-disable-file-wrapper`, `py-autoreload` (see `autoreload.rs`) and
//! `enable-proxy-protocol` (see `proxy_header.rs`).
//!
//! It must not decide anything the master decides: a worker that wants replacing asks.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::to_master::{Limit, ToMaster};
use super::Shared;
use crate::sys;

/// Per-request options, kept in [`super::Settings`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestOptions {
    /// `enable-proxy-protocol`: HTTP connections may start with a PROXY header.
    pub proxy_protocol: bool,
    /// `reaper`: reap exited children after each request.
    pub reaper: bool,
    /// `reload-on-exception`: ask for a replacement after a request in which the app raised.
    pub reload_on_exception: bool,
}

/// Per-process options, in [`super::WorkerSetup`].
#[derive(Debug, Clone, Default)]
pub struct ProcessOptions {
    /// `cpu-affinity`: the CPUs this worker runs on (empty: any).
    pub cpus: Vec<usize>,
    /// `skip-atexit`: a graceful stop does not run the app's exit handlers.
    pub skip_atexit: bool,
    /// `wsgi-disable-file-wrapper`.
    pub disable_file_wrapper: bool,
    /// `py-autoreload`: how often to check the loaded modules' files (zero: off).
    pub py_autoreload: Duration,
    /// `py-auto-reload-ignore`: modules (by name) whose files are not checked.
    pub py_autoreload_ignore: Vec<String>,
    /// `py-tracebacker`: the socket path, before the worker id.
    pub py_tracebacker: Option<std::path::PathBuf>,
}

/// First thing in the worker, before any thread exists, so every thread inherits it.
pub(crate) fn at_start(options: &ProcessOptions) {
    if !options.cpus.is_empty() {
        match sys::privileges::set_cpu_affinity(&options.cpus) {
            Ok(()) => tracing::debug!(cpus = ?options.cpus, "cpu-affinity"),
            Err(err) => {
                tracing::warn!(cpus = ?options.cpus, error = %err, "cpu-affinity: cannot pin the worker")
            }
        }
    }
}

/// After each request, on the request's thread: `reaper`, then `reload-on-exception`.
pub(crate) fn after_request(shared: &Shared, app_raised: bool) {
    let options = shared.settings.options;
    if options.reaper {
        // The app's children that exited; uWSGI's `--reaper` does the same `waitpid(-1)`.
        while let Ok(Some((pid, _))) = sys::process::try_wait_any() {
            tracing::debug!(pid, "reaper: reaped a child process");
        }
    }
    if options.reload_on_exception && app_raised {
        tracing::info!("reload-on-exception: the app raised; asking the master for a replacement");
        let message = ToMaster::Recycle {
            limit: Limit::Exception,
            value: shared.requests.load(Ordering::Relaxed),
            max: 0,
        };
        shared.recycling.ask(shared, message);
    }
}
