//! `/metrics`: the snapshot in the Prometheus text format (0.0.4) or, when the scraper asks for
//! it, OpenMetrics 1.0, both encoded by the official `prometheus-client` crate. Rendering reads
//! the snapshot only, so a scrape never waits for a mount; the filesystem gauges are what
//! node_exporter's `node_filesystem_*` give, without blocking on a hung mount.
//!
//! Label values are bounded: mount names and paths come from the configuration (or the mount
//! table), reasons and states from fixed tables, never from error messages.
//!
//! Series cost money in every Prometheus that scrapes a sidecar, so [`MetricsDetail::Basic`]
//! (the default) keeps what the alerts and the dashboard in `deploy/` use, at most 16 series per
//! healthy mount; [`MetricsDetail::Full`] brings back every duration bucket, failures by reason,
//! all four states and every filesystem gauge (about 50). The README's Metrics section has the
//! cost of each.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::outcome::Stats;
use crate::reason::Reason;
use crate::snapshot::{MountView, Snapshot};
use crate::state::{BASIC_DURATION_BUCKETS, Health};

/// Every metric name starts with this.
pub const PREFIX: &str = "mount_monitor";

/// Series per healthy mount at most, with the default [`MetricsDetail::Basic`].
pub const SERIES_BUDGET: usize = 16;

/// The exposition formats `/metrics` speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format 0.0.4, for anything that does not ask for OpenMetrics.
    Prometheus,
    /// OpenMetrics 1.0 text: `# EOF`, `# UNIT`, counters' and histograms' `_created`.
    OpenMetrics,
}

impl Format {
    /// What an `Accept` header prefers: OpenMetrics when it ranks `application/openmetrics-text`
    /// at least as high as plain text (Prometheus' own header ranks it first), else 0.0.4.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let (mut openmetrics, mut text) = (0.0f32, 0.0f32);
        for range in accept.unwrap_or_default().split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let quality = parts
                .find_map(|p| p.strip_prefix("q="))
                .map_or(Some(1.0), |q| q.parse::<f32>().ok())
                .unwrap_or(0.0);
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(quality),
                "text/plain" | "text/*" | "*/*" => text = text.max(quality),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

pub use crate::config::MetricsDetail;

/// The exposition of `snapshot` in `format`, as seen at `now` (for how long a check has been
/// stuck).
pub fn render(
    snapshot: Arc<Snapshot>,
    now: Instant,
    format: Format,
    detail: MetricsDetail,
) -> String {
    let mut registry = Registry::with_prefix(PREFIX);
    registry.register_collector(Box::new(SnapshotCollector {
        snapshot: Arc::clone(&snapshot),
        now,
        detail,
    }));
    // Room for the whole body up front: growing a string of megabytes copies it again and again.
    let per_mount = match detail {
        MetricsDetail::Basic => 2_500,
        MetricsDetail::Full => 9_000,
    };
    let mut out = String::with_capacity(4096 + per_mount * snapshot.mounts.len());
    // Writing into a String cannot fail, and the collector reports no errors of its own.
    match format {
        Format::Prometheus => {
            let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        }
        Format::OpenMetrics => {
            let _ = prometheus_client::encoding::text::encode_registry(&mut out, &registry);
            out = with_created(&out, &created_by_mount(&snapshot));
            out.push_str("# EOF\n");
        }
    }
    out
}

/// When each mount's counters started, by its `mount` label: the value of its `_created`
/// samples, in seconds since the epoch, written once for all of them.
fn created_by_mount(snapshot: &Snapshot) -> HashMap<String, String> {
    snapshot
        .mounts
        .iter()
        // `{:?}` writes a float with a decimal point or an exponent, as OpenMetrics wants.
        .map(|view| {
            (
                view.label(),
                format!("{:?}", epoch_seconds(view.state.since)),
            )
        })
        .collect()
}

fn epoch_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `text` (OpenMetrics, without `# EOF`) with a `_created` sample after each counter's `_total`
/// and after each histogram's `+Inf` bucket: `prometheus-client` has no way to write one, and
/// OpenMetrics wants it so that a reader knows when the count started rather than guessing
/// from the first scrape. Every counter and histogram here is per mount and starts with the
/// `mount` label (a bucket with `le`, which the OpenMetrics encoder writes first).
fn with_created(text: &str, created: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut family: Option<(&str, &str)> = None;
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if let Some(descriptor) = line.strip_prefix("# TYPE ") {
            family = descriptor.split_once(' ');
            continue;
        }
        let Some((name, kind)) = family.filter(|_| !line.starts_with('#')) else {
            continue;
        };
        let Some((series, _value)) = line.rsplit_once(' ') else {
            continue;
        };
        // (what opens the label set, the labels after it) of the sample to date.
        let labels = match kind {
            "counter" => series
                .strip_prefix(name)
                .and_then(|s| s.strip_prefix("_total{"))
                .map(|labels| ("{", labels)),
            "histogram" => series
                .strip_prefix(name)
                .and_then(|s| s.strip_prefix(r#"_bucket{le="+Inf","#))
                .map(|labels| ("{", labels)),
            _ => None,
        };
        let Some((open, labels)) = labels else {
            continue;
        };
        if let Some(since) = mount_label(labels).and_then(|mount| created.get(mount.as_ref())) {
            for part in [name, "_created", open, labels, " ", since, "\n"] {
                out.push_str(part);
            }
        }
    }
    out
}

/// The value of the leading `mount` label of an encoded label set (after its `{`), unescaped.
fn mount_label(labels: &str) -> Option<std::borrow::Cow<'_, str>> {
    let value = labels.strip_prefix(r#"mount=""#)?;
    let mut escaped = false;
    let mut end = None;
    for (i, c) in value.char_indices() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let raw = &value[..end?];
    if !raw.contains('\\') {
        return Some(raw.into());
    }
    let mut unescaped = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            unescaped.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => unescaped.push('\n'),
            Some(other) => unescaped.push(other),
            None => {}
        }
    }
    Some(unescaped.into())
}

