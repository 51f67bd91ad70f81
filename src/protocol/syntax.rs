//! Byte-level grammar shared by the HTTP request parser and the response writer: RFC 9110
//! tokens and field values, and a word-at-a-time search for line feeds.

/// `tchar` from RFC 9110 §5.6.2, as a lookup table.
static TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        byte += 1;
    }
    table
};

pub(crate) fn is_token_byte(byte: u8) -> bool {
    TOKEN[usize::from(byte)]
}

/// A non-empty RFC 9110 token (method, header name, transfer coding). Table lookups without
/// an early exit: no branch per byte.
pub(crate) fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().fold(true, |ok, &b| ok & is_token_byte(b))
}

/// `field-vchar / SP / HTAB` (RFC 9110 §5.5): visible ASCII, obs-text, space and tab; no
/// other control characters, in particular no CR, LF, NUL or DEL.
pub(crate) fn is_field_value_byte(byte: u8) -> bool {
    byte == b'\t' || (byte >= b' ' && byte != 0x7f)
}

/// Whether every byte is a field value byte. Written without an early exit so the compiler
/// vectorises it: values are most of a request head.
pub(crate) fn is_field_value(bytes: &[u8]) -> bool {
    !bytes.iter().fold(false, |bad, &b| {
        bad | ((b < b' ') & (b != b'\t')) | (b == 0x7f)
    })
}

/// Whether every byte may appear in a request target: visible ASCII and, for clients that
/// send raw UTF-8 paths, obs-text; no controls, no spaces, no DEL.
pub(crate) fn is_request_target(bytes: &[u8]) -> bool {
    !bytes
        .iter()
        .fold(false, |bad, &b| bad | (b <= b' ') | (b == 0x7f))
}

/// Strips leading and trailing optional whitespace (SP / HTAB).
pub(crate) fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// Parses a non-empty run of ASCII digits that fits in a `u64` (no sign, no whitespace).
pub(crate) fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &byte| {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// The value of an ASCII hex digit.
pub(crate) fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Position of the first `\n` in `haystack`.
pub(crate) fn find_lf(haystack: &[u8]) -> Option<usize> {
    find_byte(b'\n', haystack)
}

/// Position of the first `needle` in `haystack`.
///
/// Request heads are scanned on every request, so this looks at eight bytes per step (the
/// classic "has a zero byte" trick on `word ^ needle×8`) instead of one.
pub(crate) fn find_byte(needle: u8, haystack: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(needle);
    let mut chunks = haystack.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let word =
            u64::from_le_bytes(chunk.try_into().expect("chunks_exact yields 8 bytes")) ^ pattern;
        // Non-zero exactly when some byte of `word` is zero; the lowest set bit marks the
        // first such byte (higher bits can be false positives, lower ones cannot).
        let found = word.wrapping_sub(LO) & !word & HI;
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == needle)
        .map(|i| offset + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tokens() {
        for (input, expected) in [
            (&b"GET"[..], true),
            (b"X-Forwarded-For", true),
            (b"a!#$%&'*+-.^_`|~9", true),
            (b"", false),
            (b"a b", false),
            (b"a:", false),
            (b"a\"", false),
            (b"\xc3\xa9", false),
            (b"a\0", false),
        ] {
            assert_eq!(is_token(input), expected, "is_token({input:?})");
        }
    }

    #[test]
    fn field_values() {
        for (byte, expected) in [
            (b'\t', true),
            (b' ', true),
            (b'~', true),
            (0x80, true),
            (0xff, true),
        ] {
            assert_eq!(is_field_value_byte(byte), expected, "byte {byte:#x}");
        }
        for byte in [0u8, b'\r', b'\n', 0x1f, 0x7f, 0x0b] {
            assert!(!is_field_value_byte(byte), "byte {byte:#x}");
        }
        for (value, expected) in [
            (&b""[..], true),
            (b"text/html; q=0.9\t\xc3\xa9~", true),
            (b"a\rb", false),
            (&[b'x'; 100], true),
            (&[[b'x'; 70].as_slice(), b"\0"].concat(), false),
            (b"\x7f", false),
        ] {
            assert_eq!(is_field_value(value), expected, "is_field_value({value:?})");
        }
        for (target, expected) in [
            (&b"/a?b=%20"[..], true),
            (b"/\xc3\xa9", true),
            (b"/ a", false),
            (b"/\t", false),
            (b"/\x7f", false),
        ] {
            assert_eq!(
                is_request_target(target),
                expected,
                "is_request_target({target:?})"
            );
        }
    }

    #[test]
    fn trimming() {
        for (input, expected) in [
            (&b""[..], &b""[..]),
            (b" \t ", b""),
            (b" a b\t", b"a b"),
            (b"a", b"a"),
        ] {
            assert_eq!(trim_ows(input), expected, "trim_ows({input:?})");
        }
    }

    proptest! {
        #[test]
        fn find_byte_matches_naive(
            haystack in prop::collection::vec(prop::sample::select(vec![b'\n', b'\r', b'a', b':', 0x8a, 0xba, 0x0b, 0x09]), 0..64),
            needle in prop::sample::select(vec![b'\n', b':']),
        ) {
            prop_assert_eq!(find_byte(needle, &haystack), haystack.iter().position(|&b| b == needle));
        }
    }
}
