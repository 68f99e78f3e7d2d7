//! `/metrics` end to end: the real binary against tmpfs and FUSE mounts, its output in both
//! formats checked by `promtool` (Debian package `prometheus`), the values a dashboard or an
//! alert would show, and the number of series each mount costs.
//!
//! promtool's `check metrics` reads only the 0.0.4 text format (OpenMetrics support is
//! prometheus/prometheus#8932), so OpenMetrics bodies go through the OpenMetrics parser Prometheus
//! scrapes with, by `promtool tsdb create-blocks-from openmetrics`, and through the structural
//! rules of the format checked here.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mount_monitor::metrics::SERIES_BUDGET;
use mount_monitor::reason::Reason;
use tests::fuse::{HangFs, require_fuse};
use tests::{Monitor, Tmpfs, require_root, require_tool};

/// Two check intervals plus jitter and scheduling slack.
const TWO_INTERVALS: Duration = Duration::from_millis(2600);

/// What Prometheus 2.x sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

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

/// `text` is OpenMetrics 1.0: Prometheus' OpenMetrics parser reads it (through promtool's
/// backfill, which wants a timestamp on every sample, so one is added), it ends with `# EOF`, and
/// every sample belongs to the family declared above it, with a suffix its type allows.
fn openmetrics_check(text: &str) {
    assert!(text.ends_with("\n# EOF\n"), "no final # EOF:\n{text}");
    assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    let mut family: Option<(&str, &str)> = None;
    let mut stamped = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
            assert!(
                !(kind == "counter" && name.ends_with("_total")),
                "an OpenMetrics counter family is named without _total: {line}"
            );
            family = Some((name, kind));
        } else if let Some(rest) = line.strip_prefix("# UNIT ") {
            let (name, unit) = rest.split_once(' ').expect("# UNIT name unit");
            assert_eq!(Some(name), family.map(|f| f.0), "{line} after its # TYPE");
            assert!(name.ends_with(&format!("_{unit}")), "{line}");
        } else if !line.starts_with('#') {
            let (name, kind) = family.unwrap_or_else(|| panic!("sample before any # TYPE: {line}"));
            let sample = line.split(['{', ' ']).next().unwrap_or_default();
            let suffix = sample
                .strip_prefix(name)
                .unwrap_or_else(|| panic!("{sample} is not in family {name}"));
            let allowed: &[&str] = match kind {
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_count", "_sum", "_created"],
                "info" => &["_info"],
                _ => &[""],
            };
            assert!(
                allowed.contains(&suffix),
                "{kind} {name} has a sample {sample}"
            );
        }
        stamped.push_str(line);
        if !line.starts_with('#') {
            stamped.push_str(" 1767366245");
        }
        stamped.push('\n');
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let input = dir.path().join("scrape.om");
    std::fs::write(&input, &stamped).expect("write the scrape");
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(dir.path().join("blocks"))
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool's OpenMetrics parser rejects the scrape:\n{}{}\non:\n{text}",
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

/// The samples of the mount named `mount`.
fn series_of<'a>(text: &'a str, mount: &str) -> Vec<&'a str> {
    let label = format!(r#"mount="{mount}","#);
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(&label))
        .collect()
}

