//! The Carbon options (uWSGI's `carbon` plugin): push the instance's figures to Graphite
//! servers in the plaintext protocol every `carbon-freq` seconds. This module only types
//! them; `vassal/carbon.rs` renders the lines and the master pushes them.

use std::time::Duration;

pub(crate) const NAMES: &[&str] = &[
    "carbon",
    "carbon-freq",
    "carbon-timeout",
    "carbon-id",
    "carbon-root",
    "carbon-hostname-dots",
    "carbon-no-workers",
    "carbon-idle-avg",
];

/// What `avg_rt` shows over a period without requests (`carbon-idle-avg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleAvg {
    /// The last value (uWSGI's default).
    Last,
    Zero,
    /// Not pushed at all.
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CarbonConfig {
    /// `HOST:PORT` of each server.
    pub servers: Vec<String>,
    pub freq: Duration,
    pub timeout: Duration,
    /// The node after the hostname; by default the first socket's address with `.` as `_`.
    pub id: Option<String>,
    /// The first node, with its trailing dot (`uwsgi.`).
    pub root: String,
    /// Replaces the dots of the hostname, so it stays one node.
    pub hostname_dots: Option<char>,
    pub no_workers: bool,
    pub idle_avg: IdleAvg,
}

impl Default for CarbonConfig {
    fn default() -> Self {
        CarbonConfig {
            servers: Vec::new(),
            freq: Duration::from_secs(60),
            timeout: Duration::from_secs(3),
            id: None,
            root: "uwsgi.".to_string(),
            hostname_dots: None,
            no_workers: false,
            idle_avg: IdleAvg::Last,
        }
    }
}

pub(crate) fn apply(config: &mut CarbonConfig, name: &str, value: &str) -> Result<(), String> {
    let value = value.trim();
    let seconds = |value: &str| {
        value
            .parse::<u64>()
            .map(|n| Duration::from_secs(n.max(1)))
            .map_err(|_| format!("expected whole seconds, got `{value}`"))
    };
    match name {
        "carbon" => {
            // uWSGI splits at `:` into host and port.
            match value.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                    config.servers.push(value.to_string())
                }
                _ => {
                    return Err(format!(
                        "expected a Carbon server `HOST:PORT`, got `{value}`"
                    ))
                }
            }
        }
        "carbon-freq" => config.freq = seconds(value)?,
        "carbon-timeout" => config.timeout = seconds(value)?,
        "carbon-id" => config.id = Some(value.to_string()),
        "carbon-root" => {
            config.root = if value.is_empty() || value.ends_with('.') {
                value.to_string()
            } else {
                format!("{value}.")
            }
        }
        "carbon-hostname-dots" => config.hostname_dots = value.chars().next(),
        "carbon-no-workers" => config.no_workers = !matches!(value, "false" | "off" | "no" | "0"),
        "carbon-idle-avg" => {
            config.idle_avg = match value {
                "last" => IdleAvg::Last,
                "zero" => IdleAvg::Zero,
                "none" => IdleAvg::None,
                other => return Err(format!("expected `last`, `zero` or `none`, got `{other}`")),
            }
        }
        other => return Err(format!("`{other}` is not a Carbon option")),
    }
    Ok(())
}

/// The options as `--print-config` shows them.
pub(crate) fn render(config: &CarbonConfig, line: &mut impl FnMut(&str, &str)) {
    let default = CarbonConfig::default();
    for server in &config.servers {
        line("carbon", server);
    }
    if config.freq != default.freq {
        line("carbon-freq", &config.freq.as_secs().to_string());
    }
    if config.timeout != default.timeout {
        line("carbon-timeout", &config.timeout.as_secs().to_string());
    }
    if let Some(id) = &config.id {
        line("carbon-id", id);
    }
    if config.root != default.root {
        line("carbon-root", &config.root);
    }
    if let Some(dots) = config.hostname_dots {
        line("carbon-hostname-dots", &dots.to_string());
    }
    if config.no_workers {
        line("carbon-no-workers", "true");
    }
    match config.idle_avg {
        IdleAvg::Last => {}
        IdleAvg::Zero => line("carbon-idle-avg", "zero"),
        IdleAvg::None => line("carbon-idle-avg", "none"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        let mut config = CarbonConfig::default();
        apply(&mut config, "carbon", "127.0.0.1:2003").unwrap();
        apply(&mut config, "carbon", "graphite.example:2003").unwrap();
        apply(&mut config, "carbon-root", "apps").unwrap();
        apply(&mut config, "carbon-freq", "0").unwrap();
        assert_eq!(config.servers.len(), 2);
        assert_eq!(config.root, "apps.");
        assert_eq!(config.freq, Duration::from_secs(1));
        assert_eq!(
            apply(&mut config, "carbon", "2003").unwrap_err(),
            "expected a Carbon server `HOST:PORT`, got `2003`"
        );
        assert!(apply(&mut config, "carbon-idle-avg", "mean").is_err());
    }
}
