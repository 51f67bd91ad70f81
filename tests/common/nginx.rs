//! A private nginx for one test: its whole configuration, pid file, logs and temp paths live
//! in a [`TempDir`], it runs in the foreground (`daemon off`) in its own process group, and it
//! is killed with its workers on drop.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::paths::nginx_bin;
use super::process::{indent, LoggedProcess};
use super::tempdir::TempDir;
use super::wait::START_TIMEOUT;

/// Debian's `/etc/nginx/uwsgi_params` (nginx 1.22.1-9+deb12u11), written beside every test
/// nginx.conf so a `server` block can `include uwsgi_params;` exactly as a deployment does.
/// Note the last line: Debian now sends `HTTP_HOST` from `$host` (no port), not `$http_host`.
pub fn uwsgi_params() -> &'static str {
    "uwsgi_param  QUERY_STRING       $query_string;
uwsgi_param  REQUEST_METHOD     $request_method;
uwsgi_param  CONTENT_TYPE       $content_type;
uwsgi_param  CONTENT_LENGTH     $content_length;

uwsgi_param  REQUEST_URI        $request_uri;
uwsgi_param  PATH_INFO          $document_uri;
uwsgi_param  DOCUMENT_ROOT      $document_root;
uwsgi_param  SERVER_PROTOCOL    $server_protocol;
uwsgi_param  REQUEST_SCHEME     $scheme;
uwsgi_param  HTTPS              $https if_not_empty;

uwsgi_param  REMOTE_ADDR        $remote_addr;
uwsgi_param  REMOTE_PORT        $remote_port;
uwsgi_param  SERVER_PORT        $server_port;
uwsgi_param  SERVER_NAME        $server_name;

uwsgi_param  HTTP_HOST        $host;
"
}

pub struct Nginx {
    // Field order matters: the process is killed before its directory is removed.
    process: LoggedProcess,
    port: u16,
    dir: TempDir,
}

impl Nginx {
    /// Starts nginx with one `server` listening on 127.0.0.1 at a free port, whose body is
    /// `server_body`, e.g.
    /// `"location / { include uwsgi_params; uwsgi_pass unix:/tmp/…/app.sock; }"`.
    /// Returns once nginx accepts connections.
    pub fn start(server_body: &str) -> Nginx {
        Nginx::start_http(&format!(
            "server {{\n    listen 127.0.0.1:@PORT@;\n    server_name localhost;\n    {server_body}\n}}\n"
        ))
    }

    /// Starts nginx with `http_body` as the whole content of its `http` block, after the
    /// harness's own lines (logs and temp paths in the temp dir). `@PORT@` in it is replaced
    /// by the port chosen for it; the first `listen` must use it, since that is where
    /// readiness is checked. `@DIR@` is replaced by the temp dir.
    pub fn start_http(http_body: &str) -> Nginx {
        const ATTEMPTS: usize = 5;
        let mut failures = String::new();
        for attempt in 1..=ATTEMPTS {
            // nginx cannot listen on port 0, so pick a free port and hand it over; another
            // process may take it in between, in which case nginx fails to bind and we retry.
            let port = {
                let probe = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
                probe
                    .local_addr()
                    .expect("local_addr of a bound socket")
                    .port()
            };
            let dir = TempDir::new("nginx");
            let http_body = http_body
                .replace("@PORT@", &port.to_string())
                .replace("@DIR@", &dir.path().display().to_string());
            dir.write("uwsgi_params", uwsgi_params());
            let config = dir.write("nginx.conf", full_config(dir.path(), &http_body));

            let mut command = Command::new(nginx_bin());
            command
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&config)
                // Where nginx logs before it has read error_log from the config (it would
                // otherwise try /var/log/nginx/error.log).
                .arg("-e")
                .arg("stderr");
            let mut process = LoggedProcess::spawn("nginx", command);
            match wait_ready(&mut process, &dir, port) {
                Ok(()) => return Nginx { process, port, dir },
                Err(error) => {
                    let _ = writeln!(failures, "attempt {attempt} on port {port}: {error}");
                    let port_taken = process.logs().contains("Address already in use");
                    drop(process);
                    if !port_taken {
                        break;
                    }
                }
            }
        }
        panic!(
            "nginx did not start:\n{failures}config (http block):\n{}",
            indent(http_body)
        );
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The temp dir holding nginx.conf, uwsgi_params, nginx.pid, access.log and temp paths.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> i32 {
        self.process.pid()
    }

    /// nginx's error log (it logs to stderr, captured).
    pub fn error_log(&self) -> String {
        self.process.logs()
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    /// The process, for `wait_for_log` on the error log, or signals (`SIGHUP` reloads).
    pub fn process(&self) -> &LoggedProcess {
        &self.process
    }
}

fn full_config(dir: &Path, http_body: &str) -> String {
    let dir = dir.display();
    // As root the workers would switch to `nobody`, who cannot reach a test's sockets or temp
    // dirs; keep them as the user running the tests. As non-root the directive is ignored.
    // SAFETY: geteuid has no preconditions and cannot fail.
    let user = if unsafe { libc::geteuid() } == 0 {
        "user root root;"
    } else {
        ""
    };
    format!(
        "# written by tests/common/nginx.rs
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log stderr notice;
{user}

events {{
    worker_connections 1024;
}}

http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    default_type application/octet-stream;

{http_body}
}}
"
    )
}

/// Ready means: nginx wrote its pid file (it does so after binding its sockets) and its port
/// accepts a connection. Fails early if nginx exits.
fn wait_ready(process: &mut LoggedProcess, dir: &TempDir, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if let Some(status) = process.try_exit() {
            process.wait_output_closed(Duration::from_secs(1));
            return Err(format!(
                "nginx exited ({status}); its output:\n{}",
                indent(&process.logs())
            ));
        }
        if dir.join("nginx.pid").exists()
            && std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "nginx did not accept on {addr} within {START_TIMEOUT:?}; its output:\n{}",
                indent(&process.logs())
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
