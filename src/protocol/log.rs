//! uWSGI's default request log line (`core/logging.c:uwsgi_logit_simple`, reference §7.1), as
//! a pure formatter: the worker gathers the numbers, this writes the text. It does not write
//! anywhere, read a clock or know about `log-format`.
//!
//! Two deliberate differences from uWSGI: the date is UTC (uWSGI's `ctime` uses the local
//! zone, and servers run in UTC), and control characters in request-supplied fields are
//! escaped as `\xNN` so a crafted URI cannot forge a log line.

use std::fmt::Write as _;

use super::log_format::push_escaped;

/// The numbers and strings of one request's log line. Request-supplied fields are bytes,
/// since they come from the wire; invalid UTF-8 is escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLogLine<'a> {
    pub pid: u32,
    pub app_id: i32,
    /// The app's request count, or -1 when no app served the request.
    pub app_requests: i64,
    pub total_requests: u64,
    pub remote_addr: &'a [u8],
    pub remote_user: &'a [u8],
    pub var_count: usize,
    /// The uwsgi packet size, or for HTTP the size of the variables uWSGI would have built.
    pub packet_size: usize,
    pub start_unix_secs: i64,
    pub method: &'a [u8],
    pub uri: &'a [u8],
    pub body_bytes: u64,
    pub msecs: u64,
    /// `log-micros`: the time is given as this many microseconds instead of `msecs`.
    pub micros: Option<u64>,
    /// `memory-report`: the worker's address space and resident set in bytes, put in front.
    pub memory: Option<(u64, u64)>,
    /// The body went out with `sendfile(2)` (`wsgi.file_wrapper` over a file).
    pub via_sendfile: bool,
    /// The body was handed to an offload thread (a static file a client did not take at
    /// once).
    pub via_offload: bool,
    pub protocol: &'a [u8],
    pub status: u16,
    pub header_count: usize,
    pub header_bytes: u64,
    pub switches: u64,
    pub core: usize,
}

impl RequestLogLine<'_> {
    /// Appends the line, newline included:
    ///
    /// `[pid: 15045|app: 0|req: 2/1] 127.0.0.1 () {24 vars in 248 bytes} [Sun Nov 22 20:59:21 2026] GET /a => generated 2 bytes in 0 msecs (HTTP/1.1 200) 1 headers in 45 bytes (1 switches on core 0)`
    pub fn format(&self, out: &mut String) {
        // `write!` to a String cannot fail; the results are ignored for that reason.
        if let Some((vsz, rss)) = self.memory {
            const MB: u64 = 1024 * 1024;
            let _ = write!(
                out,
                "{{address space usage: {vsz} bytes/{}MB}} {{rss usage: {rss} bytes/{}MB}} ",
                vsz / MB,
                rss / MB
            );
        }
        let _ = write!(
            out,
            "[pid: {}|app: {}|req: {}/{}] ",
            self.pid, self.app_id, self.app_requests, self.total_requests
        );
        push_escaped(out, self.remote_addr);
        out.push_str(" (");
        push_escaped(out, self.remote_user);
        let _ = write!(
            out,
            ") {{{} vars in {} bytes}} [",
            self.var_count, self.packet_size
        );
        push_ctime(out, self.start_unix_secs);
        out.push_str("] ");
        push_escaped(out, self.method);
        out.push(' ');
        push_escaped(out, self.uri);
        // uWSGI's route() path does not exist in kaiser; sendfile and offload do.
        let via = if self.via_offload {
            " via offload() "
        } else if self.via_sendfile {
            " via sendfile() "
        } else {
            " "
        };
        let (time, unit) = match self.micros {
            Some(micros) => (micros, "micros"),
            None => (self.msecs, "msecs"),
        };
        let _ = write!(
            out,
            " => generated {} bytes in {time} {unit}{via}(",
            self.body_bytes
        );
        push_escaped(out, self.protocol);
        let _ = writeln!(
            out,
            " {}) {} headers in {} bytes ({} switches on core {})",
            self.status, self.header_count, self.header_bytes, self.switches, self.core
        );
    }
}

