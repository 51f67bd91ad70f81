//! The fastrouter's options (uWSGI's `fastrouter` plugin, a uwsgi-protocol load balancer),
//! typed here; `vassal/fastrouter/` runs the router. This module only reads and renders
//! the values; it must not bind or connect anything.

use std::time::Duration;

/// The options this module types (the rest of `fastrouter-*` are documented no-ops).
pub(crate) const NAMES: &[&str] = &[
    "fastrouter",
    "fastrouter-subscription-server",
    "fastrouter-use-pattern",
    "fastrouter-use-base",
    "fastrouter-to",
    "fastrouter-timeout",
    "fastrouter-fallback",
    "fastrouter-fallback-on-no-key",
    "fastrouter-subscription-fallback-key",
    "fastrouter-force-key",
    "fastrouter-gracetime",
    "fastrouter-quiet",
    "fastrouter-max-retries",
    "fastrouter-stats",
    "fastrouter-use-socket",
    "subscription-tolerance",
];

#[derive(Debug, Clone, PartialEq)]
pub struct FastrouterConfig {
    /// `fastrouter`: addresses the router accepts uwsgi-protocol connections on.
    pub listen: Vec<String>,
    /// `fastrouter-subscription-server`: UDP `host:port` or unix datagram paths where
    /// instances announce themselves (`subscribe-to`).
    pub subscription_servers: Vec<String>,
    /// `fastrouter-use-pattern`: the node's address, `%s` replaced by the key.
    pub pattern: Option<String>,
    /// `fastrouter-use-base`: a directory (or prefix) the key is appended to.
    pub base: Option<String>,
    /// `fastrouter-to`: static nodes, taken in turn.
    pub to: Vec<String>,
    /// `fastrouter-timeout`: reading the request's header, connecting to a node, and any
    /// silence of both sides during the relay.
    pub timeout: Duration,
    /// `fastrouter-fallback`: nodes tried in order when the chosen one cannot be reached.
    pub fallback: Vec<String>,
    /// `fastrouter-fallback-on-no-key`: an unknown key goes to the fallback nodes too.
    pub fallback_on_no_key: bool,
    /// `fastrouter-subscription-fallback-key`: the subscribed key used when the request's
    /// key has no node.
    pub subscription_fallback_key: Option<String>,
    /// `fastrouter-force-key`: every request gets this key.
    pub force_key: Option<String>,
    /// `fastrouter-gracetime`: a static node that refused a connection is skipped this long.
    pub gracetime: Duration,
    /// `fastrouter-quiet`: do not log failed connections to nodes.
    pub quiet: bool,
    /// `fastrouter-use-socket`: forward every request to this instance's Nth socket.
    pub use_socket: Option<usize>,
    /// `fastrouter-stats`: where the router serves its stats document.
    pub stats: Option<String>,
    /// `fastrouter-max-retries`: other nodes tried after a refusal, before the fallbacks.
    pub max_retries: u32,
    /// `subscription-tolerance`: a subscribed node that has not announced itself for this
    /// long is dropped.
    pub subscription_tolerance: Duration,
}

impl Default for FastrouterConfig {
    fn default() -> Self {
        FastrouterConfig {
            listen: Vec::new(),
            subscription_servers: Vec::new(),
            pattern: None,
            base: None,
            to: Vec::new(),
            timeout: Duration::from_secs(60),
            fallback: Vec::new(),
            fallback_on_no_key: false,
            subscription_fallback_key: None,
            force_key: None,
            gracetime: Duration::from_secs(30),
            quiet: false,
            max_retries: 3,
            stats: None,
            use_socket: None,
            subscription_tolerance: Duration::from_secs(17),
        }
    }
}

impl FastrouterConfig {
    /// Whether the instance runs a fastrouter.
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty()
    }
}

