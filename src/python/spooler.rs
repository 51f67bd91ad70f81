//! The Python side of the spooler: `uwsgi.spool()` and its friends, the dict a task is handed
//! to `uwsgi.spooler` as (reference §8.4, with uWSGI's types on Python 3), and the imports
//! `spooler-import` asks for.
//!
//! It does no file I/O itself: writing and listing spool files go through [`SpoolerApi`],
//! which the vassal installs before the app is imported (`spooler::Handle`), and the GIL is
//! released around those calls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyModule, PyString, PyTuple};

/// Arguments of a task: (key, value) pairs, in order.
pub type SpoolVars = Vec<(Vec<u8>, Vec<u8>)>;

/// What the spool directories offer to Python, implemented outside `python/`.
pub trait SpoolerApi: Send + Sync {
    /// The directories this instance serves, then the external ones (`uwsgi.spoolers`).
    fn dirs(&self) -> Vec<String>;
    /// Writes a task; its path, or why not.
    fn spool(&self, vars: SpoolVars, body: Vec<u8>) -> Result<String, String>;
    /// The task files waiting in the first spooler's directory.
    fn jobs(&self) -> Vec<String>;
    /// Every spooler process's pid (0 while one is being respawned).
    fn pids(&self) -> Vec<i32>;
    fn set_frequency(&self, seconds: u64);
    /// A task file's arguments and body.
    fn read_task(&self, path: &str) -> Option<(SpoolVars, Vec<u8>)>;
}

static API: OnceLock<Box<dyn SpoolerApi>> = OnceLock::new();
static I_AM_THE_SPOOLER: AtomicBool = AtomicBool::new(false);

/// Called by the master before the app is imported; children inherit it.
pub fn set_spooler_api(api: Box<dyn SpoolerApi>) {
    let _ = API.set(api);
}

/// Called in a spooler process after fork: `uwsgi.i_am_the_spooler()` is then true, and
/// `uwsgi.lock()` refuses, as in uWSGI.
pub fn set_i_am_the_spooler() {
    I_AM_THE_SPOOLER.store(true, Ordering::Relaxed);
}

pub(crate) fn i_am_the_spooler_now() -> bool {
    I_AM_THE_SPOOLER.load(Ordering::Relaxed)
}

fn api() -> PyResult<&'static dyn SpoolerApi> {
    API.get()
        .map(|api| api.as_ref())
        .ok_or_else(|| PyValueError::new_err("no spooler configured (add `spooler = DIR`)"))
}

/// A key or value as the spool file holds it: bytes as they are, text as UTF-8, anything
/// else as its `str()` (uWSGI takes `bytes(value)`, which turns `5` into five NUL bytes).
fn to_bytes(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(text.to_str()?.as_bytes().to_vec());
    }
    Ok(value.str()?.to_str()?.as_bytes().to_vec())
}

/// `uwsgi.spool(dict)` / `uwsgi.spool(**kwargs)`, alias `send_to_spooler`: writes a task and
/// returns its path (bytes). `body` (bytes) becomes the file's raw tail; `spooler`,
/// `priority` and `at` choose the directory, the priority subdirectory and the earliest run
/// time, and stay in the arguments, as in uWSGI.
#[pyfunction]
#[pyo3(signature = (*args, **kwargs))]
fn spool<'py>(
    py: Python<'py>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let api = api()?;
    let dict = match args.get_item(0) {
        Ok(first) => first.cast_into::<PyDict>().map_err(|_| {
            PyValueError::new_err("The argument of spooler callable must be a dictionary")
        })?,
        Err(_) => match kwargs {
            Some(kwargs) => kwargs.clone(),
            None => {
                return Err(PyValueError::new_err(
                    "The argument of spooler callable must be a dictionary",
                ))
            }
        },
    };
    let mut vars = Vec::with_capacity(dict.len());
    let mut body = Vec::new();
    for (key, value) in dict.iter() {
        let key = to_bytes(&key)?;
        if key == b"body" {
            if let Ok(bytes) = value.cast::<PyBytes>() {
                body = bytes.as_bytes().to_vec();
                continue;
            }
        }
        vars.push((key, to_bytes(&value)?));
    }
    let written = py.detach(|| api.spool(vars, body));
    match written {
        Ok(path) => Ok(PyBytes::new(py, path.as_bytes())),
        Err(why) => {
            tracing::error!("[uwsgi-spooler] {why}");
            Err(PyValueError::new_err("unable to spool job"))
        }
    }
}

/// `uwsgi.spooler_jobs()`: the task files waiting in the first spooler's directory (bytes).
#[pyfunction]
fn spooler_jobs(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let jobs = match API.get() {
        Some(api) => py.detach(|| api.jobs()),
        None => Vec::new(),
    };
    PyList::new(py, jobs.iter().map(|job| PyBytes::new(py, job.as_bytes())))
}

/// `uwsgi.spooler_pid()`: the first spooler's pid, 0 without one.
#[pyfunction]
fn spooler_pid() -> i32 {
    API.get()
        .and_then(|api| api.pids().first().copied())
        .unwrap_or(0)
}

#[pyfunction]
fn spooler_pids() -> Vec<i32> {
    API.get().map(|api| api.pids()).unwrap_or_default()
}

/// `uwsgi.set_spooler_frequency(N)`: every spooler rescans at least every N seconds.
#[pyfunction]
fn set_spooler_frequency(seconds: u64) -> PyResult<bool> {
    api()?.set_frequency(seconds);
    Ok(true)
}

/// `uwsgi.i_am_the_spooler()`: True in a spooler, None elsewhere (uWSGI's answers).
#[pyfunction]
fn i_am_the_spooler() -> Option<bool> {
    i_am_the_spooler_now().then_some(true)
}

