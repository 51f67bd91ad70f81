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
    /// `py-auto-reload-ignore`: module names the reloader skips.
    pub py_autoreload_ignore: Vec<String>,
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
    let on = (parse.boolean)(v);
    let applied = (|| -> Result<bool, String> {
        match name {
            "shared-import" => extra.shared_imports.push((parse.text)(v)?),
            "import" => extra.imports.push((parse.text)(v)?),
            "eval" => extra.eval = Some((parse.text)(v)?),
            "paste" => extra.paste = Some(paste_uri(&(parse.text)(v)?)),
            "paste-logger" => extra.paste_logger = on,
            "pyargv" => extra.pyargv = Some(v.to_string()),
            "optimize" => {
                extra.optimize = match (parse.number)(v)? {
                    n @ 0..=2 => n as u32,
                    _ => {
                        return Err(format!(
                            "Python's optimisation level is 0, 1 or 2, got `{v}`"
                        ))
                    }
                }
            }
            "py-autoreload" => extra.py_autoreload = Duration::from_secs((parse.number)(v)?),
            "py-auto-reload-ignore" => extra.py_autoreload_ignore.push((parse.text)(v)?),
            "py-executable" => extra.py_executable = Some((parse.path)(v)?),
            "py-programname" => extra.py_programname = Some((parse.text)(v)?),
            "wsgi-disable-file-wrapper" => extra.wsgi_disable_file_wrapper = on,
            "chdir2" => extra.chdir2 = Some((parse.path)(v)?),
            "unenv" => extra.unenv.push((parse.text)(v)?),
            "pidfile2" => extra.pidfile2 = Some((parse.path)(v)?),
            "safe-pidfile" => extra.safe_pidfile = Some((parse.path)(v)?),
            "safe-pidfile2" => extra.safe_pidfile2 = Some((parse.path)(v)?),
            "exit-on-reload" => extra.exit_on_reload = on,
            "chroot" => extra.chroot = Some((parse.path)(v)?),
            "add-gid" => extra.add_gid.push((parse.text)(v)?),
            "no-initgroups" => extra.no_initgroups = on,
            "immediate-uid" => extra.immediate_uid = Some((parse.text)(v)?),
            "immediate-gid" => extra.immediate_gid = Some((parse.text)(v)?),
            "reaper" => extra.reaper = on,
            "limit-as" => extra.limit_as = (parse.megabytes)(v)?,
            "cpu-affinity" => {
                extra.cpu_affinity =
                    u32::try_from((parse.number)(v)?).map_err(|_| format!("`{v}` is too large"))?
            }
            "skip-atexit" => extra.skip_atexit = on,
            "enable-proxy-protocol" => extra.proxy_protocol = on,
            "reload-on-exception" => extra.reload_on_exception = on,
            _ => return Ok(false),
        }
        Ok(true)
    })();
    match applied {
        Ok(false) => None,
        Ok(true) => Some(Ok(())),
        Err(message) => Some(Err(message)),
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
    for module in &extra.py_autoreload_ignore {
        line("py-auto-reload-ignore", module);
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
