use super::*;
use crate::paths::display_path;

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
