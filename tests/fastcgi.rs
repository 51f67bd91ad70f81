//! `fastcgi-socket` and `fastcgi-nph-socket` served by the real binary: a raw FastCGI client
//! written here from the specification (records, name-value pairs, stdin in many records,
//! `FCGI_KEEP_CONN`, management records, malformed records), and a real nginx
//! `fastcgi_pass` in front, with and without `fastcgi_keep_conn on`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

const BEGIN_REQUEST: u8 = 1;
const END_REQUEST: u8 = 3;
const PARAMS: u8 = 4;
const STDIN: u8 = 5;
const STDOUT: u8 = 6;
const GET_VALUES: u8 = 9;
const GET_VALUES_RESULT: u8 = 10;

/// One record: the 8-byte header, the content and `padding` zero bytes.
fn record(kind: u8, id: u16, content: &[u8], padding: u8) -> Vec<u8> {
    assert!(content.len() <= 65535, "a record holds at most 65535 bytes");
    let mut out = vec![1, kind];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(content.len() as u16).to_be_bytes());
    out.extend_from_slice(&[padding, 0]);
    out.extend_from_slice(content);
    out.extend(std::iter::repeat_n(0u8, usize::from(padding)));
    out
}

/// Name-value pairs: lengths of one byte below 128, else four with the top bit set.
fn pairs(vars: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in vars {
        for len in [name.len(), value.len()] {
            if len < 128 {
                out.push(len as u8);
            } else {
                out.extend_from_slice(&(len as u32 | 0x8000_0000).to_be_bytes());
            }
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// A whole request: begin (responder, `keep_conn`), the params in one record, the empty
/// params record, `body` in stdin records of at most `stdin_record` bytes (padded to 8), and
/// the empty stdin record.
fn request(
    id: u16,
    keep_conn: bool,
    vars: &[(&str, &str)],
    body: &[u8],
    stdin_record: usize,
) -> Vec<u8> {
    let mut out = record(
        BEGIN_REQUEST,
        id,
        &[0, 1, u8::from(keep_conn), 0, 0, 0, 0, 0],
        0,
    );
    out.extend(record(PARAMS, id, &pairs(vars), 0));
    out.extend(record(PARAMS, id, b"", 0));
    for piece in body.chunks(stdin_record.max(1)) {
        let padding = ((8 - piece.len() % 8) % 8) as u8;
        out.extend(record(STDIN, id, piece, padding));
    }
    out.extend(record(STDIN, id, b"", 0));
    out
}

fn get_vars<'a>(uri: &'a str, path: &'a str, query: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", uri),
        ("PATH_INFO", path),
        ("QUERY_STRING", query),
        ("CONTENT_LENGTH", ""),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "127.0.0.1"),
    ]
}

/// What the server sent for one request: the concatenated stdout and every record seen.
struct Reply {
    stdout: Vec<u8>,
    /// `(type, request id, content length)` of each record, in order.
    records: Vec<(u8, u16, usize)>,
}

