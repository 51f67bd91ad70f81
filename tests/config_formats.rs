//! uWSGI's YAML, JSON and XML config files run unchanged: as a bare argument, with
//! `--yaml`/`-j`/`--xml`, picked by extension from an INI `include`, with the section or id
//! after a colon; a broken file stops the start with the file and line.

mod common;

use std::time::Duration;

use common::*;

const EXIT: Duration = Duration::from_secs(20);

/// Starts kaiser with `args` (a config file that sets an HTTP socket on port 0) and returns
/// it with the address it listens on, once its workers are ready.
fn start(args: &[&str]) -> (Kaiser, std::net::SocketAddr) {
    let kaiser = Kaiser::spawn(args);
    let addr = kaiser
        .wait_for_addr("protocol=\"http\"", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("kaiser {args:?} did not report its socket: {e}"));
    kaiser
        .wait_for_log("ready in", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("kaiser {args:?} never became ready: {e}"));
    (kaiser, addr)
}

fn print_config(args: &[&str]) -> String {
    let mut full = vec!["--print-config"];
    full.extend_from_slice(args);
    let mut kaiser = Kaiser::spawn(&full);
    let status = kaiser.expect_exit(EXIT);
    assert_eq!(status.code(), Some(0), "{args:?}:\n{}", kaiser.logs());
    assert!(kaiser.wait_output_closed(EXIT), "output never closed");
    kaiser.logs()
}

#[test]
fn a_yaml_file_given_as_argument_serves() {
    let dir = TempDir::new("yaml");
    let yaml = dir.write(
        "app.yaml",
        "# uWSGI's YAML subset\n\
         uwsgi:\n\
         \x20 http-socket: 127.0.0.1:0\n\
         \x20 wsgi-file: tests/apps/hello.py\n\
         \x20 processes: 2\n\
         \x20 env: \"FROM_YAML=%n\"\n\
         other:\n\
         \x20 processes: 9\n",
    );
    let (kaiser, addr) = start(&[&yaml.display().to_string()]);
    let response = http_get(addr, "/").unwrap();
    assert_eq!(response.text(), "Hello World", "{response}");
    drop(kaiser);

    let shown = print_config(&["-y", &yaml.display().to_string()]);
    assert!(
        shown.contains("processes = 2\n") && shown.contains("env = FROM_YAML=app\n"),
        "{shown}"
    );
}

#[test]
fn json_and_xml_files_serve_and_pick_their_section() {
    let dir = TempDir::new("json-xml");
    let json = dir.write(
        "app.json",
        "{\n  \"uwsgi\": {\"processes\": 9},\n  \"prod\": {\n    \"http-socket\": \"127.0.0.1:0\",\n    \"wsgi-file\": \"tests/apps/hello.py\",\n    \"env\": [\"A=1\", \"B=2\"],\n    \"processes\": 2\n  }\n}\n",
    );
    let spec = format!("{}:prod", json.display());
    let (kaiser, addr) = start(&["--json", &spec]);
    assert_eq!(http_get(addr, "/").unwrap().text(), "Hello World");
    drop(kaiser);
    let shown = print_config(&[&spec]);
    assert!(
        shown.contains("env = A=1\nenv = B=2\n") && shown.contains("processes = 2\n"),
        "{shown}"
    );

    // An XML file with two configurations, the app as Python code in a CDATA section,
    // included from an INI file by its extension.
    dir.write(
        "app.xml",
        "<?xml version=\"1.0\"?>\n<all>\n  <uwsgi id=\"dev\"><processes>9</processes></uwsgi>\n  <uwsgi id=\"prod\">\n    <http-socket>127.0.0.1:0</http-socket>\n    <processes>2</processes>\n    <![CDATA[\ndef application(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'from xml &amp; cdata']\n]]>\n  </uwsgi>\n</all>\n",
    );
    let ini = dir.write("app.ini", "[uwsgi]\ninclude = %dapp.xml:prod\n");
    let (_kaiser, addr) = start(&[&ini.display().to_string()]);
    assert_eq!(http_get(addr, "/").unwrap().text(), "from xml &amp; cdata");
}

