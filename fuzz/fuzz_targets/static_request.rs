//! The static file decisions on arbitrary request bytes: path folding never yields a name
//! that climbs out of the root or holds a NUL or a backslash, and conditional and range
//! decisions never panic and never plan bytes outside the file.
#![no_main]

use kaiser::protocol::static_files::conditional::{self, Answer, Conditions, Extras, FileFacts};
use kaiser::protocol::static_files::{date, path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut fields = data.split(|&b| b == b'\n');
    let request_path = fields.next().unwrap_or_default();
    if let Ok(folded) = path::normalize(request_path) {
        assert!(!folded.starts_with(b"/"));
        assert!(!folded.contains(&0) && !folded.contains(&b'\\'));
        assert!(folded.split(|&b| b == b'/').all(|s| s != b".." && s != b"." && !s.is_empty())
            || folded.is_empty());
    }
    let size = u64::from(data.len() as u32) * 37;
    let facts = FileFacts { size, mtime: 1_700_000_000 };
    let conditions = Conditions {
        range: fields.next(),
        if_range: fields.next(),
        if_modified_since: fields.next(),
        if_none_match: fields.next(),
    };
    let _ = date::parse(conditions.if_modified_since.unwrap_or_default());
    let answer = conditional::decide(facts, &conditions);
    if let Answer::Partial { start, end } = answer {
        assert!(start <= end && end < size, "{answer:?} of {size}");
    }
    let plan = conditional::plan(answer, facts, &Extras::default());
    if let Some((offset, length)) = plan.body {
        assert!(offset + length <= size);
    }
});
