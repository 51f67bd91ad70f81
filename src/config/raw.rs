//! uWSGI's raw mode in the config: a `raw-socket` (or a `socket` under `protocol = raw`)
//! hands each connection to the `python-raw` callable, so one without the other is an error
//! here rather than a server that closes every connection unanswered (what uWSGI does). It
//! also keeps `raw-modifier1` to the one plugin kaiser has.
//!
//! It does not bind sockets or load the handler (`vassal`, `python::raw`).

use super::diagnostics::Report;
use super::sources::Entry;
use super::{Config, Protocol};

/// `raw-modifier1`: uWSGI routes raw connections to the plugin with this number; kaiser has
/// only the Python one (0).
pub(super) fn check_modifier1(modifier1: u64) -> Result<(), String> {
    if modifier1 == 0 {
        Ok(())
    } else {
        Err(format!(
            "kaiser serves raw connections with its Python plugin only (modifier1 0, the `python-raw` callable), not modifier1 {modifier1}"
        ))
    }
}

/// A raw socket needs `python-raw`: reported at the first entry that made one.
pub(super) fn check(config: &Config, entries: &[Entry], report: &mut Report) {
    let has_raw = config.sockets.iter().any(|s| s.protocol == Protocol::Raw);
    if !has_raw || config.python_raw.is_some() {
        return;
    }
    let made_raw =
        entries.iter().find(
            |entry| match super::options::find(&entry.key).map(|spec| spec.name) {
                Some("raw-socket") => true,
                Some("protocol") => entry.value.trim() == "raw",
                _ => false,
            },
        );
    if let Some(entry) = made_raw {
        report.error(
            &entry.origin,
            &entry.key,
            "a raw socket needs `python-raw = FILE`, whose callable is called with each connection's fd (uWSGI would close every connection unanswered)",
        );
    }
}