#[test]
fn a_broken_file_names_its_line_and_nothing_starts() {
    let dir = TempDir::new("broken");
    for (name, text, expected) in [
        (
            "bad.json",
            "{\"uwsgi\": {\n  \"processes\": 2,\n}}\n",
            "bad.json:3: json: invalid JSON: expected a member name in double quotes",
        ),
        (
            "bad.xml",
            "<uwsgi>\n<processes>2</workers>\n</uwsgi>\n",
            "bad.xml:2: xml: invalid XML: `</workers>` closes `<processes>` (opened at line 2)",
        ),
        (
            "bad.yaml",
            "uwsgi:\n  wsgi-file: tests/apps/hello.py\n  processes: two\n",
            "bad.yaml:3: processes: expected a whole number, got `two`",
        ),
    ] {
        let path = dir.write(name, text);
        let mut kaiser = Kaiser::spawn(&[&path.display().to_string()]);
        let status = kaiser.expect_exit(EXIT);
        assert_eq!(status.code(), Some(1), "{name}:\n{}", kaiser.logs());
        assert!(kaiser.wait_output_closed(EXIT), "output never closed");
        let logs = kaiser.logs();
        assert!(
            logs.contains(expected),
            "{name}: expected `{expected}` in:\n{logs}"
        );
    }
}

/// One configuration written as INI, YAML, JSON and XML: `--print-config` shows the same
/// effective options for each.
#[test]
fn the_same_options_in_four_formats_give_the_same_configuration() {
    let options: &[(&str, &str)] = &[
        ("socket", "127.0.0.1:3031"),
        ("http-socket", "127.0.0.1:8080"),
        ("chdir", "/srv/app"),
        ("module", "mysite.wsgi:application"),
        ("master", "true"),
        ("processes", "4"),
        ("threads", "2"),
        ("env", "DJANGO_SETTINGS_MODULE=mysite.settings"),
        ("env", "LANG=en_US.UTF-8"),
        ("harakiri", "30"),
        ("max-requests", "5000"),
        ("add-header", "X-Served-By: kaiser"),
        ("static-map", "/static=/srv/app/static"),
        ("log-format", "%(addr) %(method) %(uri) %(status)"),
        ("vacuum", "true"),
    ];
    let dir = TempDir::new("four-formats");
    let mut ini = String::from("[uwsgi]\n");
    let mut yaml = String::from("uwsgi:\n");
    let mut xml = String::from("<uwsgi>\n");
    let mut json_keys: Vec<(&str, Vec<&str>)> = Vec::new();
    for (key, value) in options {
        ini.push_str(&format!("{key} = {value}\n"));
        yaml.push_str(&format!("  {key}: {value}\n"));
        xml.push_str(&format!("  <{key}>{value}</{key}>\n"));
        match json_keys.iter_mut().find(|(k, _)| k == key) {
            Some((_, values)) => values.push(value),
            None => json_keys.push((key, vec![value])),
        }
    }
    xml.push_str("</uwsgi>\n");
    let members: Vec<String> = json_keys
        .iter()
        .map(|(key, values)| {
            let values: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
            format!("    {key:?}: [{}]", values.join(", "))
        })
        .collect();
    let json = format!("{{\n  \"uwsgi\": {{\n{}\n  }}\n}}\n", members.join(",\n"));
    let from_ini = print_config(&[&dir.write("app.ini", &ini).display().to_string()]);
    assert!(from_ini.contains("processes = 4\n"), "{from_ini}");
    for (name, text) in [("app.yaml", yaml), ("app.json", json), ("app.xml", xml)] {
        let path = dir.write(name, &text);
        let shown = print_config(&[&path.display().to_string()]);
        assert_eq!(shown, from_ini, "{name}:\n{text}");
    }
}
