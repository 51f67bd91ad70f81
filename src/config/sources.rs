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
use super::formats::{self, Format};
use super::logic::{self, Logic, PathKind};
use super::{hints, ini, Context};

/// Reads config files. The real one is `std::fs`; tests use a map.
pub(crate) trait FileSystem {
    fn read(&self, path: &Path) -> std::io::Result<String>;
    /// The inode for `%i`, when there is one.
    fn inode(&self, path: &Path) -> Option<u64>;
    /// What `stat` says the path is (symlinks followed), for `if-file`, `if-dir`, `for-glob`.
    fn stat(&self, path: &Path) -> Option<PathKind>;
    /// Whether the path can be opened for reading, for `if-exists` (uWSGI: `access(R_OK)`).
    fn readable(&self, path: &Path) -> bool;
    /// A directory's entries as (name, is a directory), for `for-glob`.
    fn list_dir(&self, path: &Path) -> Vec<(String, bool)>;
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

    fn stat(&self, path: &Path) -> Option<PathKind> {
        let meta = std::fs::metadata(path).ok()?;
        Some(if meta.is_file() {
            PathKind::File
        } else if meta.is_dir() {
            PathKind::Dir
        } else {
            PathKind::Other
        })
    }

    fn readable(&self, path: &Path) -> bool {
        std::fs::File::open(path).is_ok()
    }

    fn list_dir(&self, path: &Path) -> Vec<(String, bool)> {
        let Ok(entries) = std::fs::read_dir(path) else {
            return Vec::new();
        };
        entries
            .flatten()
            .map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                // `stat`, not the entry type: a symlink to a directory is a directory to glob.
                let is_dir = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir());
                (name, is_dir)
            })
            .collect()
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
    /// The open `if-*`/`for*` block, if any (uWSGI keeps one, across files).
    block: Option<Block>,
    /// Set while a block adds its entries: they bypass the block, as in uWSGI.
    in_block: bool,
    /// `declare-option`: (name, template) of each custom option, in declaration order.
    custom: Vec<(String, String)>,
    /// `inject-before` and `inject-after` files: their text goes around every config file
    /// read after them (uWSGI's `uwsgi_open_and_read` with a magic table).
    inject_before: Vec<String>,
    inject_after: Vec<String>,
}

/// An open config-logic block.
#[derive(Debug, Clone)]
struct Block {
    key: String,
    logic: Logic,
    arg: String,
    origin: Origin,
    /// A `for*` block's items, computed when it opens.
    items: Vec<String>,
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
        block: None,
        in_block: false,
        custom: Vec::new(),
        inject_before: Vec::new(),
        inject_after: Vec::new(),
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
    loader.warn_unclosed_block();
    loader.expand_values();
    // Templates are applied after the variable passes, appended at the end of the list.
    loader.inheriting = true;
    let mut next = 0;
    while next < loader.inherits.len() {
        let (spec, origin) = loader.inherits[next].clone();
        loader.load_file(&spec, &origin, "inherit", LoadKind::Load);
        next += 1;
    }
    loader.warn_unclosed_block();
    loader.collected
}

