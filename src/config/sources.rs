//! Raw sources to one ordered, expanded list of entries, as `core/uwsgi.c:uwsgi_setup` builds
//! `exported_opts`: `UWSGI_*` variables first, then argv in order with `ini`/`include` files
//! inserted in place, then the `$(ENV)`, `@(file)` and `%(placeholder)` passes, then the
//! `inherit` templates appended at the end (so they win, as in uWSGI).
//!
//! The only I/O is reading config files (and `@(file)`), through [`FileSystem`] so tests can
//! use an in-memory tree. Nothing here decides what an option means.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use super::cli::CliEntry;
use super::diagnostics::{Origin, Report};
use super::expand::{self, FileFacts};
use super::{hints, ini, Context};

/// Reads config files. The real one is `std::fs`; tests use a map.
pub(crate) trait FileSystem {
    fn read(&self, path: &Path) -> std::io::Result<String>;
    /// The inode for `%i`, when there is one.
    fn inode(&self, path: &Path) -> Option<u64>;
}

pub(crate) struct RealFs;

impl FileSystem for RealFs {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn inode(&self, path: &Path) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| m.ino())
    }
}

/// One configuration entry, after expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub key: String,
    pub value: String,
    pub origin: Origin,
    /// Defined by `set-placeholder`: usable as `%(key)`, never an option, allowed in strict
    /// mode.
    pub placeholder_only: bool,
    /// Appended by `inherit`.
    pub inherited: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub entries: Vec<Entry>,
    /// Config files read, in order, as given.
    pub files: Vec<PathBuf>,
    /// Keys that some `%(…)` resolved to, so they are not reported as unknown options.
    pub used_as_placeholder: HashSet<String>,
}

/// `UWSGI_*` variables that are uWSGI's own plumbing, not options (`core/utils.c`).
const EXCLUDED_ENV: &[&str] = &[
    "UWSGI_RELOADS",
    "UWSGI_VASSALS_DIR",
    "UWSGI_EMPEROR_FD",
    "UWSGI_BROODLORD_NUM",
    "UWSGI_EMPEROR_FD_CONFIG",
    "UWSGI_EMPEROR_PROXY",
    "UWSGI_JAIL_PID",
    "UWSGI_ORIGINAL_PROC_NAME",
];

/// Includes deeper than this are reported instead of followed.
const MAX_INCLUDE_DEPTH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoadKind {
    /// `ini` (from argv, env or a file): sets the uppercase magic variables the first time.
    Ini,
    /// A bare argument, `include`, or `inherit`: uWSGI's `uwsgi_opt_load`.
    Load,
}

struct Loader<'a> {
    ctx: &'a Context,
    env: &'a [(String, String)],
    fs: &'a dyn FileSystem,
    report: &'a mut Report,
    collected: Collected,
    first_ini: Option<FileFacts>,
    last_ini: Option<String>,
    /// (absolute path, section) of the files being loaded, to catch include loops.
    stack: Vec<(String, String)>,
    inherits: Vec<(String, Origin)>,
    /// Set while loading `inherit` templates.
    inheriting: bool,
}

pub(crate) fn collect(
    cli: &[CliEntry],
    env: &[(String, String)],
    ctx: &Context,
    fs: &dyn FileSystem,
    report: &mut Report,
) -> Collected {
    let mut loader = Loader {
        ctx,
        env,
        fs,
        report,
        collected: Collected::default(),
        first_ini: None,
        last_ini: None,
        stack: Vec::new(),
        inherits: Vec::new(),
        inheriting: false,
    };
    for (var, value) in env {
        let Some(name) = var.strip_prefix("UWSGI_") else {
            continue;
        };
        // `UWSGI_VASSAL_*` is for the Emperor to hand to its vassals, not for itself.
        if EXCLUDED_ENV.contains(&var.as_str()) || name.starts_with("VASSAL_") || name.is_empty() {
            continue;
        }
        let key = name.to_ascii_lowercase().replace('_', "-");
        loader.add(&key, value, Origin::Environment { var: var.clone() }, false);
    }
    for entry in cli {
        let origin = Origin::CommandLine { index: entry.index };
        loader.add(&entry.key, &entry.value, origin, entry.bare);
    }
    loader.expand_values();
    // Templates are applied after the variable passes, appended at the end of the list.
    loader.inheriting = true;
    let mut next = 0;
    while next < loader.inherits.len() {
        let (spec, origin) = loader.inherits[next].clone();
        loader.load_file(&spec, &origin, "inherit", LoadKind::Load);
        next += 1;
    }
    loader.collected
}

