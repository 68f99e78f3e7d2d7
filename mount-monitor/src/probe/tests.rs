use super::*;
use crate::config::{Floor, Settings};
use crate::mountinfo;
use std::path::PathBuf;

fn spec(path: &str) -> MountSpec {
    MountSpec::plain(None, PathBuf::from(path), &Settings::default())
}

fn table() -> Table {
    Table::new(
        mountinfo::parse(
            "1 0 0:1 / / rw - ext4 /dev/sda1 rw\n\
             2 1 0:2 / /mnt/media rw - fuse.rclone remote: rw\n\
             3 1 8:1 /srv/host/media /ctr/media rw master:1 - ext4 /dev/sda1 rw\n\
             4 3 0:4 / /ctr/media rw master:2 - fuse.rclone remote: rw\n\
             5 1 8:1 /srv/host/movies /ctr/movies rw master:1 - ext4 /dev/sda1 rw\n\
             6 1 0:6 /sub /ctr/nfs rw - nfs4 server:/export rw\n\
             7 1 8:2 / /data rw - ext4 /dev/sdb1 rw\n",
        )
        .unwrap(),
    )
}

/// The mount ID the path is on; a path off any mount that its data check may still prove
/// fails with what stands unless the check does.
fn locate(spec: &MountSpec, table: &Table) -> Result<Option<u32>, Failure> {
    let located = super::locate(spec, table, None)?;
    match located.off_mount {
        Some(failure) => Err(failure),
        None => Ok(located.entry.map(|e| e.mount_id)),
    }
}

#[test]
fn empty_directory_left_by_a_dead_mount_is_not_mounted() {
    for placement in [Placement::MountPoint, Placement::Mounted] {
        let mut s = spec("/mnt/other");
        s.placement = placement;
        let failure = locate(&s, &table()).unwrap_err();
        assert_eq!(failure.reason, Reason::NotMounted, "{placement:?}");
    }
}

#[test]
fn a_path_below_a_mount_point_is_checked_on_that_mount() {
    assert_eq!(locate(&spec("/mnt/media/__all__"), &table()), Ok(Some(2)));
    let mut strict = spec("/mnt/media/__all__");
    strict.placement = Placement::MountPoint;
    assert_eq!(
        locate(&strict, &table()).unwrap_err().reason,
        Reason::NotMounted
    );
}

#[test]
fn a_directory_of_a_local_disk_is_not_a_mount() {
    // /data is a disk; /data/media is where a FUSE mount should be, and is not.
    assert_eq!(locate(&spec("/data"), &table()), Ok(Some(7)));
    let failure = locate(&spec("/data/media"), &table()).unwrap_err();
    assert_eq!(failure.reason, Reason::NotMounted);
    assert!(
        failure.detail.contains("ext4 on /data"),
        "{}",
        failure.detail
    );
    let failure = locate(&spec("/srv/data"), &table()).unwrap_err();
    assert!(
        failure.detail.contains("the root filesystem (ext4)"),
        "{}",
        failure.detail
    );
    // Unless a directory of that disk is what is asked for.
    let mut typed = spec("/data/media");
    typed.fs_type = Some("ext4".into());
    assert_eq!(locate(&typed, &table()), Ok(Some(7)));
}

#[test]
fn plain_directory_allowed_when_mountpoint_not_required() {
    let mut s = spec("/srv/data");
    s.placement = Placement::Anywhere;
    assert_eq!(locate(&s, &table()), Ok(Some(1)));
}

#[test]
fn a_container_volume_counts_only_with_a_mount_in_it() {
    // The FUSE mount propagated onto the volume: the topmost mount is the real one.
    assert_eq!(locate(&spec("/ctr/media"), &table()), Ok(Some(4)));
    assert_eq!(locate(&spec("/ctr/media/films"), &table()), Ok(Some(4)));
    // Nothing propagated: the host's empty directory.
    for path in ["/ctr/movies", "/ctr/movies/below"] {
        let failure = locate(&spec(path), &table()).unwrap_err();
        assert_eq!(failure.reason, Reason::EmptyVolume, "{path}");
        assert!(
            failure.detail.contains("/srv/host/movies"),
            "{}",
            failure.detail
        );
        assert!(failure.detail.contains("fsType"), "{}", failure.detail);
    }
    let mut strict = spec("/ctr/movies");
    strict.placement = Placement::MountPoint;
    assert_eq!(
        locate(&strict, &table()).unwrap_err().reason,
        Reason::EmptyVolume
    );
    // Asked for by type, or any directory allowed: accepted.
    let mut typed = spec("/ctr/movies");
    typed.fs_type = Some("ext4".into());
    assert_eq!(locate(&typed, &table()), Ok(Some(5)));
    let mut anywhere = spec("/ctr/movies");
    anywhere.placement = Placement::Anywhere;
    assert_eq!(locate(&anywhere, &table()), Ok(Some(5)));
    // A subtree of a network share is a mount like any other.
    assert_eq!(locate(&spec("/ctr/nfs"), &table()), Ok(Some(6)));
}

