use super::*;

/// `expected`: `line:key=value` items, then `!line:message` for errors and `?line:message`
/// for warnings, separated by ` | `; a leading `-` means the section was not found.
fn check(format: Format, text: &str, section: &str, expected: &str) {
    let parsed = parse(format, text, section);
    let mut rendered: Vec<String> = Vec::new();
    if !parsed.section_found {
        rendered.push("-".to_string());
    }
    rendered.extend(
        parsed
            .entries
            .iter()
            .map(|e| format!("{}:{}={}", e.line, e.key, e.value)),
    );
    rendered.extend(parsed.notes.iter().map(|note| {
        let mark = if note.error { '!' } else { '?' };
        format!("{mark}{}:{}", note.line, note.message)
    }));
    assert_eq!(rendered.join(" | "), expected, "{format:?} {text:?}");
}

fn yaml(text: &str, expected: &str) {
    check(Format::Yaml, text, "uwsgi", expected);
}

fn json(text: &str, expected: &str) {
    check(Format::Json, text, "uwsgi", expected);
}

fn xml(text: &str, expected: &str) {
    check(Format::Xml, text, "", expected);
}

#[test]
fn yaml_as_uwsgi_reads_it() {
    yaml(
        "uwsgi:\n  socket: :3031\n  master: true",
        "2:socket=:3031 | 3:master=true",
    );
    yaml(
        "uwsgi:\n  socket: a\n  socket: b",
        "2:socket=a | 3:socket=b",
    );
    yaml("uwsgi:\n\tprocesses:\t4", "2:processes=4");
    yaml(
        "uwsgi:\n  module: \"app:application\"",
        "2:module=app:application",
    );
    yaml("uwsgi:\n  env: 'A=it''s'", "2:env=A=it's");
    yaml("uwsgi:\n  http-socket: [::1]:80", "2:http-socket=[::1]:80");
    yaml("uwsgi:\n  route: ^/a: b", "2:route=^/a: b");
    yaml("uwsgi:\r\n  socket: :1\r\n", "2:socket=:1");
    // Other sections, comments, blank lines and the document marker.
    yaml(
        "---\n# comment\nother:\n  socket: :1\n\nuwsgi:\n  # inside\n\n  socket: :2\nafter:\n  socket: :3\n",
        "9:socket=:2",
    );
    check(
        Format::Yaml,
        "uwsgi:\n  a: 1\nprod:\n  b: 2\n",
        "prod",
        "4:b=2",
    );
    yaml("other:\n  a: 1\n", "-");
    // A nested `uwsgi:` is not the section.
    yaml("app:\n  uwsgi:\n    a: 1\n", "-");
}

#[test]
fn yaml_lists_and_where_uwsgi_stops() {
    yaml(
        "uwsgi:\n  socket:\n    - :1\n    - ':2'\n  master: 1",
        "3:socket=:1 | 4:socket=:2 | 5:master=1",
    );
    yaml(
        "uwsgi:\n  master:\n  processes: 2",
        "2:master= | 3:processes=2 | ?2:`master:` has no value; kaiser reads it as an empty value, as a bare INI key (uWSGI's YAML reader stops reading the section here)",
    );
    yaml(
        "uwsgi:\n  a: 1\n  just words\n  b: 2",
        "2:a=1 | ?3:`just words` is not `key: value`: uWSGI stops reading the `uwsgi` section here, and so does kaiser (the lines after it are ignored)",
    );
    yaml(
        "uwsgi:\n  a: 1\n  - x\n  b: 2",
        "2:a=1 | ?3:`- x` is not `key: value`: uWSGI stops reading the `uwsgi` section here, and so does kaiser (the lines after it are ignored)",
    );
    yaml(
        "uwsgi:\n  static-map: /s=/srv#x\n  a: 1 # fine",
        "2:static-map=/s=/srv | 3:a=1 | ?2:`#` starts a comment in uWSGI's YAML reader even inside a value, so `static-map` is `/s=/srv`",
    );
}

#[test]
fn json_as_uwsgi_reads_it() {
    json(
        "{\"uwsgi\": {\"socket\": \":3031\", \"master\": true, \"processes\": 4}}",
        "1:socket=:3031 | 1:master=1 | 1:processes=4",
    );
    json(
        "{\n \"uwsgi\": {\n  \"socket\": [\":1\", \":2\"],\n  \"vacuum\": false,\n  \"x\": null\n }\n}",
        "3:socket=:1 | 3:socket=:2 | 4:vacuum=0 | 5:x=0",
    );
    // Order is the file's, not sorted.
    json(
        "{\"uwsgi\": {\"z\": \"1\", \"a\": \"2\", \"m\": \"3\"}}",
        "1:z=1 | 1:a=2 | 1:m=3",
    );
    json(
        "{\"uwsgi\": {\"e\": \"a\\tb\\u00e9\\ud83d\\ude00\"}}",
        "1:e=a\tbé😀",
    );
    check(
        Format::Json,
        "{\"uwsgi\": {\"a\": \"1\"}, \"prod\": {\"b\": \"2\"}}",
        "prod",
        "1:b=2",
    );
    json(
        "{\"uwsgi\": {\"a\": \"1\", \"b\": \"2\", \"a\": \"3\"}}",
        "1:a=3 | 1:b=2 | ?1:`a` is repeated in the object, so this value replaces the earlier one (use an array to repeat an option)",
    );
    json(
        "{\"uwsgi\": {\"r\": 1.5, \"o\": {\"x\": 1}}}",
        "1:r=1.5 | ?1:uWSGI ignores `r` with the non-integer `1.5`; kaiser uses it as written | ?1:`o` holds a nested array or object, which is ignored (as uWSGI does)",
    );
}

