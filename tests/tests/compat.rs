//! A drop-in for debrid-mount-monitor (`../shared/COMPAT.md`): its own configs, in
//! `../shared/compat` beside the checkout, run here unchanged but for their paths, which point at
//! tmpfs mounts, in serve and in init-container mode; then one test per thing that used to break
//! a working setup. Every test mounts tmpfs, so needs root.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tests::{Monitor, Stream, mount_json};

/// Detection takes one check interval (1 s, ±10%) plus scheduling slack.
const DETECT: Duration = Duration::from_secs(4);
/// The checks the serve tests run: debrid-mount-monitor's 10–30 s would make them slow.
const FAST: [&str; 4] = ["--check-interval", "1s", "--timeout", "500ms"];

fn needs_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test mounts tmpfs, so it must run as root: `cargo xtask test`, or `sudo -E cargo test -p tests --test compat -- --include-ignored`"
    );
}

/// A fixture from `../shared/compat` (relative to the workspace root, as CI lays it out).
fn fixture(name: &str) -> String {
    let path = tests::workspace_root().join("../shared/compat").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; debrid-mount-monitor's configs must be in ../shared/compat beside the checkout",
            path.display()
        )
    })
}

/// A tmpfs at a chosen path (created if needed), with a `.health-check` canary; lazily
/// unmounted on drop.
struct Mounted {
    path: PathBuf,
    mounted: bool,
}

impl Mounted {
    fn at(path: PathBuf, options: &str) -> Mounted {
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut m = Mounted {
            path,
            mounted: false,
        };
        m.mount(options);
        m
    }

    fn mount(&mut self, options: &str) {
        use nix::mount::{MsFlags, mount};
        mount(
            Some("tmpfs"),
            &self.path,
            Some("tmpfs"),
            MsFlags::empty(),
            Some(options),
        )
        .unwrap_or_else(|e| panic!("mount tmpfs on {}: {e}", self.path.display()));
        self.mounted = true;
        std::fs::write(self.path.join(".health-check"), "ok").unwrap();
    }

