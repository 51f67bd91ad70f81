//! Real uWSGI configs from public repositories (tests/fixtures/real-configs/, one file each,
//! its source in a comment line and in SOURCES.tsv) read by the real binary's
//! `--print-config`, which parses and validates everything a config says without binding a
//! socket, touching the app or needing the paths it names.
//!
//! The goal it holds kaiser to: no option found in a real config is refused. Every fixture
//! must be accepted, except the few listed in [`GENUINE_MISTAKES`] (not runnable as they
//! are) and [`KNOWN_GAPS`] (features kaiser lacks, each with its reason); those must fail
//! or warn with the message given there, so closing a gap or a new regression shows here. An option
//! kaiser does not know may only be warned about when uWSGI does not know it either
//! ([`NOT_UWSGI_OPTIONS`]: typos and placeholders), so a uWSGI option that real configs use
//! and kaiser lacks fails here.
//!
//! Configs read `$(NAME)` from the environment their containers give them: the test sets
//! the ones each config names from tests/fixtures/real-configs-env/env, with that directory's `bin/` and
//! `venv/bin/` first on PATH (for a config that runs `@(exec://which …)`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const EXIT: Duration = Duration::from_secs(20);

/// Fixtures whose file has no `[uwsgi]` section: the section their project loads.
const SECTIONS: &[(&str, &str)] = &[("MikroWizard+mikroman__conf__uwsgi.ini", "uwsgi-production")];

/// Fixtures whose comments say which placeholders and options the command line must give:
/// the survey gives them.
const COMMAND_LINE: &[(&str, &[&str])] = &[
    ("Slicer+slicer_download__etc__uwsgi.ini", SLICER_ARGS),
    (
        "KitwareMedical+slicer-extensions-legacy-webapp__etc__uwsgi.ini",
        SLICER_ARGS,
    ),
];
const SLICER_ARGS: &[&str] = &[
    "--set-ph",
    "root_dir=/srv/slicer",
    "--set-ph",
    "log_dir=/var/log/slicer",
    "--set-ph",
    "virtualenv_dir=/srv/slicer/venv",
    "--set-ph",
    "http_port=8080",
    "--pidfile",
    "/run/slicer.pid",
];

/// Fixtures that are not runnable as they are, with the error kaiser must give and why.
const GENUINE_MISTAKES: &[(&str, &str, &str)] = &[
    (
        "18mr+call-congress__uwsgi.ini",
        "the line `=======` has no key before `=`",
        "committed with git merge-conflict markers; uWSGI reads `=======` as an option with an empty name and runs whichever side comes last, kaiser refuses the line",
    ),
    (
        "ReutersMedia+pyword2vec__conf__uwsgi.ini",
        "processes: expected a whole number, got `__NUM_PYTHON_PROCESSES__`",
        "a template whose `__NUM_…__` markers a deploy script replaces; uWSGI's `atoi` would read 0",
    ),
    (
        "20tab+django-uwsgi-template-legacy__uwsgi.ini",
        "ini: cannot read",
        "a cookiecutter template: it includes `{{ project_name }}/static.ini`, which exists only once the template is rendered (uWSGI fails the same way)",
    ),
    (
        "micahhausler+fig-demo__uwsgi.json",
        "invalid JSON",
        "a trailing comma after the last member: uWSGI's JSON parser (jansson) refuses the file too",
    ),
];

/// Fixtures that use what kaiser does not have, with what kaiser must say and why: the
/// survey's known gaps (README's migration notes list them).
const KNOWN_GAPS: &[(&str, &str, &str)] = &[
    (
        "CalPolyResDev+uh_internal_project__conf__uwsgi.ini",
        "plugin `sentry` is not available",
        "the third-party uwsgi-sentry alarm plugin, which posts to Sentry over HTTPS; an `alarm = NAME cmd:…` running sentry-cli does the same",
    ),
    (
        "unbit+uwsgi.it__emperor.ini",
        "`https` is refused",
        "a hosting platform's Emperor: TLS termination (refused by design), the tuntap router and HTTP subscriptions; it also includes /etc/uwsgi/local.ini from the host",
    ),
];

/// Keys real configs hold that are not uWSGI options (uWSGI keeps them as placeholders and
/// ignores them too): kaiser warns about each.
const NOT_UWSGI_OPTIONS: &[&str] = &[
    "vaccum",           // `vacuum` misspelt (addons-server, meniscus)
    "vaccuum",          // the same (jupyter-jsc)
    "zuid",             // `uid` with a stray letter (PoetryCorpus)
    "chmod-sock",       // `chmod-socket` cut short (cosmos-cache)
    "optmize",          // `optimize` misspelt (arthurc0102/my-site)
    "strict-mode",      // meant `strict` (Subscribie)
    "running-circleci", // placeholders: set, or read with %(…), or never used
    "app",
    "base_dir",
    "name",
    "port",              // platform.sh examples: not an option in any uWSGI version
    "exec-pre",          // not a uWSGI option (Dispatcharr): `exec-pre-app` is
    "log-buffering",     // not a uWSGI option (Dispatcharr)
    "log-backupcount",   // not a uWSGI option (mikroman): `log-backupname` is
    "number-of-threads", // UWSGI_NUMBER_OF_THREADS read as an option, as uWSGI does
    "user",              // UWSGI_USER and UWSGI_GROUP likewise (kobotoolbox)
    "group",
    "static-map /static", // `static-map /static=…`: the `=` is missing (ArchiveBox)
    "vassals-set socket-chmod", // `vassals-set KEY = VALUE`: the key swallowed the space
    "vassals-set idle",
    "vassals-set die-on-idle",
    "vassals-set cheaper-algo",
    "guid", // `gid` misspelt (ckan)
];

