//! The FastCGI codec against hand-built records: whole requests, every truncation, bad
//! records, the stdin stream in many records and the response records.

use super::*;

/// One record: header, content and `padding` zero bytes.
fn record(kind: u8, id: u16, content: &[u8], padding: u8) -> Vec<u8> {
    let mut out = vec![1, kind];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(content.len() as u16).to_be_bytes());
    out.extend_from_slice(&[padding, 0]);
    out.extend_from_slice(content);
    out.extend(std::iter::repeat_n(0u8, usize::from(padding)));
    out
}

fn begin(id: u16, role: u16, flags: u8) -> Vec<u8> {
    let mut content = role.to_be_bytes().to_vec();
    content.push(flags);
    content.extend_from_slice(&[0; 5]);
    record(1, id, &content, 0)
}

fn pairs(vars: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in vars {
        write_pair(&mut out, name, value);
    }
    out
}

const GET: &[(&[u8], &[u8])] = &[
    (b"REQUEST_METHOD", b"GET"),
    (b"PATH_INFO", b"/env"),
    (b"CONTENT_LENGTH", b""),
];

/// A whole GET head with keep-conn, its params split over two records (padded), and the
/// empty stdin record after it.
fn get_request(id: u16) -> (Vec<u8>, usize) {
    let mut bytes = begin(id, 1, 1);
    bytes.extend(record(4, id, &pairs(&GET[..1]), 3));
    bytes.extend(record(4, id, &pairs(&GET[1..]), 0));
    bytes.extend(record(4, id, b"", 5));
    let head_len = bytes.len();
    bytes.extend(record(5, id, b"", 0));
    (bytes, head_len)
}

#[test]
fn parses_a_head() {
    let (bytes, head_len) = get_request(7);
    let request = parse_request(&bytes, 4096).unwrap().unwrap();
    assert_eq!(
        request.begin,
        Begin {
            id: 7,
            keep_conn: true
        }
    );
    assert_eq!(request.packet.len, head_len);
    assert_eq!(
        request.packet.get(b"REQUEST_METHOD"),
        Some(b"GET".as_slice())
    );
    assert_eq!(request.packet.get(b"PATH_INFO"), Some(b"/env".as_slice()));
    assert_eq!(request.packet.vars.len(), 3);
    assert_eq!(request.packet.content_length, 0);
}

#[test]
fn long_names_and_values_take_four_byte_lengths() {
    let value = vec![b'v'; 300];
    let name = vec![b'N'; 200];
    let mut bytes = begin(1, 1, 0);
    bytes.extend(record(4, 1, &pairs(&[(&name, &value), (b"A", b"")]), 0));
    bytes.extend(record(4, 1, b"", 0));
    let request = parse_request(&bytes, 4096).unwrap().unwrap();
    assert!(!request.begin.keep_conn);
    assert_eq!(request.packet.get(&name), Some(value.as_slice()));
    assert_eq!(request.packet.get(b"A"), Some(b"".as_slice()));
}

#[test]
fn the_head_ends_where_stdin_begins_as_uwsgi_reads_it() {
    let mut bytes = begin(1, 1, 0);
    bytes.extend(record(4, 1, &pairs(GET), 0));
    let head_len = bytes.len();
    bytes.extend(record(5, 1, b"", 0));
    let request = parse_request(&bytes, 4096).unwrap().unwrap();
    assert_eq!(request.packet.len, head_len);
}

#[test]
fn waits_for_the_whole_head() {
    let (bytes, head_len) = get_request(3);
    for end in 0..head_len {
        assert_eq!(parse_request(&bytes[..end], 4096), Ok(None), "{end} bytes");
    }
}

