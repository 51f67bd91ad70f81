//! A hosted master (`py-hosted`): kaiser's master running inside the venv's own `python3`, as
//! an extension module, rather than on the libpython linked into the `kaiser` binary.
//!
//! Why: Debian builds its `python3` with link-time optimisation, but ships `libpython3.11.a`
//! without it (its objects' LTO sections are stripped), so the same Python code runs about 5%
//! more instructions embedded than in `python3` (bench/README.md, "The interpreter"). Hosted,
//! kaiser runs the very interpreter build the venv's `python3` is.
//!
//! How: the binary reads the config as always, then (`vassal/hosting.rs`) replaces itself with
//! `python3 -c BOOTSTRAP_COMMAND LIBRARY BINARY ARGS…`, keeping its pid, fds and environment. The
//! bootstrap loads `LIBRARY` (this crate built as a cdylib with the `hosted` feature, linked
//! against no libpython: its `Py*` symbols are the executable's, as for any extension
//! module) and calls `run`, which runs `cli::main` again with the interpreter already up.
//! From there everything is as embedded: `initialize` skips only `Py_InitializeFromConfig`.

use std::sync::atomic::{AtomicBool, Ordering};

static HOSTED: AtomicBool = AtomicBool::new(false);

/// Whether this process is a hosted master (or a child it forked).
pub fn is_hosted() -> bool {
    HOSTED.load(Ordering::Relaxed)
}

/// The extension's file name, as `cargo rustc --lib --crate-type cdylib --features hosted`
/// names it.
pub const LIBRARY: &str = "libkaiser.so";

/// What the bootstrap's `-c` says: the code itself is in the environment (as
/// [`BOOTSTRAP_ENV`]), which it leaves, so that `ps` shows a readable command line.
pub const BOOTSTRAP_COMMAND: &str =
    "exec(__import__('os').environ.pop('KAISER_HOSTED_BOOTSTRAP'), {})";

/// The environment variable [`BOOTSTRAP_COMMAND`] reads [`BOOTSTRAP`] from.
pub const BOOTSTRAP_ENV: &str = "KAISER_HOSTED_BOOTSTRAP";

/// What `python3 -c` runs, in a namespace of its own (`__main__` stays empty, as embedded),
/// with `sys.argv` = `['-c', LIBRARY, BINARY, ARGS…]`. It puts Python where the embedded start
/// leaves it: SIGXFSZ at its default (`python3` ignores it; embedded, kaiser asks Python to
/// install no handlers, but importing `signal` installs its SIGINT handler in both),
/// `sys.argv` `['']`, and no `-c` entry on `sys.path` (kaiser inserts `''` itself).
pub const BOOTSTRAP: &str = "\
import signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
if sys.path and sys.path[0] == '':
    del sys.path[0]
from importlib.machinery import ExtensionFileLoader
from importlib.util import module_from_spec, spec_from_loader
_loader = ExtensionFileLoader('kaiser', sys.argv[1])
_kaiser = module_from_spec(spec_from_loader('kaiser', _loader))
_loader.exec_module(_kaiser)
_binary, _args = sys.argv[2], sys.argv[3:]
sys.argv[:] = ['']
_kaiser.run(_binary, _args)
";

/// Marks this process hosted (from the extension's `run`, before anything else).
pub fn enter(binary: std::path::PathBuf) {
    HOSTED.store(true, Ordering::Relaxed);
    let _ = crate::sys::process::HOSTED_BY.set(binary);
    // `ps -o comm`, `top` and `pgrep kaiser` name the master and its workers as they do
    // embedded, not `python3`.
    crate::sys::process::set_name("kaiser");
}

/// Defines `PyInit_kaiser`, the module the bootstrap loads, whose `run(binary, args)` calls
/// `$entry(args)` (the command line's `main`) and exits with its status. `lib.rs` expands it
/// with `cli::main`, so that this module does not import the entry point that imports it.
///
/// `run` never returns to `python3`, whose finalisation would wait for the app's non-daemon
/// threads; the embedded master does not finalise either.
#[macro_export]
macro_rules! hosted_module {
    ($entry:path) => {
        mod hosted_module {
            use pyo3::prelude::*;

            #[pymodule]
            fn kaiser(module: &Bound<'_, PyModule>) -> PyResult<()> {
                module.add_function(wrap_pyfunction!(run, module)?)
            }

            #[pyfunction]
            fn run(
                py: Python<'_>,
                binary: std::path::PathBuf,
                args: Vec<std::ffi::OsString>,
            ) -> PyResult<()> {
                $crate::python::hosted::enter(binary);
                // The GIL released, as the embedded start leaves it, for any thread to attach.
                let code = py.detach(move || $entry(args));
                std::process::exit(i32::from(code))
            }
        }
    };
}