fn fixtures_dir() -> PathBuf {
    repo_root().join("tests/fixtures/real-configs")
}

fn env_dir() -> PathBuf {
    repo_root().join("tests/fixtures/real-configs-env")
}

fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("the fixtures directory is readable")
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != "SOURCES.tsv")
        .collect();
    names.sort();
    names
}

fn survey_env() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(env_dir().join("env")).expect("env file");
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, value) = line.split_once('=').expect("NAME=VALUE");
            (name.to_string(), value.to_string())
        })
        .collect()
}

/// `kaiser --print-config FIXTURE[:SECTION]` in the fixtures directory with the survey
/// environment: (exit code, everything it printed).
fn print_config(name: &str, env: &[(String, String)]) -> (Option<i32>, String) {
    let target = match SECTIONS.iter().find(|(file, _)| *file == name) {
        Some((file, section)) => format!("{file}:{section}"),
        None => name.to_string(),
    };
    let extra: &[&str] = COMMAND_LINE
        .iter()
        .find(|(file, _)| *file == name)
        .map_or(&[], |(_, args)| args);
    let mut command = Command::new(kaiser_bin());
    command
        .arg("--print-config")
        .arg(&target)
        .args(extra)
        .current_dir(fixtures_dir())
        .env_clear()
        .env(
            "PATH",
            format!(
                "{}:{}:/usr/local/bin:/usr/bin:/bin",
                env_dir().join("venv/bin").display(),
                env_dir().join("bin").display()
            ),
        );
    // Only the variables this config reads: uWSGI (and kaiser) also read every `UWSGI_*`
    // variable as an option, so the others would change configs that do not mention them.
    let text = std::fs::read_to_string(fixtures_dir().join(name)).unwrap();
    for (key, value) in env {
        if text.contains(&format!("$({key}")) {
            command.env(key, value);
        }
    }
    let mut kaiser = LoggedProcess::spawn(name, command);
    let status = kaiser.expect_exit(EXIT);
    assert!(
        kaiser.wait_output_closed(EXIT),
        "{name}: output never closed"
    );
    (status.code(), strip_ansi(&kaiser.logs()))
}

/// The key of each `unknown option` warning in `logs`.
fn unknown_keys(logs: &str) -> Vec<String> {
    logs.lines()
        .filter(|line| line.contains("unknown option"))
        .filter_map(|line| {
            // `kaiser: warning: FILE:LINE: KEY: unknown option, ignored`
            let before = line.split(": unknown option").next()?;
            Some(before.rsplit(": ").next()?.to_string())
        })
        .collect()
}

#[test]
fn every_public_config_is_accepted() {
    let names = fixture_names();
    assert!(
        names.len() >= 150,
        "the corpus holds {} configs; it is meant to hold at least 150",
        names.len()
    );
    let env = survey_env();
    let mut failures = Vec::new();
    let mut unchanged = 0;
    for name in &names {
        let (code, logs) = print_config(name, &env);
        if let Some((_, expected, why)) = KNOWN_GAPS.iter().find(|(f, _, _)| f == name) {
            if !logs.contains(expected) {
                failures.push(format!(
                    "{name}: a known gap ({why}) no longer shows `{expected}`; if kaiser closed it, move it out of KNOWN_GAPS:\n{logs}"
                ));
            }
            continue;
        }
        if let Some((_, expected, why)) = GENUINE_MISTAKES.iter().find(|(f, _, _)| f == name) {
            if code == Some(0) || !logs.contains(expected) {
                failures.push(format!(
                    "{name}: expected to fail with `{expected}` ({why}), got exit {code:?}:\n{logs}"
                ));
            }
            continue;
        }
        if code != Some(0) {
            failures.push(format!("{name}: exit {code:?}:\n{logs}"));
            continue;
        }
        let unknown: Vec<String> = unknown_keys(&logs)
            .into_iter()
            .filter(|key| !NOT_UWSGI_OPTIONS.contains(&key.as_str()))
            .collect();
        if !unknown.is_empty() {
            failures.push(format!(
                "{name}: unknown options {unknown:?} (add them to the option table, or to NOT_UWSGI_OPTIONS if uWSGI does not know them either):\n{logs}"
            ));
            continue;
        }
        unchanged += 1;
    }
    eprintln!(
        "{unchanged} of {} public configs accepted unchanged; {} refused as mistakes, {} known gaps",
        names.len(),
        GENUINE_MISTAKES.len(),
        KNOWN_GAPS.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} configs:\n\n{}",
        failures.len(),
        names.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_fixture_names_its_source() {
    let sources = std::fs::read_to_string(fixtures_dir().join("SOURCES.tsv")).unwrap();
    for name in fixture_names() {
        let listed = sources
            .lines()
            .any(|line| line.split('\t').next() == Some(&name));
        assert!(listed, "{name} is not listed in SOURCES.tsv");
        let text = std::fs::read_to_string(fixtures_dir().join(&name)).unwrap();
        // JSON has no comments: SOURCES.tsv alone names those.
        if !name.ends_with(".json") {
            assert!(
                text.contains("source: github.com/"),
                "{name} has no source comment"
            );
        }
    }
    for (name, _, _) in GENUINE_MISTAKES.iter().chain(KNOWN_GAPS) {
        assert!(Path::new(&fixtures_dir().join(name)).exists(), "{name}");
    }
}
