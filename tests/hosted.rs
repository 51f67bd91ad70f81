//! `py-hosted`: the master runs inside the venv's own `python3`, kaiser loaded into it as an
//! extension module (`src/python/hosted.rs`), and the app sees the same Python it sees
//! embedded. These tests run the real binary with the library `scripts/build-hosted` builds
//! beside it, and tell a hosted process from an embedded one by `/proc/PID/exe`.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;

/// The executable a process runs, as the kernel has it.
fn exe_of(pid: i32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/exe")).unwrap()
}

fn comm_of(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap()
        .trim()
        .to_string()
}

/// `/usr/bin/python3.11`: what the test venv's `bin/python` is a link to.
fn venv_interpreter() -> PathBuf {
    std::fs::canonicalize(venv_python()).unwrap()
}

fn get_json(addr: std::net::SocketAddr, target: &str) -> serde_json::Value {
    let response = http_get(addr, target).unwrap();
    assert_eq!(response.status, 200, "{response}");
    serde_json::from_str(&response.text()).unwrap_or_else(|e| panic!("not JSON ({e}): {response}"))
}

/// An app that answers with what Python's start left behind, as JSON.
const PROBE: &str = r#"
import json, os, signal, sys, __main__
import uwsgi

def application(environ, start_response):
    body = json.dumps({
        "argv": sys.argv,
        "path": sys.path[:2],
        "executable": sys.executable,
        "prefix": sys.prefix,
        "optimize": sys.flags.optimize,
        "no_site": sys.flags.no_site,
        "sigint": repr(signal.getsignal(signal.SIGINT)),
        "sigxfsz": repr(signal.getsignal(signal.SIGXFSZ)),
        "sigpipe": repr(signal.getsignal(signal.SIGPIPE)),
        "main": sorted(name for name in vars(__main__) if not name.startswith("__")),
        "kaiser_env": sorted(name for name in os.environ if name.startswith("KAISER_HOSTED")),
        "worker_id": uwsgi.worker_id(),
        "pid": os.getpid(),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
"#;

#[test]
fn a_hosted_master_runs_in_the_venvs_python3_and_serves_flask() {
    hosted_library();
    let flask = app("flask_app/app.py");
    let home = venv();
    let (kaiser, addr) = start_http(&[
        "--wsgi-file",
        flask.to_str().unwrap(),
        "--home",
        home.to_str().unwrap(),
        "--master",
        "--processes",
        "2",
        "--py-hosted",
    ]);
    assert_eq!(
        exe_of(kaiser.pid()),
        venv_interpreter(),
        "{}",
        kaiser.logs()
    );
    assert_eq!(comm_of(kaiser.pid()), "kaiser");
    let got = get_json(addr, "/json");
    assert_eq!(got["framework"], "flask", "{got}");
    let worker = i32::try_from(got["pid"].as_i64().unwrap()).unwrap();
    assert_ne!(worker, kaiser.pid(), "a worker answers, not the master");
    assert_eq!(exe_of(worker), venv_interpreter());
    assert_eq!(
        comm_of(worker),
        "kaiser",
        "ps and top name the workers as embedded"
    );
    assert!(
        !kaiser.logs().contains("runs embedded"),
        "{}",
        kaiser.logs()
    );
}

#[test]
fn python_starts_the_same_hosted_as_embedded() {
    hosted_library();
    let dir = TempDir::new("probe");
    let probe = dir.write("probe.py", PROBE);
    let home = venv();
    let run = |hosted: &str| {
        let (kaiser, addr) = start_http(&[
            "--wsgi-file",
            probe.to_str().unwrap(),
            "--home",
            home.to_str().unwrap(),
            "--master",
            "--optimize",
            "1",
            "--pyargv",
            "--settings prod",
            &format!("--py-hosted={hosted}"),
        ]);
        let exe = exe_of(kaiser.pid());
        let mut got = get_json(addr, "/");
        got.as_object_mut().unwrap().remove("pid");
        (exe, got)
    };
    let (embedded_exe, embedded) = run("false");
    let (hosted_exe, hosted) = run("true");
    assert_eq!(embedded_exe, std::fs::canonicalize(kaiser_bin()).unwrap());
    assert_eq!(hosted_exe, venv_interpreter());
    assert_eq!(hosted, embedded);
    // And what they are, so that both cannot be wrong the same way.
    assert_eq!(
        hosted["argv"],
        serde_json::json!(["uwsgi", "--settings", "prod"]),
        "{hosted}"
    );
    assert_eq!(hosted["path"][0], "", "{hosted}");
    assert_eq!(hosted["optimize"], 1, "{hosted}");
    assert_eq!(hosted["prefix"], home.to_str().unwrap(), "{hosted}");
    assert_eq!(hosted["sigxfsz"], "<Handlers.SIG_DFL: 0>", "{hosted}");
    assert_eq!(hosted["main"], serde_json::json!([]), "{hosted}");
    assert_eq!(hosted["kaiser_env"], serde_json::json!([]), "{hosted}");
    assert_eq!(hosted["worker_id"], 1, "{hosted}");
}

#[test]
fn a_hosted_master_reloads_in_place_and_stays_hosted() {
    hosted_library();
    let home = venv();
    let (kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--home",
        home.to_str().unwrap(),
        "--master",
        "--py-hosted",
    ]);
    assert_eq!(
        exe_of(kaiser.pid()),
        venv_interpreter(),
        "{}",
        kaiser.logs()
    );
    let mark = kaiser.log_mark();
    kaiser.signal(libc::SIGHUP);
    kaiser
        .wait_for_log_since(mark, "reloaded in", Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        exe_of(kaiser.pid()),
        venv_interpreter(),
        "{}",
        kaiser.logs()
    );
    let response = http_get(addr, "/").unwrap();
    assert_eq!(response.status, 200, "{response}");
    assert!(
        !kaiser.logs().contains("runs embedded"),
        "{}",
        kaiser.logs()
    );
}

#[test]
fn a_master_that_cannot_be_hosted_runs_embedded_and_says_why() {
    hosted_library();
    let (kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--master",
        "--lazy-apps",
        "--py-hosted",
    ]);
    kaiser
        .wait_for_log(
            "py-hosted: the master runs embedded: `lazy-apps` starts Python in each worker",
            START_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        exe_of(kaiser.pid()),
        std::fs::canonicalize(kaiser_bin()).unwrap()
    );
    assert_eq!(http_get(addr, "/").unwrap().status, 200);
}