impl Loader<'_> {
    fn add(&mut self, key: &str, value: &str, origin: Origin, bare: bool) {
        if !self.in_block && self.logic(key, value, &origin, bare) {
            return;
        }
        let inherited = self.inheriting;
        let entry = |key: &str, value: &str, placeholder_only| Entry {
            key: key.to_string(),
            value: value.to_string(),
            origin: origin.clone(),
            placeholder_only,
            inherited,
        };
        match key {
            "inject-before" | "inject-after" => {
                self.collected.entries.push(entry(key, value, false));
                let path = absolute(&self.ctx.cwd, value);
                if key == "inject-before" {
                    self.inject_before.push(path);
                } else {
                    self.inject_after.push(path);
                }
            }
            "config" if !Format::is_known_extension(ini::split_section(value).0) => {
                self.collected.entries.push(entry(key, value, false));
                self.report.error(
                    &origin,
                    key,
                    format!("unable to load configuration from `{value}`: `config` knows `.ini`, `.yaml`/`.yml`, `.json`/`.js` and `.xml` files"),
                );
            }
            "ini" | "include" | "inherit" | "yaml" | "yml" | "json" | "js" | "xml"
            | "xmlconfig" | "config" => {
                self.collected.entries.push(entry(key, value, false));
                if key == "inherit" {
                    self.inherits.push((value.to_string(), origin.clone()));
                } else if (Format::of_option(key).is_some() || key == "config") && !bare {
                    self.load_file(value, &origin, key, LoadKind::Ini);
                } else {
                    self.load_file(value, &origin, key, LoadKind::Load);
                }
            }
            "ini-paste" | "ini-paste-logged" => {
                // uWSGI's `uwsgi_opt_ini_paste`: the file's `[uwsgi]` section, and its app
                // through paste.deploy.
                self.collected.entries.push(entry(key, value, false));
                self.load_file(value, &origin, key, LoadKind::Ini);
                let (path, _) = ini::split_section(value);
                let uri = format!("config:{}", absolute(&self.ctx.cwd, path));
                self.collected.entries.push(entry("paste", &uri, false));
                if key == "ini-paste-logged" {
                    self.collected
                        .entries
                        .push(entry("paste-logger", "true", false));
                }
            }
            "declare-option" | "declare-option2" => {
                self.collected.entries.push(entry(key, value, false));
                match value.split_once('=') {
                    Some((name, template)) if !name.is_empty() => {
                        self.custom.push((name.to_string(), template.to_string()));
                    }
                    _ => self.report.error(
                        &origin,
                        key,
                        format!("expected `newoption=key=value;key=value`, got `{value}`"),
                    ),
                }
            }
            _ if self.custom.iter().any(|(name, _)| name == key) => {
                // Usable as `%(name)` like any key, but not an option of its own.
                self.collected.entries.push(entry(key, value, true));
                let template = self
                    .custom
                    .iter()
                    .rev()
                    .find(|(name, _)| name == key)
                    .map(|(_, template)| template.clone())
                    .unwrap_or_default();
                for (new_key, new_value) in expand::custom_option(&template, value) {
                    self.add(&new_key, &new_value, origin.clone(), false);
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

    /// Config logic (`logic.rs`): opens and closes blocks, and routes the entries inside a
    /// block through it. Returns whether the entry was consumed.
    fn logic(&mut self, key: &str, value: &str, origin: &Origin, bare: bool) -> bool {
        if logic::is_end(key) {
            self.block = None;
            return false;
        }
        if let Some(opened) = logic::opening(key) {
            if let Some(open) = &self.block {
                // uWSGI exits with "recursive logic in options is not supported" when the
                // outer condition holds, and misreads the rest of the block when it does not.
                let message = format!(
                    "config logic blocks cannot be nested: `{}` at {} is still open (close it with `endif` or `endfor` first; uWSGI refuses nesting too)",
                    open.key, open.origin
                );
                self.report.error(origin, key, message);
                return true;
            }
            if let Logic::If {
                test: logic::Test::HostnameMatch,
                ..
            } = opened
            {
                if let Err(error) = regex::Regex::new(value) {
                    self.report.error(
                        origin,
                        key,
                        format!("invalid regular expression `{value}`: {error}"),
                    );
                }
            }
            let mut items = Vec::new();
            if !matches!(opened, Logic::If { .. }) {
                match logic::items(opened, value, &self.facts()) {
                    Ok(found) => items = found,
                    Err(message) => self.report.warn(origin, key, message),
                }
            }
            self.block = Some(Block {
                key: key.to_string(),
                logic: opened,
                arg: value.to_string(),
                origin: origin.clone(),
                items,
            });
            return false;
        }
        let Some(block) = self.block.clone() else {
            return false;
        };
        let values: Vec<String> = match block.logic {
            Logic::If { test, negated } => {
                // Tested again for every entry, as uWSGI does (`if-opt` sees the entries
                // the block itself added).
                let (keep, item) = logic::test(test, negated, &block.arg, &self.facts());
                if keep {
                    vec![logic::substitute(value, item.as_deref())]
                } else {
                    Vec::new()
                }
            }
            _ => block
                .items
                .iter()
                .map(|item| logic::substitute(value, Some(item)))
                .collect(),
        };
        self.in_block = true;
        for value in values {
            self.add(key, &value, origin.clone(), bare);
        }
        self.in_block = false;
        true
    }

    fn facts(&self) -> LoaderFacts<'_> {
        LoaderFacts {
            ctx: self.ctx,
            env: self.env,
            fs: self.fs,
            entries: &self.collected.entries,
        }
    }

    fn warn_unclosed_block(&mut self) {
        if let Some(block) = self.block.take() {
            let end = if matches!(block.logic, Logic::If { .. }) {
                "endif"
            } else {
                "endfor"
            };
            self.report.warn(
                &block.origin,
                &block.key,
                format!("this block has no `{end}`, so it ran to the end of the configuration"),
            );
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
            Ok(text) => self.inject(text, origin, key),
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
        // `yaml = file` reads YAML whatever the name; `include`, `inherit` and bare
        // arguments go by the extension, as uWSGI's `uwsgi_opt_load`.
        let format = Format::of_option(key).unwrap_or_else(|| Format::of_path(&path));
        // An XML file's `:ID` picks a `<uwsgi id="ID">`; without one, the first `<uwsgi>`.
        let wanted = if format == Format::Xml {
            explicit_section
        } else {
            section
        };
        let parsed = formats::parse(format, &text_after_magic, wanted);
        for note in &parsed.notes {
            let at = Origin::File {
                path: path.clone(),
                line: note.line,
            };
            if note.error {
                self.report.error(&at, key, note.message.clone());
            } else {
                self.report.warn(&at, key, note.message.clone());
            }
        }
        if !parsed.section_found && !parsed.notes.iter().any(|note| note.error) {
            let shown = match format {
                Format::Yaml => format!("`{section}:`"),
                _ => format!("`[{section}]`"),
            };
            self.report.warn(
                origin,
                key,
                format!("section {shown} not found in `{path}`"),
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

    /// A config file's text with the `inject-before` files' text before it and the
    /// `inject-after` files' after it, joined as they are (uWSGI adds no line breaks).
    /// Line numbers in messages then count from the start of the joined text.
    fn inject(&mut self, text: String, origin: &Origin, key: &str) -> String {
        if self.inject_before.is_empty() && self.inject_after.is_empty() {
            return text;
        }
        let read = |path: &String, report: &mut Report| match self.fs.read(Path::new(path)) {
            Ok(injected) => injected,
            Err(error) => {
                report.error(
                    origin,
                    key,
                    format!("cannot read `{path}` to inject it: {error}"),
                );
                String::new()
            }
        };
        let mut joined = String::new();
        for path in &self.inject_before {
            joined.push_str(&read(path, self.report));
        }
        joined.push_str(&text);
        for path in &self.inject_after {
            joined.push_str(&read(path, self.report));
        }
        joined
    }

    /// The three value passes of `uwsgi_setup`, in order, over every entry so far.
    fn expand_values(&mut self) {
        let expandable = |entry: &Entry| {
            !matches!(entry.key.as_str(), "ini" | "include" | "inherit" | "config")
                && Format::of_option(&entry.key).is_none()
        };
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
                if let Some(command) = super::schemes::exec_command(path) {
                    return super::schemes::run(command, &cwd);
                }
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

/// What config logic may ask about the machine, answered from the loader's inputs.
struct LoaderFacts<'a> {
    ctx: &'a Context,
    env: &'a [(String, String)],
    fs: &'a dyn FileSystem,
    entries: &'a [Entry],
}

impl LoaderFacts<'_> {
    fn path(&self, path: &str) -> PathBuf {
        PathBuf::from(absolute(&self.ctx.cwd, path))
    }
}

impl logic::Facts for LoaderFacts<'_> {
    fn env(&self, name: &str) -> Option<String> {
        // The last definition wins, as in the process environment.
        self.env
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    }

    fn option(&self, name: &str) -> Option<String> {
        self.entries
            .iter()
            .find(|entry| entry.key == name)
            .map(|entry| entry.value.clone())
    }

    fn hostname(&self) -> &str {
        &self.ctx.hostname
    }

    fn is_reload(&self) -> bool {
        self.ctx.is_reload
    }

    fn stat(&self, path: &str) -> Option<PathKind> {
        if path.is_empty() {
            return None;
        }
        self.fs.stat(&self.path(path))
    }

    fn readable(&self, path: &str) -> bool {
        !path.is_empty() && self.fs.readable(&self.path(path))
    }

    fn list_dir(&self, path: &str) -> Vec<(String, bool)> {
        self.fs.list_dir(&self.path(path))
    }

    fn read(&self, path: &str) -> Result<String, String> {
        self.fs
            .read(&self.path(path))
            .map_err(|error| format!("cannot read `{path}`: {error}"))
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
