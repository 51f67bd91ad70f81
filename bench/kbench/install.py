"""Everything a run needs, installed if missing: nginx and wrk from Debian, the peers in
target/bench-venv (made with /usr/bin/python3 from bench/requirements.txt), kaiser --release.

Idempotent: a second run checks and does nothing. The nginx package may start a system
service; the benchmark never uses it (it starts its own nginx on a free loopback port), and
scripts/setup-test-env is where the project decides what to do with that service.
"""

import hashlib
import os
import shutil
import subprocess
import sys

SYSTEM_PYTHON = "/usr/bin/python3"


def say(message):
    print(f"bench: {message}", flush=True)


def _run(argv, **kwargs):
    say("$ " + " ".join(argv))
    subprocess.run(argv, check=True, **kwargs)


def _as_root(argv):
    if os.geteuid() == 0:
        return argv
    if shutil.which("sudo"):
        return ["sudo", *argv]
    raise SystemExit(f"bench: not root and no sudo; install yourself: {' '.join(argv)}")


def debian_packages():
    """nginx and wrk (plus ss and taskset, which every Debian has)."""
    missing = []
    if not (shutil.which("nginx") or os.access("/usr/sbin/nginx", os.X_OK)):
        missing.append("nginx")
    if not shutil.which("wrk"):
        missing.append("wrk")
    for tool, package in (("ss", "iproute2"), ("taskset", "util-linux")):
        if not shutil.which(tool):
            missing.append(package)
    if not missing:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = _as_root(["apt-get", "install", "-y", "-q", *missing])
    try:
        _run(install, env=env)
    except subprocess.CalledProcessError:
        say("apt-get install failed; running apt-get update and retrying")
        _run(_as_root(["apt-get", "update", "-q"]), env=env)
        _run(install, env=env)


def peers_venv(repo_root):
    venv = os.path.join(repo_root, "target", "bench-venv")
    requirements = os.path.join(repo_root, "bench", "requirements.txt")
    with open(requirements, "rb") as pins:
        pins_hash = hashlib.sha256(pins.read()).hexdigest()
    python_version = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    wanted = f"python={python_version} requirements={pins_hash}\n"
    stamp = os.path.join(venv, ".kbench-stamp")
    try:
        with open(stamp) as existing:
            if existing.read() == wanted and os.access(os.path.join(venv, "bin", "uwsgi"), os.X_OK):
                return venv
    except OSError:
        pass
    say(f"creating {venv} with {SYSTEM_PYTHON} (Python {python_version}); uWSGI compiles, this takes a few minutes")
    shutil.rmtree(venv, ignore_errors=True)
    _run([SYSTEM_PYTHON, "-m", "venv", venv])
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    _run([os.path.join(venv, "bin", "pip"), "install", "--no-input", "-q", "-r", requirements], env=env)
    with open(stamp, "w") as out:
        out.write(wanted)
    return venv


def build_kaiser(repo_root):
    say("building kaiser (cargo build --release)")
    _run(["cargo", "build", "--release", "--quiet", "--bin", "kaiser"], cwd=repo_root)
    return os.path.join(repo_root, "target", "release", "kaiser")


def find_binary(name):
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit(f"bench: `{name}` not found after installing it")


def everything(repo_root, build=True, kaiser=None):
    """Returns (kaiser, venv, nginx, wrk) paths. `kaiser`: a binary to measure instead of this
    checkout's release build (say, another commit's, for a before/after comparison)."""
    if sys.platform != "linux":
        raise SystemExit("bench: Linux only (it reads /proc and pins with taskset)")
    debian_packages()
    venv = peers_venv(repo_root)
    if kaiser is None:
        kaiser = build_kaiser(repo_root) if build else os.path.join(repo_root, "target", "release", "kaiser")
    if not os.access(kaiser, os.X_OK):
        raise SystemExit(f"bench: {kaiser} is missing or not executable")
    return kaiser, venv, find_binary("nginx"), find_binary("wrk")
