//! `check`'s human-readable table.

use crate::snapshot::MountView;
use crate::state::Health;

/// One row per mount: mount, state, reason, free space, fs type, check time.
pub fn table(views: &[MountView]) -> String {
    let header = ["MOUNT", "STATE", "REASON", "FREE", "FSTYPE", "CHECKED IN"].map(String::from);
    let rows: Vec<[String; 6]> = views
        .iter()
        .map(|v| {
            let state = &v.state;
            let stats = state.stats.as_ref();
            [
                v.label(),
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
    use crate::probe::{Failure, Stats};
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
