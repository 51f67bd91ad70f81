//! The README's run command governs `vassals-example/`: every example must load and import
//! its app, or the first thing a new user sees is an error.

use std::path::Path;
use std::process::Command;

#[test]
fn every_example_vassal_passes_check_config() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("vassals-example");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("vassals-example/ exists") {
        let path = entry.expect("readable directory entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("ini") {
            continue;
        }
        let output = Command::new(env!("CARGO_BIN_EXE_kaiser"))
            .arg("--check-config")
            .arg("--ini")
            .arg(&path)
            .output()
            .expect("kaiser runs");
        assert!(
            output.status.success(),
            "`kaiser --check-config --ini {}` failed ({}):\n{}",
            path.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        checked += 1;
    }
    assert!(
        checked >= 2,
        "expected at least two example vassals, found {checked}"
    );
}
