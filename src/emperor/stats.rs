//! The `emperor-stats` JSON document, in uWSGI's layout (reference §2.9) so that `uwsgitop`
//! and existing monitoring read it unchanged. Pure: the governor passes a snapshot in.
//!
//! uWSGI fields we have no equivalent for are still present with neutral values (`zerg`,
//! `last_heartbeat`), because consumers index them without checking. Our extra
//! per-vassal fields (`state`, `status`, `config`) are additions, which JSON readers ignore.

use serde_json::{json, Value};

/// One vassal as the stats document shows it. Times are Unix seconds, 0 for "never".
#[derive(Debug, Clone, Default)]
pub struct VassalStats {
    /// uWSGI's instance name: the config file name (`mysite.ini`).
    pub id: String,
    pub config: String,
    /// 0 while not running (uwsgitop formats it with `%d`).
    pub pid: u32,
    pub state: &'static str,
    pub status: String,
    pub born: u64,
    pub last_mod: u64,
    pub ready: bool,
    pub last_ready: u64,
    pub first_run: u64,
    pub last_run: u64,
    pub cursed: u64,
    pub uid: u32,
    pub gid: u32,
    pub monitor: String,
    pub respawns: u64,
    /// Throttle bookkeeping, for the `blacklist` section.
    pub failures: u32,
    pub throttle_ms: u64,
    pub first_failure: u64,
    pub last_failure: u64,
    /// An on-demand vassal's socket (uWSGI's `on_demand`), empty otherwise.
    pub on_demand: String,
}

#[derive(Debug, Clone, Default)]
pub struct EmperorStats {
    pub version: String,
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cwd: String,
    pub monitors: Vec<String>,
    pub tyrant: bool,
    pub throttle_ms: u64,
    pub vassals: Vec<VassalStats>,
}

pub fn render(stats: &EmperorStats) -> Value {
    let vassals: Vec<Value> = stats
        .vassals
        .iter()
        .map(|vassal| {
            json!({
                "id": vassal.id,
                "pid": vassal.pid,
                "born": vassal.born,
                "last_mod": vassal.last_mod,
                "last_heartbeat": 0,
                // Our READY=1 means workers loaded the app and accept, so it answers all
                // three of uWSGI's questions at once.
                "loyal": u8::from(vassal.ready),
                "ready": u8::from(vassal.ready),
                "accepting": u8::from(vassal.ready),
                "last_loyal": vassal.last_ready,
                "last_ready": vassal.last_ready,
                "last_accepting": vassal.last_ready,
                "first_run": vassal.first_run,
                "last_run": vassal.last_run,
                "cursed": vassal.cursed,
                "zerg": 0,
                "on_demand": vassal.on_demand,
                "uid": vassal.uid,
                "gid": vassal.gid,
                "monitor": vassal.monitor,
                "respawns": vassal.respawns,
                "state": vassal.state,
                "status": vassal.status,
                "config": vassal.config,
            })
        })
        .collect();
    let blacklist: Vec<Value> = stats
        .vassals
        .iter()
        .filter(|vassal| vassal.failures > 0)
        .map(|vassal| {
            json!({
                "id": vassal.id,
                "throttle_level": vassal.throttle_ms,
                "attempt": vassal.failures,
                "first_attempt": vassal.first_failure,
                "last_attempt": vassal.last_failure,
            })
        })
        .collect();
    json!({
        "version": stats.version,
        "pid": stats.pid,
        "uid": stats.uid,
        "gid": stats.gid,
        "cwd": stats.cwd,
        "emperor": stats.monitors,
        "emperor_tyrant": u8::from(stats.tyrant),
        "throttle_level": stats.throttle_ms,
        "vassals": vassals,
        "blacklist": blacklist,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_uwsgi() {
        let stats = EmperorStats {
            version: "kaiser-0.1.0".into(),
            pid: 10,
            monitors: vec!["/etc/uwsgi/vassals".into()],
            throttle_ms: 1000,
            vassals: vec![
                VassalStats {
                    id: "a.ini".into(),
                    pid: 11,
                    ready: true,
                    state: "ready",
                    ..Default::default()
                },
                VassalStats {
                    id: "b.ini".into(),
                    state: "throttled",
                    failures: 3,
                    throttle_ms: 4000,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let value = render(&stats);
        let keys = |v: &Value| -> Vec<String> {
            let mut keys: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
            keys.sort();
            keys
        };
        assert_eq!(
            keys(&value),
            [
                "blacklist",
                "cwd",
                "emperor",
                "emperor_tyrant",
                "gid",
                "pid",
                "throttle_level",
                "uid",
                "vassals",
                "version"
            ]
        );
        let uwsgi_vassal_keys = [
            "accepting",
            "born",
            "cursed",
            "first_run",
            "gid",
            "id",
            "last_accepting",
            "last_heartbeat",
            "last_loyal",
            "last_mod",
            "last_ready",
            "last_run",
            "loyal",
            "monitor",
            "on_demand",
            "pid",
            "ready",
            "respawns",
            "uid",
            "zerg",
        ];
        let vassal_keys = keys(&value["vassals"][0]);
        for key in uwsgi_vassal_keys {
            assert!(
                vassal_keys.contains(&key.to_string()),
                "vassal key `{key}` missing: {vassal_keys:?}"
            );
        }
        assert_eq!(value["vassals"][0]["pid"], 11);
        assert_eq!(value["vassals"][0]["ready"], 1);
        assert_eq!(value["vassals"][1]["pid"], 0);
        assert_eq!(value["blacklist"].as_array().map(Vec::len), Some(1));
        assert_eq!(value["blacklist"][0]["attempt"], 3);
        assert_eq!(value["blacklist"][0]["throttle_level"], 4000);
        assert_eq!(value["emperor"][0], "/etc/uwsgi/vassals");
    }
}
