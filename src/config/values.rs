//! How one option value is read, whatever the option: uWSGI's booleans, numbers, seconds,
//! megabytes, modes, `KEY=value` pairs, headers, mounts, paths and socket addresses, each
//! with the error message a config file gets (with its file and line, added by the caller).
//!
//! Which option takes which reader, and what the value then does to the [`super::Config`],
//! is `typed.rs`'s. Nothing here does I/O.

use std::path::PathBuf;
use std::time::Duration;

use super::Address;

/// uWSGI's `uwsgi_opt_true`: false only for `false`, `off`, `no` (any case) and `0`.
pub(crate) fn uwsgi_bool(value: &str) -> bool {
    !(value.eq_ignore_ascii_case("false")
        || value.eq_ignore_ascii_case("off")
        || value.eq_ignore_ascii_case("no")
        || value == "0")
}

/// `farm = NAME:1,2,3`.
pub(super) fn farm(value: &str) -> Result<(String, Vec<u32>), String> {
    let (name, ids) = value
        .split_once(':')
        .ok_or_else(|| format!("expected `NAME:MULE,MULE`, got `{value}`"))?;
    let ids = ids
        .split(',')
        .map(|id| id.trim().parse::<u32>().ok().filter(|id| *id >= 1))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("farm `{name}`: mule ids are numbers from 1, got `{ids}`"))?;
    if name.is_empty() {
        return Err(format!("expected `NAME:MULE,MULE`, got `{value}`"));
    }
    Ok((name.to_string(), ids))
}

pub(super) fn number(value: &str) -> Result<u64, String> {
    if value.starts_with('-') {
        return Err(format!("must not be negative, got `{value}`"));
    }
    value
        .parse::<u64>()
        .map_err(|_| format!("expected a whole number, got `{value}`"))
}

