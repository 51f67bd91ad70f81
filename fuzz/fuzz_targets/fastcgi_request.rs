//! `fastcgi::parse_request`, `StdinDecoder` and `management` on arbitrary bytes: nothing
//! panics; a parsed head's length is within the input and no shorter prefix parses as a
//! request; the stdin decoder never uses more than it was given nor produces more than `max`,
//! and gives the same body however the input is sliced.
#![no_main]

use kaiser::protocol::fastcgi::{management, parse_request, StdinDecoder};
use libfuzzer_sys::fuzz_target;

fn decode(input: &[u8], step: usize, max: usize) -> Option<(Vec<u8>, usize)> {
    let mut decoder = StdinDecoder::new(1, None);
    let mut buffered = Vec::new();
    let mut fed = 0;
    let mut consumed = 0;
    let mut out = Vec::new();
    loop {
        let before = out.len();
        let decoded = decoder.decode(&buffered, &mut out, max).ok()?;
        assert!(decoded.consumed <= buffered.len());
        assert!(out.len() - before <= max);
        buffered.drain(..decoded.consumed);
        consumed += decoded.consumed;
        if decoded.done {
            return Some((out, consumed));
        }
        if decoded.consumed == 0 && out.len() == before {
            if fed == input.len() {
                return None;
            }
            let end = (fed + step).min(input.len());
            buffered.extend_from_slice(&input[fed..end]);
            fed = end;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = management(data, 4);
    if let Ok(Some(request)) = parse_request(data, 4096) {
        let len = request.packet.len;
        assert!(len <= data.len());
        for end in 0..len {
            assert!(
                !matches!(parse_request(&data[..end], 4096), Ok(Some(_))),
                "a prefix of {end} bytes parsed as a whole request"
            );
        }
    }
    let whole = decode(data, data.len().max(1), 1 << 20);
    let sliced = decode(data, 3, 5);
    if let (Some(whole), Some(sliced)) = (&whole, &sliced) {
        assert_eq!(whole, sliced, "the body depends on how the input was sliced");
    }
});
