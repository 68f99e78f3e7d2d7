//! debrid-mount-monitor's own layouts, as a container sees them (a private mount namespace:
//! plain directories of the root filesystem, binds of a local directory as `emptyDir` volumes
//! are, tmpfs, a FUSE mount), each checked in serve and in init-container mode against the
//! verdict debrid-mount-monitor gives (its behaviour, run beside ours). Where ours differs, the
//! case says why.
//!
//! `DMM_BINARY=path/to/debrid-mount-monitor` also runs debrid-mount-monitor in init-container mode
//! on each layout and asserts its verdict as the table has it; without it, only ours runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tests::fuse::{HangFs, require_fuse};
use tests::namespace::MountNamespace;
use tests::{Monitor, binary, require_root};

const SETTLE: Duration = Duration::from_secs(6);

/// What is at the path, built in the namespace under `base`; `work` is the working directory.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// A directory of the root filesystem (a container's overlay root), with a canary.
    PlainWithCanary,
    /// A directory of the root filesystem holding one file.
    PlainWithEntry,
    /// An empty directory of the root filesystem.
    PlainEmpty,
    /// `./data/local` below the working directory, with a canary (DMM's README).
    RelativeWithCanary,
    /// A directory of a tmpfs, with a canary.
    TmpfsSubdirWithCanary,
    /// A tmpfs mount point, with a canary.
    TmpfsWithCanary,
    /// A bind of a local directory with a canary (an `emptyDir`: DMM's kind e2e).
    EmptyDirWithCanary,
    /// A bind of a local directory holding one file.
    EmptyDirWithEntry,
    /// A bind of a local directory whose canary is gone.
    EmptyDirWithoutCanary,
    /// A FUSE mount; the path is its subdirectory `__all__` (`/mnt/zurg/__all__`).
    FuseSubdir,
    /// The path does not exist.
    Missing,
    /// The path is a regular file.
    File,
}

struct Case {
    layout: Layout,
    /// The mount's keys beside `name` and `path`.
    keys: Value,
    /// Our verdict: `None` healthy, or the reason.
    ours: Option<&'static str>,
    /// debrid-mount-monitor's verdict: healthy or not.
    dmm_healthy: bool,
}

fn cases() -> Vec<Case> {
    use Layout::*;
    let canary = json!({});
    let directory = json!({"checkType": "directory"});
    let case = |layout, keys: &Value, ours, dmm_healthy| Case {
        layout,
        keys: keys.clone(),
        ours,
        dmm_healthy,
    };
    vec![
        case(PlainWithCanary, &canary, None, true),
        case(PlainWithEntry, &directory, None, true),
        // Ours is stricter: an empty directory where a mount should be is what a gone mount
        // leaves; DMM's stat passes it.
        case(PlainEmpty, &directory, Some("empty_volume"), true),
        case(PlainEmpty, &canary, Some("not_mounted"), false),
        case(RelativeWithCanary, &canary, None, true),
        case(TmpfsSubdirWithCanary, &canary, None, true),
        case(TmpfsWithCanary, &canary, None, true),
        case(EmptyDirWithCanary, &canary, None, true),
        case(EmptyDirWithEntry, &directory, None, true),
        case(EmptyDirWithoutCanary, &canary, Some("empty_volume"), false),
        case(FuseSubdir, &directory, None, true),
        case(FuseSubdir, &canary, Some("canary_failed"), false),
        case(Missing, &canary, Some("missing"), false),
        case(Missing, &directory, Some("missing"), false),
        case(File, &directory, Some("not_a_directory"), false),
        case(File, &canary, Some("not_a_directory"), false),
        // Said explicitly, our keys win over the canary (DMM ignores keys it does not know).
        case(
            PlainWithCanary,
            &json!({"requireMountpoint": true}),
            Some("not_mounted"),
            true,
        ),
        case(
            PlainWithCanary,
            &json!({"fsType": "fuse.rclone"}),
            Some("wrong_fstype"),
            true,
        ),
    ]
}

/// One case's layout, alive as long as this is.
struct Built {
    ns: MountNamespace,
    _base: tempfile::TempDir,
    work: PathBuf,
    _fuse: Option<HangFs>,
}

