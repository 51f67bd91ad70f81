//! Internal routing (`route*`, `error-route*`, `response-route*`) run by the real binary
//! from an INI file, over HTTP and over the uwsgi protocol: redirects with captures, `Host`
//! rules, `return`, `rewrite` into the app, `basicauth` (plain, htpasswd `{SHA}` and
//! crypt), `addvar`/`setpathinfo`, header edits, `static:`/`file:`, `goto`, `donotlog`,
//! `log`, `harakiri`, error, response and final routes; and a bad rule refused with its file
//! and line.

mod common;

use common::*;

/// `alice:wonderland` in `Authorization: Basic`.
const ALICE: &str = "Basic YWxpY2U6d29uZGVybGFuZA==";

fn start() -> Site {
    let dir = TempDir::new("routing");
    dir.write("hello.txt", "hello from a route\n");
    // bob:{SHA} of "builder", carol: DES crypt of "secret" (salt `ab`).
    dir.write(
        "htpasswd",
        "bob:{SHA}9SMYoF5RilWWASry7TjeaKwmpGg=\ncarol:abNANd1rDfiNc\n",
    );
    let ini = format!(
        r#"[uwsgi]
wsgi-file = {app}
route = ^/old/(.*)$ redirect-301:/new/$1
route-host = ^blocked\.example$ break:403 Forbidden
route = ^/gone$ return:410
route = ^/pretty/(\w+)$ rewrite:/env?page=$1
route = ^/private basicauth:kaiser,alice:wonderland
route = ^/private rewrite-last:/env
route = ^/team basicauth:team,{dir}/htpasswd
route = ^/team rewrite-last:/env
route-uri = ^/tagged addvar:ROUTED_BY=kaiser ${{HTTP_HOST}}
route = ^/tagged setpathinfo:/env
route-run = addheader:X-Routed: yes
route = ^/asset static:{dir}/hello.txt
route = ^/download file:filename={dir}/hello.txt,content_type=text/x-test
route-if = startswith:${{PATH_INFO}};/skip goto:skipped
route = ^/skip return:500
route-label = skipped
route = ^/skip return:202
route = ^/pid donotlog:
route = ^/env log:route saw ${{PATH_INFO}} from ${{REMOTE_ADDR}}
error-route-status = 404 redirect:/missing-page
response-route = ^/env addheader:X-Response-Route: on
final-route = ^/env log:final ${{uwsgi[status]}} for ${{PATH_INFO}}
final-route-status = 410 log:final saw a 410
"#,
        app = app("wsgi_suite.py").display(),
        dir = dir.path().display(),
    );
    Site::start(dir, ini)
}

/// The app's `/env` dump as JSON.
fn env(response: &Response) -> serde_json::Value {
    assert_eq!(response.status, 200, "{response}");
    serde_json::from_slice(&response.body).unwrap_or_else(|e| panic!("{e}: {response}"))
}

#[test]
fn routes_answer_rewrite_and_edit_over_http() {
    let site = start();

    let moved = site.get("/old/a/b", &[]);
    assert_eq!(moved.status, 301, "{moved}");
    assert_eq!(moved.header("Location"), Some("/new/a/b"));
    assert_eq!(
        moved.header("X-Routed"),
        None,
        "route-run comes after the redirect"
    );

    let blocked = site.get("/env", &[("Host", "blocked.example")]);
    assert_eq!(blocked.status, 403, "{blocked}");

    let gone = site.get("/gone", &[]);
    assert_eq!((gone.status, gone.text().as_str()), (410, "Gone"));
    // Final routes run after a route's own answer too.
    site.kaiser
        .wait_for_log("final saw a 410", START_TIMEOUT)
        .unwrap();

    let pretty = site.get("/pretty/abc?x=1", &[]);
    let vars = env(&pretty);
    assert_eq!(vars["PATH_INFO"], "/env");
    assert_eq!(vars["QUERY_STRING"], "page=abc&x=1");
    assert_eq!(pretty.header("X-Routed"), Some("yes"));
    assert_eq!(pretty.header("X-Response-Route"), Some("on"));

    let tagged = env(&site.get("/tagged", &[("Host", "example.org")]));
    assert_eq!(tagged["ROUTED_BY"], "kaiser example.org");

    let asset = site.get("/asset", &[]);
    assert_eq!(asset.status, 200, "{asset}");
    assert_eq!(asset.text(), "hello from a route\n");
    assert!(
        asset
            .header("Content-Type")
            .unwrap_or("")
            .starts_with("text/plain"),
        "{asset}"
    );
    assert!(asset.header("Last-Modified").is_some(), "{asset}");
    assert_eq!(asset.header("X-Routed"), Some("yes"));

    let download = site.get("/download", &[]);
    assert_eq!(download.status, 200, "{download}");
    assert_eq!(download.header("Content-Type"), Some("text/x-test"));
    assert_eq!(download.text(), "hello from a route\n");

    let skipped = site.get("/skip", &[]);
    assert_eq!(skipped.status, 202, "goto jumps over the 500: {skipped}");

    let missing = site.get("/nothing-here", &[]);
    assert_eq!(missing.status, 302, "error-route-status 404: {missing}");
    assert_eq!(missing.header("Location"), Some("/missing-page"));
    assert!(
        !missing.text().contains("no route for"),
        "the app's 404 body must be dropped: {missing}"
    );
}

