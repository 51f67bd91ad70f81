//! Where vassal files come from: `--emperor` arguments (directories and globs), which names
//! count as vassals, and a scan that turns a monitor into a snapshot of files.
//!
//! Change detection is by snapshot diff, not by interpreting individual inotify events: the
//! watcher only says "look again", and [`diff`] decides what was added, changed or removed.
//! That makes a missed or overflowed event harmless (the periodic rescan computes the same
//! diff) and makes atomic renames, `touch` and in-place writes look alike. This module does
//! no watching and spawns nothing.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::config::Format;

/// One `--emperor` argument, classified as uWSGI's `emperor_build_scanners` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Monitor {
    /// A directory: every `*.ini` directly inside it is a vassal.
    Dir { arg: String, dir: PathBuf },
    /// A glob pattern (`/etc/uwsgi/*.ini`); `root` is the deepest directory without wildcards,
    /// which is what gets watched (recursively when wildcards span several components).
    Glob {
        arg: String,
        pattern: String,
        root: PathBuf,
        recursive: bool,
    },
}

impl Monitor {
    pub fn arg(&self) -> &str {
        match self {
            Monitor::Dir { arg, .. } | Monitor::Glob { arg, .. } => arg,
        }
    }

    /// The directory to watch for changes.
    pub fn watch_root(&self) -> &Path {
        match self {
            Monitor::Dir { dir, .. } => dir,
            Monitor::Glob { root, .. } => root,
        }
    }
}

fn has_wildcard(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

/// Classifies an `--emperor` value. `dir://` and `glob://` force the kind; otherwise a value
/// with glob metacharacters is a glob and anything else is a directory (a directory that does
/// not exist yet is still a directory monitor: it is reported and picked up once created).
pub fn classify_monitor(arg: &str) -> Monitor {
    let (forced_glob, text) = if let Some(rest) = arg.strip_prefix("glob://") {
        (Some(true), rest)
    } else if let Some(rest) = arg.strip_prefix("dir://") {
        (Some(false), rest)
    } else {
        (None, arg)
    };
    if forced_glob.unwrap_or_else(|| has_wildcard(text)) {
        let mut root = PathBuf::new();
        let mut wild_components = 0;
        for component in Path::new(text).components() {
            let part = component.as_os_str().to_string_lossy();
            if wild_components > 0 || has_wildcard(&part) {
                wild_components += 1;
            } else {
                root.push(component);
            }
        }
        // A glob of a plain file name (`glob://app.ini`) watches the file's directory.
        if wild_components == 0 {
            root.pop();
            wild_components = 1;
        }
        if root.as_os_str().is_empty() {
            root.push(".");
        }
        Monitor::Glob {
            arg: arg.to_owned(),
            pattern: text.to_owned(),
            root,
            recursive: wild_components > 1,
        }
    } else {
        Monitor::Dir {
            arg: arg.to_owned(),
            dir: PathBuf::from(text),
        }
    }
}

/// What a directory entry's name says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A vassal config we run (`*.ini`, `*.xml`, `*.yml`/`*.yaml`, `*.json`/`*.js`, and
    /// `emperor-extra-extension` suffixes).
    Vassal,
    /// Not a vassal at all: dotfiles, editor temp and backup files, anything else.
    Ignored,
}

/// How a scan reads the files it finds (`emperor-nofollow`, `emperor-tyrant-nofollow`,
/// `emperor-extra-extension`).
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// `lstat` instead of `stat`: a symlink is a vassal by itself, its stamp the link's.
    pub nofollow: bool,
    /// The owner (for `emperor-tyrant`) is the link's, not the target's.
    pub tyrant_nofollow: bool,
    /// More suffixes that make a file a vassal, read as INI.
    pub extra_extensions: Vec<String>,
}

/// Classifies a file name (not a path). Case-sensitive like uWSGI's `uwsgi_emperor_is_valid`.
pub fn classify_name(name: &str) -> NameKind {
    classify_name_with(name, &[])
}

/// [`classify_name`] with `emperor-extra-extension` suffixes, which count as vassals.
pub fn classify_name_with(name: &str, extra_extensions: &[String]) -> NameKind {
    let is_temp = name.starts_with('.')             // dotfiles, vim `.x.swp`, emacs `.#x`
        || name.ends_with('~')                      // backups
        || (name.starts_with('#') && name.ends_with('#')) // emacs auto-save
        || name.len() >= 255;
    if is_temp {
        return NameKind::Ignored;
    }
    if name.ends_with(".ini")
        || Format::of_path(name) != Format::Ini
        || extra_extensions
            .iter()
            .any(|ext| name.ends_with(ext.as_str()))
    {
        return NameKind::Vassal;
    }
    NameKind::Ignored
}

