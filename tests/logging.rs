//! Logging as uWSGI users configure it (issue 16): `log-format` with every variable, the
//! encoders, several loggers at once with routing, the log master (whole lines under load),
//! rotation and reopening (no request line lost or cut), FIFO `l`/`L`, and the two seed
//! configs with logging blocks. Every test runs the real binary against `tests/apps/chatty.py`
//! on a unix socket in its own directory and reads the files kaiser wrote.

mod common;

use std::collections::HashSet;
use std::net::UdpSocket;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{
    http_get_unix, http_request, request_bytes, venv, wait_for_unix, wait_until, Kaiser, TempDir,
    START_TIMEOUT,
};

const WAIT: Duration = Duration::from_secs(15);

struct Vassal {
    kaiser: Kaiser,
    dir: TempDir,
    socket: PathBuf,
}

impl Vassal {
    /// Starts `kaiser --ini app.ini` with `lines` after an http-socket in the test's
    /// directory, the test venv and `chatty.py`. `{dir}` in `lines` is that directory.
    fn start(label: &str, lines: &str) -> Vassal {
        Vassal::start_with(label, lines, |_| {})
    }

    fn start_with(
        label: &str,
        lines: &str,
        configure: impl FnOnce(&mut std::process::Command),
    ) -> Vassal {
        let dir = TempDir::new(label);
        let socket = dir.join("http.sock");
        let ini = format!(
            "[uwsgi]\nhttp-socket = {}\nhome = {}\nwsgi-file = {}\n{}\n",
            socket.display(),
            venv().display(),
            common::app("chatty.py").display(),
            lines.replace("{dir}", &dir.path().display().to_string())
        );
        let path = dir.join("app.ini");
        std::fs::write(&path, ini).expect("write app.ini");
        let kaiser = Kaiser::spawn_with(&["--ini", path.to_str().unwrap()], configure);
        wait_for_unix(&socket, START_TIMEOUT).unwrap_or_else(|e| panic!("{e}\n{}", kaiser.logs()));
        Vassal {
            kaiser,
            dir,
            socket,
        }
    }

