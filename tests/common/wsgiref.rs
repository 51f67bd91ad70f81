//! A reference server: Python's own `wsgiref.simple_server` running a fixture app under
//! `wsgiref.validate.validator`, in the test venv. It shows that a fixture is a correct
//! PEP 3333 app independently of kaiser, and gives tests something to compare kaiser with.

use std::net::SocketAddr;
use std::ops::Deref;
use std::process::Command;

use super::paths::{repo_root, venv_python};
use super::process::LoggedProcess;
use super::wait::START_TIMEOUT;

pub struct WsgirefServer {
    process: LoggedProcess,
    addr: SocketAddr,
}

impl WsgirefServer {
    /// Runs `tests/common/wsgiref_server.py ARGS…` with the venv's python from the repository
    /// root, e.g. `["--wsgi-file", "tests/apps/hello.py"]` or
    /// `["--pythonpath", "tests/apps/django_site", "--module", "django_site.wsgi"]`; add
    /// `--no-validate` to serve the app bare. Returns once the port is known.
    pub fn start(args: &[&str]) -> WsgirefServer {
        let mut command = Command::new(venv_python());
        command
            .arg("-u")
            .arg(repo_root().join("tests/common/wsgiref_server.py"))
            .args(args)
            .current_dir(repo_root())
            .env("PYTHONDONTWRITEBYTECODE", "1");
        let process = LoggedProcess::spawn("wsgiref", command);
        let addr = process
            .wait_for_addr("wsgiref serving on", START_TIMEOUT)
            .unwrap_or_else(|error| panic!("{error}"));
        WsgirefServer { process, addr }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Deref for WsgirefServer {
    type Target = LoggedProcess;

    fn deref(&self) -> &LoggedProcess {
        &self.process
    }
}
