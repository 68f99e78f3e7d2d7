//! One check of one mount. [`probe`] does the blocking I/O (run it on a blocking thread, under a
//! deadline); the decisions in between are pure functions, tested without mounts.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use nix::sys::statvfs::{FsFlags, statvfs};

use crate::config::{DataCheck, Expect, MountSpec, Placement};
use crate::mountinfo::{MountEntry, MountTable, Table};
use crate::outcome::{Identity, Outcome, Stats};
use crate::paths::display_path;
use crate::reason::{Failure, Reason};

/// Checks one mount: mountinfo → statfs → read-only → capacity → data path. `expected` is what
/// the path was on when it was last healthy: something else there now fails the check.
/// `located` learns the mount ID the check is about before any call that may hang.
pub fn probe(
    spec: &MountSpec,
    table: &MountTable,
    expected: Option<&Identity>,
    located: impl FnOnce(u32),
) -> Outcome {
    let started = Instant::now();
    let mut stats = None;
    let mut identity = None;
    let result = run_steps(spec, table, expected, located, &mut stats, &mut identity);
    Outcome {
        result,
        stats,
        duration: Some(started.elapsed()),
        identity,
    }
}

fn run_steps(
    spec: &MountSpec,
    table: &MountTable,
    expected: Option<&Identity>,
    located: impl FnOnce(u32),
    stats_out: &mut Option<Stats>,
    identity_out: &mut Option<Identity>,
) -> Result<(), Failure> {
    let entries = table
        .current()
        .map_err(|e| Failure::new(Reason::Error, format!("reading mountinfo: {e}")))?;
    let Located {
        entry,
        off_mount,
        changed,
    } = locate(spec, &entries, expected).map_err(|failure| said_what_happened(spec, failure))?;
    if let Some(entry) = entry {
        located(entry.mount_id);
        *identity_out = Some(Identity::of(entry));
    }
    if off_mount.is_some()
        && let Some(absent) = absent(&spec.path)
    {
        // Whatever the check, a path that is not there or not a directory proves nothing.
        return Err(absent);
    }

    let vfs = statvfs(&spec.path).map_err(|errno| {
        Failure::new(
            Reason::from_errno(errno),
            format!("statfs {}: {}", display_path(&spec.path), errno.desc()),
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

    match off_mount {
        None => check_data(spec),
        Some(off) => check_data_off_mount(spec, off).and(changed.map_or(Ok(()), Err)),
    }
}

/// Where [`locate`] found the path.
#[derive(Debug, PartialEq)]
pub struct Located<'a> {
    /// The mount the path is on.
    pub entry: Option<&'a MountEntry>,
    /// The path is off any mount (a directory of the root filesystem, of another local
    /// filesystem, or in a bind of a plain directory) and the user's data check may still
    /// prove it (debrid-mount-monitor's checks accept it): this failure stands unless the check
    /// does.
    pub off_mount: Option<Failure>,
    /// With `off_mount`: the path is no longer on the mount it was on when last healthy. It
    /// fails even when the data check passes (the canary now read is the one on the
    /// filesystem beneath, not the mount's); when the check fails too, `off_mount` says more.
    pub changed: Option<Failure>,
}

/// A placement failure ([`locate`]'s `not_mounted`, `empty_volume`) of a path that is missing or
/// is no directory says that instead: "nothing is mounted on it" would send the user looking
/// for a mount when the path is what is wrong.
fn said_what_happened(spec: &MountSpec, failure: Failure) -> Failure {
    match failure.reason {
        Reason::NotMounted | Reason::EmptyVolume => absent(&spec.path).unwrap_or(failure),
        _ => failure,
    }
}

/// `missing` or `not_a_directory` when the path is not a directory that exists.
fn absent(path: &Path) -> Option<Failure> {
    let shown = display_path(path);
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => None,
        Ok(_) => Some(Failure::new(
            Reason::NotADirectory,
            format!("{shown}: not a directory"),
        )),
        Err(e) if e.raw_os_error() == Some(nix::libc::ENOENT) => Some(Failure::new(
            Reason::Missing,
            format!("{shown}: no such file or directory"),
        )),
        Err(e) if e.raw_os_error() == Some(nix::libc::ENOTDIR) => Some(Failure::new(
            Reason::NotADirectory,
            format!("{shown}: a part of the path is not a directory"),
        )),
        // Another error (permission on a parent…) is the data check's to report.
        Err(_) => None,
    }
}

/// Step 1: what is mounted at or above the path must be what [`Placement`] asks for, of type
/// `fsType` if set, and the same as when the path was last healthy (`expected`). Returns the
/// mount the path is on, for the fs type and the read-only flag, and whether the path is off
/// any mount with a data check that may still prove it.
pub fn locate<'a>(
    spec: &MountSpec,
    entries: &'a Table,
    expected: Option<&Identity>,
) -> Result<Located<'a>, Failure> {
    let path = display_path(&spec.path);
    // The path as looked up: the configured one, or where its symlinks lead.
    let mut looked_up = spec.path.clone();
    let entry = if spec.placement == Placement::MountPoint {
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
                    format!("{path} is not a mount point: nothing is mounted on it"),
                ));
            }
        }
    } else {
        // Lexically first: a path below a hung mount must not be resolved through it. A symlink
        // is followed only when the lexical answer is the root filesystem.
        let lexical = entries.mount_containing(&spec.path);
        match lexical {
            Some(e) if e.mount_point == Path::new("/") && spec.path != Path::new("/") => {
                match std::fs::canonicalize(&spec.path) {
                    Ok(real) if real != spec.path => {
                        let found = entries.mount_containing(&real);
                        looked_up = real;
                        found
                    }
                    _ => lexical,
                }
            }
            other => other,
        }
    };
    let Some(entry) = entry else {
        return Ok(Located {
            entry: None,
            off_mount: None,
            changed: None,
        });
    };
    let mut off_mount = None;
    let found = Identity::of(entry);
    if let Some(want) = &spec.fs_type {
        if &entry.fs_type != want {
            return Err(Failure::new(
                Reason::WrongFsType,
                format!("{path} is on {found}, expected {want}"),
            ));
        }
    } else if let Some(failure) = off_any_mount(spec, entry, &looked_up) {
        // The user's canary or `directory` check is a signal of content debrid-mount-monitor
        // trusts (its checks pass on it); `requireMountpoint: true` says a mount is wanted, and our
        // statfs-only checks have no other signal.
        let provable = matches!(spec.check, DataCheck::Canary(_) | DataCheck::Directory);
        if spec.placement == Placement::MountPoint || !provable {
            return Err(failure);
        }
        off_mount = Some(failure);
    }
    let mut changed = None;
    if let Some(expected) = expected
        && *expected != found
    {
        // The two read the same when only the source changed, which is never shown.
        let source = if expected.to_string() == found.to_string() {
            " mounted from another source"
        } else {
            ""
        };
        let failure = Failure::new(
            Reason::MountChanged,
            format!("{path} was on {expected} when last healthy, and is now on {found}{source}"),
        );
        if off_mount.is_none() {
            return Err(failure);
        }
        changed = Some(failure);
    }
    Ok(Located {
        entry: Some(entry),
        off_mount,
        changed,
    })
}

