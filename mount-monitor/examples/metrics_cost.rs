//! What `/metrics` costs per mount: series, bytes, and how many times a second one core renders
//! the whole body (what a scrape costs whenever the snapshot has changed since the last one),
//! for each detail and format, at 10 and 1,000 healthy tmpfs mounts labelled like those of
//! `cargo xtask bench` (name `m00000`, path `/work/main/target/bench/perf/mnt/m00000`).
//!
//! `cargo run --release -p mount-monitor --example metrics_cost` prints BENCHMARKS.md's table.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mount_monitor::config::{MountSpec, Settings};
use mount_monitor::metrics::{Format, MetricsDetail, render};
use mount_monitor::outcome::Stats;
use mount_monitor::snapshot::{MountView, Snapshot};
use mount_monitor::state::MountState;

fn snapshot(mounts: usize) -> Arc<Snapshot> {
    let settings = Settings::default();
    let mounts = (0..mounts)
        .map(|i| {
            let name = format!("m{i:05}");
            let path = PathBuf::from(format!("/work/main/target/bench/perf/mnt/{name}"));
            let mut state = MountState::default();
            for micros in [80, 120, 95] {
                state.record(Ok(()), SystemTime::now(), 3, 1);
                state.measured(
                    Some(Stats {
                        fs_type: Some("tmpfs".into()),
                        read_only: false,
                        size_bytes: 1 << 20,
                        avail_bytes: 1 << 20,
                        free_bytes: 1 << 20,
                        files: 251_434,
                        files_free: 251_433,
                    }),
                    Some(Duration::from_micros(micros)),
                );
            }
            Arc::new(MountView {
                spec: Arc::new(MountSpec::plain(Some(name), path, &settings)),
                state,
                stuck_since: None,
            })
        })
        .collect();
    Arc::new(Snapshot {
        mounts,
        initialized: true,
        ..Default::default()
    })
}

/// Whole renders per second on this thread: the best of 7 rounds of 200 ms, the rounds of every
/// case interleaved, so that a busy neighbour on a shared machine slows one round, not one case.
fn renders_per_second(cases: &[(Arc<Snapshot>, Format, MetricsDetail)]) -> Vec<f64> {
    let mut best = vec![0.0f64; cases.len()];
    for _ in 0..7 {
        for (i, (snapshot, format, detail)) in cases.iter().enumerate() {
            let started = Instant::now();
            let mut renders = 0u32;
            while started.elapsed() < Duration::from_millis(200) {
                std::hint::black_box(render(
                    Arc::clone(snapshot),
                    Instant::now(),
                    *format,
                    *detail,
                ));
                renders += 1;
            }
            best[i] = best[i].max(f64::from(renders) / started.elapsed().as_secs_f64());
        }
    }
    best
}

fn main() {
    let empty = snapshot(0);
    let (ten, thousand) = (snapshot(10), snapshot(1000));
    let variants = [
        (MetricsDetail::Full, Format::Prometheus),
        (MetricsDetail::Full, Format::OpenMetrics),
        (MetricsDetail::Basic, Format::Prometheus),
        (MetricsDetail::Basic, Format::OpenMetrics),
    ];
    let cases: Vec<(Arc<Snapshot>, Format, MetricsDetail)> = variants
        .iter()
        .flat_map(|&(detail, format)| {
            [
                (Arc::clone(&ten), format, detail),
                (Arc::clone(&thousand), format, detail),
            ]
        })
        .collect();
    let rates = renders_per_second(&cases);
    println!(
        "| detail | format | series per mount | bytes per mount | body, 10 mounts | renders/s, 10 mounts | body, 1,000 mounts | renders/s, 1,000 mounts |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (i, &(detail, format)) in variants.iter().enumerate() {
        let body = |s: &Arc<Snapshot>| render(Arc::clone(s), Instant::now(), format, detail);
        let base = body(&empty).len();
        let large = body(&thousand);
        let series = large
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains("mount=\"m00000\""))
            .count();
        println!(
            "| {detail:?} | {} | {series} | {:.0} B | {:.1} KiB | {:.0} | {:.0} KiB | {:.0} |",
            match format {
                Format::Prometheus => "0.0.4 text",
                Format::OpenMetrics => "OpenMetrics",
            },
            (large.len() - base) as f64 / 1000.0,
            body(&ten).len() as f64 / 1024.0,
            rates[2 * i],
            large.len() as f64 / 1024.0,
            rates[2 * i + 1],
        );
    }
}
