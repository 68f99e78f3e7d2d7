//! The service end to end: the real binary, real tmpfs mounts, a real loopback port.

use std::time::Duration;

use nix::mount::MsFlags;
use tests::{Monitor, Tmpfs, mount_json, require_root, run};

/// Two check intervals plus jitter and scheduling slack.
const TWO_INTERVALS: Duration = Duration::from_millis(2600);

/// The monitor on `mount` (`NAME=PATH`), checking every second with a 500 ms timeout.
fn watch(mount: &str, extra: &[&str]) -> Monitor {
    Monitor::watch(&[mount], extra)
}

fn write_config(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn unmount_makes_it_unready_and_remount_recovers() {
    require_root("unmount_makes_it_unready_and_remount_recovers");
    let mut fs = Tmpfs::new("size=1m");
    let mount = format!("data={}", fs.path().display());
    let monitor = watch(&mount, &[]);
    monitor.wait_for("/healthz/ready", 200, Duration::from_secs(5));
    assert_eq!(monitor.get("/readyz"), (200, "ok".to_owned()));
    let (_, body) = monitor.get_json("/healthz/status");
    let data = mount_json(&body, "data");
    assert_eq!(data["status"], "healthy");
    assert_eq!(data["fs_type"], "tmpfs");
    assert_eq!(data["size_bytes"], 1024 * 1024);

    // The path stays behind as an empty directory, as a dead FUSE mount leaves it.
    fs.unmount();
    monitor.wait_for("/healthz/ready", 503, TWO_INTERVALS);
    let (status, body) = monitor.get_json("/healthz/status");
    assert_eq!(status, 503);
    assert_eq!(body["status"], "unhealthy");
    let data = mount_json(&body, "data");
    assert_eq!(data["reason"], "not_mounted");
    assert_eq!(data["status"], "degraded");
    assert!(
        data["last_error"]
            .as_str()
            .unwrap()
            .contains("nothing is mounted")
    );
    let (_, verbose) = monitor.get("/readyz?verbose");
    assert!(verbose.contains("[-]data failed: not_mounted"), "{verbose}");
    // Degraded is still alive.
    assert_eq!(monitor.get("/healthz/live").0, 200);
    assert_eq!(monitor.get("/livez").0, 200);

    fs.mount("size=1m");
    monitor.wait_for("/healthz/ready", 200, TWO_INTERVALS);
    let (_, body) = monitor.get_json("/healthz/status");
    assert_eq!(mount_json(&body, "data")["failure_count"], 0);
    assert!(
        monitor.log().contains("\"new_state\":\"degraded\""),
        "the transition is logged: {}",
        monitor.log()
    );
}

#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn threshold_failures_make_it_unhealthy_and_not_live() {
    require_root("threshold_failures_make_it_unhealthy_and_not_live");
    let mut fs = Tmpfs::new("size=1m");
    let mount = format!("data={}", fs.path().display());
    let monitor = watch(&mount, &["--failure-threshold", "2"]);
    monitor.wait_for("/healthz/live", 200, Duration::from_secs(5));
    fs.unmount();
    monitor.wait_for("/healthz/live", 503, TWO_INTERVALS * 2);
    let (_, body) = monitor.get_json("/healthz/live");
    let data = mount_json(&body, "data");
    assert_eq!(data["status"], "unhealthy");
    assert_eq!(data["failure_count"], 2);
    // The process itself is fine: Kubernetes-style liveness stays up.
    assert_eq!(monitor.get("/livez"), (200, "ok".to_owned()));
}

