use super::*;
use crate::config::{MountSpec, Settings};
use crate::reason::Failure;
use crate::state::{DURATION_BUCKETS, MountState};
use std::time::{Duration, SystemTime};

fn view(name: &str, state: MountState, stuck_since: Option<Instant>) -> Arc<MountView> {
    let spec = MountSpec::plain(
        Some(name.into()),
        format!("/mnt/{name}").into(),
        &Settings::default(),
    );
    Arc::new(MountView {
        spec: Arc::new(spec),
        state,
        stuck_since,
    })
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

fn sample() -> String {
    sample_in(Format::Prometheus, MetricsDetail::Full)
}

fn sample_snapshot() -> (Snapshot, Instant) {
    let mut healthy = MountState::default();
    healthy.record(Ok(()), at(1_767_366_245), 3, 1);
    healthy.measured(
        Some(Stats {
            fs_type: Some("fuse.rclone".into()),
            read_only: true,
            size_bytes: 1 << 30,
            avail_bytes: 1 << 29,
            free_bytes: 1 << 29,
            files: 100,
            files_free: 40,
        }),
        Some(Duration::from_micros(300)),
    );
    let mut gone = MountState::default();
    gone.record(Ok(()), at(1_767_366_000), 1, 1);
    gone.measured(Some(Stats::default()), Some(Duration::from_millis(2)));
    for _ in 0..2 {
        gone.record(
            Err(Failure::new(
                Reason::NotMounted,
                "/mnt/tv is not a mount point",
            )),
            at(1_767_366_245),
            1,
            1,
        );
        gone.measured(None, Some(Duration::from_micros(50)));
    }
    let now = Instant::now();
    let stuck_since = now.checked_sub(Duration::from_secs(12));
    healthy.since = at(1_767_366_000);
    gone.since = at(1_767_365_000);
    let snapshot = Snapshot {
        mounts: vec![view("movies", healthy, None), view("tv", gone, stuck_since)],
        initialized: true,
        ..Default::default()
    };
    (snapshot, now)
}

fn sample_in(format: Format, detail: MetricsDetail) -> String {
    let (snapshot, now) = sample_snapshot();
    render(Arc::new(snapshot), now, format, detail)
}

/// The samples of the mount labelled `mount`.
fn series_of<'a>(text: &'a str, mount: &str) -> Vec<&'a str> {
    let label = format!(r#"mount="{mount}","#);
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(&label))
        .collect()
}

fn line<'a>(text: &'a str, series: &str) -> Option<&'a str> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
}