impl Reply {
    /// The CGI head (up to the blank line) and the body.
    fn head_and_body(&self) -> (String, &[u8]) {
        let split = self
            .stdout
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no end of head in {:?}", self.text()));
        (
            String::from_utf8_lossy(&self.stdout[..split + 2]).into_owned(),
            &self.stdout[split + 4..],
        )
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Reads records until `FCGI_END_REQUEST`, checking each belongs to request `id` and that the
/// stdout stream ended (an empty stdout record) just before it.
fn read_reply(stream: &mut UnixStream, id: u16) -> Result<Reply, String> {
    let mut reply = Reply {
        stdout: Vec::new(),
        records: Vec::new(),
    };
    loop {
        let mut header = [0u8; 8];
        stream.read_exact(&mut header).map_err(|err| {
            format!(
                "reading a record header after {} records ({:?}): {err}; stdout so far: {}",
                reply.records.len(),
                reply.records.last(),
                reply.text()
            )
        })?;
        assert_eq!(header[0], 1, "record version");
        let kind = header[1];
        let record_id = u16::from_be_bytes([header[2], header[3]]);
        let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
        let mut content = vec![0u8; len + usize::from(header[6])];
        stream
            .read_exact(&mut content)
            .map_err(|err| format!("reading a {len}-byte record of type {kind}: {err}"))?;
        content.truncate(len);
        reply.records.push((kind, record_id, len));
        assert_eq!(
            record_id, id,
            "a record of another request: {:?}",
            reply.records
        );
        match kind {
            STDOUT => reply.stdout.extend_from_slice(&content),
            END_REQUEST => {
                assert_eq!(content, [0u8; 8], "app status 0, FCGI_REQUEST_COMPLETE");
                let n = reply.records.len();
                assert!(
                    n >= 2 && reply.records[n - 2] == (STDOUT, id, 0),
                    "the stdout stream ends with an empty record before END_REQUEST: {:?}",
                    reply.records
                );
                return Ok(reply);
            }
            other => return Err(format!("unexpected record type {other}")),
        }
    }
}

fn connect(path: &Path) -> UnixStream {
    let stream = UnixStream::connect(path).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Whether the server closes `stream` (EOF, or a reset) without sending more.
fn closed(stream: &mut UnixStream) -> Result<(), String> {
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) if rest.is_empty() => Ok(()),
        Ok(_) => Err(format!(
            "{} more bytes before the close: {rest:?}",
            rest.len()
        )),
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
        Err(err) => Err(format!("the connection did not close: {err}")),
    }
}

struct Served {
    kaiser: Kaiser,
    fastcgi: PathBuf,
    nph: PathBuf,
}

fn start(dir: &TempDir, extra: &[&str]) -> Served {
    let fastcgi = dir.join("fcgi.sock");
    let nph = dir.join("nph.sock");
    let mut args = vec![
        "--fastcgi-socket".to_string(),
        fastcgi.display().to_string(),
        "--fastcgi-nph-socket".to_string(),
        nph.display().to_string(),
        "--wsgi-file".to_string(),
        "tests/apps/wsgi_suite.py".to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let kaiser = Kaiser::spawn(&args);
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    Served {
        kaiser,
        fastcgi,
        nph,
    }
}

#[test]
fn a_get_is_answered_in_stdout_records_with_a_cgi_or_nph_head() {
    let dir = TempDir::new("fcgi-get");
    let served = start(&dir, &[]);
    let vars = get_vars("/env?x=1", "/env", "x=1");
    let mut stream = connect(&served.fastcgi);
    stream.write_all(&request(1, false, &vars, b"", 1)).unwrap();
    let reply = read_reply(&mut stream, 1).unwrap();
    let (head, body) = reply.head_and_body();
    assert!(head.starts_with("Status: 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: application/json\r\n"),
        "{head}"
    );
    let body = String::from_utf8_lossy(body);
    assert!(body.contains("\"QUERY_STRING\": \"x=1\""), "{body}");
    assert!(body.contains("\"REMOTE_ADDR\": \"127.0.0.1\""), "{body}");
    // No FCGI_KEEP_CONN: the connection closes after the response.
    closed(&mut stream).unwrap();

    let mut nph = connect(&served.nph);
    nph.write_all(&request(300, false, &vars, b"", 1)).unwrap();
    let reply = read_reply(&mut nph, 300).unwrap();
    let (head, _) = reply.head_and_body();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");

    // The request line is logged like any other.
    served
        .kaiser
        .wait_for_log("GET /env?x=1", IO_TIMEOUT)
        .unwrap();
}

#[test]
fn a_body_in_many_stdin_records_reaches_wsgi_input_and_large_responses_are_framed() {
    let dir = TempDir::new("fcgi-body");
    let served = start(&dir, &[]);
    // 300 KiB in records of 7,001 bytes (padded), so records straddle every read.
    let body: Vec<u8> = (0..300 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let length = body.len().to_string();
    let vars = [
        ("REQUEST_METHOD", "POST"),
        ("REQUEST_URI", "/echo"),
        ("PATH_INFO", "/echo"),
        ("QUERY_STRING", ""),
        ("CONTENT_LENGTH", length.as_str()),
        ("CONTENT_TYPE", "application/octet-stream"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
    ];
    let mut stream = connect(&served.fastcgi);
    let raw = request(2, false, &vars, &body, 7001);
    // Written from another thread: the echo's response may start before the body is all sent.
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&raw));
    let reply = read_reply(&mut stream, 2).unwrap();
    sender.join().unwrap().unwrap();
    let (head, echoed) = reply.head_and_body();
    assert!(head.starts_with("Status: 200 OK\r\n"), "{head}");
    assert!(
        head.contains(&format!("X-Body-Length: {}\r\n", body.len())),
        "{head}"
    );
    assert!(echoed == body.as_slice(), "the echoed body differs");
    // A 300 KiB response needs several records; none is over 65535 bytes.
    let stdout_records = reply.records.iter().filter(|r| r.0 == STDOUT).count();
    assert!(stdout_records >= 6, "{:?}", reply.records);

    // A streamed response of unknown length: no Content-Length, the records delimit it.
    let vars = get_vars(
        "/big?bytes=200000&stream=1&chunk=10000",
        "/big",
        "bytes=200000&stream=1&chunk=10000",
    );
    let mut stream = connect(&served.fastcgi);
    stream.write_all(&request(3, false, &vars, b"", 1)).unwrap();
    let reply = read_reply(&mut stream, 3).unwrap();
    let (head, streamed) = reply.head_and_body();
    assert!(
        !head.to_ascii_lowercase().contains("content-length"),
        "{head}"
    );
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    assert!(
        streamed == expected_big_body(200_000).as_slice(),
        "the streamed body differs"
    );

    // A file through wsgi.file_wrapper goes in records too.
    let vars = get_vars("/file", "/file", "");
    let mut stream = connect(&served.fastcgi);
    stream.write_all(&request(4, false, &vars, b"", 1)).unwrap();
    let reply = read_reply(&mut stream, 4).unwrap();
    let (_, file) = reply.head_and_body();
    assert_eq!(
        file,
        std::fs::read("tests/apps/wsgi_suite.py")
            .unwrap()
            .as_slice()
    );
}

#[test]
fn keep_conn_carries_several_requests_on_one_connection() {
    let dir = TempDir::new("fcgi-keep");
    let served = start(&dir, &[]);
    let mut stream = connect(&served.fastcgi);
    let vars = get_vars("/env?n=1", "/env", "n=1");
    stream.write_all(&request(1, true, &vars, b"", 1)).unwrap();
    let first = read_reply(&mut stream, 1).unwrap();
    assert!(
        first.text().contains("\"QUERY_STRING\": \"n=1\""),
        "{}",
        first.text()
    );

    // The second request, on the same connection, with a body the app does not read (the
    // rest of its stdin is drained before the next request) and another id.
    let post = [
        ("REQUEST_METHOD", "POST"),
        ("REQUEST_URI", "/env?n=2"),
        ("PATH_INFO", "/env"),
        ("QUERY_STRING", "n=2"),
        ("CONTENT_LENGTH", "5000"),
    ];
    stream
        .write_all(&request(2, true, &post, &[b'x'; 5000], 1000))
        .unwrap();
    let second = read_reply(&mut stream, 2).unwrap();
    assert!(
        second.text().contains("\"QUERY_STRING\": \"n=2\""),
        "{}",
        second.text()
    );

    // Two more written at once (pipelined): a streamed one, then the last, without
    // FCGI_KEEP_CONN, after which the connection closes.
    let streamed = get_vars("/stream?chunks=3", "/stream", "chunks=3");
    let mut both = request(3, true, &streamed, b"", 1);
    both.extend(request(
        4,
        false,
        &get_vars("/env?n=4", "/env", "n=4"),
        b"",
        1,
    ));
    stream.write_all(&both).unwrap();
    let third = read_reply(&mut stream, 3).unwrap();
    assert!(
        third.text().ends_with("chunk 0\nchunk 1\nchunk 2\n"),
        "{}",
        third.text()
    );
    let fourth = read_reply(&mut stream, 4).unwrap();
    assert!(
        fourth.text().contains("\"QUERY_STRING\": \"n=4\""),
        "{}",
        fourth.text()
    );
    closed(&mut stream).unwrap();
}

#[test]
fn management_records_are_answered_between_requests() {
    let dir = TempDir::new("fcgi-values");
    let served = start(&dir, &["--threads", "3"]);
    let mut stream = connect(&served.fastcgi);
    let ask = pairs(&[("FCGI_MAX_CONNS", ""), ("FCGI_MPXS_CONNS", "")]);
    // In two writes: a record that has not arrived whole is waited for, not refused.
    let values = record(GET_VALUES, 0, &ask, 0);
    stream.write_all(&values[..11]).unwrap();
    stream.flush().unwrap();
    stream.write_all(&values[11..]).unwrap();
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).unwrap();
    assert_eq!(header[1], GET_VALUES_RESULT, "{header:?}");
    let mut content = vec![0u8; usize::from(u16::from_be_bytes([header[4], header[5]]))];
    stream.read_exact(&mut content).unwrap();
    assert_eq!(
        content,
        pairs(&[("FCGI_MAX_CONNS", "3"), ("FCGI_MPXS_CONNS", "0")])
    );
    // The connection then serves a request.
    stream
        .write_all(&request(1, false, &get_vars("/", "/", ""), b"", 1))
        .unwrap();
    let reply = read_reply(&mut stream, 1).unwrap();
    assert!(
        reply.text().starts_with("Status: 200 OK"),
        "{}",
        reply.text()
    );
}

#[test]
fn a_malformed_record_closes_only_its_own_connection() {
    let dir = TempDir::new("fcgi-bad");
    let served = start(&dir, &["--threads", "2"]);
    // A kept connection, served once before and after the bad one arrives.
    let mut good = connect(&served.fastcgi);
    good.write_all(&request(
        1,
        true,
        &get_vars("/env?a=1", "/env", "a=1"),
        b"",
        1,
    ))
    .unwrap();
    read_reply(&mut good, 1).unwrap();

    let mark = served.kaiser.log_mark();
    // HTTP sent to a FastCGI socket: its first byte is no record version.
    let mut http = connect(&served.fastcgi);
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    closed(&mut http).unwrap();
    served
        .kaiser
        .wait_for_log_since(mark, "bad FastCGI request", IO_TIMEOUT)
        .unwrap();

    // A params record whose pair runs past its end.
    let mut torn = connect(&served.fastcgi);
    let mut raw = record(BEGIN_REQUEST, 9, &[0, 1, 1, 0, 0, 0, 0, 0], 0);
    raw.extend(record(PARAMS, 9, &[100, 1, b'A', b'B'], 0));
    torn.write_all(&raw).unwrap();
    closed(&mut torn).unwrap();

    // A management record with a bad version in front of a request.
    let mut versioned = connect(&served.fastcgi);
    versioned
        .write_all(&[7, GET_VALUES, 0, 0, 0, 0, 0, 0])
        .unwrap();
    closed(&mut versioned).unwrap();

    // The kept connection still works.
    good.write_all(&request(
        2,
        false,
        &get_vars("/env?a=2", "/env", "a=2"),
        b"",
        1,
    ))
    .unwrap();
    let reply = read_reply(&mut good, 2).unwrap();
    assert!(
        reply.text().contains("\"QUERY_STRING\": \"a=2\""),
        "{}",
        reply.text()
    );
}

/// A byte pipe between nginx and kaiser's unix socket that counts the connections nginx
/// opens: how the tests see whether `fastcgi_keep_conn` reuses one.
struct CountingPipe {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl CountingPipe {
    fn start(target: PathBuf) -> CountingPipe {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                counter.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = UnixStream::connect(&target) else {
                    return;
                };
                pipe(client, server);
            }
        });
        CountingPipe { addr, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Copies both ways until either side closes; then closes both.
fn pipe(client: TcpStream, server: UnixStream) {
    let (mut client_read, mut server_write) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (mut server_read, mut client_write) = (server, client);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_read, &mut server_write);
        let _ = server_write.shutdown(std::net::Shutdown::Both);
    });
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut server_read, &mut client_write);
        let _ = client_write.shutdown(std::net::Shutdown::Both);
    });
}