impl Loader<'_> {
    fn add(&mut self, key: &str, value: &str, origin: Origin, bare: bool) {
        let inherited = self.inheriting;
        let entry = |key: &str, value: &str, placeholder_only| Entry {
            key: key.to_string(),
            value: value.to_string(),
            origin: origin.clone(),
            placeholder_only,
            inherited,
        };
        match key {
            "ini" | "include" | "inherit" => {
                self.collected.entries.push(entry(key, value, false));
                if key == "inherit" {
                    self.inherits.push((value.to_string(), origin.clone()));
                } else if key == "ini" && !bare {
                    self.load_file(value, &origin, key, LoadKind::Ini);
                } else {
                    self.load_file(value, &origin, key, LoadKind::Load);
                }
            }
            "set" | "set-placeholder" | "set-ph" => {
                let Some((name, defined)) = value.split_once('=') else {
                    self.report.error(
                        &origin,
                        key,
                        format!("expected `name=value`, got `{value}`"),
                    );
                    return;
                };
                // `set` defines an option (so strict mode checks the name); the
                // placeholder forms define a name for `%(…)` only.
                let placeholder_only = key != "set";
                let defined = entry(name.trim(), defined.trim(), placeholder_only);
                self.collected.entries.push(defined);
            }
            _ => self.collected.entries.push(entry(key, value, false)),
        }
    }

    fn load_file(&mut self, spec: &str, origin: &Origin, key: &str, kind: LoadKind) {
        let (path, section) = ini::split_section(spec);
        let explicit_section = if spec.len() > path.len() + 1 {
            section
        } else {
            ""
        };
        let path = if path.is_empty() {
            // `ini = :other` re-reads the last INI file with another section.
            match &self.last_ini {
                Some(last) => last.clone(),
                None => {
                    self.report.error(
                        origin,
                        key,
                        format!("`{spec}` names a section of the last INI file, but none was loaded before"),
                    );
                    return;
                }
            }
        } else {
            path.to_string()
        };
        if path.contains("://") || path == "-" {
            self.report.error(
                origin,
                key,
                format!("cannot load `{spec}`: kaiser reads config files from the filesystem only"),
            );
            return;
        }
        let abs = absolute(&self.ctx.cwd, &path);
        if self
            .stack
            .iter()
            .any(|(open, open_section)| *open == abs && open_section == section)
        {
            self.report
                .error(origin, key, format!("`{path}` includes itself"));
            return;
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            self.report.error(
                origin,
                key,
                format!("files are nested more than {MAX_INCLUDE_DEPTH} deep at `{path}`"),
            );
            return;
        }
        let text = match self.fs.read(Path::new(&abs)) {
            Ok(text) => text,
            Err(error) => {
                let hint = hints::inline_comment(spec)
                    .map(|_| format!("; {}", hints::inline_comment_message(key, spec, false)))
                    .unwrap_or_default();
                self.report
                    .error(origin, key, format!("cannot read `{path}`: {error}{hint}"));
                return;
            }
        };
        self.collected.files.push(PathBuf::from(&path));
        self.last_ini = Some(path.clone());
        let facts = FileFacts {
            given: path.clone(),
            abs: abs.clone(),
            section: explicit_section.to_string(),
            inode: self.fs.inode(Path::new(&abs)),
        };
        if kind == LoadKind::Ini && self.first_ini.is_none() {
            self.first_ini = Some(facts.clone());
        }
        let (text_after_magic, removed) =
            expand::magic(&text, &facts, self.first_ini.as_ref(), self.ctx);
        hints::removed_magic(&text, &path, &removed, self.report);
        let parsed = ini::parse(&text_after_magic, section);
        if !parsed.section_found {
            self.report.warn(
                origin,
                key,
                format!("section `[{section}]` not found in `{path}`"),
            );
        }
        self.stack.push((abs, section.to_string()));
        for line in parsed.entries {
            let origin = Origin::File {
                path: path.clone(),
                line: line.line,
            };
            if self.inheriting {
                hints::unexpanded_in_template(&line.key, &line.value, &origin, self.report);
            }
            self.add(&line.key, &line.value, origin, false);
        }
        self.stack.pop();
    }

    /// The three value passes of `uwsgi_setup`, in order, over every entry so far.
    fn expand_values(&mut self) {
        let expandable =
            |entry: &Entry| !matches!(entry.key.as_str(), "ini" | "include" | "inherit");
        for entry in self.collected.entries.iter_mut().filter(|e| expandable(e)) {
            hints::dollar_without_parentheses(entry, self.report);
            let (value, unset) = expand::env_vars(&entry.value, self.env);
            for name in unset {
                self.report.warn(
                    &entry.origin,
                    &entry.key,
                    format!(
                        "environment variable `{name}` is not set, so `$({name})` is left as is"
                    ),
                );
            }
            entry.value = value;
        }
        let fs = self.fs;
        let cwd = self.ctx.cwd.clone();
        for entry in self.collected.entries.iter_mut().filter(|e| expandable(e)) {
            let mut read = |path: &str| {
                fs.read(Path::new(&absolute(&cwd, path)))
                    .map_err(|error| format!("cannot read `{path}` for `@({path})`: {error}"))
            };
            let mut errors = Vec::new();
            entry.value = expand::file_includes(&entry.value, &mut read, &mut errors);
            for message in errors {
                self.report.error(&entry.origin, &entry.key, message);
            }
        }
        let snapshot: Vec<(String, String)> = self
            .collected
            .entries
            .iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect();
        let lookup = |name: &str| {
            snapshot
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        for entry in self.collected.entries.iter_mut().filter(|e| expandable(e)) {
            if !entry.value.contains("%(") {
                continue;
            }
            let expanded = expand::placeholders(&entry.value, &lookup);
            self.collected
                .used_as_placeholder
                .extend(expanded.used.iter().cloned());
            if expanded.too_deep {
                self.report.error(
                    &entry.origin,
                    &entry.key,
                    "placeholders refer to each other in a loop",
                );
            }
            // Request-log formats use `%(name)` for their own variables.
            if !entry.key.starts_with("log") {
                for name in expanded.unresolved {
                    self.report.warn(
                        &entry.origin,
                        &entry.key,
                        format!("placeholder `%({name})` is not defined, so it is left as is"),
                    );
                }
            }
            entry.value = expanded.value;
        }
    }
}

/// `cwd`-joined and lexically normalised, as `%p` shows it (symlinks are not resolved:
/// that would be I/O beyond reading config files).
pub(crate) fn absolute(cwd: &Path, path: &str) -> String {
    let joined = cwd.join(path);
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in joined.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::ParentDir => {
                parts.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    let mut out = String::new();
    for part in parts {
        out.push('/');
        out.push_str(&part.to_string_lossy());
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths() {
        let cwd = Path::new("/srv/app");
        assert_eq!(absolute(cwd, "a.ini"), "/srv/app/a.ini");
        assert_eq!(absolute(cwd, "./conf/../a.ini"), "/srv/app/a.ini");
        assert_eq!(absolute(cwd, "/etc/uwsgi/a.ini"), "/etc/uwsgi/a.ini");
        assert_eq!(absolute(cwd, "../../../x"), "/x");
    }
}
