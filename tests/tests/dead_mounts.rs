//! The one promise, end to end: a mount that is not really there and usable is never reported
//! healthy, in the layouts users deploy. Container volumes are built in a private mount namespace
//! as a container runtime builds them (a bind mount of a host directory, a slave of the host's
//! mount propagation); hung FUSE mounts are `hangfs` (src/bin/hangfs.rs).

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::figures;
use tests::fuse::{HangFs, require_fuse};
use tests::namespace::MountNamespace;
use tests::{Monitor, Tmpfs, binary, empty_workdir, require_root};

const INTERVAL: Duration = Duration::from_secs(1);
/// A change is seen within two intervals (plus jitter and a loaded machine's slack).
const TWO_INTERVALS: Duration = Duration::from_millis(2600);

/// `mount-monitor --mount NAME=PATH`, checking every second with a 500 ms timeout.
fn watch_every_second(name: &str, path: &std::path::Path) -> Monitor {
    Monitor::watch(&[&format!("{name}={}", path.display())], &[])
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// One at a time: they count threads and check intervals, which a neighbour would disturb.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A node and a container in a private mount namespace: the node's disk (a tmpfs, shared like a
/// systemd host's root) with the directory `node/rclone/media`, where the provider mounts; the
/// container's root filesystem (a private tmpfs, as a runtime's overlay is) at `ctr`. What the
/// container sees of the node is what `bind` puts there, as `hostPath` with `HostToContainer` and
/// `docker run -v …:rslave` do.
struct Node {
    ns: MountNamespace,
    base: tempfile::TempDir,
    workdir: tempfile::TempDir,
}

impl Node {
    fn new() -> Node {
        let base = tempfile::Builder::new()
            .prefix("mm-node-")
            .tempdir()
            .unwrap();
        let ns = MountNamespace::unshare();
        let b = base.path().display();
        ns.sh(&format!(
            "mount -t tmpfs nodedisk {b} && mount --make-shared {b} && mkdir -p {b}/node/rclone/media {b}/ctr && \
             mount -t tmpfs ctrroot {b}/ctr && mount --make-private {b}/ctr"
        ));
        Node {
            ns,
            base,
            workdir: empty_workdir(),
        }
    }

    /// The layout of deploy/ and the README's Docker recipe: the node's `/mnt/rclone` bound at
    /// the container's `/mnt/rclone`, the provider's mount to come at `rclone/media` below it.
    fn with_rclone_volume() -> Node {
        let node = Node::new();
        node.bind("rclone", "rclone");
        node
    }

    fn node(&self, path: &str) -> PathBuf {
        self.base.path().join("node").join(path)
    }

    fn ctr(&self, path: &str) -> PathBuf {
        self.base.path().join("ctr").join(path)
    }

    /// The provider (rclone, restarted or not) mounts its remote at `node/rclone/media`: a tmpfs
    /// of `size`, from the same source each time, whose canary holds `canary`.
    fn provider_mounts(&self, size: &str, canary: &str) {
        let media = self.node("rclone/media");
        self.ns.sh(&format!(
            "mkdir -p {m} && mount -t tmpfs -o size={size} media {m} && printf {canary} > {m}/.health-check",
            m = media.display()
        ));
    }

    /// The provider's mount goes away on the node (its daemon died and was unmounted).
    fn provider_unmounts(&self) {
        self.ns
            .sh(&format!("umount {}", self.node("rclone/media").display()));
        assert!(!self.ns.is_mount_point(&self.node("rclone/media")));
    }

    /// The container starts: the node's directory `node` bound at `ctr` in its root with the
    /// mounts below it (runtimes bind volumes recursively), a slave of the node's propagation.
    fn bind(&self, node: &str, ctr: &str) {
        self.ns.sh(&format!(
            "mkdir -p {c} && mount --rbind {n} {c} && mount --make-rslave {c}",
            n = self.node(node).display(),
            c = self.ctr(ctr).display()
        ));
    }

    /// What the container reads in the canary of `ctr/rclone/media`.
    fn canary_in_container(&self) -> String {
        let canary = self.ctr("rclone/media/.health-check");
        let proc_root = format!("/proc/{}/root", self.ns.holder_pid());
        std::fs::read_to_string(PathBuf::from(proc_root).join(canary.strip_prefix("/").unwrap()))
            .unwrap_or_else(|e| format!("({e})"))
    }

    /// mount-monitor in the container, watching `ctr/rclone/media` with its canary.
    fn monitor(&self) -> Monitor {
        let mount = format!(
            "media={},canary=.health-check",
            self.ctr("rclone/media").display()
        );
        let mut args = tests::EVERY_SECOND.to_vec();
        args.extend(["--mount", &mount]);
        self.monitor_with(&args, &[])
    }

    /// `mount-monitor ARGS` serving in the container, with `env` set.
    fn monitor_with(&self, args: &[&str], env: &[(&str, String)]) -> Monitor {
        Monitor::start_with(args, self.workdir.path(), |command| {
            for (key, value) in env {
                command.env(key, value);
            }
            self.ns.enter(command);
        })
    }

    /// `mount-monitor ARGS` once, in the container: (exit code, stdout).
    fn run(&self, args: &[String]) -> (i32, String) {
        let mut command = Command::new(binary());
        command
            .args(args)
            .current_dir(self.workdir.path())
            .stdin(Stdio::null());
        self.ns.enter(&mut command);
        let out = command.output().expect("run mount-monitor");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

/// The README's Docker recipe as written (`-v /mnt/rclone:/mnt/rclone:rslave`,
/// `-e MOUNT_MONITOR_MOUNTS=media=/mnt/rclone/media`): healthy only while the host's mount is in
/// the volume.
#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn a_container_volume_is_healthy_only_while_the_host_mount_is_in_it() {
    require_root("a_container_volume_is_healthy_only_while_the_host_mount_is_in_it");
    let _serial = serial();
    let volume = Node::with_rclone_volume();
    let media_in_container = volume.ctr("rclone/media");
    let env = [(
        "MOUNT_MONITOR_MOUNTS",
        format!("media={}", media_in_container.display()),
    )];
    let monitor = volume.monitor_with(&tests::EVERY_SECOND, &env);

    // Started before the host's mount is up: the volume is the host's empty directory.
    let media = monitor.wait_for_mount(
        "media",
        Some("degraded"),
        Some("empty_volume"),
        TWO_INTERVALS,
    );
    assert!(
        media["last_error"]
            .as_str()
            .unwrap()
            .contains("node/rclone"),
        "{media}"
    );
    assert_eq!(monitor.get("/healthz/ready").0, 503);

    let up = Instant::now();
    volume.provider_mounts("1m", "ok");
    assert!(volume.ns.is_mount_point(&media_in_container));
    let media = monitor.wait_for_mount("media", Some("healthy"), None, TWO_INTERVALS);
    let healthy_after = up.elapsed();
    assert_eq!(media["fs_type"], "tmpfs");
    assert_eq!(monitor.get("/healthz/ready").0, 200);

    // The host's mount goes away: the volume is an empty directory again.
    let gone = Instant::now();
    volume.provider_unmounts();
    let media = monitor.wait_for_mount(
        "media",
        Some("degraded"),
        Some("empty_volume"),
        TWO_INTERVALS,
    );
    let empty_after = gone.elapsed();
    eprintln!(
        "empty volume seen {:.2}s after the host unmounted: {}",
        empty_after.as_secs_f64(),
        media["last_error"]
    );
    figures::record(
        "container_volume",
        json!({
            "healthy_after_host_mount_s": secs(healthy_after),
            "empty_volume_after_host_unmount_s": secs(empty_after),
            "last_error": media["last_error"],
        }),
    );
    assert!(media.get("fs_type").is_none(), "no stale figures: {media}");
    monitor.wait_for_mount(
        "media",
        Some("unhealthy"),
        Some("empty_volume"),
        3 * TWO_INTERVALS,
    );

    volume.provider_mounts("1m", "ok");
    monitor.wait_for_mount("media", Some("healthy"), None, TWO_INTERVALS);
}

/// `deploy/init-container.yaml`'s arguments as written, and the sidecar's config as written
/// (with its path pointed at the volume): an empty volume never passes.
#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn the_deploy_examples_refuse_an_empty_volume() {
    require_root("the_deploy_examples_refuse_an_empty_volume");
    let _serial = serial();
    let volume = Node::with_rclone_volume();
    let container = volume.ctr("rclone/media").display().to_string();
    let init = tests::workspace_root().join("deploy/init-container.yaml");
    let init = std::fs::read_to_string(&init).unwrap();
    let docs: Vec<Value> = serde_norway::Deserializer::from_str(&init)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let mut args: Vec<String> = docs
        .iter()
        .flat_map(|d| d["spec"]["template"]["spec"]["initContainers"].as_array())
        .flatten()
        .flat_map(|c| c["args"].as_array())
        .flatten()
        .map(|a| a.as_str().unwrap().replace("/mnt/rclone/media", &container))
        .collect();
    assert!(args.contains(&"check".to_owned()), "{args:?}");
    tests::shorten_wait_timeout(&mut args, "2s");

    let (code, out) = volume.run(&args);
    assert_eq!(
        code, 1,
        "empty volume: the init container must fail:\n{out}"
    );
    assert!(out.contains("empty_volume"), "{out}");
    volume.provider_mounts("1m", "ok");
    let (code, out) = volume.run(&args);
    assert_eq!(code, 0, "mounted: the init container passes:\n{out}");
    volume.provider_unmounts();
    let (code, _) = volume.run(&args);
    assert_eq!(code, 1, "gone again");

    // The sidecar's config (fsType fuse.rclone, a canary): the empty volume is not healthy.
    let sidecar = tests::workspace_root().join("deploy/sidecar.yaml");
    let sidecar = std::fs::read_to_string(&sidecar).unwrap();
    let config = sidecar
        .split("config.toml: |\n")
        .nth(1)
        .and_then(|rest| rest.split("\n---").next())
        .expect("the sidecar's ConfigMap")
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("/mnt/rclone/media", &container);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, config).unwrap();
    let (code, out) = volume.run(&[
        "check".into(),
        "--config".into(),
        file.display().to_string(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("wrong_fstype"), "{out}");
}

const MIB: u64 = 1 << 20;

/// A bind of the mount point itself, made while the provider's mount is up (the container started
/// after the mount): the container holds THAT mount. The node's unmount does not reach it (the
/// container's copy is not a child of a copy of the node's directory), nor does the provider's
/// next mount (a child of the node's directory, of which the container has no copy): the monitor
/// reports the first filesystem healthy while the node has nothing mounted, and after it mounted
/// another. Why deploy/ binds the directory above the mount point.
#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn a_bind_of_the_mount_point_keeps_the_mount_found_at_the_start() {
    require_root("a_bind_of_the_mount_point_keeps_the_mount_found_at_the_start");
    let _serial = serial();
    let node = Node::new();
    node.provider_mounts("1m", "first");
    node.bind("rclone/media", "rclone/media");
    let monitor = node.monitor();
    let media = monitor.wait_for_mount("media", Some("healthy"), None, TWO_INTERVALS);
    assert_eq!(media["size_bytes"], MIB, "{media}");

    // The node's mount goes: the container still has it, and the monitor says so.
    node.provider_unmounts();
    assert!(node.ns.is_mount_point(&node.ctr("rclone/media")));
    assert_eq!(node.canary_in_container(), "first");
    std::thread::sleep(3 * INTERVAL);
    let media = monitor.wait_for_mount("media", Some("healthy"), None, TWO_INTERVALS);
    assert_eq!(media["size_bytes"], MIB, "{media}");
    assert_eq!(monitor.get("/readyz").0, 200);

    // The provider mounts again: the container still sees the first filesystem, not this one.
    node.provider_mounts("2m", "second");
    std::thread::sleep(3 * INTERVAL);
    assert_eq!(node.canary_in_container(), "first");
    let media = monitor.wait_for_mount("media", Some("healthy"), None, TWO_INTERVALS);
    assert_eq!(
        media["size_bytes"], MIB,
        "still the first filesystem: {media}"
    );
    assert_eq!(monitor.get("/readyz").0, 200);
}

/// The layout deploy/ uses: the directory above the mount point bound (`hostPath: /mnt/rclone`
/// for the mount at /mnt/rclone/media, `HostToContainer`), the mount up when the container
/// starts. The node's unmount reaches the container, the monitor is not healthy while it lasts,
/// and the provider's next mount reaches it: healthy again on the new filesystem, the same mount
/// as far as the remembered-mount rule goes (same type, source and place).
#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn a_bind_of_the_directory_above_sees_the_mount_made_again() {
    require_root("a_bind_of_the_directory_above_sees_the_mount_made_again");
    let _serial = serial();
    let node = Node::new();
    node.provider_mounts("1m", "first");
    node.bind("rclone", "rclone");
    let monitor = node.monitor();
    let media = monitor.wait_for_mount("media", Some("healthy"), None, TWO_INTERVALS);
    assert_eq!(media["size_bytes"], MIB, "{media}");

    node.provider_unmounts();
    assert!(!node.ns.is_mount_point(&node.ctr("rclone/media")));
    // The container's directory is the node's, empty: not healthy, whatever was remembered.
    let media = monitor.wait_for_mount(
        "media",
        Some("unhealthy"),
        Some("empty_volume"),
        3 * TWO_INTERVALS,
    );
    assert!(
        media["last_error"]
            .as_str()
            .unwrap()
            .contains("/node/rclone"),
        "{media}"
    );
    assert_eq!(monitor.get("/readyz").0, 503);

    node.provider_mounts("2m", "second");
    assert_eq!(node.canary_in_container(), "second");
    let media = monitor.wait_for_mount("media", Some("healthy"), None, TWO_INTERVALS);
    assert_eq!(media["size_bytes"], 2 * MIB, "the new filesystem: {media}");
    assert_eq!(monitor.get("/readyz").0, 200);
}

