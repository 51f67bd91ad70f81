//! The options issue 15 brought from real uWSGI files that are not a subsystem of their own:
//! Python loading (`import`, `eval`, `paste`, `py-autoreload`, …), process set-up (`chroot`,
//! `add-gid`, `pidfile2`, `cpu-affinity`, …) and `enable-proxy-protocol`. They live in one
//! struct, [`Extra`], so that the shared `Config` grows by one field; this file applies them
//! from the option table and renders them for `--show-config`. It does no I/O.

use std::path::PathBuf;
use std::time::Duration;

/// Typed values of the issue-15 options; every field's default is "off".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extra {
    /// `shared-import`, then `import`: modules (or `.py` files) imported before the app.
    pub shared_imports: Vec<String>,
    pub imports: Vec<String>,
    /// `eval`: code run as the app's module.
    pub eval: Option<String>,
    /// `paste`: a paste.deploy URI (`config:/path.ini`).
    pub paste: Option<String>,
    pub paste_logger: bool,
    /// `pyargv`: `sys.argv[1:]`, split on spaces.
    pub pyargv: Option<String>,
    /// `optimize`: `python -O` level.
    pub optimize: u32,
    /// `py-autoreload`: check interval (zero: off).
    pub py_autoreload: Duration,
    pub py_executable: Option<PathBuf>,
    pub py_programname: Option<String>,
    pub wsgi_disable_file_wrapper: bool,
    pub chdir2: Option<PathBuf>,
    pub unenv: Vec<String>,
    pub pidfile2: Option<PathBuf>,
    pub safe_pidfile: Option<PathBuf>,
    pub safe_pidfile2: Option<PathBuf>,
    pub exit_on_reload: bool,
    pub chroot: Option<PathBuf>,
    pub add_gid: Vec<String>,
    pub no_initgroups: bool,
    pub immediate_uid: Option<String>,
    pub immediate_gid: Option<String>,
    pub reaper: bool,
    /// `limit-as` in bytes (zero: no limit).
    pub limit_as: u64,
    /// `cpu-affinity`: CPUs per worker (zero: off).
    pub cpu_affinity: u32,
    pub skip_atexit: bool,
    /// `enable-proxy-protocol`: read a PROXY header on HTTP sockets.
    pub proxy_protocol: bool,
    pub reload_on_exception: bool,
}

/// Applies one of these options (by canonical name) with its checked value. Returns
/// `None` when the name is not one of them, else the result of applying it.
pub(crate) fn apply(
    extra: &mut Extra,
    name: &str,
    value: &str,
    parse: &Parsers,
) -> Option<Result<(), String>> {
    let v = value;
    let done = |r: Result<(), String>| Some(r);
    match name {
        "shared-import" => done((parse.text)(v).map(|t| extra.shared_imports.push(t))),
        "import" => done((parse.text)(v).map(|t| extra.imports.push(t))),
        "eval" => done((parse.text)(v).map(|t| extra.eval = Some(t))),
        "paste" => done((parse.text)(v).map(|t| extra.paste = Some(paste_uri(&t)))),
        "paste-logger" => done(Ok(extra.paste_logger = (parse.boolean)(v))),
        "pyargv" => done(Ok(extra.pyargv = Some(v.to_string()))),
        "optimize" => done((parse.number)(v).and_then(|n| match n {
            0..=2 => Ok(extra.optimize = n as u32),
            _ => Err(format!(
                "Python's optimisation level is 0, 1 or 2, got `{v}`"
            )),
        })),
        "py-autoreload" => {
            done((parse.number)(v).map(|n| extra.py_autoreload = Duration::from_secs(n)))
        }
        "py-executable" => done((parse.path)(v).map(|p| extra.py_executable = Some(p))),
        "py-programname" => done((parse.text)(v).map(|t| extra.py_programname = Some(t))),
        "wsgi-disable-file-wrapper" => {
            done(Ok(extra.wsgi_disable_file_wrapper = (parse.boolean)(v)))
        }
        "chdir2" => done((parse.path)(v).map(|p| extra.chdir2 = Some(p))),
        "unenv" => done((parse.text)(v).map(|t| extra.unenv.push(t))),
        "pidfile2" => done((parse.path)(v).map(|p| extra.pidfile2 = Some(p))),
        "safe-pidfile" => done((parse.path)(v).map(|p| extra.safe_pidfile = Some(p))),
        "safe-pidfile2" => done((parse.path)(v).map(|p| extra.safe_pidfile2 = Some(p))),
        "exit-on-reload" => done(Ok(extra.exit_on_reload = (parse.boolean)(v))),
        "chroot" => done((parse.path)(v).map(|p| extra.chroot = Some(p))),
        "add-gid" => done((parse.text)(v).map(|t| extra.add_gid.push(t))),
        "no-initgroups" => done(Ok(extra.no_initgroups = (parse.boolean)(v))),
        "immediate-uid" => done((parse.text)(v).map(|t| extra.immediate_uid = Some(t))),
        "immediate-gid" => done((parse.text)(v).map(|t| extra.immediate_gid = Some(t))),
        "reaper" => done(Ok(extra.reaper = (parse.boolean)(v))),
        "limit-as" => done((parse.megabytes)(v).map(|b| extra.limit_as = b)),
        "cpu-affinity" => done((parse.number)(v).and_then(|n| {
            u32::try_from(n)
                .map(|n| extra.cpu_affinity = n)
                .map_err(|_| format!("`{v}` is too large"))
        })),
        "skip-atexit" => done(Ok(extra.skip_atexit = (parse.boolean)(v))),
        "enable-proxy-protocol" => done(Ok(extra.proxy_protocol = (parse.boolean)(v))),
        "reload-on-exception" => done(Ok(extra.reload_on_exception = (parse.boolean)(v))),
        _ => None,
    }
}

