//! `scgi::parse_request` on arbitrary bytes: never panics; a parsed request's length is
//! within the input, and every prefix shorter than it is incomplete or the same error,
//! never a different request.
#![no_main]

use kaiser::protocol::scgi::parse_request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_request(data, 4096) {
        Ok(Some(packet)) => {
            assert!(packet.len <= data.len());
            let len = packet.len;
            for end in 0..len {
                assert!(
                    !matches!(parse_request(&data[..end], 4096), Ok(Some(_))),
                    "a prefix of {end} bytes parsed as a whole request"
                );
            }
        }
        Ok(None) | Err(_) => {}
    }
});