    /// Leaves the empty directory behind, as a dead FUSE mount does.
    fn unmount(&mut self) {
        nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH)
            .unwrap_or_else(|e| panic!("umount {}: {e}", self.path.display()));
        self.mounted = false;
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.mounted {
            let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// One debrid-mount-monitor config ready to run: `config.json` in a fresh working directory,
/// each absolute mount path replaced by a tmpfs under it, each relative one (`./data/local`)
/// kept as written and made a tmpfs below the working directory.
struct Setup {
    dir: tempfile::TempDir,
    /// (name, path as in the JSON, its tmpfs), in the config's order.
    mounts: Vec<(String, String, Mounted)>,
}

impl Setup {
    fn new(fixture_name: &str, edit: impl Fn(String) -> String) -> Setup {
        let text = edit(fixture(fixture_name));
        let config: Value = serde_json::from_str(&text).unwrap();
        let dir = tempfile::Builder::new()
            .prefix("mm-compat-")
            .tempdir()
            .unwrap();
        let mut rewritten = text.clone();
        let mut mounts = Vec::new();
        for m in config["mounts"].as_array().expect("the fixture has mounts") {
            let name = m["name"].as_str().unwrap_or("").to_owned();
            let written = m["path"].as_str().unwrap().to_owned();
            let (shown, real) = if written.starts_with('/') {
                let real = dir.path().join(written.trim_start_matches('/'));
                let quoted = format!("\"{written}\"");
                assert!(rewritten.contains(&quoted), "{written} in {fixture_name}");
                rewritten = rewritten.replace(&quoted, &format!("\"{}\"", real.display()));
                (real.display().to_string(), real)
            } else {
                (written.clone(), dir.path().join(&written))
            };
            mounts.push((name, shown, Mounted::at(real, "size=1m")));
        }
        std::fs::write(dir.path().join("config.json"), rewritten).unwrap();
        Setup { dir, mounts }
    }

    fn cwd(&self) -> &Path {
        self.dir.path()
    }
}

/// Runs the binary in `cwd` to completion: (exit code, stdout, stderr).
fn run_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(tests::binary())
        .args(args)
        .current_dir(cwd)
        .envs(env.iter().copied())
        .env_remove("MOUNT_MONITOR_LISTEN")
        .stdin(Stdio::null())
        .output()
        .expect("run mount-monitor");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The JSON log lines of `text` whose `msg` is `msg`; every line must be JSON.
fn lines(text: &str, msg: &str) -> Vec<Value> {
    text.lines()
        .map(|line| {
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"))
        })
        .filter(|json| json["msg"] == msg)
        .collect()
}

fn wait_for_log(monitor: &Monitor, what: &str, found: impl Fn(&Monitor) -> bool) {
    let started = std::time::Instant::now();
    while !found(monitor) {
        assert!(
            started.elapsed() < DETECT,
            "no {what} within {DETECT:?}; log:\n{}",
            monitor.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Serves the config and holds it to COMPAT.md: status codes, the JSON fields, the logs, and
/// that unmounting the mount under each path is caught (and its return noticed).
fn serves(setup: &mut Setup) -> Monitor {
    let monitor = Monitor::start_in(FAST, setup.cwd());
    let body = monitor.wait_for("/healthz/ready", 200, DETECT);
    assert!(
        body.ends_with("}\n"),
        "the body ends with a newline: {body:?}"
    );
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "healthy");
    assert!(json["timestamp"].as_str().unwrap().ends_with('Z'), "{json}");
    assert_eq!(json["mounts"].as_array().unwrap().len(), setup.mounts.len());
    for (name, path, _) in &setup.mounts {
        let m = mount_json(&json, name);
        assert_eq!(m["path"], path.as_str(), "the path as configured: {m}");
        assert_eq!(m["status"], "healthy", "{m}");
        assert_eq!(m["failure_count"], 0, "{m}");
        assert!(m["last_check"].as_str().unwrap().ends_with('Z'), "{m}");
        assert!(m.get("last_error").is_none(), "omitted when empty: {m}");
    }
    for endpoint in ["/healthz/live", "/healthz/status"] {
        let (status, json) = monitor.get_json(endpoint);
        assert_eq!((status, &json["status"]), (200, &Value::from("healthy")));
    }
    let (status, version) = monitor.get("/version");
    assert_eq!(status, 200);
    assert!(version.ends_with("}\n"), "{version:?}");
    assert!(serde_json::from_str::<Value>(&version).unwrap()["version"].is_string());
    assert_eq!(
        tests::http(monitor.addr, "POST", "/healthz/ready"),
        (405, "method not allowed".to_owned())
    );

    for i in 0..setup.mounts.len() {
        let (name, path) = (setup.mounts[i].0.clone(), setup.mounts[i].1.clone());
        setup.mounts[i].2.unmount();
        monitor.wait_for("/healthz/ready", 503, DETECT);
        let (status, json) = monitor.get_json("/healthz/status");
        assert_eq!((status, &json["status"]), (503, &Value::from("unhealthy")));
        let m = mount_json(&json, &name);
        // Every fixture's threshold is 3 or more: one failure is degraded, and still alive.
        assert_eq!(m["status"], "degraded", "unmounting {path} is caught: {m}");
        assert!(m["failure_count"].as_u64() >= Some(1), "{m}");
        assert!(m["last_error"].is_string(), "{m}");
        assert_eq!(monitor.get("/healthz/live").0, 200, "degraded is alive");
        wait_for_log(&monitor, "health check failed on stderr", |monitor| {
            lines(&monitor.log_of(Stream::Stderr), "health check failed")
                .iter()
                .any(|l| l["path"] == path.as_str() && l["level"] == "WARN")
        });
        let changed = lines(&monitor.log_of(Stream::Stdout), "mount state changed");
        assert!(
            changed.iter().any(|l| l["path"] == path.as_str()
                && l["previous_state"] == "healthy"
                && l["new_state"] == "degraded"
                && l["trigger"] == "check_failed"
                && l["level"] == "INFO"),
            "{changed:?}"
        );
        setup.mounts[i].2.mount("size=1m");
        monitor.wait_for("/healthz/ready", 200, DETECT);
    }
    monitor
}

/// `--init-container-mode` on the config: exit 0 and a `mount check passed` line per mount;
/// with the first mount gone, exit 1 and `mount check failed` for it.
fn checks_once(setup: &mut Setup) {
    let (code, out, err) = run_in(setup.cwd(), &["--init-container-mode"], &[]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let passed = lines(&out, "mount check passed");
    for (name, path, _) in &setup.mounts {
        assert!(
            passed
                .iter()
                .any(|l| l["name"] == name.as_str() && l["path"] == path.as_str()),
            "{name} {path}: {out}"
        );
    }
    let verdict = lines(&out, "all mount checks passed");
    assert_eq!(verdict.len(), 1, "{out}");
    assert_eq!(verdict[0]["count"], setup.mounts.len());
    assert_eq!(verdict[0]["level"], "INFO");

    let path = setup.mounts[0].1.clone();
    setup.mounts[0].2.unmount();
    let (code, out, err) = run_in(setup.cwd(), &["--init-container-mode"], &[]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    let failed = lines(&err, "mount check failed");
    assert!(
        failed
            .iter()
            .any(|l| l["path"] == path.as_str() && l["level"] == "ERROR" && l["error"].is_string()),
        "{err}"
    );
    assert_eq!(
        lines(&err, "one or more mount checks failed").len(),
        1,
        "{err}"
    );
    setup.mounts[0].2.mount("size=1m");
}

/// The two configs with the watchdog on are refused by `serve` until the watchdog lands; their
/// serve tests run them with it off, everything else as shipped.
fn watchdog_off(text: String) -> String {
    assert!(text.contains("\"enabled\": true"), "{text}");
    text.replace("\"enabled\": true", "\"enabled\": false")
}

#[test]
#[ignore = "needs root: cargo xtask test"]
fn shipped_example_serves() {
    needs_root();
    serves(&mut Setup::new(
        "debrid-mount-monitor.config.example.json",
        |t| t,
    ));
}

#[test]
#[ignore = "needs root: cargo xtask test"]
fn shipped_example_in_init_container_mode() {
    needs_root();
    checks_once(&mut Setup::new(
        "debrid-mount-monitor.config.example.json",
        |t| t,
    ));
}

#[test]
#[ignore = "needs root: cargo xtask test"]
fn init_container_example_serves() {
    needs_root();
    serves(&mut Setup::new("dmm-init-container.config.json", |t| t));
}

#[test]
#[ignore = "needs root: cargo xtask test"]
fn init_container_example_in_init_container_mode() {
    needs_root();
    checks_once(&mut Setup::new("dmm-init-container.config.json", |t| t));
}

#[test]
#[ignore = "needs root: cargo xtask test"]
fn readme_example_serves_with_the_watchdog_off() {
    needs_root();
    let mut setup = Setup::new("dmm-readme.config.json", watchdog_off);
    assert_eq!(setup.mounts[2].1, "./data/local", "kept relative");
    serves(&mut setup);
}

#[test]
#[ignore = "needs root: cargo xtask test"]
fn readme_example_in_init_container_mode() {
    needs_root();
    // Unchanged: init-container mode does not look at the watchdog, as there.
    let mut setup = Setup::new("dmm-readme.config.json", |t| t);
    checks_once(&mut setup);
    // The relative path, gone.
    setup.mounts[2].2.unmount();
    let (code, _, err) = run_in(setup.cwd(), &["--init-container-mode"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        lines(&err, "mount check failed")
            .iter()
            .any(|l| l["path"] == "./data/local"),
        "{err}"
    );
}

#[test]
#[ignore = "needs root: cargo xtask test"]
fn kind_example_serves_with_the_watchdog_off() {
    needs_root();
    let mut setup = Setup::new("dmm-kind.config.json", watchdog_off);
    let monitor = serves(&mut setup);
    // `logLevel: debug`: passed checks are logged too, on stdout.
    let passed = lines(&monitor.log_of(Stream::Stdout), "health check passed");
    assert!(
        passed.iter().any(|l| l["level"] == "DEBUG"),
        "{}",
        monitor.log()
    );
}

#[test]
#[ignore = "needs root: cargo xtask test"]
fn kind_example_in_init_container_mode() {
    needs_root();
    checks_once(&mut Setup::new("dmm-kind.config.json", |t| t));
}
