//! Interpreter start-up and fork.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use pyo3::ffi;
use pyo3::prelude::*;

use crate::sys::fork::{ForkError, Forked};

/// The Python kaiser was built against (see `.cargo/config.toml`): `sys.executable` when no
/// venv is configured, so `multiprocessing` and `subprocess.run([sys.executable, …])` start
/// Python, never kaiser.
const BUILD_PYTHON: &str = env!("PYO3_PYTHON");

#[derive(Debug, Clone, Default)]
pub struct InterpreterOptions {
    /// `home` / `virtualenv` / `venv`: a venv made with this same Python, or a PYTHONHOME.
    pub home: Option<PathBuf>,
    /// `pythonpath` entries, prepended to `sys.path` in order.
    pub pythonpath: Vec<PathBuf>,
    /// `optimize`: `python -O` level (0 to 2).
    pub optimize: u32,
    /// `py-programname`: Python's program name and `sys.argv[0]`.
    pub program_name: Option<String>,
    /// `pyargv`: `sys.argv[1:]`, split on spaces.
    pub argv: Option<String>,
    /// `py-executable`: `sys.executable` instead of the venv's or the build's interpreter.
    pub executable: Option<PathBuf>,
    /// `no-site`: do not import `site` at startup (`python -S`).
    pub no_site: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum InitPythonError {
    #[error("venv `{home}` was made with Python {venv_version}, but kaiser embeds Python {embedded}; recreate it with `{python} -m venv {home}`", home = .home.display())]
    VenvVersion {
        home: PathBuf,
        venv_version: String,
        embedded: String,
        python: String,
    },
    #[error("`home` `{}` does not exist{}", .0.display(), if .0.is_relative() { " (a relative `home` is resolved after `chdir`; give an absolute path)" } else { "" })]
    HomeMissing(PathBuf),
    #[error("python initialisation failed: {0}")]
    Init(String),
    #[error("setting up `sys.path` failed:\n{0}")]
    SysPath(String),
}

/// The embedded interpreter's "major.minor", readable before initialisation.
fn embedded_version() -> String {
    // SAFETY: Py_GetVersion returns a static NUL-terminated string and may be called
    // before Py_Initialize.
    let full = unsafe { CStr::from_ptr(ffi::Py_GetVersion()) }
        .to_string_lossy()
        .into_owned();
    let number = full.split_whitespace().next().unwrap_or("");
    number.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// Reads `version`/`version_info` from a venv's pyvenv.cfg, if `home` is a venv.
fn venv_version(home: &Path) -> Option<String> {
    let text = std::fs::read_to_string(home.join("pyvenv.cfg")).ok()?;
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key == "version" || key == "version_info" {
            let value = value.trim();
            return Some(value.split('.').take(2).collect::<Vec<_>>().join("."));
        }
    }
    Some(String::new())
}

fn status_error(status: ffi::PyStatus) -> Option<String> {
    // SAFETY: PyStatus_Exception only reads the struct.
    if unsafe { ffi::PyStatus_Exception(status) } == 0 {
        return None;
    }
    let msg = if status.err_msg.is_null() {
        format!("exit code {}", status.exitcode)
    } else {
        // SAFETY: err_msg is a static NUL-terminated string when non-null.
        unsafe { CStr::from_ptr(status.err_msg) }
            .to_string_lossy()
            .into_owned()
    };
    Some(msg)
}

/// Initialises CPython once, without Python's own signal handlers (kaiser owns signals),
/// then releases the GIL so any thread can attach.
///
/// A venv is honoured the way CPython's own `bin/python` does it: `executable` is set to the
/// venv's interpreter, so `getpath` finds `pyvenv.cfg`, sets `sys.prefix` to the venv and
/// `site` adds its site-packages. Setting PYTHONHOME to a venv (uWSGI's approach) breaks
/// the standard library lookup for venvs made without copies.
pub fn initialize(options: &InterpreterOptions) -> Result<(), InitPythonError> {
    // SAFETY: Py_IsInitialized may be called at any time.
    if unsafe { ffi::Py_IsInitialized() } != 0 {
        // Already done before a `chroot` (see `vassal/process_setup.rs`).
        return Ok(());
    }
    let embedded = embedded_version();
    let mut executable = PathBuf::from(BUILD_PYTHON);
    let mut python_home: Option<PathBuf> = None;
    if let Some(home) = &options.home {
        if !home.is_dir() {
            return Err(InitPythonError::HomeMissing(home.clone()));
        }
        match venv_version(home) {
            Some(version) => {
                if !version.is_empty() && version != embedded {
                    return Err(InitPythonError::VenvVersion {
                        home: home.clone(),
                        venv_version: version,
                        embedded,
                        python: BUILD_PYTHON.to_string(),
                    });
                }
                executable = home.join("bin").join("python");
            }
            None => python_home = Some(home.clone()),
        }
    }

    // SAFETY: PyConfig is a C struct that PyConfig_InitPythonConfig fully initialises before
    // any field is read; strings are set through the API, which copies them; the config is
    // cleared after use. This runs once, on the main thread, before any other Python call.
    unsafe {
        let mut config: ffi::PyConfig = std::mem::zeroed();
        ffi::PyConfig_InitPythonConfig(&mut config);
        config.install_signal_handlers = 0;
        config.parse_argv = 0;
        config.optimization_level = options.optimize as std::ffi::c_int;
        if options.no_site {
            config.site_import = 0;
        }
        let exe = CString::new(executable.as_os_str().as_encoded_bytes())
            .map_err(|e| InitPythonError::Init(e.to_string()))?;
        let status =
            ffi::PyConfig_SetBytesString(&mut config, &mut config.executable, exe.as_ptr());
        if let Some(msg) = status_error(status) {
            ffi::PyConfig_Clear(&mut config);
            return Err(InitPythonError::Init(msg));
        }
        let program_name = match &options.program_name {
            Some(name) => {
                CString::new(name.as_str()).map_err(|e| InitPythonError::Init(e.to_string()))?
            }
            None => exe.clone(),
        };
        let status = ffi::PyConfig_SetBytesString(
            &mut config,
            &mut config.program_name,
            program_name.as_ptr(),
        );
        if let Some(msg) = status_error(status) {
            ffi::PyConfig_Clear(&mut config);
            return Err(InitPythonError::Init(msg));
        }
        if let Some(home) = &python_home {
            let home = CString::new(home.as_os_str().as_encoded_bytes())
                .map_err(|e| InitPythonError::Init(e.to_string()))?;
            let status = ffi::PyConfig_SetBytesString(&mut config, &mut config.home, home.as_ptr());
            if let Some(msg) = status_error(status) {
                ffi::PyConfig_Clear(&mut config);
                return Err(InitPythonError::Init(msg));
            }
        }
        let status = ffi::Py_InitializeFromConfig(&config);
        ffi::PyConfig_Clear(&mut config);
        if let Some(msg) = status_error(status) {
            return Err(InitPythonError::Init(msg));
        }
        // Release the GIL taken by initialisation; pyo3's `attach` re-acquires it.
        ffi::PyEval_SaveThread();
    }
    // pyo3 keeps its own "initialised" flag; this is a no-op for the interpreter itself.
    Python::initialize();

    Python::attach(|py| -> PyResult<()> {
        let sys = py.import("sys")?;
        let path = sys.getattr("path")?;
        // uWSGI puts the current directory first on sys.path, so `module = app` finds
        // `./app.py` after `chdir`.
        path.call_method1("insert", (0, ""))?;
        // What loading a `wsgi-file` needs, imported while the standard library is in reach:
        // after a `chroot` it usually is not.
        py.import("importlib.util")?;
        for (index, entry) in options.pythonpath.iter().enumerate() {
            path.call_method1("insert", (index, entry.to_string_lossy().into_owned()))?;
        }
        if let Some(executable) = &options.executable {
            sys.setattr("executable", executable.to_string_lossy().into_owned())?;
        }
        if options.argv.is_some() || options.program_name.is_some() {
            // uWSGI's `sys.argv`: its program name (`uwsgi` by default), then `pyargv`.
            let mut argv = vec![options
                .program_name
                .clone()
                .unwrap_or_else(|| "uwsgi".to_string())];
            argv.extend(
                options
                    .argv
                    .iter()
                    .flat_map(|args| args.split(' '))
                    .filter(|arg| !arg.is_empty())
                    .map(str::to_string),
            );
            sys.setattr("argv", argv)?;
        }
        Ok(())
    })
    .map_err(|e| {
        Python::attach(|py| InitPythonError::SysPath(crate::python::app::format_exception(py, &e)))
    })
}

/// Forks with the interpreter in a consistent state: `PyOS_BeforeFork` takes Python's
/// internal locks on this (attached) thread, and `PyOS_AfterFork_Child` resets them and the
/// thread state in the child. Only the thread that initialised Python may call this.
pub fn fork() -> Result<Forked, ForkError> {
    Python::attach(|_py| {
        // SAFETY: we are attached to the interpreter on the thread that initialised it, which
        // is what PyOS_BeforeFork/AfterFork require.
        unsafe { ffi::PyOS_BeforeFork() };
        let result = crate::sys::fork::fork();
        match &result {
            // SAFETY: as above; exactly one of the two after-fork calls runs in each process.
            Ok(Forked::Child) => unsafe { ffi::PyOS_AfterFork_Child() },
            // SAFETY: as above.
            Ok(Forked::Parent { .. }) | Err(_) => unsafe { ffi::PyOS_AfterFork_Parent() },
        }
        result
    })
}

/// Runs `f` on this thread with a Python thread state that lives as long as `f`, holding
/// the GIL only when `f` attaches.
///
/// Without this, every `Python::attach` on a request thread would create and destroy a
/// thread state (PyGILState_Ensure on a thread that has none): a 16 KiB mmap/munmap and a
/// gettid per request, and — worse — `threading.local()` data (Django's database
/// connections, for one) would be lost between requests, since it lives in the thread
/// state.
pub fn with_thread_state<R, F>(f: F) -> R
where
    F: pyo3::marker::Ungil + FnOnce() -> R,
    R: pyo3::marker::Ungil,
{
    Python::attach(|py| py.detach(f))
}

/// What a worker that stops gracefully does last, once its request threads have finished,
/// as uWSGI's workers do through `Py_Finalize`: calls `uwsgi.atexit` if the app set it, runs
/// the `atexit` handlers (logging's flush, Sentry's, the app's own) and flushes `sys.stdout`
/// and `sys.stderr` (unbuffered as kaiser sets them up, but an app may replace them). It does
/// not finalize the interpreter: that would wait for every non-daemon thread the app started.
pub fn run_exit_handlers() {
    Python::attach(|py| {
        let ran = (|| -> PyResult<()> {
            let sys = py.import("sys")?;
            if let Ok(uwsgi) = sys.getattr("modules")?.get_item("uwsgi") {
                if let Ok(hook) = uwsgi.getattr("atexit") {
                    if hook.is_callable() {
                        hook.call0()?;
                    }
                }
            }
            // It reports a failing handler itself and goes on with the rest.
            py.import("atexit")?.call_method0("_run_exitfuncs")?;
            for stream in ["stdout", "stderr"] {
                if let Ok(stream) = sys.getattr(stream) {
                    if !stream.is_none() {
                        stream.call_method0("flush")?;
                    }
                }
            }
            Ok(())
        })();
        if let Err(err) = ran {
            tracing::warn!(
                "running the app's exit handlers failed: {}",
                crate::python::app::format_exception(py, &err)
            );
        }
    });
}

/// Readies the calling request thread for the app: when the app has imported `threading`,
/// Python knows the thread by `name` (the OS thread's, so logs with `%(threadName)s` say
/// `kaiser-w1-t0` rather than `Dummy-1`), and when it has imported asyncio, the thread has the
/// event loop `asyncio.get_event_loop()` returns.
///
/// Under uWSGI a single-threaded worker runs requests on the process's main thread, where
/// asyncio makes that loop on first use; on any other thread it raises `RuntimeError: There
/// is no current event loop`, so the common `asyncio.get_event_loop().run_until_complete(...)`
/// in a sync view failed under kaiser. The loop comes from the app's event loop policy
/// (uvloop's, if installed).
pub fn prepare_request_thread(name: &str) {
    Python::attach(|py| {
        // Only modules the app already imported (`threading` comes with `logging`): importing
        // one here would cost every worker its own copy, about 1 MiB for `threading`.
        let imported = |module: &str| {
            py.import("sys")
                .and_then(|sys| sys.getattr("modules"))
                .and_then(|modules| modules.contains(module))
                .unwrap_or(false)
        };
        if imported("threading") {
            let named = py
                .import("threading")
                .and_then(|threading| threading.call_method0("current_thread"))
                .and_then(|thread| thread.setattr("name", name));
            if let Err(err) = named {
                tracing::warn!(error = %err, "cannot name the request thread in Python");
            }
        }
        if !imported("asyncio") {
            return;
        }
        let made = (|| -> PyResult<()> {
            let policy = py
                .import("asyncio")?
                .call_method0("get_event_loop_policy")?;
            if policy.call_method0("get_event_loop").is_ok() {
                return Ok(());
            }
            let event_loop = policy.call_method0("new_event_loop")?;
            policy.call_method1("set_event_loop", (event_loop,))?;
            Ok(())
        })();
        if let Err(err) = made {
            tracing::warn!(error = %err, "cannot give the request thread an asyncio event loop");
        }
    });
}

/// Moves every object Python's collector tracks now (the app, its modules, what its import
/// built) into the permanent generation: `gc.freeze()`, as the `gc` docs advise before a fork
/// without exec. Collections in the workers then walk only what was made after it, rather than
/// the whole app each time: the first full collection of a Flask worker had stopped it for
/// 33–43 ms, about 2 s into serving. And they no longer write to the frozen objects' headers,
/// so the pages forked from the master stay shared: the total PSS of a Flask master and two
/// workers under load fell from 54 to 40 MiB. The frozen objects are never collected; garbage
/// the import left behind is collected just before.
pub fn freeze_heap() {
    Python::attach(|py| {
        let frozen = py.import("gc").and_then(|gc| {
            gc.call_method0("collect")?;
            gc.call_method0("freeze")
        });
        if let Err(err) = frozen {
            tracing::warn!(error = %err, "gc.freeze() failed; the app's objects stay collectable");
        }
    });
}

/// Points Python's signal wakeup fd (`signal.set_wakeup_fd`) at `fd`, a non-blocking pipe:
/// Python's C-level handler writes a byte there whenever a signal the app handles in
/// Python arrives, so the worker's main thread takes the GIL to run those handlers only
/// then, instead of on every turn (where a request holding the GIL would block it).
/// Must be called on Python's main thread.
pub fn set_signal_wakeup_fd(fd: std::os::fd::RawFd) -> Result<(), String> {
    Python::attach(|py| {
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item("warn_on_full_buffer", false)?;
        py.import("signal")?
            .call_method("set_wakeup_fd", (fd,), Some(&kwargs))
            .map(|_| ())
    })
    .map_err(|err| err.to_string())
}

/// Runs the Python-level signal handlers (`signal.signal`) for signals that arrived since the
/// last call, then the handlers of uWSGI signals pending for this process
/// (`uwsgi.register_signal`). Must be called on Python's main thread. A handler that raises
/// is logged.
pub fn run_signal_handlers() {
    Python::attach(|py| {
        if let Err(err) = py.check_signals() {
            tracing::error!(
                "a Python signal handler raised:\n{}",
                crate::python::app::format_exception(py, &err)
            );
        }
    });
}