/// The flag a vassal file is read with, by its extension, as uWSGI's emperor picks the
/// config loader (the config module's own choice, [`Format::of_path`]): `--xml`, `--yaml`,
/// `--json`, else `--ini` (also for `emperor-extra-extension` files).
pub fn config_flag(name: &str) -> &'static str {
    match Format::of_path(name) {
        Format::Xml => "--xml",
        Format::Yaml => "--yaml",
        Format::Json => "--json",
        Format::Ini => "--ini",
    }
}

/// What we remember about a vassal file to notice that it changed.
///
/// uWSGI compares whole-second mtimes only (an edit in the same second is missed, reference
/// §2.3); we compare the nanosecond mtime, size and inode, so an atomic rename over the file is
/// a change even when the new file carries an older mtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_sec: i64,
    pub mtime_nsec: i64,
    pub uid: u32,
    pub gid: u32,
}

impl FileStamp {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_sec: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            uid: meta.uid(),
            gid: meta.gid(),
        }
    }

    fn content_key(&self) -> (u64, u64, u64, i64, i64) {
        (
            self.dev,
            self.ino,
            self.size,
            self.mtime_sec,
            self.mtime_nsec,
        )
    }
}

/// The vassal files one scan found, by absolute path.
pub type Snapshot = BTreeMap<PathBuf, FileStamp>;

/// What a scan found besides vassals, for the caller to log (once, not on every rescan).
#[derive(Debug, Default)]
pub struct ScanReport {
    pub snapshot: Snapshot,
    /// `*.ini` names that are not regular files (directories, sockets, dangling symlinks).
    pub not_regular: Vec<PathBuf>,
    /// Set when the monitor itself could not be read (missing directory, permissions).
    pub error: Option<std::io::Error>,
}

/// Lists the vassal files of `monitor` right now. Symlinks are followed (`stat`, not
/// `lstat`), as uWSGI does without `emperor-nofollow`.
pub fn scan(monitor: &Monitor) -> ScanReport {
    scan_with(monitor, &ScanOptions::default())
}

/// [`scan`] with `emperor-nofollow` and friends: with `nofollow`, a symlink is stamped by
/// `lstat` (editing its target is no change; pointing it elsewhere is) and accepted even
/// when it dangles, as uWSGI accepts `S_ISLNK`.
pub fn scan_with(monitor: &Monitor, options: &ScanOptions) -> ScanReport {
    let mut report = ScanReport::default();
    let candidates: Vec<PathBuf> = match monitor {
        Monitor::Dir { dir, .. } => match std::fs::read_dir(dir) {
            Ok(entries) => {
                let base = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
                entries
                    .filter_map(|entry| entry.ok())
                    .map(|entry| base.join(entry.file_name()))
                    .collect()
            }
            Err(error) => {
                report.error = Some(error);
                Vec::new()
            }
        },
        Monitor::Glob { pattern, .. } => match crate::sys::glob::glob(pattern) {
            Ok(paths) => paths
                .into_iter()
                .map(|path| std::path::absolute(&path).unwrap_or(path))
                .collect(),
            Err(error) => {
                report.error = Some(error);
                Vec::new()
            }
        },
    };
    for path in candidates {
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        match classify_name_with(name, &options.extra_extensions) {
            NameKind::Ignored => {}
            NameKind::Vassal if options.nofollow => match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_file() || meta.file_type().is_symlink() => {
                    report.snapshot.insert(path, FileStamp::of(&meta));
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                _ => report.not_regular.push(path),
            },
            NameKind::Vassal => match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() => {
                    let mut stamp = FileStamp::of(&meta);
                    if options.tyrant_nofollow {
                        if let Ok(link) = std::fs::symlink_metadata(&path) {
                            (stamp.uid, stamp.gid) = (link.uid(), link.gid());
                        }
                    }
                    report.snapshot.insert(path, stamp);
                }
                // Deleted between readdir and stat: the next event or rescan settles it.
                Err(error)
                    if error.kind() == std::io::ErrorKind::NotFound && !is_symlink(&path) => {}
                _ => report.not_regular.push(path),
            },
        }
    }
    report
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink())
}

/// One difference between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Added(PathBuf),
    Modified(PathBuf),
    Removed(PathBuf),
}

