//! kaiser: a Python application server and Emperor-style supervisor that runs existing
//! uWSGI deployments unchanged. See ARCHITECTURE.md for the map of this crate.
//!
//! The binary (`main.rs`) runs `cli::main`, which picks a role; everything else lives in these
//! modules. The crate is also a library so that fuzz targets and benchmarks can reach the
//! sans-I/O codecs, and, built as a cdylib with the `hosted` feature, the extension module a
//! hosted master runs inside `python3` (`python/hosted.rs`).

pub mod alarm;
pub mod cache;
pub mod check;
pub mod cli;
pub mod config;
pub mod emperor;
pub mod hooks;
pub mod jail;
pub mod logging;
pub mod mule;
pub mod protocol;
pub mod python;
pub mod routing;
pub mod signals;
pub mod spooler;
pub mod sys;
pub mod vassal;
pub mod worker;

// The extension module a hosted master runs in (`python/hosted.rs`, `scripts/build-hosted`).
#[cfg(feature = "hosted")]
hosted_module!(crate::cli::main);
