//! `parse_request_head` on arbitrary bytes: never panics, a prefix gives either "incomplete"
//! or the same answer as the whole (so reads may split a request anywhere), and an accepted
//! head yields CGI variables.
#![no_main]

use kaiser::protocol::http::{cgi_vars, parse_request_head};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let max = 512;
    let whole = parse_request_head(input, max);
    let cut = usize::from(split) * input.len() / 255;
    let part = parse_request_head(&input[..cut], max);
    assert!(
        part == Ok(None) || part == whole,
        "prefix of {cut} bytes: {part:?}, whole: {whole:?}"
    );
    if let Ok(Some(head)) = whole {
        assert!(head.len <= input.len() && head.len <= max);
        let _ = cgi_vars(&head);
    }
});
