//! The fastrouter's key → node maps: the subscription table (nodes announced by
//! `subscribe-to`, dropped when they unsubscribe or stop announcing) and the static nodes of
//! `fastrouter-to` (taken in turn, a refusing one skipped for `fastrouter-gracetime`).
//!
//! Pure bookkeeping: times come in as arguments; it must not touch sockets.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::protocol::uwsgi::{parse_vars, MAX_VARS};

/// uWSGI's modifier1 for subscription packets.
const SUBSCRIPTION_MODIFIER1: u8 = 224;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub address: String,
    /// The node's `modifier1`/`modifier2`, written into the forwarded header (subscribed
    /// nodes only; other maps keep the client's).
    pub modifiers: Option<(u8, u8)>,
    /// The `fastrouter-to` node it is, to mark it dead if it refuses.
    pub static_index: Option<usize>,
    /// The key a subscribed node is under, to drop it if it refuses.
    pub subscribed_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    address: String,
    modifier1: u8,
    modifier2: u8,
    /// Requests it takes per round (its `weight`, at least 1).
    weight: u32,
    /// Requests it took this round.
    taken: u32,
    /// Requests it was picked for.
    requests: u64,
    last_seen: Instant,
}

/// What a subscription datagram did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// A node not known before.
    New { key: String, address: String },
    /// A known node announced itself again.
    Refreshed,
    /// A node withdrew.
    Removed { key: String, address: String },
    /// An unsubscription for a node not known.
    Unknown,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadSubscriptionError {
    #[error("not a subscription packet (modifier1 {0}, expected 224)")]
    NotSubscription(u8),
    #[error("truncated or malformed packet")]
    Malformed,
    #[error("no `{0}` in the packet")]
    Missing(&'static str),
}

/// The subscription server's table.
#[derive(Debug)]
pub struct Subscriptions {
    keys: HashMap<String, Slot>,
    tolerance: Duration,
}

#[derive(Debug, Default)]
struct Slot {
    nodes: Vec<Node>,
    /// Requests for this key.
    hits: u64,
}

impl Subscriptions {
    pub fn new(tolerance: Duration) -> Subscriptions {
        Subscriptions {
            keys: HashMap::new(),
            tolerance,
        }
    }

    /// Applies one datagram (a uwsgi packet, modifier1 224; modifier2 0 subscribes, 1
    /// unsubscribes).
    pub fn handle(
        &mut self,
        datagram: &[u8],
        now: Instant,
    ) -> Result<Announcement, ReadSubscriptionError> {
        let [modifier1, lo, hi, command, block @ ..] = datagram else {
            return Err(ReadSubscriptionError::Malformed);
        };
        if *modifier1 != SUBSCRIPTION_MODIFIER1 {
            return Err(ReadSubscriptionError::NotSubscription(*modifier1));
        }
        let size = u16::from_le_bytes([*lo, *hi]);
        let block = block
            .get(..usize::from(size))
            .ok_or(ReadSubscriptionError::Malformed)?;
        let vars =
            parse_vars(block, size, MAX_VARS).map_err(|_| ReadSubscriptionError::Malformed)?;
        let get = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name.as_bytes())
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        let key = get("key").ok_or(ReadSubscriptionError::Missing("key"))?;
        let address = get("address").ok_or(ReadSubscriptionError::Missing("address"))?;
        let number = |name: &str| {
            get(name)
                .and_then(|v| v.trim().parse::<u8>().ok())
                .unwrap_or(0)
        };
        if *command == 1 {
            let Some(slot) = self.keys.get_mut(&key) else {
                return Ok(Announcement::Unknown);
            };
            let before = slot.nodes.len();
            slot.nodes.retain(|n| n.address != address);
            let removed = slot.nodes.len() < before;
            if slot.nodes.is_empty() {
                self.keys.remove(&key);
            }
            return Ok(if removed {
                Announcement::Removed { key, address }
            } else {
                Announcement::Unknown
            });
        }
        let slot = self.keys.entry(key.clone()).or_default();
        let (modifier1, modifier2) = (number("modifier1"), number("modifier2"));
        let weight = get("weight")
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(1)
            .max(1);
        if let Some(node) = slot.nodes.iter_mut().find(|n| n.address == address) {
            node.last_seen = now;
            node.modifier1 = modifier1;
            node.modifier2 = modifier2;
            node.weight = weight;
            return Ok(Announcement::Refreshed);
        }
        slot.nodes.push(Node {
            address: address.clone(),
            modifier1,
            modifier2,
            weight,
            taken: 0,
            requests: 0,
            last_seen: now,
        });
        Ok(Announcement::New { key, address })
    }

    /// Drops the nodes that have not announced themselves within the tolerance; returns
    /// them as `(key, address)`.
    pub fn expire(&mut self, now: Instant) -> Vec<(String, String)> {
        let mut dropped = Vec::new();
        let tolerance = self.tolerance;
        self.keys.retain(|key, slot| {
            slot.nodes.retain(|node| {
                let alive = now.saturating_duration_since(node.last_seen) <= tolerance;
                if !alive {
                    dropped.push((key.clone(), node.address.clone()));
                }
                alive
            });
            !slot.nodes.is_empty()
        });
        dropped
    }

    /// The next node for `key`: uWSGI's weighted round robin, where each node takes
    /// `weight` requests in a row per round, in the order the nodes subscribed.
    pub fn pick(&mut self, key: &str) -> Option<Target> {
        let slot = self.keys.get_mut(key)?;
        slot.hits += 1;
        if slot.nodes.iter().all(|n| n.taken >= n.weight) {
            slot.nodes.iter_mut().for_each(|n| n.taken = 0);
        }
        let node = slot.nodes.iter_mut().find(|n| n.taken < n.weight)?;
        node.taken += 1;
        node.requests += 1;
        Some(Target {
            address: node.address.clone(),
            modifiers: Some((node.modifier1, node.modifier2)),
            static_index: None,
            subscribed_key: Some(key.to_string()),
        })
    }

    /// The `subscriptions` list of the stats document, in uWSGI's layout (`now_unix` is the
    /// wall clock at `now`).
    pub fn stats(&self, now: Instant, now_unix: u64) -> serde_json::Value {
        let mut keys: Vec<&String> = self.keys.keys().collect();
        keys.sort();
        let list = keys
            .into_iter()
            .map(|key| {
                let slot = &self.keys[key];
                let nodes: Vec<serde_json::Value> = slot
                    .nodes
                    .iter()
                    .map(|n| {
                        let age = now.saturating_duration_since(n.last_seen).as_secs();
                        serde_json::json!({
                            "name": n.address,
                            "modifier1": n.modifier1,
                            "modifier2": n.modifier2,
                            "last_check": now_unix.saturating_sub(age),
                            "requests": n.requests,
                            "weight": n.weight,
                            "wrr": n.taken,
                            "failcnt": 0,
                            "death_mark": 0,
                        })
                    })
                    .collect();
                serde_json::json!({
                    "key": key,
                    "hits": slot.hits,
                    "algo": "wrr",
                    "nodes": nodes,
                })
            })
            .collect();
        serde_json::Value::Array(list)
    }

    /// A node that refused a connection is dropped, as uWSGI marks it failed; it comes back
    /// with its next announcement.
    pub fn remove(&mut self, key: &str, address: &str) -> bool {
        let Some(slot) = self.keys.get_mut(key) else {
            return false;
        };
        let before = slot.nodes.len();
        slot.nodes.retain(|n| n.address != address);
        let removed = slot.nodes.len() < before;
        if slot.nodes.is_empty() {
            self.keys.remove(key);
        }
        removed
    }

    /// How many nodes `key` has.
    #[cfg(test)]
    pub fn nodes_of(&self, key: &str) -> usize {
        self.keys.get(key).map_or(0, |slot| slot.nodes.len())
    }
}

