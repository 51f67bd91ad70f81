//! `uwsgi.cache_*` over the shared caches (`crate::cache`): the same names, arguments and
//! results as uWSGI's Python plugin (reference §8.2): `True` or `None` for writes, bytes or
//! `None` for reads, math on 8-byte native-endian integers. The first configured cache is
//! the default; a `name@server` (remote) cache is not supported and reads as missing.
//!
//! The GIL is released around each operation, which takes the cache's process-shared lock.

use std::sync::OnceLock;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyModule, PyString};

use crate::cache::{Cache, CacheError, CacheStats};
use crate::config::CacheSpec;

static CACHES: OnceLock<Vec<Cache>> = OnceLock::new();

/// Called by the master before the app is imported and before any fork.
pub fn create_caches(specs: &[CacheSpec]) -> std::io::Result<()> {
    if specs.is_empty() {
        return Ok(());
    }
    let caches = specs
        .iter()
        .map(Cache::new)
        .collect::<Result<Vec<_>, _>>()?;
    for cache in &caches {
        let stats = cache.stats();
        tracing::info!(
            cache = %stats.name,
            items = stats.max_items,
            blocksize = stats.blocksize,
            keysize = stats.keysize,
            "cache created"
        );
    }
    let _ = CACHES.set(caches);
    Ok(())
}

/// Removes expired items from every cache whose lock is free (the master, each second).
pub fn sweep_caches() {
    if let Some(caches) = CACHES.get() {
        let now = now();
        for cache in caches {
            cache.sweep(now);
        }
    }
}

/// Every cache's figures, for the stats document.
pub fn cache_stats() -> Vec<CacheStats> {
    CACHES
        .get()
        .map(|caches| caches.iter().map(Cache::stats).collect())
        .unwrap_or_default()
}

fn find(name: Option<&str>) -> Option<&'static Cache> {
    let caches = CACHES.get()?;
    match name {
        None | Some("") => caches.first(),
        Some(name) => caches.iter().find(|c| c.name == name),
    }
}

fn bytes_of(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(text.to_str()?.as_bytes().to_vec());
    }
    Ok(value.str()?.to_str()?.as_bytes().to_vec())
}

fn now() -> u64 {
    crate::sys::clock::unix_secs()
}

/// `True` on success, `None` otherwise, as uWSGI answers writes.
fn answer(py: Python<'_>, ok: bool) -> Py<PyAny> {
    if ok {
        true.into_pyobject(py)
            .map_or_else(|_| py.None(), |b| b.to_owned().into_any().unbind())
    } else {
        py.None()
    }
}

#[pyfunction]
#[pyo3(signature = (key, cache = None))]
fn cache_get<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    cache: Option<&str>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let key = bytes_of(key)?;
    let Some(cache) = find(cache) else {
        return Ok(None);
    };
    let value = py.detach(|| cache.get(&key, now()));
    Ok(value.map(|v| PyBytes::new(py, &v)))
}

fn write(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    expires: u64,
    cache: Option<&str>,
    overwrite: bool,
) -> PyResult<Py<PyAny>> {
    let (key, value) = (bytes_of(key)?, bytes_of(value)?);
    let Some(cache) = find(cache) else {
        return Ok(py.None());
    };
    let result = py.detach(|| cache.set(&key, &value, expires, now(), overwrite));
    Ok(answer(py, result.is_ok()))
}

/// `cache_set`: fails (None) if the key exists and has not expired.
#[pyfunction]
#[pyo3(signature = (key, value, expires = 0, cache = None))]
fn cache_set(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    expires: u64,
    cache: Option<&str>,
) -> PyResult<Py<PyAny>> {
    write(py, key, value, expires, cache, false)
}

#[pyfunction]
#[pyo3(signature = (key, value, expires = 0, cache = None))]
fn cache_update(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    expires: u64,
    cache: Option<&str>,
) -> PyResult<Py<PyAny>> {
    write(py, key, value, expires, cache, true)
}

#[pyfunction]
#[pyo3(signature = (key, cache = None))]
fn cache_del(py: Python<'_>, key: &Bound<'_, PyAny>, cache: Option<&str>) -> PyResult<Py<PyAny>> {
    let key = bytes_of(key)?;
    let deleted = find(cache).is_some_and(|cache| py.detach(|| cache.delete(&key, now())));
    Ok(answer(py, deleted))
}

#[pyfunction]
#[pyo3(signature = (key, cache = None))]
fn cache_exists(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    cache: Option<&str>,
) -> PyResult<Py<PyAny>> {
    let key = bytes_of(key)?;
    let exists = find(cache).is_some_and(|cache| py.detach(|| cache.exists(&key, now())));
    Ok(answer(py, exists))
}

#[pyfunction]
#[pyo3(signature = (cache = None))]
fn cache_clear(py: Python<'_>, cache: Option<&str>) -> Py<PyAny> {
    let Some(cache) = find(cache) else {
        return py.None();
    };
    py.detach(|| cache.clear(now()));
    answer(py, true)
}