#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn read_only_space_and_inode_checks() {
    require_root("read_only_space_and_inode_checks");
    let ro = Tmpfs::new("size=1m");
    let space = Tmpfs::new("size=1m");
    let inodes = Tmpfs::new("size=1m,nr_inodes=32");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "mount-monitor.toml",
        &format!(
            r#"
checkInterval = "1s"
readTimeout = "500ms"
failureThreshold = 1

[[mounts]]
name = "ro"
path = "{}"
checkType = "none"
expect = "rw"

[[mounts]]
name = "space"
path = "{}"
checkType = "none"
minFree = "512KiB"

[[mounts]]
name = "inodes"
path = "{}"
checkType = "none"
minFreeInodes = 16
"#,
            ro.path().display(),
            space.path().display(),
            inodes.path().display()
        ),
    );
    let monitor = Monitor::start(["--config", config.to_str().unwrap()]);
    monitor.wait_for("/healthz/ready", 200, Duration::from_secs(5));

    ro.remount(MsFlags::MS_RDONLY);
    std::fs::write(space.path().join("fill"), vec![0u8; 700 * 1024]).unwrap();
    for i in 0..20 {
        std::fs::write(inodes.path().join(format!("f{i}")), b"x").unwrap();
    }
    let reasons = || {
        let (_, body) = monitor.get_json("/healthz/status");
        ["ro", "space", "inodes"].map(|name| {
            mount_json(&body, name)["reason"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
    };
    let started = std::time::Instant::now();
    while reasons() != ["read_only", "low_space", "low_inodes"] {
        assert!(started.elapsed() < TWO_INTERVALS, "got {:?}", reasons());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, body) = monitor.get_json("/healthz/status");
    assert_eq!(mount_json(&body, "ro")["read_only"], true);
    assert_eq!(monitor.get("/healthz/live").0, 503);

    // Recovery.
    ro.remount(MsFlags::empty());
    std::fs::remove_file(space.path().join("fill")).unwrap();
    for i in 0..20 {
        std::fs::remove_file(inodes.path().join(format!("f{i}"))).unwrap();
    }
    monitor.wait_for("/healthz/ready", 200, TWO_INTERVALS);
    assert_eq!(monitor.get("/readyz/space"), (200, "ok".to_owned()));
}

#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn debrid_example_config_serves_the_same_shape() {
    require_root("debrid_example_config_serves_the_same_shape");
    let movies = Tmpfs::new("size=1m");
    let tv = Tmpfs::new("size=1m");
    std::fs::write(movies.path().join(".health-check"), "ok").unwrap();
    let example = std::fs::read_to_string(
        tests::workspace_root().join("tests/fixtures/debrid-mount-monitor.config.example.json"),
    )
    .unwrap();
    // Only the paths change; everything else loads as shipped.
    let text = example
        .replace("/mnt/movies", movies.path().to_str().unwrap())
        .replace("/mnt/tv", tv.path().to_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "config.json", &text);
    // Picked up from the working directory, as debrid-mount-monitor does.
    let monitor = Monitor::start_in(["--check-interval", "1s", "--timeout", "500ms"], dir.path());
    let body = monitor.wait_for("/healthz/ready", 200, Duration::from_secs(5));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "healthy");
    assert!(json["timestamp"].is_string());
    for name in ["movies", "tv"] {
        let m = mount_json(&json, name);
        for key in ["name", "path", "status", "last_check", "failure_count"] {
            assert!(m.get(key).is_some(), "{name}.{key} in {m}");
        }
        assert!(m.get("last_error").is_none(), "omitted when empty: {m}");
    }
    assert_eq!(
        monitor.get_json("/version").1["version"],
        run(["--version"])
            .1
            .trim()
            .trim_start_matches("mount-monitor ")
    );
    assert_eq!(monitor.get("/version").0, 200);
    assert_eq!(
        tests::http(monitor.addr, "POST", "/healthz/ready"),
        (405, "method not allowed".to_owned())
    );

    // The canary goes away: canary_failed, while the directory check of tv stays fine.
    std::fs::remove_file(movies.path().join(".health-check")).unwrap();
    monitor.wait_for("/healthz/ready", 503, TWO_INTERVALS);
    let (_, json) = monitor.get_json("/healthz/status");
    assert_eq!(mount_json(&json, "movies")["reason"], "canary_failed");
    assert_eq!(mount_json(&json, "tv")["status"], "healthy");
    drop(config);
}

