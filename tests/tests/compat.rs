//! A drop-in for debrid-mount-monitor: its own configs, copied verbatim into `tests/fixtures`
//! (see its README for where each comes from), run here unchanged but for their paths, which point at
//! tmpfs mounts, in serve and in init-container mode; then one test per thing that used to break
//! a working setup. Every test mounts tmpfs, so needs root.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tests::{Monitor, Stream, mount_json, run_in};

/// Detection takes one check interval (1 s, ±10%) plus scheduling slack.
const DETECT: Duration = Duration::from_secs(4);
fn needs_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test mounts tmpfs, so it must run as root: `cargo xtask test`, or `sudo -E cargo test -p tests --test compat -- --include-ignored`"
    );
}

/// One of debrid-mount-monitor's configs in `tests/fixtures`.
fn fixture(name: &str) -> String {
    let path = tests::workspace_root().join("tests/fixtures").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
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

/// Serves the config and holds it to debrid-mount-monitor's behaviour: status codes, the JSON
/// fields, the logs, and that unmounting the mount under each path is caught (and its return
/// noticed).
fn serves(setup: &mut Setup) -> Monitor {
    let monitor = Monitor::start_in(tests::EVERY_SECOND, setup.cwd());
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
        // Logged together, but the two streams are read apart.
        wait_for_log(&monitor, "mount state changed on stdout", |monitor| {
            lines(&monitor.log_of(Stream::Stdout), "mount state changed")
                .iter()
                .any(|l| {
                    l["path"] == path.as_str()
                        && l["previous_state"] == "healthy"
                        && l["new_state"] == "degraded"
                        && l["trigger"] == "check_failed"
                        && l["level"] == "INFO"
                })
        });
        setup.mounts[i].2.mount("size=1m");
        monitor.wait_for("/healthz/ready", 200, DETECT);
    }
    monitor
}

/// `--init-container-mode` on the config: exit 0 and a `mount check passed` line per mount;
/// with the first mount gone, exit 1 and `mount check failed` for it.
fn checks_once(setup: &mut Setup) {
    let (code, out, err) = run_in(setup.cwd(), ["--init-container-mode"], &[]);
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
    let (code, out, err) = run_in(setup.cwd(), ["--init-container-mode"], &[]);
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

#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn shipped_example_serves() {
    needs_root();
    serves(&mut Setup::new(
        "debrid-mount-monitor.config.example.json",
        |t| t,
    ));
}

#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn shipped_example_in_init_container_mode() {
    needs_root();
    checks_once(&mut Setup::new(
        "debrid-mount-monitor.config.example.json",
        |t| t,
    ));
}

#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn init_container_example_serves() {
    needs_root();
    serves(&mut Setup::new("dmm-init-container.config.json", |t| t));
}

#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn init_container_example_in_init_container_mode() {
    needs_root();
    checks_once(&mut Setup::new("dmm-init-container.config.json", |t| t));
}

#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn readme_example_serves() {
    needs_root();
    // Unchanged, the watchdog on: outside Kubernetes it says so and serves.
    let mut setup = Setup::new("dmm-readme.config.json", |t| t);
    assert_eq!(setup.mounts[2].1, "./data/local", "kept relative");
    serves(&mut setup);
}

#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn readme_example_in_init_container_mode() {
    needs_root();
    // Unchanged: init-container mode does not look at the watchdog, as there.
    let mut setup = Setup::new("dmm-readme.config.json", |t| t);
    checks_once(&mut setup);
    // The relative path, gone.
    setup.mounts[2].2.unmount();
    let (code, _, err) = run_in(setup.cwd(), ["--init-container-mode"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        lines(&err, "mount check failed")
            .iter()
            .any(|l| l["path"] == "./data/local"),
        "{err}"
    );
}

#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn kind_example_serves() {
    needs_root();
    let mut setup = Setup::new("dmm-kind.config.json", |t| t);
    let monitor = serves(&mut setup);
    let (_, status) = monitor.get_json("/healthz/status");
    assert_eq!(status["watchdog"]["state"], "not_in_cluster", "{status}");
    // `logLevel: debug`: passed checks are logged too, on stdout.
    let passed = lines(&monitor.log_of(Stream::Stdout), "health check passed");
    assert!(
        passed.iter().any(|l| l["level"] == "DEBUG"),
        "{}",
        monitor.log()
    );
}

