//! `Content-Type` for static files: the extension looked up in `mime.types` files (uWSGI's
//! `mimefile`, default `/etc/mime.types`), then in a built-in table, so a container without
//! that file still labels CSS and JavaScript correctly.
//!
//! Text types get `; charset=utf-8` (uWSGI sends the bare type; browsers then guess).

use std::collections::HashMap;

/// What the built-in table knows: the types a web app's static directory holds.
const BUILTIN: &[(&str, &str)] = &[
    ("html", "text/html"),
    ("htm", "text/html"),
    ("css", "text/css"),
    ("js", "text/javascript"),
    ("mjs", "text/javascript"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("webmanifest", "application/manifest+json"),
    ("xml", "application/xml"),
    ("txt", "text/plain"),
    ("csv", "text/csv"),
    ("md", "text/markdown"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("ico", "image/vnd.microsoft.icon"),
    ("bmp", "image/bmp"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
    ("eot", "application/vnd.ms-fontobject"),
    ("pdf", "application/pdf"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("tar", "application/x-tar"),
    ("wasm", "application/wasm"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
    ("mp3", "audio/mpeg"),
    ("ogg", "audio/ogg"),
    ("wav", "audio/wav"),
];

/// Extension (lower case) to type.
#[derive(Debug, Clone, Default)]
pub struct MimeTypes {
    by_extension: HashMap<String, String>,
}

impl MimeTypes {
    /// The built-in table alone.
    pub fn builtin() -> Self {
        let mut types = MimeTypes::default();
        for (extension, mime) in BUILTIN {
            types
                .by_extension
                .insert((*extension).to_string(), (*mime).to_string());
        }
        types
    }

    /// Adds the entries of a `mime.types` file (`type ext ext …` lines, `#` comments).
    /// Entries added earlier win, as in uWSGI, where the first match is used; so files are
    /// added in the order given and the built-in table last.
    pub fn add_file_text(&mut self, text: &str) {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_ascii_whitespace();
            let Some(mime) = words.next() else { continue };
            if !mime.contains('/') {
                continue;
            }
            for extension in words {
                self.by_extension
                    .entry(extension.to_ascii_lowercase())
                    .or_insert_with(|| mime.to_string());
            }
        }
    }

    /// Adds the built-in entries that nothing added before defines.
    pub fn add_builtin(&mut self) {
        for (extension, mime) in BUILTIN {
            self.by_extension
                .entry((*extension).to_string())
                .or_insert_with(|| (*mime).to_string());
        }
    }

    /// The type for a file name, by its extension: the alphanumeric run after the last `.`
    /// (uWSGI's rule), compared without case.
    pub fn lookup(&self, name: &[u8]) -> Option<&str> {
        let extension = extension(name)?;
        let extension = std::str::from_utf8(extension).ok()?.to_ascii_lowercase();
        self.by_extension.get(&extension).map(String::as_str)
    }
}

fn extension(name: &[u8]) -> Option<&[u8]> {
    let start = name.iter().rposition(|b| !b.is_ascii_alphanumeric())?;
    (name[start] == b'.' && start + 1 < name.len()).then(|| &name[start + 1..])
}

/// The `Content-Type` value for a type: text types with `; charset=utf-8`.
pub fn content_type(mime: &str) -> String {
    let textual = mime.starts_with("text/")
        || matches!(
            mime,
            "application/javascript" | "application/json" | "application/xml"
        )
        || mime.ends_with("+xml")
        || mime.ends_with("+json");
    if textual && !mime.contains(';') {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(types: &MimeTypes, name: &str, expected: Option<&str>) {
        assert_eq!(types.lookup(name.as_bytes()), expected, "lookup({name:?})");
    }

    #[test]
    fn builtin_table() {
        let types = MimeTypes::builtin();
        check(&types, "/srv/static/app.css", Some("text/css"));
        check(&types, "app.JS", Some("text/javascript"));
        check(&types, "a.b/logo.png", Some("image/png"));
        check(&types, "font.woff2", Some("font/woff2"));
        check(&types, "README", None);
        check(&types, "archive.", None);
        check(&types, "dir.d/README", None);
        check(&types, "x.unknownext", None);
        check(&types, "x.tar-gz", None);
    }

    #[test]
    fn files_come_first_and_first_entry_wins() {
        let mut types = MimeTypes::default();
        types.add_file_text(
            "# comment\n\
             text/x-first\tfoo\n\
             text/x-second foo bar # trailing comment\n\
             application/x-custom css\n\
             \n\
             notatype baz\n",
        );
        types.add_builtin();
        check(&types, "a.foo", Some("text/x-first"));
        check(&types, "a.bar", Some("text/x-second"));
        check(&types, "a.css", Some("application/x-custom"));
        check(&types, "a.baz", None);
        check(&types, "a.png", Some("image/png"));
    }

    #[test]
    fn charsets() {
        for (mime, expected) in [
            ("text/css", "text/css; charset=utf-8"),
            ("text/html", "text/html; charset=utf-8"),
            ("application/json", "application/json; charset=utf-8"),
            ("image/svg+xml", "image/svg+xml; charset=utf-8"),
            ("text/plain; charset=latin1", "text/plain; charset=latin1"),
            ("image/png", "image/png"),
            ("application/octet-stream", "application/octet-stream"),
        ] {
            assert_eq!(content_type(mime), expected, "content_type({mime:?})");
        }
    }
}
