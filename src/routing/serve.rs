//! The worker's side of routing: runs the request table before the app, answers what a
//! route answers itself (a reply, `static:`, `file:`), gives the app the variables the rules
//! changed, and wraps the exchange so that the error and response tables and the header
//! edits apply to the app's response head; the final table runs after the response.
//!
//! It reads files (`static:`, `file:`, `isfile`, htpasswd) with plain `std::fs`; it must not
//! know the connection or its framing, which stay behind [`Exchange`].

use std::borrow::Cow;
use std::cell::Cell;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::{Arc, OnceLock};

use super::eval::{self, Effects, FileKind, HeaderEdit, Reply, RequestState, Verdict};
use super::rules::{RouteTables, Table};
use crate::protocol::static_files::{conditional, mime};
use crate::python::{Exchange, Outcome, RequestVars, RespondError, ResponseHead};

thread_local! {
    /// `donotlog:` ran for the request on this thread.
    static DO_NOT_LOG: Cell<bool> = const { Cell::new(false) };
    /// A route answered or stopped the request on this thread (the core's `routed_requests`).
    static ROUTED: Cell<bool> = const { Cell::new(false) };
    /// The user `basicauth` or `setuser` named for the request on this thread.
    static REMOTE_USER: Cell<Option<Vec<u8>>> = const { Cell::new(None) };
}

/// Whether a route asked not to log the request that just ran on this thread; clears it.
pub fn take_do_not_log() -> bool {
    DO_NOT_LOG.with(|flag| flag.replace(false))
}

/// Whether a route answered or stopped the request that just ran on this thread, as
/// uWSGI's `routed_requests` counts; clears it.
pub fn take_routed() -> bool {
    ROUTED.with(|flag| flag.replace(false))
}

/// The user a route authenticated or set for the request that just ran on this thread (its
/// request line's user, as in uWSGI); clears it.
pub fn take_remote_user() -> Option<Vec<u8>> {
    REMOTE_USER.with(Cell::take)
}

/// Runs one request through the routes and, unless a route answered, the app
/// (`run_app`, given the variables as the routes left them).
pub fn serve(
    tables: &Arc<RouteTables>,
    request: RequestVars<'_>,
    mut exchange: Box<dyn Exchange>,
    run_app: impl for<'v> FnOnce(RequestVars<'v>, Box<dyn Exchange>) -> (Box<dyn Exchange>, Outcome),
) -> (Box<dyn Exchange>, Outcome) {
    let mut state = RequestState {
        vars: request
            .vars
            .map(|(key, value)| (Cow::Borrowed(key), Cow::Borrowed(value)))
            .collect(),
        status: 0,
    };
    if let Some((addr, port)) = request.remote {
        state.set(b"REMOTE_ADDR", addr.as_bytes().to_vec());
        state.set(b"REMOTE_PORT", port.as_bytes().to_vec());
    }
    let mut effects = Effects::default();
    let verdict = eval::run(&tables.request, &mut state, &Machine, &mut effects);
    apply(&mut effects);
    if verdict != Verdict::Pass {
        ROUTED.with(|flag| flag.set(true));
        let status = match &verdict {
            Verdict::Reply(reply) => status_code(&reply.status),
            Verdict::File { status, .. } => status_code(status),
            Verdict::Static(_) => 200,
            Verdict::Pass | Verdict::Stop => 0,
        };
        let answered = answer(exchange.as_mut(), verdict, &effects.headers, &state);
        if !tables.final_.rules.is_empty() {
            state.status = status;
            let mut effects = Effects::default();
            let _ = eval::run(&tables.final_, &mut state, &Machine, &mut effects);
            apply(&mut effects);
        }
        let outcome = Outcome {
            aborted: answered.is_err(),
            app_error: false,
        };
        return (exchange, outcome);
    }
    let wrap = !effects.headers.is_empty()
        || !tables.collect.is_empty()
        || !tables.error.rules.is_empty()
        || !tables.response.rules.is_empty()
        || !tables.final_.rules.is_empty();
    let routed_state = if !tables.error.rules.is_empty()
        || !tables.collect.is_empty()
        || !tables.response.rules.is_empty()
        || !tables.final_.rules.is_empty()
    {
        state.to_owned_state()
    } else {
        RequestState::default()
    };
    let mut iter = state.vars.iter().map(|(k, v)| (k.as_ref(), v.as_ref()));
    let app_request = RequestVars {
        listener: request.listener,
        vars: &mut iter,
        remote: None,
    };
    if !wrap {
        return run_app(app_request, exchange);
    }
    let routed = Box::new(Routed {
        inner: exchange,
        edits: effects.headers,
        tables: tables.clone(),
        state: routed_state,
        swallow: false,
    });
    let (routed, outcome) = run_app(app_request, routed);
    let routed: Box<Routed> = routed
        .into_any()
        .downcast()
        .expect("the runner gives back the exchange it was handed");
    let Routed {
        inner, mut state, ..
    } = *routed;
    if !tables.final_.rules.is_empty() {
        let mut effects = Effects::default();
        // The final table cannot answer any more: only its effects count.
        let _ = eval::run(&tables.final_, &mut state, &Machine, &mut effects);
        apply(&mut effects);
    }
    (inner, outcome)
}

