//! Starting the real binary on an HTTP socket and waiting until it serves.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::{request_bytes, wait_for_connect, Kaiser, START_TIMEOUT};

/// Starts `kaiser --http-socket 127.0.0.1:0 ARGS…` and waits until it has logged its address
/// and its workers accept. Panics with the logs if either does not happen in time.
pub fn start_http(args: &[&str]) -> (Kaiser, SocketAddr) {
    start_http_with(args, |_| {})
}

/// [`start_http`], letting `configure` change the command first (as [`Kaiser::spawn_with`]).
pub fn start_http_with(
    args: &[&str],
    configure: impl FnOnce(&mut std::process::Command),
) -> (Kaiser, SocketAddr) {
    let mut full = vec!["--http-socket", "127.0.0.1:0"];
    full.extend_from_slice(args);
    let kaiser = Kaiser::spawn_with(&full, configure);
    let addr = kaiser
        .wait_for_addr("protocol=\"http\"", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("kaiser did not report its http-socket: {e}"));
    kaiser
        .wait_for_log("ready in", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("kaiser's workers never became ready: {e}"));
    (kaiser, addr)
}

/// Starts `/stream?chunks=2&delay_ms=…` (tests/apps/wsgi_suite.py) and returns once the first
/// chunk arrived: the request is then certainly in flight in a worker.
pub fn in_flight(addr: SocketAddr, delay_ms: u32) -> TcpStream {
    let mut stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let request = request_bytes(
        "GET",
        &format!("/stream?chunks=2&delay_ms={delay_ms}"),
        &[("Connection", "close")],
        b"",
    );
    stream.write_all(&request).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("chunk 0") {
        let n = stream.read(&mut buf).expect("reading the first chunk");
        assert!(n > 0, "the server closed before the first chunk");
        seen.extend_from_slice(&buf[..n]);
    }
    stream
}

/// Everything left on `stream` until the server closes it.
pub fn read_rest(mut stream: TcpStream) -> String {
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    String::from_utf8_lossy(&rest).into_owned()
}

/// An instance started from an INI file, listening both for HTTP and for the uwsgi protocol
/// (the routing tests ask each route both ways).
pub struct Site {
    pub dir: super::TempDir,
    pub kaiser: Kaiser,
    pub http: SocketAddr,
    pub uwsgi: SocketAddr,
}

impl Site {
    /// Writes `ini` as `app.ini` in `dir` and starts kaiser on it with an HTTP socket and a
    /// uwsgi one, both on free ports.
    pub fn start(dir: super::TempDir, ini: String) -> Site {
        let ini_path = dir.write("app.ini", ini);
        let ini_arg = ini_path.display().to_string();
        let (kaiser, http) = start_http(&["--socket", "127.0.0.1:0", "--ini", &ini_arg]);
        let uwsgi = kaiser
            .wait_for_addr("protocol=\"uwsgi\"", START_TIMEOUT)
            .unwrap();
        Site {
            dir,
            kaiser,
            http,
            uwsgi,
        }
    }

    /// `GET target` over HTTP with `headers` (and `Connection: close`).
    pub fn get(&self, target: &str, headers: &[(&str, &str)]) -> super::Response {
        let stream = wait_for_connect(self.http, START_TIMEOUT).unwrap();
        let mut all = vec![("Connection", "close")];
        all.extend_from_slice(headers);
        super::http_request(stream, &request_bytes("GET", target, &all, b""))
            .unwrap_or_else(|e| panic!("GET {target}: {e}\n{}", self.kaiser.logs()))
    }

    /// `GET target` over the uwsgi protocol, with `extra` CGI variables.
    pub fn get_uwsgi(&self, target: &str, extra: &[(&str, &str)]) -> super::Response {
        let stream = wait_for_connect(self.uwsgi, START_TIMEOUT).unwrap();
        super::uwsgi_request(stream, &super::cgi_vars("GET", target, None, extra), b"")
            .unwrap_or_else(|e| panic!("uwsgi GET {target}: {e}\n{}", self.kaiser.logs()))
    }
}