/// Debian's `/etc/nginx/fastcgi_params`, as deployments include it, less the comments.
const FASTCGI_PARAMS: &str = "
fastcgi_param  QUERY_STRING       $query_string;
fastcgi_param  REQUEST_METHOD     $request_method;
fastcgi_param  CONTENT_TYPE       $content_type;
fastcgi_param  CONTENT_LENGTH     $content_length;
fastcgi_param  SCRIPT_NAME        $fastcgi_script_name;
fastcgi_param  REQUEST_URI        $request_uri;
fastcgi_param  DOCUMENT_URI       $document_uri;
fastcgi_param  DOCUMENT_ROOT      $document_root;
fastcgi_param  SERVER_PROTOCOL    $server_protocol;
fastcgi_param  REQUEST_SCHEME     $scheme;
fastcgi_param  HTTPS              $https if_not_empty;
fastcgi_param  GATEWAY_INTERFACE  CGI/1.1;
fastcgi_param  SERVER_SOFTWARE    nginx/$nginx_version;
fastcgi_param  REMOTE_ADDR        $remote_addr;
fastcgi_param  REMOTE_PORT        $remote_port;
fastcgi_param  REMOTE_USER        $remote_user;
fastcgi_param  SERVER_ADDR        $server_addr;
fastcgi_param  SERVER_PORT        $server_port;
fastcgi_param  SERVER_NAME        $server_name;
fastcgi_param  REDIRECT_STATUS    200;
fastcgi_param  HTTP_HOST          $host;
fastcgi_param  PATH_INFO          $document_uri;
";

