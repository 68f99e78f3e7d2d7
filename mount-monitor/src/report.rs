//! What one-round modes report: `check`'s human-readable table, and init-container mode's log
//! lines, round after round while it waits for the mounts (`waitTimeout`).

use std::time::{Duration, Instant};

use crate::snapshot::MountView;
use crate::state::Health;

/// How often init-container mode says which mounts it still waits for, between changes.
pub const WAITING_SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// One mount's result in a round: `None` passed, else its reason code.
type Result = Option<&'static str>;

fn result(view: &MountView) -> Result {
    match (&view.state.health, &view.state.failure) {
        (Health::Healthy, _) => None,
        (_, failure) => Some(failure.as_ref().map_or("error", |f| f.reason.code())),
    }
}

/// `name (reason: detail)` for every mount of `views` that failed, required ones first.
pub fn failing(views: &[MountView]) -> String {
    let mut failed: Vec<&MountView> = views
        .iter()
        .filter(|v| v.state.health != Health::Healthy)
        .collect();
    failed.sort_by_key(|v| v.spec.optional);
    failed
        .iter()
        .map(|v| {
            let (reason, detail) = v
                .state
                .failure
                .as_ref()
                .map_or(("error", ""), |f| (f.reason.code(), f.detail.as_str()));
            let optional = if v.spec.optional { ", optional" } else { "" };
            format!("{} ({reason}{optional}: {detail})", v.label())
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Init-container mode's log: each mount's `mount check passed` or `mount check failed` in the
/// first round and whenever its result changes (not once a second while it waits), and a
/// `waiting for mounts` line every [`WAITING_SUMMARY_EVERY`] naming those still failing.
pub struct RoundLog {
    last: Vec<Result>,
    started: Instant,
    summarized: Instant,
    until: Instant,
}

impl RoundLog {
    pub fn new(until: Instant) -> RoundLog {
        let now = Instant::now();
        RoundLog {
            last: Vec::new(),
            started: now,
            summarized: now,
            until,
        }
    }

    pub fn round(&mut self, views: &[MountView]) {
        let first = self.last.is_empty();
        for (i, view) in views.iter().enumerate() {
            let now = result(view);
            if !first && self.last.get(i) == Some(&now) {
                continue;
            }
            let name = view.spec.name.as_deref().unwrap_or("");
            let path = view.spec.shown_path.as_str();
            let duration = view
                .state
                .check_duration
                .map(|d| format!("{d:?}"))
                .unwrap_or_default();
            // Present only for an optional mount: DMM's lines keep their fields.
            let optional = view.spec.optional.then_some(true);
            match now {
                None => tracing::info!(name, path, duration, optional, "mount check passed"),
                Some(reason) => {
                    let error = view
                        .state
                        .failure
                        .as_ref()
                        .map_or("", |f| f.detail.as_str());
                    tracing::error!(
                        name,
                        path,
                        error,
                        reason,
                        duration,
                        optional,
                        "mount check failed"
                    );
                }
            }
        }
        self.last = views.iter().map(result).collect();
        let now = Instant::now();
        if !first
            && now.duration_since(self.summarized) >= WAITING_SUMMARY_EVERY
            && !crate::snapshot::all_healthy(views)
        {
            self.summarized = now;
            tracing::info!(
                failing = failing(views),
                waited = format!("{}s", now.duration_since(self.started).as_secs()),
                left = format!("{}s", self.until.saturating_duration_since(now).as_secs()),
                "waiting for mounts"
            );
        }
    }
}

/// One row per mount: mount, state, reason, free space, fs type, check time.
pub fn table(views: &[MountView]) -> String {
    let header = ["MOUNT", "STATE", "REASON", "FREE", "FSTYPE", "CHECKED IN"].map(String::from);
    let rows: Vec<[String; 6]> = views
        .iter()
        .map(|v| {
            let state = &v.state;
            let stats = state.stats.as_ref();
            [
                // It decides no exit code: say so where it shows as failed.
                if v.spec.optional {
                    format!("{} (optional)", v.label())
                } else {
                    v.label()
                },
                state.health.to_string(),
                state
                    .failure
                    .as_ref()
                    .map(|f| f.reason.code().to_owned())
                    .unwrap_or_else(|| "-".into()),
                stats
                    .filter(|s| s.size_bytes > 0)
                    .map(|s| {
                        format!(
                            "{} ({:.0}%)",
                            bytesize::ByteSize(s.avail_bytes).display().iec_short(),
                            s.avail_bytes as f64 * 100.0 / s.size_bytes as f64
                        )
                    })
                    .unwrap_or_else(|| "-".into()),
                stats
                    .and_then(|s| s.fs_type.clone())
                    .unwrap_or_else(|| "-".into()),
                state
                    .check_duration
                    .map(checked_in)
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    for v in views.iter().filter(|v| v.state.health != Health::Healthy) {
        if let Some(f) = &v.state.failure {
            out.push_str(&format!(
                "\n{}: {}\n  {}\n",
                v.label(),
                f.detail,
                f.reason.advice()
            ));
        }
    }
    out
}

/// A check's duration in the unit a person reads at a glance: `85µs`, `1.5ms`, `2.25s`.
fn checked_in(duration: std::time::Duration) -> String {
    let micros = duration.as_micros();
    if micros < 1000 {
        format!("{micros}µs")
    } else if micros < 1_000_000 {
        format!("{:.1}ms", micros as f64 / 1e3)
    } else {
        format!("{:.2}s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MountSpec, Settings};
    use crate::outcome::Stats;
    use crate::reason::Failure;
    use crate::reason::Reason;
    use crate::state::MountState;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    #[test]
    fn table_shows_state_reason_and_space() {
        let settings = Settings::default();
        let mut ok = MountState::default();
        ok.record(Ok(()), SystemTime::now(), 1, 1);
        ok.stats = Some(Stats {
            fs_type: Some("tmpfs".into()),
            size_bytes: 1 << 30,
            avail_bytes: 1 << 29,
            ..Default::default()
        });
        ok.check_duration = Some(Duration::from_micros(1500));
        let mut bad = MountState::default();
        bad.record(
            Err(Failure::new(
                Reason::NotMounted,
                "/mnt/b is not a mount point",
            )),
            SystemTime::now(),
            1,
            1,
        );
        let views = vec![
            MountView {
                spec: Arc::new(MountSpec::plain(
                    Some("a".into()),
                    "/mnt/a".into(),
                    &settings,
                )),
                state: ok,
                stuck_since: None,
            },
            MountView {
                spec: Arc::new(MountSpec::plain(
                    Some("b".into()),
                    "/mnt/b".into(),
                    &settings,
                )),
                state: bad,
                stuck_since: None,
            },
        ];
        let out = table(&views);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("MOUNT  STATE"), "{out}");
        assert!(
            lines[1].contains("healthy") && lines[1].contains("512") && lines[1].contains("50%"),
            "{out}"
        );
        assert!(
            lines[1].contains("tmpfs") && lines[1].contains("1.5ms"),
            "{out}"
        );
        assert!(
            lines[2].contains("unhealthy") && lines[2].contains("not_mounted"),
            "{out}"
        );
        assert!(out.contains("b: /mnt/b is not a mount point"), "{out}");
    }

    #[test]
    fn check_times_read_at_a_glance() {
        assert_eq!(checked_in(Duration::from_micros(85)), "85µs");
        assert_eq!(checked_in(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(checked_in(Duration::from_millis(2250)), "2.25s");
    }
}