/// `uwsgi.spooler_get_task(path)`: the dict the task would be run with, or None.
#[pyfunction]
fn spooler_get_task<'py>(py: Python<'py>, path: &str) -> PyResult<Option<Bound<'py, PyDict>>> {
    let Some(api) = API.get() else {
        return Ok(None);
    };
    let Some((vars, body)) = py.detach(|| api.read_task(path)) else {
        return Ok(None);
    };
    let name = std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let borrowed: Vec<(&[u8], &[u8])> = vars
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    task_dict(py, &name, &borrowed, &body).map(Some)
}

/// The dict `uwsgi.spooler` gets, as uWSGI builds it on Python 3: the task's own keys and
/// values as bytes, `spooler_task_name` (the file's name) and, when there is one, `body`
/// under str keys with bytes values.
fn task_dict<'py>(
    py: Python<'py>,
    name: &str,
    vars: &[(&[u8], &[u8])],
    body: &[u8],
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (key, value) in vars {
        dict.set_item(PyBytes::new(py, key), PyBytes::new(py, value))?;
    }
    dict.set_item("spooler_task_name", PyBytes::new(py, name.as_bytes()))?;
    if !body.is_empty() {
        dict.set_item("body", PyBytes::new(py, body))?;
    }
    Ok(dict)
}

/// What running one task came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskVerdict {
    /// `SPOOL_OK` (-2): the file is removed.
    Done,
    /// `SPOOL_RETRY` (-1), an exception or a result that is not an int: the file stays and
    /// runs again at the next scan.
    Retry,
    /// `SPOOL_IGNORE` (0): not handled; the file stays and the task is not counted.
    Ignored,
    /// No `uwsgi.spooler` is set in this process (the app was not imported here and no
    /// `spooler-import` set one): the file stays.
    NoHandler,
    /// Another int: counted, and the file stays (uWSGI re-spools it).
    Other(i64),
}

/// Runs one task through `uwsgi.spooler`. A Python exception is logged with its traceback.
pub fn run_spooler_task(name: &str, vars: &[(&[u8], &[u8])], body: &[u8]) -> TaskVerdict {
    Python::attach(|py| {
        let handler = py
            .import("sys")
            .and_then(|sys| sys.getattr("modules"))
            .and_then(|modules| modules.get_item("uwsgi"))
            .and_then(|uwsgi| uwsgi.getattr("spooler"));
        let handler = match handler {
            Ok(handler) if handler.is_callable() => handler,
            _ => return TaskVerdict::NoHandler,
        };
        let result = task_dict(py, name, vars, body).and_then(|dict| handler.call1((dict,)));
        match result {
            Ok(value) => match value.extract::<i64>() {
                Ok(-2) => TaskVerdict::Done,
                Ok(-1) => TaskVerdict::Retry,
                Ok(0) => TaskVerdict::Ignored,
                Ok(other) => TaskVerdict::Other(other),
                Err(_) => TaskVerdict::Retry,
            },
            Err(err) => {
                tracing::error!(
                    task = name,
                    "the spooler task raised; it will run again:\n{}",
                    super::app::format_exception(py, &err)
                );
                TaskVerdict::Retry
            }
        }
    })
}

/// `spooler-import`: each entry is a module name, or a `.py` file loaded as a module named
/// after the file (uWSGI's rule), registered in `sys.modules` so pickled references to its
/// functions resolve.
pub fn import_spooler_modules(imports: &[String]) -> Result<(), String> {
    Python::attach(|py| {
        for entry in imports {
            let imported = if entry.ends_with(".py") {
                import_file(py, entry)
            } else {
                py.import(entry.as_str()).map(|_| ())
            };
            if let Err(err) = imported {
                return Err(format!(
                    "`spooler-import` `{entry}` failed:\n{}",
                    super::app::format_exception(py, &err)
                ));
            }
        }
        Ok(())
    })
}

fn import_file(py: Python<'_>, path: &str) -> PyResult<()> {
    let name = std::path::Path::new(path)
        .file_stem()
        .map(|stem| stem.to_string_lossy().replace(['.', '-'], "_"))
        .unwrap_or_else(|| "spooler_import".to_string());
    let util = py.import("importlib.util")?;
    let spec = util.call_method1("spec_from_file_location", (name.as_str(), path))?;
    if spec.is_none() {
        return Err(PyTypeError::new_err(format!("cannot load `{path}`")));
    }
    let module = util.call_method1("module_from_spec", (&spec,))?;
    py.import("sys")?
        .getattr("modules")?
        .set_item(name.as_str(), &module)?;
    spec.getattr("loader")?
        .call_method1("exec_module", (&module,))?;
    Ok(())
}

/// Adds the spooler's functions and `spoolers` to `import uwsgi`.
pub(crate) fn add_to_module(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    let dirs: Vec<Bound<'_, PyBytes>> = API
        .get()
        .map(|api| api.dirs())
        .unwrap_or_default()
        .iter()
        .map(|dir| PyBytes::new(py, dir.as_bytes()))
        .collect();
    module.add("spoolers", PyTuple::new(py, dirs)?)?;
    let spool = wrap_pyfunction!(spool, module)?;
    module.add("spool", &spool)?;
    module.add("send_to_spooler", &spool)?;
    module.add_function(wrap_pyfunction!(spooler_jobs, module)?)?;
    module.add_function(wrap_pyfunction!(spooler_pid, module)?)?;
    module.add_function(wrap_pyfunction!(spooler_pids, module)?)?;
    module.add_function(wrap_pyfunction!(set_spooler_frequency, module)?)?;
    module.add_function(wrap_pyfunction!(i_am_the_spooler, module)?)?;
    module.add_function(wrap_pyfunction!(spooler_get_task, module)?)?;
    Ok(())
}
