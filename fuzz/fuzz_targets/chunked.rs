//! `ChunkedDecoder` on arbitrary bytes: never panics, and feeding the input in two pieces
//! gives the same payload, the same end and the same verdict as feeding it at once.
#![no_main]

use kaiser::protocol::http::{ChunkedDecoder, Decoded};
use libfuzzer_sys::fuzz_target;

fn decode_whole(input: &[u8]) -> (Result<Decoded, String>, Vec<u8>) {
    let mut out = Vec::new();
    let result = ChunkedDecoder::new(64)
        .decode(input, &mut out)
        .map_err(|error| error.to_string());
    (result, out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let cut = usize::from(split) * input.len() / 255;
    let (whole, whole_out) = decode_whole(input);

    let mut decoder = ChunkedDecoder::new(64);
    let mut out = Vec::new();
    let pieces = decoder.decode(&input[..cut], &mut out).and_then(|first| {
        if first.done {
            return Ok(first);
        }
        let second = decoder.decode(&input[cut..], &mut out)?;
        Ok(Decoded {
            consumed: cut + second.consumed,
            done: second.done,
        })
    });
    let pieces = pieces.map_err(|error| error.to_string());
    assert_eq!(pieces, whole);
    if whole.is_ok() {
        assert_eq!(out, whole_out);
    }
});
