//! `/proc/self/mountinfo`: parsing, lookups, and a cache that re-reads the table only when the
//! kernel says it changed.
//!
//! Written by hand rather than with a crate: the format is one line per mount, the crates we
//! looked at either pull in all of procfs or do not decode octal escapes, and the parser here is
//! small, fuzzed and unit-tested against the kernel's documented examples.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

/// One line of mountinfo (see proc_pid_mountinfo(5)). Paths are bytes, as the kernel keeps them:
/// a directory name that is not UTF-8 anywhere on the machine must not break the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_id: u32,
    pub parent_id: u32,
    /// The root of the mount within its filesystem (`/` unless it is a bind mount of a subtree).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub mount_options: Vec<String>,
    pub fs_type: String,
    pub source: String,
    pub super_options: Vec<String>,
}

impl MountEntry {
    /// Read-only per the per-mount options or the superblock (including ext4's `emergency_ro`).
    pub fn is_read_only(&self) -> bool {
        self.mount_options.iter().any(|o| o == "ro")
            || self
                .super_options
                .iter()
                .any(|o| o == "ro" || o == "emergency_ro")
    }

    /// A bind mount of a subtree rather than a filesystem's root.
    pub fn is_bind_of_subtree(&self) -> bool {
        self.root != Path::new("/")
    }

    /// A filesystem of this machine (a disk, memory or a container's layers) rather than a
    /// network share or a FUSE daemon: a directory of one is what a container volume shows when
    /// the mount it should carry is missing.
    pub fn is_local_filesystem(&self) -> bool {
        self.source.starts_with("/dev/") || LOCAL_FS_TYPES.contains(&self.fs_type.as_str())
    }
}

/// Filesystems whose directories a container runtime binds into containers as volumes.
pub const LOCAL_FS_TYPES: &[&str] = &[
    "bcachefs", "btrfs", "exfat", "ext2", "ext3", "ext4", "f2fs", "jfs", "ntfs", "ntfs3",
    "overlay", "ramfs", "reiserfs", "tmpfs", "vfat", "xfs", "zfs",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("mountinfo line {line}: {what}")]
pub struct ParseError {
    pub line: usize,
    pub what: &'static str,
}

/// Parses the whole of a mountinfo file, as bytes.
pub fn parse(text: impl AsRef<[u8]>) -> Result<Vec<MountEntry>, ParseError> {
    text.as_ref()
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.trim_ascii().is_empty())
        .map(|(i, line)| parse_line(line).map_err(|what| ParseError { line: i + 1, what }))
        .collect()
}

fn parse_line(line: &[u8]) -> Result<MountEntry, &'static str> {
    let mut fields = line.split(|&b| b == b' ');
    let mut next = |what| fields.next().filter(|f| !f.is_empty()).ok_or(what);
    let number = |field: &[u8], what| {
        std::str::from_utf8(field)
            .ok()
            .and_then(|f| f.parse().ok())
            .ok_or(what)
    };
    let mount_id = number(next("missing mount id")?, "bad mount id")?;
    let parent_id = number(next("missing parent id")?, "bad parent id")?;
    let _dev = next("missing major:minor")?;
    let root = path(next("missing root")?);
    let mount_point = path(next("missing mount point")?);
    let mount_options = split_options(next("missing mount options")?);
    // Optional fields (shared:N, master:N, …) run up to a lone "-".
    loop {
        if next("missing separator")? == b"-" {
            break;
        }
    }
    let fs_type = text(next("missing filesystem type")?);
    // The source may legitimately be empty on some filesystems; take it verbatim.
    let source = fields.next().map(text).unwrap_or_default();
    let super_options = fields.next().map(split_options).unwrap_or_default();
    Ok(MountEntry {
        mount_id,
        parent_id,
        root,
        mount_point,
        mount_options,
        fs_type,
        source,
        super_options,
    })
}

fn split_options(field: &[u8]) -> Vec<String> {
    field.split(|&b| b == b',').map(text).collect()
}

fn path(field: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(unescape(field)))
}

/// Types, sources and options: shown to people, never used as paths.
fn text(field: &[u8]) -> String {
    String::from_utf8_lossy(&unescape(field)).into_owned()
}

/// Decodes the kernel's `\ooo` octal escapes (space, tab, newline and backslash are escaped).
fn unescape(field: &[u8]) -> Vec<u8> {
    let bytes = field;
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && is_octal_escape(&bytes[i + 1..i + 4]) {
            let value = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            out.push(value as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn is_octal_escape(digits: &[u8]) -> bool {
    digits.len() == 3 && digits[0] <= b'3' && digits.iter().all(|d| (b'0'..=b'7').contains(d))
}

/// One reading of the mount table, indexed by mount point: every check looks its path up, and a
/// search through the whole table for each would make a round over thousands of mounts
/// quadratic. Derefs to the entries, in the kernel's order.
#[derive(Debug, Default)]
pub struct Table {
    entries: Vec<MountEntry>,
    by_mount_point: HashMap<PathBuf, Vec<usize>>,
}

impl Table {
    pub fn new(entries: Vec<MountEntry>) -> Table {
        let mut by_mount_point: HashMap<PathBuf, Vec<usize>> = HashMap::new();
        for (index, entry) in entries.iter().enumerate() {
            by_mount_point
                .entry(entry.mount_point.clone())
                .or_default()
                .push(index);
        }
        Table {
            entries,
            by_mount_point,
        }
    }

    /// [`mount_at`], without the search.
    pub fn mount_at(&self, path: &Path) -> Option<&MountEntry> {
        let indices = self.by_mount_point.get(path)?;
        topmost(indices.iter().map(|&index| &self.entries[index]))
    }

    /// [`mount_containing`], without the search: the nearest ancestor that is a mount point.
    pub fn mount_containing(&self, path: &Path) -> Option<&MountEntry> {
        path.ancestors().find_map(|dir| self.mount_at(dir))
    }
}

impl std::ops::Deref for Table {
    type Target = [MountEntry];

    fn deref(&self) -> &[MountEntry] {
        &self.entries
    }
}

/// The topmost mount whose mount point is exactly `path`: the one no other mount on the same
/// point is stacked on. `None` when `path` is not a mount point.
pub fn mount_at<'a>(entries: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    topmost(entries.iter().filter(|e| e.mount_point == path))
}

/// The topmost mount that contains `path` (the longest mount point that is a prefix of it).
pub fn mount_containing<'a>(entries: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    let longest = entries
        .iter()
        .filter(|e| path.starts_with(&e.mount_point))
        .map(|e| e.mount_point.as_os_str().len())
        .max()?;
    topmost(
        entries
            .iter()
            .filter(|e| path.starts_with(&e.mount_point))
            .filter(|e| e.mount_point.as_os_str().len() == longest),
    )
}

fn topmost<'a>(candidates: impl Iterator<Item = &'a MountEntry> + Clone) -> Option<&'a MountEntry> {
    let covered = |entry: &MountEntry| candidates.clone().any(|e| e.parent_id == entry.mount_id);
    candidates
        .clone()
        .filter(|e| !covered(e))
        .last()
        .or(candidates.last())
}

