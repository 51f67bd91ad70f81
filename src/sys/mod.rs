//! Thin, safe wrappers over the Linux system calls kaiser needs: fork, signals, sockets,
//! epoll, process control, privileges and the sd_notify datagram.
//!
//! Almost every `unsafe` block of the crate outside `python/` lives here, each with a
//! `// SAFETY:` comment (ARCHITECTURE.md lists the few elsewhere). This module knows nothing
//! about config, Python or protocols; it does not log.

pub mod clock;
pub mod crypt;
pub mod fd;
pub mod file;
pub mod fork;
pub mod glob;
pub mod inotify;
pub mod lock;
pub mod mount;
pub mod net;
pub mod notify;
pub mod poll;
pub mod privileges;
pub mod process;
pub mod scm;
pub mod seqpacket;
pub mod shm;
pub mod signal;
pub mod sock_diag;
pub mod time;
