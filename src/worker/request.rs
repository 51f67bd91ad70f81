//! One request from its parsed head to its end, the same path for both protocols: static
//! files first, then the app (`limit-post`, `post-buffering`, the scoreboard and harakiri
//! told it started), then the accounting (counters, the request line, the recycling check)
//! and the connection kept for the next request or closed.
//!
//! It does not parse request heads (`request_head.rs`) or read the connection between
//! requests (`serve.rs`).

use std::sync::atomic::Ordering;

use super::conn::{self, Conn};
use super::exchange::ConnExchange;
use super::request_head::ParsedHead;
use super::request_record::{self, set_lossy, RequestLog};
use super::serve::current_core;
use super::Shared;
use crate::config::Protocol;
use crate::protocol::http;
use crate::python::{Outcome, RequestVars};

/// Serves one request whose head was parsed off the front of `conn.buf`. Returns the
/// connection if it stays open for another request (never over `socket`'s uwsgi or SCGI,
/// whose responses are close-delimited; over `puwsgi-socket` when the length was known).
pub(super) fn serve(shared: &Shared, conn: Conn, head: ParsedHead<'_>) -> Option<Conn> {
    let conn = match super::statics::serve(shared, conn, &head) {
        Ok(next) => return next,
        Err(conn) => conn,
    };
    match &head {
        ParsedHead::Http(http_head) => {
            let vars = http::cgi_vars(http_head);
            let size = vars.iter().map(|(k, v)| k.len() + v.len()).sum();
            run_app(shared, conn, &head, &vars, (vars.len() + 8, size))
        }
        ParsedHead::Uwsgi(packet)
        | ParsedHead::Scgi(packet, _)
        | ParsedHead::Puwsgi(packet)
        | ParsedHead::FastCgi(crate::protocol::fastcgi::Request { packet, .. }, _) => {
            run_app(shared, conn, &head, &packet.vars, head.log_size())
        }
    }
}

/// Runs the app on a request with CGI variables `vars`; `log_size` is the request line's
/// `(N vars in M bytes)`.
fn run_app<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    shared: &Shared,
    mut conn: Conn,
    head: &ParsedHead<'_>,
    vars: &[(K, V)],
    log_size: (usize, usize),
) -> Option<Conn> {
    let pairs = || vars.iter().map(|(k, v)| (k.as_ref(), v.as_ref()));
    let listener = conn.listener;
    let forwarded_for = || {
        pairs()
            .find(|(k, _)| *k == b"HTTP_X_FORWARDED_FOR")
            .map(|(_, v)| v)
    };
    let mut log = request_record::fresh();
    describe(shared, &mut log, head, &conn.peer_addr, forwarded_for);
    (log.var_count, log.packet_size) = log_size;
    // Over HTTP the worker knows the client (over uwsgi the front end sends REMOTE_ADDR): its
    // address and port are lent to the environ while the exchange holds the connection and
    // given back after, with no copy per request.
    let remote = (head.protocol() == Protocol::Http).then(|| {
        (
            std::mem::take(&mut conn.peer_addr),
            std::mem::take(&mut conn.peer_port),
        )
    });
    let mut exchange = ConnExchange::new(conn, shared, head, log);
    super::request_log::capture(&shared.settings.request_log, &mut exchange.log, pairs());
    begin_request(shared, &mut exchange);
    if !within_limit_post(&mut exchange) || !prebuffer(shared, &mut exchange) {
        let outcome = Outcome {
            aborted: true,
            app_error: false,
        };
        return finish(shared, Box::new(exchange), outcome, remote);
    }
    let mut iter = pairs();
    let request = RequestVars {
        listener,
        vars: &mut iter,
        remote: remote
            .as_ref()
            .map(|(addr, port)| (addr.as_str(), port.as_str())),
    };
    let (exchange, outcome) = match &shared.settings.routes {
        None => shared.runner.run(request, Box::new(exchange)),
        // Internal routing (`route*`: `crate::routing`) around the app.
        Some(routes) => crate::routing::serve(routes, request, Box::new(exchange), |r, e| {
            shared.runner.run(r, e)
        }),
    };
    finish(shared, exchange, outcome, remote)
}