/// nginx in front of `pipe` (and so of kaiser's `fastcgi-socket`), through an upstream with
/// idle connections kept, `fastcgi_keep_conn` as given; the nph socket on `/nph/`.
fn nginx_in_front(pipe: &CountingPipe, nph: &Path, keep_conn: bool) -> Nginx {
    let keep = if keep_conn { "on" } else { "off" };
    Nginx::start_http(&format!(
        "upstream kaiser {{ server {pipe}; keepalive 4; keepalive_timeout 20s; }}
    server {{
        listen 127.0.0.1:@PORT@;
        client_max_body_size 10m;
        location / {{ {FASTCGI_PARAMS} fastcgi_keep_conn {keep}; fastcgi_pass kaiser; }}
        location /unbuffered/ {{ {FASTCGI_PARAMS} fastcgi_param PATH_INFO /echo;
            fastcgi_request_buffering off; fastcgi_keep_conn {keep}; fastcgi_pass kaiser; }}
        location /nph/ {{ {FASTCGI_PARAMS} fastcgi_param PATH_INFO /env; fastcgi_pass unix:{nph}; }}
    }}",
        pipe = pipe.addr,
        nph = nph.display(),
    ))
}

/// What every nginx test checks through one kept-alive client connection: a GET with its
/// environ, a status from the app, a POST body, a streamed response, a large one and nph.
/// Returns the number of requests sent through `fastcgi_pass kaiser`.
fn exercise_nginx(nginx: &Nginx) -> usize {
    let stream = wait_for_connect(nginx.addr(), START_TIMEOUT).unwrap();
    let mut client = HttpConn::new(stream);
    let get = |client: &mut HttpConn<TcpStream>, target: &str| {
        client
            .request(&request_bytes("GET", target, &[("Host", "localhost")], b""))
            .unwrap()
    };
    let env = get(&mut client, "/env?a=b");
    assert_eq!(env.status, 200, "{env}");
    assert!(env.text().contains("\"QUERY_STRING\": \"a=b\""), "{env}");
    assert!(
        env.text().contains("\"GATEWAY_INTERFACE\": \"CGI/1.1\""),
        "{env}"
    );
    assert_eq!(
        env.header("Content-Type"),
        Some("application/json"),
        "{env}"
    );

    let teapot = get(&mut client, "/status?code=418");
    assert_eq!(
        teapot.status, 418,
        "the Status: line reaches nginx: {teapot}"
    );

    let body: Vec<u8> = (0..200_000).map(|i| (i % 253) as u8).collect();
    let echoed = client
        .request(&request_bytes(
            "POST",
            "/echo",
            &[
                ("Host", "localhost"),
                ("Content-Type", "application/octet-stream"),
            ],
            &body,
        ))
        .unwrap();
    assert_eq!(echoed.status, 200, "{echoed}");
    assert!(echoed.body == body, "the body echoed through nginx differs");

    // A chunked body, passed on as it comes (`fastcgi_request_buffering off`): no
    // CONTENT_LENGTH, the stdin stream is the body.
    let mut chunked = Vec::new();
    for piece in body.chunks(30_000) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let echoed = client
        .request(&request_bytes(
            "POST",
            "/unbuffered/x?mode=eof",
            &[("Host", "localhost"), ("Transfer-Encoding", "chunked")],
            &chunked,
        ))
        .unwrap();
    assert_eq!(echoed.status, 200, "{echoed}");
    assert_eq!(
        echoed.header("X-Content-Length-Env"),
        Some("empty"),
        "{echoed}"
    );
    assert!(
        echoed.body == body,
        "the unbuffered body echoed through nginx differs"
    );

    let streamed = get(&mut client, "/stream?chunks=4");
    assert_eq!(streamed.status, 200, "{streamed}");
    assert_eq!(streamed.text(), "chunk 0\nchunk 1\nchunk 2\nchunk 3\n");

    let big = get(&mut client, "/big?bytes=500000");
    assert_eq!(big.status, 200, "{big}");
    assert!(
        big.body == expected_big_body(500_000),
        "the big body differs"
    );

    let nph = get(&mut client, "/nph/x");
    assert_eq!(nph.status, 200, "{nph}");
    assert!(nph.text().contains("\"PATH_INFO\": \"/env\""), "{nph}");
    6
}

