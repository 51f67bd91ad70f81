//! `proxy::parse` on arbitrary bytes: never panics, a header's length fits the input, and a
//! prefix of the input gives "need more" or the same answer (reads may split a header).
#![no_main]

use kaiser::protocol::proxy::{parse, Proxied};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let whole = parse(input);
    if let Ok(Proxied::Header { len, .. }) = whole {
        assert!(len <= input.len());
    }
    let cut = usize::from(split) * input.len() / 255;
    let part = parse(&input[..cut]);
    if let Ok(Proxied::Header { .. }) = part {
        assert_eq!(part, whole, "a complete header in a prefix is the whole's");
    }
});
