//! The app loaders besides files and modules: `eval` (code run as a module, as uWSGI's
//! `uwsgi_eval_loader`) and `paste` (paste.deploy's `loadapp`, as `uwsgi_paste_loader`).
//!
//! Each returns the callable and a description for logs; it does no I/O of its own beyond
//! what the Python code it runs does.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::app::{format_exception, LoadAppError};

/// Runs `code` as the body of a new module `uwsgi_eval_config` and returns its `callable`.
pub(crate) fn eval_app(
    py: Python<'_>,
    code: &str,
    callable: &str,
) -> Result<(Py<PyAny>, String), LoadAppError> {
    let source_name = "eval".to_string();
    let import_error = |e: PyErr| LoadAppError::Import {
        source_name: source_name.clone(),
        traceback: format_exception(py, &e),
    };
    let module = py
        .import("types")
        .and_then(|types| types.call_method1("ModuleType", ("uwsgi_eval_config",)))
        .map_err(import_error)?;
    let globals = module
        .getattr("__dict__")
        .and_then(|d| d.cast_into::<PyDict>().map_err(PyErr::from))
        .map_err(import_error)?;
    let code_text = std::ffi::CString::new(code).map_err(|_| LoadAppError::Import {
        source_name: source_name.clone(),
        traceback: "the `eval` code contains a NUL byte".to_string(),
    })?;
    py.import("sys")
        .and_then(|sys| {
            sys.getattr("modules")?
                .set_item("uwsgi_eval_config", &module)
        })
        .map_err(import_error)?;
    py.run(&code_text, Some(&globals), None)
        .map_err(import_error)?;
    let object =
        globals
            .get_item(callable)
            .ok()
            .flatten()
            .ok_or_else(|| LoadAppError::NoCallable {
                source_name: source_name.clone(),
                callable: callable.to_string(),
            })?;
    if !object.is_callable() {
        return Err(LoadAppError::NotCallable {
            source_name,
            callable: callable.to_string(),
            type_name: object
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default(),
        });
    }
    Ok((object.unbind(), format!("eval:{callable}")))
}

/// `paste.deploy.loadapp(uri)`, after `logging.config.fileConfig` of the file with
/// `paste-logger`.
pub(crate) fn paste_app(
    py: Python<'_>,
    uri: &str,
    logger: bool,
) -> Result<(Py<PyAny>, String), LoadAppError> {
    let import_error = |e: PyErr| LoadAppError::Import {
        source_name: uri.to_string(),
        traceback: format_exception(py, &e),
    };
    if logger {
        let file = uri.strip_prefix("config:").unwrap_or(uri);
        py.import("logging.config")
            .and_then(|config| config.call_method1("fileConfig", (file,)))
            .map_err(import_error)?;
    }
    let app = py
        .import("paste.deploy")
        .and_then(|deploy| deploy.call_method1("loadapp", (uri,)))
        .map_err(import_error)?;
    Ok((app.unbind(), format!("paste:{uri}")))
}