#[test]
fn nginx_fastcgi_pass_without_keep_conn_opens_a_connection_per_request() {
    let dir = TempDir::new("fcgi-nginx");
    let served = start(&dir, &[]);
    let pipe = CountingPipe::start(served.fastcgi.clone());
    let nginx = nginx_in_front(&pipe, &served.nph, false);
    let requests = exercise_nginx(&nginx);
    assert_eq!(
        pipe.connections(),
        requests,
        "one upstream connection per request"
    );
    assert!(
        !nginx.error_log().contains("upstream"),
        "nginx complained:\n{}",
        nginx.error_log()
    );
}

#[test]
fn nginx_fastcgi_keep_conn_serves_every_request_on_one_connection() {
    let dir = TempDir::new("fcgi-nginx-keep");
    let served = start(&dir, &[]);
    let pipe = CountingPipe::start(served.fastcgi.clone());
    let nginx = nginx_in_front(&pipe, &served.nph, true);
    exercise_nginx(&nginx);
    exercise_nginx(&nginx);
    assert_eq!(
        pipe.connections(),
        1,
        "fastcgi_keep_conn on: nginx reuses its one upstream connection"
    );
    assert!(
        !nginx.error_log().contains("upstream"),
        "nginx complained:\n{}",
        nginx.error_log()
    );
}

#[test]
fn harakiri_answers_a_stuck_fastcgi_request_with_a_504_in_records() {
    let dir = TempDir::new("fcgi-harakiri");
    let served = start(
        &dir,
        &["--harakiri", "1", "--harakiri-graceful-timeout", "1"],
    );
    let mut stream = connect(&served.fastcgi);
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let vars = get_vars("/sleep?ms=20000", "/sleep", "ms=20000");
    stream.write_all(&request(5, true, &vars, b"", 1)).unwrap();
    let reply = read_reply(&mut stream, 5).unwrap();
    let (head, body) = reply.head_and_body();
    assert!(
        head.starts_with("Status: 504 Gateway Timeout\r\n"),
        "{head}"
    );
    assert_eq!(body, b"the request took too long (harakiri)\n");
    closed(&mut stream).unwrap();
}

fn post_vars(length: &str) -> Vec<(&str, &str)> {
    vec![
        ("REQUEST_METHOD", "POST"),
        ("REQUEST_URI", "/echo"),
        ("PATH_INFO", "/echo"),
        ("CONTENT_LENGTH", length),
    ]
}

#[test]
fn limits_post_buffering_and_cut_short_responses_keep_the_records_straight() {
    let dir = TempDir::new("fcgi-limits");
    let served = start(
        &dir,
        &["--limit-post", "100000", "--post-buffering", "4096"],
    );
    // Over limit-post: a 413 in records, before the app runs.
    let vars = post_vars("200000");
    let mut stream = connect(&served.fastcgi);
    stream.write_all(&request(1, true, &vars, b"", 1)).unwrap();
    let reply = read_reply(&mut stream, 1).unwrap();
    let (head, _) = reply.head_and_body();
    assert!(head.starts_with("Status: 413 "), "{head}");

    // post-buffering: a body larger than the buffer spills to a file and is echoed whole.
    let body: Vec<u8> = (0..50_000).map(|i| (i % 241) as u8).collect();
    let vars = post_vars("50000");
    let mut stream = connect(&served.fastcgi);
    stream
        .write_all(&request(2, false, &vars, &body, 4000))
        .unwrap();
    let reply = read_reply(&mut stream, 2).unwrap();
    let (head, echoed) = reply.head_and_body();
    assert!(head.starts_with("Status: 200 OK\r\n"), "{head}");
    assert!(echoed == body.as_slice(), "the post-buffered body differs");

    // A body shorter than its CONTENT_LENGTH (the stdin stream ends early): a 400.
    let vars = post_vars("5000");
    let mut stream = connect(&served.fastcgi);
    stream
        .write_all(&request(3, true, &vars, b"short", 1))
        .unwrap();
    let reply = read_reply(&mut stream, 3).unwrap();
    let (head, _) = reply.head_and_body();
    assert!(head.starts_with("Status: 400 "), "{head}");

    // The app fails after its first chunk: stdout records, then the close, no END_REQUEST.
    let vars = get_vars("/close?fail=1&chunks=3", "/close", "fail=1&chunks=3");
    let mut stream = connect(&served.fastcgi);
    stream.write_all(&request(4, true, &vars, b"", 1)).unwrap();
    let err = match read_reply(&mut stream, 4) {
        Ok(reply) => panic!(
            "a cut-short response ended as a whole one: {}",
            reply.text()
        ),
        Err(err) => err,
    };
    assert!(err.contains("Status: 200 OK"), "{err}");
    assert!(
        err.contains("failed to fill whole buffer") || err.contains("reset"),
        "{err}"
    );
}