/// The watchdog's families: `watchdog_state` (1 for the current state, 0 for the others) and
/// `watchdog_restarts_total` by outcome. Rendered apart from [`render`], whose output is kept
/// per snapshot, because the watchdog's state changes between snapshots (`/metrics` keeps it
/// until the watchdog's next change).
/// In OpenMetrics, without `# EOF`: the caller puts these families before it.
pub fn render_watchdog(status: &crate::status::watchdog::Status, format: Format) -> String {
    render_collector(
        WatchdogCollector {
            state: status.view().state,
            outcomes: status.outcomes(),
        },
        format,
    )
}

/// One collector's families, without OpenMetrics' `# EOF`.
fn render_collector(collector: impl Collector + 'static, format: Format) -> String {
    let mut registry = Registry::with_prefix(PREFIX);
    registry.register_collector(Box::new(collector));
    let mut out = String::new();
    // Writing into a String cannot fail, and the collector reports no errors of its own.
    let _ = match format {
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        }
        Format::OpenMetrics => {
            prometheus_client::encoding::text::encode_registry(&mut out, &registry)
        }
    };
    out
}

#[derive(Debug)]
struct WatchdogCollector {
    state: crate::status::watchdog::State,
    outcomes: Vec<(crate::status::watchdog::Outcome, u64)>,
}

