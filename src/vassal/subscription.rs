//! `subscribe-to` / `subscribe2`: the master announces this instance to uWSGI subscription
//! servers (a fastrouter's or HTTP router's `subscription-server`) every `subscribe-freq`
//! seconds, and withdraws it when the vassal stops, as uWSGI's master does
//! (core/subscription.c): one uwsgi packet per datagram, modifier1 224, modifier2 0 to
//! subscribe and 1 to unsubscribe, with the vars `key`, `address`, `modifier1`, `modifier2`,
//! `cores`, `load`, `weight` (and `backup` for `subscribe2`).
//!
//! A lost datagram is simply sent again next time; a router that is down is not an error.
//! It must not block the master: every send is a non-blocking datagram.

use std::time::{Duration, Instant};

use super::sockets::BoundSocket;
use crate::config::subscriptions::Subscription;
use crate::config::Config;
use crate::protocol::uwsgi::encode_packet;
use crate::sys::net::BindAddr;

const SUBSCRIBE: u8 = 0;
const UNSUBSCRIBE: u8 = 1;
/// uWSGI's modifier1 for subscription packets.
const MODIFIER1: u8 = 224;

pub struct Subscriptions {
    targets: Vec<Target>,
    every: Duration,
    next: Instant,
}

struct Target {
    subscription: Subscription,
    /// The announced address: `address=`, the `socket=N`th socket, or the first socket.
    address: String,
    cores: u64,
}

impl Subscriptions {
    /// `None` without subscriptions.
    pub fn new(config: &Config, sockets: &[BoundSocket], now: Instant) -> Option<Subscriptions> {
        if config.subscriptions.is_empty() {
            return None;
        }
        let cores = u64::from(config.processes.max(1)) * u64::from(config.threads.max(1));
        let targets = config
            .subscriptions
            .iter()
            .filter_map(|subscription| {
                let socket = sockets.get(subscription.socket.unwrap_or(0));
                let address = subscription
                    .address
                    .clone()
                    .or_else(|| socket.map(|s| s.local.to_string()));
                match address {
                    Some(address) => Some(Target {
                        subscription: subscription.clone(),
                        address,
                        cores,
                    }),
                    None => {
                        tracing::warn!(server = %subscription.server, key = %subscription.key, "subscription: no socket to announce; skipped");
                        None
                    }
                }
            })
            .collect();
        Some(Subscriptions {
            targets,
            every: config.subscribe_freq,
            next: now,
        })
    }

    /// When the next announcement is due.
    pub fn deadline(&self) -> Instant {
        self.next
    }

    /// Announces when due.
    pub fn tick(&mut self, now: Instant) {
        if now < self.next {
            return;
        }
        self.next = now + self.every;
        self.send_all(SUBSCRIBE);
    }

    /// Withdraws every subscription (the vassal is stopping).
    pub fn unsubscribe(&self) {
        self.send_all(UNSUBSCRIBE);
    }

    fn send_all(&self, command: u8) {
        for target in &self.targets {
            let packet = target.packet(command);
            if let Err(err) = send(&target.subscription.server, &packet) {
                tracing::debug!(server = %target.subscription.server, key = %target.subscription.key, error = %err, "subscription: cannot send");
            }
        }
    }
}

impl Target {
    fn packet(&self, command: u8) -> Vec<u8> {
        let sub = &self.subscription;
        let numbers = [
            sub.modifier1.to_string(),
            sub.modifier2.to_string(),
            self.cores.to_string(),
            // uWSGI's `load` (busy workers); the router only shows it.
            "0".to_string(),
            sub.weight.to_string(),
        ];
        let mut vars: Vec<(&[u8], &[u8])> = vec![
            (b"key", sub.key.as_bytes()),
            (b"address", self.address.as_bytes()),
            (b"modifier1", numbers[0].as_bytes()),
            (b"modifier2", numbers[1].as_bytes()),
            (b"cores", numbers[2].as_bytes()),
            (b"load", numbers[3].as_bytes()),
            (b"weight", numbers[4].as_bytes()),
        ];
        let backup = sub.backup.map(|b| b.to_string());
        if let Some(backup) = &backup {
            vars.push((b"backup", backup.as_bytes()));
        }
        encode_packet(MODIFIER1, command, &vars).unwrap_or_default()
    }
}

/// One datagram to `host:port` (UDP) or a unix datagram socket path.
fn send(server: &str, packet: &[u8]) -> std::io::Result<()> {
    if server.starts_with('/') || server.starts_with('@') {
        let addr = match server.strip_prefix('@') {
            Some(name) => BindAddr::Abstract(name.as_bytes().to_vec()),
            None => BindAddr::Unix(server.into()),
        };
        return crate::sys::net::send_datagram_to(&addr, packet);
    }
    let socket = std::net::UdpSocket::bind(if server.starts_with('[') {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    })?;
    socket.set_nonblocking(true)?;
    socket.send_to(packet, server).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::uwsgi::parse_packet;

    #[test]
    fn packets_are_uwsgi_subscriptions() {
        let target = Target {
            subscription: Subscription {
                server: "127.0.0.1:7171".into(),
                key: "example.com".into(),
                address: None,
                socket: None,
                modifier1: 0,
                modifier2: 0,
                weight: 0,
                backup: None,
            },
            address: "127.0.0.1:3031".into(),
            cores: 4,
        };
        let bytes = target.packet(UNSUBSCRIBE);
        assert_eq!((bytes[0], bytes[3]), (224, 1));
        // The server's parser takes WSGI packets only: read the vars block as one.
        let mut wsgi = bytes.clone();
        wsgi[0] = 0;
        let packet = parse_packet(&wsgi, 4096).unwrap().unwrap();
        let vars: Vec<(String, String)> = packet
            .vars
            .iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect();
        let expected: Vec<(String, String)> = [
            ("key", "example.com"),
            ("address", "127.0.0.1:3031"),
            ("modifier1", "0"),
            ("modifier2", "0"),
            ("cores", "4"),
            ("load", "0"),
            ("weight", "0"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(vars, expected);
    }
}
