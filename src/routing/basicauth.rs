//! `basicauth:REALM,USER:PASSWORD` and `basicauth:REALM,HTPASSWD-FILE`, as uWSGI's
//! router_basicauth decides: a request that already has a REMOTE_USER passes; one without
//! `Authorization: Basic …` is refused (401, even with `basicauth-next`); one with wrong
//! credentials is refused, or falls through to the next rule with `basicauth-next`.
//!
//! htpasswd lines are `user:{SHA}base64(sha1(password))` or `user:CRYPT` (checked with
//! `crypt(3)` through [`Facts`]; uWSGI reads only 13-character DES hashes, kaiser also
//! takes the `$1$`, `$5$`, `$6$` and `$2y$` ones libcrypt knows). Apache's own `$apr1$` MD5
//! is not `crypt(3)` and never matches, as in uWSGI.

use super::eval::{Facts, RequestState};
use super::rules::{BasicAuth, Credentials};

pub enum Check {
    /// Already authenticated: nothing to do.
    Pass,
    /// Authenticated as this user.
    User(Vec<u8>),
    Refuse,
}

pub fn check(auth: &BasicAuth, request: &RequestState<'_>, facts: &dyn Facts) -> Check {
    if request
        .get(b"REMOTE_USER")
        .is_some_and(|user| !user.is_empty())
    {
        return Check::Pass;
    }
    let header = request.get(b"HTTP_AUTHORIZATION").unwrap_or(b"");
    if header.len() <= 7 {
        return Check::Refuse;
    }
    let Some(encoded) = header.strip_prefix(b"Basic ") else {
        return Check::Refuse;
    };
    let Some(pair) = base64_decode(encoded.trim_ascii()) else {
        return Check::Refuse;
    };
    let user = match &auth.credentials {
        Credentials::Plain {
            pair: expected,
            user_len,
        } => (pair == *expected).then(|| pair[..*user_len].to_vec()),
        Credentials::Htpasswd(path) => facts
            .read_file(path)
            .and_then(|text| htpasswd_user(&text, &pair, facts)),
    };
    match user {
        Some(user) => Check::User(user),
        None if auth.next => Check::Pass,
        None => Check::Refuse,
    }
}

/// The user of `pair` (`user:password`) when an htpasswd line accepts it.
fn htpasswd_user(text: &[u8], pair: &[u8], facts: &dyn Facts) -> Option<Vec<u8>> {
    let colon = pair.iter().position(|&b| b == b':')?;
    let (user, password) = (&pair[..colon], &pair[colon + 1..]);
    for line in text.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(split) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if &line[..split] != user {
            continue;
        }
        let stored = &line[split + 1..];
        let matches = match stored.strip_prefix(b"{SHA}") {
            Some(digest) => base64_encode(&sha1(password)).as_bytes() == digest,
            None => !stored.is_empty() && facts.crypt(password, stored).as_deref() == Some(stored),
        };
        if matches {
            return Some(user.to_vec());
        }
    }
    None
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let text = text
        .strip_suffix(b"==")
        .or_else(|| text.strip_suffix(b"="))
        .unwrap_or(text);
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &byte in text {
        let value = ALPHABET.iter().position(|&c| c == byte)? as u32;
        acc = acc << 6 | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// SHA-1 (FIPS 180-4), for htpasswd's `{SHA}` lines only.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in message.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, &word) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let temp = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(word);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = temp;
        }
        for (state, value) in h.iter_mut().zip([a, b, c, d, e]) {
            *state = state.wrapping_add(value);
        }
    }
    let mut out = [0u8; 20];
    for (i, word) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("alice:secret", "YWxpY2U6c2VjcmV0"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded.as_bytes()).unwrap(), plain.as_bytes());
        }
        assert!(base64_decode(b"not base64!").is_none());
    }

    #[test]
    fn sha1_known_answers() {
        // `htpasswd -nbs alice secret` writes this.
        assert_eq!(
            base64_encode(&sha1(b"secret")),
            "5en6G6MezRroT3XKqkdPOmY/BfQ="
        );
        assert_eq!(base64_encode(&sha1(b"")), "2jmj7l5rSw0yVb/vlWAYkK/YBwk=");
        let long = vec![b'a'; 1000];
        assert_eq!(base64_encode(&sha1(&long)), "KR6abGaZSUm1e6XmUDYemPw2sbo=");
    }
}