fn value(text: &str, series: &str) -> f64 {
    let line = line(text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    line[series.len()..].trim().parse().unwrap()
}

#[test]
fn health_and_counters_per_mount() {
    let text = sample();
    assert_eq!(
        value(
            &text,
            r#"mount_monitor_mount_up{mount="movies",path="/mnt/movies",optional="false"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"mount_monitor_mount_up{mount="tv",path="/mnt/tv",optional="false"}"#
        ),
        0.0
    );
    for (state, expected) in [("healthy", 0.0), ("unhealthy", 1.0), ("unknown", 0.0)] {
        let series =
            format!(r#"mount_monitor_mount_state{{mount="tv",path="/mnt/tv",state="{state}"}}"#);
        assert_eq!(value(&text, &series), expected, "{series}");
    }
    assert_eq!(
        value(
            &text,
            r#"mount_monitor_mount_checks_total{mount="tv",path="/mnt/tv"}"#
        ),
        3.0
    );
    let failures = |reason: &str| {
        value(
            &text,
            &format!(
                r#"mount_monitor_mount_check_failures_total{{mount="tv",path="/mnt/tv",reason="{reason}"}}"#
            ),
        )
    };
    assert_eq!(failures("not_mounted"), 2.0);
    // Every code is there from the start, at 0.
    assert_eq!(failures("timeout"), 0.0);
    assert_eq!(
        text.matches("mount_monitor_mount_check_failures_total{")
            .count(),
        2 * Reason::ALL.len()
    );
    assert!(
        !text.contains("is not a mount point"),
        "error messages never become labels"
    );
    assert_eq!(
        value(
            &text,
            r#"mount_monitor_mount_last_success_timestamp_seconds{mount="movies",path="/mnt/movies"}"#
        ),
        1_767_366_245.0
    );
    assert_eq!(value(&text, "mount_monitor_mounts"), 2.0);
    assert_eq!(
        value(
            &text,
            &format!(
                r#"mount_monitor_build_info{{version="{}"}}"#,
                crate::VERSION
            )
        ),
        1.0
    );
}

#[test]
fn stuck_seconds_grow_while_a_check_is_blocked() {
    let text = sample();
    assert_eq!(
        value(
            &text,
            r#"mount_monitor_mount_stuck_seconds{mount="movies",path="/mnt/movies"}"#
        ),
        0.0
    );
    let stuck = value(
        &text,
        r#"mount_monitor_mount_stuck_seconds{mount="tv",path="/mnt/tv"}"#,
    );
    assert!((12.0..13.0).contains(&stuck), "{stuck}");
}

#[test]
fn duration_histogram_is_cumulative() {
    let text = sample();
    let bucket = |le: &str| {
        value(
            &text,
            &format!(
                r#"mount_monitor_mount_check_duration_seconds_bucket{{mount="tv",path="/mnt/tv",le="{le}"}}"#
            ),
        )
    };
    assert_eq!(bucket("0.0001"), 2.0);
    assert_eq!(bucket("0.0025"), 3.0);
    assert_eq!(bucket("+Inf"), 3.0);
    assert_eq!(
        value(
            &text,
            r#"mount_monitor_mount_check_duration_seconds_count{mount="tv",path="/mnt/tv"}"#
        ),
        3.0
    );
    assert!(text.contains("# TYPE mount_monitor_mount_check_duration_seconds histogram\n"));
}

#[test]
fn filesystem_gauges_only_while_statfs_answers() {
    let text = sample();
    let labels = r#"{mount="movies",path="/mnt/movies",fstype="fuse.rclone"}"#;
    for (name, expected) in [
        ("size_bytes", (1u64 << 30) as f64),
        ("avail_bytes", (1u64 << 29) as f64),
        ("free_bytes", (1u64 << 29) as f64),
        ("files", 100.0),
        ("files_free", 40.0),
        ("readonly", 1.0),
    ] {
        let series = format!("mount_monitor_filesystem_{name}{labels}");
        assert_eq!(value(&text, &series), expected, "{series}");
    }
    assert!(
        !text.contains(r#"mount_monitor_filesystem_size_bytes{mount="tv""#),
        "an unmounted path has no current figures:\n{text}"
    );
}

#[test]
fn every_family_is_typed_and_named_by_convention() {
    let text = sample();
    for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut words = l.split(' ').skip(2);
        let (name, kind) = (words.next().unwrap(), words.next().unwrap());
        assert!(name.starts_with("mount_monitor_"), "{l}");
        assert_eq!(name.ends_with("_total"), kind == "counter", "{l}");
    }
    assert!(
        !text.contains("# EOF"),
        "the 0.0.4 text format, not OpenMetrics"
    );
}

#[test]
fn basic_detail_keeps_a_healthy_mount_within_the_budget() {
    let basic = sample_in(Format::Prometheus, MetricsDetail::Basic);
    let series = series_of(&basic, "movies");
    assert!(
        series.len() <= SERIES_BUDGET,
        "{} series for one healthy mount, the budget is {SERIES_BUDGET}:\n{}",
        series.len(),
        series.join("\n")
    );
    assert_eq!(series.len(), 16, "{}", series.join("\n"));
    let full = sample_in(Format::Prometheus, MetricsDetail::Full);
    assert_eq!(
        series_of(&full, "movies").len(),
        1 + 4 + (DURATION_BUCKETS.len() + 3) + 1 + Reason::ALL.len() + 1 + 1 + 6,
        "full detail: every state, bucket, reason and filesystem gauge"
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let row = format!(
        "| **per healthy mount** | | | **{}** | **{}** |",
        series.len(),
        series_of(&full, "movies").len()
    );
    assert!(
        readme.contains(&row),
        "README.md's Metrics table must say what a mount costs: {row}"
    );
    // OpenMetrics adds a `_created` to the counters and the histogram, nothing else.
    let openmetrics = sample_in(Format::OpenMetrics, MetricsDetail::Basic);
    let created = series_of(&openmetrics, "movies")
        .into_iter()
        .filter(|l| l.contains("_created{"))
        .count();
    assert_eq!((created, series_of(&openmetrics, "movies").len()), (3, 19));
}

#[test]
fn basic_detail_still_says_what_is_wrong_and_how_often() {
    let text = sample_in(Format::Prometheus, MetricsDetail::Basic);
    let tv = r#"mount="tv",path="/mnt/tv""#;
    assert_eq!(
        value(
            &text,
            &format!("mount_monitor_mount_up{{{tv},optional=\"false\"}}")
        ),
        0.0
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"mount_monitor_mount_state{{{tv},state="unhealthy"}}"#)
        ),
        1.0
    );
    assert!(
        line(
            &text,
            &format!(r#"mount_monitor_mount_state{{{tv},state="healthy"}}"#)
        )
        .is_none(),
        "only the current state:\n{text}"
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"mount_monitor_mount_reason{{{tv},reason="not_mounted"}}"#)
        ),
        1.0
    );
    assert!(
        !text.contains(r#"mount_monitor_mount_reason{mount="movies""#),
        "no reason while healthy"
    );
    assert_eq!(
        value(
            &text,
            &format!("mount_monitor_mount_check_failures_total{{{tv}}}")
        ),
        2.0,
        "every failure, whatever its reason"
    );
    let bucket = |le: &str| {
        value(
            &text,
            &format!(r#"mount_monitor_mount_check_duration_seconds_bucket{{{tv},le="{le}"}}"#),
        )
    };
    // 50µs, 50µs, 2ms.
    assert_eq!(
        [bucket("0.001"), bucket("0.1"), bucket("1"), bucket("+Inf")],
        [2.0, 3.0, 3.0, 3.0]
    );
    for name in ["size_bytes", "avail_bytes", "files", "files_free"] {
        let series = format!(
            r#"mount_monitor_filesystem_{name}{{mount="movies",path="/mnt/movies",fstype="fuse.rclone"}}"#
        );
        assert!(line(&text, &series).is_some(), "{series} missing:\n{text}");
    }
    assert!(!text.contains("mount_monitor_filesystem_free_bytes"));
    assert!(!text.contains("mount_monitor_filesystem_readonly"));
}

#[test]
fn openmetrics_has_units_created_and_eof() {
    let text = sample_in(Format::OpenMetrics, MetricsDetail::Full);
    assert!(text.ends_with("\n# EOF\n"), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1);
    assert!(text.contains("# TYPE mount_monitor_mount_checks counter\n"));
    assert!(text.contains("# TYPE mount_monitor_build info\n"));
    assert!(text.contains("# UNIT mount_monitor_mount_check_duration_seconds seconds\n"));
    let lines: Vec<&str> = text.lines().collect();
    let mut created = 0;
    for (i, l) in lines.iter().enumerate() {
        let Some((series, _)) = l.split_once("_total{") else {
            continue;
        };
        let labels = l[series.len() + "_total".len()..]
            .rsplit_once(' ')
            .unwrap()
            .0;
        let next = lines[i + 1];
        assert!(
            next.starts_with(&format!("{series}_created{labels} ")),
            "{l} is not followed by its _created:\n{next}"
        );
        created += 1;
    }
    assert_eq!(created, 2 * (1 + Reason::ALL.len()));
    assert_eq!(
        value(
            &text,
            r#"mount_monitor_mount_checks_created{mount="tv",path="/mnt/tv"}"#
        ),
        1_767_365_000.0
    );
    assert_eq!(
        value(
            &text,
            r#"mount_monitor_mount_check_duration_seconds_created{mount="movies",path="/mnt/movies"}"#
        ),
        1_767_366_000.0
    );
    let prometheus = sample_in(Format::Prometheus, MetricsDetail::Full);
    assert!(!prometheus.contains("_created"));
    assert!(!prometheus.contains("# EOF"));
}

#[test]
fn created_follows_escaped_mount_names() {
    let created = HashMap::from([("a\"b\\c\nd".to_owned(), "12.5".to_owned())]);
    let text = "# TYPE x counter\nx_total{mount=\"a\\\"b\\\\c\\nd\",path=\"/\"} 3\n";
    assert_eq!(
        with_created(text, &created),
        format!("{text}x_created{{mount=\"a\\\"b\\\\c\\nd\",path=\"/\"}} 12.5\n")
    );
}

#[test]
fn watchdog_state_and_restarts_by_outcome() {
    use crate::status::watchdog::{Outcome, State, Status};
    let status = Status::new(&crate::config::WatchdogSettings::default());
    let text = render_watchdog(&status, Format::Prometheus);
    assert_eq!(
        value(&text, r#"mount_monitor_watchdog_state{state="disabled"}"#),
        1.0
    );
    for state in State::ALL.into_iter().filter(|s| *s != State::Disabled) {
        let series = format!(
            r#"mount_monitor_watchdog_state{{state="{}"}}"#,
            state.as_str()
        );
        assert_eq!(value(&text, &series), 0.0, "{series}");
    }
    for outcome in Outcome::ALL {
        let series = format!(
            r#"mount_monitor_watchdog_restarts_total{{outcome="{}"}}"#,
            outcome.as_str()
        );
        assert_eq!(value(&text, &series), 0.0, "{series}");
    }
    assert!(
        text.contains("# TYPE mount_monitor_watchdog_restarts_total counter\n"),
        "{text}"
    );
    let enabled = crate::config::WatchdogSettings {
        enabled: true,
        ..Default::default()
    };
    let text = render_watchdog(&Status::new(&enabled), Format::Prometheus);
    assert_eq!(
        value(&text, r#"mount_monitor_watchdog_state{state="arming"}"#),
        1.0
    );
}

#[test]
fn accept_header_picks_the_format() {
    let prometheus_scraper = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    for (accept, expected) in [
        (Some(prometheus_scraper), Format::OpenMetrics),
        (Some("application/openmetrics-text"), Format::OpenMetrics),
        (
            Some("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5"),
            Format::Prometheus,
        ),
        (Some("application/openmetrics-text;q=0"), Format::Prometheus),
        (Some("text/plain;version=0.0.4"), Format::Prometheus),
        (Some("*/*"), Format::Prometheus),
        (Some("application/json"), Format::Prometheus),
        (None, Format::Prometheus),
    ] {
        assert_eq!(Format::negotiate(accept), expected, "{accept:?}");
    }
}

#[test]
fn label_values_are_escaped() {
    let spec = MountSpec::plain(
        Some("a\"b\\c".into()),
        "/mnt/odd\nname".into(),
        &Settings::default(),
    );
    let snapshot = Snapshot {
        mounts: vec![Arc::new(MountView {
            spec: Arc::new(spec),
            state: MountState::default(),
            stuck_since: None,
        })],
        initialized: true,
        ..Default::default()
    };
    let text = render(
        Arc::new(snapshot),
        Instant::now(),
        Format::Prometheus,
        MetricsDetail::Basic,
    );
    assert!(
        text.contains(
            r#"mount_monitor_mount_up{mount="a\"b\\c",path="/mnt/odd\nname",optional="false"} 0"#
        ),
        "{text}"
    );
}