#[test]
fn without_the_library_the_master_runs_embedded_and_says_where_it_looked() {
    let dir = TempDir::new("bare-binary");
    let binary = dir.path().join("kaiser");
    std::fs::copy(kaiser_bin(), &binary).unwrap();
    let mut command = Command::new(&binary);
    command
        .args([
            "--http-socket",
            "127.0.0.1:0",
            "--wsgi-file",
            "tests/apps/hello.py",
            "--master",
            "--py-hosted",
        ])
        .current_dir(repo_root())
        .env("NO_COLOR", "1");
    let kaiser = LoggedProcess::spawn("kaiser", command);
    let addr = kaiser
        .wait_for_addr("protocol=\"http\"", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    kaiser
        .wait_for_log(
            &format!(
                "py-hosted: the master runs embedded: no `libkaiser.so` beside `{}`",
                binary.display()
            ),
            START_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    assert_eq!(exe_of(kaiser.pid()), binary);
    assert_eq!(http_get(addr, "/").unwrap().status, 200);
}

#[test]
fn a_venv_of_another_python_build_runs_embedded_and_says_so() {
    hosted_library();
    // `--copies`: the venv's `bin/python` is a file of its own, the same version but not the
    // interpreter kaiser was built with, as a pyenv or conda venv would be.
    let dir = TempDir::new("copied-venv");
    let home = dir.path().join("venv");
    let made = Command::new("/usr/bin/python3")
        .args(["-m", "venv", "--copies", "--without-pip"])
        .arg(&home)
        .status()
        .unwrap();
    assert!(made.success());
    let (kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--home",
        home.to_str().unwrap(),
        "--master",
        "--py-hosted",
    ]);
    kaiser
        .wait_for_log(
            &format!(
                "py-hosted: the master runs embedded: `{}` is not `/usr/bin/python3`, the Python kaiser was built with",
                home.join("bin/python").display()
            ),
            START_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        exe_of(kaiser.pid()),
        std::fs::canonicalize(kaiser_bin()).unwrap()
    );
    assert_eq!(http_get(addr, "/").unwrap().status, 200);
}

#[test]
fn by_default_a_master_is_hosted_where_it_can_be_and_quietly_embedded_where_not() {
    hosted_library();
    let home = venv();
    // The default, whatever pass of the suite this is (`scripts/test`).
    let by_default = |command: &mut Command| {
        command.env_remove("UWSGI_PY_HOSTED");
    };
    let (hosted, addr) = start_http_with(
        &[
            "--wsgi-file",
            "tests/apps/hello.py",
            "--home",
            home.to_str().unwrap(),
            "--master",
        ],
        by_default,
    );
    assert_eq!(
        exe_of(hosted.pid()),
        venv_interpreter(),
        "{}",
        hosted.logs()
    );
    hosted
        .wait_for_log("py-hosted: the master runs inside python3", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(http_get(addr, "/").unwrap().status, 200);
    let (embedded, addr) = start_http_with(
        &[
            "--wsgi-file",
            "tests/apps/hello.py",
            "--master",
            "--lazy-apps",
        ],
        by_default,
    );
    assert_eq!(
        exe_of(embedded.pid()),
        std::fs::canonicalize(kaiser_bin()).unwrap()
    );
    assert_eq!(http_get(addr, "/").unwrap().status, 200);
    assert!(
        !embedded.logs().contains("py-hosted"),
        "quietly: {}",
        embedded.logs()
    );
}