/// The case users meet: the FUSE daemon on the node dies and is restarted (rclone under systemd:
/// killed, `fusermount -uz`, mounted again). One container binds the mount point itself, made
/// while the first daemon served it (`point`); the other binds the directory above (`above`, as
/// deploy/ does). Only `above` follows: `empty_volume` once the node unmounted, healthy on the
/// new daemon's mount. `point` keeps the first daemon's dead mount: `disconnected` for as long as
/// the container lives, the new mount on the node notwithstanding.
#[test]
#[ignore = "needs root and /dev/fuse: cargo xtask test, as root"]
fn a_restarted_fuse_daemon_reaches_only_a_container_bound_above_its_mount_point() {
    let test = "a_restarted_fuse_daemon_reaches_only_a_container_bound_above_its_mount_point";
    require_fuse(test);
    let _serial = serial();
    let node = Node::new();
    let media = node.node("rclone/media");
    let mut first = HangFs::mount_at_in(&node.ns, &media);
    node.bind("rclone/media", "point");
    node.bind("rclone", "above");
    let point = format!("point={}", node.ctr("point").display());
    let above = format!("above={}", node.ctr("above/media").display());
    let mut args = tests::EVERY_SECOND.to_vec();
    args.extend(["--mount", &point, "--mount", &above]);
    let monitor = node.monitor_with(&args, &[]);
    for name in ["point", "above"] {
        let mount = monitor.wait_for_mount(name, Some("healthy"), None, TWO_INTERVALS);
        assert_eq!(mount["fs_type"], "fuse.hangfs", "{mount}");
    }

    // The daemon dies: both containers see its dead mount.
    first.kill_daemon();
    for name in ["point", "above"] {
        monitor.wait_for_mount(
            name,
            Some("unhealthy"),
            Some("disconnected"),
            3 * TWO_INTERVALS,
        );
    }
    // The node clears it and the daemon, restarted, mounts again.
    node.ns.sh(&format!("umount -l {}", media.display()));
    monitor.wait_for_mount(
        "above",
        Some("unhealthy"),
        Some("empty_volume"),
        TWO_INTERVALS,
    );
    let _second = HangFs::mount_at_in(&node.ns, &media);
    monitor.wait_for_mount("above", Some("healthy"), None, TWO_INTERVALS);
    assert_eq!(monitor.get("/readyz/above").0, 200);

    // The container bound at the mount point never sees it.
    std::thread::sleep(3 * INTERVAL);
    let mount = monitor.wait_for_mount(
        "point",
        Some("unhealthy"),
        Some("disconnected"),
        TWO_INTERVALS,
    );
    assert!(
        mount["last_error"]
            .as_str()
            .unwrap()
            .contains("not connected"),
        "{mount}"
    );
    assert_eq!(monitor.get("/readyz/point").0, 503);
    assert_eq!(monitor.get("/readyz").0, 503);
}