pub(crate) fn apply(config: &mut FastrouterConfig, name: &str, value: &str) -> Result<(), String> {
    let value = value.trim();
    let seconds = |value: &str| {
        value
            .parse::<u64>()
            .map(|n| Duration::from_secs(n.max(1)))
            .map_err(|_| format!("expected whole seconds, got `{value}`"))
    };
    let nonempty = |value: &str| {
        if value.is_empty() {
            Err(format!("`{name}` needs a value"))
        } else {
            Ok(value.to_string())
        }
    };
    let flag = !matches!(value, "false" | "off" | "no" | "0");
    match name {
        "fastrouter" => config.listen.push(nonempty(value)?),
        "fastrouter-subscription-server" => config.subscription_servers.push(nonempty(value)?),
        "fastrouter-use-pattern" => config.pattern = Some(nonempty(value)?),
        "fastrouter-use-base" => config.base = Some(nonempty(value)?),
        "fastrouter-to" => config.to.push(nonempty(value)?),
        "fastrouter-timeout" => config.timeout = seconds(value)?,
        "fastrouter-fallback" => config.fallback.push(nonempty(value)?),
        "fastrouter-fallback-on-no-key" => config.fallback_on_no_key = flag,
        "fastrouter-subscription-fallback-key" => {
            config.subscription_fallback_key = Some(nonempty(value)?)
        }
        "fastrouter-force-key" => config.force_key = Some(nonempty(value)?),
        "fastrouter-gracetime" => config.gracetime = seconds(value)?,
        "fastrouter-quiet" => config.quiet = flag,
        "fastrouter-stats" => config.stats = Some(nonempty(value)?),
        // uWSGI's optional argument: bare is the first socket.
        "fastrouter-use-socket" => {
            config.use_socket = Some(match value {
                "" | "true" => 0,
                n => n
                    .parse()
                    .map_err(|_| format!("expected a socket number (0: the first), got `{n}`"))?,
            })
        }
        "fastrouter-max-retries" => {
            config.max_retries = value
                .parse()
                .map_err(|_| format!("expected a number of retries, got `{value}`"))?
        }
        "subscription-tolerance" => config.subscription_tolerance = seconds(value)?,
        other => return Err(format!("`{other}` is not a fastrouter option")),
    }
    Ok(())
}

/// The options as `--print-config` shows them.
pub(crate) fn render(config: &FastrouterConfig, line: &mut impl FnMut(&str, &str)) {
    let default = FastrouterConfig::default();
    for address in &config.listen {
        line("fastrouter", address);
    }
    for address in &config.subscription_servers {
        line("fastrouter-subscription-server", address);
    }
    if let Some(pattern) = &config.pattern {
        line("fastrouter-use-pattern", pattern);
    }
    if let Some(base) = &config.base {
        line("fastrouter-use-base", base);
    }
    for node in &config.to {
        line("fastrouter-to", node);
    }
    if config.timeout != default.timeout {
        line("fastrouter-timeout", &config.timeout.as_secs().to_string());
    }
    for node in &config.fallback {
        line("fastrouter-fallback", node);
    }
    if config.fallback_on_no_key {
        line("fastrouter-fallback-on-no-key", "true");
    }
    if let Some(key) = &config.subscription_fallback_key {
        line("fastrouter-subscription-fallback-key", key);
    }
    if let Some(key) = &config.force_key {
        line("fastrouter-force-key", key);
    }
    if config.gracetime != default.gracetime {
        line(
            "fastrouter-gracetime",
            &config.gracetime.as_secs().to_string(),
        );
    }
    if config.quiet {
        line("fastrouter-quiet", "true");
    }
    if let Some(n) = config.use_socket {
        line("fastrouter-use-socket", &n.to_string());
    }
    if let Some(stats) = &config.stats {
        line("fastrouter-stats", stats);
    }
    if config.max_retries != default.max_retries {
        line("fastrouter-max-retries", &config.max_retries.to_string());
    }
    if config.subscription_tolerance != default.subscription_tolerance {
        line(
            "subscription-tolerance",
            &config.subscription_tolerance.as_secs().to_string(),
        );
    }
}
