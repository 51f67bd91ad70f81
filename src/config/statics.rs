//! The static file options (`static-map`, `check-static`, `static-expires-*`, …) as one
//! typed [`StaticConfig`], validated here (regular expressions compile, `mountpoint=path`
//! has both halves) so a bad value is reported with its file and line.
//!
//! Nothing here touches the file system: roots are resolved and opened by each worker.

use std::path::PathBuf;

/// Which request fact an `Expires` rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiresOn {
    /// `static-expires-type`: the file's MIME type, exactly.
    Type,
    /// `static-expires`: a regular expression on the file's path.
    File,
    /// `static-expires-uri`: a regular expression on `REQUEST_URI`.
    Uri,
    /// `static-expires-path-info`: a regular expression on `PATH_INFO`.
    PathInfo,
}

/// One `static-expires*` entry: `Expires` is now (or the file's mtime, for the `-mtime`
/// forms) plus `seconds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiresRule {
    pub on: ExpiresOn,
    /// A MIME type for [`ExpiresOn::Type`], a regular expression otherwise.
    pub pattern: String,
    pub seconds: u64,
    pub from_mtime: bool,
}

/// How a mapping reads `PATH_INFO` (see `protocol::static_files::path::MapKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaticMapKind {
    /// `check-static DIR`.
    Check,
    /// `static-map /mount=path`.
    Strip,
    /// `static-map2 /mount=path`.
    Append,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticMap {
    pub kind: StaticMapKind,
    /// Empty for `check-static`.
    pub mountpoint: String,
    /// A directory, or (for `static-map`) a single file.
    pub target: PathBuf,
}

/// `file-serve-mode`: the front end sends the file, named in a response header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileServeMode {
    /// `X-Accel-Redirect` (nginx).
    XAccelRedirect,
    /// `X-Sendfile` (Apache, lighttpd).
    XSendfile,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StaticConfig {
    /// In the order uWSGI tries them: every `check-static`, then `static-map`, then
    /// `static-map2`, each in the order given.
    pub maps: Vec<StaticMap>,
    pub index: Vec<String>,
    pub skip_ext: Vec<String>,
    pub safe: Vec<PathBuf>,
    pub expires: Vec<ExpiresRule>,
    pub gzip_all: bool,
    pub gzip_patterns: Vec<String>,
    pub gzip_dirs: Vec<String>,
    pub gzip_suffixes: Vec<String>,
    /// `mimefile`; empty means `/etc/mime.types`.
    pub mime_files: Vec<PathBuf>,
    /// `offload-threads`: 0 means one per worker when static files are served.
    pub offload_threads: u32,
    /// `file-serve-mode`; `None`: kaiser sends the file itself.
    pub file_serve_mode: Option<FileServeMode>,
    /// `check-static-docroot`: also look under each uwsgi request's `DOCUMENT_ROOT`.
    pub docroot: bool,
}

/// Every option this module applies.
pub const OPTION_NAMES: &[&str] = &[
    "static-map",
    "static-map2",
    "check-static",
    "static-index",
    "static-skip-ext",
    "static-safe",
    "static-expires-type",
    "static-expires-type-mtime",
    "static-expires",
    "static-expires-mtime",
    "static-expires-uri",
    "static-expires-uri-mtime",
    "static-expires-path-info",
    "static-expires-path-info-mtime",
    "static-gzip",
    "static-gzip-all",
    "static-gzip-dir",
    "static-gzip-ext",
    "mimefile",
    "offload-threads",
    "file-serve-mode",
    "check-static-docroot",
];

impl StaticConfig {
    /// Whether any request can be served as a static file.
    pub fn enabled(&self) -> bool {
        !self.maps.is_empty() || self.docroot
    }

