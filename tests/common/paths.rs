//! Where the things the tests run live: the kaiser binary, the fixture apps, the test venv
//! and nginx. The last two come from `scripts/setup-test-env` through the environment.

use std::path::{Path, PathBuf};

/// The `kaiser` binary cargo built for this test run.
pub fn kaiser_bin() -> &'static str {
    env!("CARGO_BIN_EXE_kaiser")
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/apps`, the fixture WSGI apps.
pub fn apps_dir() -> PathBuf {
    repo_root().join("tests").join("apps")
}

/// A fixture under `tests/apps`, e.g. `app("hello.py")`; panics if it does not exist.
pub fn app(relative: &str) -> PathBuf {
    let path = apps_dir().join(relative);
    assert!(path.exists(), "no fixture app {}", path.display());
    path
}

/// The test venv: made with /usr/bin/python3 (the Python kaiser embeds), with Flask, Django and
/// uwsgitop installed. Named by `KAISER_TEST_VENV`, which `scripts/test` sets.
pub fn venv() -> PathBuf {
    let hint = "run the tests with scripts/test, or run scripts/setup-test-env and export \
                KAISER_TEST_VENV=$PWD/target/test-venv";
    let Some(venv) = std::env::var_os("KAISER_TEST_VENV") else {
        panic!("KAISER_TEST_VENV is not set: {hint}");
    };
    let venv = PathBuf::from(venv);
    assert!(
        venv.join("bin").join("python").exists(),
        "KAISER_TEST_VENV={} has no bin/python: {hint}",
        venv.display()
    );
    venv
}

pub fn venv_python() -> PathBuf {
    venv().join("bin").join("python")
}

/// The nginx binary, from `KAISER_NGINX` (set by `scripts/test`), else Debian's path.
pub fn nginx_bin() -> PathBuf {
    let path = std::env::var_os("KAISER_NGINX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"));
    assert!(
        Path::new(&path).exists(),
        "no nginx at {}: run scripts/setup-test-env (it installs Debian's nginx) or set KAISER_NGINX",
        path.display()
    );
    path
}
