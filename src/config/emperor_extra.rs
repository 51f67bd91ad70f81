//! The Emperor options real uWSGI emperor configs carry beyond the directory and throttle:
//! symlink handling (`emperor-nofollow`), wrappers, `vassals-set`, the vassals' start and
//! stop hooks, extra file extensions and `emperor-no-blacklist`. They live in one struct,
//! [`EmperorExtra`], so that the shared `Config` grows by one field; this file applies them
//! from the option table and renders them for `--show-config`. It does no I/O: what they do
//! is the emperor's (`crate::emperor`).

use std::path::PathBuf;

/// Typed values of these options; every field's default is "off".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EmperorExtra {
    /// `emperor-nofollow`: judge a symlinked vassal file by the link (`lstat`).
    pub nofollow: bool,
    /// `emperor-tyrant-nofollow`: a symlinked vassal runs as the link's owner.
    pub tyrant_nofollow: bool,
    /// `emperor-wrapper`: the program vassals are started with instead of kaiser.
    pub wrapper: Option<PathBuf>,
    /// `emperor-wrapper-override`: tried first, in order.
    pub wrapper_override: Vec<PathBuf>,
    /// `emperor-wrapper-fallback`: tried last, in order.
    pub wrapper_fallback: Vec<PathBuf>,
    /// `vassals-set`: `NAME=VALUE`, passed as `--set NAME=VALUE` before the vassal's file.
    pub vassals_set: Vec<String>,
    /// `vassals-start-hook`: a program run as `PROGRAM VASSAL` first thing in each vassal.
    pub start_hook: Option<String>,
    /// `vassals-stop-hook`: a program run as `PROGRAM VASSAL` when a vassal's process ends.
    pub stop_hook: Option<String>,
    /// `emperor-extra-extension`: more suffixes that make a file a vassal (read as INI).
    pub extra_extensions: Vec<String>,
    /// `emperor-no-blacklist`: retry a failing vassal at a constant `emperor-throttle`.
    pub no_blacklist: bool,
}

/// Applies one of these options, or returns `None` when `name` is not one of them.
pub(crate) fn apply(
    extra: &mut EmperorExtra,
    name: &str,
    value: &str,
    parse: &super::extra::Parsers,
) -> Option<Result<(), String>> {
    let v = value;
    let applied = (|| -> Result<bool, String> {
        match name {
            "emperor-nofollow" => extra.nofollow = (parse.boolean)(v),
            "emperor-tyrant-nofollow" => extra.tyrant_nofollow = (parse.boolean)(v),
            "emperor-wrapper" => extra.wrapper = Some((parse.path)(v)?),
            "emperor-wrapper-override" => extra.wrapper_override.push((parse.path)(v)?),
            "emperor-wrapper-fallback" => extra.wrapper_fallback.push((parse.path)(v)?),
            "vassals-set" => extra.vassals_set.push(set_value(v)?),
            "vassals-start-hook" => extra.start_hook = Some((parse.text)(v)?),
            "vassals-stop-hook" => extra.stop_hook = Some((parse.text)(v)?),
            "emperor-extra-extension" => extra.extra_extensions.push(extension(v)?),
            "emperor-no-blacklist" => extra.no_blacklist = (parse.boolean)(v),
            _ => return Ok(false),
        }
        Ok(true)
    })();
    match applied {
        Ok(false) => None,
        Ok(true) => Some(Ok(())),
        Err(message) => Some(Err(message)),
    }
}

/// `vassals-set` hands its value to each vassal's `--set`, which needs `NAME=VALUE`: a
/// value without it would fail in every vassal, so it fails here, once, with the line.
fn set_value(value: &str) -> Result<String, String> {
    match value.split_once('=') {
        Some((name, _)) if !name.trim().is_empty() => Ok(value.to_string()),
        _ => Err(format!(
            "expected `NAME=VALUE` (such as `vassals-set = processes=4`), got `{value}`"
        )),
    }
}

/// An extension as uWSGI compares it: a suffix of the file name, case-sensitive. An empty
/// one would make every file a vassal.
fn extension(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() || value.contains('/') {
        return Err(format!(
            "expected a file name suffix such as `.conf`, got `{value}`"
        ));
    }
    Ok(value.to_string())
}

/// `--show-config` lines for the options that differ from their defaults.
pub(crate) fn render(extra: &EmperorExtra, line: &mut impl FnMut(&str, &str)) {
    let path = |p: &PathBuf| p.display().to_string();
    if extra.nofollow {
        line("emperor-nofollow", "true");
    }
    if extra.tyrant_nofollow {
        line("emperor-tyrant-nofollow", "true");
    }
    if let Some(wrapper) = &extra.wrapper {
        line("emperor-wrapper", &path(wrapper));
    }
    for wrapper in &extra.wrapper_override {
        line("emperor-wrapper-override", &path(wrapper));
    }
    for wrapper in &extra.wrapper_fallback {
        line("emperor-wrapper-fallback", &path(wrapper));
    }
    for set in &extra.vassals_set {
        line("vassals-set", set);
    }
    if let Some(hook) = &extra.start_hook {
        line("vassals-start-hook", hook);
    }
    if let Some(hook) = &extra.stop_hook {
        line("vassals-stop-hook", hook);
    }
    for extension in &extra.extra_extensions {
        line("emperor-extra-extension", extension);
    }
    if extra.no_blacklist {
        line("emperor-no-blacklist", "true");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_once_in_the_emperor() {
        fn check(value: &str, expected: Result<&str, &str>) {
            match (set_value(value), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want),
                (Err(got), Err(part)) => assert!(got.contains(part), "{value}: {got}"),
                (got, want) => panic!("{value}: got {got:?}, expected {want:?}"),
            }
        }
        check("processes=4", Ok("processes=4"));
        check("env=A=b", Ok("env=A=b"));
        check("processes", Err("expected `NAME=VALUE`"));
        check("=4", Err("expected `NAME=VALUE`"));
        assert_eq!(extension(" .conf "), Ok(".conf".to_string()));
        assert!(extension("").is_err());
        assert!(extension("a/b").is_err());
    }
}
