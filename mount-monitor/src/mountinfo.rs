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

/// A path for people and label values: UTF-8 as it is, any byte that is not UTF-8 as `\xNN`.
pub fn display_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    if let Ok(text) = std::str::from_utf8(bytes) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
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
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
36 22 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue
40 22 0:40 / /data rw,nosuid,nodev shared:5 - fuse.rclone remote: rw,user_id=0,group_id=0
41 40 0:41 / /data rw,relatime - tmpfs tmpfs rw,size=1024k
50 22 0:50 / /ro ro,relatime - tmpfs tmpfs rw
51 22 8:2 / /emergency rw,relatime - ext4 /dev/sdb1 rw,emergency_ro
52 22 0:52 / /tagless rw - nfs4 server:/export rw,vers=4.2
";

    #[test]
    fn parses_fields_and_optional_tags() {
        let entries = parse(SAMPLE).unwrap();
        assert_eq!(entries.len(), 7);
        let rclone = &entries[2];
        assert_eq!(rclone.mount_id, 40);
        assert_eq!(rclone.parent_id, 22);
        assert_eq!(rclone.mount_point, Path::new("/data"));
        assert_eq!(rclone.fs_type, "fuse.rclone");
        assert_eq!(rclone.source, "remote:");
        assert_eq!(entries[6].fs_type, "nfs4");
    }

    #[test]
    fn decodes_octal_escapes() {
        let entries = parse(SAMPLE).unwrap();
        assert_eq!(entries[1].mount_point, Path::new("/mnt/with space"));
        assert_eq!(entries[1].root, Path::new("/mnt1"));
        assert_eq!(unescape(b"a\\011b\\012c\\134d"), b"a\tb\nc\\d");
        // Not an escape: left as it is.
        assert_eq!(unescape(b"a\\9x\\"), b"a\\9x\\");
    }

    #[test]
    fn stacked_mount_reports_the_topmost() {
        let entries = parse(SAMPLE).unwrap();
        let top = mount_at(&entries, Path::new("/data")).unwrap();
        assert_eq!(top.fs_type, "tmpfs");
        assert_eq!(top.mount_id, 41);
    }

    #[test]
    fn topmost_does_not_depend_on_line_order() {
        let reversed: String = SAMPLE.lines().rev().map(|l| format!("{l}\n")).collect();
        let entries = parse(&reversed).unwrap();
        assert_eq!(mount_at(&entries, Path::new("/data")).unwrap().mount_id, 41);
    }

    #[test]
    fn the_index_finds_what_the_search_finds() {
        for text in [
            SAMPLE.to_owned(),
            SAMPLE.lines().rev().map(|l| format!("{l}\n")).collect(),
        ] {
            let entries = parse(&text).unwrap();
            let table = Table::new(entries.clone());
            for path in [
                "/",
                "/data",
                "/data/",
                "/mnt/with space",
                "/ro",
                "/data/sub",
                "/dat",
            ] {
                let path = Path::new(path);
                assert_eq!(table.mount_at(path), mount_at(&entries, path), "{path:?}");
                assert_eq!(
                    table.mount_containing(path),
                    mount_containing(&entries, path),
                    "{path:?}"
                );
            }
            assert_eq!(&*table, entries.as_slice());
        }
    }

    #[test]
    fn empty_directory_is_not_a_mount_point() {
        let entries = parse(SAMPLE).unwrap();
        assert!(mount_at(&entries, Path::new("/data/sub")).is_none());
        assert!(mount_at(&entries, Path::new("/dat")).is_none());
        let containing = mount_containing(&entries, Path::new("/data/sub")).unwrap();
        assert_eq!(containing.mount_id, 41);
        let root = mount_containing(&entries, Path::new("/datax")).unwrap();
        assert_eq!(root.mount_point, Path::new("/"));
    }

    #[test]
    fn read_only_from_mount_or_superblock() {
        let entries = parse(SAMPLE).unwrap();
        assert!(!entries[0].is_read_only());
        assert!(entries[4].is_read_only());
        assert!(entries[5].is_read_only());
    }

    #[test]
    fn paths_that_are_not_utf8_are_kept_as_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let text = b"22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                     70 22 0:70 / /srv/caf\xe9 rw - tmpfs tmpfs rw\n\
                     71 22 0:71 / /srv/ok rw - tmpfs tmpfs rw\n";
        let entries = parse(text).unwrap();
        assert_eq!(
            entries[1].mount_point.as_os_str().as_bytes(),
            b"/srv/caf\xe9"
        );
        assert_eq!(display_path(&entries[1].mount_point), "/srv/caf\\xe9");
        assert_eq!(display_path(Path::new("/srv/café")), "/srv/café");
        let table = Table::new(entries);
        assert_eq!(table.mount_at(Path::new("/srv/ok")).unwrap().mount_id, 71);
    }

    #[test]
    fn a_failed_read_is_retried_on_the_next_call() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mountinfo");
        std::fs::write(&file, "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n").unwrap();
        let table = MountTable::at(&file);
        assert_eq!(table.current().unwrap().len(), 1);
        // A regular file never polls as changed; mark the table changed by hand, as a POLLPRI
        // would, and break it: the read fails, and the next call reads again although `poll`
        // says nothing new, rather than serving the old table for good.
        std::fs::write(&file, "garbage\n").unwrap();
        table.cache.lock().unwrap().as_mut().unwrap().stale = true;
        assert!(table.current().is_err());
        assert!(table.current().is_err(), "still broken, still read");
        std::fs::write(
            &file,
            "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n23 22 0:5 / /m rw - tmpfs t rw\n",
        )
        .unwrap();
        assert_eq!(table.current().unwrap().len(), 2);
        assert!(!table.cache.lock().unwrap().as_ref().unwrap().stale);
    }

    #[test]
    fn bind_mount_keeps_its_root() {
        let line = "60 22 8:1 /var/lib/data /srv/bound rw - ext4 /dev/sda1 rw\n";
        let entries = parse(line).unwrap();
        assert_eq!(entries[0].root, Path::new("/var/lib/data"));
        assert_eq!(
            mount_at(&entries, Path::new("/srv/bound"))
                .unwrap()
                .mount_id,
            60
        );
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        for bad in [
            "",
            "x",
            "1 2",
            "1 2 3 / /m rw",
            "1 2 3 / /m rw shared:1",
            "a 2 3 / /m rw - t s o",
        ] {
            if bad.is_empty() {
                assert_eq!(parse(bad).unwrap(), vec![]);
            } else {
                assert!(parse(bad).is_err(), "{bad:?}");
            }
        }
    }

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(normalize(Path::new("/a/./b/../c/")), Path::new("/a/c"));
        assert_eq!(normalize(Path::new("/../..")), Path::new("/"));
        let relative = normalize(Path::new("x"));
        assert!(relative.is_absolute() && relative.ends_with("x"));
    }

    #[test]
    fn live_table_contains_root() {
        let table = MountTable::new();
        let entries = table.current().unwrap();
        assert!(mount_containing(&entries, Path::new("/")).is_some());
        // Unchanged table: the same Arc comes back without a re-read.
        let again = table.current().unwrap();
        assert!(Arc::ptr_eq(&entries, &again));
    }
}