/// Fills in what the request line says of the request itself, into the record's reused
/// strings. `forwarded_for` finds the request's `X-Forwarded-For`, shown with
/// `log-x-forwarded-for`.
pub(super) fn describe<'a>(
    shared: &Shared,
    log: &mut RequestLog,
    head: &ParsedHead<'_>,
    peer_addr: &str,
    forwarded_for: impl FnOnce() -> Option<&'a [u8]>,
) {
    set_lossy(&mut log.method, head.method());
    set_lossy(&mut log.uri, head.uri());
    set_lossy(&mut log.protocol, head.protocol_name());
    match head.protocol() {
        Protocol::Http | Protocol::Raw => log.remote_addr.push_str(peer_addr),
        Protocol::Uwsgi | Protocol::Scgi { .. } | Protocol::Puwsgi | Protocol::FastCgi { .. } => {
            set_lossy(
                &mut log.remote_addr,
                head.front_end_var(b"REMOTE_ADDR").unwrap_or(b""),
            );
            set_lossy(
                &mut log.remote_user,
                head.front_end_var(b"REMOTE_USER").unwrap_or(b""),
            );
        }
    }
    if shared.settings.log_x_forwarded_for {
        if let Some(value) = forwarded_for() {
            set_lossy(&mut log.forwarded_for, value);
        }
    }
}

/// The head is parsed: show the request on the scoreboard (its harakiri clock starts) and
/// let harakiri answer on its connection.
fn begin_request(shared: &Shared, exchange: &mut ConnExchange) {
    if let Some(health) = &shared.health {
        health.enter();
    }
    let Some(core) = current_core() else {
        return;
    };
    if let Some(inflight) = shared.inflight.get(core) {
        inflight.start(exchange.raw_fd(), exchange.fastcgi_id());
        exchange.inflight = Some(inflight.clone());
    }
    if let Some(slot) = shared.slot().and_then(|w| w.core(core)) {
        let log = &exchange.log;
        slot.begin_request(
            crate::sys::clock::monotonic_us_at(exchange.started()),
            &log.method,
            &log.uri,
            &log.remote_addr,
        );
    }
}

/// `post-buffering`: the body is read whole before the app runs. A body that does not arrive
/// is answered here (400, or 408 on `socket-timeout`) and the app is not called.
fn prebuffer(shared: &Shared, exchange: &mut ConnExchange) -> bool {
    let threshold = shared.settings.post_buffering;
    if threshold == 0 {
        return true;
    }
    if exchange.prebuffer(threshold).is_ok() {
        return true;
    }
    use crate::python::Exchange;
    let status = exchange
        .request_error_status()
        .unwrap_or(b"400 Bad Request");
    let body: &[u8] = if status.starts_with(b"413") {
        limit_message(exchange.body_limit().1)
    } else {
        b"the request body did not arrive whole\n"
    };
    answer_body_error(exchange, status, body);
    false
}

/// The 413's body, naming the option that refused the body.
fn limit_message(option: &str) -> &'static [u8] {
    match option {
        "limit-post-default" => {
            b"the request body is larger than this server accepts (limit-post-default)\n"
        }
        _ => b"the request body is larger than this server accepts (limit-post)\n",
    }
}

/// `limit-post` (or `limit-post-default` for a post-buffered body): a declared body over the
/// limit is answered 413 before the app runs. (A chunked one fails when its reading passes
/// the limit; see `ConnExchange::read_body`.)
fn within_limit_post(exchange: &mut ConnExchange) -> bool {
    let (limit, option) = exchange.body_limit();
    match exchange.declared_length() {
        Some(length) if limit != 0 && length > limit => {
            tracing::warn!(peer = %exchange.log.remote_addr, length, limit, option, "the request body is larger than {option}; answered 413");
            answer_body_error(exchange, b"413 Content Too Large", limit_message(option));
            false
        }
        _ => true,
    }
}

/// Answers a request whose body will not reach the app; the connection then closes.
fn answer_body_error(exchange: &mut ConnExchange, status: &[u8], body: &[u8]) {
    use crate::python::Exchange;
    let headers = [(b"Content-Type".to_vec(), b"text/plain".to_vec())];
    let head = crate::python::ResponseHead {
        status,
        headers: &headers,
        content_length: Some(body.len() as u64),
    };
    let _ = exchange.respond(Some(head), body, true);
}