/// The value readers of `typed.rs`, handed in so that both files read values one way.
pub(crate) struct Parsers {
    pub text: fn(&str) -> Result<String, String>,
    pub path: fn(&str) -> Result<PathBuf, String>,
    pub number: fn(&str) -> Result<u64, String>,
    pub megabytes: fn(&str) -> Result<u64, String>,
    pub boolean: fn(&str) -> bool,
}

/// uWSGI hands `paste` to `loadapp` as written; a bare path is a config file.
fn paste_uri(value: &str) -> String {
    if value.contains(':') {
        value.to_string()
    } else {
        format!("config:{value}")
    }
}

/// `--show-config` lines for the options that differ from their defaults.
pub(crate) fn render(extra: &Extra, line: &mut impl FnMut(&str, &str)) {
    let path = |p: &PathBuf| p.display().to_string();
    for module in &extra.shared_imports {
        line("shared-import", module);
    }
    for module in &extra.imports {
        line("import", module);
    }
    if let Some(code) = &extra.eval {
        line("eval", code);
    }
    if let Some(uri) = &extra.paste {
        line("paste", uri);
    }
    if extra.paste_logger {
        line("paste-logger", "true");
    }
    if let Some(argv) = &extra.pyargv {
        line("pyargv", argv);
    }
    if extra.optimize != 0 {
        line("optimize", &extra.optimize.to_string());
    }
    if !extra.py_autoreload.is_zero() {
        line("py-autoreload", &extra.py_autoreload.as_secs().to_string());
    }
    if let Some(exe) = &extra.py_executable {
        line("py-executable", &path(exe));
    }
    if let Some(name) = &extra.py_programname {
        line("py-programname", name);
    }
    if extra.wsgi_disable_file_wrapper {
        line("wsgi-disable-file-wrapper", "true");
    }
    if let Some(dir) = &extra.chdir2 {
        line("chdir2", &path(dir));
    }
    for name in &extra.unenv {
        line("unenv", name);
    }
    for (key, file) in [
        ("pidfile2", &extra.pidfile2),
        ("safe-pidfile", &extra.safe_pidfile),
        ("safe-pidfile2", &extra.safe_pidfile2),
        ("chroot", &extra.chroot),
    ] {
        if let Some(file) = file {
            line(key, &path(file));
        }
    }
    for group in &extra.add_gid {
        line("add-gid", group);
    }
    if let Some(user) = &extra.immediate_uid {
        line("immediate-uid", user);
    }
    if let Some(group) = &extra.immediate_gid {
        line("immediate-gid", group);
    }
    if extra.limit_as != 0 {
        line(
            "limit-as",
            &format!("{}", extra.limit_as as f64 / (1024.0 * 1024.0)),
        );
    }
    if extra.cpu_affinity != 0 {
        line("cpu-affinity", &extra.cpu_affinity.to_string());
    }
    for (key, on) in [
        ("exit-on-reload", extra.exit_on_reload),
        ("no-initgroups", extra.no_initgroups),
        ("reaper", extra.reaper),
        ("skip-atexit", extra.skip_atexit),
        ("enable-proxy-protocol", extra.proxy_protocol),
        ("reload-on-exception", extra.reload_on_exception),
    ] {
        if on {
            line(key, "true");
        }
    }
}
