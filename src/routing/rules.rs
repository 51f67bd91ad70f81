//! Route lines (`route = REGEX ACTION:ARGS`, `route-if = COND:ARGS ACTION:ARGS`, …) parsed
//! and checked once, when the configuration is read: the regular expressions are compiled,
//! the action and condition names are known, the templates are parsed.
//!
//! The syntax is uWSGI's (core/routing.c, `uwsgi_opt_add_route`): the subject's part ends at
//! the first space, the action's name at the first colon after it. It imports nothing else
//! from the crate, so that `config` can use it; it does no I/O.

use super::template::Template;

/// The four tables uWSGI keeps, by the option's prefix.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteTables {
    /// `route*`: before the app.
    pub request: Table,
    /// `error-route*`: when the response's status is known (uWSGI runs them for every
    /// status; `error-route-status = 404 …` is how configs pick errors).
    pub error: Table,
    /// `response-route*`: when the response's head is about to be sent.
    pub response: Table,
    /// `final-route*`: after the response.
    pub final_: Table,
    /// `collect-header`/`pull-header`: response headers copied into request variables
    /// before the error and response tables run.
    pub collect: Vec<CollectHeader>,
}

/// `collect-header = HEADER VAR` (`pull-header`: and drop the header from the response).
#[derive(Debug, Clone, PartialEq)]
pub struct CollectHeader {
    pub header: Vec<u8>,
    pub var: Vec<u8>,
    pub pull: bool,
}

impl RouteTables {
    /// Adds a `collect-header` (`pull` false) or `pull-header` line: `HEADER VAR`.
    pub fn collect(&mut self, value: &str, pull: bool) -> Result<(), String> {
        let Some((header, var)) = value.trim().split_once(' ') else {
            return Err(format!("expected `HEADER VAR`, got `{value}`"));
        };
        self.collect.push(CollectHeader {
            header: header.as_bytes().to_vec(),
            var: var.trim().as_bytes().to_vec(),
            pull,
        });
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// `route-label = NAME`: a target for `goto`.
    Label(String),
    Step(Step),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub test: Test,
    pub action: Action,
}

/// The request variables the subject options match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    PathInfo,
    RequestUri,
    QueryString,
    HttpHost,
    RemoteAddr,
    UserAgent,
    Referer,
    RemoteUser,
}

impl Subject {
    pub fn var(self) -> &'static str {
        match self {
            Subject::PathInfo => "PATH_INFO",
            Subject::RequestUri => "REQUEST_URI",
            Subject::QueryString => "QUERY_STRING",
            Subject::HttpHost => "HTTP_HOST",
            Subject::RemoteAddr => "REMOTE_ADDR",
            Subject::UserAgent => "HTTP_USER_AGENT",
            Subject::Referer => "HTTP_REFERER",
            Subject::RemoteUser => "REMOTE_USER",
        }
    }
}

/// A compiled regular expression, compared by its text (so `Config` stays comparable).
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::bytes::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Pattern {
    fn new(text: &str) -> Result<Pattern, String> {
        regex::bytes::Regex::new(text)
            .map(Pattern)
            .map_err(|err| format!("bad regular expression `{text}`: {err}"))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// `route-run`.
    Always,
    Match {
        subject: Subject,
        pattern: Pattern,
    },
    If {
        condition: Condition,
        negate: bool,
    },
    /// `*-route-status = CODE …`.
    Status(u16),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Exists(Template),
    IsFile(Template),
    IsDir(Template),
    IsLink(Template),
    IsExec(Template),
    Empty(Template),
    /// `regexp:SUBJECT;REGEX`: the captures are the action's `$1`…
    Regexp(Template, Pattern),
    Compare(Compare, Template, Template),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    Equal,
    StartsWith,
    EndsWith,
    Contains,
    Higher,
    HigherEqual,
    Lower,
    LowerEqual,
    Ipv4In,
    Ipv6In,
}

/// A request variable an action sets (`setpathinfo:…` sets PATH_INFO).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetVar {
    PathInfo,
    ScriptName,
    Method,
    Uri,
    RemoteAddr,
    DocRoot,
    Scheme,
    User,
    Home,
    App,
}

