//! TEMPORARY main for the `emperor` branch: the lead owns main.rs and replaces this with the
//! real role dispatch (config::load → emperor::run when `emperor` is set). It only knows the
//! emperor's own flags, enough to drive `tests/emperor.rs`.

use std::time::Duration;

use kaiser::config::{Action, Config};

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let mut config = emperor_config();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&flag));
        match flag.as_str() {
            "--emperor" => config.emperor.push(value()),
            "--emperor-stats" => config.emperor_stats = Some(value()),
            "--emperor-tyrant" => config.emperor_tyrant = true,
            "--emperor-throttle" => config.emperor_throttle = millis(&value()),
            "--emperor-max-throttle" => config.emperor_max_throttle = millis(&value()),
            "--reload-mercy" => {
                config.reload_mercy = Duration::from_secs(value().parse().unwrap_or(30))
            }
            "--vassals-include" => config.vassals_include.push(value()),
            "--vassals-include-before" => config.vassals_include_before.push(value()),
            "--vassals-inherit" => config.vassals_inherit.push(value()),
            "--vassals-inherit-before" => config.vassals_inherit_before.push(value()),
            _ => usage(&flag),
        }
    }
    if let Err(error) = kaiser::emperor::run(&config) {
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        eprintln!("kaiser: {message}");
        std::process::exit(1);
    }
}

fn millis(text: &str) -> Duration {
    Duration::from_millis(text.parse().unwrap_or(1000))
}

fn usage(flag: &str) -> ! {
    eprintln!("temporary emperor main: unknown or incomplete flag `{flag}`");
    std::process::exit(1)
}

fn emperor_config() -> Config {
    Config {
        action: Action::Run,
        files: Vec::new(),
        name: "kaiser".into(),
        strict: false,
        wsgi_file: None,
        module: None,
        callable: "application".into(),
        chdir: None,
        pythonpath: Vec::new(),
        home: None,
        env: Vec::new(),
        need_app: true,
        lazy_apps: false,
        processes: 1,
        threads: 1,
        worker_reload_mercy: Duration::from_secs(60),
        reload_mercy: Duration::from_secs(30),
        pidfile: None,
        vacuum: false,
        uid: None,
        gid: None,
        sockets: Vec::new(),
        chmod_socket: None,
        chown_socket: None,
        listen: 100,
        buffer_size: 4096,
        post_buffering: 0,
        socket_timeout: Duration::from_secs(4),
        disable_logging: false,
        max_requests: 0,
        max_requests_delta: 0,
        harakiri: None,
        touch_reload: Vec::new(),
        master_fifo: Vec::new(),
        stats: None,
        emperor: Vec::new(),
        emperor_throttle: Duration::from_millis(1000),
        emperor_max_throttle: Duration::from_millis(180_000),
        emperor_stats: None,
        emperor_tyrant: false,
        vassals_include: Vec::new(),
        vassals_include_before: Vec::new(),
        vassals_inherit: Vec::new(),
        vassals_inherit_before: Vec::new(),
    }
}