#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn kind_example_in_init_container_mode() {
    needs_root();
    checks_once(&mut Setup::new("dmm-kind.config.json", |t| t));
}

// ---------------------------------------------------------------------------------------------
// What broke a working debrid-mount-monitor setup (issue 15), one test each.

/// Tests that need the default port 8080 take turns.
static DEFAULT_PORT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A working directory with `config.json` = `json` (`{a}` and `{b}` replaced by two tmpfs
/// paths); readable by everyone, for the tests that run as another user.
fn workdir(json: &str) -> (tempfile::TempDir, Mounted, Mounted) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("mm-compat-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let a = Mounted::at(dir.path().join("a"), "size=1m");
    let b = Mounted::at(dir.path().join("b"), "size=1m");
    let text = json
        .replace("{a}", &a.path.display().to_string())
        .replace("{b}", &b.path.display().to_string());
    std::fs::write(dir.path().join("config.json"), text).unwrap();
    (dir, a, b)
}

/// Runs the binary for at most `limit`: `Some(exit code, stderr)`, or `None` when it was still
/// running (and then killed).
fn run_briefly(cwd: &Path, args: &[&str], limit: Duration) -> Option<(i32, String)> {
    let mut child = Command::new(tests::binary())
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mount-monitor");
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            let _ = child.stderr.take().map(|mut s| s.read_to_string(&mut err));
            return Some((status.code().unwrap_or(-1), err));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Item 2: `config.json` is read as Go's `encoding/json` reads it: keys in any case, unknown
/// keys warned about (naming the closest known one), the last of a repeated key, `""` check
/// type, names with `/` and shared names, zero thresholds, Go durations with `µs`/`μs`.
#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn config_json_is_read_as_go_reads_it() {
    needs_root();
    let (dir, _a, _b) = workdir(
        r#"{
  "$schema": "https://example.com/debrid-mount-monitor.schema.json",
  "debounceThreshold": 2,
  "HttpPort": 8080,
  "CheckInterval": "0s",
  "readTimeout": "500000µs",
  "READTIMEOUT": "400000μs",
  "failureThreshold": 0,
  "logLevel": "",
  "mounts": [
    {"name": "movies/4k", "path": "{a}", "checkType": ""},
    {"Name": "movies/4k", "PATH": "{b}", "CheckType": "directory", "failureThreshold": 0}
  ]
}"#,
    );
    let monitor = Monitor::start_in(Vec::<&str>::new(), dir.path());
    let body = monitor.wait_for("/healthz/ready", 200, DETECT);
    let json: Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&Value> = json["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["name"])
        .collect();
    assert_eq!(
        names,
        [&Value::from("movies/4k"), &Value::from("movies/4k")]
    );
    let started = &monitor.log_lines("mount-monitor started")[0];
    assert_eq!(started["timeout"], "400ms", "the last readTimeout, in μs");
    assert_eq!(started["check_interval"], "30s", "\"0s\" is the default");
    // Warnings go to stderr, read apart from stdout's start line.
    wait_for_log(&monitor, "the unknown keys named", |monitor| {
        let warnings = monitor.log_of(Stream::Stderr);
        warnings
            .contains("unknown key `debounceThreshold` ignored; did you mean `failureThreshold`?")
            && warnings.contains("unknown key `$schema` ignored")
    });
    // A name with a slash is one percent-encoded path segment; a shared name answers for both.
    assert_eq!(monitor.get("/readyz/movies%2F4k"), (200, "ok".to_owned()));
    let (_, verbose) = monitor.get("/readyz/movies%2F4k?verbose");
    assert_eq!(verbose.matches("[+]movies/4k ok").count(), 2, "{verbose}");

    // Linting in CI: the same file is an error with --strict (check) and --strict-config.
    let (code, out, err) = run_in(dir.path(), ["check", "--strict"], &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("did you mean `failureThreshold`?"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let refused = run_briefly(dir.path(), &["--strict-config"], Duration::from_secs(5));
    assert!(
        matches!(&refused, Some((1, err)) if err.contains("$schema")),
        "serve --strict-config: {refused:?}"
    );
    // TOML stays strict.
    std::fs::write(dir.path().join("c.toml"), "HttpPort = 8080\n").unwrap();
    let (code, _, err) = run_in(dir.path(), ["check", "--config", "c.toml"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("HttpPort"), "{err}");
}

/// Item 3: zero means the default: `httpPort: 0` is 8080, `canaryFile: ""` is `.health-check`,
/// `shutdownTimeout: "0"` is 30s.
#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn zero_means_the_default() {
    needs_root();
    let _port = DEFAULT_PORT.lock().unwrap_or_else(|e| e.into_inner());
    let (dir, _a, _b) = workdir(
        r#"{"httpPort": 0, "canaryFile": "", "shutdownTimeout": "0",
            "mounts": [{"name": "media", "path": "{a}", "canaryFile": ""}]}"#,
    );
    let monitor = Monitor::start_listening(Vec::<&str>::new(), dir.path(), None, |_| {});
    let default: SocketAddr = "[::]:8080".parse().unwrap();
    assert_eq!(monitor.addrs, [default], "{}", monitor.log());
    let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let started = std::time::Instant::now();
    // The canary is `.health-check`, not the mount's directory.
    while tests::http(local, "GET", "/healthz/ready").0 != 200 {
        assert!(started.elapsed() < DETECT, "{}", monitor.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = &monitor.log_lines("mount-monitor started")[0];
    assert_eq!(started["shutdown_timeout"], "30s");
}

/// Item 4: `--init-container-mode` is a Go bool flag: bare, `=true`, `=false`.
#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn init_container_mode_takes_go_bool_values() {
    needs_root();
    let (dir, _a, _b) = workdir(r#"{"mounts": [{"name": "media", "path": "{a}"}]}"#);
    for flag in [
        "--init-container-mode",
        "--init-container-mode=true",
        "--init-container-mode=1",
    ] {
        let (code, out, err) = run_in(dir.path(), [flag], &[]);
        assert_eq!(code, 0, "{flag}: {out}{err}");
        assert_eq!(
            lines(&out, "all mount checks passed").len(),
            1,
            "{flag}: {out}"
        );
    }
    let monitor = Monitor::start_in(["--init-container-mode=false"], dir.path());
    monitor.wait_for("/healthz/ready", 200, DETECT);
}

/// Item 5: init-container mode as there: no serve-only validation, JSON log lines, exit 1 on a
/// config error and with no mounts; `check` keeps its table, discovery and exit 2.
#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn init_container_mode_behaves_as_there() {
    needs_root();
    // An interval below the timeout and the watchdog on: only serving cares.
    let (dir, _a, _b) = workdir(
        r#"{"checkInterval": "500ms", "readTimeout": "5s", "shutdownTimeout": "0s",
            "watchdog": {"enabled": true},
            "mounts": [{"name": "media", "path": "{a}"}, {"name": "tv", "path": "{b}", "checkType": "directory"}]}"#,
    );
    let (code, out, err) = run_in(dir.path(), ["--init-container-mode"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("MOUNT "), "no table: {out}");
    assert_eq!(
        lines(&out, "running in init-container mode").len(),
        1,
        "{out}"
    );
    assert_eq!(lines(&out, "mount check passed").len(), 2, "{out}");
    assert_eq!(lines(&out, "all mount checks passed")[0]["count"], 2);
    // `check` validates everything, and a bad config is exit 2 there.
    let (code, _, err) = run_in(dir.path(), ["check"], &[]);
    assert_eq!(code, 2, "{err}");

    // No mounts, and a config error: exit 1, as debrid-mount-monitor exits.
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("config.json"), r#"{"canaryFile": ".x"}"#).unwrap();
    let (code, out, err) = run_in(empty.path(), ["--init-container-mode"], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("at least one mount is required"), "{err}");
    std::fs::write(empty.path().join("config.json"), r#"{"checkInterval": 5}"#).unwrap();
    let (code, _, err) = run_in(empty.path(), ["--init-container-mode"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("checkInterval"), "{err}");
    // A bad flag value too (debrid-mount-monitor validates `--log-level` with the file).
    let (code, _, err) = run_in(
        empty.path(),
        ["--init-container-mode", "--log-level", "loud"],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--log-level"), "{err}");
    // A config file without mounts is an error for `check` too (exit 2); without a config
    // file, `check` discovers the mounts and prints its table.
    std::fs::write(empty.path().join("config.json"), "{}").unwrap();
    let (code, _, err) = run_in(empty.path(), ["check"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("at least one mount is required"), "{err}");
    std::fs::remove_file(empty.path().join("config.json")).unwrap();
    let (_, out, _) = run_in(empty.path(), ["check"], &[]);
    assert!(out.starts_with("MOUNT "), "{out}");
}

/// Item 6: the default listens on IPv4 and IPv6 (`[::]:8080`, dual-stack); `--listen` takes
/// several addresses, repeated or comma-separated; `healthcheck` finds the default.
#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn listens_on_ipv4_and_ipv6() {
    needs_root();
    let (dir, _a, _b) = workdir(r#"{"mounts": [{"name": "media", "path": "{a}"}]}"#);
    let both = Monitor::start_listening(
        ["--listen", "[::1]:0"],
        dir.path(),
        Some("127.0.0.1:0,127.0.0.2:0"),
        |_| {},
    );
    assert_eq!(both.addrs.len(), 3, "{}", both.log());
    assert!(
        both.addrs[0].is_ipv6() && both.addrs[1].is_ipv4(),
        "{:?}",
        both.addrs
    );
    both.wait_for("/healthz/ready", 200, DETECT);
    for addr in &both.addrs {
        assert_eq!(tests::http(*addr, "GET", "/healthz/ready").0, 200, "{addr}");
    }
    drop(both);

    let _port = DEFAULT_PORT.lock().unwrap_or_else(|e| e.into_inner());
    let monitor = Monitor::start_listening(Vec::<&str>::new(), dir.path(), None, |_| {});
    assert_eq!(monitor.addrs, ["[::]:8080".parse::<SocketAddr>().unwrap()]);
    for local in ["127.0.0.1:8080", "[::1]:8080"] {
        let local: SocketAddr = local.parse().unwrap();
        let started = std::time::Instant::now();
        while tests::http(local, "GET", "/healthz/ready").0 != 200 {
            assert!(started.elapsed() < DETECT, "{local}: {}", monitor.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let (code, _, err) = run_in(dir.path(), ["healthcheck"], &[]);
    assert_eq!(code, 0, "{err}");
}

/// Item 7: `checkType: directory` only stats the path, so a `0700` mount root passes for uid
/// 65534; listing it is `checkType: list`, which needs read permission.
#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn directory_check_needs_no_read_permission() {
    needs_root();
    let (dir, mut a, mut b) = workdir(
        r#"{"mounts": [{"name": "private", "path": "{a}", "checkType": "directory"},
                       {"name": "listed", "path": "{b}", "checkType": "list"}]}"#,
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.path().join("config.json"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    for m in [&mut a, &mut b] {
        m.unmount();
        m.mount("size=1m,mode=0700");
    }
    let monitor = Monitor::start_with(tests::EVERY_SECOND, dir.path(), |command| {
        use std::os::unix::process::CommandExt;
        command.uid(65534).gid(65534);
    });
    monitor.wait_for("/readyz/private", 200, DETECT);
    // /readyz/listed is 503 from the start (not checked yet): wait for the check's reason.
    monitor.wait_for_mount("listed", None, Some("permission_denied"), DETECT);
    monitor.wait_for("/readyz/listed", 503, DETECT);
    let (_, json) = monitor.get_json("/healthz/status");
    assert_eq!(mount_json(&json, "listed")["reason"], "permission_denied");
    assert_eq!(mount_json(&json, "private")["status"], "healthy");
}

/// Item 8: JSON log lines with slog's keys and messages; info on stdout, warn and error on
/// stderr; `health check failed` per failed check; `mount state changed` on each transition.
#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn logs_as_debrid_mount_monitor_writes_them() {
    needs_root();
    let (dir, mut a, _b) =
        workdir(r#"{"failureThreshold": 1, "mounts": [{"name": "media", "path": "{a}"}]}"#);
    let path = a.path.display().to_string();
    let monitor = Monitor::start_in(tests::EVERY_SECOND, dir.path());
    monitor.wait_for("/healthz/ready", 200, DETECT);
    let changed = |previous: &str, new: &str, trigger: &str| {
        let previous = previous.to_owned();
        let (new, trigger, path) = (new.to_owned(), trigger.to_owned(), path.clone());
        move |monitor: &Monitor| {
            lines(&monitor.log_of(Stream::Stdout), "mount state changed")
                .iter()
                .any(|l| {
                    l["level"] == "INFO"
                        && l["path"] == path.as_str()
                        && l["name"] == "media"
                        && l["previous_state"] == previous.as_str()
                        && l["new_state"] == new.as_str()
                        && l["trigger"] == trigger.as_str()
                })
        }
    };
    wait_for_log(
        &monitor,
        "unknown → healthy",
        changed("unknown", "healthy", "check_passed"),
    );
    a.unmount();
    monitor.wait_for("/healthz/ready", 503, DETECT);
    wait_for_log(&monitor, "a WARN per failed check", |monitor| {
        lines(&monitor.log_of(Stream::Stderr), "health check failed")
            .iter()
            .any(|l| l["level"] == "WARN" && l["path"] == path.as_str() && l["error"].is_string())
    });
    wait_for_log(
        &monitor,
        "healthy → unhealthy",
        changed("healthy", "unhealthy", "check_failed"),
    );
    a.mount("size=1m");
    monitor.wait_for("/healthz/ready", 200, DETECT);
    wait_for_log(
        &monitor,
        "unhealthy → healthy",
        changed("unhealthy", "healthy", "recovered"),
    );
    // Every line is JSON with time, level, msg first; each stream has its levels.
    for (stream, levels) in [
        (Stream::Stdout, ["DEBUG", "INFO"]),
        (Stream::Stderr, ["WARN", "ERROR"]),
    ] {
        for line in monitor.log_of(stream).lines() {
            assert!(line.starts_with(r#"{"time":""#), "{line}");
            let json: Value = serde_json::from_str(line).unwrap();
            let level = json["level"].as_str().unwrap();
            assert!(levels.contains(&level), "{stream:?}: {line}");
            assert!(json["msg"].is_string(), "{line}");
        }
    }
}

/// Item 9: a Kubernetes service link in a `MOUNT_MONITOR_*` variable is ignored with a warning.
#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn service_links_are_ignored() {
    needs_root();
    let (dir, _a, _b) = workdir(r#"{"mounts": [{"name": "media", "path": "{a}"}]}"#);
    let monitor = Monitor::start_with(tests::EVERY_SECOND, dir.path(), |command| {
        command
            .env("MOUNT_MONITOR_HTTP_PORT", "tcp://10.0.0.1:8080")
            .env("MOUNT_MONITOR_MOUNTS", "tcp://10.0.0.3:9000");
    });
    let body = monitor.wait_for("/healthz/ready", 200, DETECT);
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["mounts"].as_array().unwrap().len(), 1, "{json}");
    for var in ["MOUNT_MONITOR_HTTP_PORT", "MOUNT_MONITOR_MOUNTS"] {
        wait_for_log(&monitor, var, |monitor| {
            monitor
                .log_of(Stream::Stderr)
                .contains(&format!("ignoring {var}=tcp://"))
        });
    }
}

/// Item 10: `path` is the configured string as written; the body ends with a newline.
#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn path_is_shown_as_written() {
    needs_root();
    let dir = tempfile::tempdir().unwrap();
    let _local = Mounted::at(dir.path().join("data/local"), "size=1m");
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"mounts": [{"name": "local", "path": "./data/local"}]}"#,
    )
    .unwrap();
    let monitor = Monitor::start_in(tests::EVERY_SECOND, dir.path());
    let body = monitor.wait_for("/healthz/status", 200, DETECT);
    assert!(body.ends_with("}\n"), "{body:?}");
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(mount_json(&json, "local")["path"], "./data/local");
}

/// `logFormat: text` is slog's TextHandler: every line, on both streams, reads back with a
/// strict logfmt parser, starts with `time`, `level`, `msg`, and carries debrid-mount-monitor's
/// life-cycle lines and keys across a start, a failure, a recovery and SIGTERM.
#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn text_logs_are_logfmt_as_slog_writes_them() {
    needs_root();
    let (dir, a, _b) = workdir(
        r#"{"logFormat": "text", "checkInterval": "1s", "readTimeout": "500ms",
            "failureThreshold": 1, "mounts": [{"name": "media", "path": "{a}"}]}"#,
    );
    let canary = a.path.join(".health-check");
    std::fs::write(&canary, "ok").unwrap();
    let stdout = dir.path().join("stdout.log");
    let stderr = dir.path().join("stderr.log");
    let mut child = Command::new(tests::binary())
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("MOUNT_MONITOR_LISTEN")
        .env_remove("MOUNT_MONITOR_LOG_FORMAT")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("start mount-monitor");
    let lines = |path: &Path| -> Vec<Line> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|line| logfmt(line).unwrap_or_else(|e| panic!("not logfmt: {e}: {line}")))
            .collect()
    };
    let value = |line: &[(String, String)], key: &str| {
        line.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let wait_for = |what: &str, found: &dyn Fn(&[Line]) -> bool| {
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            let mut all = lines(&stdout);
            all.extend(lines(&stderr));
            if found(&all) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "no {what} in 20 s:\n{}{}",
            std::fs::read_to_string(&stdout).unwrap_or_default(),
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
    };
    let changed_to = |state: &'static str, trigger: &'static str| {
        move |all: &[Line]| {
            all.iter().any(|l| {
                value(l, "msg") == "mount state changed"
                    && value(l, "new_state") == state
                    && value(l, "trigger") == trigger
            })
        }
    };
    wait_for("healthy", &changed_to("healthy", "check_passed"));
    std::fs::remove_file(&canary).unwrap();
    wait_for("unhealthy", &changed_to("unhealthy", "check_failed"));
    std::fs::write(&canary, "ok").unwrap();
    wait_for("recovery", &changed_to("healthy", "recovered"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));

    let out = lines(&stdout);
    let err = lines(&stderr);
    for line in out.iter().chain(&err) {
        let keys: Vec<&str> = line.iter().take(3).map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["time", "level", "msg"], "{line:?}");
        let time = &line[0].1;
        assert!(
            time.len() == 24 && time.ends_with('Z') && humantime::parse_rfc3339(time).is_ok(),
            "slog's time, milliseconds in UTC: {time}"
        );
    }
    for line in &out {
        assert!(["INFO", "DEBUG"].contains(&line[1].1.as_str()), "{line:?}");
    }
    for line in &err {
        assert!(["WARN", "ERROR"].contains(&line[1].1.as_str()), "{line:?}");
    }
    // debrid-mount-monitor's life-cycle, in its order, among our own lines.
    let messages: Vec<String> = out.iter().map(|l| value(l, "msg")).collect();
    let mut at = 0;
    for expected in [
        "configuration loaded",
        "starting mount monitor",
        "mount registered",
        "http server started",
        "mount state changed",
        "mount state changed",
        "mount state changed",
        "received shutdown signal",
        "monitor shutting down",
        "shutdown complete",
    ] {
        at += messages[at..]
            .iter()
            .position(|m| m == expected)
            .unwrap_or_else(|| panic!("no {expected:?} after line {at}: {messages:?}"))
            + 1;
    }
    let line = |msg: &str| {
        out.iter()
            .find(|l| value(l, "msg") == msg)
            .unwrap_or_else(|| panic!("no {msg:?}"))
    };
    assert_eq!(value(line("configuration loaded"), "source"), "config.json");
    assert_eq!(value(line("configuration loaded"), "mounts"), "1");
    let starting = line("starting mount monitor");
    assert_eq!(value(starting, "check_interval"), "1s");
    assert_eq!(value(starting, "read_timeout"), "500ms");
    assert_eq!(value(starting, "log_format"), "text");
    assert_eq!(value(starting, "watchdog_enabled"), "false");
    let registered = line("mount registered");
    assert_eq!(value(registered, "name"), "media");
    assert_eq!(value(registered, "canary"), canary.display().to_string());
    let port = value(line("http server started"), "port");
    assert!(port.parse::<u16>().is_ok_and(|p| p > 0), "{port}");
    assert_eq!(
        value(line("received shutdown signal"), "signal"),
        "terminated"
    );
    let failed = err
        .iter()
        .find(|l| value(l, "msg") == "health check failed")
        .expect("a WARN health check failed on stderr");
    assert_eq!(value(failed, "level"), "WARN");
    assert_eq!(value(failed, "name"), "media");
    assert!(
        value(failed, "error").contains(".health-check"),
        "{failed:?}"
    );
}

/// A log line's `key=value` pairs, in order.
type Line = Vec<(String, String)>;

/// A strict logfmt reader for slog's TextHandler lines: `key=value` pairs separated by one
/// space; a value is bare (no space, `=` or `"`) or Go-quoted with Go's escapes.
fn logfmt(line: &str) -> Result<Line, String> {
    let mut pairs = Vec::new();
    let mut rest = line;
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or("a key without =")?;
        let key = &rest[..eq];
        if key.is_empty() || key.contains([' ', '"']) {
            return Err(format!("bad key {key:?}"));
        }
        rest = &rest[eq + 1..];
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                let (i, c) = chars.next().ok_or("an unterminated quote")?;
                match c {
                    '"' => break i + 1,
                    '\\' => {
                        let (_, escape) = chars.next().ok_or("a dangling backslash")?;
                        match escape {
                            '"' => value.push('"'),
                            '\\' => value.push('\\'),
                            'n' => value.push('\n'),
                            't' => value.push('\t'),
                            'r' => value.push('\r'),
                            'x' | 'u' | 'U' => {
                                let digits = match escape {
                                    'x' => 2,
                                    'u' => 4,
                                    _ => 8,
                                };
                                let hex: String = (0..digits)
                                    .filter_map(|_| chars.next().map(|(_, c)| c))
                                    .collect();
                                let code = u32::from_str_radix(&hex, 16)
                                    .map_err(|e| format!("bad escape {hex:?}: {e}"))?;
                                value.push(char::from_u32(code).ok_or("not a character")?);
                            }
                            other => return Err(format!("unknown escape \\{other}")),
                        }
                    }
                    c if c.is_control() => return Err("a raw control character".into()),
                    c => value.push(c),
                }
            };
            rest = &quoted[end..];
            value
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            let bare = &rest[..end];
            if bare.is_empty() || bare.contains(['=', '"']) {
                return Err(format!("bad bare value {bare:?} of {key}"));
            }
            rest = &rest[end..];
            bare.to_owned()
        };
        pairs.push((key.to_owned(), value));
        if let Some(next) = rest.strip_prefix(' ') {
            if next.is_empty() || next.starts_with(' ') {
                return Err("stray spaces".into());
            }
            rest = next;
        } else if !rest.is_empty() {
            return Err(format!("no space before {rest:?}"));
        }
    }
    Ok(pairs)
}

#[test]
fn the_logfmt_reader_is_strict() {
    assert_eq!(
        logfmt(r#"time=1 msg="a \"b\"\n" k=v"#).unwrap(),
        [
            ("time".to_owned(), "1".to_owned()),
            ("msg".to_owned(), "a \"b\"\n".to_owned()),
            ("k".to_owned(), "v".to_owned())
        ]
    );
    for bad in [
        "k",
        "k=",
        "k=a b",
        "k=\"a",
        "k=a  j=b",
        "k=a=b",
        "k=\"x\"y=1",
        "k=a ",
    ] {
        assert!(logfmt(bad).is_err(), "{bad}");
    }
}
