//! uWSGI's Python loading options (issue 15): `import`/`shared-import` before the app,
//! `eval` and `paste` as app loaders, `pyargv`, `optimize`, `py-programname`,
//! `py-executable`, `chdir2`, `unenv`, `wsgi-disable-file-wrapper`, `lazy`, and
//! `py-autoreload` picking up an edited module.

mod common;

use std::time::{Duration, SystemTime};

use common::*;

/// An app that answers with `expression` (Python, evaluated per request) as JSON.
fn json_app(dir: &TempDir, name: &str, prelude: &str, expression: &str) -> String {
    let path = dir.write(
        name,
        format!(
            "import json, os, sys\n{prelude}\n\
             def application(environ, start_response):\n    \
                 body = json.dumps({expression}).encode()\n    \
                 start_response('200 OK', [('Content-Type', 'application/json'), ('Content-Length', str(len(body)))])\n    \
                 return [body]\n"
        ),
    );
    path.display().to_string()
}

fn get_json(addr: std::net::SocketAddr, target: &str) -> serde_json::Value {
    let response = http_get(addr, target).unwrap();
    serde_json::from_str(&response.text()).unwrap_or_else(|e| panic!("not JSON ({e}): {response}"))
}

#[test]
fn import_and_shared_import_run_before_the_app_in_order() {
    let dir = TempDir::new("imports");
    let note = |name: &str| {
        format!("import os\nos.environ['KAISER_ORDER'] = os.environ.get('KAISER_ORDER', '') + '{name},'\n")
    };
    dir.write("first_import.py", note("import"));
    let by_file = dir.write("by_file.py", note("file"));
    dir.write("shared_one.py", note("shared"));
    let app = json_app(
        &dir,
        "app.py",
        "os.environ['KAISER_ORDER'] += 'app,'",
        "os.environ['KAISER_ORDER']",
    );
    let (_kaiser, addr) = start_http(&[
        "--pythonpath",
        dir.path().to_str().unwrap(),
        "--import",
        "first_import",
        "--pyimport",
        by_file.to_str().unwrap(),
        "--shared-import",
        "shared_one",
        "--wsgi-file",
        &app,
    ]);
    assert_eq!(get_json(addr, "/"), "shared,import,file,app,");
}

#[test]
fn a_failing_import_stops_the_start_naming_the_module() {
    let mut kaiser = Kaiser::spawn(&[
        "--http-socket",
        "127.0.0.1:0",
        "--import",
        "no_such_module_kaiser",
        "--wsgi-file",
        "tests/apps/hello.py",
    ]);
    let status = kaiser.expect_exit(START_TIMEOUT);
    assert_eq!(status.code(), Some(22), "{}", kaiser.logs());
    assert!(
        kaiser
            .logs()
            .contains("importing the app from `no_such_module_kaiser` failed"),
        "{}",
        kaiser.logs()
    );
}

#[test]
fn pyargv_optimize_programname_and_executable_reach_sys() {
    let dir = TempDir::new("sys");
    let app = json_app(
        &dir,
        "app.py",
        "",
        "{'argv': sys.argv, 'optimize': sys.flags.optimize, 'executable': sys.executable, 'debug': __debug__}",
    );
    let (_kaiser, addr) = start_http(&[
        "--wsgi-file",
        &app,
        "--pyargv",
        "--settings prod  -v",
        "--optimize",
        "1",
        "--py-programname",
        "myprog",
        "--py-executable",
        "/opt/python/bin/python3",
    ]);
    let got = get_json(addr, "/");
    assert_eq!(
        got["argv"],
        serde_json::json!(["myprog", "--settings", "prod", "-v"]),
        "{got}"
    );
    assert_eq!(got["optimize"], 1, "{got}");
    assert_eq!(got["debug"], false, "-O turns __debug__ off: {got}");
    assert_eq!(got["executable"], "/opt/python/bin/python3", "{got}");
}

#[test]
fn eval_code_is_the_app() {
    let dir = TempDir::new("eval");
    let ini = dir.write(
        "app.ini",
        "[uwsgi]\nhttp-socket = 127.0.0.1:0\n\
         eval = import os;application = lambda environ, start_response: (start_response('200 OK', [('Content-Type', 'text/plain')]), [('from eval in ' + __name__).encode()])[1]\n",
    );
    let kaiser = Kaiser::spawn(&["--ini", ini.to_str().unwrap()]);
    let addr = kaiser
        .wait_for_addr("protocol=\"http\"", START_TIMEOUT)
        .unwrap();
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    assert_eq!(
        http_get(addr, "/").unwrap().text(),
        "from eval in uwsgi_eval_config"
    );
}

#[test]
fn paste_loads_the_app_through_paste_deploy() {
    let dir = TempDir::new("paste");
    dir.write(
        "pasteapp.py",
        "def make_app(global_conf, greeting='?'):\n    \
             def app(environ, start_response):\n        \
                 start_response('200 OK', [('Content-Type', 'text/plain')])\n        \
                 return [greeting.encode()]\n    \
             return app\n",
    );
    let paste_ini = dir.write(
        "development.ini",
        "[uwsgi]\nprocesses = 2\n\n[app:main]\npaste.app_factory = pasteapp:make_app\ngreeting = hello from paste\n",
    );
    let venv = venv();
    for (option, value) in [
        ("--paste", format!("config:{}", paste_ini.display())),
        ("--ini-paste", paste_ini.display().to_string()),
    ] {
        let (kaiser, addr) = start_http(&[
            "--home",
            venv.to_str().unwrap(),
            "--pythonpath",
            dir.path().to_str().unwrap(),
            option,
            &value,
        ]);
        assert_eq!(
            http_get(addr, "/").unwrap().text(),
            "hello from paste",
            "{option}"
        );
        if option == "--ini-paste" {
            assert!(
                kaiser.logs().contains("workers=2"),
                "the file's [uwsgi] section was not read:\n{}",
                kaiser.logs()
            );
        }
    }
}

