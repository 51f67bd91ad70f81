//! Importing the WSGI callables: `wsgi-file`, `module` (`pkg.mod:callable`), `callable`, and
//! the apps of `mount = /point=target`.

use std::path::PathBuf;

use pyo3::prelude::*;

#[derive(Debug, Clone)]
pub struct AppSpec {
    pub wsgi_file: Option<PathBuf>,
    pub module: Option<String>,
    pub callable: String,
    /// `mount`: (mountpoint without a trailing `/`, target). A target ending in `.py` or
    /// `.wsgi` is a file, anything else a module (`pkg.mod:callable` or `pkg.mod`), as in uWSGI.
    pub mounts: Vec<(String, String)>,
    /// `shared-import` then `import`: modules (or `.py` files) imported before the app.
    pub imports: Vec<String>,
    /// `eval`: code run as the module `uwsgi_eval_config`, whose `callable` is the app.
    pub eval: Option<String>,
    /// `paste`: a paste.deploy URI for `loadapp`, and `paste-logger`.
    pub paste: Option<String>,
    pub paste_logger: bool,
    /// `chdir2`: the directory to change to once the app is loaded.
    pub chdir_after: Option<PathBuf>,
    /// `python-raw`: the file whose callable serves `raw-socket` connections.
    pub raw: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadAppError {
    #[error("no app configured: set `wsgi-file`, `module`, `mount`, `eval` or `paste`")]
    NothingConfigured,
    #[error("cannot change directory to `{}` (`chdir2`) after loading the app: {source}", .path.display())]
    Chdir2 {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("importing the app from `{source_name}` failed:\n{traceback}")]
    Import {
        source_name: String,
        traceback: String,
    },
    #[error("`{source_name}` has no callable `{callable}`")]
    NoCallable {
        source_name: String,
        callable: String,
    },
    #[error("`{callable}` in `{source_name}` is not callable (it is a `{type_name}`)")]
    NotCallable {
        source_name: String,
        callable: String,
        type_name: String,
    },
}

/// A loaded WSGI application.
pub struct App {
    /// The app for requests no mountpoint claims: `wsgi-file`/`module`, else the first mount.
    pub(crate) callable: Py<PyAny>,
    /// Where it came from, for logs (`app.py`, `mysite.wsgi:application`).
    pub description: String,
    /// `mount`: (mountpoint, callable), in the order given.
    pub(crate) mounts: Vec<(String, Py<PyAny>)>,
    /// `python-raw`'s callable, for `raw-socket` connections.
    pub raw: Option<super::raw::RawHandler>,
}

impl App {
    /// Whether this is the stand-in [`App::unavailable`] made (health checks fail then).
    pub fn is_unavailable(&self) -> bool {
        self.description.starts_with("(unavailable")
    }

