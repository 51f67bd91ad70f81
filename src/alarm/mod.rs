//! The alarm subsystem (uWSGI's `core/alarm.c`): named alarms (`alarm = NAME PLUGIN:ARG`)
//! raised by triggers, each with a message.
//!
//! - [`Alarms`] (`raise.rs`) runs an alarm's action — `cmd:` a shell command with the message
//!   on its stdin, `signal:` a uWSGI signal, `log:` a log line, `mule:` a mule message — and
//!   keeps uWSGI's anti-storm rule: the same message raises the same alarm at most once per
//!   `alarm-freq` seconds.
//! - [`LogWatch`] (`log_watch.rs`) is the `log-alarm`/`not-log-alarm` trigger, run by the
//!   log master on every line it writes (as uWSGI's log master does). It runs `cmd:` and
//!   `log:` alarms there and hands `signal:` and `mule:` alarms to the vassal master over
//!   [`Link`] (`link.rs`), because the signal table and the mule mailboxes are made after
//!   the log master forks.
//! - The vassal master raises `alarm-backlog` (a listen queue full, checked once a second)
//!   and `alarm-segfault` (a worker killed by SIGSEGV), and the alarms handed over the link
//!   (`vassal/master/alarming.rs`).
//!
//! It does not decide what the options mean (`config/alarms.rs` types them) and never
//! blocks on a command: a `cmd:` alarm is a child that is reaped later, not waited for.

mod link;
mod log_watch;
mod raise;

pub use link::{receive as received_from_log_master, Link};
pub use log_watch::LogWatch;
pub use raise::{Alarms, Raised};
