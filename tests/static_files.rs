//! Static files (`static-map`, `check-static`, …) served by the real binary: over HTTP and
//! through a real nginx `uwsgi_pass`, with 304/206/416/HEAD, gzip variants, index files,
//! `Expires`, traversal payloads that must never leak a file outside the root, symlinks out
//! of the root refused unless `static-safe` allows them, and a slow client that must not hold
//! the only request thread; over SCGI the CGI `Status:` head.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::*;

const SECRET: &str = "TOPSECRET-5f1d0c";
const CSS: &str = "body { color: #123456 }\n";

/// A static root `www/` with some files, and a secret file next to it (never to be served).
struct Site {
    dir: TempDir,
}

impl Site {
    fn new() -> Site {
        let dir = TempDir::new("static");
        std::fs::create_dir_all(dir.join("www/sub")).unwrap();
        std::fs::create_dir_all(dir.join("outside")).unwrap();
        std::fs::create_dir_all(dir.join("www-secret")).unwrap();
        dir.write("secret.txt", SECRET);
        dir.write("outside/shared.txt", "shared through a symlink\n");
        dir.write("www-secret/file.txt", SECRET);
        dir.write("www/app.css", CSS);
        dir.write("www/sub/index.html", "<h1>index</h1>\n");
        dir.write("www/page.php", "<?php echo 1;");
        dir.write("www/app.js", "console.log('plain');\n");
        dir.write("www/app.js.gz", b"\x1f\x8b pretend gzip".as_slice());
        dir.write(
            "www/data.bin",
            (0..=255u8).cycle().take(1000).collect::<Vec<u8>>(),
        );
        std::os::unix::fs::symlink(dir.join("secret.txt"), dir.join("www/leak.txt")).unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.join("www/up")).unwrap();
        std::os::unix::fs::symlink(dir.join("outside/shared.txt"), dir.join("www/shared.txt"))
            .unwrap();
        std::os::unix::fs::symlink(dir.join("www-secret"), dir.join("www/sibling")).unwrap();
        std::os::unix::fs::symlink("app.css", dir.join("www/inside.css")).unwrap();
        Site { dir }
    }

    fn root(&self) -> String {
        self.dir.join("www").display().to_string()
    }

    fn start(&self, extra: &[&str]) -> (Kaiser, SocketAddr) {
        let map = format!("/static={}", self.root());
        let mut args = vec![
            "--wsgi-file",
            "tests/apps/wsgi_suite.py",
            "--static-map",
            &map,
        ];
        args.extend_from_slice(extra);
        start_http(&args)
    }
}

fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Response {
    let stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
    let mut all = vec![("Connection", "close")];
    all.extend_from_slice(headers);
    http_request(stream, &request_bytes("GET", target, &all, b""))
        .unwrap_or_else(|e| panic!("GET {target}: {e}"))
}

