//! uWSGI's spool file (reference §8.4), byte for byte, so that a queue written by uWSGI is run
//! by kaiser after a migration and the other way round: a uwsgi packet header with
//! `modifier1 = 17`, the task's arguments as a uwsgi vars block (at most 64 KiB), then the raw
//! body, which is the rest of the file. Also the file names (`uwsgi_spoolfile_on_<hostname>_
//! <pid>_<counter>_<rand>_<sec>_<usec>`) and the arguments the writer itself reads
//! (`spooler`, `priority`, `at`).
//!
//! It does no I/O: the spool directory is read and written by `spooler::queue`.

use thiserror::Error;

use super::uwsgi::{
    encode_packet, parse_vars, EncodeUwsgiError, Modifier1, PacketHeader, HEADER_LEN,
};

/// Every task file's name starts with this; anything else in a spool directory is ignored.
pub const TASK_PREFIX: &str = "uwsgi_spoolfile_on_";

/// A decoded task: its arguments in file order and its body (empty when it has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task<'a> {
    pub vars: Vec<(&'a [u8], &'a [u8])>,
    pub body: &'a [u8],
}

impl<'a> Task<'a> {
    /// The first argument named `key`.
    pub fn get(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.vars.iter().find(|(k, _)| *k == key).map(|&(_, v)| v)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeSpoolError {
    /// Fewer bytes than the header announces: a writer may still be writing it (uWSGI's
    /// writers hold an fcntl lock meanwhile, but a file copied in by hand may be cut short).
    #[error("the spool file is {len} bytes, shorter than its {needed}-byte header and arguments")]
    Truncated { len: usize, needed: usize },
    #[error("not a spool file (modifier1 {modifier1}, expected 17)")]
    NotASpoolFile { modifier1: u8 },
    #[error("the arguments are not a valid uwsgi vars block: {0}")]
    Vars(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeSpoolError {
    /// uWSGI's limit and advice (`args buffer is limited to 64k, use the 'body' for bigger
    /// values`).
    #[error("the task's arguments take more than 64 KiB; pass large values as `body`")]
    TooLarge(#[source] EncodeUwsgiError),
}

/// The whole file: header, arguments, body.
pub fn encode(vars: &[(&[u8], &[u8])], body: &[u8]) -> Result<Vec<u8>, EncodeSpoolError> {
    let mut out =
        encode_packet(Modifier1::SpoolerFile as u8, 0, vars).map_err(EncodeSpoolError::TooLarge)?;
    out.extend_from_slice(body);
    Ok(out)
}

/// Reads a whole file's bytes.
pub fn decode(file: &[u8]) -> Result<Task<'_>, DecodeSpoolError> {
    let Some(header) = PacketHeader::decode(file) else {
        return Err(DecodeSpoolError::Truncated {
            len: file.len(),
            needed: HEADER_LEN,
        });
    };
    if header.modifier1 != Modifier1::SpoolerFile as u8 {
        return Err(DecodeSpoolError::NotASpoolFile {
            modifier1: header.modifier1,
        });
    }
    let end = HEADER_LEN + usize::from(header.size);
    let Some(block) = file.get(HEADER_LEN..end) else {
        return Err(DecodeSpoolError::Truncated {
            len: file.len(),
            needed: end,
        });
    };
    let vars = parse_vars(block, header.size, usize::MAX)
        .map_err(|e| DecodeSpoolError::Vars(e.to_string()))?;
    Ok(Task {
        vars,
        body: &file[end..],
    })
}

/// The name of a new task file, as uWSGI's `uwsgi_spool_request` builds it. `counter` is the
/// writing process's own count of tasks and `random` a random number, so that names from
/// several processes and threads never collide.
pub fn task_file_name(
    hostname: &str,
    pid: i32,
    counter: u64,
    random: u32,
    sec: u64,
    usec: u32,
) -> String {
    format!("{TASK_PREFIX}{hostname}_{pid}_{counter}_{random}_{sec}_{usec}")
}

/// What the writer reads from a task's own arguments, as uWSGI does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing<'a> {
    /// `spooler`: the directory to write to (the first spooler's when absent).
    pub spooler: Option<&'a [u8]>,
    /// `priority`: a numbered subdirectory.
    pub priority: Option<&'a [u8]>,
    /// `at`: Unix seconds before which the task must not run (it becomes the file's mtime).
    /// A fraction is dropped, as uWSGI does.
    pub at: Option<u64>,
}

pub fn routing<'a>(vars: &[(&'a [u8], &'a [u8])]) -> Routing<'a> {
    let mut routing = Routing::default();
    for &(key, value) in vars {
        match key {
            b"spooler" if !value.is_empty() => routing.spooler = Some(value),
            b"priority" if !value.is_empty() => routing.priority = Some(value),
            b"at" => {
                let whole = value.split(|b| *b == b'.').next().unwrap_or(b"");
                routing.at = std::str::from_utf8(whole)
                    .ok()
                    .and_then(|digits| digits.parse().ok())
                    .filter(|at| *at > 0);
            }
            _ => {}
        }
    }
    routing
}

/// A priority is a directory name the spooler descends into: digits only, which also keeps
/// a task from naming a path outside the spool directory.
pub fn is_priority(name: &[u8]) -> bool {
    !name.is_empty() && name.len() <= 20 && name.iter().all(u8::is_ascii_digit)
}

/// Orders a directory's entries as `spooler-ordered` runs them: glibc's `versionsort`, so
/// `2` comes before `10` and numbered priority directories before task files.
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let run = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (run(a), run(b));
                let (da, db) = (&a[..na], &b[..nb]);
                let trim = |d: &[u8]| {
                    let zeros = d.iter().take_while(|c| **c == b'0').count();
                    d.len() - zeros
                };
                let order = trim(da).cmp(&trim(db)).then_with(|| {
                    let (ta, tb) = (&da[da.len() - trim(da)..], &db[db.len() - trim(db)..]);
                    ta.cmp(tb)
                });
                if order != std::cmp::Ordering::Equal {
                    return order;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A file as uWSGI 2.0.30 wrote it for `uwsgi.spool({b'a': b'1'}, body=b'xyz')`: header
    /// 17, size 6 (LE), 0; then `01 00 'a' 01 00 '1'`; then the body.
    const UWSGI_FILE: &[u8] = b"\x11\x06\x00\x00\x01\x00a\x01\x001xyz";

    #[test]
    fn reads_a_file_uwsgi_wrote() {
        let task = decode(UWSGI_FILE).unwrap();
        assert_eq!(task.vars, vec![(&b"a"[..], &b"1"[..])]);
        assert_eq!(task.body, b"xyz");
        assert_eq!(task.get(b"a"), Some(&b"1"[..]));
    }

    #[test]
    fn writes_what_uwsgi_writes() {
        assert_eq!(encode(&[(b"a", b"1")], b"xyz").unwrap(), UWSGI_FILE);
    }

    fn check_error(file: &[u8], expected: DecodeSpoolError) {
        assert_eq!(decode(file), Err(expected), "{file:?}");
    }

    #[test]
    fn refuses_what_is_not_a_whole_spool_file() {
        check_error(
            b"\x11\x07",
            DecodeSpoolError::Truncated { len: 2, needed: 4 },
        );
        check_error(
            b"\x11\x07\x00\x00\x01\x00a",
            DecodeSpoolError::Truncated { len: 7, needed: 11 },
        );
        check_error(
            b"\x00\x00\x00\x00",
            DecodeSpoolError::NotASpoolFile { modifier1: 0 },
        );
        assert!(matches!(
            decode(b"\x11\x03\x00\x00\x00\x00a"),
            Err(DecodeSpoolError::Vars(_))
        ));
    }

    #[test]
    fn args_are_limited_to_64k() {
        let big = vec![b'x'; 70_000];
        assert!(encode(&[(b"k", &big)], b"").is_err());
        // The body has no limit.
        assert!(encode(&[(b"k", b"v")], &big).is_ok());
    }

    #[test]
    fn names() {
        assert_eq!(
            task_file_name("web1", 42, 3, 17, 1_700_000_000, 5),
            "uwsgi_spoolfile_on_web1_42_3_17_1700000000_5"
        );
    }

    #[test]
    fn routing_reads_spooler_priority_and_at() {
        let vars: Vec<(&[u8], &[u8])> = vec![
            (b"spooler", b"/q"),
            (b"priority", b"3"),
            (b"at", b"1700000000.75"),
            (b"x", b"y"),
        ];
        assert_eq!(
            routing(&vars),
            Routing {
                spooler: Some(b"/q"),
                priority: Some(b"3"),
                at: Some(1_700_000_000)
            }
        );
        assert_eq!(routing(&[(b"at", b"soon")]).at, None);
        assert!(is_priority(b"10"));
        assert!(!is_priority(b"../x"));
        assert!(!is_priority(b""));
    }

    #[test]
    fn version_order() {
        let mut names = vec![
            "uwsgi_spoolfile_on_h_1_10_0_0_0",
            "10",
            "2",
            "uwsgi_spoolfile_on_h_1_9_0_0_0",
        ];
        names.sort_by(|a, b| version_cmp(a, b));
        assert_eq!(
            names,
            vec![
                "2",
                "10",
                "uwsgi_spoolfile_on_h_1_9_0_0_0",
                "uwsgi_spoolfile_on_h_1_10_0_0_0"
            ]
        );
    }

    proptest! {
        #[test]
        fn round_trip(
            vars in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 1..20), proptest::collection::vec(any::<u8>(), 0..40)),
                0..10,
            ),
            body in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let borrowed: Vec<(&[u8], &[u8])> =
                vars.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
            let file = encode(&borrowed, &body).unwrap();
            let task = decode(&file).unwrap();
            prop_assert_eq!(task.vars, borrowed);
            prop_assert_eq!(task.body, body.as_slice());
        }
    }
}
