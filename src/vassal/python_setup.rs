//! The interpreter options and app spec a config asks for, built in one place for the
//! master, lazy workers and `--check-config`. It only translates; the python module acts.

use crate::config::Config;
use crate::python::{AppSpec, InterpreterOptions};

pub fn interpreter_options(config: &Config) -> InterpreterOptions {
    let extra = &config.extra;
    InterpreterOptions {
        home: config.home.clone(),
        pythonpath: config
            .pythonpath
            .iter()
            .flat_map(|entry| expand_pythonpath(entry))
            .collect(),
        optimize: extra.optimize,
        program_name: extra.py_programname.clone(),
        argv: extra.pyargv.clone(),
        executable: extra.py_executable.clone(),
        no_site: config.no_site,
    }
}

/// A `pythonpath` entry is a glob pattern, as in uWSGI's python plugin
/// (`pythonpath = /usr/local/lib*/python3*/site-packages`): each match in order, or the
/// entry itself when nothing matches.
fn expand_pythonpath(entry: &std::path::Path) -> Vec<std::path::PathBuf> {
    let text = entry.to_string_lossy();
    if !text.contains(['*', '?', '[']) {
        return vec![entry.to_path_buf()];
    }
    match crate::sys::glob::glob(&text) {
        Ok(found) if !found.is_empty() => found,
        _ => vec![entry.to_path_buf()],
    }
}

pub fn app_spec(config: &Config) -> AppSpec {
    let extra = &config.extra;
    AppSpec {
        wsgi_file: config.wsgi_file.clone(),
        module: config.module.clone(),
        callable: config.callable.clone(),
        mounts: config.mount.clone(),
        imports: extra
            .shared_imports
            .iter()
            .chain(&extra.imports)
            .cloned()
            .collect(),
        eval: extra.eval.clone(),
        paste: extra.paste.clone(),
        paste_logger: extra.paste_logger,
        chdir_after: extra.chdir2.clone(),
        raw: config.python_raw.clone(),
    }
}

/// Whether the config names an app at all (`--check-config` imports it only then).
pub fn names_an_app(config: &Config) -> bool {
    config.wsgi_file.is_some()
        || config.module.is_some()
        || !config.mount.is_empty()
        || config.extra.eval.is_some()
        || config.extra.paste.is_some()
        || config.python_raw.is_some()
}
