//! kaiser: a Python application server and Emperor-style supervisor that runs existing
//! uWSGI deployments unchanged. See ARCHITECTURE.md for the map of this crate.
//!
//! The binary (`main.rs`) picks a role; everything else lives in these modules. The crate is
//! also a library so that fuzz targets and benchmarks can reach the sans-I/O codecs.

pub mod alarm;
pub mod cache;
pub mod check;
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
