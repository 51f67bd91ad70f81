//! `py-hosted`: whether this master can run inside `python3` (`python/hosted.rs`), and the
//! exec that puts it there.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::python::hosted::{self, BOOTSTRAP, BOOTSTRAP_COMMAND, BOOTSTRAP_ENV, LIBRARY};

/// Why `config`'s master cannot be hosted, if it cannot.
///
/// The hosted interpreter starts at the exec, before anything else: it has no app to preload
/// with `lazy-apps` (each worker starts its own, after fork), and it would start as the user
/// the master starts as, running the venv's `.pth` files and `sitecustomize` before `uid`,
/// `gid`, `chroot` or `unshare` take effect, where the embedded start runs them after.
pub fn unsuitable(config: &Config) -> Option<&'static str> {
    if !super::python_setup::names_an_app(config) {
        Some("there is no app to preload")
    } else if config.lazy_apps {
        Some("`lazy-apps` starts Python in each worker")
    } else if config.uid.is_some() || config.gid.is_some() {
        Some("with `uid`/`gid`, Python must start after the privileges are dropped")
    } else if config.extra.chroot.is_some() || config.unshare != Default::default() {
        Some("with `chroot`/`unshare`, Python must start inside the jail")
    } else {
        None
    }
}

/// Where the binary looks for the extension: beside itself (a cargo build directory), or in
/// `../lib/kaiser/` (an install: `/usr/bin/kaiser`, `/usr/lib/kaiser/libkaiser.so`).
pub fn library_for(binary: &Path) -> Option<PathBuf> {
    let dir = binary.parent()?;
    [dir.join(LIBRARY), dir.join("../lib/kaiser").join(LIBRARY)]
        .into_iter()
        .find(|path| path.is_file())
}

/// Unless `py-hosted = false`, replaces this process with the venv's `python3` running this
/// same command line hosted, where the config allows it. Returns only when it does not: with
/// what to log when `py-hosted = true` asked for it (why the master runs embedded). A `home`
/// that does not exist or a venv of another Python version is left to the embedded start,
/// which reports it as it always does.
pub fn exec_if_asked(config: &Config, args: &[OsString]) -> Option<String> {
    let asked = match config.py_hosted {
        Some(false) => return None,
        Some(true) => true,
        None => false,
    };
    if hosted::is_hosted() {
        return None;
    }
    let note =
        |reason: String| asked.then(|| format!("py-hosted: the master runs embedded: {reason}"));
    if let Some(reason) = unsuitable(config) {
        return note(reason.to_string());
    }
    let binary = match crate::sys::process::kaiser_binary() {
        Ok(binary) => binary,
        Err(err) => return note(format!("no path to kaiser's binary: {err}")),
    };
    let Some(library) = library_for(&binary) else {
        return note(format!(
            "no `{LIBRARY}` beside `{}` or in its `../lib/kaiser/`",
            binary.display()
        ));
    };
    let options = super::python_setup::interpreter_options(config);
    if options.home.as_ref().is_some_and(|home| home.is_relative()) && config.chdir.is_some() {
        return note("a relative `home` is resolved after `chdir`".to_string());
    }
    let (python, python_home) = crate::python::python_for(&options).ok()?;
    // Only the interpreter build kaiser was made with: a venv of another build of the same
    // version (pyenv's, say) would run the app on a different Python than embedded.
    let built_with = Path::new(crate::python::BUILD_PYTHON);
    if std::fs::canonicalize(&python).ok() != std::fs::canonicalize(built_with).ok() {
        return note(format!(
            "`{}` is not `{}`, the Python kaiser was built with",
            python.display(),
            built_with.display()
        ));
    }
    let mut command = std::process::Command::new(&python);
    for _ in 0..options.optimize.min(2) {
        command.arg("-O");
    }
    if options.no_site {
        command.arg("-S");
    }
    command
        .arg("-c")
        .arg(BOOTSTRAP_COMMAND)
        .arg(&library)
        .arg(&binary)
        .args(args);
    // What Python reads as it starts (PYTHONPATH, PYTHONHASHSEED, LANG, …) as embedded it
    // would find it; the rest of the environment is brought up to date when the app loads
    // (`python::initialize`).
    for (key, value) in &config.env {
        command.env(key, value);
    }
    for key in &config.extra.unenv {
        command.env_remove(key);
    }
    command.env(BOOTSTRAP_ENV, BOOTSTRAP);
    if let Some(home) = python_home {
        command.env("PYTHONHOME", home);
    }
    let err = command.exec();
    note(format!("cannot run `{}`: {err}", python.display()))
}
