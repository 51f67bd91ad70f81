//! `--check-config`: the config parsed (that happened before we got here); now prove the
//! app imports, in this process, without binding anything or forking.

use crate::config::Config;
use crate::python::{self, ModuleInfo};
use crate::vassal::python_setup;

#[derive(Debug, thiserror::Error)]
pub enum CheckConfigError {
    #[error("cannot change directory to `{}` (`chdir`)", .0.display())]
    Chdir(std::path::PathBuf, #[source] std::io::Error),
    #[error(transparent)]
    Python(#[from] python::InitPythonError),
    #[error(transparent)]
    App(#[from] python::LoadAppError),
    #[error("setting up the `uwsgi` module failed: {0}")]
    Module(String),
}

impl CheckConfigError {
    /// 1 for any failure, as `--check-config` promises (scripts test `$? -eq 0`); the log
    /// says which.
    pub fn exit_code(&self) -> i32 {
        crate::vassal::exit::CONFIG
    }
}

/// `options`: the effective options, for `uwsgi.opt`.
pub fn check_config(config: &Config, options: &[(String, String)]) -> Result<(), CheckConfigError> {
    if let Some(dir) = &config.chdir {
        std::env::set_current_dir(dir).map_err(|e| CheckConfigError::Chdir(dir.clone(), e))?;
    }
    for (key, value) in &config.env {
        std::env::set_var(key, value);
    }
    if python_setup::names_an_app(config) {
        python::initialize(&python_setup::interpreter_options(config))?;
        install_uwsgi_module(config, options)?;
        let app = python::load_app(&python_setup::app_spec(config))?;
        tracing::info!(app = %app.description, "configuration and app OK");
    } else {
        tracing::info!("configuration OK (no app configured)");
    }
    Ok(())
}

/// The app imports `uwsgi` (and `uwsgidecorators`, which registers timers and signals at
/// import time) as it would in the master: the module, the signal table, the locks and the
/// caches exist here too. `masterpid()` is this process, so `uwsgidecorators`' "you have to
/// enable the uWSGI master process" check passes whether a master runs the check during a
/// reload or a person runs it by hand.
fn install_uwsgi_module(
    config: &Config,
    options: &[(String, String)],
) -> Result<(), CheckConfigError> {
    let module_error = |e: &dyn std::fmt::Display| CheckConfigError::Module(e.to_string());
    crate::signals::create(config.processes.max(1) as usize, 0, config.mules.len())
        .map_err(|e| module_error(&e))?;
    python::create_locks(config.locks).map_err(|e| module_error(&e))?;
    python::create_caches(&config.caches()).map_err(|e| module_error(&e))?;
    python::install_uwsgi_module(ModuleInfo {
        numproc: config.processes,
        master_pid: crate::sys::process::getpid(),
        buffer_size: config.buffer_size,
        started_on: crate::sys::clock::unix_secs(),
        threads: config.threads,
        options: options.to_vec(),
    })
    .map_err(|e| module_error(&e))
}