#[test]
fn chdir2_unenv_and_the_file_wrapper_switch() {
    let dir = TempDir::new("chdir2");
    let app = json_app(
        &dir,
        "app.py",
        "",
        "{'cwd': os.getcwd(), 'secret': os.environ.get('KAISER_TEST_SECRET', 'unset'), 'kept': os.environ.get('KAISER_TEST_KEPT'), 'wrapper': 'wsgi.file_wrapper' in environ}",
    );
    let (_kaiser, addr) = start_http_with(
        &[
            "--wsgi-file",
            &app,
            "--chdir2",
            dir.path().to_str().unwrap(),
            "--unenv",
            "KAISER_TEST_SECRET",
            "--env",
            "KAISER_TEST_KEPT=yes",
            "--wsgi-disable-file-wrapper",
        ],
        |command| {
            command.env("KAISER_TEST_SECRET", "s3cret");
        },
    );
    let got = get_json(addr, "/");
    let canonical = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(got["cwd"], canonical.display().to_string(), "{got}");
    assert_eq!(got["secret"], "unset", "{got}");
    assert_eq!(got["kept"], "yes", "{got}");
    assert_eq!(got["wrapper"], false, "{got}");

    let (_kaiser, addr) = start_http(&["--wsgi-file", &app]);
    assert_eq!(
        get_json(addr, "/")["wrapper"],
        true,
        "the file wrapper is there by default"
    );
}

#[test]
fn lazy_is_lazy_apps() {
    let (kaiser, addr) = start_http(&["--wsgi-file", "tests/apps/hello.py", "--lazy"]);
    kaiser
        .wait_for_log("app loaded in worker (lazy-apps)", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(http_get(addr, "/").unwrap().text(), "Hello World");
}

#[test]
fn py_autoreload_picks_up_an_edited_module() {
    let dir = TempDir::new("autoreload");
    let module = dir.write("greeting.py", "TEXT = 'version 1'\n");
    let ignored = dir.write("settings_local.py", "DEBUG = True\n");
    // `settings_local` comes first in `sys.modules`: were it watched, its edit below would be
    // the one the reload names.
    let app = json_app(
        &dir,
        "app.py",
        "import settings_local, greeting",
        "greeting.TEXT",
    );
    let (kaiser, addr) = start_http(&[
        "--pythonpath",
        dir.path().to_str().unwrap(),
        "--wsgi-file",
        &app,
        "--py-autoreload",
        "1",
        "--py-auto-reload-ignore",
        "settings_local",
    ]);
    assert_eq!(get_json(addr, "/"), "version 1");
    kaiser
        .wait_for_log("py-autoreload: watching the loaded modules", START_TIMEOUT)
        .unwrap();
    // Later mtimes than the first scan saw, whatever the filesystem's timestamp granularity.
    for (path, text) in [
        (&ignored, "DEBUG = False\n"),
        (&module, "TEXT = 'version 2'\n"),
    ] {
        std::fs::write(path, text).unwrap();
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
    }
    wait_until(
        "the edited module to be served",
        Duration::from_secs(30),
        |seen| {
            let text = http_get(addr, "/").map(|r| r.text()).unwrap_or_else(|e| e);
            *seen = text.clone();
            Ok((text == "\"version 2\"").then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", kaiser.logs()));
    let reload_line = kaiser
        .logs()
        .lines()
        .find(|line| line.contains("module file modified; reloading"))
        .unwrap_or_else(|| panic!("no reload line:\n{}", kaiser.logs()))
        .to_string();
    assert!(
        reload_line.contains("greeting.py"),
        "the ignored module triggered it: {reload_line}"
    );
}

/// The interpreter kaiser embeds loads C extension modules, which find the `Py*` symbols in
/// the kaiser binary itself when it links libpython statically (build.rs): the standard
/// library's own (`lib-dynload`: `_json`, `_decimal`, `_ssl`, `_sqlite3`, `_ctypes`) and a venv
/// package's (markupsafe's `_speedups`, which Flask's templates use).
#[test]
fn c_extension_modules_load_in_the_embedded_interpreter() {
    let dir = TempDir::new("cext");
    let app = json_app(
        &dir,
        "app.py",
        "import _json, _decimal, _ssl, _sqlite3, _ctypes, decimal, sqlite3, ctypes, ssl\n\
         import markupsafe._speedups as speedups",
        "{'decimal': str(decimal.Decimal(1) / decimal.Decimal(8)), \
          'sqlite': sqlite3.connect(':memory:').execute('select 6 * 7').fetchone()[0], \
          'ctypes': ctypes.c_int(-5).value, 'ssl': ssl.OPENSSL_VERSION.split()[0], \
          'json': _json.__file__.endswith('.so'), \
          'escape': speedups._escape_inner('<a>'), \
          }",
    );
    let home = venv();
    let (_kaiser, addr) = start_http(&["--home", home.to_str().unwrap(), "--wsgi-file", &app]);
    let got = get_json(addr, "/");
    assert_eq!(got["decimal"], "0.125", "{got}");
    assert_eq!(got["sqlite"], 42, "{got}");
    assert_eq!(got["ctypes"], -5, "{got}");
    assert_eq!(got["ssl"], "OpenSSL", "{got}");
    assert_eq!(got["json"], true, "{got}");
    assert_eq!(got["escape"], "&lt;a&gt;", "{got}");
}