/// Carries out the effects that are not the response's.
fn apply(effects: &mut Effects) {
    for line in effects.log_lines.drain(..) {
        tracing::info!("{line}");
    }
    for (key, value) in effects.logvars.drain(..) {
        crate::python::request_logvar(key, value);
    }
    if effects.do_not_log {
        DO_NOT_LOG.with(|flag| flag.set(true));
    }
    if let Some(user) = effects.remote_user.take() {
        REMOTE_USER.with(|slot| slot.set(Some(user)));
    }
    if let Some(seconds) = effects.harakiri.take() {
        crate::python::request_user_harakiri(seconds);
    }
}

/// Sends what a route answered. `Stop` sends nothing; the connection then closes.
fn answer(
    exchange: &mut dyn Exchange,
    verdict: Verdict,
    edits: &[HeaderEdit],
    state: &RequestState<'_>,
) -> Result<(), RespondError> {
    match verdict {
        Verdict::Pass => Ok(()),
        Verdict::Stop => Err(RespondError::Invalid(
            "a route stopped the request without an answer".to_string(),
        )),
        Verdict::Reply(Reply {
            status,
            headers,
            body,
        }) => {
            let headers = edited(headers, edits);
            let head = ResponseHead {
                status: &status,
                headers: &headers,
                content_length: Some(body.len() as u64),
            };
            exchange.respond(Some(head), &body, true)
        }
        Verdict::Static(path) => serve_static(exchange, &path, edits, state),
        Verdict::File {
            path,
            status,
            content_type,
        } => {
            let Ok(file) = File::open(path_of(&path)) else {
                return answer(exchange, not_found(), edits, state);
            };
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            let headers = edited(vec![(b"Content-Type".to_vec(), content_type)], edits);
            let head = ResponseHead {
                status: &status,
                headers: &headers,
                content_length: Some(size),
            };
            exchange.send_file(Some(head), file.as_raw_fd(), 0, size)
        }
    }
}

/// `static:`: the file as `static-map` serves it, with its type, validators and ranges.
fn serve_static(
    exchange: &mut dyn Exchange,
    path: &[u8],
    edits: &[HeaderEdit],
    state: &RequestState<'_>,
) -> Result<(), RespondError> {
    let Ok(file) = File::open(path_of(path)) else {
        return answer(exchange, not_found(), edits, state);
    };
    let Ok(meta) = file.metadata() else {
        return answer(exchange, not_found(), edits, state);
    };
    let facts = conditional::FileFacts {
        size: meta.len(),
        mtime: meta.mtime(),
    };
    let conditions = conditional::Conditions {
        if_modified_since: state.get(b"HTTP_IF_MODIFIED_SINCE"),
        if_none_match: state.get(b"HTTP_IF_NONE_MATCH"),
        range: state.get(b"HTTP_RANGE"),
        if_range: state.get(b"HTTP_IF_RANGE"),
    };
    let content_type = mime_types().lookup(path).map(mime::content_type);
    let extras = conditional::Extras {
        content_type: content_type.as_deref(),
        ..conditional::Extras::default()
    };
    let plan = conditional::plan(conditional::decide(facts, &conditions), facts, &extras);
    let headers = edited(
        plan.headers
            .into_iter()
            .map(|(name, value)| (name.to_vec(), value.into_bytes()))
            .collect(),
        edits,
    );
    match plan.body {
        Some((offset, length)) if length > 0 => {
            let head = ResponseHead {
                status: plan.status,
                headers: &headers,
                content_length: Some(length),
            };
            exchange.send_file(Some(head), file.as_raw_fd(), offset, length)
        }
        _ => {
            let head = ResponseHead {
                status: plan.status,
                headers: &headers,
                content_length: Some(0),
            };
            exchange.respond(Some(head), b"", true)
        }
    }
}

fn not_found() -> Verdict {
    Verdict::Reply(Reply {
        status: b"404 Not Found".to_vec(),
        headers: vec![(b"Content-Type".to_vec(), b"text/plain".to_vec())],
        body: b"Not Found".to_vec(),
    })
}

fn path_of(path: &[u8]) -> &std::path::Path {
    use std::os::unix::ffi::OsStrExt;
    std::path::Path::new(std::ffi::OsStr::from_bytes(path))
}

fn mime_types() -> &'static mime::MimeTypes {
    static TYPES: OnceLock<mime::MimeTypes> = OnceLock::new();
    TYPES.get_or_init(mime::MimeTypes::builtin)
}

/// `headers` after the routes' `delheader` and `addheader` (in that order, so a rule can
/// replace a header by removing and adding it).
fn edited(mut headers: Headers, edits: &[HeaderEdit]) -> Headers {
    for edit in edits {
        if let HeaderEdit::Remove(name) = edit {
            headers.retain(|(key, _)| !key.eq_ignore_ascii_case(name));
        }
    }
    for edit in edits {
        if let HeaderEdit::Add(name, value) = edit {
            headers.push((name.clone(), value.clone()));
        }
    }
    headers
}

