//! Log output: `tracing` to stderr, one line per event, with the role's span (`vassal`,
//! `worker`, `emperor`) on every line. Under journald (`JOURNAL_STREAM` set) timestamps are
//! left to the journal. `KAISER_LOG=debug` (or trace, warn, error) sets the level.

use tracing::level_filters::LevelFilter;

pub fn init() {
    let level = match std::env::var("KAISER_LOG").ok().as_deref() {
        Some("trace") => LevelFilter::TRACE,
        Some("debug") => LevelFilter::DEBUG,
        Some("warn") => LevelFilter::WARN,
        Some("error") => LevelFilter::ERROR,
        _ => LevelFilter::INFO,
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        .with_max_level(level);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}