/// What still gets a request line when `disable-logging` is on (`log-4xx`, `log-slow`, …;
/// reference §7.3). Each is off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogConditions {
    pub status_4xx: bool,
    pub status_5xx: bool,
    /// An empty response body.
    pub zero: bool,
    pub sendfile: bool,
    /// A read or a write error on the connection. uWSGI asks for both at once, which almost
    /// never happens; either one is what the option's users are after.
    pub io_error: bool,
    /// Milliseconds or more (0: off).
    pub slow_ms: u64,
    /// Body bytes or more (0: off).
    pub big_bytes: u64,
}

/// The facts about a finished request that [`LogConditions`] look at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestFacts {
    pub status: u16,
    pub body_bytes: u64,
    pub msecs: u64,
    pub via_sendfile: bool,
    pub io_error: bool,
    /// The app called `uwsgi.log_this_request()`.
    pub asked: bool,
}

impl LogConditions {
    /// Whether a request gets its line: always, unless logging is disabled; then only when the
    /// app asked or a condition holds.
    pub fn should_log(&self, disabled: bool, request: &RequestFacts) -> bool {
        !disabled
            || request.asked
            || (self.zero && request.body_bytes == 0)
            || (self.slow_ms != 0 && request.msecs >= self.slow_ms)
            || (self.status_4xx && (400..500).contains(&request.status))
            || (self.status_5xx && (500..600).contains(&request.status))
            || (self.big_bytes != 0 && request.body_bytes >= self.big_bytes)
            || (self.sendfile && request.via_sendfile)
            || (self.io_error && request.io_error)
    }
}

/// Appends the time as C's `ctime` does, in UTC and without the newline:
/// `Sun Nov 22 20:59:21 2026` (the day of month padded with a space).
pub fn push_ctime(out: &mut String, unix_secs: i64) {
    const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs.div_euclid(86_400);
    let secs_of_day = unix_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = (days + 4).rem_euclid(7) as usize;
    let _ = write!(
        out,
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        WEEKDAYS[weekday],
        MONTHS[(month - 1) as usize],
        day,
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60,
        year
    );
}

