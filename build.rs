//! Link settings for the embedded Python that pyo3's own build script cannot give.
//!
//! By default kaiser links Debian's static `libpython3.11.a` (the optimised build Debian's own
//! `/usr/bin/python3` is made from; the shared `libpython3.11.so` is a slower build of the same
//! Python), through `PYO3_CONFIG_FILE` = `build/pyo3-debian-static.txt` set in
//! `.cargo/config.toml`. A static libpython needs two things from the final link, which only
//! this crate's build script can ask for:
//! - `-no-pie`: Debian compiles `libpython3.11.a` without `-fPIC`, as for its non-PIE
//!   `/usr/bin/python3`;
//! - `-Wl,-E`: the interpreter's symbols are exported, so that C extension modules
//!   (`lib-dynload/*.so`, markupsafe, psycopg, ...) find `Py*` in the executable, as they do in
//!   `python3`.
//!
//! A config file with `shared=true` (e.g. `build/pyo3-debian-shared.txt`) links
//! `libpython3.11.so` instead, and then this script adds nothing.

fn main() {
    println!("cargo:rerun-if-env-changed=PYO3_CONFIG_FILE");
    let Some(path) = std::env::var_os("PYO3_CONFIG_FILE") else {
        return;
    };
    println!("cargo:rerun-if-changed={}", path.to_string_lossy());
    let config = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading PYO3_CONFIG_FILE {}: {e}", path.to_string_lossy()));
    if config.lines().any(|line| line.trim() == "shared=false") {
        println!("cargo:rustc-link-arg=-no-pie");
        println!("cargo:rustc-link-arg=-Wl,-E");
    }
}