/// A mount whose path is not UTF-8 anywhere on the machine leaves every other check alone, and
/// can itself be monitored, shown with its bytes escaped.
#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn a_mount_path_that_is_not_utf8_breaks_nothing() {
    require_root("a_mount_path_that_is_not_utf8_breaks_nothing");
    let _serial = serial();
    let mut watched = Tmpfs::new("size=1m");
    let monitor = Monitor::watch(
        &[&format!("data={}", watched.path().display())],
        &["--failure-threshold", "1"],
    );
    monitor.wait_for_mount("data", Some("healthy"), None, TWO_INTERVALS);

    // A Latin-1 directory name appears while serving.
    let parent = tempfile::tempdir().unwrap();
    let latin1 = parent.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    std::fs::create_dir(&latin1).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &latin1,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1m"),
    )
    .unwrap();
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _latin1 = Unmount(latin1.clone());
    std::thread::sleep(2 * INTERVAL);
    monitor.wait_for_mount("data", Some("healthy"), None, TWO_INTERVALS);

    // Then the watched mount dies: still seen, with the odd mount still there.
    watched.unmount();
    let data = monitor.wait_for_mount(
        "data",
        Some("unhealthy"),
        Some("not_mounted"),
        TWO_INTERVALS,
    );
    assert!(data.get("fs_type").is_none(), "{data}");

    // The odd mount itself, found by discovery (a path that is not UTF-8 cannot be a flag):
    // checked, healthy, its byte escaped.
    let escaped = format!("{}/caf\\xe9", parent.path().display());
    let workdir = empty_workdir();
    let out = Command::new(binary())
        .args(["check", "--format", "json"])
        .current_dir(workdir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let odd = mount_json_by_path(&json, &escaped);
    assert_eq!(odd["status"], "healthy", "{odd}");
    assert_eq!(odd["fs_type"], "tmpfs", "{odd}");
}