/// `fastrouter-to`: static nodes taken in turn.
#[derive(Debug)]
pub struct StaticNodes {
    nodes: Vec<(String, Option<Instant>)>,
    /// Requests each node was picked for.
    hits: Vec<u64>,
    next: usize,
    gracetime: Duration,
}

impl StaticNodes {
    pub fn new(nodes: &[String], gracetime: Duration) -> StaticNodes {
        StaticNodes {
            nodes: nodes.iter().map(|n| (n.clone(), None)).collect(),
            hits: vec![0; nodes.len()],
            next: 0,
            gracetime,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The next node not marked dead (a dead one comes back once its gracetime passed).
    pub fn pick(&mut self, now: Instant) -> Option<Target> {
        let count = self.nodes.len();
        for _ in 0..count {
            let index = self.next % count;
            self.next = (index + 1) % count;
            let (address, dead_since) = &mut self.nodes[index];
            if let Some(since) = dead_since {
                if now.saturating_duration_since(*since) < self.gracetime {
                    continue;
                }
                *dead_since = None;
            }
            self.hits[index] += 1;
            return Some(Target {
                address: address.clone(),
                modifiers: None,
                static_index: Some(index),
                subscribed_key: None,
            });
        }
        None
    }

    /// The `static_nodes` list of the stats document: `grace` is when a node was marked
    /// dead (unix seconds), 0 when it is not.
    pub fn stats(&self, now: Instant, now_unix: u64) -> serde_json::Value {
        let list = self
            .nodes
            .iter()
            .zip(&self.hits)
            .map(|((name, dead_since), hits)| {
                let grace = dead_since.map_or(0, |since| {
                    now_unix.saturating_sub(now.saturating_duration_since(since).as_secs())
                });
                serde_json::json!({ "name": name, "hits": hits, "grace": grace })
            })
            .collect();
        serde_json::Value::Array(list)
    }

    /// The node refused a connection.
    pub fn mark_dead(&mut self, index: usize, now: Instant) {
        if let Some((_, dead_since)) = self.nodes.get_mut(index) {
            *dead_since = Some(now);
        }
    }
}

/// `fastrouter-use-pattern`: `%s` replaced by the key.
pub fn from_pattern(pattern: &str, key: &str) -> String {
    pattern.replace("%s", key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::uwsgi::encode_packet;

    fn packet(command: u8, key: &str, address: &str) -> Vec<u8> {
        weighted(command, key, address, "1")
    }

    fn weighted(command: u8, key: &str, address: &str, weight: &str) -> Vec<u8> {
        encode_packet(
            224,
            command,
            &[
                (b"key", key.as_bytes()),
                (b"address", address.as_bytes()),
                (b"modifier1", b"0"),
                (b"weight", weight.as_bytes()),
            ],
        )
        .unwrap()
    }

    #[test]
    fn each_node_takes_its_weight_per_round() {
        let now = Instant::now();
        let mut table = Subscriptions::new(Duration::from_secs(5));
        table.handle(&weighted(0, "k", "a:1", "2"), now).unwrap();
        table.handle(&weighted(0, "k", "b:1", "0"), now).unwrap();
        let picks: Vec<String> = (0..6).map(|_| table.pick("k").unwrap().address).collect();
        assert_eq!(picks, ["a:1", "a:1", "b:1", "a:1", "a:1", "b:1"]);
    }

    #[test]
    fn nodes_subscribe_take_turns_expire_and_unsubscribe() {
        let t0 = Instant::now();
        let mut table = Subscriptions::new(Duration::from_secs(5));
        assert_eq!(
            table.handle(&packet(0, "a.test", "127.0.0.1:1"), t0),
            Ok(Announcement::New {
                key: "a.test".into(),
                address: "127.0.0.1:1".into()
            })
        );
        table
            .handle(&packet(0, "a.test", "127.0.0.1:2"), t0)
            .unwrap();
        let picks: Vec<String> = (0..4)
            .map(|_| table.pick("a.test").unwrap().address)
            .collect();
        assert_eq!(
            picks,
            ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1", "127.0.0.1:2"]
        );
        assert_eq!(table.pick("b.test"), None);
        // Node 1 announces again; node 2 falls silent and is dropped.
        let later = t0 + Duration::from_secs(4);
        assert_eq!(
            table.handle(&packet(0, "a.test", "127.0.0.1:1"), later),
            Ok(Announcement::Refreshed)
        );
        let dropped = table.expire(t0 + Duration::from_secs(6));
        assert!(!table.remove("a.test", "127.0.0.1:9"));
        assert_eq!(dropped, [("a.test".to_string(), "127.0.0.1:2".to_string())]);
        assert_eq!(table.nodes_of("a.test"), 1);
        table
            .handle(&packet(1, "a.test", "127.0.0.1:1"), later)
            .unwrap();
        assert_eq!(table.pick("a.test"), None);
    }

    #[test]
    fn bad_datagrams_are_refused() {
        let mut table = Subscriptions::new(Duration::from_secs(5));
        let now = Instant::now();
        assert_eq!(
            table.handle(&[224, 9, 0], now),
            Err(ReadSubscriptionError::Malformed)
        );
        let mut wsgi = packet(0, "k", "a");
        wsgi[0] = 0;
        assert_eq!(
            table.handle(&wsgi, now),
            Err(ReadSubscriptionError::NotSubscription(0))
        );
        let truncated = packet(0, "k", "a");
        assert_eq!(
            table.handle(&truncated[..truncated.len() - 1], now),
            Err(ReadSubscriptionError::Malformed)
        );
        let no_address = encode_packet(224, 0, &[(b"key", b"k")]).unwrap();
        assert_eq!(
            table.handle(&no_address, now),
            Err(ReadSubscriptionError::Missing("address"))
        );
    }

    #[test]
    fn static_nodes_rotate_and_skip_dead_ones_for_the_gracetime() {
        let t0 = Instant::now();
        let nodes = ["a:1".to_string(), "b:2".to_string()];
        let mut to = StaticNodes::new(&nodes, Duration::from_secs(30));
        let first = to.pick(t0).unwrap();
        assert_eq!(first.address, "a:1");
        assert_eq!(to.pick(t0).unwrap().address, "b:2");
        to.mark_dead(0, t0);
        assert_eq!(to.pick(t0).unwrap().address, "b:2");
        assert_eq!(to.pick(t0).unwrap().address, "b:2");
        assert_eq!(
            to.pick(t0 + Duration::from_secs(31)).unwrap().address,
            "a:1"
        );
        assert_eq!(from_pattern("/run/%s.sock", "x.test"), "/run/x.test.sock");
    }
}
