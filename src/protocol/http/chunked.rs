//! Decoding a `Transfer-Encoding: chunked` request body (RFC 9112 §7.1) as a resumable state
//! machine: feed it whatever bytes arrived, get the payload appended to a `Vec` and the number
//! of bytes used, so the caller knows where a pipelined next request begins.
//!
//! Chunk extensions are accepted and ignored (whitespace after the size only before one);
//! trailer fields are checked for stray control
//! characters and discarded (WSGI has no place for them). As in the head parser, a bare LF is
//! never a line ending.

use super::ParseHttpError;
use crate::protocol::syntax::{hex_value, is_field_value_byte};

/// The most trailer lines a chunked body may end with.
pub const MAX_TRAILERS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a chunk-size line: a hex digit must follow.
    SizeStart,
    /// Inside the hex digits of the chunk size.
    Size,
    /// After the size and some whitespace (BWS): more of it, or `;`.
    ExtensionWhitespace,
    /// Inside the chunk extensions, up to CR.
    Extension,
    /// The CR of the size line was seen; LF must follow.
    SizeLf,
    /// Copying chunk data; `remaining` bytes are left.
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line or of the final empty line.
    TrailerStart,
    Trailer,
    TrailerLf,
    /// The CR of the final empty line was seen; LF ends the body.
    FinalLf,
    Done,
    Failed,
}

/// A sans-I/O decoder for one chunked body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// The size being parsed in `Size`, then the data bytes left in `Data`.
    remaining: u64,
    /// Bytes of the current size or trailer line so far, without its CRLF.
    line_len: usize,
    max_chunk_line: usize,
    trailers: usize,
}

/// What one call to [`ChunkedDecoder::decode`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of the input used. Less than the input only when `done`: the rest belongs to the
    /// next request.
    pub consumed: usize,
    /// The last chunk and the trailers have been read.
    pub done: bool,
}

