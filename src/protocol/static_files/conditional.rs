//! What to answer for a static file: 200, 304 (`If-None-Match`, `If-Modified-Since`), 206 or
//! 416 (`Range`, `If-Range`), and the headers that go with it (RFC 9110 §13 and §14).
//!
//! Validators are cheap: `Last-Modified` is the file's mtime and the `ETag` is built from
//! mtime and size, as nginx builds it, so no file is ever read to answer a conditional.

use super::date;

/// The `stat` facts a decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileFacts {
    pub size: u64,
    /// Modification time, Unix seconds.
    pub mtime: i64,
}

/// The request headers that make a GET conditional or partial.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions<'a> {
    pub if_modified_since: Option<&'a [u8]>,
    pub if_none_match: Option<&'a [u8]>,
    pub range: Option<&'a [u8]>,
    pub if_range: Option<&'a [u8]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Full,
    NotModified,
    /// Bytes `start..=end` of the file.
    Partial {
        start: u64,
        end: u64,
    },
    Unsatisfiable,
}

/// Whether an `Accept-Encoding` value accepts `coding` (`gzip`, `br`): named, or `*`, with a
/// non-zero `q`.
pub fn accepts_encoding(header: &[u8], coding: &str) -> bool {
    let header = String::from_utf8_lossy(header);
    header.split(',').any(|item| {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        if !(name.eq_ignore_ascii_case(coding) || name == "*") {
            return false;
        }
        !parts.any(|param| {
            let param = param.trim();
            param
                .strip_prefix("q=")
                .or_else(|| param.strip_prefix("Q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        })
    })
}

/// The strong entity tag of a file: `"<mtime hex>-<size hex>"`.
pub fn etag(facts: FileFacts) -> String {
    format!("\"{:x}-{:x}\"", facts.mtime.max(0), facts.size)
}

/// Decides the answer for a GET or HEAD of a file with these facts.
pub fn decide(facts: FileFacts, conditions: &Conditions<'_>) -> Answer {
    let tag = etag(facts);
    // RFC 9110 §13.2.2: If-None-Match, when present, decides and If-Modified-Since is
    // ignored.
    if let Some(list) = conditions.if_none_match {
        if matches_any(list, &tag, false) {
            return Answer::NotModified;
        }
    } else if let Some(since) = conditions.if_modified_since.and_then(date::parse) {
        if facts.mtime <= since {
            return Answer::NotModified;
        }
    }
    let Some(range) = conditions.range else {
        return Answer::Full;
    };
    if let Some(validator) = conditions.if_range {
        if !if_range_holds(validator, &tag, facts.mtime) {
            return Answer::Full;
        }
    }
    byte_range(range, facts.size)
}

/// `If-None-Match`: `*` or a list of entity tags, compared weakly (`W/"x"` matches `"x"`).
/// `If-Range` compares strongly: a weak tag never matches.
fn matches_any(list: &[u8], tag: &str, strong: bool) -> bool {
    let list = String::from_utf8_lossy(list);
    list.split(',').map(str::trim).any(|candidate| {
        if candidate == "*" {
            return !strong;
        }
        match candidate.strip_prefix("W/") {
            Some(weak) => !strong && weak == tag,
            None => candidate == tag,
        }
    })
}

/// `If-Range`: an entity tag (strong comparison) or a date equal to `Last-Modified`.
fn if_range_holds(validator: &[u8], tag: &str, mtime: i64) -> bool {
    let trimmed = validator.trim_ascii();
    if trimmed.starts_with(b"\"") || trimmed.starts_with(b"W/") {
        matches_any(trimmed, tag, true)
    } else {
        date::parse(trimmed) == Some(mtime)
    }
}

/// One `bytes=` range. A header kaiser does not understand (another unit, bad syntax,
/// several ranges) is ignored and the whole file is sent, which RFC 9110 §14.2 allows.
fn byte_range(header: &[u8], size: u64) -> Answer {
    let Ok(text) = std::str::from_utf8(header) else {
        return Answer::Full;
    };
    let text = text.trim();
    let Some(spec) = text
        .get(..6)
        .filter(|unit| unit.eq_ignore_ascii_case("bytes="))
        .map(|_| text[6..].trim())
    else {
        return Answer::Full;
    };
    if spec.contains(',') {
        return Answer::Full;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Answer::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if first.is_empty() {
        // A suffix: the last N bytes.
        if !digits(last) {
            return Answer::Full;
        }
        let suffix: u64 = last.parse().unwrap_or(u64::MAX);
        if suffix == 0 || size == 0 {
            return Answer::Unsatisfiable;
        }
        return Answer::Partial {
            start: size - suffix.min(size),
            end: size - 1,
        };
    }
    if !digits(first) || !(last.is_empty() || digits(last)) {
        return Answer::Full;
    }
    let Ok(start) = first.parse::<u64>() else {
        return Answer::Unsatisfiable;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        last.parse::<u64>().unwrap_or(u64::MAX)
    };
    if end < start {
        return Answer::Full;
    }
    if start >= size {
        return Answer::Unsatisfiable;
    }
    Answer::Partial {
        start,
        end: end.min(size - 1),
    }
}

/// Everything but the framing of a static answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub status: &'static [u8],
    pub headers: Vec<(&'static [u8], String)>,
    /// The byte range of the file to send: (offset, length). The length is the
    /// `Content-Length`; `None` for a 304.
    pub body: Option<(u64, u64)>,
}

/// The extras of a static answer beside the validators.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras<'a> {
    /// The complete `Content-Type` value.
    pub content_type: Option<&'a str>,
    /// `Content-Encoding` of a precompressed variant (`gzip`, `br`).
    pub encoding: Option<&'a str>,
    /// `Expires`, in Unix seconds.
    pub expires: Option<i64>,
    /// Whether the file has precompressed variants, so caches must key on
    /// `Accept-Encoding`.
    pub vary: bool,
}

/// Builds the status, headers and body range of an answer.
pub fn plan(answer: Answer, facts: FileFacts, extras: &Extras<'_>) -> Plan {
    let mut headers: Vec<(&'static [u8], String)> = Vec::with_capacity(8);
    let validators = |headers: &mut Vec<(&'static [u8], String)>| {
        headers.push((b"Last-Modified", date::format(facts.mtime)));
        headers.push((b"ETag", etag(facts)));
        if let Some(expires) = extras.expires {
            headers.push((b"Expires", date::format(expires)));
        }
        if extras.vary {
            headers.push((b"Vary", "Accept-Encoding".to_string()));
        }
    };
    let entity = |headers: &mut Vec<(&'static [u8], String)>| {
        if let Some(content_type) = extras.content_type {
            headers.push((b"Content-Type", content_type.to_string()));
        }
        if let Some(encoding) = extras.encoding {
            headers.push((b"Content-Encoding", encoding.to_string()));
        }
    };
    match answer {
        Answer::NotModified => {
            validators(&mut headers);
            Plan {
                status: b"304 Not Modified",
                headers,
                body: None,
            }
        }
        Answer::Unsatisfiable => {
            headers.push((b"Content-Range", format!("bytes */{}", facts.size)));
            headers.push((b"Content-Length", "0".to_string()));
            Plan {
                status: b"416 Range Not Satisfiable",
                headers,
                body: Some((0, 0)),
            }
        }
        Answer::Full => {
            entity(&mut headers);
            headers.push((b"Content-Length", facts.size.to_string()));
            headers.push((b"Accept-Ranges", "bytes".to_string()));
            validators(&mut headers);
            Plan {
                status: b"200 OK",
                headers,
                body: Some((0, facts.size)),
            }
        }
        Answer::Partial { start, end } => {
            let length = end - start + 1;
            entity(&mut headers);
            headers.push((b"Content-Length", length.to_string()));
            headers.push((
                b"Content-Range",
                format!("bytes {start}-{end}/{}", facts.size),
            ));
            validators(&mut headers);
            Plan {
                status: b"206 Partial Content",
                headers,
                body: Some((start, length)),
            }
        }
    }
}

/// `file-serve-mode`: the front end (nginx's `X-Accel-Redirect`, Apache's `X-Sendfile`)
/// sends the file; the answer is a head naming it, as uWSGI's is. A conditional GET is still
/// answered 304 here; a range is the front end's to serve.
pub fn plan_handoff(
    answer: Answer,
    facts: FileFacts,
    extras: &Extras<'_>,
    header: &'static [u8],
    path: &str,
) -> Plan {
    if answer == Answer::NotModified {
        return plan(answer, facts, extras);
    }
    let mut headers: Vec<(&'static [u8], String)> = Vec::with_capacity(5);
    if let Some(content_type) = extras.content_type {
        headers.push((b"Content-Type", content_type.to_string()));
    }
    if let Some(encoding) = extras.encoding {
        headers.push((b"Content-Encoding", encoding.to_string()));
    }
    headers.push((header, path.to_string()));
    headers.push((b"Last-Modified", date::format(facts.mtime)));
    if let Some(expires) = extras.expires {
        headers.push((b"Expires", date::format(expires)));
    }
    headers.push((b"Content-Length", "0".to_string()));
    Plan {
        status: b"200 OK",
        headers,
        body: Some((0, 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FACTS: FileFacts = FileFacts {
        size: 1000,
        // Sun, 06 Nov 1994 08:49:37 GMT
        mtime: 784_111_777,
    };
    const TAG: &str = "\"2ebc98a1-3e8\"";
    const LAST_MODIFIED: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

    fn check(conditions: Conditions<'_>, expected: Answer) {
        assert_eq!(decide(FACTS, &conditions), expected, "{conditions:?}");
    }

    fn range(value: &str) -> Conditions<'_> {
        Conditions {
            range: Some(value.as_bytes()),
            ..Conditions::default()
        }
    }

    #[test]
    fn encodings() {
        for (header, coding, expected) in [
            ("gzip, deflate, br", "gzip", true),
            ("gzip, deflate, br", "br", true),
            ("deflate", "gzip", false),
            ("GZIP", "gzip", true),
            ("gzip;q=0", "gzip", false),
            ("gzip; q=0.000", "gzip", false),
            ("gzip;q=0.5", "gzip", true),
            ("*", "gzip", true),
            ("x-gzip", "gzip", false),
            ("", "gzip", false),
        ] {
            assert_eq!(
                accepts_encoding(header.as_bytes(), coding),
                expected,
                "accepts_encoding({header:?}, {coding:?})"
            );
        }
    }

    #[test]
    fn etags() {
        assert_eq!(etag(FACTS), TAG);
    }

    #[test]
    fn conditional_gets() {
        let none = Conditions::default();
        check(none, Answer::Full);
        let ims = |v: &'static str| Conditions {
            if_modified_since: Some(v.as_bytes()),
            ..none
        };
        check(ims(LAST_MODIFIED), Answer::NotModified);
        check(ims("Sun, 06 Nov 1994 08:49:38 GMT"), Answer::NotModified);
        check(ims("Sun, 06 Nov 1994 08:49:36 GMT"), Answer::Full);
        check(ims("garbage"), Answer::Full);
        let inm = |v: &'static str| Conditions {
            if_none_match: Some(v.as_bytes()),
            ..none
        };
        check(inm(TAG), Answer::NotModified);
        check(inm("W/\"2ebc98a1-3e8\""), Answer::NotModified);
        check(inm("\"other\", \"2ebc98a1-3e8\""), Answer::NotModified);
        check(inm("*"), Answer::NotModified);
        check(inm("\"other\""), Answer::Full);
        // If-None-Match decides: a matching date does not make a 304 when the tag differs.
        check(
            Conditions {
                if_none_match: Some(b"\"other\""),
                if_modified_since: Some(LAST_MODIFIED.as_bytes()),
                ..none
            },
            Answer::Full,
        );
        // A 304 wins over a range.
        check(
            Conditions {
                if_none_match: Some(TAG.as_bytes()),
                range: Some(b"bytes=0-1"),
                ..none
            },
            Answer::NotModified,
        );
    }

    #[test]
    fn ranges() {
        let partial = |start, end| Answer::Partial { start, end };
        check(range("bytes=0-99"), partial(0, 99));
        check(range("bytes=100-"), partial(100, 999));
        check(range("bytes=-100"), partial(900, 999));
        check(range("bytes=-5000"), partial(0, 999));
        check(range("bytes=990-5000"), partial(990, 999));
        check(range("bytes=999-999"), partial(999, 999));
        check(range("BYTES= 5 - 9 "), partial(5, 9));
        check(range("bytes=1000-"), Answer::Unsatisfiable);
        check(range("bytes=5000-6000"), Answer::Unsatisfiable);
        check(range("bytes=-0"), Answer::Unsatisfiable);
        check(
            range("bytes=99999999999999999999999-"),
            Answer::Unsatisfiable,
        );
        check(range("bytes=9-5"), Answer::Full);
        check(range("bytes=0-1,5-6"), Answer::Full);
        check(range("items=0-1"), Answer::Full);
        check(range("bytes=a-b"), Answer::Full);
        check(range("bytes=-"), Answer::Full);
        check(range("bytes="), Answer::Full);
        check(range("bytes"), Answer::Full);
    }

    #[test]
    fn if_range() {
        let with = |validator: &'static str| Conditions {
            range: Some(b"bytes=0-9"),
            if_range: Some(validator.as_bytes()),
            ..Conditions::default()
        };
        let partial = Answer::Partial { start: 0, end: 9 };
        check(with(TAG), partial);
        check(with(LAST_MODIFIED), partial);
        check(with("\"stale\""), Answer::Full);
        check(with("W/\"2ebc98a1-3e8\""), Answer::Full);
        check(with("Sun, 06 Nov 1994 08:49:36 GMT"), Answer::Full);
    }

    #[test]
    fn empty_files() {
        let empty = FileFacts { size: 0, mtime: 0 };
        assert_eq!(decide(empty, &range("bytes=0-")), Answer::Unsatisfiable);
        assert_eq!(decide(empty, &range("bytes=-1")), Answer::Unsatisfiable);
        assert_eq!(decide(empty, &Conditions::default()), Answer::Full);
    }

    fn render(plan: &Plan) -> String {
        let mut text = String::from_utf8_lossy(plan.status).into_owned();
        for (name, value) in &plan.headers {
            text.push_str(&format!("|{}: {value}", String::from_utf8_lossy(name)));
        }
        text.push_str(&format!("|body {:?}", plan.body));
        text
    }

    #[test]
    fn handoffs() {
        let extras = Extras {
            content_type: Some("image/png"),
            ..Extras::default()
        };
        let handoff = |answer| {
            render(&plan_handoff(
                answer,
                FACTS,
                &extras,
                b"X-Accel-Redirect",
                "/srv/a.png",
            ))
        };
        assert_eq!(
            handoff(Answer::Full),
            "200 OK|Content-Type: image/png|X-Accel-Redirect: /srv/a.png|Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT|Content-Length: 0|body Some((0, 0))"
        );
        assert_eq!(
            handoff(Answer::Partial { start: 0, end: 1 }),
            handoff(Answer::Full)
        );
        assert!(handoff(Answer::NotModified).starts_with("304 Not Modified|"));
    }

    #[test]
    fn plans() {
        let extras = Extras {
            content_type: Some("text/css; charset=utf-8"),
            encoding: None,
            expires: Some(784_111_777 + 3600),
            vary: false,
        };
        let cases = [
            (
                Answer::Full,
                "200 OK|Content-Type: text/css; charset=utf-8|Content-Length: 1000|Accept-Ranges: bytes|Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT|ETag: \"2ebc98a1-3e8\"|Expires: Sun, 06 Nov 1994 09:49:37 GMT|body Some((0, 1000))",
            ),
            (
                Answer::Partial { start: 10, end: 19 },
                "206 Partial Content|Content-Type: text/css; charset=utf-8|Content-Length: 10|Content-Range: bytes 10-19/1000|Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT|ETag: \"2ebc98a1-3e8\"|Expires: Sun, 06 Nov 1994 09:49:37 GMT|body Some((10, 10))",
            ),
            (
                Answer::NotModified,
                "304 Not Modified|Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT|ETag: \"2ebc98a1-3e8\"|Expires: Sun, 06 Nov 1994 09:49:37 GMT|body None",
            ),
            (
                Answer::Unsatisfiable,
                "416 Range Not Satisfiable|Content-Range: bytes */1000|Content-Length: 0|body Some((0, 0))",
            ),
        ];
        for (answer, expected) in cases {
            assert_eq!(
                render(&plan(answer, FACTS, &extras)),
                expected,
                "{answer:?}"
            );
        }
        let gzip = Extras {
            content_type: None,
            encoding: Some("gzip"),
            expires: None,
            vary: true,
        };
        assert_eq!(
            render(&plan(Answer::Full, FACTS, &gzip)),
            "200 OK|Content-Encoding: gzip|Content-Length: 1000|Accept-Ranges: bytes|Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT|ETag: \"2ebc98a1-3e8\"|Vary: Accept-Encoding|body Some((0, 1000))"
        );
    }
}
