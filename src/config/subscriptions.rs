//! `subscribe-to` (`st`, `subscribe`) and `subscribe2`: announce this instance to a uWSGI
//! subscription server (a fastrouter or HTTP router's `subscription-server`), typed here;
//! `vassal/subscription.rs` sends the announcements.
//!
//! `subscribe-to = [ADDRESS=]SERVER:KEY[,MODIFIER1]` (SERVER is `host:port` for UDP or a
//! unix datagram socket path); `subscribe2 = server=…,key=…[,addr=…][,socket=N][,weight=…]
//! [,modifier1=…][,modifier2=…][,backup=…]`, as uWSGI's core/subscription.c reads them.

/// One subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The subscription server: `host:port` (UDP) or a unix datagram socket path.
    pub server: String,
    /// The key the router routes on (a domain name, usually).
    pub key: String,
    /// What to announce instead of this instance's first socket.
    pub address: Option<String>,
    /// `subscribe2`'s `socket=N`: announce this instance's Nth socket (from 0).
    pub socket: Option<usize>,
    pub modifier1: u8,
    pub modifier2: u8,
    /// `subscribe2` only; `subscribe-to` sends uWSGI's `weight` option, 0 by default.
    pub weight: u64,
    pub backup: Option<u64>,
}

/// Reads one `subscribe-to` value.
pub(super) fn parse_subscribe_to(value: &str) -> Result<Subscription, String> {
    let value = value.trim();
    let (address, rest) = match value.split_once('=') {
        Some((address, rest)) => (Some(address.to_string()), rest),
        None => (None, value),
    };
    if address.as_deref().is_some_and(|a| a.starts_with('=')) {
        return Err(
            "a shared socket (`==N=…`) as the announced address is not supported: write the address"
                .to_string(),
        );
    }
    // `host:port:key` for UDP, `/path:key` for a unix socket.
    let key_at = if rest.starts_with('/') {
        rest.find(':')
    } else {
        rest.find(':')
            .and_then(|port| rest[port + 1..].find(':').map(|key| port + 1 + key))
    };
    let Some(key_at) = key_at else {
        return Err(format!(
            "expected `SERVER:PORT:KEY` (or `/unix/path:KEY`), got `{value}`"
        ));
    };
    let server = rest[..key_at].to_string();
    let mut parts = rest[key_at + 1..].split(',');
    let key = parts.next().unwrap_or("").to_string();
    if key.is_empty() {
        return Err(format!("the subscription key is empty in `{value}`"));
    }
    if key.starts_with('@') {
        return Err(
            "a file of subscription keys (`@FILE`) is not supported: write one `subscribe-to` line per key"
                .to_string(),
        );
    }
    let modifier1 = match parts.next() {
        Some(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not a modifier1 (0-255)"))?,
        None => 0,
    };
    if parts.next().is_some() {
        return Err(
            "signed subscriptions need uWSGI's OpenSSL support, which kaiser does not have"
                .to_string(),
        );
    }
    Ok(Subscription {
        server,
        key,
        address,
        socket: None,
        modifier1,
        modifier2: 0,
        weight: 0,
        backup: None,
    })
}

/// Reads one `subscribe2` value.
pub(super) fn parse_subscribe2(value: &str) -> Result<Subscription, String> {
    let mut subscription = Subscription {
        server: String::new(),
        key: String::new(),
        address: None,
        socket: None,
        modifier1: 0,
        modifier2: 0,
        weight: 1,
        backup: None,
    };
    for item in value.split(',').filter(|item| !item.trim().is_empty()) {
        let Some((name, text)) = item.split_once('=') else {
            return Err(format!("expected `key=value` items, got `{item}`"));
        };
        let number = |what: &str| -> Result<u64, String> {
            text.trim()
                .parse()
                .map_err(|_| format!("`{what}` must be a number, got `{text}`"))
        };
        match name.trim() {
            "server" => subscription.server = text.to_string(),
            "key" => subscription.key = text.to_string(),
            "addr" | "address" => subscription.address = Some(text.to_string()),
            "socket" => subscription.socket = Some(number("socket")? as usize),
            "weight" => subscription.weight = number("weight")?,
            "backup" => subscription.backup = Some(number("backup")?),
            "modifier1" => subscription.modifier1 = number("modifier1")?.min(255) as u8,
            "modifier2" => subscription.modifier2 = number("modifier2")?.min(255) as u8,
            "sign" | "sni_key" | "sni_crt" | "sni_ca" => {
                return Err(format!(
                    "`{name}` needs uWSGI's OpenSSL support, which kaiser does not have"
                ))
            }
            other => {
                return Err(format!(
                    "`{other}` is not a `subscribe2` key kaiser knows (server, key, addr, socket, weight, backup, modifier1, modifier2)"
                ))
            }
        }
    }
    if subscription.server.is_empty() || subscription.key.is_empty() {
        return Err(format!(
            "`subscribe2` needs `server=` and `key=`, got `{value}`"
        ));
    }
    Ok(subscription)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_to_forms() {
        let sub = parse_subscribe_to("127.0.0.1:7171:example.com").unwrap();
        assert_eq!(
            (
                sub.server.as_str(),
                sub.key.as_str(),
                sub.modifier1,
                sub.address
            ),
            ("127.0.0.1:7171", "example.com", 0, None)
        );
        let sub = parse_subscribe_to("10.0.0.2:3031=router:7171:app.example,5").unwrap();
        assert_eq!(sub.address.as_deref(), Some("10.0.0.2:3031"));
        assert_eq!((sub.server.as_str(), sub.modifier1), ("router:7171", 5));
        let sub = parse_subscribe_to("/run/sub.sock:example.com").unwrap();
        assert_eq!(
            (sub.server.as_str(), sub.key.as_str()),
            ("/run/sub.sock", "example.com")
        );
        assert!(parse_subscribe_to("127.0.0.1:7171").is_err());
        assert!(parse_subscribe_to("127.0.0.1:7171:k,0,/key.pem")
            .unwrap_err()
            .contains("OpenSSL"));
    }

    #[test]
    fn subscribe2_form() {
        let sub =
            parse_subscribe2("server=127.0.0.1:7171,key=example.com,weight=3,socket=1").unwrap();
        assert_eq!((sub.weight, sub.socket), (3, Some(1)));
        assert!(parse_subscribe2("key=x").is_err());
        assert!(parse_subscribe2("server=a:1,key=x,bogus=1").is_err());
    }
}