impl Collector for WatchdogCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut state = encoder.encode_descriptor(
            "watchdog_state",
            "The pod-restart watchdog's state: 1 for the current one, 0 for the others.",
            None,
            MetricType::Gauge,
        )?;
        for each in crate::status::watchdog::State::ALL {
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

/// The Docker actions' families (with `--docker-actions` only): `docker_connected` and
/// `docker_actions_total` by action and outcome, every combination from 0. Rendered apart, as
/// the watchdog's are.
pub fn render_docker(status: &crate::status::docker::Status, format: Format) -> String {
    render_collector(
        DockerCollector {
            connected: status.view().connected,
            counts: status.counts(),
        },
        format,
    )
}

#[derive(Debug)]
struct DockerCollector {
    connected: bool,
    counts: Vec<(
        crate::status::docker::Action,
        crate::status::docker::Outcome,
        u64,
    )>,
}

impl Collector for DockerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encoder
            .encode_descriptor(
                "docker_connected",
                "1 when the Docker Engine answers the Docker actions, 0 when it does not.",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&i64::from(self.connected))?;
        let mut actions = encoder.encode_descriptor(
            "docker_actions",
            "Container actions taken by label since start, by action and outcome.",
            None,
            MetricType::Counter,
        )?;
        for (action, outcome, count) in &self.counts {
            actions
                .encode_family(&[("action", action.as_str()), ("outcome", outcome.as_str())])?
                .encode_counter::<[(&str, &str); 1], _, u64>(count, None)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct SnapshotCollector {
    snapshot: Arc<Snapshot>,
    now: Instant,
    detail: MetricsDetail,
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
        let full = self.detail == MetricsDetail::Full;
        let mounts: Vec<Labelled> = self
            .snapshot
            .mounts
            .iter()
            .map(|view| Labelled {
                view,
                mount: view.label(),
                path: crate::paths::display_path(&view.spec.path),
            })
            .collect();

        encoder
            .encode_descriptor(
                "build",
                "The running mount-monitor's version; always 1.",
                None,
                MetricType::Info,
            )?
            .encode_info(&[("version", crate::VERSION)])?;
        ConstGauge::new(mounts.len() as i64).encode(encoder.encode_descriptor(
            "mounts",
            "Mounts being monitored.",
            None,
            MetricType::Gauge,
        )?)?;
        ConstGauge::new(self.snapshot.blocked_checks as i64).encode(encoder.encode_descriptor(
            "blocked_checks",
            "Checks blocked in the kernel past their timeout, a thread each (at most maxBlockedChecks once a mount is remounted).",
            None,
            MetricType::Gauge,
        )?)?;

        // `optional` lets alert rules rank an optional mount's failure below a required one's.
        let mut up = encoder.encode_descriptor(
            "mount_up",
            "1 when the mount is healthy (what /readyz/<mount> says), else 0. optional=\"true\": the mount counts in no verdict over all mounts.",
            None,
            MetricType::Gauge,
        )?;
        for m in &mounts {
            let [mount, path] = m.labels();
            let optional = if m.view.spec.optional {
                "true"
            } else {
                "false"
            };
            up.encode_family(&[mount, path, ("optional", optional)])?
                .encode_gauge(&i64::from(m.view.state.health == Health::Healthy))?;
        }
        // Basic: the current state only, since the other three are 0 by definition; a change of
        // state ends the old series (Prometheus marks it stale) and starts the new one.
        let mut state = encoder.encode_descriptor(
            "mount_state",
            if full {
                "The mount's state: 1 for the current one, 0 for the others."
            } else {
                "The mount's current state, always 1 (--metrics-detail full lists the others at 0)."
            },
            None,
            MetricType::Gauge,
        )?;
        for m in &mounts {
            for health in Health::ALL {
                let current = m.view.state.health == health;
                if full || current {
                    let [mount, path] = m.labels();
                    state
                        .encode_family(&[mount, path, ("state", health.as_str())])?
                        .encode_gauge(&i64::from(current))?;
                }
            }
        }
        let mut reason = encoder.encode_descriptor(
            "mount_reason",
            "Why the mount is not healthy: its latest failure's reason code, always 1; absent while it is healthy.",
            None,
            MetricType::Gauge,
        )?;
        for m in &mounts {
            let Some(failure) = &m.view.state.failure else {
                continue;
            };
            let [mount, path] = m.labels();
            reason
                .encode_family(&[mount, path, ("reason", failure.reason.code())])?
                .encode_gauge(&1i64)?;
        }

        let mut duration = encoder.encode_descriptor(
            "mount_check_duration",
            "How long checks of the mount took, when they returned.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for m in &mounts {
            let histogram = &m.view.state.durations;
            let buckets: Vec<(f64, u64)> = if full {
                histogram.buckets().collect()
            } else {
                histogram.coarse_buckets(&BASIC_DURATION_BUCKETS)
            };
            // The +Inf bucket: every observation, whichever bounds are shown.
            let shown: u64 = buckets.iter().map(|(_, n)| n).sum();
            let buckets: Vec<(f64, u64)> = buckets
                .into_iter()
                .chain([(f64::INFINITY, histogram.count - shown)])
                .collect();
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
        // Present from the start, so that the first failure is an increase. Full: one series per
        // reason code; basic: one per mount, the reason being in `mount_reason` while it lasts.
        let mut failures = encoder.encode_descriptor(
            "mount_check_failures",
            if full {
                "Failed checks of the mount since start, by reason code (see the README)."
            } else {
                "Failed checks of the mount since start (--metrics-detail full counts them by reason)."
            },
            None,
            MetricType::Counter,
        )?;
        for m in &mounts {
            let by_reason = &m.view.state.failures_total;
            if !full {
                let total: u64 = by_reason.values().sum();
                failures
                    .encode_family(&m.labels())?
                    .encode_counter::<MountLabels, _, u64>(&total, None)?;
                continue;
            }
            for reason in Reason::ALL {
                let count = by_reason.get(reason).copied().unwrap_or(0);
                let [mount, path] = m.labels();
                failures
                    .encode_family(&[mount, path, ("reason", reason.code())])?
                    .encode_counter::<MountLabels, _, u64>(&count, None)?;
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
            last_success
                .encode_family(&m.labels())?
                .encode_gauge(&epoch_seconds(at))?;
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

        filesystem(&mut encoder, &mounts, self.detail)
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
/// a mount that is gone or hangs has none, as in node_exporter. Basic detail keeps the four
/// that "filling up" needs (space and inodes, free and total); full adds the space free to root
/// and the read-only flag (which `expect` turns into a failure when it matters).
fn filesystem(
    encoder: &mut DescriptorEncoder,
    mounts: &[Labelled],
    detail: MetricsDetail,
) -> Result<(), std::fmt::Error> {
    type Field = fn(&Stats) -> u64;
    let gauges: [(&str, &str, Option<Unit>, Field, MetricsDetail); 6] = [
        (
            "filesystem_size",
            "Filesystem size.",
            Some(Unit::Bytes),
            |s| s.size_bytes,
            MetricsDetail::Basic,
        ),
        (
            "filesystem_avail",
            "Filesystem space available to unprivileged users.",
            Some(Unit::Bytes),
            |s| s.avail_bytes,
            MetricsDetail::Basic,
        ),
        (
            "filesystem_free",
            "Filesystem free space.",
            Some(Unit::Bytes),
            |s| s.free_bytes,
            MetricsDetail::Full,
        ),
        (
            "filesystem_files",
            "Filesystem total inodes (0 on filesystems without inodes).",
            None,
            |s| s.files,
            MetricsDetail::Basic,
        ),
        (
            "filesystem_files_free",
            "Filesystem free inodes.",
            None,
            |s| s.files_free,
            MetricsDetail::Basic,
        ),
        (
            "filesystem_readonly",
            "1 when the filesystem is mounted read-only.",
            None,
            |s| u64::from(s.read_only),
            MetricsDetail::Full,
        ),
    ];
    let shown = gauges
        .iter()
        .filter(|g| g.4 == MetricsDetail::Basic || detail == MetricsDetail::Full);
    for (name, help, unit, field, _) in shown {
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
mod tests;
