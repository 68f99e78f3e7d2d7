//! Init-container mode and `check` as an application's gate: waiting for the mounts
//! (`--wait-timeout`), and optional mounts, which are reported but decide no exit code.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::{Tmpfs, require_root, run};

/// A mount that is always there and healthy, without root.
const PROC: &str = "proc=/proc";

/// The JSON log lines of `out` whose `msg` is `msg`.
fn lines(out: &str, msg: &str) -> Vec<Value> {
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["msg"] == msg)
        .collect()
}

/// An empty directory: nothing mounted on it, so `not_mounted`. Builds the binary first, so that
/// the tests time the binary, not its build.
fn unmounted_dir() -> tempfile::TempDir {
    tests::binary();
    tempfile::Builder::new()
        .prefix("mm-none-")
        .tempdir()
        .expect("create a directory")
}

fn mount_arg(name: &str, path: &Path, options: &str) -> String {
    format!("{name}={}{options}", path.display())
}

#[test]
#[ignore = "needs root (mounts tmpfs): cargo xtask test, as root"]
fn waiting_init_mode_exits_0_within_a_second_of_the_mount() {
    let test = "waiting_init_mode_exits_0_within_a_second_of_the_mount";
    require_root(test);
    tests::binary();
    let mut fs = Tmpfs::new("size=1m");
    // The mount is not there yet: an empty directory, as before rclone mounts.
    fs.unmount();
    let media = mount_arg("media", fs.path(), "");
    let started = Instant::now();
    let gate = std::thread::spawn(move || {
        let result = run([
            "--init-container-mode",
            "--mount",
            &media,
            "--wait-timeout",
            "60s",
        ]);
        (result, Instant::now())
    });
    // Between two rounds, which start a second apart.
    std::thread::sleep(Duration::from_millis(3500));
    fs.mount("size=1m");
    let appeared = Instant::now();
    let ((code, out, err), exited) = gate.join().expect("the waiting run");
    let log = format!("{out}{err}");
    assert_eq!(code, 0, "{log}");
    let after = exited.saturating_duration_since(appeared);
    eprintln!("exit 0 {after:?} after the mount appeared");
    assert!(
        after < Duration::from_millis(2500),
        "exited {after:?} after the mount appeared (rounds every second):\n{log}"
    );
    assert!(
        appeared.duration_since(started) >= Duration::from_millis(3500),
        "it waited: {log}"
    );
    // On change only: one failure line for three seconds of failing rounds, then the pass.
    let failed = lines(&err, "mount check failed");
    assert_eq!(failed.len(), 1, "{log}");
    assert_eq!(failed[0]["reason"], "not_mounted", "{log}");
    assert_eq!(lines(&out, "mount check passed").len(), 1, "{log}");
    assert_eq!(lines(&out, "all mount checks passed").len(), 1, "{log}");
}

#[test]
fn waiting_gives_up_at_the_timeout_naming_the_mount_and_why() {
    let dir = unmounted_dir();
    let media = mount_arg("media", dir.path(), "");
    let started = Instant::now();
    let (code, out, err) = run([
        "--init-container-mode",
        "--mount",
        &media,
        "--wait-timeout",
        "3s",
    ]);
    let took = started.elapsed();
    let log = format!("{out}{err}");
    assert_eq!(code, 1, "{log}");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(10),
        "gave up after {took:?}, the timeout is 3s:\n{log}"
    );
    let verdict = lines(&err, "one or more mount checks failed");
    assert_eq!(verdict.len(), 1, "{log}");
    let failing = verdict[0]["failing"].as_str().unwrap_or_default();
    assert!(
        failing.starts_with("media (not_mounted: ") && failing.contains("nothing is mounted"),
        "{log}"
    );
    assert_eq!(lines(&err, "mount check failed").len(), 1, "{log}");

    // `check` waits the same way, prints what it waits for, then the table.
    let started = Instant::now();
    let (code, out, err) = run(["check", "--mount", &media, "--wait-timeout", "2s"]);
    let took = started.elapsed();
    assert_eq!(code, 1, "{out}{err}");
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(err.contains("waiting for media (not_mounted"), "{err}");
    assert!(out.contains("not_mounted"), "{out}");
}

#[test]
fn without_wait_timeout_one_round_decides() {
    let dir = unmounted_dir();
    let media = mount_arg("media", dir.path(), "");
    let started = Instant::now();
    let (code, out, err) = run(["--init-container-mode", "--mount", &media]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "one round");
    // The environment variable sets it too.
    let started = Instant::now();
    let (code, out, err) = tests::run_in(
        tests::empty_workdir().path(),
        ["check", "--mount", &media],
        &[("MOUNT_MONITOR_WAIT_TIMEOUT", "2s")],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(started.elapsed() >= Duration::from_secs(2), "{out}{err}");
}

#[test]
fn optional_mounts_decide_no_exit_code() {
    let dir = unmounted_dir();
    let extra = mount_arg("extra", dir.path(), ",optional=true");

    // Init-container mode: the optional mount's failure is logged, and exit 0.
    let (code, out, err) = run(["--init-container-mode", "--mount", PROC, "--mount", &extra]);
    assert_eq!(code, 0, "{out}{err}");
    let failed = lines(&err, "mount check failed");
    assert_eq!(failed.len(), 1, "{out}{err}");
    assert_eq!(failed[0]["name"], "extra");
    assert_eq!(failed[0]["optional"], true);
    assert_eq!(lines(&out, "all mount checks passed").len(), 1, "{out}");

    // Waiting: an optional mount is not waited for.
    let started = Instant::now();
    let (code, out, err) = run([
        "--init-container-mode",
        "--mount",
        PROC,
        "--mount",
        &extra,
        "--wait-timeout",
        "30s",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "{out}{err}");

    // `check`: exit 0, the table and the JSON report it.
    let (code, out, err) = run(["check", "--mount", PROC, "--mount", &extra]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("extra (optional)") && l.contains("not_mounted")),
        "{out}"
    );
    let (code, out, err) = run([
        "check", "--format", "json", "--mount", PROC, "--mount", &extra,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let body: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(body["status"], "healthy", "{out}");
    let entry = tests::mount_json(&body, "extra");
    assert_eq!(entry["optional"], true, "{out}");
    assert_eq!(entry["status"], "unhealthy", "{out}");

    // A required mount that fails still fails them all.
    let media = mount_arg("media", dir.path(), "");
    let (code, out, err) = run(["check", "--mount", &media, "--mount", &extra]);
    assert_eq!(code, 1, "{out}{err}");
    let (code, out, err) = run([
        "--init-container-mode",
        "--mount",
        &media,
        "--mount",
        &extra,
    ]);
    assert_eq!(code, 1, "{out}{err}");
}
