//! uWSGI's `exec://` scheme for `@(…)` file reads: `@(exec://COMMAND)` is the command's
//! standard output, as `uwsgi_scheme_exec` gives it (`/bin/sh -c`, the exit status ignored).
//!
//! This runs a command while the configuration is read, as uWSGI does; it must not be used
//! for anything but a value the config file itself asked for.

use std::process::{Command, Stdio};

/// The command in `exec://COMMAND`, if `path` is one.
pub(crate) fn exec_command(path: &str) -> Option<&str> {
    path.strip_prefix("exec://")
}

/// Runs `command` with `/bin/sh -c` in `cwd` and returns its standard output (standard
/// error goes to kaiser's); a command that cannot start is an error.
pub(crate) fn run(command: &str, cwd: &std::path::Path) -> Result<String, String> {
    let output = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|error| format!("cannot run `{command}` for `@(exec://{command})`: {error}"))?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_gives_the_standard_output() {
        assert_eq!(exec_command("exec://echo hi"), Some("echo hi"));
        assert_eq!(exec_command("/etc/hosts"), None);
        let out = run(
            "printf '%s' \"$(basename $(dirname /a/b/c))\"",
            std::path::Path::new("/"),
        )
        .unwrap();
        assert_eq!(out, "b");
        // A failing command still gives what it printed, as in uWSGI.
        assert_eq!(
            run("echo partial; exit 3", std::path::Path::new("/")).unwrap(),
            "partial\n"
        );
    }
}
