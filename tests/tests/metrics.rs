//! `/metrics` end to end: the real binary against tmpfs mounts, its output linted by `promtool`
//! (Debian package `prometheus`), and the values a dashboard or an alert would show.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::{Monitor, Tmpfs, require_root, require_tool};

/// Two check intervals plus jitter and scheduling slack.
const TWO_INTERVALS: Duration = Duration::from_millis(2600);

/// `promtool check metrics` on `text`; panics with promtool's complaints.
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("wait for promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\non:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of the series written exactly as `series` (name and labels), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap_or_else(|e| panic!("{series} {v}: {e}")))
}

fn scrape(monitor: &Monitor) -> String {
    let (status, text) = monitor.get("/metrics");
    assert_eq!(status, 200, "{text}");
    text
}

#[test]
#[ignore = "needs root and promtool: cargo xtask test, as root"]
fn metrics_pass_promtool_and_follow_the_mount() {
    let test = "metrics_pass_promtool_and_follow_the_mount";
    require_root(test);
    require_tool(test, "promtool");
    let mut fs = Tmpfs::new("size=1m,nr_inodes=64");
    let path = fs.path().display().to_string();
    let mount = format!("data={path}");
    let monitor = Monitor::start([
        "--mount",
        &mount,
        "--check-interval",
        "1s",
        "--timeout",
        "500ms",
    ]);
    monitor.wait_for("/readyz", 200, Duration::from_secs(5));
    let labels = format!(r#"mount="data",path="{path}""#);
    let series = |name: &str, extra: &str| format!("mount_monitor_{name}{{{labels}{extra}}}");
    let not_mounted = series("mount_check_failures_total", r#",reason="not_mounted""#);

    let text = scrape(&monitor);
    promtool_check(&text);
    assert_eq!(value(&text, &series("mount_up", "")), Some(1.0), "{text}");
    assert_eq!(
        value(&text, &series("mount_state", r#",state="healthy""#)),
        Some(1.0)
    );
    let fs_labels = r#",fstype="tmpfs""#;
    assert_eq!(
        value(&text, &series("filesystem_size_bytes", fs_labels)),
        Some(1024.0 * 1024.0),
        "{text}"
    );
    assert_eq!(
        value(&text, &series("filesystem_files", fs_labels)),
        Some(64.0)
    );
    assert_eq!(
        value(&text, &series("filesystem_readonly", fs_labels)),
        Some(0.0)
    );
    assert_eq!(
        value(&text, &not_mounted),
        Some(0.0),
        "present before any failure"
    );
    let checks = value(&text, &series("mount_checks_total", "")).unwrap();
    assert!(checks >= 1.0);
    assert!(
        value(&text, &series("mount_check_duration_seconds_count", "")).unwrap() >= 1.0,
        "{text}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last_success = value(&text, &series("mount_last_success_timestamp_seconds", "")).unwrap();
    assert!((now - last_success).abs() < 10.0, "{last_success} vs {now}");

    // The path stays behind as an empty directory, as a dead FUSE mount leaves it.
    fs.unmount();
    monitor.wait_for("/readyz", 503, TWO_INTERVALS);
    let text = scrape(&monitor);
    promtool_check(&text);
    assert_eq!(value(&text, &series("mount_up", "")), Some(0.0), "{text}");
    assert_eq!(
        value(&text, &series("mount_state", r#",state="degraded""#)),
        Some(1.0)
    );
    assert!(value(&text, &not_mounted).unwrap() >= 1.0, "{text}");
    assert!(value(&text, &series("mount_checks_total", "")).unwrap() > checks);
    assert_eq!(
        value(&text, &series("filesystem_size_bytes", fs_labels)),
        None,
        "no figures for a mount that is gone:\n{text}"
    );
    assert!(
        !text.contains("is not a mount point"),
        "error messages never become labels"
    );

    // Scrapes are served from the snapshot: many in a row are quick.
    let started = Instant::now();
    for _ in 0..50 {
        scrape(&monitor);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Every log line is JSON with time, level and msg; those about the mount name it.
    let log = monitor.log();
    let mut about_the_mount = 0;
    for line in log.lines() {
        let json: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for key in ["time", "level", "msg"] {
            assert!(json[key].is_string(), "no {key}: {line}");
        }
        if json["path"] == path.as_str() {
            assert_eq!(json["mount"], "data", "{line}");
            about_the_mount += 1;
        }
    }
    assert!(about_the_mount >= 2, "healthy, then degraded:\n{log}");
}
