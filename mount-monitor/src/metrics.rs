//! `/metrics`: the snapshot in the Prometheus text format (0.0.4), encoded by the official
//! `prometheus-client` crate. Rendering reads the snapshot only, so a scrape never waits for a
//! mount; the filesystem gauges are what node_exporter's `node_filesystem_*` give, without
//! blocking on a hung mount.
//!
//! Label values are bounded: mount names and paths come from the configuration (or the mount
//! table), reasons and states from fixed tables, never from error messages.

use std::sync::Arc;
use std::time::{Instant, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::monitor::{MountView, Snapshot};
use crate::probe::Stats;
use crate::reason::Reason;
use crate::state::Health;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Every metric name starts with this.
pub const PREFIX: &str = "mount_monitor";

/// The exposition of `snapshot`, as seen at `now` (for how long a check has been stuck).
pub fn render(snapshot: Arc<Snapshot>, now: Instant) -> String {
    let mut registry = Registry::with_prefix(PREFIX);
    registry.register_collector(Box::new(SnapshotCollector { snapshot, now }));
    let mut out = String::new();
    // Writing into a String cannot fail, and the collector reports no errors of its own.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

/// The watchdog's families: `watchdog_state` (1 for the current state, 0 for the others) and
/// `watchdog_restarts_total` by outcome. Rendered apart from [`render`], whose output is kept
/// per snapshot, because the watchdog's state changes between snapshots.
pub fn render_watchdog(status: &crate::watchdog::Status) -> String {
    let mut registry = Registry::with_prefix(PREFIX);
    registry.register_collector(Box::new(WatchdogCollector {
        state: status.view().state,
        outcomes: status.outcomes(),
    }));
    let mut out = String::new();
    // Writing into a String cannot fail, and the collector reports no errors of its own.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

#[derive(Debug)]
struct WatchdogCollector {
    state: crate::watchdog::State,
    outcomes: Vec<(crate::watchdog::Outcome, u64)>,
}

impl Collector for WatchdogCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut state = encoder.encode_descriptor(
            "watchdog_state",
            "The pod-restart watchdog's state: 1 for the current one, 0 for the others.",
            None,
            MetricType::Gauge,
        )?;
        for each in crate::watchdog::State::ALL {
            state
                .encode_family(&[("state", each.as_str())])?
                .encode_gauge(&i64::from(each == self.state))?;
        }
        // Every outcome is present from the start, so that the first restart is an increase.
        let mut restarts = encoder.encode_descriptor(
            "watchdog_restarts",
            "Pod restarts the watchdog triggered since start, by how they ended.",
            None,
            MetricType::Counter,
        )?;
        for (outcome, count) in &self.outcomes {
            restarts
                .encode_family(&[("outcome", outcome.as_str())])?
                .encode_counter::<[(&str, &str); 1], _, u64>(count, None)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct SnapshotCollector {
    snapshot: Arc<Snapshot>,
    now: Instant,
}

/// The labels of every per-mount series.
type MountLabels<'a> = [(&'static str, &'a str); 2];

/// One mount's labels, computed once per scrape.
struct Labelled<'a> {
    view: &'a MountView,
    mount: String,
    path: String,
}

impl Labelled<'_> {
    fn labels(&self) -> MountLabels<'_> {
        [("mount", &self.mount), ("path", &self.path)]
    }
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mounts: Vec<Labelled> = self
            .snapshot
            .mounts
            .iter()
            .map(|view| Labelled {
                view,
                mount: view.label(),
                path: view.spec.path.display().to_string(),
            })
            .collect();

        let mut build = encoder.encode_descriptor(
            "build_info",
            "The running mount-monitor's version; always 1.",
            None,
            MetricType::Gauge,
        )?;
        build
            .encode_family(&[("version", crate::VERSION)])?
            .encode_gauge(&1i64)?;
        ConstGauge::new(mounts.len() as i64).encode(encoder.encode_descriptor(
            "mounts",
            "Mounts being monitored.",
            None,
            MetricType::Gauge,
        )?)?;

        per_mount(
            &mut encoder,
            &mounts,
            "mount_up",
            "1 when the mount is healthy (what /readyz/<mount> says), else 0.",
            None,
            MetricType::Gauge,
            |m, e| e.encode_gauge(&i64::from(m.view.state.health == Health::Healthy)),
        )?;
        let mut state = encoder.encode_descriptor(
            "mount_state",
            "The mount's state: 1 for the current one, 0 for the others.",
            None,
            MetricType::Gauge,
        )?;
        for m in &mounts {
            for health in Health::ALL {
                let [mount, path] = m.labels();
                state
                    .encode_family(&[mount, path, ("state", health.as_str())])?
                    .encode_gauge(&i64::from(m.view.state.health == health))?;
            }
        }

        let mut duration = encoder.encode_descriptor(
            "mount_check_duration",
            "How long checks of the mount took, when they returned.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for m in &mounts {
            let histogram = &m.view.state.durations;
            let buckets: Vec<(f64, u64)> = histogram.buckets().collect();
            duration
                .encode_family(&m.labels())?
                .encode_histogram::<MountLabels>(
                    histogram.sum_seconds,
                    histogram.count,
                    &buckets,
                    None,
                )?;
        }
        per_mount(
            &mut encoder,
            &mounts,
            "mount_checks",
            "Checks of the mount since start, failed or not.",
            None,
            MetricType::Counter,
            |m, e| e.encode_counter::<MountLabels, _, u64>(&m.view.state.checks_total, None),
        )?;
        // Every reason is present from the start, so that the first failure is an increase.
        let mut failures = encoder.encode_descriptor(
            "mount_check_failures",
            "Failed checks of the mount since start, by reason code (see the README).",
            None,
            MetricType::Counter,
        )?;
        for m in &mounts {
            for reason in Reason::ALL {
                let count = m.view.state.failures_total.get(reason).copied();
                let [mount, path] = m.labels();
                failures
                    .encode_family(&[mount, path, ("reason", reason.code())])?
                    .encode_counter::<MountLabels, _, u64>(&count.unwrap_or(0), None)?;
            }
        }
        let mut last_success = encoder.encode_descriptor(
            "mount_last_success_timestamp",
            "When the latest successful check of the mount ended; absent before the first one.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        for m in &mounts {
            let Some(at) = m.view.state.last_success else {
                continue;
            };
            let seconds = at
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            last_success
                .encode_family(&m.labels())?
                .encode_gauge(&seconds)?;
        }
        per_mount(
            &mut encoder,
            &mounts,
            "mount_stuck",
            "For how long a check of the mount has been blocked past its timeout; 0 when none is.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            |m, e| {
                let stuck = m.view.stuck_for(self.now).unwrap_or_default();
                e.encode_gauge(&stuck.as_secs_f64())
            },
        )?;

        filesystem(&mut encoder, &mounts)
    }
}