    /// Applies one option (by its canonical name) with its value.
    pub(crate) fn apply(&mut self, name: &str, value: &str, truthy: bool) -> Result<(), String> {
        match name {
            "check-static" => self.add_map(StaticMapKind::Check, String::new(), value)?,
            "static-map" | "static-map2" => {
                let Some((mountpoint, target)) = value.split_once('=') else {
                    return Err(format!(
                        "expected `/mountpoint=/path/to/dir` (or a file), got `{value}`"
                    ));
                };
                let kind = if name == "static-map" {
                    StaticMapKind::Strip
                } else {
                    StaticMapKind::Append
                };
                self.add_map(kind, mountpoint.to_string(), target)?;
            }
            "static-index" => self.index.push(non_empty(value)?),
            "static-skip-ext" => self.skip_ext.push(non_empty(value)?),
            "static-safe" => self.safe.push(PathBuf::from(non_empty(value)?)),
            "static-gzip-all" => self.gzip_all = truthy,
            "check-static-docroot" => self.docroot = truthy,
            "static-gzip" => self.gzip_patterns.push(regex(value)?),
            "static-gzip-dir" => self.gzip_dirs.push(non_empty(value)?),
            "static-gzip-ext" => self.gzip_suffixes.push(non_empty(value)?),
            "mimefile" => self.mime_files.push(PathBuf::from(non_empty(value)?)),
            "file-serve-mode" => {
                // uWSGI's spellings; uWSGI ignores any other value, kaiser refuses it.
                self.file_serve_mode = match value.to_ascii_lowercase().as_str() {
                    "x-sendfile" | "xsendfile" => Some(FileServeMode::XSendfile),
                    "x-accel-redirect" | "xaccelredirect" | "nginx" => {
                        Some(FileServeMode::XAccelRedirect)
                    }
                    _ => {
                        return Err(format!(
                        "expected `x-accel-redirect` (or `nginx`) or `x-sendfile`, got `{value}`"
                    ))
                    }
                }
            }
            "offload-threads" => {
                self.offload_threads = value
                    .parse()
                    .map_err(|_| format!("expected a whole number, got `{value}`"))?
            }
            _ => {
                let from_mtime = name.ends_with("-mtime");
                let base = name.strip_suffix("-mtime").unwrap_or(name);
                let on = match base {
                    "static-expires-type" => ExpiresOn::Type,
                    "static-expires" => ExpiresOn::File,
                    "static-expires-uri" => ExpiresOn::Uri,
                    "static-expires-path-info" => ExpiresOn::PathInfo,
                    other => return Err(format!("`{other}` is not a static file option")),
                };
                self.expires.push(expires(on, value, from_mtime)?);
            }
        }
        Ok(())
    }

    /// The entries that would give this configuration back, for `--show-config`.
    pub(crate) fn show(&self, line: &mut impl FnMut(&str, &str)) {
        let path = |p: &std::path::Path| p.display().to_string();
        for map in &self.maps {
            match map.kind {
                StaticMapKind::Check => line("check-static", &path(&map.target)),
                StaticMapKind::Strip | StaticMapKind::Append => {
                    let name = if map.kind == StaticMapKind::Strip {
                        "static-map"
                    } else {
                        "static-map2"
                    };
                    line(name, &format!("{}={}", map.mountpoint, path(&map.target)));
                }
            }
        }
        for (name, values) in [
            ("static-index", &self.index),
            ("static-skip-ext", &self.skip_ext),
            ("static-gzip", &self.gzip_patterns),
            ("static-gzip-dir", &self.gzip_dirs),
            ("static-gzip-ext", &self.gzip_suffixes),
        ] {
            for value in values {
                line(name, value);
            }
        }
        for dir in &self.safe {
            line("static-safe", &path(dir));
        }
        for file in &self.mime_files {
            line("mimefile", &path(file));
        }
        if self.gzip_all {
            line("static-gzip-all", "true");
        }
        if self.docroot {
            line("check-static-docroot", "true");
        }
        for rule in &self.expires {
            let base = match rule.on {
                ExpiresOn::Type => "static-expires-type",
                ExpiresOn::File => "static-expires",
                ExpiresOn::Uri => "static-expires-uri",
                ExpiresOn::PathInfo => "static-expires-path-info",
            };
            let name = format!("{base}{}", if rule.from_mtime { "-mtime" } else { "" });
            let separator = if rule.on == ExpiresOn::Type { '=' } else { ' ' };
            line(
                &name,
                &format!("{}{separator}{}", rule.pattern, rule.seconds),
            );
        }
        match self.file_serve_mode {
            Some(FileServeMode::XAccelRedirect) => line("file-serve-mode", "x-accel-redirect"),
            Some(FileServeMode::XSendfile) => line("file-serve-mode", "x-sendfile"),
            None => {}
        }
        if self.offload_threads != 0 {
            line("offload-threads", &self.offload_threads.to_string());
        }
    }

    fn add_map(
        &mut self,
        kind: StaticMapKind,
        mountpoint: String,
        target: &str,
    ) -> Result<(), String> {
        if target.is_empty() {
            return Err("expected a directory or file to serve, got an empty path".to_string());
        }
        let map = StaticMap {
            kind,
            mountpoint,
            target: PathBuf::from(target),
        };
        // Keep uWSGI's order: check-static, static-map, static-map2.
        let rank = |kind: StaticMapKind| kind as u8;
        let at = self
            .maps
            .iter()
            .position(|m| rank(m.kind) > rank(kind))
            .unwrap_or(self.maps.len());
        self.maps.insert(at, map);
        Ok(())
    }
}