/// What the request path knows of a finished request besides its log record.
pub(super) struct Finished {
    /// The worker's request count, this one included.
    pub total: u64,
    pub core: Option<usize>,
    pub app_error: bool,
    /// `uwsgi.log_this_request()`.
    pub asked: bool,
    /// `uwsgi.set_logvar()`.
    pub logvars: Vec<(String, String)>,
    /// A `donotlog` route ran: no request line, whatever the log conditions say.
    pub silenced: bool,
}

/// The request is over for the scoreboard: counted in the worker's total, its core idle.
/// Returns the worker's total and the calling thread's core.
pub(super) fn count_end(shared: &Shared) -> (u64, Option<usize>) {
    let total = shared.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let core = current_core();
    if let Some(slot) = shared.slot().and_then(|w| w.core(core?)) {
        slot.end_request();
    }
    (total, core)
}

/// Accounts a finished request, app or static file alike: the worker's scoreboard totals,
/// the Prometheus counters and, when its conditions hold, the request line; then the
/// recycling check. Gives the record back to the thread for its next request.
pub(super) fn account(shared: &Shared, mut log: RequestLog, finished: Finished) {
    // The user a route's `basicauth` or `setuser` named, and whether a route answered
    // (statics and app alike).
    if shared.settings.routes.is_some() {
        if let Some(user) = crate::routing::take_remote_user() {
            set_lossy(&mut log.remote_user, &user);
        }
        let core = finished.core.and_then(|c| shared.slot()?.core(c));
        if let (true, Some(core)) = (crate::routing::take_routed(), core) {
            core.count_routed();
        }
    }
    let elapsed_us = log.elapsed.as_micros() as u64;
    if let Some(worker) = shared.slot() {
        worker.count_request(
            elapsed_us,
            (log.header_bytes as u64).saturating_add(log.body_bytes),
            finished.app_error,
        );
        shared
            .scoreboard
            .metrics()
            .record(shared.worker_id, log.status, elapsed_us);
    }
    let limits = &shared.settings;
    if !finished.silenced
        && limits
            .log_conditions
            .should_log(limits.disable_logging, &log.facts(finished.asked))
    {
        if log.start_unix_micros == 0 {
            // An app request's wall-clock start, read only for a line that prints it: now,
            // less how long it took.
            let start = crate::sys::clock::unix_us().saturating_sub(log.elapsed.as_micros() as u64);
            log.start_unix = start / 1_000_000;
            log.start_unix_micros = start;
        }
        let origin = super::request_log::Origin {
            pid: shared.pid,
            worker_id: shared.worker_id,
            total_requests: finished.total,
            core: finished.core.unwrap_or(0),
            logvars: finished.logvars,
        };
        super::request_log::write(&limits.request_log, limits.line_format, &log, &origin);
    }
    // After the request is counted: a replacement asked for here must not be seen (stats,
    // metrics) before the request that asked for it.
    super::limits::after_request(shared, finished.total);
    if finished.core.is_some() {
        request_record::recycle(log);
    }
}

/// Ends an app request: takes the connection back from the exchange (with the client
/// address `remote` it lent), accounts the request, and keeps the connection for the next request or closes it.
fn finish(
    shared: &Shared,
    exchange: Box<dyn crate::python::Exchange>,
    outcome: Outcome,
    remote: Option<(String, String)>,
) -> Option<Conn> {
    let exchange: Box<ConnExchange> = exchange
        .into_any()
        .downcast()
        .expect("the exchange given to the runner is a ConnExchange");
    if let Some(health) = &shared.health {
        health.leave();
    }
    // Before the connection can close: harakiri must not answer on a reused fd.
    if let Some(inflight) = current_core().and_then(|c| shared.inflight.get(c)) {
        inflight.finish();
    }
    let (total, core) = count_end(shared);
    let (conn, reusable, log, ended) = exchange.into_parts(outcome);
    let finished = Finished {
        total,
        core,
        app_error: outcome.app_error,
        asked: crate::python::take_log_this_request(),
        // Taken whether or not the line is written, so none leaks into the next request.
        logvars: crate::python::take_logvars(),
        // A `donotlog` route: no line for this request.
        silenced: shared.settings.routes.is_some() && crate::routing::take_do_not_log(),
    };
    account(shared, log, finished);
    super::options::after_request(shared, outcome.app_error);
    let mut conn = conn?;
    if let Some((addr, port)) = remote {
        conn.peer_addr = addr;
        conn.peer_port = port;
    }
    conn::keep_or_close(shared, conn, reusable, ended)
}
