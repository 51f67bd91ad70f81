//! `unshare` and `unshare2`: which Linux namespaces the master enters on its first start
//! (uWSGI's `uwsgi_build_unshare` names, `core/utils.c`). This file only reads the names
//! into `clone(2)` flags; entering them is `crate::jail`'s.

/// `unshare` and `unshare2` as `CLONE_*` masks (0: not set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Unshare {
    pub before_post_jail: libc::c_int,
    pub after_post_jail: libc::c_int,
}

/// uWSGI's names for namespaces and the other things `unshare(2)` can separate.
const NAMES: [(&str, libc::c_int); 13] = [
    ("files", libc::CLONE_FILES),
    ("ipc", libc::CLONE_NEWIPC),
    ("net", libc::CLONE_NEWNET),
    ("io", libc::CLONE_IO),
    ("parent", libc::CLONE_PARENT),
    ("pid", libc::CLONE_NEWPID),
    ("ns", libc::CLONE_NEWNS),
    ("fs", libc::CLONE_NEWNS),
    ("mount", libc::CLONE_NEWNS),
    ("mnt", libc::CLONE_NEWNS),
    ("sysvsem", libc::CLONE_SYSVSEM),
    ("uts", libc::CLONE_NEWUTS),
    ("user", libc::CLONE_NEWUSER),
];

/// Reads `net,ipc,uts` into a mask. An unknown name is an error (uWSGI exits on it).
pub(crate) fn parse(value: &str) -> Result<libc::c_int, String> {
    let mut mask = 0;
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some((_, flag)) = NAMES.iter().find(|(known, _)| *known == name) else {
            let known: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown namespace `{name}` (kaiser knows {})",
                known.join(", ")
            ));
        };
        mask |= flag;
    }
    if mask == 0 {
        return Err("expected namespaces such as `net,ipc,uts`".to_string());
    }
    Ok(mask)
}

/// The names of a mask, for `--show-config` and logs (`mount` for `CLONE_NEWNS`).
pub fn names(mask: libc::c_int) -> String {
    let mut out: Vec<&str> = Vec::new();
    for (name, flag) in NAMES {
        if mask & flag != 0
            && !out
                .iter()
                .any(|n| NAMES.iter().any(|(m, f)| m == n && *f == flag))
        {
            out.push(name);
        }
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names() {
        fn check(value: &str, expected: Result<libc::c_int, &str>) {
            let got = parse(value);
            match expected {
                Ok(mask) => assert_eq!(got, Ok(mask), "{value}"),
                Err(part) => assert!(
                    got.as_ref().is_err_and(|m| m.contains(part)),
                    "{value}: {got:?}"
                ),
            }
        }
        check("net", Ok(libc::CLONE_NEWNET));
        check(
            "net,ipc, uts",
            Ok(libc::CLONE_NEWNET | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS),
        );
        check("mnt,fs", Ok(libc::CLONE_NEWNS));
        check("netz", Err("unknown namespace `netz`"));
        check("", Err("expected namespaces"));
        assert_eq!(names(libc::CLONE_NEWNS | libc::CLONE_NEWUTS), "ns,uts");
    }
}