pub(super) fn at_least_one(value: &str) -> Result<u32, String> {
    let n = number(value)?;
    match u32::try_from(n) {
        Ok(0) => Err("must be at least 1, got `0`".to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{value}` is too large")),
    }
}

/// `health-check-path`: an absolute path, matched exactly (a query string is ignored).
pub(super) fn health_path(value: &str) -> Result<String, String> {
    let value = value.trim();
    if !value.starts_with('/') || value.contains(['?', ' ']) {
        return Err(format!(
            "`{value}` is not an absolute path without a query (e.g. `/healthz`)"
        ));
    }
    Ok(value.to_string())
}

pub(super) fn seconds(value: &str) -> Result<Duration, String> {
    number(value).map(Duration::from_secs)
}

/// Megabytes with decimals (`uwsgi_opt_set_megabytes`), as bytes.
pub(crate) fn megabytes(value: &str) -> Result<u64, String> {
    match value.parse::<f64>() {
        Ok(mb) if mb >= 0.0 && mb.is_finite() => Ok((mb * 1024.0 * 1024.0) as u64),
        _ => Err(format!(
            "expected a size in megabytes such as `512` or `1.5`, got `{value}`"
        )),
    }
}

pub(super) fn mode(value: &str) -> Result<u32, String> {
    if value.is_empty() {
        return Ok(0o666);
    }
    match u32::from_str_radix(value, 8) {
        Ok(mode) if mode <= 0o7777 => Ok(mode),
        _ => Err(format!(
            "expected an octal file mode such as `660`, got `{value}`"
        )),
    }
}

/// `add-header = Name: value`, checked as a response header is.
pub(super) fn header(value: &str) -> Result<(String, String), String> {
    let Some((name, value_part)) = value.split_once(':') else {
        return Err(format!("expected `Name: value`, got `{value}`"));
    };
    let (name, value_part) = (name.trim(), value_part.trim());
    crate::protocol::response::validate_header(name.as_bytes(), value_part.as_bytes())
        .map_err(|e| format!("`{value}`: {e}"))?;
    Ok((name.to_string(), value_part.to_string()))
}

/// `mount = /point=target`. The mountpoint loses a trailing `/` (SCRIPT_NAME never ends in
/// one), so `/` itself becomes the empty, root mountpoint.
pub(super) fn mount(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((point, target))
            if !target.trim().is_empty() && (point.is_empty() || point.starts_with('/')) =>
        {
            Ok((
                point.trim_end_matches('/').to_string(),
                target.trim().to_string(),
            ))
        }
        _ => Err(format!(
            "expected `/mountpoint=app.py` or `/mountpoint=package.module:callable`, got `{value}`"
        )),
    }
}

/// A `logto` file; uWSGI's UDP form (`host:port`) is refused with what to do instead.
pub(super) fn log_file(value: &str) -> Result<PathBuf, String> {
    let udp = !value.contains('/')
        && value
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    if udp {
        return Err(format!(
            "logging to a UDP address (`{value}`) is not supported yet: give a file path, or log to stderr and let systemd or the emperor collect it"
        ));
    }
    path(value)
}

pub(super) fn path(value: &str) -> Result<PathBuf, String> {
    if value.is_empty() {
        return Err("expected a path, got an empty value".to_string());
    }
    Ok(PathBuf::from(value))
}

pub(super) fn text(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err("expected a value, got an empty one".to_string());
    }
    Ok(value.to_string())
}

pub(super) fn key_value(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((name, v)) if !name.is_empty() => Ok((name.to_string(), v.to_string())),
        _ => Err(format!("expected `NAME=value`, got `{value}`")),
    }
}

/// Parses a socket address the way uWSGI decides between TCP and unix sockets: a value with
/// a `/` or without a `:` is a path; `@name` is a Linux abstract socket.
pub(crate) fn address(value: &str) -> Result<Address, String> {
    if value.is_empty() {
        return Err(
            "expected an address such as `:8080` or `/run/app.sock`, got an empty value"
                .to_string(),
        );
    }
    if let Some(name) = value.strip_prefix('@') {
        if name.is_empty() {
            return Err("an abstract socket needs a name after `@`".to_string());
        }
        return Ok(Address::Abstract(name.to_string()));
    }
    if value.contains('/') || !value.contains(':') {
        return Ok(Address::Unix(PathBuf::from(value)));
    }
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let Some((host, port)) = rest.split_once("]:") else {
            return Err(format!("expected `[address]:port`, got `{value}`"));
        };
        (host, port)
    } else {
        let (host, port) = value.rsplit_once(':').expect("the value contains `:`");
        if host.contains(':') {
            return Err(format!(
                "write IPv6 addresses in brackets, e.g. `[::1]:8080`, got `{value}`"
            ));
        }
        (host, port)
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("invalid port `{port}` in `{value}`"))?;
    Ok(Address::Tcp {
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_address(value: &str, expected: Result<Address, &str>) {
        assert_eq!(
            address(value),
            expected.map_err(str::to_string),
            "address {value:?}"
        );
    }

    fn tcp(host: &str, port: u16) -> Result<Address, &'static str> {
        Ok(Address::Tcp {
            host: host.into(),
            port,
        })
    }

    #[test]
    fn addresses() {
        check_address(":8080", tcp("", 8080));
        check_address("127.0.0.1:80", tcp("127.0.0.1", 80));
        check_address("0.0.0.0:0", tcp("0.0.0.0", 0));
        check_address("[::1]:80", tcp("::1", 80));
        check_address("[::]:9000", tcp("::", 9000));
        check_address("localhost:80", tcp("localhost", 80));
        check_address("/run/app.sock", Ok(Address::Unix("/run/app.sock".into())));
        check_address("app.sock", Ok(Address::Unix("app.sock".into())));
        check_address("./a:b.sock", Ok(Address::Unix("./a:b.sock".into())));
        check_address("@kaiser", Ok(Address::Abstract("kaiser".into())));
        check_address("@", Err("an abstract socket needs a name after `@`"));
        check_address(":http", Err("invalid port `http` in `:http`"));
        check_address(":70000", Err("invalid port `70000` in `:70000`"));
        check_address(
            "::1:80",
            Err("write IPv6 addresses in brackets, e.g. `[::1]:8080`, got `::1:80`"),
        );
        check_address("[::1]80", Err("expected `[address]:port`, got `[::1]80`"));
    }

    #[test]
    fn values() {
        for (value, expected) in [
            ("", true),
            ("true", true),
            ("yes", true),
            ("1", true),
            ("whatever", true),
            ("false", false),
            ("OFF", false),
            ("No", false),
            ("0", false),
        ] {
            assert_eq!(uwsgi_bool(value), expected, "bool {value:?}");
        }
        assert_eq!(number("12"), Ok(12));
        assert_eq!(number("-1"), Err("must not be negative, got `-1`".into()));
        assert_eq!(
            number("4 workers"),
            Err("expected a whole number, got `4 workers`".into())
        );
        assert_eq!(at_least_one("0"), Err("must be at least 1, got `0`".into()));
        assert_eq!(megabytes("1.5"), Ok(1572864));
        assert_eq!(megabytes("512"), Ok(536870912));
        assert!(megabytes("lots").is_err());
        assert_eq!(mode(""), Ok(0o666));
        assert_eq!(mode("660"), Ok(0o660));
        assert_eq!(mode("0644"), Ok(0o644));
        assert!(mode("999").is_err());
        assert_eq!(key_value("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(key_value("A").is_err());
        assert!(key_value("=b").is_err());
    }
}
