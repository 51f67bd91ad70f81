//! The vassal's stats JSON, in uWSGI's layout (reference §6) so that `uwsgitop` and
//! existing dashboards read it unchanged. Pure: the master passes a snapshot in.
//!
//! Fields kaiser has no equivalent for (signals, locks, routed requests)
//! are present with neutral values, because consumers index them without checking.
//! Differences from uWSGI: strings are escaped (uWSGI writes them raw and can emit invalid
//! JSON), keys come sorted rather than in uWSGI's order, `rss`/`vsz` are always filled (from
//! /proc, not only with `memory-report`), and `status` is `busy` while any thread serves.

use serde_json::{json, Value};

use crate::worker::scoreboard::WorkerSnapshot;

#[derive(Debug, Clone, Default)]
pub struct SocketStats {
    pub name: String,
    pub proto: &'static str,
    pub queue: u32,
    pub max_queue: u32,
}

#[derive(Debug, Clone, Default)]
pub struct WorkerStats {
    pub id: u32,
    pub snapshot: WorkerSnapshot,
    pub rss: u64,
    pub vsz: u64,
}

#[derive(Debug, Clone, Default)]
pub struct VassalStats {
    pub version: String,
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cwd: String,
    pub sockets: Vec<SocketStats>,
    pub workers: Vec<WorkerStats>,
    pub with_cores: bool,
    /// Optional top-level sections (`spoolers`, `caches`), present only when configured.
    pub extra: Vec<(&'static str, Value)>,
}

pub fn render(stats: &VassalStats) -> Value {
    let listen_queue = stats.sockets.iter().map(|s| s.queue).max().unwrap_or(0);
    let sockets: Vec<Value> = stats
        .sockets
        .iter()
        .map(|socket| {
            json!({
                "name": socket.name,
                "proto": socket.proto,
                "queue": socket.queue,
                "max_queue": socket.max_queue,
                "shared": 0,
                "can_offload": 0,
            })
        })
        .collect();
    let workers: Vec<Value> = stats
        .workers
        .iter()
        .map(|worker| render_worker(worker, stats.with_cores))
        .collect();
    let mut document = json!({
        "version": stats.version,
        "listen_queue": listen_queue,
        "listen_queue_errors": 0,
        "signal_queue": 0,
        "load": listen_queue,
        "pid": stats.pid,
        "uid": stats.uid,
        "gid": stats.gid,
        "cwd": stats.cwd,
        "locks": [{"user 0": 0}, {"signal": 0}, {"filemon": 0}, {"timer": 0}, {"rbtimer": 0}, {"cron": 0}, {"rpc": 0}, {"snmp": 0}],
        "sockets": sockets,
        "workers": workers,
    });
    if let Value::Object(map) = &mut document {
        for (key, value) in &stats.extra {
            map.insert((*key).to_string(), value.clone());
        }
    }
    document
}

fn render_worker(worker: &WorkerStats, with_cores: bool) -> Value {
    let s = &worker.snapshot;
    let mut value = json!({
        "id": worker.id,
        "pid": s.pid,
        "accepting": u8::from(s.accepting),
        "requests": s.requests,
        "delta_requests": s.delta_requests,
        "exceptions": s.exceptions,
        "harakiri_count": s.harakiri_count,
        "signals": 0,
        "signal_queue": 0,
        "status": s.status(),
        "rss": worker.rss,
        "vsz": worker.vsz,
        "running_time": s.running_time_us,
        "last_spawn": s.last_spawn,
        "respawn_count": s.respawn_count,
        "tx": s.tx,
        "avg_rt": s.avg_rt_us,
        "apps": [{
            "id": 0,
            "modifier1": 0,
            "mountpoint": "",
            "startup_time": 0,
            "requests": s.requests,
            "exceptions": s.exceptions,
            "chdir": "",
        }],
    });
    if with_cores {
        let cores: Vec<Value> = s
            .cores
            .iter()
            .map(|core| {
                let vars: Vec<String> = if core.in_request {
                    let (method, uri) = core.request.split_once(' ').unwrap_or((&core.request, ""));
                    vec![
                        format!("REQUEST_METHOD={method}"),
                        format!("REQUEST_URI={uri}"),
                        format!("REMOTE_ADDR={}", core.remote),
                        String::new(),
                    ]
                } else {
                    Vec::new()
                };
                json!({
                    "id": core.id,
                    "requests": core.requests,
                    "static_requests": core.static_requests,
                    "routed_requests": core.routed_requests,
                    "offloaded_requests": core.offloaded_requests,
                    "write_errors": 0,
                    "read_errors": 0,
                    "in_request": u8::from(core.in_request),
                    "vars": vars,
                    "req_info": {"request_start": core.request_start_unix_us / 1_000_000},
                })
            })
            .collect();
        value["cores"] = Value::Array(cores);
    }
    value
}

/// The bytes sent to a client: pretty-printed with tabs like uWSGI, or on one line with
/// `stats-minified`.
pub fn to_bytes(value: &Value, minified: bool) -> Vec<u8> {
    if minified {
        return serde_json::to_vec(value).unwrap_or_default();
    }
    let mut out = Vec::with_capacity(4096);
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    if serde::Serialize::serialize(value, &mut serializer).is_err() {
        return serde_json::to_vec(value).unwrap_or_default();
    }
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::scoreboard::CoreSnapshot;

    #[test]
    fn fields_uwsgitop_reads_have_its_types() {
        let stats = VassalStats {
            version: "kaiser-0.1.0".into(),
            pid: 10,
            uid: 1000,
            gid: 1000,
            cwd: "/srv/\"app\"".into(),
            sockets: vec![SocketStats {
                name: "127.0.0.1:8000".into(),
                proto: "http",
                queue: 3,
                max_queue: 100,
            }],
            workers: vec![WorkerStats {
                id: 1,
                snapshot: WorkerSnapshot {
                    pid: 11,
                    requests: 5,
                    respawn_count: 1,
                    cores: vec![CoreSnapshot {
                        id: 0,
                        in_request: true,
                        request: "GET /x".into(),
                        remote: "127.0.0.1".into(),
                        request_start_unix_us: 7_000_000,
                        ..CoreSnapshot::default()
                    }],
                    ..WorkerSnapshot::default()
                },
                rss: 4096,
                vsz: 8192,
            }],
            with_cores: true,
            extra: vec![("spoolers", json!([{"dir": "/q", "pid": 12}]))],
        };
        let value = render(&stats);
        assert_eq!(value["listen_queue"], 3);
        assert_eq!(value["cwd"], "/srv/\"app\"");
        assert_eq!(value["spoolers"][0]["pid"], 12);
        let worker = &value["workers"][0];
        for key in [
            "id",
            "requests",
            "pid",
            "exceptions",
            "signals",
            "avg_rt",
            "rss",
            "vsz",
            "tx",
            "respawn_count",
            "harakiri_count",
            "running_time",
            "last_spawn",
        ] {
            assert!(worker[key].is_u64(), "{key}: {worker}");
        }
        assert_eq!(worker["status"], "busy");
        assert_eq!(worker["cores"][0]["in_request"], 1);
        assert_eq!(worker["cores"][0]["vars"][1], "REQUEST_URI=/x");
        assert_eq!(worker["cores"][0]["req_info"]["request_start"], 7);
        let pretty = String::from_utf8(to_bytes(&value, false)).expect("utf-8");
        assert!(pretty.contains("\n\t\"workers\""), "{pretty}");
        let reparsed: Value = serde_json::from_str(&pretty).expect("valid JSON");
        assert_eq!(reparsed, value);
        assert!(!String::from_utf8(to_bytes(&value, true))
            .expect("utf-8")
            .contains('\n'));
        let without = render(&VassalStats {
            with_cores: false,
            ..stats
        });
        assert!(without["workers"][0].get("cores").is_none());
    }
}