fn non_empty(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err("expected a value, got an empty one".to_string());
    }
    Ok(value.to_string())
}

fn regex(pattern: &str) -> Result<String, String> {
    regex::bytes::Regex::new(pattern)
        .map(|_| pattern.to_string())
        .map_err(|e| format!("invalid regular expression `{pattern}`: {e}"))
}

/// `type=seconds` for `static-expires-type`, `regexp seconds` for the others (uWSGI's
/// syntaxes; the regular expression ends at the first space).
fn expires(on: ExpiresOn, value: &str, from_mtime: bool) -> Result<ExpiresRule, String> {
    let (pattern, seconds) = if on == ExpiresOn::Type {
        value
            .split_once('=')
            .ok_or_else(|| format!("expected `mime/type=SECONDS`, got `{value}`"))?
    } else {
        value
            .split_once(' ')
            .ok_or_else(|| format!("expected `REGEXP SECONDS`, got `{value}`"))?
    };
    let seconds = seconds
        .trim()
        .parse()
        .map_err(|_| format!("expected a number of seconds after the pattern, got `{value}`"))?;
    let pattern = if on == ExpiresOn::Type {
        non_empty(pattern)?
    } else {
        regex(pattern)?
    };
    Ok(ExpiresRule {
        on,
        pattern,
        seconds,
        from_mtime,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(options: &[(&str, &str)]) -> Result<StaticConfig, String> {
        let mut config = StaticConfig::default();
        for (name, value) in options {
            config.apply(name, value, true)?;
        }
        Ok(config)
    }

    #[test]
    fn maps_keep_uwsgi_order() {
        let config = applied(&[
            ("static-map2", "/b=/srv/b"),
            ("static-map", "/a=/srv/a"),
            ("check-static", "/srv/www"),
            ("static-map", "/favicon.ico=/srv/icon.ico"),
        ])
        .unwrap();
        let order: Vec<(StaticMapKind, &str)> = config
            .maps
            .iter()
            .map(|m| (m.kind, m.mountpoint.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                (StaticMapKind::Check, ""),
                (StaticMapKind::Strip, "/a"),
                (StaticMapKind::Strip, "/favicon.ico"),
                (StaticMapKind::Append, "/b"),
            ]
        );
        assert!(config.enabled());
    }

    #[test]
    fn values() {
        let cases: &[(&str, &str, Result<(), &str>)] = &[
            ("static-map", "/static=/srv", Ok(())),
            (
                "static-map",
                "/static",
                Err("expected `/mountpoint=/path/to/dir` (or a file), got `/static`"),
            ),
            (
                "static-map",
                "/static=",
                Err("expected a directory or file to serve, got an empty path"),
            ),
            ("static-expires-type", "text/css=3600", Ok(())),
            (
                "static-expires-type",
                "text/css 3600",
                Err("expected `mime/type=SECONDS`, got `text/css 3600`"),
            ),
            ("static-expires", "/srv/.*\\.css 86400", Ok(())),
            ("static-expires-uri-mtime", "^/static/ 60", Ok(())),
            ("static-expires-path-info", "\\.png$ 60", Ok(())),
            (
                "static-expires",
                "\\.css",
                Err("expected `REGEXP SECONDS`, got `\\.css`"),
            ),
            (
                "static-expires",
                "\\.css soon",
                Err("expected a number of seconds after the pattern, got `\\.css soon`"),
            ),
            ("static-gzip", "\\.(css|js)$", Ok(())),
            ("static-gzip", "(?i)\\.JPE?G$", Ok(())),
            ("static-expires", "\\d+\\.png 60", Ok(())),
            ("offload-threads", "4", Ok(())),
            (
                "offload-threads",
                "many",
                Err("expected a whole number, got `many`"),
            ),
        ];
        for (name, value, expected) in cases {
            let got = applied(&[(name, value)]).map(drop);
            assert_eq!(got, expected.map_err(str::to_string), "{name} = {value}");
        }
        let bad = applied(&[("static-gzip", "(")]).unwrap_err();
        assert!(bad.starts_with("invalid regular expression `(`"), "{bad}");
        let rule = &applied(&[("static-expires-uri-mtime", "^/s/ 60")])
            .unwrap()
            .expires[0];
        assert_eq!(
            rule,
            &ExpiresRule {
                on: ExpiresOn::Uri,
                pattern: "^/s/".into(),
                seconds: 60,
                from_mtime: true
            }
        );
    }
}
