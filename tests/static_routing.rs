//! Static files under internal routing, run by the real binary from an INI file: as in
//! uWSGI (`core/static.c` applies `uwsgi.routes` once the file is found, before sending it),
//! `basicauth` protects a `static-map` file, `addheader` edits its head, `break` refuses it,
//! the response and final tables see it, and `logvar`/`donotlog` shape its request line; over
//! HTTP and the uwsgi protocol. And
//! `log-format`'s request variables (`%(host)`, `%(uagent)`, `%(referer)`, `%(var.NAME)`,
//! `%(tmicros)`) filled for static requests as for the app's.

mod common;

use std::io::Read;

use common::*;

/// `alice:wonderland` in `Authorization: Basic`.
const ALICE: &str = "Basic YWxpY2U6d29uZGVybGFuZA==";
const CSS: &str = "body { color: #123456 }\n";
const SECRET: &str = "not for the public\n";

/// A `static-map` of `www/` with routes for it in `lines` (`{www}`: the root).
fn start(label: &str, lines: &str) -> Site {
    let dir = TempDir::new(label);
    std::fs::create_dir_all(dir.join("www/private")).unwrap();
    dir.write("www/app.css", CSS);
    dir.write("www/private/report.txt", SECRET);
    dir.write("www/refused.txt", SECRET);
    dir.write("outside.txt", SECRET);
    std::os::unix::fs::symlink(dir.join("outside.txt"), dir.join("www/leak.txt")).unwrap();
    let www = dir.join("www").display().to_string();
    let ini = format!(
        "[uwsgi]\nwsgi-file = {app}\nstatic-map = /static={www}\n{lines}\n",
        app = app("wsgi_suite.py").display(),
        lines = lines
            .replace("{www}", &www)
            .replace("{dir}", &dir.path().display().to_string()),
    );
    Site::start(dir, ini)
}

const ROUTES: &str = r#"route = ^/static/private/ basicauth:kaiser,alice:wonderland
route = ^/static/refused\.txt$ break:403 Forbidden
route = ^/static/ addheader:X-Static-Route: yes
response-route = ^/static/app\.css addheader:X-Response-Route: on
final-route = ^/static/ log:final ${uwsgi[status]} for ${PATH_INFO}
"#;

#[test]
fn basicauth_protects_a_static_map_file() {
    let site = start("static-routing-auth", ROUTES);
    let refused = site.get("/static/private/report.txt", &[]);
    assert_eq!(refused.status, 401, "{refused}");
    assert_eq!(
        refused.header("WWW-Authenticate"),
        Some("Basic realm=\"kaiser\""),
        "{refused}"
    );
    assert!(!refused.text().contains(SECRET), "{refused}");
    let wrong = site.get(
        "/static/private/report.txt",
        &[("Authorization", "Basic YWxpY2U6bm8=")],
    );
    assert_eq!(wrong.status, 401, "{wrong}");
    let allowed = site.get("/static/private/report.txt", &[("Authorization", ALICE)]);
    assert_eq!(allowed.status, 200, "{allowed}");
    assert_eq!(allowed.text(), SECRET);
    assert_eq!(
        allowed.header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );

    // The same over the uwsgi protocol (nginx's uwsgi_pass).
    let refused = site.get_uwsgi("/static/private/report.txt", &[]);
    assert_eq!(refused.status, 401, "{refused}");
    assert!(!refused.text().contains(SECRET), "{refused}");
    let allowed = site.get_uwsgi(
        "/static/private/report.txt",
        &[("HTTP_AUTHORIZATION", ALICE)],
    );
    assert_eq!(allowed.status, 200, "{allowed}");
    assert_eq!(allowed.text(), SECRET);
}