impl ChunkedDecoder {
    /// A decoder that refuses chunk-size lines (with extensions) and trailer lines longer
    /// than `max_chunk_line` bytes.
    pub fn new(max_chunk_line: usize) -> Self {
        Self {
            state: State::SizeStart,
            remaining: 0,
            line_len: 0,
            max_chunk_line,
            trailers: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes as much of `input` as possible, appending chunk data to `out`.
    ///
    /// After an error the decoder is spent: further calls return
    /// [`ParseHttpError::DecoderFailed`]. After `done`, further calls consume nothing.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Decoded, ParseHttpError> {
        let mut pos = 0;
        while pos < input.len() {
            match self.state {
                State::Done => break,
                State::Failed => return Err(ParseHttpError::DecoderFailed),
                State::Data => {
                    let available = input.len() - pos;
                    let take = usize::try_from(self.remaining)
                        .map_or(available, |remaining| remaining.min(available));
                    out.extend_from_slice(&input[pos..pos + take]);
                    pos += take;
                    self.remaining -= take as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                }
                _ => {
                    if let Err(error) = self.step(input[pos]) {
                        self.state = State::Failed;
                        return Err(error);
                    }
                    pos += 1;
                }
            }
        }
        if self.state == State::Failed {
            return Err(ParseHttpError::DecoderFailed);
        }
        Ok(Decoded {
            consumed: pos,
            done: self.is_done(),
        })
    }

    /// Advances the framing state by one byte (everything but chunk data).
    fn step(&mut self, byte: u8) -> Result<(), ParseHttpError> {
        use State::*;
        self.state = match self.state {
            SizeStart => {
                let digit = hex_value(byte).ok_or(ParseHttpError::InvalidChunkSize)?;
                self.remaining = u64::from(digit);
                self.line_len = 0;
                self.count_line_byte()?;
                Size
            }
            Size => match byte {
                b'\r' => SizeLf,
                _ => {
                    self.count_line_byte()?;
                    match hex_value(byte) {
                        Some(digit) => {
                            self.remaining = self
                                .remaining
                                .checked_mul(16)
                                .ok_or(ParseHttpError::ChunkSizeOverflow)?
                                | u64::from(digit);
                            Size
                        }
                        None => self.after_size(byte)?,
                    }
                }
            },
            // Whitespace is allowed before a `;` (BWS, RFC 9112 §7.1.1), never at the end of
            // the line: parsers that strip it and parsers that refuse it would disagree.
            ExtensionWhitespace => match byte {
                b'\r' => return Err(ParseHttpError::InvalidChunkSize),
                _ => {
                    self.count_line_byte()?;
                    self.after_size(byte)?
                }
            },
            Extension => match byte {
                b'\r' => SizeLf,
                _ if is_field_value_byte(byte) => {
                    self.count_line_byte()?;
                    Extension
                }
                _ => return Err(ParseHttpError::InvalidChunkSize),
            },
            SizeLf if byte == b'\n' => {
                if self.remaining == 0 {
                    TrailerStart
                } else {
                    Data
                }
            }
            SizeLf => return Err(ParseHttpError::InvalidChunkSize),
            DataCr if byte == b'\r' => DataLf,
            DataLf if byte == b'\n' => SizeStart,
            DataCr | DataLf => return Err(ParseHttpError::MissingChunkTerminator),
            TrailerStart if byte == b'\r' => FinalLf,
            TrailerStart => {
                self.trailers += 1;
                if self.trailers > MAX_TRAILERS {
                    return Err(ParseHttpError::TooManyTrailers { max: MAX_TRAILERS });
                }
                self.line_len = 0;
                self.trailer_byte(byte)?
            }
            Trailer => self.trailer_byte(byte)?,
            TrailerLf | FinalLf if byte != b'\n' => return Err(ParseHttpError::InvalidTrailer),
            TrailerLf => TrailerStart,
            FinalLf => Done,
            Data | Done | Failed => {
                unreachable!("decode handles {:?} without stepping", self.state)
            }
        };
        Ok(())
    }

    /// The state after a byte other than a digit or CR that follows the chunk size.
    fn after_size(&self, byte: u8) -> Result<State, ParseHttpError> {
        match byte {
            b' ' | b'\t' => Ok(State::ExtensionWhitespace),
            b';' => Ok(State::Extension),
            _ => Err(ParseHttpError::InvalidChunkSize),
        }
    }

    fn trailer_byte(&mut self, byte: u8) -> Result<State, ParseHttpError> {
        match byte {
            b'\r' => Ok(State::TrailerLf),
            _ if is_field_value_byte(byte) => {
                self.count_line_byte()?;
                Ok(State::Trailer)
            }
            _ => Err(ParseHttpError::InvalidTrailer),
        }
    }

    fn count_line_byte(&mut self) -> Result<(), ParseHttpError> {
        self.line_len += 1;
        if self.line_len > self.max_chunk_line {
            return Err(ParseHttpError::ChunkLineTooLong {
                max: self.max_chunk_line,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::response::{write_chunk, write_last_chunk};
    use proptest::prelude::*;
    use ParseHttpError::*;

    /// Decodes `input` in one call; `expected` is the payload and the bytes consumed, or
    /// `None` while the body is incomplete.
    fn check(input: &str, expected: Result<Option<(&str, usize)>, ParseHttpError>) {
        let mut decoder = ChunkedDecoder::new(64);
        let mut out = Vec::new();
        let got = decoder.decode(input.as_bytes(), &mut out).map(|decoded| {
            assert_eq!(decoded.done, decoder.is_done());
            if !decoded.done {
                assert_eq!(
                    decoded.consumed,
                    input.len(),
                    "an unfinished decode uses all input"
                );
            }
            decoded
                .done
                .then(|| (String::from_utf8(out).unwrap(), decoded.consumed))
        });
        let expected =
            expected.map(|done| done.map(|(body, consumed)| (body.to_owned(), consumed)));
        assert_eq!(got, expected, "decoding {input:?}");
    }

    fn done(body: &str, consumed: usize) -> Result<Option<(&str, usize)>, ParseHttpError> {
        Ok(Some((body, consumed)))
    }

    #[test]
    fn decode_cases() {
        check("0\r\n\r\n", done("", 5));
        check("5\r\nhello\r\n0\r\n\r\n", done("hello", 15));
        check(
            "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT",
            done("hello world", 26),
        );
        check("A\r\n0123456789\r\n0\r\n\r\n", done("0123456789", 20));
        check("a\r\n0123456789\r\n00\r\n\r\n", done("0123456789", 21));
        check("0005\r\nhello\r\n0\r\n\r\n", done("hello", 18));
        // Extensions, with and without whitespace before `;`.
        check("5;name=value\r\nhello\r\n0;x\r\n\r\n", done("hello", 28));
        check("5 ; a=\"q s\"\r\nhello\r\n0\r\n\r\n", done("hello", 25));
        check("5 \t;x\r\nhello\r\n0\r\n\r\n", done("hello", 19));
        // Whitespace that no extension follows (gunicorn's corpus: chunked_09).
        check("5 \r\nhello\r\n0\r\n\r\n", Err(InvalidChunkSize));
        check("5\t\r\nhello\r\n0\r\n\r\n", Err(InvalidChunkSize));
        check("5\r\nhello\r\n0 \r\n\r\n", Err(InvalidChunkSize));
        // Trailers are read and discarded.
        check(
            "5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\n",
            done("hello", 33),
        );
        // A chunk's data may contain CRLF.
        check("2\r\n\r\n\r\n0\r\n\r\n", done("\r\n", 12));

        check("", Ok(None));
        check("5\r\nhel", Ok(None));
        check("5\r\nhello\r\n0\r\n", Ok(None));
        check("5\r\nhello\r\n0\r\nX: 1\r\n", Ok(None));

        check("\r\n", Err(InvalidChunkSize));
        check("x\r\n", Err(InvalidChunkSize));
        check("-1\r\n", Err(InvalidChunkSize));
        check(" 5\r\n", Err(InvalidChunkSize));
        check("5x\r\nhello\r\n", Err(InvalidChunkSize));
        check("5 6\r\nhello\r\n", Err(InvalidChunkSize));
        check("5\nhello\r\n", Err(InvalidChunkSize));
        check("5\r\rhello\r\n", Err(InvalidChunkSize));
        check("5;a\nhello\r\n", Err(InvalidChunkSize));
        check("5;a\0\r\nhello\r\n", Err(InvalidChunkSize));
        check("10000000000000000\r\n", Err(ChunkSizeOverflow));
        check("ffffffffffffffff\r\n", Ok(None));
        check("5\r\nhelloX\r\n", Err(MissingChunkTerminator));
        check("5\r\nhello\rX", Err(MissingChunkTerminator));
        check("5\r\nhello\n0\r\n\r\n", Err(MissingChunkTerminator));
        check("0\r\n\n", Err(InvalidTrailer));
        check("0\r\n\rX", Err(InvalidTrailer));
        check("0\r\nX: 1\n\r\n", Err(InvalidTrailer));
        check("0\r\nX: 1\rY", Err(InvalidTrailer));
        check("0\r\nX: \x01\r\n\r\n", Err(InvalidTrailer));
        check("0\r\nX\0\r\n\r\n", Err(InvalidTrailer));
        check(
            &format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(62)),
            done("hello", 78),
        );
        check(
            &format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(63)),
            Err(ChunkLineTooLong { max: 64 }),
        );
        check(
            &format!("{}5\r\nhello\r\n0\r\n\r\n", "0".repeat(64)),
            Err(ChunkLineTooLong { max: 64 }),
        );
        check(
            &format!("0\r\nX: {}\r\n\r\n", "v".repeat(62)),
            Err(ChunkLineTooLong { max: 64 }),
        );
        check(
            &format!("0\r\n{}\r\n", "X: 1\r\n".repeat(MAX_TRAILERS)),
            done("", 5 + 6 * MAX_TRAILERS),
        );
        check(
            &format!("0\r\n{}\r\n", "X: 1\r\n".repeat(MAX_TRAILERS + 1)),
            Err(TooManyTrailers { max: MAX_TRAILERS }),
        );
    }

    #[test]
    fn spent_decoders() {
        let mut decoder = ChunkedDecoder::new(64);
        let mut out = Vec::new();
        assert_eq!(decoder.decode(b"x", &mut out), Err(InvalidChunkSize));
        assert_eq!(decoder.decode(b"0\r\n\r\n", &mut out), Err(DecoderFailed));
        assert_eq!(decoder.decode(b"", &mut out), Err(DecoderFailed));

        let mut decoder = ChunkedDecoder::new(64);
        assert_eq!(
            decoder.decode(b"0\r\n\r\n", &mut out),
            Ok(Decoded {
                consumed: 5,
                done: true
            })
        );
        assert!(decoder.is_done());
        assert_eq!(
            decoder.decode(b"0\r\n\r\n", &mut out),
            Ok(Decoded {
                consumed: 0,
                done: true
            })
        );
        assert!(out.is_empty());
    }

    fn encode(chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in chunks {
            write_chunk(&mut out, chunk);
        }
        write_last_chunk(&mut out);
        out
    }

    proptest! {
        #[test]
        fn encode_then_decode_with_arbitrary_splits(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..100), 0..10),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
            next in prop::collection::vec(any::<u8>(), 0..4),
        ) {
            let mut wire = encode(&chunks);
            let body_len = wire.len();
            wire.extend_from_slice(&next);
            let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(wire.len() + 1)).collect();
            cuts.push(wire.len());
            cuts.sort_unstable();

            let mut decoder = ChunkedDecoder::new(32);
            let mut out = Vec::new();
            let mut pos = 0;
            for cut in cuts {
                if cut < pos {
                    continue;
                }
                // As a server would: keep unconsumed bytes and retry with more.
                let decoded = decoder.decode(&wire[pos..cut], &mut out).unwrap();
                pos += decoded.consumed;
                if decoded.done {
                    break;
                }
                prop_assert_eq!(pos, cut);
            }
            prop_assert!(decoder.is_done());
            prop_assert_eq!(pos, body_len);
            prop_assert_eq!(out, chunks.concat());
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..200), split in any::<prop::sample::Index>()) {
            let mut decoder = ChunkedDecoder::new(16);
            let mut out = Vec::new();
            let split = split.index(input.len() + 1);
            if let Ok(decoded) = decoder.decode(&input[..split], &mut out) {
                prop_assert!(decoded.consumed <= split);
                let _ = decoder.decode(&input[decoded.consumed..], &mut out);
            }
        }
    }
}