/// The usual repair of a hung FUSE mount, `umount -l` and mount again: the new mount is checked
/// at once, however long the check of the old one stays blocked.
#[test]
#[ignore = "needs root and /dev/fuse: cargo xtask test, as root"]
fn a_hung_mount_mounted_again_is_healthy_within_an_interval() {
    let test = "a_hung_mount_mounted_again_is_healthy_within_an_interval";
    require_fuse(test);
    let _serial = serial();
    let mut old = HangFs::mount();
    let path = old.path().to_path_buf();
    let monitor = watch_every_second("media", &path);
    monitor.wait_for_mount("media", Some("healthy"), None, TWO_INTERVALS);
    old.hang();
    monitor.wait_for_mount("media", Some("degraded"), Some("timeout"), TWO_INTERVALS);
    let (_, body) = monitor.get_json("/healthz/status");
    assert_eq!(body["blocked_checks"], 1, "{body}");

    // The daemon is restarted on the same mount point; the old check stays blocked in the
    // kernel (the old daemon never answers it).
    old.unmount_lazily();
    let new = HangFs::mount_at(&path);
    let remounted = Instant::now();
    let media = monitor.wait_for_mount(
        "media",
        Some("healthy"),
        None,
        INTERVAL + Duration::from_millis(600),
    );
    let took = remounted.elapsed();
    eprintln!("healthy {:.2}s after the remount", took.as_secs_f64());
    figures::record(
        "remount_after_hang",
        json!({ "healthy_after_remount_s": secs(took), "blocked_checks": 1 }),
    );
    assert_eq!(media["failure_count"], 0);
    let (_, body) = monitor.get_json("/healthz/status");
    assert_eq!(
        body["blocked_checks"], 1,
        "the old check is still blocked: {body}"
    );
    let (_, metrics) = monitor.get("/metrics");
    assert!(
        metrics.contains("\nmount_monitor_blocked_checks 1\n"),
        "{metrics}"
    );

    // Released, the old check returns and is no longer counted.
    drop(old);
    let started = Instant::now();
    loop {
        let (_, body) = monitor.get_json("/healthz/status");
        if body["blocked_checks"] == 0 {
            break;
        }
        assert!(started.elapsed() < TWO_INTERVALS, "{body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(new);
}

/// Discovery mode, a hung mount that vanishes and comes back 20 times (each time leaving a check
/// blocked on the old one): blocked checks stay within `--max-blocked-checks`, and past it the
/// mount says so instead of starting another.
#[test]
#[ignore = "needs root and /dev/fuse: cargo xtask test, as root"]
fn blocked_checks_stay_within_the_limit_when_a_hung_mount_keeps_coming_back() {
    let test = "blocked_checks_stay_within_the_limit_when_a_hung_mount_keeps_coming_back";
    require_fuse(test);
    let _serial = serial();
    const LIMIT: usize = 5;
    let first = HangFs::mount();
    let path = first.path().to_path_buf();
    let label = path.display().to_string();
    let monitor = Monitor::start([
        "--check-interval",
        "500ms",
        "--timeout",
        "200ms",
        "--max-blocked-checks",
        &LIMIT.to_string(),
    ]);
    let mut mounts = vec![first];
    let mut most = 0;
    for cycle in 0..20 {
        let fs = mounts.last_mut().unwrap();
        fs.hang();
        // Discovery finds it, and its check blocks (or, past the limit, is not started).
        let mount = wait_for_discovered(&monitor, &label, Some("timeout"), Duration::from_secs(5));
        let (_, body) = monitor.get_json("/healthz/status");
        let blocked = body["blocked_checks"].as_u64().unwrap() as usize;
        most = most.max(blocked);
        assert!(blocked <= LIMIT, "cycle {cycle}: {blocked} blocked: {body}");
        if cycle > LIMIT {
            let error = mount["last_error"].as_str().unwrap_or("");
            assert!(error.contains("the limit"), "cycle {cycle}: {mount}");
        }
        // It vanishes (discovery drops it), and the daemon mounts it again.
        fs.unmount_lazily();
        wait_for_discovered(&monitor, &label, None, Duration::from_secs(5));
        mounts.push(HangFs::mount_at(&path));
    }
    // The last one answers, but its check is not started: the earlier ones are still blocked.
    let mount = wait_for_discovered(&monitor, &label, Some("timeout"), Duration::from_secs(5));
    assert!(
        mount["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("the limit"),
        "past the limit the mount reports it: {mount}"
    );
    let threads = tests::process::usage(monitor.pid()).threads;
    eprintln!("20 cycles: at most {most} checks blocked (limit {LIMIT}); {threads} threads");
    figures::record(
        "blocked_limit",
        json!({ "cycles": 20, "limit": LIMIT, "most_blocked": most, "threads": threads }),
    );
    assert_eq!(most, LIMIT, "the limit is reached and held");
    // Once the blocked checks return, the mount is checked again. (Only the mounts that hold a
    // check are still connected: the others' device numbers may belong to a newer mount.)
    let holding: Vec<&HangFs> = mounts[..20]
        .iter()
        .filter(|fs| fs.count("held statfs") > 0)
        .collect();
    assert_eq!(
        holding.len(),
        LIMIT,
        "a check was held by exactly {LIMIT} of them"
    );
    for fs in holding {
        fs.abort_connection();
    }
    wait_for_discovered(&monitor, &label, Some("ok"), Duration::from_secs(5));
    let (_, body) = monitor.get_json("/healthz/status");
    assert_eq!(body["blocked_checks"], 0, "{body}");
    drop(mounts);
}

fn mount_json_by_path<'a>(body: &'a Value, path: &str) -> &'a Value {
    body["mounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["path"] == path))
        .unwrap_or_else(|| panic!("no mount at {path} in {body}"))
}

/// Waits until discovery monitors a mount at `path` whose latest check failed with `reason`
/// (`ok`: passed), or, for `None`, until it monitors none there.
fn wait_for_discovered(
    monitor: &Monitor,
    path: &str,
    reason: Option<&str>,
    limit: Duration,
) -> Value {
    let started = Instant::now();
    loop {
        let (_, body) = monitor.get_json("/healthz/status");
        let found = body["mounts"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["path"] == path));
        match (found, reason) {
            (None, None) => return Value::Null,
            (Some(m), Some("ok")) if m["status"] == "healthy" => return m.clone(),
            (Some(m), Some(reason)) if m["reason"] == reason => return m.clone(),
            _ => {}
        }
        assert!(
            started.elapsed() < limit,
            "{path}: wanted {reason:?} within {limit:?}: {body}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// 50 hung mounts (one dead server with many exports) and 10 healthy ones: every healthy mount
/// is checked at once and then every interval, each hung one is seen within timeout + interval,
/// and an unmount among the healthy ones within two intervals. (Checks used to run 8 at a time,
/// each hung one holding its turn for the whole timeout: the healthy mounts, listed after the
/// hung ones, waited ⌈50/8⌉ × timeout for their first check.)
#[test]
#[ignore = "needs root and /dev/fuse: cargo xtask test, as root"]
fn fifty_hung_mounts_do_not_delay_the_others() {
    let test = "fifty_hung_mounts_do_not_delay_the_others";
    require_fuse(test);
    let _serial = serial();
    const INTERVAL: Duration = Duration::from_secs(2);
    const TIMEOUT: Duration = Duration::from_millis(1500);
    /// Scheduling on a loaded machine.
    const SLACK: Duration = Duration::from_secs(1);
    let mut hung: Vec<HangFs> = (0..50).map(|_| HangFs::mount()).collect();
    for fs in &mut hung {
        fs.hang();
    }
    let mut healthy: Vec<Tmpfs> = (0..10).map(|_| Tmpfs::new("size=1m")).collect();
    let mut args: Vec<String> = vec![
        "--check-interval".into(),
        "2s".into(),
        "--timeout".into(),
        "1500ms".into(),
    ];
    for (i, fs) in hung.iter().enumerate() {
        args.extend(["--mount".into(), format!("hung{i}={}", fs.path().display())]);
    }
    for (i, fs) in healthy.iter().enumerate() {
        args.extend(["--mount".into(), format!("ok{i}={}", fs.path().display())]);
    }
    let started = Instant::now();
    let monitor = Monitor::start(&args);
    let count = |body: &Value, prefix: &str, what: &dyn Fn(&Value) -> bool| {
        body["mounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
            .filter(|m| what(m))
            .count()
    };
    let (mut healthy_at, mut hung_at) = (None, None);
    while healthy_at.is_none() || hung_at.is_none() {
        let (_, body) = monitor.get_json("/healthz/status");
        if healthy_at.is_none() && count(&body, "ok", &|m| m["status"] == "healthy") == 10 {
            healthy_at = Some(started.elapsed());
        }
        if hung_at.is_none() && count(&body, "hung", &|m| m["reason"] == "timeout") == 50 {
            hung_at = Some(started.elapsed());
        }
        assert!(
            started.elapsed() < TIMEOUT + INTERVAL + SLACK,
            "after {:?}: healthy mounts checked at {healthy_at:?}, hung ones seen at {hung_at:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (healthy_at, hung_at) = (healthy_at.unwrap(), hung_at.unwrap());
    assert!(
        healthy_at < INTERVAL,
        "the healthy mounts waited {healthy_at:?} for their first check"
    );

    // Every healthy mount is checked every interval: over 8 s, at least 3 checks each.
    let checks = |metrics: &str, i: usize| -> f64 {
        let series = format!("mount_monitor_mount_checks_total{{mount=\"ok{i}\",path=\"");
        metrics
            .lines()
            .find(|l| l.starts_with(&series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no checks_total for ok{i}"))
    };
    let before = monitor.get("/metrics").1;
    std::thread::sleep(Duration::from_secs(8));
    let after = monitor.get("/metrics").1;
    let mut fewest = f64::MAX;
    for i in 0..10 {
        let done = checks(&after, i) - checks(&before, i);
        fewest = fewest.min(done);
        assert!(
            done >= 3.0,
            "ok{i} checked {done} times in 8 s beside 50 hung mounts"
        );
    }
    eprintln!(
        "10 healthy mounts checked after {:.2}s, all 50 hung mounts seen after {:.2}s; fewest checks of a healthy mount in 8 s: {fewest}",
        healthy_at.as_secs_f64(),
        hung_at.as_secs_f64()
    );

    // An unmount among the healthy ones is seen within two intervals.
    healthy[3].unmount();
    let gone = Instant::now();
    monitor.wait_for_mount(
        "ok3",
        Some("degraded"),
        Some("not_mounted"),
        2 * INTERVAL + SLACK,
    );
    let unmount_seen = gone.elapsed();
    eprintln!("unmount seen after {:.2}s", unmount_seen.as_secs_f64());
    figures::record(
        "many_hung",
        json!({
            "hung": 50,
            "healthy": 10,
            "interval_s": secs(INTERVAL),
            "timeout_s": secs(TIMEOUT),
            "healthy_first_checked_after_s": secs(healthy_at),
            "hung_all_seen_after_s": secs(hung_at),
            "fewest_checks_in_8s": fewest,
            "unmount_seen_after_s": secs(unmount_seen),
        }),
    );
    // Release the hung checks first, so that the monitor can exit.
    drop(hung);
    drop(monitor);
}

/// debrid-mount-monitor's usual path, a directory below a FUSE mount (`/mnt/zurg/__all__`) with
/// `checkType: directory`, in its `config.json` shape: checked on that mount, so that the mount
/// going away fails it, also once the directory exists again on the disk below, empty or not.
#[test]
#[ignore = "needs root and /dev/fuse: cargo xtask test, as root"]
fn a_path_below_a_fuse_mount_fails_when_the_mount_goes() {
    let test = "a_path_below_a_fuse_mount_fails_when_the_mount_goes";
    require_fuse(test);
    let _serial = serial();
    let mut fs = HangFs::mount();
    let below = fs.path().join("__all__");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        json!({
            "checkInterval": "1s",
            "readTimeout": "500ms",
            "failureThreshold": 1,
            "mounts": [{"name": "zurg", "path": below, "checkType": "directory"}],
        })
        .to_string(),
    )
    .unwrap();
    let monitor = Monitor::start(["--config", config.to_str().unwrap()]);
    let zurg = monitor.wait_for_mount("zurg", Some("healthy"), None, TWO_INTERVALS);
    assert_eq!(zurg["fs_type"], "fuse.hangfs", "{zurg}");

    // The mount goes: the path is missing, and says so.
    fs.unmount_lazily();
    let zurg = monitor.wait_for_mount("zurg", Some("unhealthy"), Some("missing"), TWO_INTERVALS);
    assert!(
        zurg["last_error"]
            .as_str()
            .unwrap()
            .ends_with("__all__: no such file or directory"),
        "{zurg}"
    );
    // The directory made again on the disk below (a script that mkdirs its paths), so that
    // DMM's `directory` check (a stat) would pass: empty, it is what a gone mount leaves.
    std::fs::create_dir(&below).unwrap();
    let zurg = monitor.wait_for_mount(
        "zurg",
        Some("unhealthy"),
        Some("empty_volume"),
        TWO_INTERVALS,
    );
    assert!(
        zurg["last_error"]
            .as_str()
            .unwrap()
            .contains("root filesystem"),
        "{zurg}"
    );
    // With an entry in it, the directory would pass on its own: not the mount it was on.
    std::fs::write(below.join("leftover"), "").unwrap();
    let zurg = monitor.wait_for_mount(
        "zurg",
        Some("unhealthy"),
        Some("mount_changed"),
        TWO_INTERVALS,
    );
    assert!(
        zurg["last_error"].as_str().unwrap().contains("fuse.hangfs"),
        "{zurg}"
    );
    std::fs::remove_dir_all(&below).unwrap();
}

/// Another filesystem mounted where a healthy one was, with no `fsType` configured: not the
/// same mount, whatever its type; the same one mounted again is.
#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn another_filesystem_where_a_healthy_one_was_is_mount_changed() {
    require_root("another_filesystem_where_a_healthy_one_was_is_mount_changed");
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("media");
    std::fs::create_dir(&path).unwrap();
    let mount = |source: &str| {
        nix::mount::mount(
            Some(source),
            &path,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=1m"),
        )
        .unwrap();
    };
    let unmount = || nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH).unwrap();
    mount("media-remote");
    let monitor = watch_every_second("media", &path);
    monitor.wait_for_mount("media", Some("healthy"), None, TWO_INTERVALS);
    unmount();
    mount("other-remote");
    let media = monitor.wait_for_mount(
        "media",
        Some("degraded"),
        Some("mount_changed"),
        TWO_INTERVALS,
    );
    let error = media["last_error"].as_str().unwrap();
    assert!(!error.contains("other-remote"), "no source shown: {error}");
    // The provider mounts its own remote again: the same mount.
    unmount();
    mount("media-remote");
    monitor.wait_for_mount("media", Some("healthy"), None, TWO_INTERVALS);
    unmount();
}