    fn get(&self, target: &str) -> common::Response {
        http_get_unix(&self.socket, target)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.kaiser.logs()))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// SIGTERM, then waits until the master and the log master are gone (the log master
    /// ends once it wrote every queued line).
    fn stop(mut self) -> TempDir {
        self.kaiser.signal(libc::SIGTERM);
        self.kaiser.expect_exit(WAIT);
        assert!(
            self.kaiser.wait_output_closed(WAIT),
            "a process of the group still holds the output open"
        );
        self.dir
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// Waits until `path` contains `needle`; returns the file.
fn wait_for_file(path: &Path, needle: &str) -> String {
    wait_until(
        &format!("{} to contain {needle:?}", path.display()),
        WAIT,
        |last| {
            let text = read(path);
            if text.contains(needle) {
                return Ok(Some(text));
            }
            *last = text;
            Ok(None)
        },
    )
    .unwrap()
}

#[test]
fn log_format_prints_every_variable_and_a_dash_for_empty_ones() {
    let vassal = Vassal::start(
        "log-format",
        "log-format = REQ %(addr) [%(user)] %(method) %(uri) %(proto) %(status) size=%(size) rsize=%(rsize) hsize=%(hsize) ref=%(referer) ua=%(uagent) host=%(host) cl=%(cl) id=%(var.HTTP_X_REQUEST_ID) pid=%(pid) wid=%(wid) core=%(core) ms=%(msecs) us=%(micros) secs=%(secs) rt=%(rt) time=%(time) epoch=%(epoch) tmsecs=%(tmsecs) tmicros=%(tmicros) ltime=[%(ltime)] ctime=[%(ctime)] vars=%(vars) headers=%(headers) switches=%(switches) rss=%(rssM) vsz=%(vszM) ioerr=%(ioerr) metric=%(metric.x) logvar=%(nothing) pct=100%%",
    );
    let stream = UnixStream::connect(&vassal.socket).unwrap();
    let response = http_request(
        stream,
        &request_bytes(
            "POST",
            "/print?n=0",
            &[
                ("Connection", "close"),
                ("X-Request-Id", "r-42"),
                ("User-Agent", "ua/1"),
                ("Host", "example.org"),
            ],
            b"abc",
        ),
    )
    .unwrap();
    assert_eq!(response.status, 200);
    let line = vassal.kaiser.wait_for_log("REQ ", WAIT).unwrap();
    let rest = line.split_once("REQ ").unwrap().1;
    let field = |name: &str| -> String {
        rest.split(' ')
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
            .to_owned()
    };
    assert!(
        rest.starts_with("- [-] POST /print?n=0 HTTP/1.1 200 "),
        "a unix-socket peer has no address, no user: both print `-`: {line:?}"
    );
    assert_eq!(field("rsize"), "8");
    let (size, hsize): (u64, u64) = (
        field("size").parse().unwrap(),
        field("hsize").parse().unwrap(),
    );
    assert_eq!(size, hsize + 8);
    assert_eq!(field("ref"), "-");
    assert_eq!(field("ua"), "ua/1");
    assert_eq!(field("host"), "example.org");
    assert_eq!(field("cl"), "3");
    assert_eq!(field("id"), "r-42");
    assert_eq!(field("wid"), "1");
    assert_eq!(field("core"), "0");
    assert_eq!(field("headers"), "2");
    assert_eq!(field("switches"), "1");
    assert_eq!(field("ioerr"), "0");
    assert_eq!(field("metric"), "-");
    assert_eq!(field("logvar"), "-");
    assert_eq!(field("pct"), "100%");
    let pid: i32 = field("pid").parse().unwrap();
    assert_ne!(
        pid,
        vassal.kaiser.pid(),
        "the worker's pid, not the master's"
    );
    let micros: u64 = field("us").parse().unwrap();
    assert_eq!(field("ms").parse::<u64>().unwrap(), micros / 1000);
    assert_eq!(field("rt").parse::<u64>().unwrap(), micros / 1000);
    assert!(field("secs").contains('.'), "{line}");
    let time: u64 = field("time").parse().unwrap();
    let epoch: u64 = field("epoch").parse().unwrap();
    assert!(epoch >= time && epoch - time < 60, "{line}");
    assert_eq!(field("tmsecs").parse::<u64>().unwrap() / 1000, time);
    assert_eq!(field("tmicros").parse::<u64>().unwrap() / 1_000_000, time);
    assert!(field("rss").parse::<u64>().unwrap() > 0, "{line}");
    assert!(field("vsz").parse::<u64>().unwrap() > 0, "{line}");
    assert!(field("vars").parse::<u64>().unwrap() > 5, "{line}");
    // ltime: 03/Dec/2026:06:51:42 +0000
    let ltime = rest
        .split_once("ltime=[")
        .unwrap()
        .1
        .split_once(']')
        .unwrap()
        .0;
    assert_eq!(ltime.len(), 26, "{ltime:?}");
    assert_eq!(&ltime[2..3], "/");
    let ctime = rest
        .split_once("ctime=[")
        .unwrap()
        .1
        .split_once(']')
        .unwrap()
        .0;
    assert_eq!(ctime.len(), 24, "{ctime:?}");
    // The one worker logs a second request after everything it logged for the first.
    vassal.get("/status?code=200");
    vassal.kaiser.assert_no_log_before(
        0,
        "=> generated",
        "GET /status?code=200 HTTP/1.1 200",
        WAIT,
    );
}

#[test]
fn json_encoders_write_one_valid_json_object_per_line() {
    let vassal = Vassal::start(
        "json",
        "logger = file:{dir}/app.log\nlog-format = %(method) %(uri) %(status) \"quoted\"\nlog-req-encoder = json {\"year\":\"${strftime:%%Y}\",\"request\":\"${msg}\"}\nlog-req-encoder = nl\nlog-encoder = json",
    );
    vassal.get("/print?n=3&tag=say%22hi%22%5Cback");
    vassal.get("/status?code=404");
    let dir = vassal.stop();
    let text = read(&dir.join("app.log"));
    let mut requests = Vec::new();
    let mut messages = Vec::new();
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\n{text}"));
        if let Some(request) = value.get("request") {
            assert_eq!(value["year"].as_str().unwrap().len(), 4, "{line}");
            requests.push(request.as_str().unwrap().to_owned());
        } else {
            assert!(value["unix"].as_u64().unwrap() > 1_600_000_000, "{line}");
            messages.push(value["msg"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        requests,
        [
            "GET /print?n=3&tag=say%22hi%22%5Cback 200 \"quoted\"",
            "GET /status?code=404 404 \"quoted\""
        ]
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("say\"hi\"\\back 2 ") && m.ends_with(" end")),
        "the app's lines, joined from their three writes and JSON-escaped: {messages:?}"
    );
}

#[test]
fn several_loggers_at_once_with_routing() {
    let dir = TempDir::new("loggers-peers");
    let rsyslog = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let syslog_path = dir.join("log.sock");
    let syslog = UnixDatagram::bind(&syslog_path).unwrap();
    for socket in [&rsyslog, &udp] {
        socket.set_read_timeout(Some(WAIT)).unwrap();
    }
    syslog.set_read_timeout(Some(WAIT)).unwrap();
    let vassal = Vassal::start_with(
        "loggers",
        &format!(
            "logger = file:{{dir}}/all.log\nlogger = errors file:{{dir}}/errors.log\nlog-route = errors ^oops\nlogger = rsyslog:{},webapp\nlogger = socket:{}\nlogger = syslog:myapp,local3\nlog-format = REQ %(uri) %(status)",
            rsyslog.local_addr().unwrap(),
            udp.local_addr().unwrap()
        ),
        |command| {
            command.env("KAISER_SYSLOG_SOCKET", &syslog_path);
        },
    );
    vassal.get("/print?n=2&tag=oops");
    vassal.get("/print?n=2&tag=fine");
    vassal.get("/print?n=1&tag=oops-last");
    // The app's lines reach the log master in the order the worker printed them, so a
    // misrouted `oops 0` is in all.log before `fine 1`, and a misrouted `fine` line in
    // errors.log before `oops-last 0`. (Stopping the vassal instead would wait on the
    // syslog datagrams this test has not read yet.)
    wait_for_file(&vassal.path("all.log"), "REQ /print?n=2&tag=fine 200");
    let all = wait_for_file(&vassal.path("all.log"), "fine 1 ");
    let errors = wait_for_file(&vassal.path("errors.log"), "oops-last 0 ");
    assert!(errors.contains("oops 1 "), "{errors}");
    assert!(
        all.contains("fine 1 ") && all.contains("REQ /print?n=2&tag=oops 200"),
        "{all}"
    );
    assert!(
        !all.contains("oops 0") && !errors.contains("fine"),
        "a routed line goes to its logger only:\nall.log:\n{all}\nerrors.log:\n{errors}"
    );
    let mut buf = [0u8; 65536];
    let mut received = |socket: &dyn Fn(&mut [u8]) -> std::io::Result<usize>,
                        needle: &str|
     -> String {
        loop {
            let n = socket(&mut buf).unwrap_or_else(|e| panic!("no datagram with {needle:?}: {e}"));
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.contains(needle) {
                return text;
            }
        }
    };
    let packet = received(&|b| rsyslog.recv(b), "fine 1 ");
    assert!(packet.starts_with("<14>"), "{packet}");
    assert!(packet.contains(" webapp["), "{packet}");
    assert!(
        !packet.ends_with('\n'),
        "one datagram per line, without its newline: {packet:?}"
    );
    let packet = received(&|b| udp.recv(b), "REQ /print?n=2&tag=fine 200");
    assert_eq!(packet, "REQ /print?n=2&tag=fine 200");
    let packet = received(&|b| syslog.recv(b), "fine 0 ");
    assert!(
        packet.starts_with(&format!("<{}>", 19 * 8 + 6)),
        "local3.info: {packet}"
    );
    assert!(packet.contains(" myapp["), "{packet}");
}

#[test]
fn req_logger_takes_request_lines_and_log_4xx_works_with_it() {
    let vassal = Vassal::start(
        "req-logger",
        "logger = file:{dir}/app.log\nreq-logger = file:{dir}/access.log\ndisable-logging = true\nlog-4xx = true\nlog-format = REQ %(uri) %(status)",
    );
    vassal.get("/status?code=200");
    vassal.get("/status?code=404");
    vassal.get("/print?n=1&tag=app-line");
    vassal.get("/status?code=403");
    // Stopped, the log master has written every line: none can still be on its way.
    let dir = vassal.stop();
    let access = read(&dir.join("access.log"));
    let app = read(&dir.join("app.log"));
    assert!(app.contains("app-line 0"), "{app}");
    assert_eq!(
        access.lines().collect::<Vec<_>>(),
        ["REQ /status?code=404 404", "REQ /status?code=403 403"],
        "only the 4xx requests, and nothing else"
    );
    assert!(!app.contains("REQ "), "{app}");
}

/// Four workers print 3000-byte lines, each in three writes 1 ms apart, all at once:
/// through the log master every line arrives whole, none cut into another. (Without it, as
/// in uWSGI without `log-master`, the pieces of different workers interleave in the file.)
#[test]
fn log_master_writes_whole_lines_under_load() {
    let vassal = Vassal::start(
        "log-master",
        "processes = 4\nlog-master = true\nlogto = {dir}/app.log\ndisable-logging = true",
    );
    let clients = 8;
    let requests = 5;
    let lines = 20;
    std::thread::scope(|scope| {
        for client in 0..clients {
            let socket = vassal.socket.clone();
            scope.spawn(move || {
                for request in 0..requests {
                    let target =
                        format!("/print?n={lines}&size=3000&pause_ms=1&tag=t{client}-{request}");
                    http_get_unix(&socket, &target).unwrap();
                }
            });
        }
    });
    let dir = vassal.stop();
    let text = read(&dir.join("app.log"));
    let mut seen = HashSet::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with('t') && !l.ends_with("stdout"))
    {
        let words: Vec<&str> = line.split(' ').collect();
        assert!(
            line.len() == 3000
                && words.len() == 4
                && words[3] == "end"
                && words[2].bytes().all(|b| b == b'x'),
            "a line was cut or mixed ({} bytes): {:?}…",
            line.len(),
            &line[..line.len().min(120)]
        );
        assert!(
            seen.insert(format!("{} {}", words[0], words[1])),
            "line twice: {}",
            words[0]
        );
    }
    assert_eq!(seen.len(), clients * requests * lines, "every line arrived");
}

/// The request lines of a rotation test: `REQ /n/CLIENT/I 200`.
fn request_ids(dir: &Path, base: &str) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut files = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !name.starts_with(base) {
            continue;
        }
        files += 1;
        for line in read(&dir.join(&name)).lines() {
            if let Some(rest) = line.strip_prefix("REQ ") {
                let id = rest
                    .strip_suffix(" 200")
                    .unwrap_or_else(|| panic!("a cut line in {name}: {line:?}"));
                ids.push(id.to_owned());
            } else {
                assert!(
                    !line.contains("REQ"),
                    "a line mixed with another in {name}: {line:?}"
                );
            }
        }
    }
    (ids, files)
}

