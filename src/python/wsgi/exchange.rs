//! What the WSGI driver needs from the worker for one request: the [`Exchange`] (request
//! body in, response head and bytes out), the head it hands over, and what became of the
//! request ([`Outcome`]). The worker implements it over its socket; nothing here does I/O.

use std::io;

/// The worker's side of one request: the request body and the response bytes.
pub trait Exchange: Send {
    /// Appends up to `max` bytes of the (decoded) request body to `out`; 0 at the end.
    fn read_body(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize>;
    /// Sends response data. `head` is `Some` until the head has been sent, i.e. on the
    /// first call; `last` marks the end of the body.
    fn respond(
        &mut self,
        head: Option<ResponseHead<'_>>,
        body: &[u8],
        last: bool,
    ) -> Result<(), RespondError>;
    /// [`Exchange::respond`] for a caller that holds a lock (the GIL) it can let go of only
    /// when the exchange would wait: `unblock` is called, at most once, before the exchange
    /// waits on the client or makes a long system call, and not at all when the response
    /// data goes out in non-blocking writes that complete at once. The default lets go
    /// first.
    fn respond_unblocking(
        &mut self,
        head: Option<ResponseHead<'_>>,
        body: &[u8],
        last: bool,
        unblock: &mut dyn FnMut(),
    ) -> Result<(), RespondError> {
        unblock();
        self.respond(head, body, last)
    }
    /// Sends `count` bytes of the open regular file `fd`, from `offset`, as the whole body
    /// (`wsgi.file_wrapper` over a real file): `sendfile(2)` where the framing allows it.
    /// `head` is `Some` as in [`Exchange::respond`]; the response is complete afterwards.
    fn send_file(
        &mut self,
        head: Option<ResponseHead<'_>>,
        fd: std::os::fd::RawFd,
        offset: u64,
        count: u64,
    ) -> Result<(), RespondError>;
    /// The status line to answer with instead of a 500 when the app failed because the
    /// client sent a bad request body (`400 Bad Request`, `408 Request Timeout`).
    fn request_error_status(&self) -> Option<&'static [u8]> {
        None
    }
    /// Gives the concrete exchange back to the worker after the request.
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send>;
}

pub struct ResponseHead<'a> {
    pub status: &'a [u8],
    pub headers: &'a [(Vec<u8>, Vec<u8>)],
    /// The whole body's length when the driver knows it (a list result, or a single
    /// `respond` with `last`), so the worker can send Content-Length instead of chunking.
    pub content_length: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum RespondError {
    /// The client went away or timed out: stop producing the response.
    #[error("client connection failed")]
    Io(#[source] io::Error),
    /// The app produced something that cannot be sent (a bad status or header).
    #[error("{0}")]
    Invalid(String),
}

/// What happened to a request, for logging and for the connection's fate.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    /// The response was not completed: the connection must be closed.
    pub aborted: bool,
    /// The app raised (or produced an invalid response).
    pub app_error: bool,
}
