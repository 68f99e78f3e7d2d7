//! One check of one mount. [`probe`] does the blocking I/O (run it on a blocking thread, under a
//! deadline); the decisions in between are pure functions, tested without mounts.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::statvfs::{FsFlags, statvfs};

use crate::config::{DataCheck, Expect, MountSpec};
use crate::mountinfo::{self, MountEntry, MountTable, Table};
use crate::reason::Reason;

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

/// The result of one check.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub result: Result<(), Failure>,
    /// Present once statfs answered, also when a later step failed.
    pub stats: Option<Stats>,
    pub duration: Duration,
}

/// Checks one mount: mountinfo → statfs → read-only → capacity → data path.
pub fn probe(spec: &MountSpec, table: &MountTable) -> Outcome {
    let started = Instant::now();
    let mut stats = None;
    let result = run_steps(spec, table, &mut stats);
    Outcome {
        result,
        stats,
        duration: started.elapsed(),
    }
}

fn run_steps(
    spec: &MountSpec,
    table: &MountTable,
    stats_out: &mut Option<Stats>,
) -> Result<(), Failure> {
    let entries = table
        .current()
        .map_err(|e| Failure::new(Reason::Error, format!("reading mountinfo: {e}")))?;
    let entry = locate(spec, &entries)?;

    let vfs = statvfs(&spec.path).map_err(|errno| {
        Failure::new(
            Reason::from_errno(errno),
            format!("statfs {}: {}", spec.path.display(), errno.desc()),
        )
    })?;
    let frsize = vfs.fragment_size() as u64;
    let stats = Stats {
        fs_type: entry.map(|e| e.fs_type.clone()),
        read_only: entry.is_some_and(MountEntry::is_read_only)
            || vfs.flags().contains(FsFlags::ST_RDONLY),
        size_bytes: (vfs.blocks() as u64).saturating_mul(frsize),
        avail_bytes: (vfs.blocks_available() as u64).saturating_mul(frsize),
        free_bytes: (vfs.blocks_free() as u64).saturating_mul(frsize),
        files: vfs.files() as u64,
        files_free: vfs.files_free() as u64,
    };
    let limits = check_limits(spec, &stats);
    *stats_out = Some(stats);
    limits?;

    check_data(spec)
}

/// Step 1: the path must be a mount point now (unless `requireMountpoint: false`), of the
/// expected type. Returns the mount the path is on, for the fs type and read-only flag.
pub fn locate<'a>(spec: &MountSpec, entries: &'a Table) -> Result<Option<&'a MountEntry>, Failure> {
    let entry = if spec.require_mountpoint {
        let found = entries.mount_at(&spec.path).or_else(|| {
            // The configured path may be a symlink to the mount point. Resolving it touches the
            // filesystem, which is why this runs inside the probe, under its deadline.
            let real = std::fs::canonicalize(&spec.path).ok()?;
            (real != spec.path)
                .then(|| entries.mount_at(&real))
                .flatten()
        });
        match found {
            Some(entry) => Some(entry),
            None => {
                return Err(Failure::new(
                    Reason::NotMounted,
                    format!("{} is not a mount point", spec.path.display()),
                ));
            }
        }
    } else {
        mountinfo::mount_containing(entries, &spec.path)
    };
    if let (Some(want), Some(entry)) = (&spec.fs_type, entry)
        && &entry.fs_type != want
    {
        return Err(Failure::new(
            Reason::WrongFsType,
            format!(
                "{} is {} ({}), expected {want}",
                spec.path.display(),
                entry.fs_type,
                entry.source
            ),
        ));
    }
    Ok(entry)
}

/// Steps 3 and 4: read-only expectation, free space and free inodes.
pub fn check_limits(spec: &MountSpec, stats: &Stats) -> Result<(), Failure> {
    match (spec.expect, stats.read_only) {
        (Expect::ReadWrite, true) => {
            return Err(Failure::new(
                Reason::ReadOnly,
                "mounted read-only, expected rw",
            ));
        }
        (Expect::ReadOnly, false) => {
            return Err(Failure::new(
                Reason::ReadWrite,
                "mounted read-write, expected ro",
            ));
        }
        _ => {}
    }
    if let Some(floor) = spec.min_free
        && floor.violated(stats.avail_bytes, stats.size_bytes)
    {
        return Err(Failure::new(
            Reason::LowSpace,
            format!(
                "{} available of {}, below minFree",
                bytesize::ByteSize(stats.avail_bytes).display().iec(),
                bytesize::ByteSize(stats.size_bytes).display().iec()
            ),
        ));
    }
    if let Some(floor) = spec.min_free_inodes
        && stats.files > 0
        && floor.violated(stats.files_free, stats.files)
    {
        return Err(Failure::new(
            Reason::LowInodes,
            format!(
                "{} inodes free of {}, below minFreeInodes",
                stats.files_free, stats.files
            ),
        ));
    }
    Ok(())
}

/// Step 5: the debrid-mount-monitor-compatible data path check.
fn check_data(spec: &MountSpec) -> Result<(), Failure> {
    match &spec.check {
        DataCheck::None => Ok(()),
        DataCheck::Canary(file) => read_canary(file).map_err(|e| {
            Failure::new(
                Reason::CanaryFailed,
                format!("canary {}: {e}", file.display()),
            )
        }),
        DataCheck::Directory => stat_directory(&spec.path),
        DataCheck::List => read_directory(&spec.path),
    }
}