/// Compares snapshots. With `tyrant`, an owner change is a removal plus an addition, because
/// the vassal must be restarted under its new uid rather than reloaded (uWSGI stops it).
pub fn diff(old: &Snapshot, new: &Snapshot, tyrant: bool) -> Vec<Change> {
    let mut changes = Vec::new();
    for (path, stamp) in new {
        match old.get(path) {
            None => changes.push(Change::Added(path.clone())),
            Some(before) if tyrant && (before.uid, before.gid) != (stamp.uid, stamp.gid) => {
                changes.push(Change::Removed(path.clone()));
                changes.push(Change::Added(path.clone()));
            }
            Some(before) if before.content_key() != stamp.content_key() => {
                changes.push(Change::Modified(path.clone()))
            }
            Some(_) => {}
        }
    }
    for path in old.keys() {
        if !new.contains_key(path) {
            changes.push(Change::Removed(path.clone()));
        }
    }
    changes
}

/// The name used in logs and as the vassal's identity towards people: the file stem, which is
/// also what the vassal itself uses (`Config::name`).
pub fn vassal_name(path: &Path) -> String {
    path.file_stem()
        .map(|stem| String::from_utf8_lossy(stem.as_bytes()).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        fn check(name: &str, expected: NameKind) {
            assert_eq!(classify_name(name), expected, "name `{name}`");
        }
        use NameKind::*;
        check("mysite.ini", Vassal);
        check("my.site.ini", Vassal);
        check("a.ini", Vassal);
        check(".ini", Ignored);
        check(".mysite.ini", Ignored);
        check(".mysite.ini.swp", Ignored);
        check(".#mysite.ini", Ignored);
        check("#mysite.ini#", Ignored);
        check("mysite.ini~", Ignored);
        check("mysite.ini.swp", Ignored);
        check("mysite.ini.dpkg-new", Ignored);
        check("mysite.ini.tmp", Ignored);
        check("4913", Ignored);
        check("README", Ignored);
        check("mysite.INI", Ignored);
        check("mysite.xml", Vassal);
        check("mysite.yml", Vassal);
        check("mysite.yaml", Vassal);
        check("mysite.json", Vassal);
        check("mysite.js", Vassal);
        check(&format!("{}.ini", "x".repeat(251)), Ignored);
        check(&format!("{}.ini", "x".repeat(250)), Vassal);
    }

    #[test]
    fn monitors() {
        fn dir(arg: &str, dir: &str) -> Monitor {
            Monitor::Dir {
                arg: arg.into(),
                dir: dir.into(),
            }
        }
        fn glob(arg: &str, pattern: &str, root: &str, recursive: bool) -> Monitor {
            Monitor::Glob {
                arg: arg.into(),
                pattern: pattern.into(),
                root: root.into(),
                recursive,
            }
        }
        fn check(arg: &str, expected: Monitor) {
            assert_eq!(classify_monitor(arg), expected, "--emperor {arg}");
        }
        check(
            "/etc/uwsgi/vassals",
            dir("/etc/uwsgi/vassals", "/etc/uwsgi/vassals"),
        );
        check(
            "/etc/uwsgi/vassals/",
            dir("/etc/uwsgi/vassals/", "/etc/uwsgi/vassals/"),
        );
        check("vassals", dir("vassals", "vassals"));
        check("dir:///srv/v", dir("dir:///srv/v", "/srv/v"));
        check(
            "/etc/uwsgi/*.ini",
            glob("/etc/uwsgi/*.ini", "/etc/uwsgi/*.ini", "/etc/uwsgi", false),
        );
        check(
            "/srv/*/uwsgi/*.ini",
            glob("/srv/*/uwsgi/*.ini", "/srv/*/uwsgi/*.ini", "/srv", true),
        );
        check("*.ini", glob("*.ini", "*.ini", ".", false));
        check(
            "conf/app?.ini",
            glob("conf/app?.ini", "conf/app?.ini", "conf", false),
        );
        check(
            "/etc/[ab]/x.ini",
            glob("/etc/[ab]/x.ini", "/etc/[ab]/x.ini", "/etc", true),
        );
        check(
            "glob:///etc/app.ini",
            glob("glob:///etc/app.ini", "/etc/app.ini", "/etc", false),
        );
    }

    #[test]
    fn diffs() {
        fn stamp(ino: u64, mtime: i64, uid: u32) -> FileStamp {
            FileStamp {
                dev: 1,
                ino,
                size: 10,
                mtime_sec: mtime,
                mtime_nsec: 0,
                uid,
                gid: uid,
            }
        }
        fn snap(entries: &[(&str, FileStamp)]) -> Snapshot {
            entries
                .iter()
                .map(|(p, s)| (PathBuf::from(p), *s))
                .collect()
        }
        fn check(
            old: &[(&str, FileStamp)],
            new: &[(&str, FileStamp)],
            tyrant: bool,
            expected: &[Change],
        ) {
            assert_eq!(
                diff(&snap(old), &snap(new), tyrant),
                expected,
                "old {old:?} new {new:?}"
            );
        }
        let (a, b) = ("/v/a.ini", "/v/b.ini");
        use Change::*;
        check(&[], &[], false, &[]);
        check(&[], &[(a, stamp(1, 5, 0))], false, &[Added(a.into())]);
        check(&[(a, stamp(1, 5, 0))], &[], false, &[Removed(a.into())]);
        check(&[(a, stamp(1, 5, 0))], &[(a, stamp(1, 5, 0))], false, &[]);
        // touch
        check(
            &[(a, stamp(1, 5, 0))],
            &[(a, stamp(1, 6, 0))],
            false,
            &[Modified(a.into())],
        );
        // atomic rename over the file, even with an older mtime
        check(
            &[(a, stamp(1, 5, 0))],
            &[(a, stamp(2, 4, 0))],
            false,
            &[Modified(a.into())],
        );
        // chown: a reload without tyrant, a restart with it
        check(
            &[(a, stamp(1, 5, 0))],
            &[(a, stamp(1, 5, 1000))],
            false,
            &[],
        );
        check(
            &[(a, stamp(1, 5, 0))],
            &[(a, stamp(1, 5, 1000))],
            true,
            &[Removed(a.into()), Added(a.into())],
        );
        check(
            &[(a, stamp(1, 5, 0))],
            &[(b, stamp(1, 5, 0))],
            false,
            &[Added(b.into()), Removed(a.into())],
        );
    }

    #[test]
    fn scan_dir_filters_and_follows_symlinks() {
        let dir = std::env::temp_dir().join(format!("kaiser-scan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub.ini")).expect("temp dir is writable");
        for name in [
            "a.ini", ".b.ini", "c.ini~", "d.xml", "e.txt", "target", "f.yml~",
        ] {
            std::fs::write(dir.join(name), "[uwsgi]\n").expect("temp dir is writable");
        }
        std::os::unix::fs::symlink(dir.join("target"), dir.join("link.ini")).expect("symlink");
        std::os::unix::fs::symlink(dir.join("missing"), dir.join("dangling.ini")).expect("symlink");
        let report = scan(&classify_monitor(dir.to_str().expect("utf-8 temp dir")));
        let names = |paths: Vec<&PathBuf>| -> Vec<String> {
            let mut names: Vec<String> = paths
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into())
                .collect();
            names.sort();
            names
        };
        assert_eq!(
            names(report.snapshot.keys().collect()),
            ["a.ini", "d.xml", "link.ini"]
        );
        assert_eq!(
            names(report.not_regular.iter().collect()),
            ["dangling.ini", "sub.ini"]
        );
        assert!(report.error.is_none());

        let pattern = format!("{}/*.ini", dir.display());
        let report = scan(&classify_monitor(&pattern));
        assert_eq!(
            names(report.snapshot.keys().collect()),
            ["a.ini", "link.ini"]
        );

        // `emperor-nofollow`: the dangling link is a vassal too, and the link's stamp is its
        // own: rewriting the target changes nothing. `emperor-extra-extension` adds `.txt`.
        let options = ScanOptions {
            nofollow: true,
            tyrant_nofollow: false,
            extra_extensions: vec![".txt".into()],
        };
        let monitor = classify_monitor(dir.to_str().expect("utf-8 temp dir"));
        let before = scan_with(&monitor, &options);
        assert_eq!(
            names(before.snapshot.keys().collect()),
            ["a.ini", "d.xml", "dangling.ini", "e.txt", "link.ini"]
        );
        std::fs::write(dir.join("target"), "[uwsgi]\nprocesses = 2\n").expect("rewrite");
        let after = scan_with(&monitor, &options);
        assert!(diff(&before.snapshot, &after.snapshot, false).is_empty());
        let followed = scan(&monitor).snapshot[&dir.join("link.ini")];
        assert_ne!(
            followed,
            before.snapshot[&dir.join("link.ini")],
            "without nofollow the target's stamp"
        );

        let report = scan(&classify_monitor(dir.join("nope").to_str().unwrap()));
        assert!(report.error.is_some(), "a missing directory is reported");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn vassal_names() {
        assert_eq!(vassal_name(Path::new("/etc/uwsgi/mysite.ini")), "mysite");
        assert_eq!(vassal_name(Path::new("my.site.ini")), "my.site");
    }
}