#[test]
fn a_body_without_content_length_is_the_stdin_stream_capped_by_limit_post_default() {
    let dir = TempDir::new("fcgi-unsized");
    let served = start(&dir, &["--limit-post-default", "3000"]);
    let vars = [
        ("REQUEST_METHOD", "POST"),
        ("REQUEST_URI", "/echo?mode=eof"),
        ("PATH_INFO", "/echo"),
        ("QUERY_STRING", "mode=eof"),
        ("CONTENT_LENGTH", ""),
    ];
    // Within the cap: the app reads the stream to its end.
    let mut stream = connect(&served.fastcgi);
    stream
        .write_all(&request(1, false, &vars, &[b'a'; 2000], 300))
        .unwrap();
    let reply = read_reply(&mut stream, 1).unwrap();
    let (head, echoed) = reply.head_and_body();
    assert!(head.starts_with("Status: 200 OK\r\n"), "{head}");
    assert_eq!(echoed, &[b'a'; 2000][..]);
    // Past it: 413, as a chunked HTTP body gets.
    let mut stream = connect(&served.fastcgi);
    stream
        .write_all(&request(2, false, &vars, &[b'a'; 5000], 300))
        .unwrap();
    let reply = read_reply(&mut stream, 2).unwrap();
    let (head, _) = reply.head_and_body();
    assert!(head.starts_with("Status: 413 "), "{head}");
}

#[test]
fn health_probes_are_answered_by_the_worker_in_records() {
    let dir = TempDir::new("fcgi-health");
    let served = start(&dir, &["--health-check-path", "/healthz"]);
    let mut stream = connect(&served.fastcgi);
    let vars = get_vars("/healthz", "/healthz", "");
    stream.write_all(&request(6, true, &vars, b"", 1)).unwrap();
    let reply = read_reply(&mut stream, 6).unwrap();
    let (head, body) = reply.head_and_body();
    assert!(head.starts_with("Status: 200 OK\r\n"), "{head}");
    assert!(head.contains("Cache-Control: no-store\r\n"), "{head}");
    assert_eq!(body, b"ok\n");
    closed(&mut stream).unwrap();
    // `fastcgi-nph-socket`: the protocol's head, an HTTP status line, still in records.
    let mut nph = connect(&served.nph);
    nph.write_all(&request(7, false, &vars, b"", 1)).unwrap();
    let reply = read_reply(&mut nph, 7).unwrap();
    let (head, _) = reply.head_and_body();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    // Not the app's traffic: no request line.
    assert!(
        !served.kaiser.logs().contains("GET /healthz"),
        "{}",
        served.kaiser.logs()
    );
}

/// A static-map root with a file of several records' worth (`big.bin`) and a small one.
fn static_root(dir: &TempDir, big: usize) -> (PathBuf, Vec<u8>) {
    let root = dir.join("files");
    std::fs::create_dir_all(&root).unwrap();
    let bytes: Vec<u8> = (0..big).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), &bytes).unwrap();
    std::fs::write(root.join("small.txt"), b"0123456789abcdef\n").unwrap();
    (root, bytes)
}

/// `vars` plus a request header (its `HTTP_*` variable).
fn with_header<'a>(
    mut vars: Vec<(&'a str, &'a str)>,
    name: &'a str,
    value: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vars.push((name, value));
    vars
}

fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(": "))
}

