//! What a vassal says on its channel: sd_notify(3) `KEY=VALUE` lines (`READY=1`,
//! `RELOADING=1`, `STOPPING=1`, `STATUS=`, `MAINPID=`, `WATCHDOG=1`), parsed into
//! [`VassalMessage`]s for the governor.
//!
//! Parsing only: the emperor's own messages to systemd go through the one sender in
//! [`crate::sys::notify`], and what a message does to a vassal is the governor's.

/// One parsed line of a vassal's datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VassalMessage {
    Ready,
    Reloading,
    Stopping,
    Status(String),
    MainPid(u32),
    /// Any other `KEY=VALUE` (kept for the debug log; sd_notify allows arbitrary keys).
    Other(String, String),
}

/// Parses a datagram. Lines without `=` are skipped, as sd_notify receivers do.
pub fn parse(datagram: &[u8]) -> Vec<VassalMessage> {
    String::from_utf8_lossy(datagram)
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once('=')?;
            Some(match (key, value) {
                ("READY", "1") => VassalMessage::Ready,
                ("RELOADING", "1") => VassalMessage::Reloading,
                ("STOPPING", "1") => VassalMessage::Stopping,
                ("STATUS", status) => VassalMessage::Status(status.to_owned()),
                ("MAINPID", pid) => match pid.parse() {
                    Ok(pid) => VassalMessage::MainPid(pid),
                    Err(_) => VassalMessage::Other(key.to_owned(), value.to_owned()),
                },
                _ => VassalMessage::Other(key.to_owned(), value.to_owned()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(datagram: &str, expected: &[VassalMessage]) {
        assert_eq!(
            parse(datagram.as_bytes()),
            expected,
            "datagram {datagram:?}"
        );
    }

    #[test]
    fn messages() {
        use VassalMessage::*;
        check("", &[]);
        check("READY=1", &[Ready]);
        check("READY=1\n", &[Ready]);
        check(
            "STATUS=4 workers ready\nREADY=1\n",
            &[Status("4 workers ready".into()), Ready],
        );
        check(
            "RELOADING=1\nMONOTONIC_USEC=5",
            &[Reloading, Other("MONOTONIC_USEC".into(), "5".into())],
        );
        check("STOPPING=1", &[Stopping]);
        check("MAINPID=4242", &[MainPid(4242)]);
        check("MAINPID=x", &[Other("MAINPID".into(), "x".into())]);
        check("STATUS=a=b", &[Status("a=b".into())]);
        check("garbage\nREADY=1", &[Ready]);
        check("READY=0", &[Other("READY".into(), "0".into())]);
    }
}
