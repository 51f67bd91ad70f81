//! The CGI variables of a request received on `http-socket`, built as uWSGI's `proto/http.c`
//! builds them (reference §5.2). Variables that depend on the socket or the deployment
//! (`REMOTE_ADDR`, `SERVER_NAME`, `SERVER_PORT`, `SCRIPT_NAME`, `HTTPS`) are the caller's.

use std::borrow::Cow;

use super::RequestHead;

type Var<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// `REQUEST_METHOD`, `REQUEST_URI`, `PATH_INFO` (percent-decoded), `QUERY_STRING` (possibly
/// empty), `SERVER_PROTOCOL`, then one variable per distinct header name in order of first
/// appearance: `CONTENT_TYPE` and `CONTENT_LENGTH` unprefixed, every other header as
/// `HTTP_<NAME>` upper-cased with `-` turned into `_`, repeated headers joined with `", "`.
///
/// Headers whose names contain `_` are dropped. `X-Auth_User` and `X-Auth-User` would both
/// become `HTTP_X_AUTH_USER`, letting a client forge a header a proxy in front believes it
/// stripped; nginx (`underscores_in_headers off`) and gunicorn drop them for the same reason.
///
/// Values borrow the request buffer except where decoding or merging changes them; names of
/// common headers are static, others are built.
pub fn cgi_vars<'a>(head: &RequestHead<'a>) -> Vec<Var<'a>> {
    let mut vars: Vec<Var<'a>> = Vec::with_capacity(5 + head.headers.len());
    let mut push =
        |key: &'static [u8], value: Cow<'a, [u8]>| vars.push((Cow::Borrowed(key), value));
    push(b"REQUEST_METHOD", Cow::Borrowed(head.method));
    push(b"REQUEST_URI", Cow::Borrowed(head.target));
    push(b"PATH_INFO", percent_decode(head.path));
    push(b"QUERY_STRING", Cow::Borrowed(head.query));
    push(
        b"SERVER_PROTOCOL",
        Cow::Borrowed(head.version.as_str().as_bytes()),
    );

    for (index, header) in head.headers.iter().enumerate() {
        if header.name.contains(&b'_') {
            continue;
        }
        let same_name = |other: &&super::Header<'_>| other.name.eq_ignore_ascii_case(header.name);
        if head.headers[..index].iter().any(|other| same_name(&other)) {
            continue; // merged into the first occurrence
        }
        let key = cgi_name(header.name);
        let mut repeats = head.headers[index + 1..]
            .iter()
            .filter(same_name)
            .peekable();
        // Repeated Content-Length values are equal (the parser refused the rest), and "5, 5"
        // would not be a number.
        let value = if repeats.peek().is_none() || key.as_ref() == b"CONTENT_LENGTH" {
            Cow::Borrowed(header.value)
        } else {
            let mut merged = header.value.to_vec();
            for repeat in repeats {
                merged.extend_from_slice(b", ");
                merged.extend_from_slice(repeat.value);
            }
            Cow::Owned(merged)
        };
        vars.push((key, value));
    }
    vars
}

/// Headers common enough that building their variable name would be a wasted allocation.
static COMMON_HEADERS: &[(&str, &str)] = &[
    ("host", "HTTP_HOST"),
    ("user-agent", "HTTP_USER_AGENT"),
    ("accept", "HTTP_ACCEPT"),
    ("accept-encoding", "HTTP_ACCEPT_ENCODING"),
    ("accept-language", "HTTP_ACCEPT_LANGUAGE"),
    ("connection", "HTTP_CONNECTION"),
    ("content-length", "CONTENT_LENGTH"),
    ("content-type", "CONTENT_TYPE"),
    ("cookie", "HTTP_COOKIE"),
    ("referer", "HTTP_REFERER"),
    ("origin", "HTTP_ORIGIN"),
    ("authorization", "HTTP_AUTHORIZATION"),
    ("cache-control", "HTTP_CACHE_CONTROL"),
    ("pragma", "HTTP_PRAGMA"),
    ("if-none-match", "HTTP_IF_NONE_MATCH"),
    ("if-modified-since", "HTTP_IF_MODIFIED_SINCE"),
    (
        "upgrade-insecure-requests",
        "HTTP_UPGRADE_INSECURE_REQUESTS",
    ),
    ("x-forwarded-for", "HTTP_X_FORWARDED_FOR"),
    ("x-forwarded-proto", "HTTP_X_FORWARDED_PROTO"),
    ("x-forwarded-host", "HTTP_X_FORWARDED_HOST"),
    ("x-real-ip", "HTTP_X_REAL_IP"),
    ("x-requested-with", "HTTP_X_REQUESTED_WITH"),
    ("dnt", "HTTP_DNT"),
    ("sec-fetch-site", "HTTP_SEC_FETCH_SITE"),
    ("sec-fetch-mode", "HTTP_SEC_FETCH_MODE"),
    ("sec-fetch-dest", "HTTP_SEC_FETCH_DEST"),
    ("sec-fetch-user", "HTTP_SEC_FETCH_USER"),
    ("expect", "HTTP_EXPECT"),
    ("transfer-encoding", "HTTP_TRANSFER_ENCODING"),
];

/// The CGI variable name of a header (RFC 3875 §4.1.18).
fn cgi_name(name: &[u8]) -> Cow<'static, [u8]> {
    if let Some((_, key)) = COMMON_HEADERS.iter().find(|(common, _)| {
        common.len() == name.len() && common.as_bytes().eq_ignore_ascii_case(name)
    }) {
        return Cow::Borrowed(key.as_bytes());
    }
    let mut key = Vec::with_capacity(5 + name.len());
    key.extend_from_slice(b"HTTP_");
    key.extend(name.iter().map(|&b| {
        if b == b'-' {
            b'_'
        } else {
            b.to_ascii_uppercase()
        }
    }));
    Cow::Owned(key)
}

