//! One spare read buffer per request thread, lent to the connection it is serving.
//!
//! Every request used to read into a fresh 16 KiB `Vec` and free it once the head was
//! parsed: a `malloc` and `free` of a large chunk per request, and glibc consolidates its
//! fast bins on every such `malloc` (together 15% of a hello-world request's instructions,
//! measured with callgrind). A parked keep-alive connection must not hold a buffer either
//! (1,000 idle clients would pin 16 MiB), so the buffer goes back to its thread whenever the
//! connection has nothing buffered, and the next connection the thread reads from takes it.
//!
//! It must not keep a buffer with bytes in it: only empty buffers are stored.

use std::cell::Cell;

/// A buffer larger than this (a big head, a pipelined burst) is freed rather than kept.
const KEEP_AT_MOST: usize = 64 * 1024;

thread_local! {
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Gives `buf` an allocation for reading if it has none: the thread's spare, when it has one.
pub fn lend(buf: &mut Vec<u8>) {
    if buf.capacity() == 0 {
        *buf = SPARE.with(Cell::take);
    }
}

/// Takes back `buf`'s allocation if it holds no bytes, leaving it empty without capacity.
pub fn give_back(buf: &mut Vec<u8>) {
    if buf.is_empty() && buf.capacity() != 0 {
        keep(std::mem::take(buf));
    }
}

/// Keeps `buf` (emptied) as the thread's spare, unless the thread has one already.
pub fn keep(mut buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > KEEP_AT_MOST {
        return;
    }
    buf.clear();
    SPARE.with(|spare| {
        let current = spare.take();
        spare.set(if current.capacity() >= buf.capacity() {
            current
        } else {
            buf
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_buffer_is_reused_and_a_full_one_is_not_taken() {
        let mut first = Vec::with_capacity(16 * 1024);
        let pointer = first.as_ptr();
        give_back(&mut first);
        assert_eq!(first.capacity(), 0, "the connection keeps no allocation");
        let mut second = Vec::new();
        lend(&mut second);
        assert_eq!(
            second.as_ptr(),
            pointer,
            "the next reader gets the same allocation"
        );

        let mut holding = vec![1u8, 2, 3];
        give_back(&mut holding);
        assert_eq!(
            holding,
            [1, 2, 3],
            "bytes still to parse stay with their connection"
        );
    }
}