fn build(case: &Case) -> Built {
    let base = tempfile::Builder::new()
        .prefix("mm-layout-")
        .tempdir()
        .unwrap();
    let b = base.path().display().to_string();
    let work = base.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let ns = MountNamespace::unshare();
    let mut fuse = None;
    let (script, path) = match case.layout {
        Layout::PlainWithCanary => (
            format!("mkdir {b}/p && echo ok > {b}/p/.health-check"),
            format!("{b}/p"),
        ),
        Layout::PlainWithEntry => (
            format!("mkdir {b}/p && touch {b}/p/film.mkv"),
            format!("{b}/p"),
        ),
        Layout::PlainEmpty => (format!("mkdir {b}/p"), format!("{b}/p")),
        Layout::RelativeWithCanary => (
            format!("mkdir -p {b}/work/data/local && echo ok > {b}/work/data/local/.health-check"),
            "./data/local".to_owned(),
        ),
        Layout::TmpfsSubdirWithCanary => (
            format!(
                "mkdir {b}/t && mount -t tmpfs t {b}/t && mkdir {b}/t/sub && echo ok > {b}/t/sub/.health-check"
            ),
            format!("{b}/t/sub"),
        ),
        Layout::TmpfsWithCanary => (
            format!("mkdir {b}/t && mount -t tmpfs t {b}/t && echo ok > {b}/t/.health-check"),
            format!("{b}/t"),
        ),
        Layout::EmptyDirWithCanary => (
            format!(
                "mkdir -p {b}/host/vol {b}/ctr && echo ok > {b}/host/vol/.health-check && mount --bind {b}/host/vol {b}/ctr"
            ),
            format!("{b}/ctr"),
        ),
        Layout::EmptyDirWithEntry => (
            format!(
                "mkdir -p {b}/host/vol {b}/ctr && touch {b}/host/vol/film.mkv && mount --bind {b}/host/vol {b}/ctr"
            ),
            format!("{b}/ctr"),
        ),
        Layout::EmptyDirWithoutCanary => (
            format!("mkdir -p {b}/host/vol {b}/ctr && mount --bind {b}/host/vol {b}/ctr"),
            format!("{b}/ctr"),
        ),
        Layout::FuseSubdir => {
            let fs = HangFs::mount_in(&ns);
            let path = fs.path().join("__all__").display().to_string();
            fuse = Some(fs);
            ("true".to_owned(), path)
        }
        Layout::Missing => ("true".to_owned(), format!("{b}/nowhere")),
        Layout::File => (format!("touch {b}/file"), format!("{b}/file")),
    };
    ns.sh(&script);
    let mut mount = json!({"name": "media", "path": path});
    for (key, value) in case.keys.as_object().unwrap() {
        mount[key] = value.clone();
    }
    let config = json!({
        "checkInterval": "1s",
        "readTimeout": "500ms",
        "failureThreshold": 1,
        "mounts": [mount],
    });
    std::fs::write(work.join("config.json"), config.to_string()).unwrap();
    Built {
        ns,
        _base: base,
        work,
        _fuse: fuse,
    }
}