#[test]
fn rotation_under_load_loses_and_cuts_no_request_line() {
    let vassal = Vassal::start(
        "rotation",
        "processes = 2\nthreads = 2\nlogto = {dir}/app.log\nlog-maxsize = 20000\nlog-format = REQ %(uri) %(status)\nmaster-fifo = {dir}/fifo\ntouch-logrotate = {dir}/rotate",
    );
    let clients = 4;
    let requests = 250;
    let fifo = vassal.path("fifo");
    let rotate = vassal.path("rotate");
    std::thread::scope(|scope| {
        for client in 0..clients {
            let socket = vassal.socket.clone();
            scope.spawn(move || {
                for request in 0..requests {
                    let response =
                        http_get_unix(&socket, &format!("/n/{client}/{request}")).unwrap();
                    assert_eq!(response.status, 200);
                }
            });
        }
        // Rotations asked for while the load runs, on top of the size-triggered ones.
        scope.spawn(|| {
            for _ in 0..3 {
                std::thread::sleep(Duration::from_millis(150));
                std::fs::write(&fifo, "L").unwrap();
                std::fs::write(&rotate, "now").unwrap();
            }
        });
    });
    let dir = vassal.stop();
    let (ids, files) = request_ids(dir.path(), "app.log");
    assert!(files >= 3, "the log was rotated: {files} files");
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a request line was written twice");
    for client in 0..clients {
        for request in 0..requests {
            assert!(
                unique.contains(&format!("/n/{client}/{request}")),
                "request /n/{client}/{request} has no line"
            );
        }
    }
    let rotated = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("app.log."))
        .collect::<Vec<_>>();
    let backup = read(&dir.join(&rotated[0]));
    assert!(
        backup.contains("triggering rotation to"),
        "uWSGI's last line of a rotated file: {backup}"
    );
}

