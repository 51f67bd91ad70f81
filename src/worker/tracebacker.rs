//! `py-tracebacker`: the worker listens on the unix socket `PATH<worker id>` and answers
//! every connection with its threads' Python stacks (`python::tracebacker_dump`), then
//! closes it; `nc -U PATHN` reads it. For a worker that seems stuck without a harakiri to
//! say where. One thread, started after the fork with the request threads' signal mask.

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

/// Starts worker `id`'s tracebacker thread on `PATH<id>`; a failure is logged, not fatal.
pub(crate) fn start(path: &Path, id: u32) {
    let mut socket = path.as_os_str().to_owned();
    socket.push(id.to_string());
    let socket = PathBuf::from(socket);
    // A file left by the previous worker of this id.
    let _ = std::fs::remove_file(&socket);
    let listener = match UnixListener::bind(&socket) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(path = %socket.display(), "py-tracebacker: cannot listen: {error}");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("kaiser-tracebacker".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else {
                    continue;
                };
                let text = crate::python::tracebacker_dump()
                    .unwrap_or_else(|error| format!("cannot read the stacks: {error}\n"));
                let _ = client.write_all(text.as_bytes());
            }
        });
    match spawned {
        Ok(_) => tracing::info!(
            worker = id,
            "python tracebacker for worker {id} available on {}",
            socket.display()
        ),
        Err(error) => tracing::warn!("py-tracebacker: cannot start its thread: {error}"),
    }
}