    /// With `need-app = false`: an app that answers 500 to everything, so the server runs
    /// (uWSGI's "full dynamic mode" answers errors too) while the log says why.
    pub fn unavailable(reason: &str) -> Result<App, LoadAppError> {
        Python::attach(|py| {
            let code = c"def application(environ, start_response):\n    start_response('500 Internal Server Error', [('Content-Type', 'text/plain')])\n    return [b'the app failed to load; see the server log\\n']\n";
            let globals = pyo3::types::PyDict::new(py);
            let made = py.run(code, Some(&globals), None).and_then(|()| {
                globals.get_item("application")?.ok_or_else(|| {
                    pyo3::exceptions::PyRuntimeError::new_err("fallback app missing")
                })
            });
            match made {
                Ok(callable) => Ok(App {
                    callable: callable.unbind(),
                    description: format!("(unavailable: {reason})"),
                    mounts: Vec::new(),
                    raw: None,
                }),
                Err(e) => Err(LoadAppError::Import {
                    source_name: "fallback app".into(),
                    traceback: format_exception(py, &e),
                }),
            }
        })
    }
}

/// Formats a Python exception with its traceback, as `traceback.print_exc` would.
pub(crate) fn format_exception(py: Python<'_>, err: &PyErr) -> String {
    let formatted = (|| -> PyResult<String> {
        let traceback = py.import("traceback")?;
        let lines = traceback.call_method1("format_exception", (err.clone_ref(py),))?;
        let text: String = pyo3::types::PyString::new(py, "")
            .call_method1("join", (lines,))?
            .extract()?;
        Ok(text)
    })();
    formatted
        .unwrap_or_else(|_| err.to_string())
        .trim_end()
        .to_string()
}

/// `uwsgi_file_` + the path with every non-alphanumeric byte replaced by `_`: the module
/// name uWSGI gives a `wsgi-file`, kept so that code inspecting `__name__` sees the same.
fn file_module_name(path: &std::path::Path) -> String {
    let mangled: String = path
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("uwsgi_file_{mangled}")
}

pub fn load_app(spec: &AppSpec) -> Result<App, LoadAppError> {
    let app = Python::attach(|py| load_app_attached(py, spec))?;
    if let Some(dir) = &spec.chdir_after {
        std::env::set_current_dir(dir).map_err(|source| LoadAppError::Chdir2 {
            path: dir.clone(),
            source,
        })?;
    }
    Ok(app)
}

fn load_app_attached(py: Python<'_>, spec: &AppSpec) -> Result<App, LoadAppError> {
    {
        for name in &spec.imports {
            import_one(py, name).map_err(|e| LoadAppError::Import {
                source_name: name.clone(),
                traceback: format_exception(py, &e),
            })?;
        }
        let main = if spec.wsgi_file.is_some() || spec.module.is_some() {
            Some(load_one(
                py,
                spec.wsgi_file.as_deref(),
                spec.module.as_deref(),
                &spec.callable,
            )?)
        } else if let Some(code) = &spec.eval {
            Some(super::loaders::eval_app(py, code, &spec.callable)?)
        } else if let Some(uri) = &spec.paste {
            Some(super::loaders::paste_app(py, uri, spec.paste_logger)?)
        } else {
            None
        };
        let mut mounts = Vec::with_capacity(spec.mounts.len());
        let mut descriptions = Vec::new();
        for (point, target) in &spec.mounts {
            let is_file = target.ends_with(".py") || target.ends_with(".wsgi");
            let (file, module) = if is_file {
                (Some(std::path::Path::new(target.as_str())), None)
            } else {
                (None, Some(target.as_str()))
            };
            let (callable, description) = load_one(py, file, module, &spec.callable)?;
            let shown = if point.is_empty() {
                "/"
            } else {
                point.as_str()
            };
            descriptions.push(format!("{shown}={description}"));
            mounts.push((point.clone(), callable));
        }
        let raw = match &spec.raw {
            Some(file) => {
                let (callable, description) = super::raw::load(py, file, &spec.callable)?;
                Some(super::raw::RawHandler::new(callable, description))
            }
            None => None,
        };
        if main.is_none() && mounts.is_empty() {
            if let Some(raw) = raw {
                // Only raw connections are served: WSGI requests (on another socket) get 500.
                let mut app = App::unavailable(&format!(
                    "no WSGI app; raw-socket connections go to the python-raw handler {}",
                    raw.description
                ))?;
                app.raw = Some(raw);
                return Ok(app);
            }
        }
        let (callable, description) = match main {
            Some((callable, description)) if mounts.is_empty() => (callable, description),
            Some((callable, description)) => (
                callable,
                format!("{description}, mounts {}", descriptions.join(" ")),
            ),
            None => match mounts.first() {
                Some((_, first)) => (
                    first.clone_ref(py),
                    format!("mounts {}", descriptions.join(" ")),
                ),
                None => return Err(LoadAppError::NothingConfigured),
            },
        };
        Ok(App {
            callable,
            description,
            mounts,
            raw,
        })
    }
}

/// `import`/`shared-import`: a module name, or a `.py` file loaded under uWSGI's mangled name.
fn import_one(py: Python<'_>, name: &str) -> PyResult<()> {
    if name.ends_with(".py") {
        let path = std::path::Path::new(name);
        load_file(py, &file_module_name(path), path).map(drop)
    } else {
        py.import(name).map(drop)
    }
}

/// Imports one app: a file (`wsgi-file`) or a module, and its callable.
pub(super) fn load_one(
    py: Python<'_>,
    wsgi_file: Option<&std::path::Path>,
    module: Option<&str>,
    default_callable: &str,
) -> Result<(Py<PyAny>, String), LoadAppError> {
    {
        let (module, source_name, callable_name) = if let Some(file) = wsgi_file {
            let name = file_module_name(file);
            let source_name = file.display().to_string();
            let module = load_file(py, &name, file).map_err(|e| LoadAppError::Import {
                source_name: source_name.clone(),
                traceback: format_exception(py, &e),
            })?;
            (module, source_name, default_callable.to_string())
        } else if let Some(module_spec) = module {
            let (module_name, callable) = match module_spec.split_once(':') {
                Some((m, c)) => (m.to_string(), c.to_string()),
                None => (module_spec.to_string(), default_callable.to_string()),
            };
            let module = py
                .import(module_name.as_str())
                .map_err(|e| LoadAppError::Import {
                    source_name: module_name.clone(),
                    traceback: format_exception(py, &e),
                })?;
            (module.into_any(), module_name, callable)
        } else {
            return Err(LoadAppError::NothingConfigured);
        };
        // `module:factory()` is not uWSGI syntax; a dotted attribute path is (`app.wsgi`).
        let mut object = module;
        for part in callable_name.split('.') {
            object = object.getattr(part).map_err(|_| LoadAppError::NoCallable {
                source_name: source_name.clone(),
                callable: callable_name.clone(),
            })?;
        }
        if !object.is_callable() {
            return Err(LoadAppError::NotCallable {
                source_name,
                callable: callable_name,
                type_name: object
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
            });
        }
        Ok((object.unbind(), format!("{source_name}:{callable_name}")))
    }
}

pub(crate) fn load_file<'py>(
    py: Python<'py>,
    name: &str,
    path: &std::path::Path,
) -> PyResult<Bound<'py, PyAny>> {
    let util = py.import("importlib.util")?;
    let path_str = path.to_string_lossy().into_owned();
    let spec = util.call_method1("spec_from_file_location", (name, path_str.as_str()))?;
    if spec.is_none() {
        return Err(pyo3::exceptions::PyImportError::new_err(format!(
            "cannot load `{path_str}` as Python source"
        )));
    }
    let module = util.call_method1("module_from_spec", (&spec,))?;
    let modules = py.import("sys")?.getattr("modules")?;
    modules.set_item(name, &module)?;
    let loader = spec.getattr("loader")?;
    if let Err(e) = loader.call_method1("exec_module", (&module,)) {
        let _ = modules.del_item(name);
        return Err(e);
    }
    Ok(module)
}