#[test]
fn logrotate_rename_and_reopen_then_copytruncate() {
    let vassal = Vassal::start(
        "reopen",
        "logto = {dir}/app.log\ntouch-logreopen = {dir}/reopen\nlog-format = REQ %(uri)",
    );
    let log = vassal.path("app.log");
    vassal.get("/before");
    wait_for_file(&log, "REQ /before");
    // logrotate without copytruncate: rename, then postrotate touches the reopen file.
    std::fs::rename(&log, vassal.path("app.log.1")).unwrap();
    vassal.get("/renamed");
    wait_for_file(&vassal.path("app.log.1"), "REQ /renamed");
    std::fs::write(vassal.path("reopen"), "x").unwrap();
    wait_for_file(&log, "app.log reopened.");
    vassal.get("/after");
    let text = wait_for_file(&log, "REQ /after");
    assert!(
        !text.contains("/before") && !text.contains("/renamed"),
        "{text}"
    );
    // copytruncate: the file is copied, then emptied in place; kaiser appends, so the next
    // line starts the file instead of leaving a hole of NUL bytes.
    std::fs::copy(&log, vassal.path("app.log.2")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    vassal.get("/truncated");
    let text = wait_for_file(&log, "REQ /truncated");
    assert!(text.starts_with("REQ /truncated"), "{text:?}");
    assert!(!text.contains('\0'), "{text:?}");
}

#[test]
fn master_fifo_l_reopens_and_capital_l_rotates() {
    let vassal = Vassal::start(
        "fifo-log",
        "logto = {dir}/app.log\nmaster-fifo = {dir}/fifo\nlog-format = REQ %(uri)",
    );
    let log = vassal.path("app.log");
    vassal.get("/one");
    wait_for_file(&log, "REQ /one");
    std::fs::write(vassal.path("fifo"), "l").unwrap();
    wait_for_file(&log, "triggering log-reopen");
    std::fs::write(vassal.path("fifo"), "L").unwrap();
    let rotated = wait_until("a rotated file", WAIT, |_| {
        Ok(std::fs::read_dir(vassal.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().starts_with("app.log."))
            .map(|e| e.path()))
    })
    .unwrap();
    let old = wait_for_file(&rotated, "triggering rotation to");
    assert!(old.contains("REQ /one"), "{old}");
    vassal.get("/two");
    let new = wait_for_file(&log, "REQ /two");
    assert!(!new.contains("REQ /one"), "{new}");
}

#[test]
fn graceful_reload_keeps_the_log_master_and_reopens_its_file() {
    let vassal = Vassal::start(
        "reload-log",
        "logto = {dir}/app.log\nlog-master = true\nlog-format = REQ %(uri)",
    );
    let log = vassal.path("app.log");
    vassal.get("/first");
    wait_for_file(&log, "REQ /first");
    // logrotate's rename, then `postrotate kaiser --reload PIDFILE` (SIGHUP).
    std::fs::rename(&log, vassal.path("app.log.1")).unwrap();
    vassal.kaiser.signal(libc::SIGHUP);
    wait_for_file(&log, ": reloaded in");
    vassal.get("/second");
    let text = wait_for_file(&log, "REQ /second");
    assert!(!text.contains("REQ /first"), "{text}");
    let old = read(&vassal.path("app.log.1"));
    assert!(
        old.contains("REQ /first") && old.contains("log master started"),
        "{old}"
    );
    assert!(
        !text.contains("log master started"),
        "one log master across the reload:\n{text}"
    );
}

#[test]
fn log_date_and_log_prefix_mark_kaisers_lines() {
    let vassal = Vassal::start(
        "date-prefix",
        "logto = {dir}/app.log\nlog-date = %%Y-%%m-%%d %%H:%%M:%%S\nlog-prefix = site>",
    );
    vassal.get("/x");
    wait_for_file(&vassal.path("app.log"), "GET /x");
    wait_for_file(&vassal.path("app.log"), "ready in");
    let dir = vassal.stop();
    let text = read(&dir.join("app.log"));
    let ready = text
        .lines()
        .find(|l| l.contains("ready in"))
        .expect("a ready line");
    assert!(ready.starts_with("site>20"), "{ready}");
    assert_eq!(
        &ready[9..10],
        "-",
        "a strftime date after the prefix: {ready}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("site>[pid: ") && l.contains("GET /x =>")),
        "the prefix is on request lines too, and the default line is unchanged:\n{text}"
    );
}

/// Seed 000's logging block (paths adapted): Apache-style lines, `logto` plus a `file:`
/// logger, `log-maxsize` with a trailing `; 10MB` comment and the nonexistent `log-backup`.
/// As in uWSGI, once a logger is configured every line goes to it; `logto` only gets what
/// was written before the log master started.
#[test]
fn seed000_logging_block() {
    let template = read(&common::repo_root().join("tests/seeds/seed000-logging.ini"));
    let dir = TempDir::new("seed000");
    let socket = dir.join("http.sock");
    let ini = template
        .replace("@DIR@", &dir.path().display().to_string())
        .replace("@VENV@", &venv().display().to_string())
        .replace("@APP@", &common::app("chatty.py").display().to_string())
        .replace("@SOCKET@", &socket.display().to_string());
    std::fs::write(dir.join("app.ini"), ini).unwrap();
    let check = std::process::Command::new(common::kaiser_bin())
        .args([
            "--check-config",
            "--ini",
            dir.join("app.ini").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut kaiser = Kaiser::spawn(&["--ini", dir.join("app.ini").to_str().unwrap()]);
    wait_for_unix(&socket, START_TIMEOUT).unwrap_or_else(|e| panic!("{e}\n{}", kaiser.logs()));
    // `socket =` speaks the uwsgi protocol, as behind nginx's `uwsgi_pass`.
    let vars = common::cgi_vars(
        "GET",
        "/seed?x=1",
        None,
        &[
            ("HTTP_REFERER", "http://r/"),
            ("HTTP_USER_AGENT", "seed-agent"),
        ],
    );
    let response =
        common::uwsgi_request(UnixStream::connect(&socket).unwrap(), &vars, b"").unwrap();
    assert_eq!(response.status, 200);
    let errors = wait_for_file(&dir.join("error.log"), "GET /seed?x=1");
    let line = errors
        .lines()
        .find(|l| l.contains("GET /seed?x=1"))
        .unwrap();
    // `%(addr) - %(user) [%(ctime)] "%(method) %(uri) %(proto)" %(status) %(size) "%(referer)" "%(uagent)"`
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.contains("] \"GET /seed?x=1 HTTP/1.1\" 200 ")
            && line.ends_with(" \"http://r/\" \"seed-agent\""),
        "{line}"
    );
    // Stopped, no process can still be writing the request's line anywhere.
    kaiser.stop_and_read_logs(libc::SIGTERM, WAIT);
    let access = read(&dir.join("access.log"));
    assert!(
        access.contains("listening") && !access.contains("/seed"),
        "logto has the lines written before the log master started:\n{access}"
    );
}

/// Seed 003: `daemonize` to a file and `log-maxsize`; here 2000 bytes so that a few
/// requests rotate it, with the access-log format its comment suggests.
#[test]
fn seed003_log_rotation() {
    let template = read(&common::repo_root().join("tests/seeds/seed003-log-rotation.ini"));
    let dir = TempDir::new("seed003");
    let socket = dir.join("http.sock");
    let ini = template
        .replace("@DIR@", &dir.path().display().to_string())
        .replace("@VENV@", &venv().display().to_string())
        .replace("@APP@", &common::app("chatty.py").display().to_string())
        .replace("@SOCKET@", &socket.display().to_string());
    std::fs::write(dir.join("app.ini"), ini).unwrap();
    let mut kaiser = Kaiser::spawn(&["--ini", dir.join("app.ini").to_str().unwrap()]);
    // `daemonize`: the command returns at once and the server lives on, detached.
    kaiser.expect_exit(WAIT);
    wait_for_unix(&socket, START_TIMEOUT).unwrap();
    let pidfile = dir.join("app.pid");
    let master: i32 = wait_until("the pidfile", WAIT, |_| {
        Ok(read(&pidfile).trim().parse().ok())
    })
    .unwrap();
    struct StopOnDrop(i32);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid is the daemon's.
            unsafe { libc::kill(self.0, libc::SIGINT) };
        }
    }
    let _stop = StopOnDrop(master);
    for i in 0..30 {
        http_get_unix(&socket, &format!("/r/{i}")).unwrap();
    }
    // uWSGI's default line: `… GET /r/7 => generated …`, each exactly once across the files.
    wait_until("all the request lines", WAIT, |last| {
        let mut seen = Vec::new();
        let mut files = 0;
        for entry in std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("app.log") {
                files += 1;
                for line in read(&entry.path()).lines() {
                    if let Some(at) = line.find("] GET /r/") {
                        let id = line[at + 9..].split(' ').next().unwrap().to_owned();
                        assert!(line.contains(" => generated 11 bytes in "), "{line}");
                        seen.push(id);
                    }
                }
            }
        }
        seen.sort();
        seen.dedup();
        *last = format!("{} distinct lines in {files} files", seen.len());
        Ok((seen.len() == 30 && files >= 2).then_some(()))
    })
    .unwrap();
}