/// `program --init-container-mode` in the layout's namespace and working directory: (exit code,
/// stdout and stderr).
fn init_container_mode(built: &Built, program: &Path) -> (i32, String) {
    let mut command = Command::new(program);
    command
        .args(["--config", "config.json", "--init-container-mode"])
        .current_dir(&built.work)
        .env_remove("MOUNT_MONITOR_LISTEN")
        .stdin(Stdio::null());
    built.ns.enter_at(&mut command, &built.work);
    let out = command.output().expect("run the monitor");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn describe(case: &Case) -> String {
    format!("{:?} with {}", case.layout, case.keys)
}

#[test]
#[ignore = "needs root to mount filesystems and /dev/fuse: cargo xtask test, as root"]
fn each_layout_in_init_container_mode() {
    require_root("each_layout_in_init_container_mode");
    require_fuse("each_layout_in_init_container_mode");
    let dmm = std::env::var_os("DMM_BINARY").map(PathBuf::from);
    for case in cases() {
        let built = build(&case);
        let what = describe(&case);
        let (code, out) = init_container_mode(&built, binary());
        match case.ours {
            None => assert_eq!(code, 0, "{what}: passes\n{out}"),
            Some(reason) => {
                assert_eq!(code, 1, "{what}: fails\n{out}");
                let failed: Vec<Value> = out
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .filter(|l| l["msg"] == "mount check failed")
                    .collect();
                assert!(
                    failed.len() == 1 && failed[0]["reason"] == reason,
                    "{what}: {reason}\n{out}"
                );
            }
        }
        if let Some(dmm) = &dmm {
            let (code, out) = init_container_mode(&built, dmm);
            assert_eq!(
                code == 0,
                case.dmm_healthy,
                "{what}: debrid-mount-monitor's verdict\n{out}"
            );
        }
    }
}

#[test]
#[ignore = "needs root to mount filesystems and /dev/fuse: cargo xtask test, as root"]
fn each_layout_served() {
    require_root("each_layout_served");
    require_fuse("each_layout_served");
    for case in cases() {
        let built = build(&case);
        let what = describe(&case);
        let monitor = Monitor::start_with(["--config", "config.json"], &built.work, |command| {
            built.ns.enter_at(command, &built.work)
        });
        let (health, ready) = match case.ours {
            None => ("healthy", 200),
            Some(_) => ("unhealthy", 503),
        };
        let media = monitor.wait_for_mount("media", Some(health), case.ours, SETTLE);
        assert_eq!(monitor.get("/healthz/ready").0, ready, "{what}: {media}");
        let error = media["last_error"].as_str().unwrap_or_default();
        match case.layout {
            Layout::Missing => assert!(
                error.ends_with("nowhere: no such file or directory"),
                "{what}: says it is missing: {error}"
            ),
            Layout::File => assert!(
                error.ends_with("file: not a directory"),
                "{what}: says it is a file: {error}"
            ),
            _ => {}
        }
    }
}

/// The propagated mount went away and the path now shows a directory with a canary of its own
/// beneath: debrid-mount-monitor reads that canary and says healthy; ours remembers the mount
/// the path was on and fails it (`mount_changed`), until the mount is back.
#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn a_canary_beneath_a_gone_mount_is_mount_changed() {
    require_root("a_canary_beneath_a_gone_mount_is_mount_changed");
    let base = tempfile::Builder::new()
        .prefix("mm-layout-")
        .tempdir()
        .unwrap();
    // The host's disk, a tmpfs mounted in the namespace on `disk`; the working directory
    // beside it, seen from both sides.
    let disk = base.path().join("disk");
    let work = base.path().join("work");
    std::fs::create_dir(&disk).unwrap();
    std::fs::create_dir(&work).unwrap();
    let b = disk.display().to_string();
    let ns = MountNamespace::unshare();
    // A volume (a bind of the host's directory) receiving the host's mount, as `rslave` does.
    ns.sh(&format!(
        "mount -t tmpfs hostdisk {b} && mount --make-shared {b} && mkdir -p {b}/host/media {b}/ctr/media && \
         mount --bind {b}/host/media {b}/ctr/media && mount --make-slave {b}/ctr/media && \
         mount -t tmpfs media {b}/host/media && echo ok > {b}/host/media/.health-check"
    ));
    std::fs::write(
        work.join("config.json"),
        json!({"checkInterval": "1s", "readTimeout": "500ms", "failureThreshold": 1,
               "mounts": [{"name": "media", "path": format!("{b}/ctr/media")}]})
        .to_string(),
    )
    .unwrap();
    let monitor = Monitor::start_with(["--config", "config.json"], &work, |command| {
        ns.enter_at(command, &work)
    });
    monitor.wait_for_mount("media", Some("healthy"), None, SETTLE);

    // The host's mount goes: the volume shows the host's empty directory.
    ns.sh(&format!("umount {b}/host/media"));
    monitor.wait_for_mount("media", Some("unhealthy"), Some("empty_volume"), SETTLE);
    // A canary appears beneath (a script that recreates it): still not the mount.
    ns.sh(&format!("echo ok > {b}/host/media/.health-check"));
    let media = monitor.wait_for_mount("media", Some("unhealthy"), Some("mount_changed"), SETTLE);
    assert!(
        media["last_error"].as_str().unwrap().contains("tmpfs on"),
        "{media}"
    );
    assert_eq!(monitor.get("/healthz/ready").0, 503);
    // The same mount back (the same source): healthy again.
    ns.sh(&format!(
        "mount -t tmpfs media {b}/host/media && echo ok > {b}/host/media/.health-check"
    ));
    monitor.wait_for_mount("media", Some("healthy"), None, SETTLE);
}

/// A plain directory the monitor's user (65534, as debrid-mount-monitor runs) may not list:
/// `directory` passes, as its stat does there; the entries cannot be seen, so they are not
/// asked for (EACCES/EPERM only: other errors fail).
#[test]
#[ignore = "needs root to run as another user: cargo xtask test, as root"]
fn a_directory_the_monitor_may_not_list_passes_off_any_mount() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    require_root("a_directory_the_monitor_may_not_list_passes_off_any_mount");
    let base = tempfile::Builder::new()
        .prefix("mm-layout-")
        .tempdir()
        .unwrap();
    let mode = |path: &Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    mode(base.path(), 0o755);
    let private = base.path().join("private");
    std::fs::create_dir(&private).unwrap();
    mode(&private, 0o700);
    let config = base.path().join("config.json");
    std::fs::write(
        &config,
        json!({"mounts": [{"name": "media", "path": private, "checkType": "directory"}]})
            .to_string(),
    )
    .unwrap();
    mode(&config, 0o644);
    let out = Command::new(binary())
        .args(["--config", "config.json", "--init-container-mode"])
        .current_dir(base.path())
        .env_remove("MOUNT_MONITOR_LISTEN")
        .stdin(Stdio::null())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