/// Makes `path` absolute against the current directory and removes `.` and `..` without touching
/// the filesystem (which may hang).
pub fn normalize(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    let mut out = PathBuf::from("/");
    for component in absolute.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// A shared, cached view of `/proc/self/mountinfo`. The kernel signals `POLLPRI` on an open
/// mountinfo file whenever the mount table changes, so a check costs a zero-timeout `poll`
/// instead of re-reading and re-parsing the table once per mount.
pub struct MountTable {
    path: PathBuf,
    cache: Mutex<Option<Cached>>,
    /// Counts the changes [`MountTable::watch`] saw, for the checks that wait on them.
    changes: tokio::sync::watch::Sender<u64>,
}

struct Cached {
    file: File,
    entries: Arc<Table>,
    /// A re-read failed after the kernel said the table changed: that notice is consumed, so
    /// the next call must read again whatever `poll` says.
    stale: bool,
}

impl MountTable {
    pub fn new() -> Self {
        Self::at("/proc/self/mountinfo")
    }

    pub fn at(path: impl Into<PathBuf>) -> Self {
        MountTable {
            path: path.into(),
            cache: Mutex::new(None),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Told of every change of the table while [`MountTable::watch`] runs (a mount or unmount
    /// anywhere in this mount namespace, propagated ones included); never told otherwise.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Waits for the kernel's `POLLPRI` on an open mountinfo file, in the runtime's epoll as
    /// systemd does, and tells the subscribers of each change, until the runtime stops. When
    /// the file cannot be watched, it says why and returns: the checks keep their interval.
    pub async fn watch(self: Arc<Self>) {
        use tokio::io::Interest;
        use tokio::io::unix::AsyncFd;
        let registered = File::open(&self.path).and_then(|file| {
            // A file polls as changed once after it is opened: consume that first.
            changed(&file);
            // SAFETY: the `File` owns its descriptor, and the `AsyncFd` owns the `File` until it
            // is dropped: the descriptor stays open and the same for the registration's life.
            unsafe { AsyncFd::register_with_interest(file, Interest::PRIORITY) }
                .map_err(|e| e.into_parts().1)
        });
        let file = match registered {
            Ok(file) => file,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot watch the mount table; mounts are checked on their interval only");
                return;
            }
        };
        loop {
            match file.ready(Interest::PRIORITY).await {
                Ok(mut ready) => {
                    // Polling the file (as `changed` does) is what re-arms the notice.
                    changed(file.get_ref());
                    ready.clear_ready();
                    self.changes.send_modify(|n| *n += 1);
                }
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "stopped watching the mount table; mounts are checked on their interval only");
                    return;
                }
            }
        }
    }

    /// The current table; re-read only when it changed since the last call.
    pub fn current(&self) -> std::io::Result<Arc<Table>> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cached) = cache.as_mut() {
            if !changed(&cached.file) && !cached.stale {
                return Ok(Arc::clone(&cached.entries));
            }
            cached.stale = true;
            cached.entries = Arc::new(Table::new(read_all(&mut cached.file)?));
            cached.stale = false;
            return Ok(Arc::clone(&cached.entries));
        }
        let mut file = File::open(&self.path)?;
        // The first poll reports the table as changed; consume that before reading it.
        changed(&file);
        let entries = Arc::new(Table::new(read_all(&mut file)?));
        *cache = Some(Cached {
            file,
            entries: Arc::clone(&entries),
            stale: false,
        });
        Ok(entries)
    }
}

impl Default for MountTable {
    fn default() -> Self {
        Self::new()
    }
}

fn changed(file: &File) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLPRI)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(0) => false,
        Ok(_) => fds[0]
            .revents()
            .is_none_or(|r| r.intersects(PollFlags::POLLPRI | PollFlags::POLLERR)),
        // Anything unexpected: re-read, which is always correct.
        Err(_) => true,
    }
}

fn read_all(file: &mut File) -> std::io::Result<Vec<MountEntry>> {
    file.seek(SeekFrom::Start(0))?;
    let mut text = Vec::new();
    file.read_to_end(&mut text)?;
    parse(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests;

/// Fuzzing: `PROPTEST_CASES` sets the number of cases of each property (default 5,000).
#[cfg(test)]
mod fuzz;
