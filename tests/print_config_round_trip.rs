//! `kaiser --print-config` against the real binary: what it prints is what kaiser understood
//! of the files (includes, `%(…)`, `$(…)`, `@(…)` and `if-*` blocks expanded), options that
//! used to be left out (routes, loggers, zerg, subscriptions) included, and printing its own
//! output again gives the same text. The option-by-option comparison of the two `Config`s is
//! the unit test `config::tests::show_round_trip`.

mod common;

use std::time::Duration;

use common::*;

const EXIT: Duration = Duration::from_secs(20);

/// `kaiser --print-config --ini INI` with `env`: its stdout, after it exited 0 and wrote
/// nothing else (no warning).
fn print_config(ini: &std::path::Path, env: &[(&str, &str)]) -> String {
    let ini = ini.display().to_string();
    let mut kaiser = Kaiser::spawn_with(&["--print-config", "--ini", &ini], |command| {
        for (name, value) in env {
            command.env(name, value);
        }
    });
    let status = kaiser.expect_exit(EXIT);
    assert_eq!(
        status.code(),
        Some(0),
        "--print-config {ini}:\n{}",
        kaiser.logs()
    );
    assert!(kaiser.wait_output_closed(EXIT), "output never closed");
    kaiser.logs()
}

#[test]
fn print_config_shows_what_the_files_expanded_to_and_reads_back_the_same() {
    let dir = TempDir::new("print-config");
    let d = dir.path().display().to_string();
    dir.write("common.ini", "[uwsgi]\nprocesses = 3\nlog-master = true\n");
    dir.write("host.txt", "example.org\n");
    let ini = dir.write(
        "app.ini",
        format!(
            "[uwsgi]\n\
         set-ph = port=9090\n\
         include = {d}/common.ini\n\
         http-socket = 127.0.0.1:%(port)\n\
         if-env = KAISER_PC_STAGE\n\
         route-host = ^$(KAISER_PC_STAGE)\\.@({d}/host.txt)$ goto:known\n\
         endif\n\
         route = ^/old/(.*)$ redirect-301:/new/$1\n\
         route-label = known\n\
         response-route-run = addheader:X-Port: %(port)\n\
         collect-header = X-Sendfile X_SENDFILE\n\
         log-format = %(addr) %(method) %(uri) %(status)\n\
         logger = app file:%dapp.log\n\
         log-route = app ^app:\n\
         log-encoder = format [${{strftime:%%Y}}] ${{msg}}\n\
         zerg = %dzerg.sock\n\
         zerg-fallback = true\n\
         max-worker-connections = 512\n\
         subscribe-to = 127.0.0.1:7171:%(port).example\n"
        ),
    );
    let shown = print_config(&ini, &[("KAISER_PC_STAGE", "www")]);
    assert_eq!(
        shown,
        format!(
            "[uwsgi]\n\
             processes = 3\n\
             http-socket = 127.0.0.1:9090\n\
             max-worker-connections = 512\n\
             log-format = %%(addr) %%(method) %%(uri) %%(status)\n\
             log-master = true\n\
             logger = app file:{d}/app.log\n\
             log-route = app ^app:\n\
             log-encoder = format [${{strftime:%%Y}}] ${{msg}}\n\
             route-host = ^www\\.example.org$ goto:known\n\
             route = ^/old/(.*)$ redirect-301:/new/$1\n\
             route-label = known\n\
             response-route-run = addheader:X-Port: 9090\n\
             collect-header = X-Sendfile X_SENDFILE\n\
             zerg = {d}/zerg.sock\n\
             zerg-fallback = true\n\
             subscribe2 = server=127.0.0.1:7171,key=9090.example,weight=0,modifier1=0,modifier2=0\n"
        )
    );
    // Its own output, loaded by the binary, prints the same text: nothing lost, nothing
    // expanded twice (`%%` reads back as `%`).
    let again = print_config(&dir.write("shown.ini", &shown), &[]);
    assert_eq!(again, shown);
}