#[test]
fn addheader_and_break_routes_apply_to_static_files() {
    let site = start("static-routing-edit", ROUTES);
    let css = site.get("/static/app.css", &[]);
    assert_eq!(css.status, 200, "{css}");
    assert_eq!(css.text(), CSS);
    assert_eq!(css.header("X-Static-Route"), Some("yes"), "{css}");
    assert_eq!(css.header("Content-Type"), Some("text/css; charset=utf-8"));
    assert_eq!(css.header("X-Response-Route"), Some("on"), "{css}");
    site.kaiser
        .wait_for_log("final 200 for /static/app.css", START_TIMEOUT)
        .unwrap();
    // The file's validators and ranges still work under routes.
    let etag = css.header("ETag").expect("an ETag").to_string();
    let cached = site.get("/static/app.css", &[("If-None-Match", &etag)]);
    assert_eq!(cached.status, 304, "{cached}");
    assert_eq!(cached.header("X-Static-Route"), Some("yes"), "{cached}");
    let part = site.get("/static/app.css", &[("Range", "bytes=0-3")]);
    assert_eq!(part.status, 206, "{part}");
    assert_eq!(part.text(), "body");

    // A path out of the root is refused (403) after the routes ran, as it reaches them in
    // uWSGI (which passes it on to the app).
    let leak = site.get("/static/leak.txt", &[]);
    assert_eq!(leak.status, 403, "{leak}");
    assert_eq!(leak.header("X-Static-Route"), Some("yes"), "{leak}");
    assert!(!leak.text().contains(SECRET), "{leak}");

    let refused = site.get("/static/refused.txt", &[]);
    assert_eq!(refused.status, 403, "{refused}");
    assert!(!refused.text().contains(SECRET), "{refused}");
    let refused = site.get_uwsgi("/static/refused.txt", &[]);
    assert_eq!(refused.status, 403, "{refused}");
    assert!(!refused.text().contains(SECRET), "{refused}");

    let css = site.get_uwsgi("/static/app.css", &[]);
    assert_eq!(css.status, 200, "{css}");
    assert_eq!(css.text(), CSS);
    assert_eq!(css.header("X-Static-Route"), Some("yes"), "{css}");
}

/// The first line printed since `mark` that contains `needle`.
fn line_since(site: &Site, mark: usize, needle: &str) -> String {
    let found = site
        .kaiser
        .wait_for_log_since(mark, needle, START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", site.kaiser.logs()));
    found
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or(&found)
        .to_string()
}

#[test]
fn log_format_request_variables_are_filled_for_static_requests() {
    // No routes: the static files' own path.
    let site = start(
        "static-log-vars",
        "log-format = REQ %(method) %(uri) %(status) ref=%(referer) ua=%(uagent) host=%(host) id=%(var.HTTP_X_REQUEST_ID) tmicros=%(tmicros)\n",
    );
    let mark = site.kaiser.log_mark();
    let headers = [
        ("Referer", "http://example.test/from"),
        ("User-Agent", "static-agent/1.0"),
        ("Host", "files.example.test"),
        ("X-Request-Id", "req-42"),
    ];
    assert_eq!(site.get("/static/app.css", &headers).status, 200);
    let line = line_since(&site, mark, "REQ GET /static/app.css 200");
    for expected in [
        "ref=http://example.test/from",
        "ua=static-agent/1.0",
        "host=files.example.test",
        "id=req-42",
    ] {
        assert!(line.contains(expected), "{expected} missing from: {line}");
    }
    let tmicros: u64 = line
        .split("tmicros=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no tmicros in: {line}"));
    assert!(
        tmicros > 1_600_000_000_000_000,
        "tmicros is the request's start: {line}"
    );

    // Over the uwsgi protocol the front end's variables fill them.
    let mark = site.kaiser.log_mark();
    let vars = [
        ("HTTP_REFERER", "http://example.test/uwsgi"),
        ("HTTP_USER_AGENT", "nginx-agent"),
        ("HTTP_X_REQUEST_ID", "req-43"),
    ];
    assert_eq!(site.get_uwsgi("/static/app.css", &vars).status, 200);
    let line = line_since(&site, mark, "REQ GET /static/app.css 200");
    for expected in [
        "ref=http://example.test/uwsgi",
        "ua=nginx-agent",
        "host=localhost",
        "id=req-43",
    ] {
        assert!(line.contains(expected), "{expected} missing from: {line}");
    }
}

