//! Starting the real binary on an HTTP socket and waiting until it serves.

use std::net::SocketAddr;

use super::{Kaiser, START_TIMEOUT};

/// Starts `kaiser --http-socket 127.0.0.1:0 ARGS…` and waits until it has logged its address
/// and its workers accept. Panics with the logs if either does not happen in time.
pub fn start_http(args: &[&str]) -> (Kaiser, SocketAddr) {
    let mut full = vec!["--http-socket", "127.0.0.1:0"];
    full.extend_from_slice(args);
    let kaiser = Kaiser::spawn(&full);
    let addr = kaiser
        .wait_for_addr("protocol=\"http\"", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("kaiser did not report its http-socket: {e}"));
    kaiser
        .wait_for_log("ready in", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("kaiser's workers never became ready: {e}"));
    (kaiser, addr)
}
