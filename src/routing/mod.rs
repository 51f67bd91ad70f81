//! uWSGI's internal routing (`route`, `route-if`, `route-run`, `route-label`, and the
//! `error-route*`, `response-route*` and `final-route*` tables): rules read once with the
//! configuration, run by each worker on each request before the app.
//!
//! - `rules.rs` parses and checks the lines (regular expressions compiled, action and
//!   condition names known); it imports nothing else from the crate, so `config` types the
//!   options with it and reports a bad rule with its file and line;
//! - `template.rs` reads `$1` and `${VAR}` / `${func[arg]}` in an action's text;
//! - `eval.rs` runs a table against a request (sans-I/O: files, the clock and `crypt(3)`
//!   come through its `Facts` port); `basicauth.rs` is `basicauth:`'s decision;
//! - `serve.rs` is the worker's side: it runs the tables around the app, answers what a
//!   route answers itself, and edits the app's response head.
//!
//! It must not parse HTTP or uwsgi packets (the worker hands it the CGI variables), and a
//! worker without routes must not pay for it beyond one branch.

mod basicauth;
mod eval;
pub mod rules;
mod serve;
mod template;

pub use rules::RouteTables;
pub use serve::{serve, take_do_not_log, take_remote_user, take_routed};