fn scrape(monitor: &Monitor) -> String {
    let (status, head, text) = monitor.get_with("/metrics", &[]);
    assert_eq!(status, 200, "{text}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    text
}

/// `/metrics` as Prometheus scrapes it: OpenMetrics.
fn scrape_openmetrics(monitor: &Monitor) -> String {
    let (status, head, text) = monitor.get_with("/metrics", &[("Accept", PROMETHEUS_ACCEPT)]);
    assert_eq!(status, 200, "{text}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    text
}

/// Both formats pass their checks and hold the same series (OpenMetrics adding `_created`).
fn check_both_formats(monitor: &Monitor) -> (String, String) {
    let text = scrape(monitor);
    promtool_check(&text);
    let openmetrics = scrape_openmetrics(monitor);
    openmetrics_check(&openmetrics);
    let samples = |t: &str| {
        t.lines()
            .filter(|l| !l.starts_with('#') && !l.contains("_created{"))
            .count()
    };
    assert_eq!(
        samples(&text),
        samples(&openmetrics),
        "{text}\n---\n{openmetrics}"
    );
    (text, openmetrics)
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
    let monitor = Monitor::watch(&[&mount], &[]);
    monitor.wait_for("/readyz", 200, Duration::from_secs(5));
    let labels = format!(r#"mount="data",path="{path}""#);
    let series = |name: &str, extra: &str| format!("mount_monitor_{name}{{{labels}{extra}}}");
    let failures = series("mount_check_failures_total", "");

    let (text, openmetrics) = check_both_formats(&monitor);
    let healthy = series_of(&text, "data");
    assert!(
        healthy.len() <= SERIES_BUDGET,
        "a healthy mount costs {} series, the budget is {SERIES_BUDGET}:\n{}",
        healthy.len(),
        healthy.join("\n")
    );
    eprintln!(
        "healthy tmpfs, basic detail: {} series, {} bytes of 0.0.4 text and {} of OpenMetrics",
        healthy.len(),
        healthy.iter().map(|l| l.len() + 1).sum::<usize>(),
        series_of(&openmetrics, "data")
            .iter()
            .map(|l| l.len() + 1)
            .sum::<usize>()
    );
    assert_eq!(
        value(&text, &series("mount_up", r#",optional="false""#)),
        Some(1.0),
        "{text}"
    );
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
        value(&text, &failures),
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
    let created = value(&openmetrics, &series("mount_checks_created", "")).unwrap();
    assert!(
        created <= last_success && now - created < 60.0,
        "counted since the monitor started: {created}"
    );

    // The path stays behind as an empty directory, as a dead FUSE mount leaves it.
    fs.unmount();
    monitor.wait_for("/readyz", 503, TWO_INTERVALS);
    let (text, _) = check_both_formats(&monitor);
    assert_eq!(
        value(&text, &series("mount_up", r#",optional="false""#)),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(&text, &series("mount_state", r#",state="degraded""#)),
        Some(1.0)
    );
    assert_eq!(
        value(&text, &series("mount_state", r#",state="healthy""#)),
        None,
        "only the current state"
    );
    assert_eq!(
        value(&text, &series("mount_reason", r#",reason="not_mounted""#)),
        Some(1.0),
        "{text}"
    );
    assert!(value(&text, &failures).unwrap() >= 1.0, "{text}");
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
    for _ in 0..25 {
        scrape(&monitor);
        scrape_openmetrics(&monitor);
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

/// `--metrics-detail full` brings back every bucket, reason, state and filesystem gauge.
#[test]
#[ignore = "needs root and promtool: cargo xtask test, as root"]
fn full_detail_brings_back_every_series() {
    let test = "full_detail_brings_back_every_series";
    require_root(test);
    require_tool(test, "promtool");
    let fs = Tmpfs::new("size=1m,nr_inodes=64");
    let path = fs.path().display().to_string();
    let mount = format!("data={path}");
    let monitor = Monitor::watch(&[&mount], &["--metrics-detail", "full"]);
    monitor.wait_for("/readyz", 200, Duration::from_secs(5));
    let (text, openmetrics) = check_both_formats(&monitor);
    let labels = format!(r#"mount="data",path="{path}""#);
    let series = series_of(&text, "data");
    let reasons = text
        .lines()
        .filter(|l| {
            l.starts_with(&format!(
                "mount_monitor_mount_check_failures_total{{{labels},reason="
            ))
        })
        .count();
    assert_eq!(
        reasons,
        Reason::ALL.len(),
        "every reason code, from 0:\n{text}"
    );
    for state in ["unknown", "healthy", "degraded", "unhealthy"] {
        let line = format!(r#"mount_monitor_mount_state{{{labels},state="{state}"}}"#);
        let expected = if state == "healthy" { 1.0 } else { 0.0 };
        assert_eq!(value(&text, &line), Some(expected), "{line}");
    }
    let readonly = format!(r#"mount_monitor_filesystem_readonly{{{labels},fstype="tmpfs"}}"#);
    assert_eq!(value(&text, &readonly), Some(0.0), "{text}");
    // up, 4 states, 16 buckets + +Inf + sum + count, checks, a failure count per reason, last
    // success, stuck, 6 filesystem gauges.
    assert_eq!(
        series.len(),
        1 + 4 + 19 + 1 + Reason::ALL.len() + 1 + 1 + 6,
        "{}",
        series.join("\n")
    );
    eprintln!(
        "healthy tmpfs, full detail: {} series, {} bytes of 0.0.4 text and {} of OpenMetrics",
        series.len(),
        series.iter().map(|l| l.len() + 1).sum::<usize>(),
        series_of(&openmetrics, "data")
            .iter()
            .map(|l| l.len() + 1)
            .sum::<usize>()
    );
}

/// A mount whose checks hang: both formats still answer at once, and say so.
#[test]
#[ignore = "needs root, /dev/fuse and promtool: cargo xtask test, as root"]
fn a_stuck_mount_in_both_formats() {
    let test = "a_stuck_mount_in_both_formats";
    require_fuse(test);
    require_tool(test, "promtool");
    let mut hung = HangFs::mount();
    let healthy = Tmpfs::new("size=1m");
    let args = [
        "--mount".to_owned(),
        format!("hung={}", hung.path().display()),
        "--mount".to_owned(),
        format!("ok={}", healthy.path().display()),
        "--check-interval".to_owned(),
        "1s".to_owned(),
        "--timeout".to_owned(),
        "500ms".to_owned(),
    ];
    let monitor = Monitor::start(&args);
    monitor.wait_for("/readyz", 200, Duration::from_secs(5));
    hung.hang();
    let labels = format!(r#"mount="hung",path="{}""#, hung.path().display());
    let stuck = format!("mount_monitor_mount_stuck_seconds{{{labels}}}");
    let started = Instant::now();
    let text = loop {
        let text = scrape(&monitor);
        if value(&text, &stuck).is_some_and(|s| s > 0.0) {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never stuck:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    promtool_check(&text);
    let openmetrics = scrape_openmetrics(&monitor);
    openmetrics_check(&openmetrics);
    for body in [&text, &openmetrics] {
        assert_eq!(
            value(
                body,
                &format!(r#"mount_monitor_mount_reason{{{labels},reason="timeout"}}"#)
            ),
            Some(1.0),
            "{body}"
        );
        assert!(value(body, "mount_monitor_blocked_checks").unwrap() >= 1.0);
        assert!(value(body, &stuck).unwrap() > 0.0);
    }
    // Release the hung check first, so that the monitor can exit.
    drop(hung);
    drop(monitor);
}
