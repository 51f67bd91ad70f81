//! The `kaiser` binary: everything it does is `kaiser::cli::main`, which a hosted master also
//! runs inside `python3` (`python/hosted.rs`).

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(kaiser::cli::main(std::env::args_os().skip(1).collect()))
}