#[test]
fn something_else_where_a_healthy_mount_was_fails() {
    let table = table();
    let media = table.mount_at(Path::new("/ctr/media")).unwrap();
    let was = Identity::of(media);
    assert!(!format!("{was:?}").contains("remote:"), "{was:?}");
    let s = spec("/ctr/media");
    assert!(super::locate(&s, &table, Some(&was)).is_ok());
    // The same remote mounted again (a new mount ID) is the same mount.
    let again = Table::new(
        mountinfo::parse(
            "1 0 0:1 / / rw - ext4 /dev/sda1 rw\n\
             3 1 8:1 /srv/host/media /ctr/media rw - ext4 /dev/sda1 rw\n\
             9 3 0:9 / /ctr/media rw - fuse.rclone remote: rw\n",
        )
        .unwrap(),
    );
    assert_eq!(
        super::locate(&s, &again, Some(&was))
            .unwrap()
            .entry
            .unwrap()
            .mount_id,
        9
    );
    // Another filesystem in its place: even with fsType unset, and even where that would
    // be accepted on its own (any directory allowed).
    let other = Table::new(
        mountinfo::parse(
            "1 0 0:1 / / rw - ext4 /dev/sda1 rw\n\
             3 1 8:1 /srv/host/media /ctr/media rw - ext4 /dev/sda1 rw\n\
             9 3 0:9 / /ctr/media rw - tmpfs tmpfs rw\n",
        )
        .unwrap(),
    );
    let mut anywhere = s.clone();
    anywhere.placement = Placement::Anywhere;
    for s in [&s, &anywhere] {
        let failure = super::locate(s, &other, Some(&was)).unwrap_err();
        assert_eq!(failure.reason, Reason::MountChanged);
        assert!(failure.detail.contains("fuse.rclone"), "{}", failure.detail);
        assert!(
            !failure.detail.contains("remote:"),
            "no source: {}",
            failure.detail
        );
    }
    // Only the source changed: said, not shown.
    let elsewhere = Table::new(
        mountinfo::parse(
            "1 0 0:1 / / rw - ext4 /dev/sda1 rw\n\
             3 1 8:1 /srv/host/media /ctr/media rw - ext4 /dev/sda1 rw\n\
             9 3 0:9 / /ctr/media rw - fuse.rclone user:secret@host: rw\n",
        )
        .unwrap(),
    );
    let failure = super::locate(&s, &elsewhere, Some(&was)).unwrap_err();
    assert_eq!(failure.reason, Reason::MountChanged);
    assert!(
        failure.detail.ends_with("mounted from another source")
            && !failure.detail.contains("secret"),
        "{}",
        failure.detail
    );
}