/// An emperor over two vassals, `alpha` and `beta`, serving `chatty.py` on unix sockets.
struct TwoVassals {
    emperor: Kaiser,
    dir: TempDir,
}

impl TwoVassals {
    fn start(label: &str, configure: impl FnOnce(&mut std::process::Command)) -> TwoVassals {
        let dir = TempDir::new(label);
        let vassals = dir.join("vassals");
        std::fs::create_dir(&vassals).unwrap();
        for name in ["alpha", "beta"] {
            let ini = format!(
                "[uwsgi]\nhttp-socket = {}\nhome = {}\nwsgi-file = {}\nprocesses = 2\n",
                dir.join(format!("{name}.sock")).display(),
                venv().display(),
                common::app("chatty.py").display(),
            );
            std::fs::write(vassals.join(format!("{name}.ini")), ini).unwrap();
        }
        let emperor = Kaiser::spawn_with(&["--emperor", vassals.to_str().unwrap()], |command| {
            command.env_remove("JOURNAL_STREAM");
            configure(command);
        });
        for name in ["alpha", "beta"] {
            wait_for_unix(&dir.join(format!("{name}.sock")), START_TIMEOUT)
                .unwrap_or_else(|e| panic!("{e}\n{}", emperor.logs()));
        }
        TwoVassals { emperor, dir }
    }

    fn get(&self, name: &str, target: &str) -> common::Response {
        http_get_unix(&self.dir.join(format!("{name}.sock")), target)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.emperor.logs()))
    }
}

