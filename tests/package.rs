//! The Debian package (packaging/build-deb): it builds with dpkg-deb, `dpkg -i` installs it
//! (checking its Depends against the packages really installed here), the installed binary
//! runs an Emperor whose vassal serves, its man page renders, and `dpkg -r` removes every
//! file it installed, leaving the admin's vassal files.
//!
//! dpkg runs on a private root (`--root` with a copy of this machine's status for the
//! dependencies), not on `/`: the test must not change the machine it runs on, nor take
//! dpkg's lock from other users of it. The binary packaged is the one under test (a debug
//! build here; the release build is packaged the same way).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"))
}

fn ok(command: &mut Command) -> String {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?} failed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn field(control: &str, name: &str) -> String {
    control
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in\n{control}"))
        .to_string()
}

/// A dpkg database under `root` knowing, of this machine's packages, only `packages`.
fn private_root(root: &Path, packages: &[&str]) {
    let admin = root.join("var/lib/dpkg");
    for dir in ["info", "updates", "triggers"] {
        std::fs::create_dir_all(admin.join(dir)).unwrap();
    }
    std::fs::write(admin.join("available"), "").unwrap();
    let arch = ok(Command::new("dpkg").arg("--print-architecture"));
    let status = std::fs::read_to_string("/var/lib/dpkg/status").unwrap();
    let mut kept = String::new();
    for stanza in status.split("\n\n") {
        let name = stanza
            .lines()
            .find_map(|l| l.strip_prefix("Package: "))
            .unwrap_or("");
        if packages.contains(&name) && stanza.contains("Status: install ok installed") {
            kept.push_str(stanza.trim_end());
            kept.push_str("\n\n");
            for list in [
                format!("{name}.list"),
                format!("{name}:{}.list", arch.trim()),
            ] {
                std::fs::write(admin.join("info").join(list), "").unwrap();
            }
        }
    }
    std::fs::write(admin.join("status"), kept).unwrap();
}

fn dpkg(root: &Path) -> Command {
    let mut command = Command::new("dpkg");
    command
        .arg(format!("--root={}", root.display()))
        // Maintainer scripts run on the host with DPKG_ROOT set (they do nothing then).
        .arg("--force-script-chrootless")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    command
}

/// Every file (not directory) under `root`, outside dpkg's own database.
fn files_under(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out.retain(|p| !p.starts_with(root.join("var/lib/dpkg")));
    out
}

#[test]
fn the_deb_installs_runs_a_vassal_and_removes_cleanly() {
    let dir = TempDir::new("deb");
    let built = ok(Command::new(repo_root().join("packaging/build-deb"))
        .args(["--binary", kaiser_bin(), "--out"])
        .arg(dir.join("out")));
    let deb = PathBuf::from(built.trim());
    assert!(deb.exists(), "{built}");

    let control = ok(Command::new("dpkg-deb").args(["--field"]).arg(&deb));
    assert_eq!(field(&control, "Package"), "kaiser");
    let depends = field(&control, "Depends");
    // The Python the binary embeds: the shared libpython3.11 it links, or (the default static
    // link) the standard library of the Python it was linked with.
    let python = depends
        .split(", ")
        .find(|d| *d == "libpython3.11" || d.starts_with("libpython3.11-stdlib (>= 3.11"))
        .unwrap_or_else(|| panic!("no Python in Depends: {depends}"))
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let contents = ok(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for path in [
        "./usr/bin/kaiser",
        "./lib/systemd/system/emperor.uwsgi.service",
        "./lib/systemd/system/kaiser@.socket",
        "./etc/uwsgi/vassals/",
        "./usr/share/man/man1/kaiser.1.gz",
    ] {
        assert!(
            contents.lines().any(|l| l.ends_with(path)),
            "{path} missing:\n{contents}"
        );
    }
    let depends: Vec<&str> = depends
        .split(", ")
        .map(|d| d.split(' ').next().unwrap())
        .collect();

    // Without that Python on the machine, dpkg refuses to configure it.
    let bare = dir.join("bare");
    let without: Vec<&str> = depends.iter().copied().filter(|d| *d != python).collect();
    private_root(&bare, &without);
    let refused = run(dpkg(&bare).arg("-i").arg(&deb));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains(&python),
        "installed without {python}: {stderr}"
    );

    let root = dir.join("root");
    private_root(&root, &depends);
    let installed = run(dpkg(&root).arg("-i").arg(&deb));
    let stderr = String::from_utf8_lossy(&installed.stderr);
    assert!(installed.status.success(), "dpkg -i: {stderr}");
    assert!(!stderr.contains("warning"), "dpkg -i: {stderr}");
    let status = ok(dpkg(&root).args(["-s", "kaiser"]));
    assert!(status.contains("Status: install ok installed"), "{status}");

    // The man page renders.
    let man = ok(Command::new("man")
        .arg("-l")
        .arg(root.join("usr/share/man/man1/kaiser.1.gz"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100"));
    assert!(
        man.contains("--http-socket") && man.contains("--emperor"),
        "{man}"
    );

    // The installed binary runs an Emperor over the installed vassals directory.
    let vassals = root.join("etc/uwsgi/vassals");
    std::fs::write(
        vassals.join("hello.ini"),
        format!(
            "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = {}\n",
            app("hello.py").display()
        ),
    )
    .unwrap();
    let mut command = Command::new(root.join("usr/bin/kaiser"));
    command
        .arg("--emperor")
        .arg(&vassals)
        .env("NO_COLOR", "1")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC");
    let mut emperor = LoggedProcess::spawn("installed kaiser", command);
    let addr = emperor
        .wait_for_addr("protocol=\"http\"", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", emperor.logs()));
    emperor.wait_for_log("vassal ready", START_TIMEOUT).unwrap();
    let response = http_get(addr, "/").unwrap();
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "Hello World")
    );
    emperor.signal(libc::SIGTERM);
    assert!(
        emperor.expect_exit(START_TIMEOUT).success(),
        "{}",
        emperor.logs()
    );

    // Removal takes every file the package installed and leaves the admin's vassal file.
    let removed = run(dpkg(&root).args(["-r", "kaiser"]));
    assert!(
        removed.status.success(),
        "dpkg -r: {}",
        String::from_utf8_lossy(&removed.stderr)
    );
    let left = files_under(&root);
    assert_eq!(left, vec![vassals.join("hello.ini")], "left after dpkg -r");
    assert!(!root.join("usr/bin").exists() && !root.join("lib/systemd").exists());
    let status = run(dpkg(&root).args(["-s", "kaiser"]));
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(!status.contains("install ok installed"), "{status}");
}