/// Every prefix of a request with a bad record in it is incomplete or that same error, never
/// a request, and nothing panics.
#[test]
fn truncations_of_bad_heads_never_parse() {
    let check = |bytes: &[u8], expected: ParseFastCgiError| {
        assert_eq!(parse_request(bytes, 4096), Err(expected.clone()));
        for end in 0..bytes.len() {
            match parse_request(&bytes[..end], 4096) {
                Ok(None) => {}
                Err(err) => assert_eq!(err, expected, "{end} bytes"),
                Ok(Some(request)) => panic!("{end} bytes parsed as {request:?}"),
            }
        }
    };
    check(
        b"GET / HTTP/1.1\r\n\r\n",
        ParseFastCgiError::Version { version: b'G' },
    );
    check(
        &record(4, 1, b"", 0),
        ParseFastCgiError::NoBegin { kind: 4 },
    );
    check(
        &record(1, 1, b"1234", 0),
        ParseFastCgiError::BeginLength { len: 4 },
    );
    check(&begin(0, 1, 0), ParseFastCgiError::ZeroId);
    check(&begin(1, 2, 0), ParseFastCgiError::Role { role: 2 });
    let mut past = begin(1, 1, 0);
    // A name of 10 bytes where the record holds 3.
    past.extend(record(4, 1, &[10, 0, b'a', b'b', b'c'], 0));
    check(&past, ParseFastCgiError::PairPastRecord);
    let mut short_length = begin(1, 1, 0);
    short_length.extend(record(4, 1, &[0x80, 0], 0));
    check(&short_length, ParseFastCgiError::PairPastRecord);
    let mut other = begin(1, 1, 0);
    other.extend(record(4, 2, &pairs(GET), 0));
    check(&other, ParseFastCgiError::Multiplexed { id: 1, other: 2 });
    let mut aborted = begin(1, 1, 0);
    aborted.extend(record(2, 1, b"", 0));
    check(&aborted, ParseFastCgiError::Aborted { id: 1 });
    let mut bad_length = begin(1, 1, 0);
    bad_length.extend(record(4, 1, &pairs(&[(b"CONTENT_LENGTH", b"x")]), 0));
    bad_length.extend(record(4, 1, b"", 0));
    assert!(matches!(
        parse_request(&bad_length, 4096),
        Err(ParseFastCgiError::ContentLength(_))
    ));
}

#[test]
fn params_are_bounded_by_buffer_size() {
    let mut bytes = begin(1, 1, 0);
    // The header alone says too much: refused before the content is buffered.
    bytes.extend(record(4, 1, &vec![0u8; 5000], 0)[..HEADER_LEN].to_vec());
    assert_eq!(
        parse_request(&bytes, 4096),
        Err(ParseFastCgiError::TooLarge { max: 4096 })
    );
    // Many small records of a skipped type cannot make the head grow without bound either.
    let mut skipped = begin(1, 1, 0);
    for _ in 0..100 {
        skipped.extend(record(8, 1, &[0; 100], 0));
    }
    assert_eq!(
        parse_request(&skipped, 4096),
        Err(ParseFastCgiError::TooLarge { max: 4096 })
    );
    let too_many: Vec<(Vec<u8>, Vec<u8>)> = (0..=uwsgi_max())
        .map(|i| (format!("V{i}").into_bytes(), Vec::new()))
        .collect();
    let borrowed: Vec<(&[u8], &[u8])> = too_many
        .iter()
        .map(|(n, v)| (n.as_slice(), v.as_slice()))
        .collect();
    let mut many = begin(1, 1, 0);
    many.extend(record(4, 1, &pairs(&borrowed), 0));
    assert_eq!(
        parse_request(&many, 4096),
        Err(ParseFastCgiError::TooManyVars { max: uwsgi_max() })
    );
}

fn uwsgi_max() -> usize {
    crate::protocol::uwsgi::MAX_VARS
}

/// Decodes `input` fed `step` bytes at a time, `max` body bytes per call, like the worker.
fn decode_all(
    decoder: &mut StdinDecoder,
    input: &[u8],
    step: usize,
    max: usize,
) -> Result<(Vec<u8>, usize), ParseFastCgiError> {
    let mut buffered = Vec::new();
    let mut fed = 0;
    let mut consumed_total = 0;
    let mut out = Vec::new();
    loop {
        let before = out.len();
        let decoded = decoder.decode(&buffered, &mut out, max)?;
        assert!(out.len() - before <= max, "more than max bytes produced");
        buffered.drain(..decoded.consumed);
        consumed_total += decoded.consumed;
        if decoded.done {
            return Ok((out, consumed_total));
        }
        if decoded.consumed == 0 && out.len() == before {
            if fed == input.len() {
                panic!("the decoder wants more than the whole input");
            }
            let end = (fed + step).min(input.len());
            buffered.extend_from_slice(&input[fed..end]);
            fed = end;
        }
    }
}

