//! What one check found, in the words both sides use: the checks (`probe`,
//! [`monitor`](crate::monitor)) write an [`Outcome`], the state machine, `/healthz/status`,
//! `/metrics` and `check`'s report read it, without depending on the probe.

use std::path::Path;
use std::time::Duration;

use crate::mountinfo::MountEntry;
use crate::paths::display_path;
use crate::reason::Failure;

/// What statfs and mountinfo said about the filesystem.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Stats {
    pub fs_type: Option<String>,
    pub read_only: bool,
    pub size_bytes: u64,
    pub avail_bytes: u64,
    pub free_bytes: u64,
    pub files: u64,
    pub files_free: u64,
}

/// What the path is on, as far as telling one mount from another at the same place goes: a
/// restarted daemon that mounts the same remote again has the same identity; the host's empty
/// directory bound in its place has not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub fs_type: String,
    pub source: SourceDigest,
    /// The directory of the filesystem that is mounted (`/` unless a bind of a subtree).
    pub root: std::path::PathBuf,
    pub mount_point: std::path::PathBuf,
}

impl Identity {
    pub fn of(entry: &MountEntry) -> Identity {
        Identity {
            fs_type: entry.fs_type.clone(),
            source: SourceDigest::of(&entry.source),
            root: entry.root.clone(),
            mount_point: entry.mount_point.clone(),
        }
    }
}

/// A digest of a mount's source (`user:secret@host:/export`, a URL with credentials…), never the
/// source itself: past the probe, nothing needs more than to tell two sources apart, so nothing
/// kept in a snapshot can show one, whatever formats it (`Debug` included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceDigest(u64);

impl SourceDigest {
    pub fn of(source: &str) -> SourceDigest {
        use std::hash::{DefaultHasher, Hash, Hasher};
        // Fixed keys: the same source gives the same digest for the life of the process.
        let mut hasher = DefaultHasher::new();
        source.hash(&mut hasher);
        SourceDigest(hasher.finish())
    }
}

impl std::fmt::Display for Identity {
    /// The type, where it is mounted, and which directory of it; never the source, which may
    /// carry a host name or credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {}", self.fs_type, display_path(&self.mount_point))?;
        if self.root != Path::new("/") {
            write!(f, " (its directory {})", display_path(&self.root))?;
        }
        Ok(())
    }
}

/// The result of one check.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub result: Result<(), Failure>,
    /// Present once statfs answered, also when a later step failed.
    pub stats: Option<Stats>,
    /// How long the check took; `None` when it did not return (timed out, crashed).
    pub duration: Option<Duration>,
    /// The mount the path was found on, once mountinfo was read.
    pub identity: Option<Identity>,
}

impl Outcome {
    /// A check that ended without the probe's word: timed out or crashed.
    pub fn failed(failure: Failure) -> Outcome {
        Outcome {
            result: Err(failure),
            stats: None,
            duration: None,
            identity: None,
        }
    }
}
