//! The vassal master: one per INI file. Single-threaded for its whole life, no async
//! runtime: a plain `poll` loop over a signalfd, the workers' readiness pipe and the emperor
//! channel, with timers from the loop's timeout.
//!
//! It binds the sockets (or adopts them across a reload), drops privileges, preloads the
//! app through the embedded Python, forks the workers and supervises them: respawn with a
//! fork-bomb guard, graceful and fast shutdown bounded by `worker-reload-mercy`, and a
//! graceful reload that re-execs the master with the listening sockets inherited, so no
//! connection is refused. It never serves a request itself.
//!
//! Reloads and recycling (issue 5) are spread over small modules the loop calls into: the
//! master FIFO (`fifo.rs`), touch files (`touch.rs`) and the replacement (recycling) policy
//! with its one-at-a-time queue (`replacement.rs`). Every child of the master is an entry of
//! one process table (`process_table.rs`).

mod carbon;
mod cheaper;
mod cron;
mod daemons;
pub(crate) mod fastrouter;
mod fifo;
mod harakiri;
mod idle;
mod master;
pub mod process_setup;
mod process_table;
mod prometheus;
pub mod python_setup;
mod replacement;
mod respawn;
mod socket_activation;
mod sockets;
mod spooler;
mod stats;
mod stats_server;
mod subscription;
mod touch;
mod zerg;
mod zergpool;

pub use master::{is_reexec, run, RunVassalError};
pub use sockets::LISTEN_FDS_ENV;

/// Process exit codes of a vassal master (the emperor reads them).
pub mod exit {
    pub const OK: i32 = 0;
    pub const CONFIG: i32 = 1;
    pub const FAILED_APP: i32 = 22;
}