#[test]
fn logvar_and_donotlog_routes_shape_a_static_request_line() {
    let site = start(
        "static-routing-log",
        "log-format = REQ %(method) %(uri) %(status) area=%(area) ua=%(uagent) user=%(user)\n\
         route = ^/static/app\\.css logvar:area=styles\n\
         route = ^/static/refused donotlog:\n\
         route = ^/static/private/ basicauth:kaiser,alice:wonderland\n\
         route = ^/env basicauth:kaiser,alice:wonderland\n",
    );
    let mark = site.kaiser.log_mark();
    let headers = [("User-Agent", "routed-agent")];
    assert_eq!(site.get("/static/refused.txt", &headers).status, 200);
    assert_eq!(site.get("/static/app.css", &headers).status, 200);
    let line = line_since(&site, mark, "REQ GET /static/app.css 200");
    assert!(line.contains("area=styles ua=routed-agent"), "{line}");
    // One request thread: the refused file's line would have come first.
    let logs = site.kaiser.logs_since(mark);
    assert!(
        !logs.contains("REQ GET /static/refused.txt"),
        "donotlog drops a static request's line:\n{logs}"
    );

    // The user basicauth let in is the line's %(user), as uWSGI's `remote_user`, for a static
    // file and for the app.
    let auth = [("Authorization", ALICE)];
    assert_eq!(site.get("/static/private/report.txt", &auth).status, 200);
    let line = line_since(&site, mark, "REQ GET /static/private/report.txt 200");
    assert!(line.ends_with("user=alice"), "{line}");
    assert_eq!(site.get("/env", &auth).status, 200);
    let line = line_since(&site, mark, "REQ GET /env 200");
    assert!(line.ends_with("user=alice"), "{line}");
    // And nothing of it stays for the thread's next request.
    let mark = site.kaiser.log_mark();
    assert_eq!(site.get("/static/app.css", &[]).status, 200);
    let line = line_since(&site, mark, "REQ GET /static/app.css 200");
    assert!(line.ends_with("user=-"), "{line}");
}

/// The sum of `key` over every core in the stats server's answer.
fn core_sum(site: &Site, key: &str) -> u64 {
    let mut stream = wait_for_unix(&site.dir.join("stats.sock"), START_TIMEOUT).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let stats: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("stats are not JSON ({e}): {text}"));
    stats["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|w| w["cores"].as_array().into_iter().flatten())
        .map(|core| core[key].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn requests_a_route_answers_count_in_routed_requests() {
    let site = start(
        "static-routing-stats",
        &format!("stats = {{dir}}/stats.sock\nroute = ^/gone$ return:410\n{ROUTES}"),
    );
    // Answered by routes: a 401 for a static file, a refused static file, an app path.
    assert_eq!(site.get("/static/private/report.txt", &[]).status, 401);
    assert_eq!(site.get("/static/refused.txt", &[]).status, 403);
    assert_eq!(site.get("/gone", &[]).status, 410);
    // Not answered by routes (an `addheader` goes on): a static file, the app.
    assert_eq!(site.get("/static/app.css", &[]).status, 200);
    assert_eq!(site.get("/env", &[]).status, 200);
    // The request is counted after its answer went out: wait for the fifth.
    let counts = wait_until("five requests counted", START_TIMEOUT, |seen| {
        let counts = (
            core_sum(&site, "requests"),
            core_sum(&site, "routed_requests"),
            core_sum(&site, "static_requests"),
        );
        *seen = format!("{counts:?}");
        Ok((counts.0 == 5).then_some(counts))
    });
    // As in uWSGI, a static file a route answered for is a routed request, not a static one.
    assert_eq!(
        counts,
        Ok((5, 3, 1)),
        "(requests, routed_requests, static_requests)\n{}",
        site.kaiser.logs()
    );
}