/// Decodes `%XX` escapes. A `%` not followed by two hex digits is kept as is (uWSGI would
/// decode garbage; Python's `urllib.parse.unquote` keeps it, which apps expect). `%2F`
/// becomes `/`, as in uWSGI and nginx.
pub(crate) fn percent_decode(path: &[u8]) -> Cow<'_, [u8]> {
    use crate::protocol::syntax::hex_value;
    let Some(first) = path.iter().position(|&b| b == b'%') else {
        return Cow::Borrowed(path);
    };
    let mut decoded = Vec::with_capacity(path.len());
    decoded.extend_from_slice(&path[..first]);
    let mut rest = &path[first..];
    while let Some((&byte, tail)) = rest.split_first() {
        if let (b'%', [high, low, after @ ..]) = (byte, tail) {
            if let (Some(high), Some(low)) = (hex_value(*high), hex_value(*low)) {
                decoded.push(high << 4 | low);
                rest = after;
                continue;
            }
        }
        decoded.push(byte);
        rest = tail;
    }
    Cow::Owned(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::http::parse_request_head;

    /// `expected` lists the variables as `KEY=value`.
    fn check(request: &str, expected: &[&str]) {
        let head = parse_request_head(request.as_bytes(), 8192)
            .expect("valid request")
            .expect("complete request");
        let got: Vec<String> = cgi_vars(&head)
            .iter()
            .map(|(key, value)| {
                format!(
                    "{}={}",
                    String::from_utf8_lossy(key),
                    String::from_utf8_lossy(value)
                )
            })
            .collect();
        assert_eq!(got, expected, "variables of {request:?}");
    }

    const BASE: [&str; 5] = [
        "REQUEST_METHOD=GET",
        "REQUEST_URI=/",
        "PATH_INFO=/",
        "QUERY_STRING=",
        "SERVER_PROTOCOL=HTTP/1.1",
    ];

    fn with(extra: &[&'static str]) -> Vec<&'static str> {
        BASE.iter().chain(extra).copied().collect()
    }

    #[test]
    fn variables() {
        check("GET / HTTP/1.1\r\n\r\n", &BASE);
        check(
            "POST /a%20b/c%2Fd?x=%20 HTTP/1.0\r\n\r\n",
            &[
                "REQUEST_METHOD=POST",
                "REQUEST_URI=/a%20b/c%2Fd?x=%20",
                "PATH_INFO=/a b/c/d",
                "QUERY_STRING=x=%20",
                "SERVER_PROTOCOL=HTTP/1.0",
            ],
        );
        check(
            "GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: ua\r\n\r\n",
            &with(&["HTTP_HOST=h", "HTTP_USER_AGENT=ua"]),
        );
        check("GET / HTTP/1.1\r\nhOsT: h\r\n\r\n", &with(&["HTTP_HOST=h"]));
        check(
            "GET / HTTP/1.1\r\nX-Custom-Thing: 1\r\nx-custom-thing: 2\r\n\r\n",
            &with(&["HTTP_X_CUSTOM_THING=1, 2"]),
        );
        check(
            "GET / HTTP/1.1\r\nAccept: a\r\nB: 1\r\naccept: b\r\nACCEPT: c\r\n\r\n",
            &with(&["HTTP_ACCEPT=a, b, c", "HTTP_B=1"]),
        );
        check(
            "GET / HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n",
            &with(&["CONTENT_TYPE=text/plain", "CONTENT_LENGTH=5"]),
        );
        check(
            "GET / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n",
            &with(&["CONTENT_LENGTH=5"]),
        );
        check(
            "GET / HTTP/1.1\r\nX_Forwarded_For: evil\r\nX-Forwarded-For: good\r\n\r\n",
            &with(&["HTTP_X_FORWARDED_FOR=good"]),
        );
        check("GET / HTTP/1.1\r\nContent_Length: 9\r\n\r\n", &BASE);
        check(
            "GET / HTTP/1.1\r\nX-Empty:\r\n\r\n",
            &with(&["HTTP_X_EMPTY="]),
        );
        check(
            "GET / HTTP/1.1\r\nA.b~c: 1\r\n\r\n",
            &with(&["HTTP_A.B~C=1"]),
        );
    }

    #[test]
    fn borrowing() {
        let head = parse_request_head(b"GET /a?b HTTP/1.1\r\nHost: h\r\nX-Y: z\r\n\r\n", 8192)
            .unwrap()
            .unwrap();
        let vars = cgi_vars(&head);
        for (key, value) in &vars {
            assert!(
                matches!(value, Cow::Borrowed(_)),
                "value of {key:?} was copied"
            );
        }
        assert!(
            matches!(vars[5].0, Cow::Borrowed(_)),
            "HTTP_HOST is a static name"
        );
        assert!(matches!(vars[6].0, Cow::Owned(_)), "HTTP_X_Y is built");
    }

    #[test]
    fn percent_decoding() {
        for (input, expected) in [
            (&b""[..], &b""[..]),
            (b"/plain", b"/plain"),
            (b"/%41%62", b"/Ab"),
            (b"/%e2%82%AC", "/€".as_bytes()),
            (b"/%00", b"/\0"),
            (b"/100%", b"/100%"),
            (b"/%4", b"/%4"),
            (b"/%zz%41", b"/%zzA"),
            (b"/%%41", b"/%A"),
            (b"%2f%2F", b"//"),
        ] {
            assert_eq!(
                percent_decode(input).as_ref(),
                expected,
                "decoding {:?}",
                String::from_utf8_lossy(input)
            );
        }
        assert!(matches!(percent_decode(b"/a"), Cow::Borrowed(_)));
    }
}