#[test]
fn a_canary_or_directory_check_may_prove_a_path_off_any_mount() {
    let table = table();
    for (path, reason) in [
        ("/srv/data", Reason::NotMounted),
        ("/data/media", Reason::NotMounted),
        ("/ctr/movies", Reason::EmptyVolume),
    ] {
        for check in [
            DataCheck::Canary(PathBuf::from(path).join(".health-check")),
            DataCheck::Directory,
        ] {
            let mut s = spec(path);
            s.check = check.clone();
            let located = super::locate(&s, &table, None).unwrap();
            assert!(located.entry.is_some(), "{path} {check:?}");
            assert_eq!(
                located.off_mount.map(|f| f.reason),
                Some(reason),
                "{path} {check:?}"
            );
            // `requireMountpoint: true` wins over the signal.
            s.placement = Placement::MountPoint;
            assert!(super::locate(&s, &table, None).is_err(), "{path} {check:?}");
            // So does `fsType`, either way.
            s.placement = Placement::Mounted;
            s.fs_type = Some("nfs4".into());
            assert_eq!(
                super::locate(&s, &table, None).unwrap_err().reason,
                Reason::WrongFsType
            );
            s.fs_type = Some("ext4".into());
            assert_eq!(super::locate(&s, &table, None).unwrap().off_mount, None);
        }
        // Our own checks give no signal of content: a mount is required.
        for check in [DataCheck::None, DataCheck::List] {
            let mut s = spec(path);
            s.check = check;
            assert_eq!(super::locate(&s, &table, None).unwrap_err().reason, reason);
        }
    }
    // Remembered: a path that was on a FUSE mount and now shows the volume below fails,
    // whatever its canary says.
    let was = Identity::of(table.mount_at(Path::new("/ctr/media")).unwrap());
    let gone = Table::new(
        mountinfo::parse(
            "1 0 0:1 / / rw - ext4 /dev/sda1 rw\n\
             3 1 8:1 /srv/host/media /ctr/media rw - ext4 /dev/sda1 rw\n",
        )
        .unwrap(),
    );
    let mut s = spec("/ctr/media");
    s.check = DataCheck::Canary(PathBuf::from("/ctr/media/.health-check"));
    let located = super::locate(&s, &gone, Some(&was)).unwrap();
    assert_eq!(
        located.off_mount.map(|f| f.reason),
        Some(Reason::EmptyVolume)
    );
    assert_eq!(
        located.changed.map(|f| f.reason),
        Some(Reason::MountChanged)
    );
}

/// A plain directory (off any mount in a test's namespace: a directory of whatever holds
/// the temporary directory, rarely its mount point) as debrid-mount-monitor's configs check it.
#[test]
fn a_plain_directory_is_proven_by_its_canary_or_its_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("media");
    std::fs::create_dir(&path).unwrap();
    let table = MountTable::new();
    let probe = |s: &MountSpec| probe(s, &table, None, |_| {}).result;

    let mut canary = spec(path.to_str().unwrap());
    canary.check = DataCheck::Canary(path.join(".health-check"));
    let failure = probe(&canary).unwrap_err();
    assert!(
        matches!(failure.reason, Reason::NotMounted | Reason::EmptyVolume),
        "{failure:?}"
    );
    assert!(failure.detail.contains("canary"), "{}", failure.detail);
    std::fs::write(path.join(".health-check"), "ok").unwrap();
    assert_eq!(probe(&canary), Ok(()));

    let mut directory = spec(path.to_str().unwrap());
    directory.check = DataCheck::Directory;
    assert_eq!(probe(&directory), Ok(()));
    std::fs::remove_file(path.join(".health-check")).unwrap();
    let failure = probe(&directory).unwrap_err();
    assert_eq!(failure.reason, Reason::EmptyVolume, "{}", failure.detail);
    assert!(
        failure.detail.contains("empty directory"),
        "{}",
        failure.detail
    );

    // Statfs only: no signal, a mount is required.
    std::fs::write(path.join("file"), "").unwrap();
    let plain = spec(path.to_str().unwrap());
    assert!(probe(&plain).is_err());

    // What happened, said: a missing path, a file.
    for s in [&plain, &directory, &canary] {
        let mut at_file = s.clone();
        at_file.path = path.join("file");
        let failure = probe(&at_file).unwrap_err();
        assert_eq!(failure.reason, Reason::NotADirectory, "{failure:?}");
        assert!(
            failure.detail.ends_with(": not a directory"),
            "{}",
            failure.detail
        );
        let mut missing = s.clone();
        missing.path = path.join("nowhere");
        let failure = probe(&missing).unwrap_err();
        assert_eq!(failure.reason, Reason::Missing, "{failure:?}");
        assert!(
            failure.detail.ends_with(": no such file or directory"),
            "{}",
            failure.detail
        );
    }
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
    s.placement = Placement::Anywhere;
    s.check = DataCheck::Directory;
    let probe = |s: &MountSpec, table: &MountTable| probe(s, table, None, |_| {});
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
    gone.placement = Placement::Anywhere;
    assert_eq!(
        probe(&gone, &table).result.unwrap_err().reason,
        Reason::Missing
    );
}