/// The proleptic Gregorian date of a day count since 1970-01-01, as (year, month 1–12,
/// day 1–31). Howard Hinnant's `civil_from_days`
/// (<https://howardhinnant.github.io/date_algorithms.html#civil_from_days>).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097); // [0, 146096]
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365]
    let month_from_march = (5 * day_of_year + 2) / 153; // [0, 11]
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_ctime(unix_secs: i64, expected: &str) {
        let mut out = String::new();
        push_ctime(&mut out, unix_secs);
        assert_eq!(out, expected, "ctime of {unix_secs}");
    }

    #[test]
    fn ctime() {
        check_ctime(0, "Thu Jan  1 00:00:00 1970");
        check_ctime(-1, "Wed Dec 31 23:59:59 1969");
        check_ctime(951_782_400, "Tue Feb 29 00:00:00 2000");
        check_ctime(1_000_000_000, "Sun Sep  9 01:46:40 2001");
        check_ctime(1_234_567_890, "Fri Feb 13 23:31:30 2009");
        check_ctime(1_709_251_199, "Thu Feb 29 23:59:59 2024");
        check_ctime(1_795_381_161, "Sun Nov 22 20:59:21 2026");
        check_ctime(2_147_483_647, "Tue Jan 19 03:14:07 2038");
        check_ctime(4_102_444_800, "Fri Jan  1 00:00:00 2100");
        check_ctime(-2_208_988_800, "Mon Jan  1 00:00:00 1900");
    }

    #[test]
    fn ctime_is_24_characters() {
        for secs in (0..4_102_444_800i64).step_by(9_999_991) {
            let mut out = String::new();
            push_ctime(&mut out, secs);
            assert_eq!(out.len(), 24, "{out:?}");
        }
    }

    fn line<'a>() -> RequestLogLine<'a> {
        RequestLogLine {
            pid: 15045,
            app_id: 0,
            app_requests: 2,
            total_requests: 1,
            remote_addr: b"127.0.0.1",
            remote_user: b"",
            var_count: 24,
            packet_size: 248,
            start_unix_secs: 1_795_381_161,
            method: b"GET",
            uri: b"/a",
            body_bytes: 2,
            msecs: 0,
            micros: None,
            memory: None,
            via_sendfile: false,
            via_offload: false,
            protocol: b"HTTP/1.1",
            status: 200,
            header_count: 1,
            header_bytes: 45,
            switches: 1,
            core: 0,
        }
    }

    fn check(line: RequestLogLine<'_>, expected: &str) {
        let mut out = String::from("prefix ");
        line.format(&mut out);
        assert_eq!(out, format!("prefix {expected}\n"));
    }

    #[test]
    fn reference_example() {
        check(line(), "[pid: 15045|app: 0|req: 2/1] 127.0.0.1 () {24 vars in 248 bytes} [Sun Nov 22 20:59:21 2026] GET /a => generated 2 bytes in 0 msecs (HTTP/1.1 200) 1 headers in 45 bytes (1 switches on core 0)");
    }

    #[test]
    fn fields() {
        check(
            RequestLogLine { app_id: -1, app_requests: -1, remote_user: b"bob", method: b"POST", uri: b"/x?y=1", status: 500, msecs: 1234, core: 3, ..line() },
            "[pid: 15045|app: -1|req: -1/1] 127.0.0.1 (bob) {24 vars in 248 bytes} [Sun Nov 22 20:59:21 2026] POST /x?y=1 => generated 2 bytes in 1234 msecs (HTTP/1.1 500) 1 headers in 45 bytes (1 switches on core 3)",
        );
        check(
            RequestLogLine { uri: b"/a\nfake line\x1b[31m\xff/\xc3\xa9", ..line() },
            "[pid: 15045|app: 0|req: 2/1] 127.0.0.1 () {24 vars in 248 bytes} [Sun Nov 22 20:59:21 2026] GET /a\\x0afake line\\x1b[31m\\xff/é => generated 2 bytes in 0 msecs (HTTP/1.1 200) 1 headers in 45 bytes (1 switches on core 0)",
        );
    }

    #[test]
    fn offload_is_named_where_uwsgi_names_it() {
        check(
            RequestLogLine { via_offload: true, via_sendfile: true, body_bytes: 131_072, ..line() },
            "[pid: 15045|app: 0|req: 2/1] 127.0.0.1 () {24 vars in 248 bytes} [Sun Nov 22 20:59:21 2026] GET /a => generated 131072 bytes in 0 msecs via offload() (HTTP/1.1 200) 1 headers in 45 bytes (1 switches on core 0)",
        );
    }

    #[test]
    fn sendfile_is_named_where_uwsgi_names_it() {
        check(
            RequestLogLine { via_sendfile: true, body_bytes: 131_072, ..line() },
            "[pid: 15045|app: 0|req: 2/1] 127.0.0.1 () {24 vars in 248 bytes} [Sun Nov 22 20:59:21 2026] GET /a => generated 131072 bytes in 0 msecs via sendfile() (HTTP/1.1 200) 1 headers in 45 bytes (1 switches on core 0)",
        );
    }

    #[test]
    fn conditions_only_matter_with_logging_disabled() {
        let ok = RequestFacts {
            status: 200,
            body_bytes: 10,
            msecs: 5,
            ..Default::default()
        };
        let all = LogConditions {
            status_4xx: true,
            status_5xx: true,
            zero: true,
            sendfile: true,
            io_error: true,
            slow_ms: 100,
            big_bytes: 1000,
        };
        assert!(LogConditions::default().should_log(false, &ok));
        assert!(!LogConditions::default().should_log(true, &ok));
        assert!(
            !all.should_log(true, &ok),
            "a plain 200 matches no condition"
        );
        assert!(LogConditions::default().should_log(true, &RequestFacts { asked: true, ..ok }));
    }

    #[test]
    fn each_condition_with_logging_disabled() {
        let ok = RequestFacts {
            status: 200,
            body_bytes: 10,
            msecs: 5,
            ..Default::default()
        };
        let only = |c: LogConditions, facts: RequestFacts| c.should_log(true, &facts);
        let none = LogConditions::default();
        // (conditions, request, logged)
        let cases = [
            (
                LogConditions {
                    status_4xx: true,
                    ..none
                },
                RequestFacts { status: 400, ..ok },
                true,
            ),
            (
                LogConditions {
                    status_4xx: true,
                    ..none
                },
                RequestFacts { status: 499, ..ok },
                true,
            ),
            (
                LogConditions {
                    status_4xx: true,
                    ..none
                },
                RequestFacts { status: 500, ..ok },
                false,
            ),
            (
                LogConditions {
                    status_4xx: true,
                    ..none
                },
                RequestFacts { status: 399, ..ok },
                false,
            ),
            (
                LogConditions {
                    status_5xx: true,
                    ..none
                },
                RequestFacts { status: 500, ..ok },
                true,
            ),
            (
                LogConditions {
                    status_5xx: true,
                    ..none
                },
                RequestFacts { status: 599, ..ok },
                true,
            ),
            (
                LogConditions {
                    status_5xx: true,
                    ..none
                },
                RequestFacts { status: 404, ..ok },
                false,
            ),
            (
                LogConditions { zero: true, ..none },
                RequestFacts {
                    body_bytes: 0,
                    ..ok
                },
                true,
            ),
            (LogConditions { zero: true, ..none }, ok, false),
            (LogConditions { slow_ms: 5, ..none }, ok, true),
            (LogConditions { slow_ms: 6, ..none }, ok, false),
            (
                LogConditions { slow_ms: 0, ..none },
                RequestFacts {
                    msecs: 100_000,
                    ..ok
                },
                false,
            ),
            (
                LogConditions {
                    big_bytes: 10,
                    ..none
                },
                ok,
                true,
            ),
            (
                LogConditions {
                    big_bytes: 11,
                    ..none
                },
                ok,
                false,
            ),
            (
                LogConditions {
                    big_bytes: 0,
                    ..none
                },
                RequestFacts {
                    body_bytes: u64::MAX,
                    ..ok
                },
                false,
            ),
            (
                LogConditions {
                    sendfile: true,
                    ..none
                },
                RequestFacts {
                    via_sendfile: true,
                    ..ok
                },
                true,
            ),
            (
                LogConditions {
                    sendfile: true,
                    ..none
                },
                ok,
                false,
            ),
            (
                LogConditions {
                    io_error: true,
                    ..none
                },
                RequestFacts {
                    io_error: true,
                    ..ok
                },
                true,
            ),
            (
                LogConditions {
                    io_error: true,
                    ..none
                },
                ok,
                false,
            ),
        ];
        for (conditions, facts, logged) in cases {
            assert_eq!(
                only(conditions, facts),
                logged,
                "{conditions:?} with {facts:?}"
            );
        }
    }

    #[test]
    fn log_micros_and_memory_report() {
        check(
            RequestLogLine { msecs: 1, micros: Some(1234), ..line() },
            "[pid: 15045|app: 0|req: 2/1] 127.0.0.1 () {24 vars in 248 bytes} [Sun Nov 22 20:59:21 2026] GET /a => generated 2 bytes in 1234 micros (HTTP/1.1 200) 1 headers in 45 bytes (1 switches on core 0)",
        );
        check(
            RequestLogLine { memory: Some((3 * 1024 * 1024 + 5, 1024 * 1024 - 1)), ..line() },
            "{address space usage: 3145733 bytes/3MB} {rss usage: 1048575 bytes/0MB} [pid: 15045|app: 0|req: 2/1] 127.0.0.1 () {24 vars in 248 bytes} [Sun Nov 22 20:59:21 2026] GET /a => generated 2 bytes in 0 msecs (HTTP/1.1 200) 1 headers in 45 bytes (1 switches on core 0)",
        );
    }
}
