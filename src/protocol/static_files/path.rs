//! From a request's `PATH_INFO` to a path relative to a static root, refusing anything that
//! could name a file outside it.
//!
//! uWSGI concatenates the root and `PATH_INFO` and lets `realpath(3)` fold the `..`s, then
//! checks the result starts with the root. kaiser folds the segments itself first, so a
//! request can never name a parent of the root however it is spelt; the worker then opens
//! the result beneath the root with `openat2(RESOLVE_BENEATH)`, which also keeps symlinks
//! from leading out. This module does the first half.

/// How a mapping turns `PATH_INFO` into a path under its root (uWSGI's three kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKind {
    /// `static-map /mount=root`: what follows the mountpoint, under the root.
    Strip,
    /// `static-map2 /mount=root`: the whole `PATH_INFO`, under the root.
    Append,
    /// `check-static root`: every request; the whole `PATH_INFO`, under the root.
    Check,
}

/// The part of `path_info` a mapping looks up, or `None` when the mapping does not apply.
/// uWSGI matches mountpoints as plain prefixes (`/static` also takes `/staticfoo`), and so
/// does kaiser: a file that does not exist falls through to the app anyway.
pub fn mapped<'a>(kind: MapKind, mountpoint: &[u8], path_info: &'a [u8]) -> Option<&'a [u8]> {
    match kind {
        MapKind::Check => Some(path_info),
        MapKind::Strip => path_info.strip_prefix(mountpoint),
        MapKind::Append => path_info.starts_with(mountpoint).then_some(path_info),
    }
}

/// Why a path is refused outright (403) rather than looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its `..` segments climb above the root.
    Escapes,
    /// A NUL byte or a backslash: no file kaiser serves is named so, and both are classic
    /// ways to smuggle a traversal past a check written for other systems.
    BadByte,
}

/// Folds `.`, `..` and empty segments of an already percent-decoded path and returns it
/// relative to the root (empty for the root itself), without a leading `/`.
///
/// The path is decoded once, by the HTTP parser or by nginx: a `%2e%2e` that reaches here
/// was `%252e%252e` on the wire and names a file literally called `%2e%2e`.
pub fn normalize(path: &[u8]) -> Result<Vec<u8>, Refusal> {
    if path.iter().any(|&b| b == 0 || b == b'\\') {
        return Err(Refusal::BadByte);
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    for segment in path.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                if segments.pop().is_none() {
                    return Err(Refusal::Escapes);
                }
            }
            _ => segments.push(segment),
        }
    }
    Ok(segments.join(&b'/'))
}

/// Whether `path` (an absolute, canonical path) is `dir` or inside it, comparing whole
/// components: `/srv/static-secret` is not inside `/srv/static` (uWSGI compares bytes and
/// would say it is).
pub fn is_within(path: &[u8], dir: &[u8]) -> bool {
    let dir = if dir.len() > 1 {
        dir.strip_suffix(b"/").unwrap_or(dir)
    } else {
        dir
    };
    if dir == b"/" {
        return path.starts_with(b"/");
    }
    match path.strip_prefix(dir) {
        Some(rest) => rest.is_empty() || rest.starts_with(b"/"),
        None => false,
    }
}