/// Sends `raw` as is and returns everything the server sends until it closes.
fn raw_exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn serves_files_with_validators_ranges_head_and_keep_alive() {
    let site = Site::new();
    let (kaiser, addr) = site.start(&["--static-index", "index.html", "--static-skip-ext", ".php"]);

    let css = get(addr, "/static/app.css", &[]);
    assert_eq!(css.status, 200, "{css}");
    assert_eq!(css.text(), CSS);
    assert_eq!(
        css.header("Content-Type"),
        Some("text/css; charset=utf-8"),
        "{css}"
    );
    assert_eq!(
        css.header("Content-Length"),
        Some(CSS.len().to_string().as_str())
    );
    assert_eq!(css.header("Accept-Ranges"), Some("bytes"), "{css}");
    let last_modified = css
        .header("Last-Modified")
        .expect("Last-Modified")
        .to_string();
    let etag = css.header("ETag").expect("ETag").to_string();
    assert!(last_modified.ends_with(" GMT"), "{css}");
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{css}");

    // Conditional GETs.
    let not_modified = get(
        addr,
        "/static/app.css",
        &[("If-Modified-Since", &last_modified)],
    );
    assert_eq!(not_modified.status, 304, "{not_modified}");
    assert!(not_modified.body.is_empty(), "{not_modified}");
    assert_eq!(not_modified.header("ETag"), Some(etag.as_str()));
    let by_tag = get(addr, "/static/app.css", &[("If-None-Match", &etag)]);
    assert_eq!(by_tag.status, 304, "{by_tag}");
    let stale = get(addr, "/static/app.css", &[("If-None-Match", "\"other\"")]);
    assert_eq!(stale.status, 200, "{stale}");
    let old = get(
        addr,
        "/static/app.css",
        &[("If-Modified-Since", "Thu, 01 Jan 1998 00:00:00 GMT")],
    );
    assert_eq!(old.status, 200, "{old}");

    // Ranges.
    let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let part = get(addr, "/static/data.bin", &[("Range", "bytes=10-19")]);
    assert_eq!(part.status, 206, "{part}");
    assert_eq!(part.body, &data[10..20]);
    assert_eq!(
        part.header("Content-Range"),
        Some("bytes 10-19/1000"),
        "{part}"
    );
    let suffix = get(addr, "/static/data.bin", &[("Range", "bytes=-5")]);
    assert_eq!(suffix.status, 206, "{suffix}");
    assert_eq!(suffix.body, &data[995..]);
    let beyond = get(addr, "/static/data.bin", &[("Range", "bytes=5000-")]);
    assert_eq!(beyond.status, 416, "{beyond}");
    assert_eq!(
        beyond.header("Content-Range"),
        Some("bytes */1000"),
        "{beyond}"
    );
    let if_range = get(
        addr,
        "/static/data.bin",
        &[("Range", "bytes=0-1"), ("If-Range", "\"stale\"")],
    );
    assert_eq!(if_range.status, 200, "{if_range}");
    assert_eq!(if_range.body.len(), 1000);

    // One keep-alive connection: HEAD, a file, a miss that falls through to the app, an
    // index file, a skipped extension and a POST (both go to the app), and a file again.
    let mut conn = HttpConn::new(wait_for_connect(addr, START_TIMEOUT).unwrap());
    let head = conn
        .request(&request_bytes("HEAD", "/static/app.css", &[], b""))
        .unwrap();
    assert_eq!(head.status, 200, "{head}");
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("Content-Length"),
        Some(CSS.len().to_string().as_str())
    );
    let again = conn
        .request(&request_bytes("GET", "/static/app.css", &[], b""))
        .unwrap();
    assert_eq!(again.text(), CSS);
    let miss = conn
        .request(&request_bytes("GET", "/static/missing.css", &[], b""))
        .unwrap();
    assert_eq!(miss.status, 404, "{miss}");
    assert!(
        miss.text().contains("no route for '/static/missing.css'"),
        "{miss}"
    );
    let index = conn
        .request(&request_bytes("GET", "/static/sub/", &[], b""))
        .unwrap();
    assert_eq!(index.status, 200, "{index}");
    assert_eq!(index.text(), "<h1>index</h1>\n");
    assert_eq!(
        index.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    let php = conn
        .request(&request_bytes("GET", "/static/page.php", &[], b""))
        .unwrap();
    assert!(
        php.text().contains("no route for '/static/page.php'"),
        "{php}"
    );
    let post = conn
        .request(&request_bytes("POST", "/static/app.css", &[], b"x=1"))
        .unwrap();
    assert!(
        post.text().contains("no route for '/static/app.css'"),
        "{post}"
    );
    let inside = conn
        .request(&request_bytes("GET", "/static/inside.css", &[], b""))
        .unwrap();
    assert_eq!(
        inside.text(),
        CSS,
        "a symlink that stays inside the root is served"
    );
    let pipelined = [
        request_bytes("GET", "/static/app.css", &[], b""),
        request_bytes("GET", "/static/sub/index.html", &[], b""),
    ]
    .concat();
    conn.send(&pipelined).unwrap();
    assert_eq!(conn.read_response(false).unwrap().text(), CSS);
    assert_eq!(
        conn.read_response(false).unwrap().text(),
        "<h1>index</h1>\n"
    );

    // The request log marks static files.
    kaiser
        .wait_for_log("GET /static/app.css => generated", START_TIMEOUT)
        .unwrap();
    kaiser
        .wait_for_log("via sendfile() (HTTP/1.1 200)", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn serves_precompressed_variants_and_expires() {
    let site = Site::new();
    let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(site.dir.join("www/data.bin"))
        .unwrap()
        .set_modified(past)
        .unwrap();
    let mime = site
        .dir
        .write("mime.types", "application/x-kaiser-test\tjs2 dat\n");
    let mime = mime.display().to_string();
    site.dir.write("www/thing.dat", "dat\n");
    let (_kaiser, addr) = site.start(&[
        "--static-gzip-all",
        "--static-expires-type",
        "text/css=3600",
        "--static-expires-mtime",
        "data\\.bin$ 60",
        "--static-expires-uri",
        "^/static/sub/ 120",
        "--mimefile",
        &mime,
    ]);
    let gzip = get(
        addr,
        "/static/app.js",
        &[("Accept-Encoding", "gzip, deflate")],
    );
    assert_eq!(gzip.status, 200, "{gzip}");
    assert_eq!(gzip.header("Content-Encoding"), Some("gzip"), "{gzip}");
    assert_eq!(gzip.body, b"\x1f\x8b pretend gzip");
    assert_eq!(gzip.header("Vary"), Some("Accept-Encoding"), "{gzip}");
    assert_eq!(
        gzip.header("Content-Type"),
        Some("text/javascript; charset=utf-8")
    );
    let plain = get(addr, "/static/app.js", &[]);
    assert_eq!(plain.header("Content-Encoding"), None, "{plain}");
    assert_eq!(plain.text(), "console.log('plain');\n");
    let refused = get(addr, "/static/app.js", &[("Accept-Encoding", "gzip;q=0")]);
    assert_eq!(refused.header("Content-Encoding"), None, "{refused}");

    let css = get(addr, "/static/app.css", &[]);
    let expires = css.header("Expires").expect("Expires on text/css");
    assert_ne!(Some(expires), css.header("Last-Modified"), "{css}");
    let data = get(addr, "/static/data.bin", &[]);
    assert_eq!(
        data.header("Last-Modified"),
        Some("Sun, 09 Sep 2001 01:46:40 GMT")
    );
    assert_eq!(
        data.header("Expires"),
        Some("Sun, 09 Sep 2001 01:47:40 GMT"),
        "{data}"
    );
    let none = get(addr, "/static/app.js", &[]);
    assert_eq!(none.header("Expires"), None, "{none}");
    let by_uri = get(addr, "/static/sub/index.html", &[]);
    assert!(by_uri.header("Expires").is_some(), "{by_uri}");
    // `mimefile` comes first; the built-in table still fills what it lacks.
    let custom = get(addr, "/static/thing.dat", &[]);
    assert_eq!(
        custom.header("Content-Type"),
        Some("application/x-kaiser-test"),
        "{custom}"
    );
    assert_eq!(
        css.header("Content-Type"),
        Some("text/css; charset=utf-8"),
        "{css}"
    );
}

/// Classic traversal payloads, raw on the wire: none may ever bring back the secret file
/// that sits next to the root (or anything else outside it).
const PAYLOADS: &[&str] = &[
    "/static/../secret.txt",
    "/static/..%2fsecret.txt",
    "/static/..%2Fsecret.txt",
    "/static/%2e%2e/secret.txt",
    "/static/%2E%2E/secret.txt",
    "/static/%2e%2e%2fsecret.txt",
    "/static/.%2e/secret.txt",
    "/static/%2e./secret.txt",
    "/static/%252e%252e/secret.txt",
    "/static/..%252fsecret.txt",
    "/static/%25%32%65%25%32%65/secret.txt",
    "/static/..\\secret.txt",
    "/static/..%5csecret.txt",
    "/static/..%5Csecret.txt",
    "/static/%5c..%5csecret.txt",
    "/static/secret.txt%00.css",
    "/static/..%00/secret.txt",
    "/static/%00../secret.txt",
    "/static/./../secret.txt",
    "/static//../secret.txt",
    "/static/sub/../../secret.txt",
    "/static/sub/..%2f..%2fsecret.txt",
    "/static/....//secret.txt",
    "/static/..;/secret.txt",
    "/static/%c0%ae%c0%ae/secret.txt",
    "/static/%c0%af../secret.txt",
    "/static/..",
    "/static%2f..%2fsecret.txt",
    "/static/../../../../../../../../etc/passwd",
    "/static/leak.txt",
    "/static/up/secret.txt",
    "/static/up/www/../secret.txt",
    "/static/sibling/file.txt",
    "/static/sub/../leak.txt",
    "http://localhost/static/../secret.txt",
    "/../secret.txt",
    "/%2e%2e/secret.txt",
];

fn assert_no_leak(what: &str, answer: &str) {
    assert!(
        !answer.contains(SECRET),
        "{what} leaked the secret:\n{answer}"
    );
    assert!(
        !answer.contains("root:x:0:0"),
        "{what} leaked /etc/passwd:\n{answer}"
    );
}

#[test]
fn traversal_payloads_never_leak_a_file_outside_the_root() {
    let site = Site::new();
    let check = site.dir.join("www").display().to_string();
    let (kaiser, addr) = site.start(&["--check-static", &check, "--static-index", "index.html"]);
    for payload in PAYLOADS {
        let raw = format!("GET {payload} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let answer = raw_exchange(addr, raw.as_bytes());
        assert_no_leak(payload, &answer);
        let status: u16 = answer
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{payload}: no HTTP answer: {answer:?}"));
        assert!(status >= 400, "{payload} answered {status}:\n{answer}");
    }
    // The plainest of them is refused outright, and said so in the log.
    let answer = raw_exchange(
        addr,
        b"GET /static/../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let symlink = get(addr, "/static/leak.txt", &[]);
    assert_eq!(symlink.status, 403, "{symlink}");
    kaiser
        .wait_for_log("static path refused", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    // The server is fine afterwards.
    assert_eq!(get(addr, "/static/app.css", &[]).text(), CSS);
}

#[test]
fn traversal_over_the_uwsgi_protocol_never_leaks() {
    let site = Site::new();
    let dir = TempDir::new("static-uwsgi");
    let map = format!("/static={}", site.root());
    let kaiser = Kaiser::spawn(&[
        "--socket",
        "127.0.0.1:0",
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--static-map",
        &map,
    ]);
    let addr = kaiser
        .wait_for_addr("protocol=\"uwsgi\"", START_TIMEOUT)
        .unwrap();
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    // nginx decodes and normalises before `uwsgi_pass`, but anything may speak uwsgi to
    // the socket: PATH_INFO arrives decoded, with whatever it holds.
    for path_info in [
        "/static/../secret.txt",
        "/static/sub/../../secret.txt",
        "/static/..\\secret.txt",
        "/static/secret.txt\0.css",
        "/static/leak.txt",
        "/static/up/secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/../../../../etc/passwd",
    ] {
        let stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
        let vars = cgi_vars("GET", path_info, None, &[]);
        let response = uwsgi_request(stream, &vars, b"")
            .unwrap_or_else(|e| panic!("{path_info:?}: {e}\n{}", kaiser.logs()));
        assert_no_leak(path_info, &format!("{response}"));
        assert_no_leak(path_info, &response.text());
        assert!(response.status >= 400, "{path_info:?}: {response}");
    }
    let stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
    let ok = uwsgi_request(stream, &cgi_vars("GET", "/static/app.css", None, &[]), b"").unwrap();
    assert_eq!(ok.text(), CSS, "{ok}");
    // As every uwsgi-protocol answer: no `Connection` header for nginx to parse and drop.
    assert_eq!(ok.header("Connection"), None, "{ok}");
    drop(dir);
}

#[test]
fn symlinks_out_of_the_root_need_static_safe() {
    let site = Site::new();
    let (_kaiser, addr) = site.start(&[]);
    assert_eq!(get(addr, "/static/shared.txt", &[]).status, 403);

    let outside = site.dir.join("outside").display().to_string();
    let (_kaiser, addr) = site.start(&["--static-safe", &outside]);
    let shared = get(addr, "/static/shared.txt", &[]);
    assert_eq!(shared.status, 200, "{shared}");
    assert_eq!(shared.text(), "shared through a symlink\n");
    // static-safe names that directory only: not its parent, nor a sibling whose name
    // merely starts the same (uWSGI compares bytes and would allow `www-secret` for `www`).
    assert_eq!(get(addr, "/static/leak.txt", &[]).status, 403);
    assert_eq!(get(addr, "/static/sibling/file.txt", &[]).status, 403);
}

#[test]
fn static_files_through_nginx_uwsgi_pass() {
    let site = Site::new();
    let dir = TempDir::new("static-nginx");
    let socket: PathBuf = dir.join("app.sock");
    let socket_text = socket.display().to_string();
    let map = format!("/static={}", site.root());
    let kaiser = Kaiser::spawn(&[
        "--socket",
        &socket_text,
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--static-map",
        &map,
        "--static-index",
        "index.html",
    ]);
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    let nginx = Nginx::start(&format!(
        "location / {{ include uwsgi_params; uwsgi_pass unix:{}; }}",
        socket.display()
    ));
    let through = |method: &str, target: &str, headers: &[(&str, &str)]| {
        let stream = wait_for_connect(nginx.addr(), START_TIMEOUT).unwrap();
        let mut all = vec![("Connection", "close")];
        all.extend_from_slice(headers);
        http_request(stream, &request_bytes(method, target, &all, b"")).unwrap_or_else(|e| {
            panic!(
                "{target}: {e}\nnginx:\n{}\nkaiser:\n{}",
                nginx.error_log(),
                kaiser.logs()
            )
        })
    };
    let css = through("GET", "/static/app.css", &[]);
    assert_eq!(css.status, 200, "{css}");
    assert_eq!(css.text(), CSS);
    assert_eq!(css.header("Content-Type"), Some("text/css; charset=utf-8"));
    let last_modified = css.header("Last-Modified").unwrap().to_string();
    let etag = css.header("ETag").unwrap().to_string();
    assert_eq!(
        through(
            "GET",
            "/static/app.css",
            &[("If-Modified-Since", &last_modified)]
        )
        .status,
        304
    );
    assert_eq!(
        through("GET", "/static/app.css", &[("If-None-Match", &etag)]).status,
        304
    );
    let part = through("GET", "/static/app.css", &[("Range", "bytes=0-3")]);
    assert_eq!(part.status, 206, "{part}");
    assert_eq!(part.text(), &CSS[..4]);
    let head = through("HEAD", "/static/app.css", &[]);
    assert_eq!(head.status, 200, "{head}");
    assert!(head.body.is_empty());
    let index = through("GET", "/static/sub/", &[]);
    assert_eq!(index.text(), "<h1>index</h1>\n", "{index}");
    let app = through("GET", "/env", &[]);
    assert_eq!(app.status, 200, "the app still answers: {app}");
    let leak = through("GET", "/static/leak.txt", &[]);
    assert_eq!(leak.status, 403, "{leak}");
    assert_no_leak("/static/leak.txt through nginx", &leak.text());
}

/// Reads the stats JSON from a unix stats socket.
fn read_stats(path: &Path) -> serde_json::Value {
    let mut stream = wait_for_unix(path, START_TIMEOUT).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("stats are not JSON ({e}): {text}"))
}

fn core_sum(stats: &serde_json::Value, key: &str) -> u64 {
    stats["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|w| w["cores"].as_array().into_iter().flatten())
        .map(|core| core[key].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn slow_static_downloads_leave_the_request_thread_free() {
    let site = Site::new();
    // Far more than the socket buffers on both sides hold, so a client that does not read
    // leaves most of it unsent.
    const BIG: usize = 48 << 20;
    let big: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
    site.dir.write("www/big.bin", &big);
    let stats = site.dir.join("stats.sock");
    let stats_text = stats.display().to_string();
    // One process with one request thread, and a socket-timeout far longer than the test's
    // patience: a request thread sending the body itself would stall the app's request
    // behind the slow client.
    let (kaiser, addr) = site.start(&[
        "--processes",
        "1",
        "--threads",
        "1",
        "--socket-timeout",
        "120",
        "--stats",
        &stats_text,
    ]);
    let mut slow = wait_for_connect(addr, START_TIMEOUT).unwrap();
    slow.write_all(&request_bytes("GET", "/static/big.bin", &[], b""))
        .unwrap();
    slow.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut first = [0u8; 4096];
    let n = slow.read(&mut first).unwrap();
    assert!(
        String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first[..n])
    );
    // The slow client now reads nothing. The app still answers, on the only thread.
    for _ in 0..3 {
        let answer = get(addr, "/sleep?ms=1", &[]);
        assert_eq!(answer.text(), "slept 1 ms\n", "{answer}");
    }
    kaiser
        .wait_for_log("GET /static/big.bin => generated", START_TIMEOUT)
        .unwrap();
    kaiser
        .wait_for_log("via offload() (HTTP/1.1 200)", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    // The download then completes, whole and correct.
    let mut received = first[..n].to_vec();
    let mut buf = vec![0u8; 1 << 20];
    let head_end = loop {
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = slow.read(&mut buf).unwrap();
        assert!(n > 0, "closed inside the head");
        received.extend_from_slice(&buf[..n]);
    };
    while received.len() - head_end < BIG {
        let n = slow.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed after {} body bytes",
            received.len() - head_end
        );
        received.extend_from_slice(&buf[..n]);
    }
    assert!(
        received[head_end..] == big[..],
        "the body differs from the file"
    );
    // The same connection serves another request (keep-alive after an offloaded body).
    let mut conn = HttpConn::new(slow);
    let next = conn
        .request(&request_bytes("GET", "/static/app.css", &[], b""))
        .unwrap();
    assert_eq!(next.text(), CSS);
    let stats = wait_until(
        "the stats to count static requests",
        START_TIMEOUT,
        |last| {
            let stats = read_stats(&stats);
            *last = stats.to_string();
            Ok((core_sum(&stats, "static_requests") >= 2).then_some(stats))
        },
    )
    .unwrap();
    assert_eq!(core_sum(&stats, "offloaded_requests"), 1, "{stats}");
    let _ = TcpStream::connect(addr);
}

#[test]
fn file_serve_mode_names_the_file_for_the_front_end() {
    let site = Site::new();
    let (_kaiser, addr) = site.start(&["--file-serve-mode", "x-accel-redirect"]);
    let css = get(addr, "/static/app.css", &[]);
    assert_eq!(css.status, 200, "{css}");
    assert!(css.body.is_empty(), "{css}");
    let real = std::fs::canonicalize(site.dir.join("www/app.css")).unwrap();
    assert_eq!(
        css.header("X-Accel-Redirect"),
        Some(real.display().to_string().as_str()),
        "{css}"
    );
    assert_eq!(css.header("Content-Type"), Some("text/css; charset=utf-8"));
    let last_modified = css.header("Last-Modified").unwrap().to_string();
    let cached = get(
        addr,
        "/static/app.css",
        &[("If-Modified-Since", &last_modified)],
    );
    assert_eq!(cached.status, 304, "{cached}");

    let (_kaiser, addr) = site.start(&["--file-serve-mode", "x-sendfile"]);
    let css = get(addr, "/static/app.css", &[]);
    assert_eq!(
        css.header("X-Sendfile"),
        Some(real.display().to_string().as_str()),
        "{css}"
    );
    assert!(css.body.is_empty(), "{css}");
}

#[test]
fn check_static_docroot_serves_under_the_front_ends_document_root() {
    let site = Site::new();
    let kaiser = Kaiser::spawn(&[
        "--socket",
        "127.0.0.1:0",
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--check-static-docroot",
    ]);
    let addr = kaiser
        .wait_for_addr("protocol=\"uwsgi\"", START_TIMEOUT)
        .unwrap();
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    let ask = |path_info: &str, docroot: &str| {
        let mut vars = cgi_vars("GET", path_info, None, &[]);
        for (key, value) in vars.iter_mut() {
            if key == "DOCUMENT_ROOT" {
                *value = docroot.to_string();
            }
        }
        let stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
        uwsgi_request(stream, &vars, b"").unwrap_or_else(|e| panic!("{path_info}: {e}"))
    };
    let root = site.root();
    let css = ask("/app.css", &root);
    assert_eq!(css.text(), CSS, "{css}");
    assert_eq!(ask("/../secret.txt", &root).status, 403);
    assert_eq!(ask("/leak.txt", &root).status, 403);
    let elsewhere = ask("/app.css", "/nonexistent-docroot");
    assert!(
        elsewhere.text().contains("no route for '/app.css'"),
        "{elsewhere}"
    );
}

#[test]
fn a_graceful_stop_finishes_offloaded_downloads() {
    let site = Site::new();
    const BIG: usize = 32 << 20;
    let big: Vec<u8> = (0..BIG).map(|i| (i % 253) as u8).collect();
    site.dir.write("www/big.bin", &big);
    let (mut kaiser, addr) = site.start(&["--socket-timeout", "30"]);
    let mut slow = wait_for_connect(addr, START_TIMEOUT).unwrap();
    slow.write_all(&request_bytes(
        "GET",
        "/static/big.bin",
        &[("Connection", "close")],
        b"",
    ))
    .unwrap();
    slow.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    kaiser
        .wait_for_log("GET /static/big.bin => generated", START_TIMEOUT)
        .unwrap();
    kaiser
        .wait_for_log("via offload()", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    // Stop while most of the file is still to be sent: the worker waits for the transfer.
    kaiser.signal(libc::SIGTERM);
    kaiser.wait_for_log("shutting down", START_TIMEOUT).unwrap();
    // While the client reads nothing, the worker stays (a worker that did not wait would
    // be gone well within this window, taking the transfer with it).
    let early = kaiser.wait_for_log("worker stopped", Duration::from_secs(3));
    assert!(
        early.is_err(),
        "the worker stopped with a download pending:
{}",
        kaiser.logs()
    );
    let mut received = Vec::new();
    slow.read_to_end(&mut received).unwrap();
    let head_end = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    assert_eq!(
        received.len() - head_end,
        BIG,
        "the download was cut short by the stop"
    );
    assert!(
        received[head_end..] == big[..],
        "the body differs from the file"
    );
    let status = kaiser.expect_exit(START_TIMEOUT);
    assert!(status.success(), "{status:?}\n{}", kaiser.logs());
}

/// Over `scgi-socket` a static file gets CGI's `Status:` head, as the app's responses do (the
/// front end, nginx's `scgi_pass`, reads `Status:`); over `scgi-nph-socket` an HTTP status line.
#[test]
fn static_files_over_scgi_get_a_cgi_status_head() {
    let site = Site::new();
    let scgi = site.dir.join("scgi.sock");
    let nph = site.dir.join("nph.sock");
    let map = format!("/static={}", site.root());
    let kaiser = Kaiser::spawn(&[
        "--scgi-socket",
        scgi.to_str().unwrap(),
        "--scgi-nph-socket",
        nph.to_str().unwrap(),
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--static-map",
        &map,
    ]);
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    let request = |path: &Path, method: &str| {
        let mut block = Vec::new();
        for (name, value) in [
            ("CONTENT_LENGTH", "0"),
            ("SCGI", "1"),
            ("REQUEST_METHOD", method),
            ("REQUEST_URI", "/static/app.css"),
            ("PATH_INFO", "/static/app.css"),
            ("QUERY_STRING", ""),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
        ] {
            block.extend_from_slice(name.as_bytes());
            block.push(0);
            block.extend_from_slice(value.as_bytes());
            block.push(0);
        }
        let mut raw = format!("{}:", block.len()).into_bytes();
        raw.extend_from_slice(&block);
        raw.push(b',');
        let mut stream = wait_for_unix(path, START_TIMEOUT).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.write_all(&raw).unwrap();
        let mut out = Vec::new();
        stream.read_to_end(&mut out).unwrap();
        String::from_utf8_lossy(&out).into_owned()
    };
    let cgi = request(&scgi, "GET");
    assert!(cgi.starts_with("Status: 200 OK\r\n"), "{cgi}");
    assert!(cgi.ends_with(CSS), "{cgi}");
    let nph_answer = request(&nph, "GET");
    assert!(
        nph_answer.starts_with("HTTP/1.1 200 OK\r\n"),
        "{nph_answer}"
    );
    assert!(nph_answer.ends_with(CSS), "{nph_answer}");
    drop(kaiser);
}