#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn check_mode_exit_codes() {
    require_root("check_mode_exit_codes");
    let mut fs = Tmpfs::new("size=1m");
    let mount = format!("data={}", fs.path().display());
    let (code, out, _) = run(["check", "--mount", &mount]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("data") && out.contains("healthy") && out.contains("tmpfs"),
        "{out}"
    );

    let (code, out, _) = run(["check", "--format", "json", "--mount", &mount]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(mount_json(&json, "data")["status"], "healthy");

    fs.unmount();
    let (code, out, _) = run(["check", "--mount", &mount]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not_mounted"), "{out}");
    // debrid-mount-monitor's flag for the same.
    let (code, _, _) = run(["--init-container-mode", "--mount", &mount]);
    assert_eq!(code, 1);

    let (code, _, err) = run(["check", "--mount", &mount, "--check-interval", "soon"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--check-interval") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn healthcheck_follows_readiness() {
    require_root("healthcheck_follows_readiness");
    let mut fs = Tmpfs::new("size=1m");
    let mount = format!("data={}", fs.path().display());
    let monitor = watch(&mount, &[]);
    monitor.wait_for("/readyz", 200, Duration::from_secs(5));
    let url = format!("http://{}/readyz", monitor.addr);
    assert_eq!(run(["healthcheck", "--url", &url]).0, 0);
    fs.unmount();
    monitor.wait_for("/readyz", 503, TWO_INTERVALS);
    let (code, _, err) = run(["healthcheck", "--url", &url]);
    assert_eq!(code, 1);
    assert!(err.contains("503"), "{err}");

    let (code, elapsed) = monitor.terminate(Duration::from_secs(10));
    assert_eq!(code, Some(0), "SIGTERM exits 0 (after {elapsed:?})");
    // Nothing listens any more.
    assert_eq!(run(["healthcheck", "--url", &url]).0, 1);
}

/// The exit-code table of docs/configuration.md, every row and column: serving exits 1 for a
/// config file's error and 2 for the command line's or the environment's (debrid-mount-monitor and
/// its flag parser), init-container mode 1 for everything, `check` 2 for any configuration error
/// and 1 for an unhealthy mount. Each error is one line naming what was wrong.
#[test]
fn exit_codes_follow_the_table() {
    // No root needed: nothing is mounted.
    let dir = tempfile::tempdir().unwrap();
    let bad_json = write_config(dir.path(), "bad.json", "{\"checkInterval\": ");
    let bad_value = write_config(
        dir.path(),
        "value.json",
        "{\"logLevel\": \"loud\", \"mounts\": [{\"path\": \"/\"}]}",
    );
    let unknown = write_config(
        dir.path(),
        "unknown.json",
        "{\"mounts\":[{\"path\":\"/x\",\"bogus\":1}]}",
    );
    let no_mounts = write_config(dir.path(), "none.json", "{\"httpPort\": 9000}");
    let null_mounts = write_config(dir.path(), "null.json", "{\"mounts\": null}");
    let empty_mounts = write_config(dir.path(), "empty.json", "{\"mounts\": []}");
    let config = |path: &std::path::Path| vec!["--config".to_owned(), path.display().to_string()];
    let file_errors: Vec<(Vec<String>, &str)> = vec![
        (config(&bad_json), "bad.json"),
        (config(&bad_value), "logLevel"),
        (
            [config(&unknown), vec!["--strict-config".into()]].concat(),
            "bogus",
        ),
        (config(&no_mounts), "at least one mount is required"),
        (config(&null_mounts), "at least one mount is required"),
        (config(&empty_mounts), "at least one mount is required"),
        (
            config(std::path::Path::new("/nonexistent/c.json")),
            "/nonexistent/c.json",
        ),
    ];
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    type Env<'a> = &'a [(&'a str, &'a str)];
    let command_line_errors: Vec<(Vec<String>, Env, &str)> = vec![
        (args(&["--listen", "nowhere"]), &[], "--listen"),
        (
            args(&["--failure-threshold", "0"]),
            &[],
            "--failure-threshold",
        ),
        (args(&["--timeout", "fast"]), &[], "--timeout"),
        (args(&["--mount", "/x,min-free=lots"]), &[], "--mount"),
        (vec![], &[("MOUNT_MONITOR_HTTP_PORT", "x")], "--http-port"),
        (
            vec![],
            &[("MOUNT_MONITOR_CHECK_INTERVAL", "soon")],
            "--check-interval",
        ),
    ];
    let workdir = tests::empty_workdir();
    let expect =
        |mode: &[&str], extra: &[String], env: &[(&str, &str)], code: i32, needle: &str| {
            let all: Vec<String> = args(mode)
                .into_iter()
                .chain(extra.iter().cloned())
                .collect();
            let (got, _, err) = tests::run_in(workdir.path(), &all, env);
            assert_eq!(got, code, "{all:?} {env:?}: {err}");
            assert!(err.contains(needle), "{all:?} {env:?}: {err}");
            assert_eq!(err.trim().lines().count(), 1, "{all:?}: {err}");
            assert!(!err.contains("panicked"), "{err}");
        };
    // Serving with an error never gets to listen: no --listen needed.
    for (extra, needle) in &file_errors {
        expect(&[], extra, &[], 1, needle);
        expect(&["--init-container-mode"], extra, &[], 1, needle);
        expect(&["check"], extra, &[], 2, needle);
    }
    for (extra, env, needle) in &command_line_errors {
        expect(&[], extra, env, 2, needle);
        expect(&["--init-container-mode"], extra, env, 1, needle);
        expect(&["check"], extra, env, 2, needle);
    }
    // A mount unhealthy (its path is missing): 1 in both one-round modes.
    let missing = ["--mount", "gone=/nonexistent/mount"];
    let (code, out, err) = tests::run_in(
        workdir.path(),
        [&["--init-container-mode"][..], &missing].concat(),
        &[],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("mount check failed"), "{out}{err}");
    let (code, out, err) = tests::run_in(workdir.path(), [&["check"][..], &missing].concat(), &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("gone"), "{out}");
}

/// `--mount data=PATH`, checked every 30 s: anything seen sooner came from the mount table.
fn watch_every_30s(fs: &Tmpfs) -> Monitor {
    let mount = format!("data={}", fs.path().display());
    Monitor::start(every_30s(&mount))
}

/// `--mount MOUNT`, checked every 30 s (so that only the mount table's changes can explain a
/// verdict within seconds), failing after two failed checks.
fn every_30s(mount: &str) -> [&str; 8] {
    [
        "--mount",
        mount,
        "--check-interval",
        "30s",
        "--timeout",
        "500ms",
        "--failure-threshold",
        "2",
    ]
}

#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn an_unmount_and_a_remount_are_seen_at_once_not_at_the_next_interval() {
    require_root("an_unmount_and_a_remount_are_seen_at_once_not_at_the_next_interval");
    let mut fs = Tmpfs::new("size=1m");
    let monitor = watch_every_30s(&fs);
    monitor.wait_for("/readyz", 200, Duration::from_secs(5));
    // The next check is due in about 30 s; the mount table's change brings it forward.
    fs.unmount();
    monitor.wait_for("/readyz", 503, Duration::from_secs(5));
    let data = monitor.wait_for_mount("data", Some("degraded"), Some("not_mounted"), TWO_INTERVALS);
    assert_eq!(data["failure_count"], 1);
    fs.mount("size=1m");
    monitor.wait_for("/readyz", 200, Duration::from_secs(5));
    let (_, body) = monitor.get_json("/healthz/status");
    assert_eq!(mount_json(&body, "data")["failure_count"], 0);
}

#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn mounts_coming_and_going_elsewhere_never_hasten_the_failure_threshold() {
    require_root("mounts_coming_and_going_elsewhere_never_hasten_the_failure_threshold");
    let mut fs = Tmpfs::new("size=1m");
    let monitor = watch_every_30s(&fs);
    monitor.wait_for("/readyz", 200, Duration::from_secs(5));
    fs.unmount();
    monitor.wait_for_mount(
        "data",
        Some("degraded"),
        Some("not_mounted"),
        Duration::from_secs(5),
    );
    // Twenty changes of the mount table, a check brought forward after each: the mount is
    // still failing, and those checks do not count towards failureThreshold (2), which only
    // the interval's checks reach.
    let mut other = Tmpfs::new("size=1m");
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(250));
        other.unmount();
        std::thread::sleep(Duration::from_millis(250));
        other.mount("size=1m");
    }
    let (_, body) = monitor.get_json("/healthz/status");
    let data = mount_json(&body, "data");
    assert_eq!(data["failure_count"], 1, "{body}");
    assert_eq!(data["status"], "degraded");
    assert_eq!(monitor.get("/healthz/live").0, 200);
}