/// One series per mount of one metric.
fn per_mount(
    encoder: &mut DescriptorEncoder,
    mounts: &[Labelled],
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric_type: MetricType,
    mut value: impl FnMut(&Labelled, &mut MetricEncoder) -> Result<(), std::fmt::Error>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, unit, metric_type)?;
    for m in mounts {
        value(m, &mut metric.encode_family(&m.labels())?)?;
    }
    Ok(())
}

/// node_exporter's filesystem gauges, present only while the latest check got statfs figures:
/// a mount that is gone or hangs has none, as in node_exporter.
fn filesystem(encoder: &mut DescriptorEncoder, mounts: &[Labelled]) -> Result<(), std::fmt::Error> {
    type Field = fn(&Stats) -> u64;
    let gauges: [(&str, &str, Option<Unit>, Field); 6] = [
        (
            "filesystem_size",
            "Filesystem size.",
            Some(Unit::Bytes),
            |s| s.size_bytes,
        ),
        (
            "filesystem_avail",
            "Filesystem space available to unprivileged users.",
            Some(Unit::Bytes),
            |s| s.avail_bytes,
        ),
        (
            "filesystem_free",
            "Filesystem free space.",
            Some(Unit::Bytes),
            |s| s.free_bytes,
        ),
        (
            "filesystem_files",
            "Filesystem total inodes (0 on filesystems without inodes).",
            None,
            |s| s.files,
        ),
        (
            "filesystem_files_free",
            "Filesystem free inodes.",
            None,
            |s| s.files_free,
        ),
        (
            "filesystem_readonly",
            "1 when the filesystem is mounted read-only.",
            None,
            |s| u64::from(s.read_only),
        ),
    ];
    for (name, help, unit, field) in &gauges {
        let mut metric = encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
        for m in mounts {
            let state = &m.view.state;
            let Some(stats) = state.stats.as_ref().filter(|_| state.stats_current) else {
                continue;
            };
            let [mount, path] = m.labels();
            let fstype = stats.fs_type.as_deref().unwrap_or("");
            metric
                .encode_family(&[mount, path, ("fstype", fstype)])?
                .encode_gauge(&field(stats))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MountSpec, Settings};
    use crate::probe::Failure;
    use crate::state::MountState;
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
        let snapshot = Snapshot {
            mounts: vec![view("movies", healthy, None), view("tv", gone, stuck_since)],
            initialized: true,
            ..Default::default()
        };
        render(Arc::new(snapshot), now)
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
                r#"mount_monitor_mount_up{mount="movies",path="/mnt/movies"}"#
            ),
            1.0
        );
        assert_eq!(
            value(
                &text,
                r#"mount_monitor_mount_up{mount="tv",path="/mnt/tv"}"#
            ),
            0.0
        );
        for (state, expected) in [("healthy", 0.0), ("unhealthy", 1.0), ("unknown", 0.0)] {
            let series = format!(
                r#"mount_monitor_mount_state{{mount="tv",path="/mnt/tv",state="{state}"}}"#
            );
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
    fn watchdog_state_and_restarts_by_outcome() {
        use crate::watchdog::{Outcome, State, Status};
        let status = Status::new(&crate::config::WatchdogSettings::default());
        let text = render_watchdog(&status);
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
        let text = render_watchdog(&Status::new(&enabled));
        assert_eq!(
            value(&text, r#"mount_monitor_watchdog_state{state="arming"}"#),
            1.0
        );
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
        let text = render(Arc::new(snapshot), Instant::now());
        assert!(
            text.contains(r#"mount_monitor_mount_up{mount="a\"b\\c",path="/mnt/odd\nname"} 0"#),
            "{text}"
        );
    }
}
