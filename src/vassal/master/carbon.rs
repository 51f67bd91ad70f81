//! The master's Carbon hook (`carbon`): every `carbon-freq` seconds it renders the stats
//! snapshot as Graphite lines (`vassal/carbon.rs`) and forks a short-lived child that sends
//! them to each server with `carbon-timeout`, so a slow or unreachable server never holds up
//! the loop (uWSGI pushes from a stats-pusher thread; this master has no threads). The child
//! is reaped like any unknown pid.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};

use super::*;
use crate::vassal::carbon::{self, Sampling};

pub(super) struct CarbonPush {
    next: Instant,
    sampling: Sampling,
    prefix: String,
}

impl CarbonPush {
    pub(super) fn new(config: &Config, sockets: &[BoundSocket], started: Instant) -> Option<Self> {
        if config.carbon.servers.is_empty() {
            return None;
        }
        let first = sockets
            .first()
            .map(|s| s.local.to_string())
            .unwrap_or_default();
        let prefix = carbon::prefix(&config.carbon, &sys::process::hostname(), &first);
        tracing::info!(
            servers = ?config.carbon.servers,
            prefix,
            freq = config.carbon.freq.as_secs(),
            "carbon: pushing the stats"
        );
        Some(CarbonPush {
            next: started + config.carbon.freq,
            sampling: Sampling::default(),
            prefix,
        })
    }
}

impl Master<'_> {
    pub(super) fn carbon_tick(&mut self, now: Instant) {
        if self.carbon.as_ref().is_none_or(|push| now < push.next) {
            return;
        }
        let stats = self.stats_snapshot();
        let config = &self.config.carbon;
        let memory = self.config.memory_report;
        let cheaper = self.cheaper.is_some();
        let Some(push) = self.carbon.as_mut() else {
            return;
        };
        push.next = now + config.freq;
        let lines = carbon::lines(
            &stats,
            config,
            &push.prefix,
            &mut push.sampling,
            unix_secs(),
            memory,
            cheaper,
        );
        match sys::fork::fork() {
            Ok(Forked::Child) => {
                let failed = config
                    .servers
                    .iter()
                    .filter(|server| send(server, lines.as_bytes(), config.timeout).is_err())
                    .count();
                sys::process::exit_now(i32::from(failed > 0))
            }
            Ok(Forked::Parent { .. }) => {}
            Err(error) => tracing::warn!("carbon: cannot fork the pusher: {error}"),
        }
    }
}

/// In the pusher child: one connection, all the lines, then close.
fn send(server: &str, lines: &[u8], timeout: Duration) -> std::io::Result<()> {
    let result = (|| {
        let mut last_error = None;
        for addr in server.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(mut stream) => {
                    stream.set_write_timeout(Some(timeout))?;
                    return stream.write_all(lines);
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| std::io::Error::other("no address")))
    })();
    if let Err(error) = &result {
        tracing::warn!(server, "carbon: could not push the stats: {error}");
    }
    result
}
