//! uWSGI's RPC, locally (reference §8.2): `register_rpc(name, func)`, `rpc(node, name,
//! *args)` and `call(name, *args)` with an empty node call the function in this process, as
//! `uwsgidecorators`' `@rpc` registers it; `rpc_list()`. Remote nodes are not supported.
//! Also `setprocname()`.

use std::sync::OnceLock;

use pyo3::exceptions::{PyNotImplementedError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyModule, PyTuple};

static FUNCTIONS: OnceLock<Py<PyDict>> = OnceLock::new();

fn functions(py: Python<'_>) -> &Bound<'_, PyDict> {
    FUNCTIONS.get_or_init(|| PyDict::new(py).unbind()).bind(py)
}

/// `uwsgi.register_rpc(name, func[, argc])`.
#[pyfunction]
#[pyo3(signature = (name, function, argc = 0))]
fn register_rpc(
    py: Python<'_>,
    name: &str,
    function: &Bound<'_, PyAny>,
    argc: u8,
) -> PyResult<bool> {
    let _ = argc;
    if !function.is_callable() {
        return Err(PyValueError::new_err("the rpc function must be callable"));
    }
    functions(py).set_item(name, function)?;
    Ok(true)
}

fn call_local<'py>(
    py: Python<'py>,
    name: &str,
    args: &Bound<'py, PyTuple>,
) -> PyResult<Bound<'py, PyAny>> {
    let Some(function) = functions(py).get_item(name)? else {
        return Err(PyValueError::new_err(format!(
            "unable to call rpc function `{name}`"
        )));
    };
    let result = function.call1(args)?;
    // uWSGI's RPC answers bytes; text becomes UTF-8, None stays None.
    if let Ok(text) = result.extract::<String>() {
        return Ok(PyBytes::new(py, text.as_bytes()).into_any());
    }
    Ok(result)
}

/// `uwsgi.rpc(node, name, *args)`: an empty node (or None) calls the local function.
#[pyfunction]
#[pyo3(signature = (node, name, *args))]
fn rpc<'py>(
    py: Python<'py>,
    node: Option<&Bound<'py, PyAny>>,
    name: &str,
    args: &Bound<'py, PyTuple>,
) -> PyResult<Bound<'py, PyAny>> {
    let local = match node {
        None => true,
        Some(node) if node.is_none() => true,
        Some(node) => node.extract::<Vec<u8>>().map_or_else(
            |_| node.extract::<String>().is_ok_and(|s| s.is_empty()),
            |b| b.is_empty(),
        ),
    };
    if !local {
        return Err(PyNotImplementedError::new_err(
            "kaiser calls rpc functions locally only (give an empty node)",
        ));
    }
    call_local(py, name, args)
}

/// `uwsgi.call(name, *args)`: a local rpc function (`name@node` is not supported).
#[pyfunction]
#[pyo3(signature = (name, *args))]
fn call<'py>(
    py: Python<'py>,
    name: &str,
    args: &Bound<'py, PyTuple>,
) -> PyResult<Bound<'py, PyAny>> {
    if name.contains('@') {
        return Err(PyNotImplementedError::new_err(
            "kaiser calls rpc functions locally only",
        ));
    }
    call_local(py, name, args)
}

/// `uwsgi.rpc_list()`: the registered names (bytes).
#[pyfunction]
fn rpc_list(py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
    let names: Vec<Bound<'_, PyBytes>> = functions(py)
        .keys()
        .iter()
        .filter_map(|k| k.extract::<String>().ok())
        .map(|k| PyBytes::new(py, k.as_bytes()))
        .collect();
    PyTuple::new(py, names)
}

/// `uwsgi.setprocname(name)`: the process's name as `ps -o comm` and `top` show it (the
/// kernel keeps 15 bytes).
#[pyfunction]
fn setprocname(name: &str) {
    crate::sys::process::set_name(name);
}

pub(crate) fn add_to_module(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(register_rpc, module)?)?;
    module.add_function(wrap_pyfunction!(rpc, module)?)?;
    module.add_function(wrap_pyfunction!(call, module)?)?;
    module.add_function(wrap_pyfunction!(rpc_list, module)?)?;
    module.add_function(wrap_pyfunction!(setprocname, module)?)?;
    Ok(())
}
