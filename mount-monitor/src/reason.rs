//! The reason codes a check can fail with: the one table of them.
//!
//! Codes are stable: they appear in the JSON, the logs, `check`'s output and metric labels.

use serde::Serialize;

macro_rules! reasons {
    ($($variant:ident => $code:literal, $advice:literal;)*) => {
        /// Why a check failed. `Reason::ALL` lists every code once.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $($variant,)*
        }

        impl Reason {
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            /// The stable code, e.g. `not_mounted`.
            pub fn code(self) -> &'static str {
                match self {
                    $(Reason::$variant => $code,)*
                }
            }

            /// What an operator should do about it.
            pub fn advice(self) -> &'static str {
                match self {
                    $(Reason::$variant => $advice,)*
                }
            }
        }
    };
}

reasons! {
    NotMounted => "not_mounted", "Nothing is mounted on the path (a dead FUSE mount leaves an empty directory behind). Restart the mount provider (rclone, the CSI driver) or the pod; check its logs.";
    WrongFsType => "wrong_fstype", "Something else is mounted on the path than `fsType` expects, often the parent filesystem after the real mount went away.";
    EmptyVolume => "empty_volume", "The path is in a bind mount of a plain directory of a local filesystem (a container volume, a hostPath) with nothing mounted on it, or is an empty directory off any mount under `checkType: directory`: the mount it should carry (propagated from the host or a sidecar) is not there. Start or restart the mount provider, and check mount propagation (`rslave`, `HostToContainer`). If a plain directory is what you expect there, set `fsType` to its type.";
    MountChanged => "mount_changed", "Something else is mounted at the path than when it was last healthy (another filesystem type, source or directory). The same remote mounted again counts as the same mount; restart mount-monitor to accept a different one.";
    Disconnected => "disconnected", "ENOTCONN: the FUSE daemon behind the mount died. Unmount it (`umount -l`) and restart the daemon.";
    Stale => "stale", "ESTALE: the NFS/SMB server no longer knows the handle. Remount.";
    IoError => "io_error", "EIO: the filesystem or its backend reports I/O errors. Check the server, the network and the daemon's logs.";
    PermissionDenied => "permission_denied", "EACCES/EPERM: the monitor's user may not access the path or the canary file. Fix ownership, mode or the pod's securityContext.";
    Missing => "missing", "ENOENT: the path (or a parent) does not exist. Check the configured path and the volume mount.";
    NotADirectory => "not_a_directory", "The path exists but is not a directory.";
    ReadOnly => "read_only", "The mount is read-only although `expect: rw`. Filesystems remount read-only after errors: check dmesg.";
    ReadWrite => "read_write", "The mount is writable although `expect: ro`.";
    LowSpace => "low_space", "Free space is below `minFree`. Free space or grow the volume.";
    LowInodes => "low_inodes", "Free inodes are below `minFreeInodes`. Delete small files or grow the inode table.";
    CanaryFailed => "canary_failed", "The canary file could not be read. Check that it exists on the backend and that the mount serves data.";
    Timeout => "timeout", "The check did not finish within `timeout`: the mount hangs (typical of a dead network share). `stuck_seconds` tells for how long.";
    Error => "error", "Any other error; `last_error` has the system's message.";
}

impl Reason {
    /// Classifies an errno from a filesystem call on the mount.
    pub fn from_errno(errno: nix::errno::Errno) -> Reason {
        use nix::errno::Errno;
        match errno {
            Errno::ENOTCONN => Reason::Disconnected,
            Errno::ESTALE => Reason::Stale,
            Errno::EIO => Reason::IoError,
            Errno::EACCES | Errno::EPERM => Reason::PermissionDenied,
            Errno::ENOENT => Reason::Missing,
            Errno::ENOTDIR => Reason::NotADirectory,
            _ => Reason::Error,
        }
    }

    /// Classifies a `std::io::Error` from a filesystem call on the mount.
    pub fn from_io(err: &std::io::Error) -> Reason {
        match err.raw_os_error() {
            Some(code) => Reason::from_errno(nix::errno::Errno::from_raw(code)),
            None => Reason::Error,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

/// A failed check: the stable code, and the system's words for `last_error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: Reason,
    pub detail: String,
}

impl Failure {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Failure {
            reason,
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;

    #[test]
    fn errnos_map_to_documented_codes() {
        let cases = [
            (Errno::ENOTCONN, "disconnected"),
            (Errno::ESTALE, "stale"),
            (Errno::EIO, "io_error"),
            (Errno::EACCES, "permission_denied"),
            (Errno::EPERM, "permission_denied"),
            (Errno::ENOENT, "missing"),
            (Errno::ELOOP, "error"),
        ];
        for (errno, code) in cases {
            assert_eq!(Reason::from_errno(errno).code(), code, "{errno:?}");
        }
    }

    #[test]
    fn readme_explains_every_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
        let readme = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        for reason in Reason::ALL {
            let row = format!("\n| `{}` | ", reason.code());
            assert!(
                readme.contains(&row),
                "README.md's reason table has no row for `{reason}`: add what it means and what to do"
            );
        }
    }

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for reason in Reason::ALL {
            let code = reason.code();
            assert!(seen.insert(code), "duplicate code {code}");
            assert!(
                code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code}"
            );
            assert!(!reason.advice().is_empty());
        }
    }
}
