//! A mule: a process forked from the vassal master, beside the workers, that runs a script
//! (`mule = task.py`) or waits for messages from `uwsgi.mule_msg()` and hands them to the
//! app's `uwsgi.mule_msg_hook` (reference §8.2). `uwsgidecorators`' `@mule`, `@muleloop`,
//! `@mulemsg` and `@farm` run from `uwsgi.post_fork_hook`, called first.
//!
//! It serves no request and opens no socket; the master respawns it when it ends and stops it
//! with the vassal (its entry in the process table, `vassal/process_table.rs`).

use std::os::fd::RawFd;

use crate::python::{self, InterpreterOptions, ModuleInfo};
use crate::sys;

/// How the mule gets Python: forked with the app, or its own interpreter (`lazy-apps`).
pub enum PythonSource {
    Preloaded,
    Lazy {
        interpreter: InterpreterOptions,
        module: ModuleInfo,
    },
}

pub struct MuleSetup {
    /// 1-based.
    pub id: u32,
    /// A script to run, or empty for the message loop.
    pub script: String,
    pub master_pid: sys::process::Pid,
    pub close_fds: Vec<RawFd>,
    pub python: PythonSource,
    /// The vassal's hook lines; the mule runs the `as-mule` ones when it starts.
    pub hooks: Vec<crate::config::hooks::Hook>,
}

/// Runs the mule in the freshly forked child. Never returns.
pub fn run(setup: MuleSetup) -> ! {
    // kaiser's signals back to their defaults: SIGTERM and SIGINT end a mule at once.
    sys::process::become_child_of(setup.master_pid, &setup.close_fds);
    let pid = sys::process::getpid();
    let span = tracing::info_span!("mule", id = setup.id, pid);
    let _entered = span.enter();
    python::set_mule_id(setup.id);
    sys::process::set_name(&format!("kaiser mule {}", setup.id));
    if let PythonSource::Lazy {
        interpreter,
        module,
    } = &setup.python
    {
        if let Err(err) = python::initialize(interpreter) {
            tracing::error!("mule cannot start Python: {err}");
            sys::process::exit_now(1);
        }
        if let Err(err) = python::install_uwsgi_module(module.clone()) {
            tracing::error!("mule cannot set up `uwsgi`: {err}");
            sys::process::exit_now(1);
        }
    }
    // uWSGI's `hook-as-mule`: a failure ends this mule (the master respawns it, throttled).
    if let Err(err) = crate::hooks::run_phase(&setup.hooks, crate::config::hooks::HookPhase::AsMule)
    {
        tracing::error!("{}; the mule exits", crate::hooks::error_chain(&err));
        sys::process::exit_now(1);
    }
    tracing::info!(script = %setup.script, "mule ready");
    python::run_post_fork_hook();
    if setup.script.is_empty() {
        python::run_mule_loop();
    }
    let code = match python::run_mule_script(&setup.script) {
        Ok(()) => 0,
        Err(err) => {
            tracing::error!(script = %setup.script, "the mule's script raised:\n{err}");
            1
        }
    };
    sys::process::exit_now(code)
}