#[test]
fn stdin_in_many_records_is_the_body_in_any_slicing() {
    let mut stream = Vec::new();
    stream.extend(record(5, 4, b"hello ", 2));
    stream.extend(record(8, 4, b"filter data is skipped", 0));
    stream.extend(record(11, 0, &[0; 8], 0));
    stream.extend(record(5, 4, b"big ", 0));
    stream.extend(record(5, 4, b"world", 7));
    stream.extend(record(5, 4, b"", 1));
    let next_request = begin(5, 1, 0);
    let mut input = stream.clone();
    input.extend_from_slice(&next_request);
    for step in [1, 2, 3, 7, 8, 9, 64, 1000] {
        for max in [1, 5, 4096] {
            let mut decoder = StdinDecoder::new(4, Some(15));
            let (body, consumed) = decode_all(&mut decoder, &input, step, max).unwrap();
            assert_eq!(body, b"hello big world", "step {step}, max {max}");
            assert!(decoder.is_done());
            // The next request's bytes are left alone (bar what was fed past the end).
            assert_eq!(consumed, stream.len(), "step {step}, max {max}");
        }
    }
}

#[test]
fn stdin_past_content_length_is_dropped_and_short_stdin_refused() {
    let mut stream = record(5, 1, b"0123456789", 0);
    stream.extend(record(5, 1, b"", 0));
    let mut decoder = StdinDecoder::new(1, Some(4));
    let (body, _) = decode_all(&mut decoder, &stream, 100, 4096).unwrap();
    assert_eq!(body, b"0123");
    let mut decoder = StdinDecoder::new(1, None);
    let (body, _) = decode_all(&mut decoder, &stream, 100, 4096).unwrap();
    assert_eq!(body, b"0123456789");
    let mut decoder = StdinDecoder::new(1, Some(20));
    assert_eq!(
        decode_all(&mut decoder, &stream, 100, 4096),
        Err(ParseFastCgiError::ShortBody {
            got: 10,
            declared: 20
        })
    );
}

#[test]
fn stdin_refuses_aborts_and_other_requests() {
    let mut decoder = StdinDecoder::new(1, None);
    let mut out = Vec::new();
    assert_eq!(
        decoder.decode(&record(2, 1, b"", 0), &mut out, 4096),
        Err(ParseFastCgiError::Aborted { id: 1 })
    );
    let mut decoder = StdinDecoder::new(1, None);
    assert_eq!(
        decoder.decode(&begin(2, 1, 0), &mut out, 4096),
        Err(ParseFastCgiError::Multiplexed { id: 1, other: 2 })
    );
    let mut decoder = StdinDecoder::new(1, None);
    assert_eq!(
        decoder.decode(b"\x02garbage", &mut out, 4096),
        Err(ParseFastCgiError::Version { version: 2 })
    );
}

#[test]
fn response_records() {
    assert_eq!(stdout_header(0x0102, 0x0304), [1, 6, 1, 2, 3, 4, 0, 0]);
    let end = end_request(9);
    assert_eq!(&end[..8], &[1, 6, 0, 9, 0, 0, 0, 0]);
    assert_eq!(&end[8..16], &[1, 3, 0, 9, 0, 8, 0, 0]);
    assert_eq!(&end[16..], &[0; 8]);
}