/// Under the emperor, every line on its stderr names its vassal: kaiser's own lines,
/// request lines and the app's prints, from the master and from every worker. A client
/// that goes away mid-response costs one request line and no warning.
#[test]
fn under_the_emperor_every_line_names_its_vassal() {
    let emperor = TwoVassals::start("emperor-prefix", |_| {});
    for round in 0..3 {
        emperor.get("alpha", &format!("/print?n=2&tag=from-alpha-{round}"));
        emperor.get("beta", &format!("/print?n=2&tag=from-beta-{round}"));
    }
    // A client that reads one byte of a large response and hangs up.
    {
        use std::io::{Read, Write};
        let mut stream = UnixStream::connect(emperor.dir.join("beta.sock")).unwrap();
        stream
            .write_all(&request_bytes(
                "GET",
                "/big?bytes=50000000&tag=quiet",
                &[("Connection", "close")],
                b"",
            ))
            .unwrap();
        let mut byte = [0u8; 1];
        let _ = stream.read(&mut byte);
    }
    emperor.emperor.wait_for_log("tag=quiet =>", WAIT).unwrap();
    // Request lines are written after the response: wait for each.
    for name in ["alpha", "beta"] {
        for round in 0..3 {
            let needle = format!("tag=from-{name}-{round} =>");
            emperor.emperor.wait_for_log(&needle, WAIT).unwrap();
        }
    }
    let logs = emperor.emperor.logs();
    let mut named = 0;
    for line in logs.lines() {
        let vassal = if line.starts_with("[alpha] ") {
            "alpha"
        } else if line.starts_with("[beta] ") {
            "beta"
        } else {
            assert!(
                line.contains(" emperor"),
                "a line of no vassal and not the emperor's: {line:?}"
            );
            continue;
        };
        named += 1;
        let other = if vassal == "alpha" { "beta" } else { "alpha" };
        assert!(
            !line.contains(&format!("from-{other}")),
            "{line:?} is under the wrong vassal"
        );
        assert!(
            !line.contains("vassal{name=") || line.contains(&format!("vassal{{name={vassal}}}")),
            "{line:?}"
        );
    }
    assert!(named > 20, "{logs}");
    for name in ["alpha", "beta"] {
        for round in 0..3 {
            assert!(
                logs.contains(&format!("[{name}] from-{name}-{round} 1 ")),
                "the app's print from {name}:\n{logs}"
            );
            assert!(
                logs.contains(&format!("[{name}] [pid: "))
                    && logs.contains(&format!("GET /print?n=2&tag=from-{name}-{round} =>")),
                "the request line from {name}:\n{logs}"
            );
        }
    }
    let beta: Vec<&str> = logs.lines().filter(|l| l.starts_with("[beta] ")).collect();
    assert_eq!(
        beta.iter().filter(|l| l.contains("tag=quiet")).count(),
        1,
        "one request line for the client that went away:\n{}",
        logs.lines()
            .filter(|l| l.contains("quiet"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        !beta
            .iter()
            .any(|l| l.contains(" WARN ") || l.contains(" ERROR ")),
        "no warning for a client that went away:\n{}",
        beta.join("\n")
    );
}

/// Parses one native-protocol datagram: `KEY=VALUE\n`, or `KEY\n<u64 LE length><value>\n`.
fn journal_fields(datagram: &[u8]) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut rest = datagram;
    while !rest.is_empty() {
        let newline = rest
            .iter()
            .position(|&b| b == b'\n')
            .expect("every field ends with a newline");
        let head = &rest[..newline];
        if let Some(eq) = head.iter().position(|&b| b == b'=') {
            fields.push((
                String::from_utf8_lossy(&head[..eq]).into_owned(),
                String::from_utf8_lossy(&head[eq + 1..]).into_owned(),
            ));
            rest = &rest[newline + 1..];
        } else {
            let len =
                u64::from_le_bytes(rest[newline + 1..newline + 9].try_into().unwrap()) as usize;
            let value = &rest[newline + 9..newline + 9 + len];
            assert_eq!(
                rest[newline + 9 + len],
                b'\n',
                "a binary field ends with a newline"
            );
            fields.push((
                String::from_utf8_lossy(head).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            ));
            rest = &rest[newline + 10 + len..];
        }
    }
    for (key, _) in &fields {
        assert!(
            !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
            "journald rejects the field name {key:?}"
        );
    }
    fields
}

/// Under journald (`JOURNAL_STREAM` set, the native socket a datagram socket this test owns
/// in place of `/run/systemd/journal/socket`), every entry names its vassal: kaiser's events
/// with `WORKER_ID` for a worker's, request lines with `WORKER_ID` and a `PRIORITY` from the
/// status (5xx: warning), and the app's prints relayed by the emperor.
#[test]
fn under_journald_entries_carry_vassal_worker_and_priority() {
    let dir = TempDir::new("journal-socket");
    let path = dir.join("journal.sock");
    let journal = UnixDatagram::bind(&path).unwrap();
    journal
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // Read as journald does, all the time, so no entry falls back to the stream.
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Vec<u8>>::new()));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let received = received.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(n) = journal.recv(&mut buf) {
                    received.lock().unwrap().push(buf[..n].to_vec());
                }
            }
        })
    };
    let mut emperor = TwoVassals::start("emperor-journal", |command| {
        command
            .env("JOURNAL_STREAM", "8:1234")
            .env("KAISER_JOURNAL_SOCKET", &path);
    });
    emperor.get("alpha", "/print?n=1&tag=alpha-print");
    emperor.get("beta", "/status?code=503");
    emperor.get("beta", "/status?code=200");
    let mut entries: Vec<Vec<(String, String)>> = Vec::new();
    let field = |entry: &[(String, String)], key: &str| -> Option<String> {
        entry.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    };
    let deadline = std::time::Instant::now() + WAIT;
    let has = |entries: &[Vec<(String, String)>], vassal: &str, needle: &str| {
        entries.iter().any(|e| {
            field(e, "VASSAL").as_deref() == Some(vassal)
                && field(e, "MESSAGE").is_some_and(|m| m.contains(needle))
        })
    };
    while !(has(&entries, "alpha", "alpha-print 0")
        && has(&entries, "beta", "GET /status?code=200 =>")
        && has(&entries, "beta", "GET /status?code=503 =>"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "entries so far: {entries:#?}\n{}",
            emperor.emperor.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
        entries = received
            .lock()
            .unwrap()
            .iter()
            .map(|d| journal_fields(d))
            .collect();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap();
    let find = |vassal: &str, needle: &str| -> Vec<(String, String)> {
        entries
            .iter()
            .find(|e| {
                field(e, "VASSAL").as_deref() == Some(vassal)
                    && field(e, "MESSAGE").is_some_and(|m| m.contains(needle))
            })
            .cloned()
            .unwrap()
    };
    let failed = find("beta", "GET /status?code=503 =>");
    assert_eq!(
        field(&failed, "PRIORITY").as_deref(),
        Some("4"),
        "{failed:?}"
    );
    assert!(
        matches!(field(&failed, "WORKER_ID").as_deref(), Some("1" | "2")),
        "{failed:?}"
    );
    let ok = find("beta", "GET /status?code=200 =>");
    assert_eq!(field(&ok, "PRIORITY").as_deref(), Some("6"), "{ok:?}");
    let print = find("alpha", "alpha-print 0");
    assert_eq!(field(&print, "PRIORITY").as_deref(), Some("6"), "{print:?}");
    // kaiser's own events: the vassal's workers carry their id.
    assert!(
        entries
            .iter()
            .any(|e| field(e, "VASSAL").as_deref() == Some("alpha")
                && field(e, "WORKER_ID").is_some()),
        "{entries:#?}"
    );
    for entry in &entries {
        if let Some(message) = field(entry, "MESSAGE") {
            if message.contains("alpha-print") || message.contains("code=503") {
                assert!(
                    field(entry, "VASSAL").is_some(),
                    "an entry of no vassal: {entry:?}"
                );
            }
        }
    }
    // Stopped, the emperor has written all it will: a stream copy cannot still be on its way.
    let logs = emperor.emperor.stop_and_read_logs(libc::SIGTERM, WAIT);
    assert!(
        !logs.contains("alpha-print"),
        "under journald nothing goes to the stream as well:\n{logs}"
    );
}

/// `log-truncate` empties the old file, `logfile-chmod` sets its mode, and a `systemd` logger
/// sends native journal entries naming the vassal.
#[test]
fn log_truncate_logfile_chmod_and_the_systemd_logger() {
    use std::os::unix::fs::PermissionsExt as _;
    let peers = TempDir::new("journal-logger");
    let journal_path = peers.join("journal.sock");
    let journal = UnixDatagram::bind(&journal_path).unwrap();
    journal.set_read_timeout(Some(WAIT)).unwrap();
    let dir = TempDir::new("truncate-seed");
    std::fs::write(dir.join("old.log"), "an old line\n").unwrap();
    let vassal = Vassal::start_with(
        "file-options",
        &format!(
            "logto = {}\nlog-truncate = true\nlogfile-chmod = 600\nlogger = systemd\nlog-format = REQ %(uri)",
            dir.join("old.log").display()
        ),
        |command| {
            command.env("KAISER_JOURNAL_SOCKET", &journal_path);
        },
    );
    vassal.get("/journal");
    let mut buf = vec![0u8; 65536];
    let entry = loop {
        let n = journal.recv(&mut buf).expect("a journal entry");
        let fields = journal_fields(&buf[..n]);
        if fields
            .iter()
            .any(|(k, v)| k == "MESSAGE" && v == "REQ /journal")
        {
            break fields;
        }
    };
    assert!(
        entry.contains(&("VASSAL".to_owned(), "app".to_owned())),
        "{entry:?}"
    );
    let text = read(&dir.join("old.log"));
    assert!(!text.contains("an old line"), "{text}");
    assert!(text.contains("listening"), "{text}");
    let mode = std::fs::metadata(dir.join("old.log"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

/// `logto2` is opened by the log master, after the privilege drop; everything goes there.
#[test]
fn logto2_gets_every_line_through_the_log_master() {
    let vassal = Vassal::start("logto2", "logto2 = {dir}/late.log\nlog-format = REQ %(uri)");
    vassal.get("/late");
    let text = wait_for_file(&vassal.path("late.log"), "REQ /late");
    assert!(text.contains("log master started"), "{text}");
}

/// `log-x-forwarded-for` puts the proxy's `X-Forwarded-For` in `%(addr)`, as it does in the
/// default line.
#[test]
fn log_x_forwarded_for_keeps_working_with_log_format() {
    let vassal = Vassal::start(
        "xff",
        "log-x-forwarded-for = true\nlog-format = ADDR %(addr) %(uri)",
    );
    let stream = UnixStream::connect(&vassal.socket).unwrap();
    http_request(
        stream,
        &request_bytes(
            "GET",
            "/xff",
            &[("Connection", "close"), ("X-Forwarded-For", "203.0.113.7")],
            b"",
        ),
    )
    .unwrap();
    vassal.get("/plain");
    vassal
        .kaiser
        .wait_for_log("ADDR 203.0.113.7 /xff", WAIT)
        .unwrap();
    vassal.kaiser.wait_for_log("ADDR - /plain", WAIT).unwrap();
}

/// `uwsgi.set_logvar` fills `%(name)` for that request only; `get_logvar` reads it back.
#[test]
fn logvars_set_by_the_app_fill_the_format_for_one_request() {
    let vassal = Vassal::start("logvars", "log-format = LV %(uri) %(user_id) %(missing)");
    let response = vassal.get("/logvar?key=user_id&value=42");
    assert_eq!(response.text(), "42");
    vassal.get("/after");
    vassal
        .kaiser
        .wait_for_log("LV /logvar?key=user_id&value=42 42 -", WAIT)
        .unwrap();
    vassal.kaiser.wait_for_log("LV /after - -", WAIT).unwrap();
}

/// The same against a real `systemd-journald`: the emperor runs in a private mount namespace
/// (`unshare -m`) where a tmpfs hides the machine's `/run/systemd` and the test's directory
/// is `/run/log/journal`, so the journald started there listens on its usual socket and
/// writes its journal where the test reads it back with `journalctl --directory`.
#[test]
fn a_real_journald_stores_vassal_worker_and_priority_fields() {
    let dir = TempDir::new("real-journald");
    let journal_dir = dir.join("journal");
    std::fs::create_dir(&journal_dir).unwrap();
    let vassals = dir.join("vassals");
    std::fs::create_dir(&vassals).unwrap();
    for name in ["alpha", "beta"] {
        let ini = format!(
            "[uwsgi]\nhttp-socket = {}\nhome = {}\nwsgi-file = {}\nprocesses = 2\n",
            dir.join(format!("{name}.sock")).display(),
            venv().display(),
            common::app("chatty.py").display(),
        );
        std::fs::write(vassals.join(format!("{name}.ini")), ini).unwrap();
    }
    let script = format!(
        "set -e\n\
         mount -t tmpfs tmpfs /run/systemd\n\
         mkdir -p /run/systemd/journal /run/log/journal\n\
         mount --bind {journal} /run/log/journal\n\
         if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi\n\
         /lib/systemd/systemd-journald &\n\
         i=0; while [ ! -S /run/systemd/journal/socket ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done\n\
         JOURNAL_STREAM=8:1 exec {kaiser} --emperor {vassals}\n",
        journal = journal_dir.display(),
        kaiser = common::kaiser_bin(),
        vassals = vassals.display(),
    );
    let mut command = std::process::Command::new("unshare");
    command.args(["-m", "--propagation", "private", "sh", "-c", &script]);
    command
        .env_remove("NOTIFY_SOCKET")
        .env_remove("KAISER_JOURNAL_SOCKET");
    let emperor = common::LoggedProcess::spawn("emperor under journald", command);
    for name in ["alpha", "beta"] {
        wait_for_unix(&dir.join(format!("{name}.sock")), START_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n{}", emperor.logs()));
    }
    let get = |name: &str, target: &str| {
        http_get_unix(&dir.join(format!("{name}.sock")), target)
            .unwrap_or_else(|e| panic!("{e}\n{}", emperor.logs()))
    };
    get("alpha", "/print?n=1&tag=journald-print");
    get("beta", "/status?code=503");
    get("beta", "/status?code=200");
    let entries = wait_until("journald to store the entries", WAIT, |last| {
        let output = std::process::Command::new("journalctl")
            .arg(format!("--directory={}", journal_dir.display()))
            .args(["-o", "json", "--no-pager"])
            .output()
            .expect("journalctl runs");
        let entries: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        let has = |vassal: &str, needle: &str| {
            entries.iter().any(|e| {
                e["VASSAL"] == vassal && e["MESSAGE"].as_str().is_some_and(|m| m.contains(needle))
            })
        };
        if has("alpha", "journald-print 0")
            && has("beta", "GET /status?code=503 =>")
            && has("beta", "GET /status?code=200 =>")
        {
            return Ok(Some(entries));
        }
        *last = format!("{} entries; stderr:\n{}", entries.len(), emperor.logs());
        Ok(None)
    })
    .unwrap();
    let find = |vassal: &str, needle: &str| {
        entries
            .iter()
            .find(|e| {
                e["VASSAL"] == vassal && e["MESSAGE"].as_str().is_some_and(|m| m.contains(needle))
            })
            .unwrap()
            .clone()
    };
    let failed = find("beta", "GET /status?code=503 =>");
    assert_eq!(failed["PRIORITY"], "4", "{failed}");
    assert!(
        matches!(failed["WORKER_ID"].as_str(), Some("1" | "2")),
        "{failed}"
    );
    assert_eq!(failed["SYSLOG_IDENTIFIER"], "kaiser", "{failed}");
    assert_eq!(find("beta", "GET /status?code=200 =>")["PRIORITY"], "6");
    assert_eq!(find("alpha", "journald-print 0")["PRIORITY"], "6");
    assert!(
        entries
            .iter()
            .any(|e| e["VASSAL"] == "alpha" && e["WORKER_ID"].is_string()),
        "a worker's own event names it"
    );
}

/// uWSGI's `logto = HOST:PORT` sends every line as a UDP datagram.
#[test]
fn logto_a_udp_address_sends_datagrams() {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(WAIT)).unwrap();
    let vassal = Vassal::start(
        "logto-udp",
        &format!(
            "logto = {}\nlog-format = REQ %(uri)",
            udp.local_addr().unwrap()
        ),
    );
    vassal.get("/udp");
    let mut buf = [0u8; 65536];
    loop {
        let n = udp
            .recv(&mut buf)
            .expect("a datagram with the request line");
        if &buf[..n] == b"REQ /udp" {
            break;
        }
    }
}

/// `%(ftime)` takes `log-date`'s strftime format with `log-format-strftime`.
#[test]
fn ftime_uses_the_log_date_format() {
    let vassal = Vassal::start(
        "ftime",
        "log-date = %%Y<>%%m\nlog-format-strftime = true\nlog-format = FT %(ftime) %(uri)",
    );
    vassal.get("/ft");
    let line = vassal.kaiser.wait_for_log("FT ", WAIT).unwrap();
    let date = line.split_once("FT ").unwrap().1;
    assert!(
        date.len() == "2026<>12 /ft".len() && date[4..6] == *"<>" && date.ends_with(" /ft"),
        "{line}"
    );
}

/// A log master killed by an operator is replaced: the vassal reloads and starts a new one,
/// and request lines reach the file again.
#[test]
fn a_killed_log_master_is_replaced_by_a_reload() {
    let vassal = Vassal::start(
        "log-master-killed",
        "logto = {dir}/app.log\nlog-master = true\nlog-format = REQ %(uri)",
    );
    let log = vassal.path("app.log");
    vassal.get("/before");
    let text = wait_for_file(&log, "REQ /before");
    let pid: i32 = text
        .lines()
        .find_map(|l| {
            l.split_once("log master started pid=")
                .map(|(_, p)| p.trim().parse().unwrap())
        })
        .expect("the log master's pid is logged");
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is the log master's.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    wait_until("a new log master", WAIT, |last| {
        let text = read(&log);
        *last = text.clone();
        Ok((text.matches("log master started").count() >= 2).then_some(()))
    })
    .unwrap();
    // The previous generation of workers still writes into the dead pipe until it is gone.
    wait_for_file(&log, "previous-generation worker finished");
    vassal.get("/after");
    wait_for_file(&log, "REQ /after");
}

/// `logger = stdio` writes through the log master to the original stderr.
#[test]
fn the_stdio_logger_writes_to_the_original_stderr() {
    let vassal = Vassal::start("stdio", "logger = stdio\nlog-format = STDIO %(uri)");
    vassal.get("/print?n=1&tag=through-stdio");
    vassal
        .kaiser
        .wait_for_log("through-stdio 0 ", WAIT)
        .unwrap();
    vassal
        .kaiser
        .wait_for_log("STDIO /print?n=1&tag=through-stdio", WAIT)
        .unwrap();
    vassal
        .kaiser
        .wait_for_log("log master started", WAIT)
        .unwrap();
}

/// A line written with one 1 MB `write` reaches the file whole through the log master (the
/// pipe is sized for 4 MiB messages when kaiser runs as root, as here).
#[test]
fn a_one_megabyte_line_passes_the_log_master_whole() {
    let vassal = Vassal::start("huge-line", "log-master = true\nlogto = {dir}/app.log");
    vassal.get("/print?n=1&size=1000000&tag=huge");
    let text = wait_for_file(&vassal.path("app.log"), "huge stdout");
    let line = text
        .lines()
        .find(|l| l.starts_with("huge 0 "))
        .expect("the long line");
    assert_eq!(line.len(), 1_000_000);
    assert!(line.ends_with(" end"));
}