#[test]
fn basicauth_plain_and_htpasswd() {
    let site = start();
    let refused = site.get("/private", &[]);
    assert_eq!(refused.status, 401, "{refused}");
    assert_eq!(
        refused.header("WWW-Authenticate"),
        Some("Basic realm=\"kaiser\"")
    );
    let wrong = site.get("/private", &[("Authorization", "Basic YWxpY2U6bm8=")]);
    assert_eq!(wrong.status, 401, "{wrong}");
    let vars = env(&site.get("/private", &[("Authorization", ALICE)]));
    assert_eq!(vars["REMOTE_USER"], "alice");

    // bob:builder against `{SHA}`, carol:secret against a DES crypt hash.
    let bob = env(&site.get("/team", &[("Authorization", "Basic Ym9iOmJ1aWxkZXI=")]));
    assert_eq!(bob["REMOTE_USER"], "bob");
    let carol = env(&site.get("/team", &[("Authorization", "Basic Y2Fyb2w6c2VjcmV0")]));
    assert_eq!(carol["REMOTE_USER"], "carol");
    let carol_wrong = site.get("/team", &[("Authorization", "Basic Y2Fyb2w6d3Jvbmc=")]);
    assert_eq!(carol_wrong.status, 401, "{carol_wrong}");
    let alice_there = site.get("/team", &[("Authorization", ALICE)]);
    assert_eq!(alice_there.status, 401, "alice is not in the htpasswd file");
    drop(site.dir);
}

#[test]
fn routes_apply_over_the_uwsgi_protocol() {
    let site = start();
    let moved = site.get_uwsgi("/old/x", &[]);
    assert_eq!(moved.status, 301, "{moved}");
    assert_eq!(moved.header("Location"), Some("/new/x"));

    let vars = env(&site.get_uwsgi("/pretty/zed", &[]));
    assert_eq!(vars["PATH_INFO"], "/env");
    assert_eq!(vars["QUERY_STRING"], "page=zed");

    let refused = site.get_uwsgi("/private", &[]);
    assert_eq!(refused.status, 401, "{refused}");
    let vars = env(&site.get_uwsgi("/private", &[("HTTP_AUTHORIZATION", ALICE)]));
    assert_eq!(vars["REMOTE_USER"], "alice");

    let blocked = site.get_uwsgi("/env", &[("HTTP_HOST", "blocked.example")]);
    assert_eq!(blocked.status, 403, "{blocked}");
}

#[test]
fn donotlog_and_log_routes() {
    let site = start();
    let mark = site.kaiser.log_mark();
    assert_eq!(site.get("/pid", &[]).status, 200);
    assert_eq!(site.get("/env", &[]).status, 200);
    site.kaiser
        .wait_for_log_since(mark, "route saw /env from 127.0.0.1", START_TIMEOUT)
        .unwrap();
    site.kaiser
        .wait_for_log_since(mark, "final 200 for /env", START_TIMEOUT)
        .unwrap();
    // The /env request's line comes after the /pid one would have.
    site.kaiser
        .wait_for_log_since(mark, "GET /env =>", START_TIMEOUT)
        .unwrap();
    let logs = site.kaiser.logs_since(mark);
    assert!(
        !logs.contains("GET /pid =>"),
        "donotlog must drop the request line:\n{logs}"
    );
}

#[test]
fn a_bad_rule_is_refused_with_its_file_and_line() {
    let dir = TempDir::new("routing-bad");
    let ini = dir.write(
        "app.ini",
        "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = tests/apps/hello.py\nroute = ^/a frobnicate:x\nroute = ^/b uwsgi:127.0.0.1:3031,0,0\n",
    );
    let ini_arg = ini.display().to_string();
    let mut kaiser = Kaiser::spawn(&["--ini", &ini_arg]);
    let status = kaiser.expect_exit(START_TIMEOUT);
    assert!(!status.success());
    let logs = kaiser.logs();
    assert!(
        logs.contains("app.ini:4")
            && logs.contains("unknown or unsupported route action `frobnicate`"),
        "{logs}"
    );
    assert!(
        logs.contains("app.ini:5") && logs.contains("uwsgi_pass"),
        "{logs}"
    );
}

#[test]
fn a_harakiri_route_bounds_the_request_it_matches() {
    let (kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--route",
        "^/sleep harakiri:1",
        "--harakiri-graceful-timeout",
        "1",
    ]);
    // Other paths have no limit of their own.
    assert_eq!(http_get(addr, "/env").unwrap().status, 200);
    let response = http_get(addr, "/sleep?ms=20000").unwrap();
    assert_eq!(response.status, 504, "{response}\n{}", kaiser.logs());
}