/// Fuzzing: `PROPTEST_CASES` sets the number of cases of each property (default 5,000).
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn cases() -> u32 {
        crate::proptest_cases(5_000)
    }

    /// The kernel's escaping of paths, types and sources in mountinfo (`mangle` and
    /// `seq_path_root` in fs/proc_namespace.c escape space, tab, newline and backslash).
    fn escape(field: &str) -> String {
        let mut out = String::new();
        for c in field.chars() {
            match c {
                ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
                c => out.push(c),
            }
        }
        out
    }

    /// Tokens that look like mountinfo fields, and some that almost do.
    fn token() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u64..5000).prop_map(|n| n.to_string()),
            Just("-".to_owned()),
            Just("shared:1".to_owned()),
            Just("0:52".to_owned()),
            Just("rw,relatime".to_owned()),
            Just(String::new()),
            "[0-9]{1,25}",
            "/[a-z\\\\0-9]{0,12}",
            "\\\\[0-9]{0,4}",
            any::<String>(),
        ]
    }

    /// Lines built from such tokens, joined by one space (sometimes two).
    fn line() -> impl Strategy<Value = String> {
        vec((token(), any::<bool>()), 0..14).prop_map(|tokens| {
            tokens
                .into_iter()
                .map(|(t, double)| {
                    if double {
                        format!("{t}  ")
                    } else {
                        format!("{t} ")
                    }
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases()))]

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            let _ = parse(&text);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..400)) {
            if let Ok(entries) = parse(&bytes) {
                for entry in &entries {
                    let _ = display_path(&entry.mount_point);
                    let _ = mount_containing(&entries, &entry.mount_point);
                }
            }
        }

        #[test]
        fn near_miss_lines_never_panic(lines in vec(line(), 0..6), path in "/[^\\x00]{0,20}") {
            let text = lines.join("\n");
            if let Ok(entries) = parse(&text) {
                let _ = mount_at(&entries, Path::new(&path));
                let _ = mount_containing(&entries, Path::new(&path));
                let _ = entries.iter().map(MountEntry::is_read_only).count();
            }
        }

        #[test]
        fn escaped_fields_round_trip(
            root in "/[^\\x00]{0,30}",
            mount_point in "/[^\\x00]{0,30}",
            fs_type in "[a-z0-9. \\t\\\\]{1,12}",
            source in "[^\\x00]{0,20}",
            optional in vec("(shared|master|propagate_from):[0-9]{1,3}|unbindable", 0..3),
            read_only in any::<bool>(),
        ) {
            let options = if read_only { "ro,nosuid" } else { "rw,nosuid" };
            let optional: String = optional.iter().map(|tag| format!("{tag} ")).collect();
            // An empty source stays empty: the line then has two spaces in a row there.
            let line = format!(
                "36 22 98:0 {} {} {options} {optional}- {} {} rw,size=1024k",
                escape(&root),
                escape(&mount_point),
                escape(&fs_type),
                escape(&source),
            );
            let entries = parse(&line).map_err(|e| TestCaseError::fail(format!("{e}: {line:?}")))?;
            prop_assert_eq!(entries.len(), 1);
            let entry = &entries[0];
            prop_assert_eq!(&entry.root, &PathBuf::from(&root));
            prop_assert_eq!(&entry.mount_point, &PathBuf::from(&mount_point));
            prop_assert_eq!(&entry.fs_type, &fs_type);
            prop_assert_eq!(&entry.source, &source);
            prop_assert_eq!(entry.is_read_only(), read_only);
            prop_assert_eq!(
                mount_at(&entries, Path::new(&mount_point)).map(|e| e.mount_id),
                Some(36)
            );
        }
    }
}
