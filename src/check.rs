//! `--check-config`: the config parsed (that happened before we got here); now prove the
//! app imports, in this process, without binding anything or forking.

use crate::config::Config;
use crate::python;
use crate::vassal::python_setup;

#[derive(Debug, thiserror::Error)]
pub enum CheckConfigError {
    #[error("cannot change directory to `{}` (`chdir`)", .0.display())]
    Chdir(std::path::PathBuf, #[source] std::io::Error),
    #[error(transparent)]
    Python(#[from] python::InitPythonError),
    #[error(transparent)]
    App(#[from] python::LoadAppError),
}

impl CheckConfigError {
    /// 1 for any failure, as `--check-config` promises (scripts test `$? -eq 0`); the log
    /// says which.
    pub fn exit_code(&self) -> i32 {
        crate::vassal::exit::CONFIG
    }
}

pub fn check_config(config: &Config) -> Result<(), CheckConfigError> {
    if let Some(dir) = &config.chdir {
        std::env::set_current_dir(dir).map_err(|e| CheckConfigError::Chdir(dir.clone(), e))?;
    }
    for (key, value) in &config.env {
        std::env::set_var(key, value);
    }
    if python_setup::names_an_app(config) {
        python::initialize(&python_setup::interpreter_options(config))?;
        let app = python::load_app(&python_setup::app_spec(config))?;
        tracing::info!(app = %app.description, "configuration and app OK");
    } else {
        tracing::info!("configuration OK (no app configured)");
    }
    Ok(())
}
