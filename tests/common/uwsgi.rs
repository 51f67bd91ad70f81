//! A client for the uwsgi binary protocol, as nginx's `uwsgi_pass` speaks it (uWSGI docs,
//! "The uwsgi protocol"): a 4-byte header — modifier1 (u8), datasize (u16 little-endian),
//! modifier2 (u8) — then, for modifier1 0 (a WSGI request), `datasize` bytes of variables, each
//! a u16le key length, the key, a u16le value length and the value; then the request body.
//! The server answers with a raw HTTP response and closes the connection.

use super::http::{Connection, HttpConn, Response, IO_TIMEOUT};

/// The variable block of a packet: every `(key, value)` as u16le length + bytes.
pub fn uwsgi_vars(vars: &[(&str, &str)]) -> Vec<u8> {
    let mut encoded = Vec::new();
    for (key, value) in vars {
        for part in [key, value] {
            let length = u16::try_from(part.len())
                .unwrap_or_else(|_| panic!("uwsgi var of {} bytes does not fit u16", part.len()));
            encoded.extend_from_slice(&length.to_le_bytes());
            encoded.extend_from_slice(part.as_bytes());
        }
    }
    encoded
}

/// A whole packet header + vars. Panics if the vars exceed the 65535 bytes a u16 datasize
/// can say; a test that wants a lying header builds the bytes itself.
pub fn uwsgi_packet(modifier1: u8, modifier2: u8, vars: &[(&str, &str)]) -> Vec<u8> {
    let body = uwsgi_vars(vars);
    let size = u16::try_from(body.len())
        .unwrap_or_else(|_| panic!("uwsgi vars of {} bytes do not fit u16", body.len()));
    let mut packet = Vec::with_capacity(4 + body.len());
    packet.push(modifier1);
    packet.extend_from_slice(&size.to_le_bytes());
    packet.push(modifier2);
    packet.extend_from_slice(&body);
    packet
}

/// The CGI variables nginx sends with Debian's `uwsgi_params` for `method uri`, with a body of
/// `content_length` bytes (omitted when `None`); `extra` entries are appended (e.g.
/// `("HTTP_X_FOO", "1")`, or `("HTTPS", "on")`).
pub fn cgi_vars(
    method: &str,
    uri: &str,
    content_length: Option<usize>,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let mut vars: Vec<(String, String)> = [
        ("QUERY_STRING", query),
        ("REQUEST_METHOD", method),
        ("CONTENT_TYPE", ""),
        ("REQUEST_URI", uri),
        ("PATH_INFO", path),
        ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "40000"),
        ("SERVER_PORT", "80"),
        ("SERVER_NAME", "localhost"),
        ("HTTP_HOST", "localhost"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    let length = content_length.map(|n| n.to_string()).unwrap_or_default();
    vars.insert(3, ("CONTENT_LENGTH".to_owned(), length));
    vars.extend(
        extra
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned())),
    );
    vars
}

/// Sends one WSGI request (modifier1 0) with `vars` and `body` over `stream`, reads the HTTP
/// response and checks the server then closes the connection, as uwsgi servers do.
pub fn uwsgi_request<S: Connection>(
    stream: S,
    vars: &[(String, String)],
    body: &[u8],
) -> Result<Response, String> {
    let borrowed: Vec<(&str, &str)> = vars
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    let mut packet = uwsgi_packet(0, 0, &borrowed);
    packet.extend_from_slice(body);
    let head_request = borrowed
        .iter()
        .any(|&(key, value)| key == "REQUEST_METHOD" && value == "HEAD");
    let mut conn = HttpConn::new(stream);
    conn.send(&packet)?;
    let response = conn
        .read_response(head_request)
        .map_err(|error| format!("uwsgi request: {error}"))?;
    conn.expect_closed(IO_TIMEOUT)
        .map_err(|error| format!("after the uwsgi response\n{response}\n: {error}"))?;
    Ok(response)
}