#[test]
fn management_records_are_answered() {
    let ask = record(
        9,
        0,
        &pairs(&[
            (b"FCGI_MAX_CONNS", b""),
            (b"FCGI_MPXS_CONNS", b""),
            (b"UNHEARD_OF", b""),
        ]),
        2,
    );
    let Ok(Management::Answered { consumed, reply }) = management(&ask, 8) else {
        panic!("GET_VALUES not answered");
    };
    assert_eq!(consumed, ask.len());
    let expected = pairs(&[(b"FCGI_MAX_CONNS", b"8"), (b"FCGI_MPXS_CONNS", b"0")]);
    assert_eq!(reply, record(10, 0, &expected, 0));
    for end in 1..ask.len() {
        assert_eq!(
            management(&ask[..end], 8),
            Ok(Management::NeedMore),
            "{end}"
        );
    }
    let Ok(Management::Answered { reply, .. }) = management(&record(42, 0, b"", 0), 8) else {
        panic!("an unknown management record not answered");
    };
    assert_eq!(reply, record(11, 0, &[42, 0, 0, 0, 0, 0, 0, 0], 0));
    assert_eq!(management(&begin(1, 1, 0), 8), Ok(Management::None));
    assert_eq!(management(b"", 8), Ok(Management::None));
    // Not a record at all: for the request parser to refuse.
    assert_eq!(management(b"GET / HTTP/1.1", 8), Ok(Management::None));
}

/// A whole request as a client may send it: params in records of `params_split` pairs, stdin
/// in records of `stdin_size` bytes, every record padded by `padding`.
fn encode_request(
    id: u16,
    vars: &[(Vec<u8>, Vec<u8>)],
    body: &[u8],
    params_split: usize,
    stdin_size: usize,
    padding: u8,
) -> Vec<u8> {
    let mut out = begin(id, 1, 0);
    for group in vars.chunks(params_split.max(1)) {
        let borrowed: Vec<(&[u8], &[u8])> = group
            .iter()
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
            .collect();
        out.extend(record(4, id, &pairs(&borrowed), padding));
    }
    out.extend(record(4, id, b"", padding));
    for piece in body.chunks(stdin_size.max(1)) {
        out.extend(record(5, id, piece, padding));
    }
    out.extend(record(5, id, b"", padding));
    out
}

proptest::proptest! {
    #[test]
    fn round_trip(
        vars in proptest::collection::vec(
            (
                proptest::collection::vec(b'A'..=b'Z', 1..200),
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            ),
            0..12,
        ),
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
        id in 1u16..,
        params_split in 1usize..5,
        stdin_size in 1usize..700,
        padding in 0u8..9,
        step in 1usize..100,
        max in 1usize..600,
    ) {
        let bytes = encode_request(id, &vars, &body, params_split, stdin_size, padding);
        let request = parse_request(&bytes, 1 << 16).unwrap().unwrap();
        let parsed: Vec<(Vec<u8>, Vec<u8>)> = request
            .packet
            .vars
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect();
        proptest::prop_assert_eq!(&parsed, &vars);
        let stdin = &bytes[request.packet.len..];
        let mut decoder = StdinDecoder::new(id, Some(body.len() as u64));
        let (decoded, consumed) = decode_all(&mut decoder, stdin, step, max).unwrap();
        proptest::prop_assert_eq!(decoded, body);
        proptest::prop_assert_eq!(consumed, stdin.len());
        // Every truncation of the head is incomplete, never an error or a request.
        for end in (0..request.packet.len).step_by(step) {
            proptest::prop_assert_eq!(parse_request(&bytes[..end], 1 << 16), Ok(None));
        }
    }
}

proptest::proptest! {
    /// Arbitrary bytes, alone or after a valid begin record (so the params parser is
    /// reached): nothing panics, and a parsed head lies within the input.
    #[test]
    fn arbitrary_bytes_never_panic(
        tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
        after_begin in proptest::prelude::any::<bool>(),
        max in 0usize..64,
    ) {
        let mut bytes = if after_begin { begin(1, 1, 1) } else { Vec::new() };
        bytes.extend_from_slice(&tail);
        if let Ok(Some(request)) = parse_request(&bytes, 256) {
            proptest::prop_assert!(request.packet.len <= bytes.len());
        }
        let _ = management(&bytes, 2);
        let mut out = Vec::new();
        if let Ok(decoded) = StdinDecoder::new(1, None).decode(&tail, &mut out, max) {
            proptest::prop_assert!(decoded.consumed <= tail.len());
            proptest::prop_assert!(out.len() <= max);
        }
    }
}
