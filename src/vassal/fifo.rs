//! The master FIFO (`master-fifo`): one-byte commands written to a named pipe, as in uWSGI
//! (`core/fifo.c`), e.g. `echo r > /run/app.fifo`.
//!
//! Several paths may be given; the first is active and `0`–`9` switch to another. The
//! active FIFO is created (mode 0600, replacing what was at the path) and opened
//! non-blocking. When the last writer closes it, the master reopens it (recreating it if
//! it was removed), so every `echo` works. Bytes without a meaning, such as the newline of
//! `echo r`, are ignored.
//!
//! This module only reads and decodes; the master carries the commands out.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::sys;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Command {
    /// `r`: graceful reload (re-exec, new workers take over).
    Reload,
    /// `R`: brutal reload (kill the workers, re-exec).
    BrutalReload,
    /// `w`: replace every worker gracefully, without re-exec.
    WorkersReload,
    /// `W`: kill every worker; they are respawned.
    BrutalWorkersReload,
    /// `c`: replace workers one at a time.
    ChainReload,
    /// `p`: pause (stop accepting) or resume, like SIGTSTP.
    Pause,
    /// `q`: graceful stop.
    Stop,
    /// `Q`: brutal stop.
    BrutalStop,
    /// `s`: log the workers.
    Stats,
    /// `+`: one more worker (cheaper).
    CheaperMore,
    /// `-`: one fewer worker (cheaper).
    CheaperFewer,
    /// `l`: the log master reopens its files; `L`: it rotates them.
    Log(crate::logging::master::Command),
    /// A uWSGI command kaiser does not implement (logged, otherwise ignored).
    Unsupported(u8),
}

/// Decodes one byte. `None` for bytes with no meaning (whitespace, typos) and for the
/// slot digits, which [`MasterFifo`] handles itself.
pub(super) fn decode(byte: u8) -> Option<Command> {
    Some(match byte {
        b'r' => Command::Reload,
        b'R' => Command::BrutalReload,
        b'w' => Command::WorkersReload,
        b'W' => Command::BrutalWorkersReload,
        b'c' => Command::ChainReload,
        b'q' => Command::Stop,
        b'Q' => Command::BrutalStop,
        b's' => Command::Stats,
        b'p' => Command::Pause,
        b'+' => Command::CheaperMore,
        b'-' => Command::CheaperFewer,
        b'l' => Command::Log(crate::logging::master::Command::Reopen),
        b'L' => Command::Log(crate::logging::master::Command::Rotate),
        b'B' | b'C' | b'E' | b'f' | b'P' | b'S' => Command::Unsupported(byte),
        _ => return None,
    })
}

pub(super) struct MasterFifo {
    paths: Vec<PathBuf>,
    active: usize,
    file: Option<std::fs::File>,
}

impl MasterFifo {
    /// Creates and opens the first FIFO; `None` when no `master-fifo` is configured.
    pub fn open(paths: &[PathBuf]) -> io::Result<Option<MasterFifo>> {
        if paths.is_empty() {
            return Ok(None);
        }
        let mut fifo = MasterFifo {
            paths: paths.to_vec(),
            active: 0,
            file: None,
        };
        fifo.file = Some(create(&fifo.paths[0])?);
        tracing::info!(path = %fifo.paths[0].display(), "master fifo ready");
        Ok(Some(fifo))
    }

    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.file.as_ref().map(|file| file.as_fd())
    }

    /// Reads what is pending and returns the commands in order. Handles EOF (reopen) and
    /// slot switches itself.
    pub fn read_commands(&mut self) -> Vec<Command> {
        let mut commands = Vec::new();
        let mut buf = [0u8; 256];
        let mut eof = false;
        while let Some(file) = self.file.as_mut() {
            let n = match file.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock: the writer is still connected and has nothing more for now.
                Err(_) => break,
            };
            let mut switched = false;
            for &byte in &buf[..n] {
                if byte.is_ascii_digit() {
                    switched |= self.switch(usize::from(byte - b'0'));
                } else if let Some(command) = decode(byte) {
                    commands.push(command);
                }
            }
            if switched {
                // The new FIFO is read when it becomes readable.
                break;
            }
        }
        if eof {
            self.reopen();
        }
        commands
    }

    /// Makes FIFO number `slot` the active one; true if it did.
    fn switch(&mut self, slot: usize) -> bool {
        let Some(path) = self.paths.get(slot).cloned() else {
            tracing::warn!(
                slot,
                "master fifo: there is no fifo number {slot}; ignoring"
            );
            return false;
        };
        match create(&path) {
            Ok(file) => {
                self.file = Some(file);
                self.active = slot;
                tracing::info!("active master fifo is now {}", path.display());
                true
            }
            Err(err) => {
                tracing::error!(path = %path.display(), error = %err, "cannot create the master fifo; keeping the current one");
                false
            }
        }
    }

    /// All writers closed the FIFO: open it again so the next `echo` finds a reader. It is
    /// recreated only if it is no longer a FIFO at its path, so a writer waiting in
    /// `open(2)` on it is not left behind.
    fn reopen(&mut self) {
        let path = self.paths[self.active].clone();
        self.file = None;
        let still_fifo = std::fs::metadata(&path).is_ok_and(|m| m.file_type().is_fifo());
        let reopened = if still_fifo {
            open_nonblocking(&path)
        } else {
            create(&path)
        };
        match reopened {
            Ok(file) => self.file = Some(file),
            Err(err) => {
                tracing::error!(path = %path.display(), error = %err, "cannot reopen the master fifo; it is disabled")
            }
        }
    }

    /// Removes the active FIFO (vacuum).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.paths[self.active]);
    }
}

/// Replaces whatever is at `path` with a new FIFO (mode 0600) and opens it.
fn create(path: &Path) -> io::Result<std::fs::File> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    sys::fd::mkfifo(path, 0o600)?;
    open_nonblocking(path)
}

/// Read-only and non-blocking: opening does not wait for a writer, and reading an empty
/// FIFO gives `WouldBlock` while a writer is connected, EOF (0) once none is.
fn open_nonblocking(path: &Path) -> io::Result<std::fs::File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_decode_like_uwsgi() {
        for (byte, expected) in [
            (b'r', Some(Command::Reload)),
            (b'R', Some(Command::BrutalReload)),
            (b'w', Some(Command::WorkersReload)),
            (b'W', Some(Command::BrutalWorkersReload)),
            (b'c', Some(Command::ChainReload)),
            (b'q', Some(Command::Stop)),
            (b'Q', Some(Command::BrutalStop)),
            (b's', Some(Command::Stats)),
            (b'p', Some(Command::Pause)),
            (b'+', Some(Command::CheaperMore)),
            (b'-', Some(Command::CheaperFewer)),
            (b'P', Some(Command::Unsupported(b'P'))),
            (b'\n', None),
            (b' ', None),
            (b'x', None),
            (b'1', None),
        ] {
            assert_eq!(decode(byte), expected, "byte {:?}", byte as char);
        }
    }
}