#[test]
fn static_files_go_in_stdout_records_with_ranges_304s_and_keep_conn() {
    let dir = TempDir::new("fcgi-static");
    let (root, big) = static_root(&dir, 4 * 1024 * 1024);
    let map = format!("/static={}", root.display());
    let served = start(&dir, &["--static-map", &map]);
    let mut stream = connect(&served.fastcgi);

    // A file larger than the socket takes: nothing is read until the request is logged (the
    // request thread logs it when it hands the rest to an offload thread), so the offload
    // thread frames most of it.
    let vars = get_vars("/static/big.bin", "/static/big.bin", "");
    stream.write_all(&request(1, true, &vars, b"", 1)).unwrap();
    let line = served
        .kaiser
        .wait_for_log("GET /static/big.bin", IO_TIMEOUT)
        .unwrap();
    assert!(line.contains(" via offload() "), "{line}");
    let reply = read_reply(&mut stream, 1).unwrap();
    let (head, body) = reply.head_and_body();
    assert!(head.starts_with("Status: 200 OK\r\n"), "{head}");
    assert_eq!(
        header_value(&head, "Content-Length"),
        Some(big.len().to_string().as_str()),
        "{head}"
    );
    assert!(body == big.as_slice(), "the static file's bytes differ");
    let stdout_records = reply.records.iter().filter(|r| r.0 == STDOUT).count();
    assert!(
        stdout_records > big.len() / 65535,
        "{stdout_records} records"
    );
    let last_modified = header_value(&head, "Last-Modified")
        .expect("Last-Modified")
        .to_string();

    // A range, on the same connection.
    let vars = with_header(
        get_vars("/static/small.txt", "/static/small.txt", ""),
        "HTTP_RANGE",
        "bytes=2-5",
    );
    stream.write_all(&request(2, true, &vars, b"", 1)).unwrap();
    let reply = read_reply(&mut stream, 2).unwrap();
    let (head, body) = reply.head_and_body();
    assert!(
        head.starts_with("Status: 206 Partial Content\r\n"),
        "{head}"
    );
    assert_eq!(
        header_value(&head, "Content-Range"),
        Some("bytes 2-5/17"),
        "{head}"
    );
    assert_eq!(body, b"2345");

    // A conditional request: 304, no body.
    let vars = with_header(
        get_vars("/static/big.bin", "/static/big.bin", ""),
        "HTTP_IF_MODIFIED_SINCE",
        &last_modified,
    );
    stream.write_all(&request(3, true, &vars, b"", 1)).unwrap();
    let reply = read_reply(&mut stream, 3).unwrap();
    let (head, body) = reply.head_and_body();
    assert!(head.starts_with("Status: 304 Not Modified\r\n"), "{head}");
    assert!(body.is_empty(), "{body:?}");

    // A symlink out of the root: 403 from the worker, its body in the records too.
    std::fs::write(dir.join("outside.txt"), b"secret\n").unwrap();
    std::os::unix::fs::symlink(dir.join("outside.txt"), root.join("leak.txt")).unwrap();
    let vars = get_vars("/static/leak.txt", "/static/leak.txt", "");
    stream.write_all(&request(9, true, &vars, b"", 1)).unwrap();
    let reply = read_reply(&mut stream, 9).unwrap();
    let (head, body) = reply.head_and_body();
    assert!(head.starts_with("Status: 403 Forbidden\r\n"), "{head}");
    assert_eq!(body, b"forbidden\n");

    // The app, still on the same connection; without FCGI_KEEP_CONN it then closes.
    let vars = get_vars("/env?n=4", "/env", "n=4");
    stream.write_all(&request(4, false, &vars, b"", 1)).unwrap();
    let reply = read_reply(&mut stream, 4).unwrap();
    assert!(
        reply.text().contains("\"QUERY_STRING\": \"n=4\""),
        "{}",
        reply.text()
    );
    closed(&mut stream).unwrap();

    // A static file without FCGI_KEEP_CONN closes after its END_REQUEST; nph has an HTTP
    // status line.
    let vars = get_vars("/static/small.txt", "/static/small.txt", "");
    let mut nph = connect(&served.nph);
    nph.write_all(&request(5, false, &vars, b"", 1)).unwrap();
    let reply = read_reply(&mut nph, 5).unwrap();
    let (head, body) = reply.head_and_body();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"0123456789abcdef\n");
    closed(&mut nph).unwrap();

    // Logged as static answers are: the 206 and the 304 with their statuses (before the last
    // request's line, which is waited for).
    served
        .kaiser
        .wait_for_log("GET /static/small.txt => generated 17 bytes", IO_TIMEOUT)
        .unwrap();
    let logs = served.kaiser.logs();
    assert!(
        logs.contains("GET /static/small.txt => generated 4 bytes"),
        "{logs}"
    );
    assert!(logs.contains("(HTTP/1.1 304)"), "{logs}");
}

#[test]
fn nginx_fastcgi_pass_serves_static_files_on_its_kept_connection() {
    let dir = TempDir::new("fcgi-nginx-static");
    let (root, big) = static_root(&dir, 1_000_000);
    let map = format!("/static={}", root.display());
    let served = start(&dir, &["--static-map", &map]);
    let pipe = CountingPipe::start(served.fastcgi.clone());
    let nginx = nginx_in_front(&pipe, &served.nph, true);
    let stream = wait_for_connect(nginx.addr(), START_TIMEOUT).unwrap();
    let mut client = HttpConn::new(stream);
    let mut get = |target: &str, headers: &[(&str, &str)]| {
        let mut all = vec![("Host", "localhost")];
        all.extend_from_slice(headers);
        client
            .request(&request_bytes("GET", target, &all, b""))
            .unwrap()
    };
    let file = get("/static/big.bin", &[]);
    assert_eq!(file.status, 200, "{file}");
    assert!(file.body == big, "the file through nginx differs");
    let last_modified = file.header("Last-Modified").expect("Last-Modified");

    let range = get("/static/small.txt", &[("Range", "bytes=10-")]);
    assert_eq!(range.status, 206, "{range}");
    assert_eq!(range.text(), "abcdef\n");

    let not_modified = get("/static/big.bin", &[("If-Modified-Since", last_modified)]);
    assert_eq!(not_modified.status, 304, "{not_modified}");

    let env = get("/env?after=static", &[]);
    assert_eq!(env.status, 200, "{env}");
    assert!(
        env.text().contains("\"QUERY_STRING\": \"after=static\""),
        "{env}"
    );

    assert_eq!(
        pipe.connections(),
        1,
        "fastcgi_keep_conn on: static answers end with END_REQUEST and keep the connection"
    );
    assert!(
        !nginx.error_log().contains("upstream"),
        "nginx complained:\n{}",
        nginx.error_log()
    );
}