/// A container's volume, as kubelet gives it with `mountPropagation: HostToContainer`: the
/// node's volume directory is a shared mount, the container's namespace a copy of the node's
/// whose mounts are its slaves, the volume a bind in it. The node mounting and unmounting below
/// the volume (an rclone or NFS mount coming and going) changes the container's mount table by
/// propagation alone, and the monitor in the container sees each change at once.
#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn a_mount_propagated_into_a_container_volume_is_seen_going_and_coming_at_once() {
    require_root("a_mount_propagated_into_a_container_volume_is_seen_going_and_coming_at_once");
    let node = tests::namespace::MountNamespace::unshare();
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().display();
    node.sh(&format!(
        "mkdir -p {base}/node {base}/ctr && mount -t tmpfs -o size=1m volumes {base}/node \
         && mount --make-shared {base}/node && mkdir {base}/node/media \
         && mount -t tmpfs -o size=1m rclone {base}/node/media"
    ));
    let container = node.unshare_within();
    container.sh(&format!("mount --rbind {base}/node {base}/ctr"));
    assert!(container.is_mount_point(&dir.path().join("ctr/media")));
    let media = format!("media={base}/ctr/media");
    let workdir = tests::empty_workdir();
    let monitor = Monitor::start_with(every_30s(&media), workdir.path(), |command| {
        container.enter(command)
    });
    monitor.wait_for("/readyz", 200, Duration::from_secs(5));
    // On the node, not in the container: only propagation tells the container.
    node.sh(&format!("umount {base}/node/media"));
    assert!(!container.is_mount_point(&dir.path().join("ctr/media")));
    monitor.wait_for("/readyz", 503, Duration::from_secs(5));
    let (_, body) = monitor.get_json("/healthz/status");
    assert_eq!(
        mount_json(&body, "media")["reason"],
        "not_mounted",
        "{body}"
    );
    node.sh(&format!(
        "mount -t tmpfs -o size=1m rclone {base}/node/media"
    ));
    monitor.wait_for("/readyz", 200, Duration::from_secs(5));
}