#[pyfunction]
#[pyo3(signature = (cache = None))]
fn cache_keys<'py>(py: Python<'py>, cache: Option<&str>) -> PyResult<Bound<'py, PyList>> {
    let keys = find(cache).map_or_else(Vec::new, |cache| py.detach(|| cache.keys(now())));
    PyList::new(py, keys.iter().map(|k| PyBytes::new(py, k)))
}

#[derive(Clone, Copy)]
enum Math {
    Inc,
    Dec,
    Mul,
    Div,
}

/// uWSGI's math: the value is an 8-byte native-endian integer; a missing key starts at 0.
fn math(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    amount: i64,
    expires: u64,
    cache: Option<&str>,
    op: Math,
) -> PyResult<Py<PyAny>> {
    let key = bytes_of(key)?;
    let Some(cache) = find(cache) else {
        return Ok(py.None());
    };
    let result = py.detach(|| {
        cache.update_with(&key, expires, now(), |old| {
            let current = match old {
                None => 0,
                Some(bytes) => {
                    i64::from_ne_bytes(bytes.try_into().map_err(|_| CacheError::Refused)?)
                }
            };
            let next = match op {
                Math::Inc => current.wrapping_add(amount),
                Math::Dec => current.wrapping_sub(amount),
                Math::Mul => current.wrapping_mul(amount),
                Math::Div if amount == 0 => 0,
                Math::Div => current.wrapping_div(amount),
            };
            Ok(next.to_ne_bytes().to_vec())
        })
    });
    Ok(answer(py, result.is_ok()))
}

macro_rules! math_function {
    ($name:ident, $op:expr) => {
        #[pyfunction]
        #[pyo3(signature = (key, amount = 1, expires = 0, cache = None))]
        fn $name(
            py: Python<'_>,
            key: &Bound<'_, PyAny>,
            amount: i64,
            expires: u64,
            cache: Option<&str>,
        ) -> PyResult<Py<PyAny>> {
            math(py, key, amount, expires, cache, $op)
        }
    };
}

math_function!(cache_inc, Math::Inc);
math_function!(cache_dec, Math::Dec);
math_function!(cache_mul, Math::Mul);
math_function!(cache_div, Math::Div);

/// `cache_num`: a math key's value, None when missing or not a number.
#[pyfunction]
#[pyo3(signature = (key, cache = None))]
fn cache_num(py: Python<'_>, key: &Bound<'_, PyAny>, cache: Option<&str>) -> PyResult<Option<i64>> {
    let key = bytes_of(key)?;
    let value = find(cache).and_then(|cache| py.detach(|| cache.get(&key, now())));
    Ok(value.and_then(|v| v.as_slice().try_into().ok().map(i64::from_ne_bytes)))
}

fn splice(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    expires: u64,
    cache: Option<&str>,
    append: bool,
) -> PyResult<Py<PyAny>> {
    let (key, value) = (bytes_of(key)?, bytes_of(value)?);
    let Some(cache) = find(cache) else {
        return Ok(py.None());
    };
    let result = py.detach(|| {
        cache.update_with(&key, expires, now(), |old| {
            let old = old.unwrap_or_default();
            Ok(if append {
                [old, value.as_slice()].concat()
            } else {
                [value.as_slice(), old].concat()
            })
        })
    });
    Ok(answer(py, result.is_ok()))
}

#[pyfunction]
#[pyo3(signature = (key, value, expires = 0, cache = None))]
fn cache_append(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    expires: u64,
    cache: Option<&str>,
) -> PyResult<Py<PyAny>> {
    splice(py, key, value, expires, cache, true)
}

#[pyfunction]
#[pyo3(signature = (key, value, expires = 0, cache = None))]
fn cache_prepend(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    expires: u64,
    cache: Option<&str>,
) -> PyResult<Py<PyAny>> {
    splice(py, key, value, expires, cache, false)
}

pub(crate) fn add_to_module(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(cache_get, module)?)?;
    module.add_function(wrap_pyfunction!(cache_set, module)?)?;
    module.add_function(wrap_pyfunction!(cache_update, module)?)?;
    module.add_function(wrap_pyfunction!(cache_del, module)?)?;
    module.add_function(wrap_pyfunction!(cache_exists, module)?)?;
    module.add_function(wrap_pyfunction!(cache_clear, module)?)?;
    module.add_function(wrap_pyfunction!(cache_keys, module)?)?;
    module.add_function(wrap_pyfunction!(cache_inc, module)?)?;
    module.add_function(wrap_pyfunction!(cache_dec, module)?)?;
    module.add_function(wrap_pyfunction!(cache_mul, module)?)?;
    module.add_function(wrap_pyfunction!(cache_div, module)?)?;
    module.add_function(wrap_pyfunction!(cache_num, module)?)?;
    module.add_function(wrap_pyfunction!(cache_append, module)?)?;
    module.add_function(wrap_pyfunction!(cache_prepend, module)?)?;
    Ok(())
}
