//! `parse_packet` on arbitrary bytes: never panics, and a packet it accepts re-encodes to
//! exactly the bytes it was parsed from.
#![no_main]

use kaiser::protocol::uwsgi::{encode_packet, parse_packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(packet)) = parse_packet(data, 65535) else {
        return;
    };
    let encoded = encode_packet(
        packet.header.modifier1,
        packet.header.modifier2,
        &packet.vars,
    )
    .expect("a parsed packet is encodable");
    assert_eq!(encoded, &data[..packet.len]);
});