#[test]
fn routes_around_static_files_answer_in_records_too() {
    let dir = TempDir::new("fcgi-static-routes");
    let (root, _) = static_root(&dir, 100_000);
    std::fs::create_dir_all(root.join("private")).unwrap();
    std::fs::write(root.join("private/report.txt"), b"not for the public\n").unwrap();
    let map = format!("/static={}", root.display());
    let served = start(
        &dir,
        &[
            "--static-map",
            &map,
            "--route",
            "^/static/private/ basicauth:kaiser,alice:wonderland",
            "--route",
            "^/static/ addheader:X-Static-Route: yes",
        ],
    );
    let mut stream = connect(&served.fastcgi);

    // The file, its head edited by a route.
    let vars = get_vars("/static/small.txt", "/static/small.txt", "");
    stream.write_all(&request(1, true, &vars, b"", 1)).unwrap();
    let reply = read_reply(&mut stream, 1).unwrap();
    let (head, body) = reply.head_and_body();
    assert!(head.starts_with("Status: 200 OK\r\n"), "{head}");
    assert!(head.contains("X-Static-Route: yes\r\n"), "{head}");
    assert_eq!(body, b"0123456789abcdef\n");

    // A route answers instead of the file (401), on the same connection, which stays.
    let vars = get_vars(
        "/static/private/report.txt",
        "/static/private/report.txt",
        "",
    );
    stream.write_all(&request(2, true, &vars, b"", 1)).unwrap();
    let reply = read_reply(&mut stream, 2).unwrap();
    let (head, _) = reply.head_and_body();
    assert!(head.starts_with("Status: 401 "), "{head}");
    assert!(head.contains("WWW-Authenticate: Basic"), "{head}");

    let vars = with_header(
        get_vars(
            "/static/private/report.txt",
            "/static/private/report.txt",
            "",
        ),
        "HTTP_AUTHORIZATION",
        "Basic YWxpY2U6d29uZGVybGFuZA==",
    );
    stream.write_all(&request(3, false, &vars, b"", 1)).unwrap();
    let reply = read_reply(&mut stream, 3).unwrap();
    let (head, body) = reply.head_and_body();
    assert!(head.starts_with("Status: 200 OK\r\n"), "{head}");
    assert_eq!(body, b"not for the public\n");
    closed(&mut stream).unwrap();
}

#[test]
fn a_static_path_with_stdin_bytes_is_the_apps_and_a_late_empty_stdin_is_waited_for() {
    let dir = TempDir::new("fcgi-static-stdin");
    let (root, _) = static_root(&dir, 10);
    let map = format!("/static={}", root.display());
    let served = start(&dir, &["--static-map", &map]);
    let mut stream = connect(&served.fastcgi);
    let vars = get_vars("/static/small.txt", "/static/small.txt", "");

    // No CONTENT_LENGTH, but the stdin stream carries bytes: a body, so the app answers (and
    // reads or drains it); nothing of it is taken for the next request's.
    stream
        .write_all(&request(1, true, &vars, b"a body after all", 5))
        .unwrap();
    let reply = read_reply(&mut stream, 1).unwrap();
    let (head, body) = reply.head_and_body();
    assert!(head.starts_with("Status: 404 Not Found\r\n"), "{head}");
    assert!(
        String::from_utf8_lossy(body).contains("no route for '/static/small.txt'"),
        "{}",
        reply.text()
    );

    // The head, and only then its empty stdin record, in separate writes: the file is
    // answered once the stream ended, and the connection still carries the next request.
    let whole = request(2, true, &vars, b"", 1);
    let (head_records, stdin_end) = whole.split_at(whole.len() - 8);
    stream.write_all(head_records).unwrap();
    stream.flush().unwrap();
    stream.write_all(stdin_end).unwrap();
    let reply = read_reply(&mut stream, 2).unwrap();
    let (head, body) = reply.head_and_body();
    assert!(head.starts_with("Status: 200 OK\r\n"), "{head}");
    assert_eq!(body, b"0123456789abcdef\n");

    let vars = get_vars("/env?n=3", "/env", "n=3");
    stream.write_all(&request(3, false, &vars, b"", 1)).unwrap();
    let reply = read_reply(&mut stream, 3).unwrap();
    assert!(
        reply.text().contains("\"QUERY_STRING\": \"n=3\""),
        "{}",
        reply.text()
    );
    closed(&mut stream).unwrap();
}

/// The README's nginx block for FastCGI with kept connections, as written there: Debian's
/// `fastcgi_params` (whose SCRIPT_NAME is the whole path), then SCRIPT_NAME and PATH_INFO
/// given again. The app sees the values given last, so it is mounted at the root and routes
/// by the path.
#[test]
fn the_readme_nginx_block_gives_the_app_its_path() {
    let dir = TempDir::new("fcgi-readme");
    let served = start(&dir, &[]);
    let debian_params =
        FASTCGI_PARAMS.replace("fastcgi_param  PATH_INFO          $document_uri;", "");
    let nginx = Nginx::start_http(&format!(
        "upstream app {{ server unix:{socket}; keepalive 32; keepalive_timeout 20s; }}
    server {{
        listen 127.0.0.1:@PORT@;
        location / {{
            {debian_params}
            fastcgi_param SCRIPT_NAME \"\";
            fastcgi_param PATH_INFO $document_uri;
            fastcgi_pass app;
            fastcgi_keep_conn on;
        }}
    }}",
        socket = served.fastcgi.display(),
    ));
    let stream = wait_for_connect(nginx.addr(), START_TIMEOUT).unwrap();
    let mut client = HttpConn::new(stream);
    for _ in 0..2 {
        let env = client
            .request(&request_bytes(
                "GET",
                "/env?x=1",
                &[("Host", "localhost")],
                b"",
            ))
            .unwrap();
        assert_eq!(env.status, 200, "{env}");
        let text = env.text();
        assert!(text.contains("\"SCRIPT_NAME\": \"\""), "{text}");
        assert!(text.contains("\"PATH_INFO\": \"/env\""), "{text}");
    }
}