impl SetVar {
    pub fn var(self) -> &'static str {
        match self {
            SetVar::PathInfo => "PATH_INFO",
            SetVar::ScriptName => "SCRIPT_NAME",
            SetVar::Method => "REQUEST_METHOD",
            SetVar::Uri => "REQUEST_URI",
            SetVar::RemoteAddr => "REMOTE_ADDR",
            SetVar::DocRoot => "DOCUMENT_ROOT",
            SetVar::Scheme => "UWSGI_SCHEME",
            SetVar::User => "REMOTE_USER",
            SetVar::Home => "UWSGI_HOME",
            SetVar::App => "UWSGI_APPID",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MathOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// `file:` and its kin's options (`filename=…,status=…,content_type=…,mime=1,no_cl=1,…`).
#[derive(Debug, Clone, PartialEq)]
pub struct FileSpec {
    pub filename: Template,
    pub status: Template,
    pub content_type: Vec<u8>,
    pub mime: bool,
}

/// `basicauth:REALM,USER:PASS` or `basicauth:REALM,HTPASSWD-FILE`.
#[derive(Debug, Clone, PartialEq)]
pub struct BasicAuth {
    pub realm: String,
    pub credentials: Credentials,
    /// `basicauth-next`: a wrong password falls through to the next rule instead of 401.
    pub next: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Credentials {
    /// `user:password`, and the user name's length.
    Plain {
        pair: Vec<u8>,
        user_len: usize,
    },
    Htpasswd(std::path::PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `continue`, `last`: stop routing, run the app.
    Continue,
    /// `break[:STATUS]`: stop; with a status, answer it with an empty body.
    Break(Option<Vec<u8>>),
    /// `return:CODE`, `break-with-status:CODE`: answer CODE with its reason as the body.
    Return(u16),
    Goto(Template),
    Log(Template),
    LogVar(String, Template),
    DoNotLog,
    AddVar(String, Template),
    Set(SetVar, Template),
    FixPathInfo,
    Math(MathOp, String, Option<Template>),
    AddHeader(Template),
    RemoveHeader(Template),
    /// `clearheaders:STATUS`: the route's own response starts here, with this status.
    ClearHeaders(Template),
    /// `send`, `send-crnl`: bytes of the route's own response body.
    Send(Template, bool),
    Redirect(Template, bool),
    Rewrite(Template, bool),
    Static(Template, bool),
    File(FileSpec, bool),
    BasicAuth(BasicAuth),
    Harakiri(u64),
    /// Accepted, nothing to do; the reason is in the README (`flush`, `fixcl`, …).
    NoOp(&'static str),
}

impl RouteTables {
    pub fn is_empty(&self) -> bool {
        self.request.rules.is_empty()
            && self.error.rules.is_empty()
            && self.response.rules.is_empty()
            && self.final_.rules.is_empty()
            && self.collect.is_empty()
    }

    /// Adds the rule of one option line: `key` is the option's name as written
    /// (`route-host`, `error-route-status`, …).
    pub fn add(&mut self, key: &str, value: &str) -> Result<(), String> {
        let key = key.replace('_', "-");
        let (table, kind) = if let Some(rest) = key.strip_prefix("final-") {
            (&mut self.final_, rest)
        } else if let Some(rest) = key.strip_prefix("error-") {
            (&mut self.error, rest)
        } else if let Some(rest) = key.strip_prefix("response-") {
            (&mut self.response, rest)
        } else {
            (&mut self.request, key.as_str())
        };
        let kind = kind
            .strip_prefix("route")
            .ok_or_else(|| format!("`{key}` is not a routing option"))?
            .trim_start_matches('-');
        let value = value.trim();
        if kind == "label" {
            if value.is_empty() {
                return Err("a route label needs a name".to_string());
            }
            table.rules.push(Rule::Label(value.to_string()));
            return Ok(());
        }
        let step = parse_step(kind, value)?;
        table.rules.push(Rule::Step(step));
        Ok(())
    }

    /// Whole-table checks: every literal `goto` target names a label of its table.
    pub fn check(&self) -> Result<(), String> {
        for table in [&self.request, &self.error, &self.response, &self.final_] {
            let labels: Vec<&str> = table
                .rules
                .iter()
                .filter_map(|rule| match rule {
                    Rule::Label(name) => Some(name.as_str()),
                    Rule::Step(_) => None,
                })
                .collect();
            for rule in &table.rules {
                if let Rule::Step(Step {
                    action: Action::Goto(target),
                    ..
                }) = rule
                {
                    if let Some(target) = target.as_literal() {
                        let target = String::from_utf8_lossy(target);
                        if !labels.contains(&target.as_ref()) {
                            return Err(format!(
                                "`goto:{target}`: no `route-label = {target}` in the same table"
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn parse_step(kind: &str, value: &str) -> Result<Step, String> {
    if kind == "run" {
        return Ok(Step {
            test: Test::Always,
            action: parse_action(value)?,
        });
    }
    let Some((head, action)) = value.split_once(' ') else {
        return Err(format!(
            "a route needs `SUBJECT ACTION:ARGS` separated by a space, got `{value}`"
        ));
    };
    let action = parse_action(action.trim_start())?;
    let test = match kind {
        "if" | "if-not" => {
            let Some((name, args)) = head.split_once(':') else {
                return Err(format!("a route condition needs `NAME:ARGS`, got `{head}`"));
            };
            Test::If {
                condition: parse_condition(name, args)?,
                negate: kind == "if-not",
            }
        }
        "status" => Test::Status(
            head.parse()
                .map_err(|_| format!("`{head}` is not an HTTP status code"))?,
        ),
        _ => {
            let subject = match kind {
                "" => Subject::PathInfo,
                "host" => Subject::HttpHost,
                "uri" => Subject::RequestUri,
                "qs" => Subject::QueryString,
                "remote-addr" => Subject::RemoteAddr,
                "user-agent" => Subject::UserAgent,
                "referer" => Subject::Referer,
                "remote-user" => Subject::RemoteUser,
                other => return Err(format!("unknown routing option suffix `{other}`")),
            };
            Test::Match {
                subject,
                pattern: Pattern::new(head)?,
            }
        }
    };
    Ok(Step { test, action })
}

fn parse_condition(name: &str, args: &str) -> Result<Condition, String> {
    let one = || Template::parse(args);
    let two = || -> Result<(Template, Template), String> {
        let Some((left, right)) = args.split_once(';') else {
            return Err(format!(
                "the `{name}` condition compares two values: `{name}:A;B`, got `{name}:{args}`"
            ));
        };
        Ok((Template::parse(left)?, Template::parse(right)?))
    };
    let compare = |op: Compare| -> Result<Condition, String> {
        let (left, right) = two()?;
        Ok(Condition::Compare(op, left, right))
    };
    match name {
        "exists" => Ok(Condition::Exists(one()?)),
        "isfile" => Ok(Condition::IsFile(one()?)),
        "isdir" => Ok(Condition::IsDir(one()?)),
        "islink" => Ok(Condition::IsLink(one()?)),
        "isexec" => Ok(Condition::IsExec(one()?)),
        "empty" => Ok(Condition::Empty(one()?)),
        "regexp" | "re" => {
            let Some((left, right)) = args.split_once(';') else {
                return Err(format!(
                    "the `{name}` condition needs `{name}:VALUE;REGEX`, got `{name}:{args}`"
                ));
            };
            Ok(Condition::Regexp(Template::parse(left)?, Pattern::new(right)?))
        }
        "equal" | "isequal" | "eq" | "==" => compare(Compare::Equal),
        "startswith" => compare(Compare::StartsWith),
        "endswith" => compare(Compare::EndsWith),
        "contains" | "contain" => compare(Compare::Contains),
        "ishigher" | ">" => compare(Compare::Higher),
        "ishigherequal" | ">=" => compare(Compare::HigherEqual),
        "islower" | "<" => compare(Compare::Lower),
        "islowerequal" | "<=" => compare(Compare::LowerEqual),
        "ipv4in" => compare(Compare::Ipv4In),
        "ipv6in" => compare(Compare::Ipv6In),
        "lord" => Err("the `lord` condition needs uWSGI's Legion subsystem, which kaiser does not have".to_string()),
        other => Err(format!(
            "unknown route condition `{other}` (kaiser has exists, isfile, isdir, islink, isexec, empty, regexp, equal, startswith, endswith, contains, ishigher, islower, ishigherequal, islowerequal, ipv4in, ipv6in)"
        )),
    }
}

fn parse_action(text: &str) -> Result<Action, String> {
    // uWSGI requires the colon even when there are no arguments (`last:`); a bare name is
    // accepted too.
    let (name, args) = text.split_once(':').unwrap_or((text, ""));
    let template = || Template::parse(args);
    let key_value = |what: &str| -> Result<(String, Template), String> {
        let Some((key, value)) = args.split_once('=') else {
            return Err(format!("`{what}` needs `KEY=VALUE`, got `{what}:{args}`"));
        };
        Ok((key.to_string(), Template::parse(value)?))
    };
    let set = |var: SetVar| -> Result<Action, String> { Ok(Action::Set(var, template()?)) };
    let math = |op: MathOp| -> Result<Action, String> {
        let (var, amount) = match args.split_once(',') {
            Some((var, amount)) => (var, Some(Template::parse(amount)?)),
            None => (args, None),
        };
        Ok(Action::Math(op, var.to_string(), amount))
    };
    match name {
        "continue" | "last" => Ok(Action::Continue),
        "break" => Ok(Action::Break(
            (args.len() >= 3).then(|| args.as_bytes().to_vec()),
        )),
        "return" | "break-with-status" => args
            .trim()
            .parse()
            .ok()
            .filter(|code| (100..1000).contains(code))
            .map(Action::Return)
            .ok_or_else(|| format!("`{name}` needs an HTTP status code, got `{args}`")),
        "goto" => Ok(Action::Goto(template()?)),
        "log" => Ok(Action::Log(template()?)),
        "logvar" => {
            let (key, value) = key_value("logvar")?;
            Ok(Action::LogVar(key, value))
        }
        "donotlog" => Ok(Action::DoNotLog),
        "addvar" => {
            let (key, value) = key_value("addvar")?;
            Ok(Action::AddVar(key, value))
        }
        "setpathinfo" => set(SetVar::PathInfo),
        "setscriptname" => set(SetVar::ScriptName),
        "setmethod" => set(SetVar::Method),
        "seturi" => set(SetVar::Uri),
        "setremoteaddr" => set(SetVar::RemoteAddr),
        "setdocroot" => set(SetVar::DocRoot),
        "setscheme" => set(SetVar::Scheme),
        "setuser" => set(SetVar::User),
        "sethome" => set(SetVar::Home),
        "setapp" => set(SetVar::App),
        "fixpathinfo" => Ok(Action::FixPathInfo),
        "+" => math(MathOp::Add),
        "-" => math(MathOp::Sub),
        "*" => math(MathOp::Mul),
        "/" => math(MathOp::Div),
        "addheader" => Ok(Action::AddHeader(template()?)),
        "delheader" | "remheader" => Ok(Action::RemoveHeader(template()?)),
        "clearheaders" | "resetheaders" => Ok(Action::ClearHeaders(template()?)),
        "send" => Ok(Action::Send(template()?, false)),
        "send-crnl" => Ok(Action::Send(template()?, true)),
        "redirect" | "redirect-302" => Ok(Action::Redirect(template()?, false)),
        "redirect-permanent" | "redirect-301" => Ok(Action::Redirect(template()?, true)),
        "rewrite" => Ok(Action::Rewrite(template()?, false)),
        "rewrite-last" => Ok(Action::Rewrite(template()?, true)),
        "static" => Ok(Action::Static(template()?, false)),
        "static-next" => Ok(Action::Static(template()?, true)),
        "file" | "sendfile" | "fastfile" => Ok(Action::File(file_spec(args)?, false)),
        "file-next" | "sendfile-next" | "fastfile-next" => {
            Ok(Action::File(file_spec(args)?, true))
        }
        "basicauth" | "basicauth-next" => Ok(Action::BasicAuth(basic_auth(
            args,
            name == "basicauth-next",
        )?)),
        "harakiri" => args
            .trim()
            .parse()
            .map(Action::Harakiri)
            .map_err(|_| format!("`harakiri` needs a number of seconds, got `{args}`")),
        "flush" => Ok(Action::NoOp("flush")),
        "fixcl" | "forcecl" => Ok(Action::NoOp("fixcl")),
        "donotoffload" => Ok(Action::NoOp("donotoffload")),
        "uwsgi" | "http" | "proxyuwsgi" | "proxyhttp" | "fcgi" | "proxy" => Err(format!(
            "the `{name}` route action forwards the request to another server, which kaiser does not do: let nginx route it (`uwsgi_pass`/`proxy_pass` in a `location`)"
        )),
        "" => Err("a route needs an action (`ACTION:ARGS`)".to_string()),
        other => Err(format!("unknown or unsupported route action `{other}`")),
    }
}

fn file_spec(args: &str) -> Result<FileSpec, String> {
    let mut filename = None;
    let mut status = None;
    let mut content_type = None;
    let mut mime = false;
    for item in args.split(',').filter(|item| !item.is_empty()) {
        let Some((key, value)) = item.split_once('=') else {
            return Err(format!(
                "invalid `file` route syntax: `{args}` (want `filename=PATH,…`)"
            ));
        };
        match key {
            "filename" => filename = Some(Template::parse(value)?),
            "status" => status = Some(Template::parse(value)?),
            "content_type" => content_type = Some(value.as_bytes().to_vec()),
            "mime" => mime = !value.is_empty(),
            "no_headers" => {
                return Err("`no_headers` in a `file` route is not supported: kaiser always sends a response head".to_string())
            }
            // kaiser always sends a length it knows (as `file` does by default).
            "nocl" | "no_cl" | "no_content_length" => {}
            other => return Err(format!("unknown `file` route key `{other}`")),
        }
    }
    Ok(FileSpec {
        filename: filename.ok_or("the `file` route needs `filename=PATH`")?,
        status: match status {
            Some(status) => status,
            None => Template::parse("200 OK")?,
        },
        content_type: content_type.unwrap_or_else(|| b"text/html".to_vec()),
        mime,
    })
}

fn basic_auth(args: &str, next: bool) -> Result<BasicAuth, String> {
    let Some((realm, rest)) = args.split_once(',') else {
        return Err(format!(
            "`basicauth` needs `REALM,USER:PASSWORD` or `REALM,HTPASSWD-FILE`, got `{args}`"
        ));
    };
    let credentials = match rest.find(':') {
        Some(user_len) => Credentials::Plain {
            pair: rest.as_bytes().to_vec(),
            user_len,
        },
        None => Credentials::Htpasswd(rest.into()),
    };
    Ok(BasicAuth {
        realm: realm.to_string(),
        credentials,
        next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(key: &str, value: &str) -> Result<RouteTables, String> {
        let mut tables = RouteTables::default();
        tables.add(key, value)?;
        Ok(tables)
    }

    fn step(tables: &RouteTables) -> &Step {
        let table = [
            &tables.request,
            &tables.error,
            &tables.response,
            &tables.final_,
        ]
        .into_iter()
        .find(|t| !t.rules.is_empty())
        .unwrap();
        match &table.rules[0] {
            Rule::Step(step) => step,
            Rule::Label(_) => panic!("a label"),
        }
    }

    #[test]
    fn subjects_by_option() {
        for (key, subject) in [
            ("route", Subject::PathInfo),
            ("route-host", Subject::HttpHost),
            ("route-uri", Subject::RequestUri),
            ("route-qs", Subject::QueryString),
            ("route-remote-addr", Subject::RemoteAddr),
            ("route-user-agent", Subject::UserAgent),
            ("route-referer", Subject::Referer),
            ("route-remote-user", Subject::RemoteUser),
            ("final-route-host", Subject::HttpHost),
            ("route_uri", Subject::RequestUri),
        ] {
            let tables = add(key, "^/a last:").unwrap();
            assert!(
                matches!(&step(&tables).test, Test::Match { subject: s, .. } if *s == subject),
                "{key}"
            );
        }
    }

    #[test]
    fn tables_by_prefix() {
        assert_eq!(
            add("error-route-status", "404 last:")
                .unwrap()
                .error
                .rules
                .len(),
            1
        );
        assert_eq!(
            add("response-route-run", "last:")
                .unwrap()
                .response
                .rules
                .len(),
            1
        );
        assert_eq!(add("final-route-label", "x").unwrap().final_.rules.len(), 1);
        assert_eq!(
            add("route-if", "empty:${QUERY_STRING} last:")
                .unwrap()
                .request
                .rules
                .len(),
            1
        );
    }

    #[test]
    fn actions() {
        let action = |value: &str| step(&add("route-run", value).unwrap()).action.clone();
        assert_eq!(action("last:"), Action::Continue);
        assert_eq!(action("continue"), Action::Continue);
        assert_eq!(
            action("break:403 Forbidden"),
            Action::Break(Some(b"403 Forbidden".to_vec()))
        );
        assert_eq!(action("break:"), Action::Break(None));
        assert_eq!(action("return:404"), Action::Return(404));
        assert!(matches!(
            action("redirect-301:/x"),
            Action::Redirect(_, true)
        ));
        assert!(matches!(
            action("rewrite-last:/x"),
            Action::Rewrite(_, true)
        ));
        assert!(matches!(action("addvar:FOO=bar"), Action::AddVar(k, _) if k == "FOO"));
        assert!(matches!(
            action("basicauth:kaiser,alice:secret"),
            Action::BasicAuth(BasicAuth {
                credentials: Credentials::Plain { user_len: 5, .. },
                next: false,
                ..
            })
        ));
        assert!(matches!(
            action("basicauth-next:kaiser,/etc/htpasswd"),
            Action::BasicAuth(BasicAuth {
                credentials: Credentials::Htpasswd(_),
                next: true,
                ..
            })
        ));
        assert!(matches!(
            action("file:filename=/x,mime=1"),
            Action::File(FileSpec { mime: true, .. }, false)
        ));
        assert_eq!(action("harakiri:5"), Action::Harakiri(5));
    }

    #[test]
    fn errors() {
        let err = |key: &str, value: &str| add(key, value).unwrap_err();
        assert!(err("route", "^/a").contains("separated by a space"));
        assert!(
            err("route", "^/a nosuch:x").contains("unknown or unsupported route action `nosuch`")
        );
        assert!(err("route", "^/a uwsgi:127.0.0.1:3031,0,0").contains("uwsgi_pass"));
        assert!(err("route", "^/(a last:").contains("bad regular expression"));
        assert!(err("route-if", "nosuch:x last:").contains("unknown route condition `nosuch`"));
        assert!(err("route-if", "equal:x last:").contains("`equal:A;B`"));
        assert!(err("route-run", "addvar:FOO").contains("KEY=VALUE"));
        assert!(err("route-run", "return:abc").contains("status code"));
        assert!(err("route-run", "basicauth:realm").contains("REALM,USER:PASSWORD"));
    }

    #[test]
    fn goto_needs_a_label() {
        let mut tables = RouteTables::default();
        tables.add("route-run", "goto:missing").unwrap();
        assert!(tables.check().unwrap_err().contains("missing"));
        tables.add("route-label", "missing").unwrap();
        tables.check().unwrap();
    }
}
