//! The app's response head as the worker checks and writes it (`check_head`, `choose_framing`,
//! `write_head`), on arbitrary status and header bytes: never panics, refuses any head that
//! would put a line break on the wire, and what it writes has exactly one `Content-Length`
//! when the framing has a length (none when the body is chunked or ends at close).
#![no_main]

use kaiser::protocol::http::Version;
use kaiser::protocol::response::{check_head, choose_framing, write_head, ResponseFraming};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First line: the status; then one header per line, its name before the first `:`.
    let mut lines = data.split(|&b| b == b'\n');
    let status = lines.next().unwrap_or_default();
    let headers: Vec<(&[u8], &[u8])> = lines
        .map(|line| match line.iter().position(|&b| b == b':') {
            Some(colon) => (&line[..colon], &line[colon + 1..]),
            None => (line, &b""[..]),
        })
        .collect();
    let Ok(checked) = check_head(status, headers.iter().copied()) else {
        return;
    };
    let is_head = data.len() % 2 == 0;
    let (framing, keep_alive) = choose_framing(
        Version::Http11,
        is_head,
        checked.status,
        checked.content_length,
        true,
        data.len() % 3 != 0,
    );
    let mut out = Vec::new();
    write_head(&mut out, Version::Http11, status, headers.iter().copied(), &framing, keep_alive);
    assert!(out.ends_with(b"\r\n\r\n"));
    let text = &out[..out.len() - 2];
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    for line in &lines[..lines.len() - 1] {
        assert!(line.ends_with(b"\r"), "a bare LF went out: {out:?}");
        assert!(!line[..line.len() - 1].contains(&b'\r'), "a bare CR went out");
    }
    let lengths: Vec<&[u8]> = lines
        .iter()
        .filter(|line| line.len() > 15 && line[..15].eq_ignore_ascii_case(b"content-length:"))
        .copied()
        .collect();
    match framing {
        ResponseFraming::Length(n) => assert_eq!(lengths, [format!("Content-Length: {n}\r").as_bytes()]),
        ResponseFraming::NoBody => assert!(lengths.len() == usize::from(checked.content_length.is_some())),
        ResponseFraming::Chunked | ResponseFraming::Close => assert!(lengths.is_empty()),
    }
});
