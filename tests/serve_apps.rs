//! Real frameworks from the test venv (`home = $KAISER_TEST_VENV`): Flask and Django over
//! http-socket and through nginx, and the venv really being the interpreter's
//! (`sys.executable`, `sys.prefix`).

mod common;

use std::net::SocketAddr;

use common::*;

fn start(args: &[&str]) -> (Kaiser, SocketAddr) {
    let venv = venv().display().to_string();
    start_http(&[&["--home", venv.as_str()], args].concat())
}

fn json(response: &Response) -> serde_json::Value {
    serde_json::from_str(&response.text()).unwrap_or_else(|e| panic!("not JSON ({e}): {response}"))
}

#[test]
fn flask_app_from_the_venv_serves_text_json_and_posts() {
    let (kaiser, addr) = start(&[
        "--wsgi-file",
        "tests/apps/flask_app/app.py",
        "--callable",
        "app",
        "--processes",
        "2",
        "--threads",
        "2",
    ]);
    let mut conn = HttpConn::new(wait_for_connect(addr, START_TIMEOUT).unwrap());
    let response = conn.request(&request_bytes("GET", "/", &[], b"")).unwrap();
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "Hello from Flask"),
        "{response}\n{}",
        kaiser.logs()
    );
    let response = conn
        .request(&request_bytes("GET", "/json", &[], b""))
        .unwrap();
    let value = json(&response);
    assert_eq!(value["framework"], "flask", "{response}");
    assert_eq!(value["numbers"], serde_json::json!([1, 2, 3]));

    let response = conn
        .request(&request_bytes(
            "POST",
            "/post?x=1",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            b"name=kaiser&name=uwsgi&empty=",
        ))
        .unwrap();
    let value = json(&response);
    assert_eq!(
        value["form"]["name"],
        serde_json::json!(["kaiser", "uwsgi"]),
        "{response}"
    );
    assert_eq!(value["args"]["x"], serde_json::json!(["1"]));
    let response = conn
        .request(&request_bytes(
            "POST",
            "/post",
            &[("Content-Type", "application/json")],
            br#"{"a": [1, 2]}"#,
        ))
        .unwrap();
    assert_eq!(
        json(&response)["json"],
        serde_json::json!({"a": [1, 2]}),
        "{response}"
    );
    let response = conn
        .request(&request_bytes("GET", "/missing", &[], b""))
        .unwrap();
    assert_eq!(response.status, 404);
}

#[test]
fn flask_through_nginx_with_module_syntax() {
    let dir = TempDir::new("flask");
    let socket = dir.join("flask.sock");
    let socket_text = socket.display().to_string();
    let venv = venv().display().to_string();
    let kaiser = Kaiser::spawn(&[
        "--socket",
        &socket_text,
        "--home",
        &venv,
        "--chdir",
        "tests/apps/flask_app",
        "--module",
        "app:app",
    ]);
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    let nginx = Nginx::start(&format!(
        "location / {{ include uwsgi_params; uwsgi_pass unix:{socket_text}; }}"
    ));
    let response = http_get(nginx.addr(), "/json").unwrap();
    assert_eq!(response.status, 200, "{response}\n{}", kaiser.logs());
    assert_eq!(json(&response)["message"], "hello");
    let stream = wait_for_connect(nginx.addr(), START_TIMEOUT).unwrap();
    let response = http_request(
        stream,
        &request_bytes(
            "POST",
            "/post",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Connection", "close"),
            ],
            b"k=v",
        ),
    )
    .unwrap();
    assert_eq!(
        json(&response)["form"]["k"],
        serde_json::json!(["v"]),
        "{response}"
    );
}

#[test]
fn django_site_from_the_venv_over_http_and_nginx() {
    let (kaiser, addr) = start(&[
        "--chdir",
        "tests/apps/django_site",
        "--module",
        "django_site.wsgi",
        "--threads",
        "2",
    ]);
    let response = http_get(addr, "/hello").unwrap();
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "Hello from Django"),
        "{response}\n{}",
        kaiser.logs()
    );
    let response = http_get(addr, "/json").unwrap();
    let value = json(&response);
    assert_eq!(value["framework"], "django", "{response}");
    assert_eq!(value["path"], "/json");

    let dir = TempDir::new("django");
    let socket = dir.join("django.sock");
    let socket_text = socket.display().to_string();
    let venv = venv().display().to_string();
    let behind = Kaiser::spawn(&[
        "--socket",
        &socket_text,
        "--home",
        &venv,
        "--chdir",
        "tests/apps/django_site",
        "--module",
        "django_site.wsgi:application",
    ]);
    behind.wait_for_log("ready in", START_TIMEOUT).unwrap();
    let nginx = Nginx::start(&format!(
        "location / {{ include uwsgi_params; uwsgi_pass unix:{socket_text}; }}"
    ));
    let stream = wait_for_connect(nginx.addr(), START_TIMEOUT).unwrap();
    let response = http_request(
        stream,
        &request_bytes(
            "GET",
            "/json",
            &[("Host", "django.test"), ("Connection", "close")],
            b"",
        ),
    )
    .unwrap();
    let value = json(&response);
    assert_eq!(
        (value["host"].as_str(), value["method"].as_str()),
        (Some("django.test"), Some("GET")),
        "{response}"
    );
}

#[test]
fn the_venv_is_the_interpreter_sys_executable_and_prefix() {
    let dir = TempDir::new("venv-app");
    let app_path = dir.write(
        "which.py",
        "import json, sys\n\
         def application(environ, start_response):\n\
         \x20   body = json.dumps({'executable': sys.executable, 'prefix': sys.prefix,\n\
         \x20                      'flask': __import__('flask').__file__}).encode()\n\
         \x20   start_response('200 OK', [('Content-Type', 'application/json')])\n\
         \x20   return [body]\n",
    );
    let app_text = app_path.display().to_string();
    let (_kaiser, addr) = start(&["--wsgi-file", &app_text]);
    let value = json(&http_get(addr, "/").unwrap());
    let venv = venv();
    assert_eq!(
        value["executable"].as_str(),
        Some(venv.join("bin/python").to_str().unwrap()),
        "sys.executable must be the venv's python, so multiprocessing never re-runs kaiser"
    );
    assert_eq!(
        value["prefix"].as_str(),
        Some(venv.to_str().unwrap()),
        "sys.prefix"
    );
    assert!(
        value["flask"]
            .as_str()
            .unwrap_or("")
            .starts_with(venv.to_str().unwrap()),
        "flask must come from the venv: {value}"
    );

    // --check-config imports the app with the same interpreter set-up.
    let venv_text = venv.display().to_string();
    let mut check = Kaiser::spawn(&[
        "--home",
        &venv_text,
        "--wsgi-file",
        "tests/apps/flask_app/app.py",
        "--callable",
        "app",
        "--http-socket",
        "127.0.0.1:0",
        "--check-config",
    ]);
    let status = check.expect_exit(START_TIMEOUT);
    assert_eq!(
        status.code(),
        Some(0),
        "--check-config of the Flask app:\n{}",
        check.logs()
    );
}