/// A directory of a local filesystem is where a mount should be, not a mount: below the mount
/// point of a disk, tmpfs or overlay (the root filesystem above all), or in a bind of such a
/// directory (a container volume). Below a network share or a FUSE mount is the mount's own
/// data. The failure that says so, or `None` when the path is on a mount.
fn off_any_mount(spec: &MountSpec, entry: &MountEntry, looked_up: &Path) -> Option<Failure> {
    if spec.placement == Placement::Anywhere || !entry.is_local_filesystem() {
        return None;
    }
    let path = display_path(&spec.path);
    let found = Identity::of(entry);
    let fs_type = &entry.fs_type;
    if entry.is_bind_of_subtree() {
        return Some(Failure::new(
            Reason::EmptyVolume,
            format!(
                "{path} is on {found}: a volume of a plain directory with nothing mounted on it; set fsType to {fs_type} if that is expected"
            ),
        ));
    }
    if looked_up == entry.mount_point {
        return None;
    }
    let what = if entry.mount_point == Path::new("/") {
        format!("the root filesystem ({fs_type})")
    } else {
        found.to_string()
    };
    Some(Failure::new(
        Reason::NotMounted,
        format!(
            "{path} is a directory of {what}: nothing is mounted on it; set fsType to {fs_type} if a plain directory is expected"
        ),
    ))
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
                format!("canary {}: {e}", display_path(file)),
            )
        }),
        DataCheck::Directory => stat_directory(&spec.path),
        DataCheck::List => read_directory(&spec.path),
    }
}

/// Step 5 for a path off any mount (`off`, what [`locate`] found wrong): the data check must
/// prove content. A readable canary does; a `directory` check needs an entry in the directory,
/// or a directory it may not list (a `0700` root of someone else's data): an empty one is what
/// a volume looks like once the mount it carried is gone. Anything else, `off` stands.
fn check_data_off_mount(spec: &MountSpec, off: Failure) -> Result<(), Failure> {
    match &spec.check {
        DataCheck::Canary(file) => read_canary(file).map_err(|e| {
            Failure::new(
                off.reason,
                format!("{}; canary {}: {e}", off.detail, display_path(file)),
            )
        }),
        DataCheck::Directory => match has_an_entry(&spec.path) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Failure::new(
                Reason::EmptyVolume,
                format!("an empty directory: {}", off.detail),
            )),
            Err(e) if matches!(Reason::from_io(&e), Reason::PermissionDenied) => Ok(()),
            Err(e) => Err(listing_failed(&spec.path, &e)),
        },
        DataCheck::None | DataCheck::List => Err(off),
    }
}

fn listing_failed(path: &Path, e: &std::io::Error) -> Failure {
    Failure::new(
        Reason::from_io(e),
        format!("reading directory {}: {e}", display_path(path)),
    )
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

/// Our `list` check: the directory can be listed (its first entry read), empty or not.
fn read_directory(path: &Path) -> Result<(), Failure> {
    has_an_entry(path)
        .map(drop)
        .map_err(|e| listing_failed(path, &e))
}

/// Opens the directory and reads its first entry: whether there is one.
fn has_an_entry(path: &Path) -> std::io::Result<bool> {
    std::fs::read_dir(path)?
        .next()
        .transpose()
        .map(|first| first.is_some())
}

#[cfg(test)]
mod tests;