type Headers = Vec<(Vec<u8>, Vec<u8>)>;

/// The app's exchange while routes may still act on its response.
struct Routed {
    inner: Box<dyn Exchange>,
    edits: Vec<HeaderEdit>,
    tables: Arc<RouteTables>,
    /// The variables as the app got them, and the response's status once known.
    state: RequestState<'static>,
    /// An error or response route answered instead: the app's body is dropped.
    swallow: bool,
}

impl Routed {
    /// The app's head is ready: run the error and response tables on it. Returns the head's
    /// headers after the edits, or `None` when a route answered instead.
    fn head(&mut self, head: &ResponseHead<'_>) -> Result<Option<Headers>, RespondError> {
        self.state.status = status_code(head.status);
        // `collect-header`/`pull-header`, as uWSGI's writer does before the response routes.
        for collect in &self.tables.collect {
            if let Some((_, value)) = head
                .headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(&collect.header))
            {
                self.state.set(&collect.var, value.clone());
                if collect.pull {
                    self.edits.push(HeaderEdit::Remove(collect.header.clone()));
                }
            }
        }
        let mut effects = Effects::default();
        for table in [&self.tables.error, &self.tables.response] {
            match run_after(table, &mut self.state, &mut effects) {
                Verdict::Pass | Verdict::Stop => continue,
                verdict => {
                    ROUTED.with(|flag| flag.set(true));
                    apply(&mut effects);
                    self.edits.append(&mut effects.headers);
                    self.swallow = true;
                    answer(self.inner.as_mut(), verdict, &self.edits, &self.state)?;
                    return Ok(None);
                }
            }
        }
        apply(&mut effects);
        self.edits.append(&mut effects.headers);
        Ok(Some(edited(head.headers.to_vec(), &self.edits)))
    }
}

fn run_after(table: &Table, state: &mut RequestState<'_>, effects: &mut Effects) -> Verdict {
    if table.rules.is_empty() {
        return Verdict::Pass;
    }
    eval::run(table, state, &Machine, effects)
}

fn status_code(status: &[u8]) -> u16 {
    status
        .get(..3)
        .and_then(|code| std::str::from_utf8(code).ok())
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

impl Exchange for Routed {
    fn read_body(&mut self, out: &mut Vec<u8>, max: usize) -> std::io::Result<usize> {
        self.inner.read_body(out, max)
    }

    fn respond(
        &mut self,
        head: Option<ResponseHead<'_>>,
        body: &[u8],
        last: bool,
    ) -> Result<(), RespondError> {
        if self.swallow {
            return Ok(());
        }
        let Some(head) = head else {
            return self.inner.respond(None, body, last);
        };
        let Some(headers) = self.head(&head)? else {
            return Ok(());
        };
        let head = ResponseHead {
            status: head.status,
            headers: &headers,
            content_length: head.content_length,
        };
        self.inner.respond(Some(head), body, last)
    }

    fn send_file(
        &mut self,
        head: Option<ResponseHead<'_>>,
        fd: std::os::fd::RawFd,
        offset: u64,
        count: u64,
    ) -> Result<(), RespondError> {
        if self.swallow {
            return Ok(());
        }
        let Some(head) = head else {
            return self.inner.send_file(None, fd, offset, count);
        };
        let Some(headers) = self.head(&head)? else {
            return Ok(());
        };
        let head = ResponseHead {
            status: head.status,
            headers: &headers,
            content_length: head.content_length,
        };
        self.inner.send_file(Some(head), fd, offset, count)
    }

    fn request_error_status(&self) -> Option<&'static [u8]> {
        self.inner.request_error_status()
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}

/// The machine as the rules see it.
struct Machine;

impl eval::Facts for Machine {
    fn file_kind(&self, path: &[u8]) -> FileKind {
        let path = path_of(path);
        let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        match std::fs::metadata(path) {
            Ok(meta) => FileKind {
                exists: true,
                file: meta.is_file(),
                dir: meta.is_dir(),
                link,
                exec: meta.permissions().mode() & 0o111 != 0,
            },
            Err(_) => FileKind {
                link,
                ..FileKind::default()
            },
        }
    }

    fn read_file(&self, path: &std::path::Path) -> Option<Vec<u8>> {
        match std::fs::read(path) {
            Ok(text) => Some(text),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "basicauth: cannot read the htpasswd file");
                None
            }
        }
    }

    fn crypt(&self, password: &[u8], setting: &[u8]) -> Option<Vec<u8>> {
        crate::sys::crypt::crypt(password, setting)
    }

    fn now_micros(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0)
    }

    fn worker_id(&self) -> u32 {
        crate::python::current_worker_id()
    }

    fn pid(&self) -> u32 {
        std::process::id()
    }

    fn uuid(&self) -> Vec<u8> {
        std::fs::read("/proc/sys/kernel/random/uuid")
            .map(|mut text| {
                text.truncate(36);
                text
            })
            .unwrap_or_default()
    }

    fn mime(&self, path: &[u8]) -> Option<String> {
        mime_types().lookup(path).map(str::to_string)
    }
}