#[test]
fn json_errors_name_the_line() {
    json(
        "{\"other\": {}}",
        "- | !1:there is no object named `uwsgi` in the JSON document",
    );
    json(
        "{\"uwsgi\": [1]}",
        "- | !1:`uwsgi` must be an object of options",
    );
    json("[]", "- | !1:the JSON document is not an object");
    json(
        "{\n\"uwsgi\": {\n\"a\": \"1\",\n}\n}",
        "- | !4:invalid JSON: expected a member name in double quotes",
    );
    json(
        "{\"uwsgi\": {\"a\": 01}}",
        "- | !1:invalid JSON: invalid number `01`",
    );
    json(
        "{\"uwsgi\": {}} x",
        "- | !1:invalid JSON: text after the end of the document",
    );
    json(
        "{\"uwsgi\": {\"a\": \"1",
        "- | !1:invalid JSON: unterminated string",
    );
    json(
        &"[".repeat(100),
        "- | !1:invalid JSON: nested more than 64 deep",
    );
}

#[test]
fn xml_app_with_a_script_element_is_a_mount() {
    // uWSGI 0.9's form, still read by uWSGI 2.0's `xmlconf.c`.
    xml(
        "<uwsgi>\n  <app mountpoint=\"/\">\n    <script>django_wsgi</script>;\n  </app>\n</uwsgi>",
        "2:mount=/=django_wsgi",
    );
    xml(
        "<uwsgi><app mountpoint=\"/\"></app><module>a</module></uwsgi>",
        "1:module=a",
    );
}

#[test]
fn xml_as_uwsgi_reads_it() {
    xml(
        "<?xml version=\"1.0\"?>\n<uwsgi>\n  <socket>:3031</socket>\n  <master/>\n  <!-- comment -->\n  <env>A=&lt;b&gt; &amp;&#65;</env>\n  <processes>\n    4\n  </processes>\n</uwsgi>\n",
        "3:socket=:3031 | 4:master=1 | 6:env=A=<b> &A | 7:processes=4",
    );
    xml(
        "<uwsgi><socket>:1</socket><socket>:2</socket></uwsgi>",
        "1:socket=:1 | 1:socket=:2",
    );
    xml(
        "<uwsgi><![CDATA[import app\napplication = app.app]]></uwsgi>",
        "1:eval=import app\napplication = app.app",
    );
    xml(
        "<uwsgi><app mountpoint=\"/x\">x.py</app><app domain='a.com'>y.py</app></uwsgi>",
        "1:mount=/x=x.py | 1:mount=a.com|=y.py",
    );
    // Several configurations in one file, chosen by id.
    let many = "<all>\n<uwsgi id=\"dev\"><a>1</a></uwsgi>\n<uwsgi id=\"prod\"><a>2</a><b id=\"dev\">3</b><c id=\"prod\">4</c></uwsgi>\n</all>";
    check(Format::Xml, many, "prod", "3:a=2 | 3:c=4");
    check(Format::Xml, many, "", "2:a=1");
}

#[test]
fn xml_errors_name_the_line() {
    xml(
        "<other><a>1</a></other>",
        "- | !1:there is no `<uwsgi>` element (the root is `<other>`)",
    );
    xml(
        "<uwsgi>\n<a>1</b>\n</uwsgi>",
        "- | !2:invalid XML: `</b>` closes `<a>` (opened at line 2)",
    );
    xml(
        "<uwsgi>\n<a>1</a>\n",
        "- | !3:invalid XML: `<uwsgi>` (line 1) is never closed",
    );
    xml(
        "<uwsgi><a>&bogus;</a></uwsgi>",
        "- | !1:invalid XML: unknown entity `&bogus;`",
    );
    xml(
        "<uwsgi>\n<a><b>1</b></a></uwsgi>",
        "!2:`<a>` holds the element `<b>`; an option's value is text",
    );
    xml("", "- | !1:invalid XML: no root element");
}

#[test]
fn formats_by_option_and_extension() {
    assert_eq!(Format::of_option("yml"), Some(Format::Yaml));
    assert_eq!(Format::of_option("js"), Some(Format::Json));
    assert_eq!(Format::of_option("xmlconfig"), Some(Format::Xml));
    assert_eq!(Format::of_option("include"), None);
    assert_eq!(Format::of_path("/etc/app.yaml"), Format::Yaml);
    assert_eq!(Format::of_path("app.js"), Format::Json);
    assert_eq!(Format::of_path("app.conf"), Format::Ini);
}

mod never_panic {
    use super::*;
    use proptest::prelude::*;

    /// Text made of the characters the three syntaxes care about, plus multi-byte ones, so
    /// the readers' slicing meets every boundary.
    fn config_text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("uwsgi".to_string()),
                Just(": ".to_string()),
                Just("\n  ".to_string()),
                "[-#:\"'{}\\[\\],<>/=!?&;\\\\ \t\r\nCDATAxé😀0-9a-z]{0,4}",
            ],
            0..40,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn the_readers_never_panic(text in config_text()) {
            for format in [Format::Yaml, Format::Json, Format::Xml] {
                let parsed = parse(format, &text, "uwsgi");
                let lines = text.split('\n').count().max(1);
                for entry in &parsed.entries {
                    prop_assert!(entry.line >= 1 && entry.line <= lines, "{format:?} line {} of {lines}", entry.line);
                }
            }
        }
    }
}
