//! The README's option table is generated from the one option table in the code; this test
//! keeps the two equal. `KAISER_UPDATE_README=1 cargo test --test readme` rewrites it.

use std::path::Path;

const BEGIN: &str = "<!-- options:begin -->\n";
const END: &str = "<!-- options:end -->";

#[test]
fn readme_option_table_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md is readable");
    let start = readme
        .find(BEGIN)
        .expect("README.md has the options:begin marker")
        + BEGIN.len();
    let end = readme
        .find(END)
        .expect("README.md has the options:end marker");
    let expected = kaiser::config::option_table_markdown();
    let current = &readme[start..end];
    if current == expected {
        return;
    }
    if std::env::var_os("KAISER_UPDATE_README").is_some() {
        let updated = format!("{}{}{}", &readme[..start], expected, &readme[end..]);
        std::fs::write(&path, updated).expect("README.md is writable");
        return;
    }
    panic!(
        "the README's option table differs from src/config/options.rs; \
         run `KAISER_UPDATE_README=1 cargo test --test readme` and commit README.md"
    );
}