/// Whether a name ends with one of `static-skip-ext`'s suffixes (compared as bytes, as
/// uWSGI does).
pub fn has_suffix(name: &[u8], suffixes: &[String]) -> bool {
    suffixes
        .iter()
        .any(|suffix| !suffix.is_empty() && name.ends_with(suffix.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, expected: Result<&str, Refusal>) {
        let got = normalize(path.as_bytes());
        let got = got.map(|p| String::from_utf8_lossy(&p).into_owned());
        assert_eq!(got, expected.map(str::to_string), "normalize({path:?})");
    }

    #[test]
    fn normalizes() {
        check("/a/b.css", Ok("a/b.css"));
        check("a/b.css", Ok("a/b.css"));
        check("", Ok(""));
        check("/", Ok(""));
        check("//a///b/", Ok("a/b"));
        check("/./a/./b", Ok("a/b"));
        check("/a/../b", Ok("b"));
        check("/a/b/../../c", Ok("c"));
        check("/a/..", Ok(""));
        check("/%2e%2e/secret", Ok("%2e%2e/secret"));
        check("/...", Ok("..."));
        check("/..a/b", Ok("..a/b"));
        check("/..", Err(Refusal::Escapes));
        check("/../secret", Err(Refusal::Escapes));
        check("../secret", Err(Refusal::Escapes));
        check("/a/../../secret", Err(Refusal::Escapes));
        check("/a/./../../secret", Err(Refusal::Escapes));
        check("/a/b/../../../etc/passwd", Err(Refusal::Escapes));
        check("/a\0.css", Err(Refusal::BadByte));
        check("/..\\..\\secret", Err(Refusal::BadByte));
        check("/a\\b", Err(Refusal::BadByte));
    }

    #[test]
    fn maps() {
        let cases: &[(MapKind, &str, &str, Option<&str>)] = &[
            (MapKind::Strip, "/static", "/static/a.css", Some("/a.css")),
            (MapKind::Strip, "/static/", "/static/a.css", Some("a.css")),
            (MapKind::Strip, "/static", "/staticfoo", Some("foo")),
            (MapKind::Strip, "/static", "/other/a.css", None),
            (MapKind::Strip, "/favicon.ico", "/favicon.ico", Some("")),
            (
                MapKind::Append,
                "/static",
                "/static/a.css",
                Some("/static/a.css"),
            ),
            (MapKind::Append, "/static", "/x", None),
            (MapKind::Check, "", "/anything", Some("/anything")),
        ];
        for (kind, mount, path, expected) in cases {
            let got = mapped(*kind, mount.as_bytes(), path.as_bytes());
            assert_eq!(
                got,
                expected.map(str::as_bytes),
                "mapped({kind:?}, {mount:?}, {path:?})"
            );
        }
    }

    #[test]
    fn within() {
        let cases = [
            ("/srv/static/a", "/srv/static", true),
            ("/srv/static", "/srv/static", true),
            ("/srv/static/a", "/srv/static/", true),
            ("/srv/static-secret/a", "/srv/static", false),
            ("/srv/stati", "/srv/static", false),
            ("/etc/passwd", "/srv/static", false),
            ("/anything", "/", true),
        ];
        for (path, dir, expected) in cases {
            assert_eq!(
                is_within(path.as_bytes(), dir.as_bytes()),
                expected,
                "is_within({path:?}, {dir:?})"
            );
        }
    }

    proptest::proptest! {
        /// Folding is idempotent, never leaves `.`/`..`/empty segments, and refuses exactly
        /// the paths whose `..`s outnumber the names before them at some point.
        #[test]
        fn folding_never_climbs(segments in proptest::collection::vec(
            proptest::sample::select(vec!["a", "b.css", "..", ".", "", "%2e%2e", "..."]),
            0..12,
        )) {
            let path = format!("/{}", segments.join("/"));
            let mut depth: i32 = 0;
            let mut climbs = false;
            for segment in &segments {
                match *segment {
                    "" | "." => {}
                    ".." => {
                        depth -= 1;
                        climbs |= depth < 0;
                    }
                    _ => depth += 1,
                }
            }
            match normalize(path.as_bytes()) {
                Err(refusal) => {
                    proptest::prop_assert!(climbs);
                    proptest::prop_assert_eq!(refusal, Refusal::Escapes);
                }
                Ok(folded) => {
                    proptest::prop_assert!(!climbs);
                    proptest::prop_assert!(folded
                        .split(|&b| b == b'/')
                        .all(|s| folded.is_empty() || !matches!(s, b"" | b"." | b"..")));
                    proptest::prop_assert_eq!(normalize(&folded), Ok(folded.clone()));
                }
            }
        }
    }

    #[test]
    fn suffixes() {
        let skip = vec![".php".to_string(), ".inc".to_string()];
        assert!(has_suffix(b"/a/index.php", &skip));
        assert!(has_suffix(b"x.inc", &skip));
        assert!(!has_suffix(b"/a/index.html", &skip));
        assert!(!has_suffix(b"/a", &[String::new()]));
    }
}