/// debrid-mount-monitor's `directory` check: `stat` says it is a directory. Needs no read
/// permission on it, so a `0700` mount root owned by someone else passes for uid 65534.
fn stat_directory(path: &Path) -> Result<(), Failure> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Failure::new(
            Reason::NotADirectory,
            format!("path is not a directory: {}", path.display()),
        )),
        Err(e) => Err(Failure::new(
            Reason::from_io(&e),
            format!("stat {}: {e}", path.display()),
        )),
    }
}

fn read_canary(file: &Path) -> std::io::Result<()> {
    // Reading a little proves the data path; the whole file could be large. Any amount, even
    // none from an empty canary, is a success: the read returned.
    let mut buf = [0u8; 4096];
    let _amount = std::fs::File::open(file)?.read(&mut buf)?;
    Ok(())
}

fn read_directory(path: &Path) -> Result<(), Failure> {
    let fail = |e: std::io::Error| {
        Failure::new(
            Reason::from_io(&e),
            format!("reading directory {}: {e}", path.display()),
        )
    };
    let mut entries = std::fs::read_dir(path).map_err(fail)?;
    match entries.next() {
        Some(Err(e)) => Err(fail(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Floor, Settings};
    use std::path::PathBuf;

    fn spec(path: &str) -> MountSpec {
        MountSpec::plain(None, PathBuf::from(path), &Settings::default())
    }

    fn table() -> Table {
        Table::new(
            mountinfo::parse(
                "1 0 0:1 / / rw - ext4 /dev/sda1 rw\n\
                 2 1 0:2 / /mnt/media rw - fuse.rclone remote: rw\n",
            )
            .unwrap(),
        )
    }

    #[test]
    fn empty_directory_left_by_a_dead_mount_is_not_mounted() {
        let failure = locate(&spec("/mnt/other"), &table()).unwrap_err();
        assert_eq!(failure.reason, Reason::NotMounted);
    }

    #[test]
    fn plain_directory_allowed_when_mountpoint_not_required() {
        let mut s = spec("/srv/data");
        s.require_mountpoint = false;
        assert_eq!(locate(&s, &table()).unwrap().unwrap().fs_type, "ext4");
    }

    #[test]
    fn fs_type_must_match() {
        let mut s = spec("/mnt/media");
        s.fs_type = Some("fuse.rclone".into());
        assert!(locate(&s, &table()).is_ok());
        s.fs_type = Some("nfs4".into());
        assert_eq!(
            locate(&s, &table()).unwrap_err().reason,
            Reason::WrongFsType
        );
    }

    fn stats() -> Stats {
        Stats {
            fs_type: Some("tmpfs".into()),
            read_only: false,
            size_bytes: 1000,
            avail_bytes: 100,
            free_bytes: 100,
            files: 100,
            files_free: 1,
        }
    }

    #[test]
    fn read_only_expectations() {
        let mut s = spec("/m");
        s.expect = Expect::ReadWrite;
        let ro = Stats {
            read_only: true,
            ..stats()
        };
        assert_eq!(check_limits(&s, &ro).unwrap_err().reason, Reason::ReadOnly);
        assert!(check_limits(&s, &stats()).is_ok());
        s.expect = Expect::ReadOnly;
        assert_eq!(
            check_limits(&s, &stats()).unwrap_err().reason,
            Reason::ReadWrite
        );
        s.expect = Expect::Any;
        assert!(check_limits(&s, &ro).is_ok());
    }

    #[test]
    fn capacity_floors() {
        let mut s = spec("/m");
        s.min_free = Some(Floor::Percent(20.0));
        assert_eq!(
            check_limits(&s, &stats()).unwrap_err().reason,
            Reason::LowSpace
        );
        s.min_free = Some(Floor::Absolute(100));
        assert!(check_limits(&s, &stats()).is_ok());
        s.min_free_inodes = Some(Floor::Absolute(2));
        assert_eq!(
            check_limits(&s, &stats()).unwrap_err().reason,
            Reason::LowInodes
        );
        // Filesystems without inodes (f_files == 0) skip the inode floor.
        let no_inodes = Stats {
            files: 0,
            files_free: 0,
            ..stats()
        };
        assert!(check_limits(&s, &no_inodes).is_ok());
    }

    #[test]
    fn probes_a_real_directory() {
        let dir = tempfile::tempdir().unwrap();
        let table = MountTable::new();
        let mut s = spec(dir.path().to_str().unwrap());
        s.require_mountpoint = false;
        s.check = DataCheck::Directory;
        let outcome = probe(&s, &table);
        assert_eq!(outcome.result, Ok(()));
        assert!(outcome.stats.unwrap().size_bytes > 0);

        s.check = DataCheck::Canary(dir.path().join(".health-check"));
        assert_eq!(
            probe(&s, &table).result.unwrap_err().reason,
            Reason::CanaryFailed
        );
        std::fs::write(dir.path().join(".health-check"), "ok").unwrap();
        assert_eq!(probe(&s, &table).result, Ok(()));

        let gone = spec("/nonexistent/mount-monitor-test");
        let mut gone = gone;
        gone.require_mountpoint = false;
        assert_eq!(
            probe(&gone, &table).result.unwrap_err().reason,
            Reason::Missing
        );
    }
}