/// Bodies large enough to be sent from memory files (`sendfile`, 16 KiB and more) reach a
/// client whole: `/healthz/status` parses and names every mount, in order, and `/metrics` has
/// each mount's series, the same bytes on the first request and on the next (the kept body).
#[test]
fn large_bodies_reach_the_client_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mounts: Vec<String> = (0..200)
        .map(|i| {
            let path = dir.path().join(format!("m{i:03}"));
            std::fs::create_dir(&path).unwrap();
            format!("m{i:03}={}", path.display())
        })
        .collect();
    let args: Vec<&str> = mounts
        .iter()
        .flat_map(|mount| ["--mount", mount.as_str()])
        .chain(["--check-interval", "1h", "--timeout", "500ms"])
        .collect();
    let monitor = Monitor::start(args);
    monitor.wait_for("/livez", 200, Duration::from_secs(5));
    // Every mount checked once: the bodies hold their verdicts.
    let started = std::time::Instant::now();
    let status = loop {
        let (_, status) = monitor.get("/healthz/status");
        if !status.contains(r#""status":"unknown""#) {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{status}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.len() >= 16 << 10, "{} bytes", status.len());
    let json: serde_json::Value = serde_json::from_str(&status).expect("the body parses");
    let names: Vec<&str> = json["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    let wanted: Vec<String> = (0..200).map(|i| format!("m{i:03}")).collect();
    assert_eq!(names, wanted);
    let (_, metrics) = monitor.get("/metrics");
    assert!(metrics.len() >= 16 << 10, "{} bytes", metrics.len());
    for name in &wanted {
        assert!(
            metrics.contains(&format!(r#"mount="{name}""#)),
            "{name} missing"
        );
    }
    assert_eq!(monitor.get("/metrics").1, metrics);
}
