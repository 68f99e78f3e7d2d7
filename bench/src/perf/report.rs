//! The figures of one `cargo xtask bench perf` run, and the Markdown section they become. Pure: no
//! I/O, so the arithmetic (ratios, medians, per-mount costs) and the goals are unit-tested.

use std::fmt::Write;
use std::time::Duration;

use super::Section;
use super::peer::{PEER_CHECK_INTERVAL, PEER_FAILURE_THRESHOLD, PEER_READ_TIMEOUT};
use super::system::Status;
use super::wrk::Load;
use crate::measure::{median, seconds};

pub const SECTION: &str = "## Performance";

/// The goals of the performance issue, each checked against this run.
pub const GOAL_VS_NGINX: f64 = 1.0;
/// The release binary beside debrid-mount-monitor: at least its req/s, a p99 no higher, less
/// memory.
pub const GOAL_VS_PEER: f64 = 1.0;
pub const GOAL_P99: Duration = Duration::from_millis(2);
pub const GOAL_MUSL_VS_GLIBC: f64 = 0.95;
pub const GOAL_RSS_SMALL_MIB: f64 = 10.0;
pub const GOAL_RSS_LARGE_MIB: f64 = 40.0;
pub const GOAL_ROUND_CPU: Duration = Duration::from_millis(100);
pub const GOAL_ROUND_MOUNTS: usize = 1000;
pub const GOAL_STARTUP: Duration = Duration::from_millis(50);
/// Growth is no worse than linear while the per-mount cost at the largest size is at most this
/// factor above that at any smaller size (a lower cost per mount at larger sizes is fixed costs
/// spreading out, which is better than linear).
pub const LINEAR_WITHIN: f64 = 2.0;
/// How long a full run takes once the binaries are built (on 2 cores with `--peer`; the builds,
/// compared side by side, take about 6 of them).
pub const FULL_RUN_MINUTES: u32 = 20;

#[derive(Clone, Debug, Default)]
pub struct Report {
    /// RFC 3339, UTC.
    pub date: String,
    pub cores: usize,
    pub cpu: String,
    pub kernel: String,
    /// `name version` of every program measured.
    pub versions: Vec<String>,
    /// The load and how it was repeated, in words.
    pub settings: String,
    /// The sections this run measured: every one, or those `--only` named.
    pub sections: Vec<Section>,
    /// The release binary beside nginx, at each size.
    pub http: Vec<Endpoint>,
    /// The musl builds measured against glibc, the release binary first.
    pub musl_builds: Vec<MuslBuild>,
    /// Each build under the same load.
    pub builds: Vec<BuildLoads>,
    pub memory: Vec<Memory>,
    pub scale: Vec<Scale>,
    pub startup: Startup,
    pub scrape: Vec<Scrape>,
    /// debrid-mount-monitor beside the release binary; `None` without `--peer`.
    pub peer: Option<Peer>,
    /// Loads run again because their run had errors (a figure is never from such a run).
    pub repeated_runs: Vec<String>,
    /// (what, command line) for every kind of command the run used, in order.
    pub commands: Vec<(String, String)>,
    pub nginx_config: String,
}

/// One endpoint under the same load: the release binary beside nginx (a static file of the
/// same bytes), on the servers' CPUs.
#[derive(Clone, Debug, Default)]
pub struct Endpoint {
    pub mounts: usize,
    pub path: String,
    pub body_bytes: usize,
    pub nginx: Load,
    /// The release binary (`cargo xtask dist`, static musl).
    pub shipped: Load,
    /// The release binary's req/s over nginx's, run by run (each of its runs right after one of
    /// nginx's): the goal's figure, which a slow spell of the machine moves less than the ratio
    /// of the two medians.
    pub vs_nginx: Spread,
}

/// A static musl build measured beside the glibc build: the release binary, or the same code
/// with another allocator.
#[derive(Clone, Debug, Default)]
pub struct MuslBuild {
    /// Its allocator, as the report names it (`dlmalloc`, `musl's malloc`, …).
    pub allocator: String,
    /// The release binary (`cargo xtask dist`).
    pub shipped: bool,
    pub size_bytes: u64,
}

/// One endpoint under load on every build at once, at one size: pinned as the rest of the
/// benchmark (one runtime worker), or on every CPU (a worker per CPU, wrk beside them).
#[derive(Clone, Debug, Default)]
pub struct BuildLoads {
    pub mounts: usize,
    pub every_cpu: bool,
    pub path: String,
    pub glibc: Runs,
    /// A second glibc server: what the measurement varies by between two equal servers.
    pub control: Runs,
    /// In [`Report::musl_builds`]' order.
    pub musl: Vec<Runs>,
    /// How busy the servers kept their CPUs (1.0: always), the median of the runs; near 1 they
    /// were the bottleneck, not wrk.
    pub busy: f64,
}

/// One server's figures, run by run.
#[derive(Clone, Debug, Default)]
pub struct Runs {
    /// Requests per second.
    pub rates: Vec<f64>,
    /// CPU time per request, seconds: its threads' time on a CPU over the requests it answered.
    pub costs: Vec<f64>,
}

/// A server against glibc in the same runs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Paired {
    /// The median req/s of its runs.
    pub rate: f64,
    /// Its req/s over glibc's, run by run.
    pub rate_ratio: Spread,
    /// The median CPU time per request of its runs, seconds.
    pub cost: f64,
    /// Requests per CPU second over glibc's (glibc's CPU per request over its own), run by
    /// run: above 1, it does the same work with less CPU.
    pub per_cpu_ratio: Spread,
}

/// The median of ratios, and the lowest and highest of them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub lowest: f64,
    pub highest: f64,
}

impl Spread {
    pub fn of(ratios: &[f64]) -> Spread {
        Spread {
            median: median_f64(ratios),
            lowest: ratios.iter().copied().reduce(f64::min).unwrap_or_default(),
            highest: ratios.iter().copied().reduce(f64::max).unwrap_or_default(),
        }
    }
}

impl BuildLoads {
    /// `runs` (one server's) against glibc's, run by run.
    pub fn paired(&self, runs: &Runs) -> Paired {
        let rates: Vec<f64> = runs
            .rates
            .iter()
            .zip(&self.glibc.rates)
            .map(|(rate, glibc)| ratio(*rate, *glibc))
            .collect();
        let per_cpu: Vec<f64> = runs
            .costs
            .iter()
            .zip(&self.glibc.costs)
            .map(|(cost, glibc)| ratio(*glibc, *cost))
            .collect();
        Paired {
            rate: median_f64(&runs.rates),
            rate_ratio: Spread::of(&rates),
            cost: median_f64(&runs.costs),
            per_cpu_ratio: Spread::of(&per_cpu),
        }
    }

    /// The release binary's, when it was measured.
    pub fn shipped(&self, builds: &[MuslBuild]) -> Option<Paired> {
        let at = builds.iter().position(|b| b.shipped)?;
        Some(self.paired(self.musl.get(at)?))
    }
}

/// The median of `values` (the upper one of an even count), 0 for none.
pub fn median_f64(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    pub mounts: usize,
    pub monitor_idle: Status,
    /// Highest RSS sampled while `/metrics` was under load, KiB.
    pub monitor_load_kib: u64,
    pub exporter_idle: Status,
    pub exporter_load_kib: u64,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Scale {
    pub mounts: usize,
    /// `mount-monitor check`: the whole process, start to exit.
    pub check_wall: Duration,
    pub check_cpu: Duration,
    /// The serving process's CPU time per check interval, in steady state.
    pub serve_cpu_per_round: Duration,
}

#[derive(Clone, Debug, Default)]
pub struct Startup {
    pub mounts: usize,
    /// Process start to the first 200 from `/readyz`, every run.
    pub monitor: Vec<Duration>,
    /// Process start to the first 200 for the same path from nginx.
    pub nginx: Vec<Duration>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Scrape {
    pub mounts: usize,
    pub monitor: Load,
    pub monitor_bytes: usize,
    pub exporter: Load,
    pub exporter_bytes: usize,
}

/// debrid-mount-monitor and the release binary, both reading the same config.json with the same
/// flags, at each size.
#[derive(Clone, Debug, Default)]
pub struct Peer {
    /// What its `--version` says, or that it was built from source when it has none.
    pub version: String,
    /// The binary as given, relative to the workspace root when under it.
    pub shown: String,
    pub sizes: Vec<PeerSize>,
}

#[derive(Clone, Debug, Default)]
pub struct PeerSize {
    pub mounts: usize,
    pub http: Vec<PeerEndpoint>,
    pub monitor_idle: Status,
    /// Highest RSS sampled while `/healthz/status` was under load, KiB.
    pub monitor_load_kib: u64,
    pub peer_idle: Status,
    pub peer_load_kib: u64,
    /// Process start to the first 200 from `/healthz/ready`, every run.
    pub monitor_startup: Vec<Duration>,
    pub peer_startup: Vec<Duration>,
    pub detection: Vec<Detection>,
}

#[derive(Clone, Debug, Default)]
pub struct PeerEndpoint {
    pub path: String,
    pub peer: Load,
    /// The release binary.
    pub shipped: Load,
}

/// The faults of the detection trials, made to one mount while both servers watch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Its canary file is removed.
    CanaryRemoved,
    /// The tmpfs is detached (`umount -l`), leaving the empty directory beneath.
    Unmounted,
}

impl Fault {
    pub const ALL: [Fault; 2] = [Fault::CanaryRemoved, Fault::Unmounted];

    fn describe(self) -> &'static str {
        match self {
            Fault::CanaryRemoved => "canary removed",
            Fault::Unmounted => "unmounted",
        }
    }
}

/// From the fault to each server's first 503 on `/healthz/ready`, every trial; `None` where it
/// did not answer 503 within the trial's limit.
#[derive(Clone, Debug)]
pub struct Detection {
    pub fault: Fault,
    pub monitor: Vec<Option<Duration>>,
    pub peer: Vec<Option<Duration>>,
    /// How long a trial waited for a 503.
    pub limit: Duration,
}

/// The median and the worst of the trials that detected the fault, and how many did not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detected {
    pub median: Option<Duration>,
    pub worst: Option<Duration>,
    pub missed: usize,
}

pub fn detected(trials: &[Option<Duration>]) -> Detected {
    let times: Vec<Duration> = trials.iter().flatten().copied().collect();
    Detected {
        median: (!times.is_empty()).then(|| median(&times)),
        worst: times.iter().max().copied(),
        missed: trials.len() - times.len(),
    }
}

/// The run with the median rate (its latencies come with it).
pub fn median_load(runs: &[Load]) -> Load {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| a.requests_per_sec.total_cmp(&b.requests_per_sec));
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

pub fn ratio(value: f64, baseline: f64) -> f64 {
    if baseline > 0.0 {
        value / baseline
    } else {
        0.0
    }
}

/// `1.23×`
pub fn times(ratio: f64) -> String {
    format!("{ratio:.2}×")
}

fn rate(load: &Load) -> String {
    thousands(load.requests_per_sec.round() as u64)
}

/// `12,345`
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Milliseconds, with the precision a reader needs at that size.
pub fn ms(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn bytes(n: usize) -> String {
    if n < 10 * 1024 {
        format!("{} B", thousands(n as u64))
    } else if n < 10 * 1024 * 1024 {
        format!("{:.0} KiB", n as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
    }
}

/// One row of the builds' tables: the load, glibc's figure, then for the control and each musl
/// build its figure and ratio (`cell`), `—` where it was not measured.
fn build_row(
    e: &BuildLoads,
    glibc: &str,
    builds: usize,
    cell: impl Fn(&Paired) -> (String, Spread),
) -> String {
    let mut row = format!(
        "| {} | {} | `{}` | {glibc} |",
        thousands(e.mounts as u64),
        cpus_label(e.every_cpu),
        e.path
    );
    for runs in std::iter::once(Some(&e.control)).chain(measured(e, builds)) {
        match runs {
            Some(runs) => {
                let (figure, ratio) = cell(&e.paired(runs));
                row.push_str(&format!(
                    " {figure} ({}, {:.2}–{:.2}) |",
                    times(ratio.median),
                    ratio.lowest,
                    ratio.highest
                ));
            }
            None => row.push_str(" — |"),
        }
    }
    row
}

/// Each musl build's runs in `e`, `None` for those not measured there (on every CPU, only
/// the release binary is).
fn measured(e: &BuildLoads, builds: usize) -> impl Iterator<Item = Option<&Runs>> {
    (0..builds).map(|k| e.musl.get(k))
}

fn musl_name(build: &MuslBuild) -> String {
    if build.shipped {
        format!("musl + {} (shipped)", build.allocator)
    } else {
        format!("musl + {}", build.allocator)
    }
}

fn cpus_label(every_cpu: bool) -> &'static str {
    if every_cpu { "every CPU" } else { "pinned" }
}

fn size_mib(n: u64) -> String {
    format!("{:.2} MiB", n as f64 / (1024.0 * 1024.0))
}

fn met(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

/// Each value prefixed with its size where the size changes: `10 mounts: a`, `b`, `100 mounts: c`.
fn by_size(values: impl IntoIterator<Item = (usize, String, f64)>) -> Vec<(String, f64)> {
    let mut previous = None;
    values
        .into_iter()
        .map(|(mounts, text, value)| {
            let text = if previous == Some(mounts) {
                text
            } else {
                format!("{} mounts: {text}", thousands(mounts as u64))
            };
            previous = Some(mounts);
            (text, value)
        })
        .collect()
}

/// The fastest and the slowest run: `2.10–3.40 ms`.
fn spread(runs: &[Duration]) -> String {
    match (runs.iter().min(), runs.iter().max()) {
        (Some(&fastest), Some(&slowest)) => {
            let (fastest, slowest) = (ms(fastest), ms(slowest));
            match (fastest.strip_suffix(" ms"), slowest.strip_suffix(" ms")) {
                (Some(fastest), Some(slowest)) => format!("{fastest}–{slowest} ms"),
                _ => format!("{fastest}–{slowest}"),
            }
        }
        _ => "no run".to_owned(),
    }
}

/// Per-mount cost of a round at each size: (size, (cost − cost at the smallest size) / (size −
/// smallest size)). The smallest size is the baseline (process start-up, the heartbeat) and has
/// none.
pub fn per_mount(rows: &[(usize, Duration)]) -> Vec<(usize, Option<Duration>)> {
    let Some(&(base_mounts, base_cost)) = rows.iter().min_by_key(|(mounts, _)| *mounts) else {
        return Vec::new();
    };
    rows.iter()
        .map(|&(mounts, cost)| {
            let extra = mounts.saturating_sub(base_mounts);
            let per = (extra > 0).then(|| cost.saturating_sub(base_cost) / extra as u32);
            (mounts, per)
        })
        .collect()
}

/// Each per-mount cost relative to that at the largest size (1.00× there).
fn linearity(per_mount: &[(usize, Option<Duration>)]) -> Vec<Option<f64>> {
    let reference = per_mount
        .iter()
        .max_by_key(|(mounts, _)| *mounts)
        .and_then(|(_, per)| *per);
    per_mount
        .iter()
        .map(|(_, per)| Some(ratio(per.as_ref()?.as_secs_f64(), reference?.as_secs_f64())))
        .collect()
}

fn is_linear(ratios: &[Option<f64>]) -> bool {
    ratios.iter().flatten().all(|r| *r >= 1.0 / LINEAR_WITHIN)
}

fn micros(duration: Duration) -> String {
    format!("{:.1} µs", duration.as_secs_f64() * 1e6)
}

impl Report {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "{SECTION}\n")?;
        writeln!(
            out,
            "Written by `cargo xtask bench perf` (as root, in about {FULL_RUN_MINUTES} minutes) on \
             {}: {} cores ({}), Linux {}; {}. This machine is shared and noisy, so every figure \
             stands beside a baseline measured in the same run: read the ratios. No test asserts \
             a time.\n",
            self.date,
            self.cores,
            self.cpu,
            self.kernel,
            self.versions.join(", ")
        )?;
        if !self.is_full() {
            let names: Vec<&str> = self.sections.iter().map(|s| s.name()).collect();
            writeln!(
                out,
                "A partial run (`--only {}`): only these sections were measured. BENCHMARKS.md \
                 is written by a full run only.\n",
                names.join(",")
            )?;
        }
        writeln!(out, "{}\n", self.settings)?;
        if !self.repeated_runs.is_empty() {
            writeln!(
                out,
                "Runs with errors, each run again (no figure is from such a run): {}.\n",
                self.repeated_runs.join("; ")
            )?;
        }
        self.write_goals(out)?;
        if self.has(Section::Http) {
            self.write_http(out)?;
        }
        if self.has(Section::Builds) {
            self.write_musl(out)?;
        }
        if self.has(Section::Memory) {
            self.write_memory(out)?;
        }
        if self.has(Section::Scale) {
            self.write_scale(out)?;
        }
        if self.has(Section::Startup) {
            self.write_startup(out)?;
        }
        if self.has(Section::Memory) {
            self.write_scrape(out)?;
        }
        if self.has(Section::Peer) {
            self.write_peer(out)?;
        }
        writeln!(out, "### Commands\n")?;
        writeln!(out, "Paths are relative to the workspace root.\n")?;
        for (what, command) in &self.commands {
            writeln!(out, "- {what}: `{command}`")?;
        }
        if !self.nginx_config.is_empty() {
            writeln!(
                out,
                "\nnginx's configuration:\n\n```nginx\n{}```",
                self.nginx_config
            )?;
        }
        Ok(())
    }

    fn has(&self, section: Section) -> bool {
        self.sections.contains(&section)
    }

    fn is_full(&self) -> bool {
        Section::ALL.iter().all(|section| self.has(*section))
    }

    fn write_goals(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "### Goals\n")?;
        writeln!(out, "| goal | this run | met |")?;
        writeln!(out, "| --- | --- | --- |")?;
        if self.has(Section::Http) {
            let vs_nginx = by_size(self.http.iter().map(|e| {
                let r = e.vs_nginx.median;
                (e.mounts, format!("`{}` {}", e.path, times(r)), r)
            }));
            goal_row(
                out,
                &format!("HTTP: ≥ {GOAL_VS_NGINX:.1}× nginx's req/s"),
                &vs_nginx,
                |r| r >= GOAL_VS_NGINX,
            )?;
            let p99 = by_size(self.http.iter().map(|e| {
                (
                    e.mounts,
                    format!("`{}` {}", e.path, ms(e.shipped.p99)),
                    e.shipped.p99.as_secs_f64(),
                )
            }));
            goal_row(out, "HTTP: p99 < 2 ms", &p99, |s| {
                s < GOAL_P99.as_secs_f64()
            })?;
        }
        if self.has(Section::Builds) {
            for every_cpu in [false, true] {
                let musl = by_size(
                    self.builds
                        .iter()
                        .filter(|e| e.every_cpu == every_cpu)
                        .filter_map(|e| {
                            let r = e.shipped(&self.musl_builds)?.per_cpu_ratio.median;
                            Some((e.mounts, format!("`{}` {}", e.path, times(r)), r))
                        }),
                );
                if musl.is_empty() {
                    continue;
                }
                let cpus = if every_cpu { "on every CPU" } else { "pinned" };
                goal_row(
                    out,
                    &format!(
                        "static musl (shipped) ≥ {GOAL_MUSL_VS_GLIBC}× glibc's requests per CPU \
                         second, side by side, {cpus}"
                    ),
                    &musl,
                    |r| r >= GOAL_MUSL_VS_GLIBC,
                )?;
            }
        }
        for memory in self.memory.iter().filter(|_| self.has(Section::Memory)) {
            let limit = if memory.mounts <= 10 {
                GOAL_RSS_SMALL_MIB
            } else {
                GOAL_RSS_LARGE_MIB
            };
            let peak = memory.monitor_idle.rss_kib.max(memory.monitor_load_kib);
            goal_row(
                out,
                &format!(
                    "RSS < {limit} MiB at {} mounts",
                    thousands(memory.mounts as u64)
                ),
                &[(
                    format!(
                        "idle {}, under load {}",
                        mib(memory.monitor_idle.rss_kib),
                        mib(memory.monitor_load_kib)
                    ),
                    peak as f64 / 1024.0,
                )],
                |m| m < limit,
            )?;
        }
        let scale = if self.has(Section::Scale) {
            &self.scale[..]
        } else {
            &[]
        };
        if let Some(row) = scale.iter().find(|s| s.mounts == GOAL_ROUND_MOUNTS) {
            let check = self.check_round_costs();
            let check_round = check
                .iter()
                .find(|(mounts, _)| *mounts == GOAL_ROUND_MOUNTS)
                .map_or(Duration::ZERO, |(_, cost)| *cost);
            goal_row(
                out,
                &format!(
                    "{} mounts: < {} CPU per check round",
                    thousands(GOAL_ROUND_MOUNTS as u64),
                    ms(GOAL_ROUND_CPU)
                ),
                &[
                    (
                        format!("`check`: {}", ms(check_round)),
                        check_round.as_secs_f64(),
                    ),
                    (
                        format!("serving: {}", ms(row.serve_cpu_per_round)),
                        row.serve_cpu_per_round.as_secs_f64(),
                    ),
                ],
                |s| s < GOAL_ROUND_CPU.as_secs_f64(),
            )?;
        }
        if scale.len() > 2 {
            let check = linearity(&per_mount(&self.check_round_costs()));
            let serve = linearity(&per_mount(&self.serve_round_costs()));
            // How many times the per-mount cost at the largest size is that at a smaller one.
            let growth = |ratios: &[Option<f64>]| {
                ratios.iter().flatten().map(|r| 1.0 / r).fold(0.0, f64::max)
            };
            writeln!(
                out,
                "| CPU per round grows no faster than the mounts (per-mount cost at the largest size at most {LINEAR_WITHIN}× that at smaller ones) | `check`: {}; serving: {} | {} |",
                times(growth(&check)),
                times(growth(&serve)),
                met(is_linear(&check) && is_linear(&serve))
            )?;
        }
        if self.has(Section::Startup) {
            let startup = median(&self.startup.monitor);
            writeln!(
                out,
                "| start → `/readyz` 200 < {} ms ({} mounts) | {} | {} |",
                GOAL_STARTUP.as_millis(),
                self.startup.mounts,
                ms(startup),
                met(!self.startup.monitor.is_empty() && startup < GOAL_STARTUP)
            )?;
        }
        if self.has(Section::Peer) {
            self.write_peer_goal(out)?;
        }
        writeln!(out)
    }

    /// One row for every size: each endpoint's rate and p99 against debrid-mount-monitor's, and
    /// memory idle and under load.
    fn write_peer_goal(&self, out: &mut String) -> std::fmt::Result {
        let goal = format!(
            "beside debrid-mount-monitor: ≥ {GOAL_VS_PEER:.1}× its req/s with a p99 no higher, \
             RSS lower (idle and under load)"
        );
        let Some(peer) = &self.peer else {
            return writeln!(
                out,
                "| {goal} | not measured: run with `--peer PATH` | not measured |"
            );
        };
        let mut shown = Vec::new();
        let mut all = !peer.sizes.is_empty();
        for size in &peer.sizes {
            let mut parts = Vec::new();
            for e in &size.http {
                let r = ratio(e.shipped.requests_per_sec, e.peer.requests_per_sec);
                let p99 = ratio(e.shipped.p99.as_secs_f64(), e.peer.p99.as_secs_f64());
                all &= r >= GOAL_VS_PEER && e.shipped.p99 <= e.peer.p99;
                parts.push(format!("`{}` {} (p99 {})", e.path, times(r), times(p99)));
            }
            all &= !size.http.is_empty()
                && size.monitor_idle.rss_kib < size.peer_idle.rss_kib
                && size.monitor_load_kib < size.peer_load_kib;
            parts.push(format!(
                "RSS {} idle, {} under load",
                times(ratio(
                    size.monitor_idle.rss_kib as f64,
                    size.peer_idle.rss_kib as f64
                )),
                times(ratio(
                    size.monitor_load_kib as f64,
                    size.peer_load_kib as f64
                ))
            ));
            shown.push(format!(
                "{} mounts: {}",
                thousands(size.mounts as u64),
                parts.join(", ")
            ));
        }
        writeln!(out, "| {goal} | {} | {} |", shown.join("; "), met(all))
    }

    /// `check` CPU per size, less the process start-up measured as the round over the smallest
    /// size (one mount).
    fn check_round_costs(&self) -> Vec<(usize, Duration)> {
        let base = self
            .scale
            .iter()
            .min_by_key(|s| s.mounts)
            .map_or(Duration::ZERO, |s| s.check_cpu);
        self.scale
            .iter()
            .map(|s| (s.mounts, s.check_cpu.saturating_sub(base)))
            .collect()
    }

    fn serve_round_costs(&self) -> Vec<(usize, Duration)> {
        self.scale
            .iter()
            .map(|s| (s.mounts, s.serve_cpu_per_round))
            .collect()
    }

    fn write_http(&self, out: &mut String) -> std::fmt::Result {
        writeln!(
            out,
            "### 1. HTTP: beside nginx, the ceiling of this machine\n"
        )?;
        writeln!(
            out,
            "The release binary (`cargo xtask dist`, static musl) with 10 and with 100 tmpfs \
             mounts, and nginx (one worker) serving a static file of the same bytes as each \
             endpoint's body at that size, each on the servers' CPUs under the same `wrk` load \
             over loopback, one after the other. × nginx: the median of the ratios run by run \
             (each run of mount-monitor right after one of nginx), then the lowest and highest \
             of them.\n"
        )?;
        writeln!(
            out,
            "| mounts | endpoint | body | nginx req/s | mount-monitor req/s | × nginx | p99 nginx | p99 mount-monitor |"
        )?;
        writeln!(out, "| --- | --- | --- | --- | --- | --- | --- | --- |")?;
        for e in &self.http {
            writeln!(
                out,
                "| {} | `{}` | {} | {} | {} | {} ({:.2}–{:.2}) | {} | {} |",
                thousands(e.mounts as u64),
                e.path,
                bytes(e.body_bytes),
                rate(&e.nginx),
                rate(&e.shipped),
                times(e.vs_nginx.median),
                e.vs_nginx.lowest,
                e.vs_nginx.highest,
                ms(e.nginx.p99),
                ms(e.shipped.p99)
            )?;
        }
        writeln!(out)
    }

    fn write_musl(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "### 2. Static musl beside glibc\n")?;
        let names: Vec<String> = self.musl_builds.iter().map(musl_name).collect();
        writeln!(
            out,
            "A glibc build (`cargo build --release`, glibc's malloc), a second server of the same \
             glibc build (the control), the release binary, and the same static musl code with \
             each other allocator (cargo features; the commands are below), all under load at \
             once, a wrk each: they share the servers' CPUs, so the build that costs more per \
             request answers fewer requests in the same instants, and a slow spell of the \
             machine slows every build alike. Pinned as the rest of the benchmark (the servers' \
             runtime has one worker thread) at each size, and once more with servers and wrk on \
             every CPU (a worker per CPU, as on a node with two CPUs or more), where allocations \
             from two threads meet (glibc, its control and the release binary only, as wrk \
             shares those CPUs). Cells: the median req/s of the runs (servers sharing the \
             CPUs each answer a share of what one alone would), then the median of its ratios to \
             glibc run by run, and the lowest and highest of them; the control's show how far \
             two equal servers differ. Busy: how much of their CPUs' time the servers used (near \
             100%, they and not wrk set the pace).\n"
        )?;
        let mut header = "| mounts | CPUs | endpoint | glibc | glibc, control |".to_owned();
        let mut rule = "| --- | --- | --- | --- | --- |".to_owned();
        for name in &names {
            header.push_str(&format!(" {name} |"));
            rule.push_str(" --- |");
        }
        header.push_str(" busy |");
        rule.push_str(" --- |");
        writeln!(out, "{header}\n{rule}")?;
        for e in &self.builds {
            let glibc = thousands(median_f64(&e.glibc.rates).round() as u64);
            let mut row = build_row(e, &glibc, names.len(), |p| {
                let rate = thousands(p.rate.round() as u64);
                (rate, p.rate_ratio)
            });
            row.push_str(&format!(" {:.0}% |", e.busy * 100.0));
            writeln!(out, "{row}")?;
        }
        writeln!(
            out,
            "\nCPU time per request in the same runs (each server's threads' time on a CPU over \
             the requests it answered), then glibc's over it (requests per CPU second × glibc's), \
             the median run by run and the lowest and highest: the goal's figure, which holds \
             whether the servers or wrk set the pace.\n"
        )?;
        let cost_header = header
            .replace(" busy |", "")
            .replace(" glibc |", " glibc, µs |");
        let cost_rule = rule.strip_suffix(" --- |").unwrap_or(&rule);
        writeln!(out, "{cost_header}\n{cost_rule}")?;
        for e in &self.builds {
            let glibc = format!("{:.1}", median_f64(&e.glibc.costs) * 1e6);
            let row = build_row(e, &glibc, names.len(), |p| {
                (format!("{:.1}", p.cost * 1e6), p.per_cpu_ratio)
            });
            writeln!(out, "{row}")?;
        }
        writeln!(
            out,
            "\nThe size of each static musl binary (amd64, stripped):\n"
        )?;
        writeln!(out, "| build | size | × the release binary |")?;
        writeln!(out, "| --- | --- | --- |")?;
        let shipped = self
            .musl_builds
            .iter()
            .find(|b| b.shipped)
            .map_or(0, |b| b.size_bytes);
        for (build, name) in self.musl_builds.iter().zip(&names) {
            writeln!(
                out,
                "| {name} | {} ({} bytes) | {} |",
                size_mib(build.size_bytes),
                thousands(build.size_bytes),
                times(ratio(build.size_bytes as f64, shipped as f64))
            )?;
        }
        writeln!(out)
    }

    fn write_memory(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "### 3. Memory beside node_exporter\n")?;
        writeln!(
            out,
            "Resident memory (VmRSS, with the memory files a process holds counted whole: \
             mount-monitor keeps its large bodies in them) idle, 2 s after the first 200, and the \
             highest sampled every 50 ms while `/metrics` is under load; node_exporter (Debian's \
             `prometheus-node-exporter`) runs only its filesystem collector, on the same mounts.\n"
        )?;
        writeln!(
            out,
            "| mounts | mount-monitor idle | under load | threads idle | node_exporter idle | under load | mount-monitor × node_exporter (under load) |"
        )?;
        writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |")?;
        for m in &self.memory {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                thousands(m.mounts as u64),
                mib(m.monitor_idle.rss_kib),
                mib(m.monitor_load_kib),
                m.monitor_idle.threads,
                mib(m.exporter_idle.rss_kib),
                mib(m.exporter_load_kib),
                times(ratio(m.monitor_load_kib as f64, m.exporter_load_kib as f64))
            )?;
        }
        writeln!(out)
    }

    fn write_scale(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "### 4. Scale: one check round\n")?;
        writeln!(
            out,
            "`mount-monitor check` over N tmpfs mounts listed in a TOML config (`checkType = \
             \"none\"`: mountinfo lookup and statfs), whole process from start to exit: its CPU \
             time (getrusage of the waited child) less that of the round over one mount, which is \
             the process start-up. Serving: the CPU time of a running monitor (on every CPU) with \
             `checkInterval = \"1s\"` over a steady-state window, divided by the rounds in it \
             (from /proc/<pid>/stat, 10 ms ticks). The per-mount cost at each size over that at \
             the largest shows how the cost grows: 1.00× is linear, above 1 is fixed costs \
             spreading over more mounts, below 1 is growth faster than linear.\n"
        )?;
        writeln!(
            out,
            "| mounts | `check` wall | `check` CPU | round (less start-up) | per mount | × largest | serving CPU per round | per mount | × largest |"
        )?;
        writeln!(
            out,
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        )?;
        let check_costs = self.check_round_costs();
        let check_per = per_mount(&check_costs);
        let check_lin = linearity(&check_per);
        let serve_per = per_mount(&self.serve_round_costs());
        let serve_lin = linearity(&serve_per);
        let optional = |d: Option<Duration>| d.map_or("baseline".to_owned(), micros);
        let optional_ratio = |r: Option<f64>| r.map_or("".to_owned(), times);
        for (i, s) in self.scale.iter().enumerate() {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                thousands(s.mounts as u64),
                ms(s.check_wall),
                ms(s.check_cpu),
                ms(check_costs[i].1),
                optional(check_per[i].1),
                optional_ratio(check_lin[i]),
                ms(s.serve_cpu_per_round),
                optional(serve_per[i].1),
                optional_ratio(serve_lin[i])
            )?;
        }
        writeln!(out)
    }

    fn write_startup(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "### 5. Startup\n")?;
        writeln!(
            out,
            "From spawning the process to the first 200 from `/readyz` (polled every 0.2 ms) with \
             {} mounts: mount-monitor answers 200 once the first check of every mount is in. \
             Beside it, nginx to its first 200 for a static `/readyz`. {} runs each, on every \
             CPU.\n",
            self.startup.mounts,
            self.startup.monitor.len()
        )?;
        writeln!(out, "| server | median | fastest | × nginx (median) |")?;
        writeln!(out, "| --- | --- | --- | --- |")?;
        let nginx = median(&self.startup.nginx);
        for (name, runs) in [
            ("nginx", &self.startup.nginx),
            ("mount-monitor", &self.startup.monitor),
        ] {
            let fastest = runs.iter().min().copied().unwrap_or_default();
            writeln!(
                out,
                "| {name} | {} | {} | {} |",
                ms(median(runs)),
                ms(fastest),
                times(ratio(median(runs).as_secs_f64(), nginx.as_secs_f64()))
            )?;
        }
        writeln!(out)
    }

    fn write_scrape(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "### 6. Scrape: `/metrics` beside node_exporter\n")?;
        writeln!(
            out,
            "The same `wrk` load on mount-monitor's `/metrics` and on node_exporter's (filesystem \
             collector only, `--web.disable-exporter-metrics`) over the same mounts. \
             mount-monitor answers from its latest snapshot (about 50 series per mount); \
             node_exporter calls statfs on every mount for every scrape (7 series per mount).\n"
        )?;
        writeln!(
            out,
            "| mounts | mount-monitor req/s | body | p99 | node_exporter req/s | body | p99 | × node_exporter |"
        )?;
        writeln!(out, "| --- | --- | --- | --- | --- | --- | --- | --- |")?;
        for s in &self.scrape {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                thousands(s.mounts as u64),
                rate(&s.monitor),
                bytes(s.monitor_bytes),
                ms(s.monitor.p99),
                rate(&s.exporter),
                bytes(s.exporter_bytes),
                ms(s.exporter.p99),
                times(ratio(
                    s.monitor.requests_per_sec,
                    s.exporter.requests_per_sec
                ))
            )?;
        }
        writeln!(out)
    }
}

impl Report {
    fn write_peer(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "### 7. Beside debrid-mount-monitor\n")?;
        let Some(peer) = &self.peer else {
            return writeln!(
                out,
                "Not measured in this run: it needs a debrid-mount-monitor binary built from \
                 source, given with `--peer PATH` (`sudo -E cargo xtask bench perf --peer \
                 PATH`).\n"
            );
        };
        writeln!(
            out,
            "{} at `{}`, the service mount-monitor succeeds, beside the release binary. Both read \
             the same `config.json`, unchanged, with the same flags (`--config FILE --http-port \
             PORT --log-level error`), as a user swaps one for the other: `checkInterval: \
             \"{PEER_CHECK_INTERVAL}\"`, `readTimeout: \"{PEER_READ_TIMEOUT}\"`, \
             `failureThreshold: {PEER_FAILURE_THRESHOLD}`, and `mounts: [{{\"name\", \
             \"path\"}}, …]` with the default check, a read of the canary `.health-check` that \
             every benchmark tmpfs holds. debrid-mount-monitor has no `/metrics` and no \
             `/readyz`: the figures are on the endpoints both serve.\n",
            peer.version, peer.shown
        )?;

        writeln!(
            out,
            "**HTTP.** Both servers running on the servers' CPUs, the same `wrk` load as above, \
             runs interleaved; the run with the median req/s and its p99. × DMM is \
             mount-monitor's req/s over debrid-mount-monitor's; p99 × DMM is mount-monitor's p99 \
             as a fraction of debrid-mount-monitor's (below 1 is better).\n"
        )?;
        writeln!(
            out,
            "| mounts | endpoint | debrid-mount-monitor req/s | mount-monitor req/s | × DMM | p99 debrid-mount-monitor | p99 mount-monitor | p99 × DMM |"
        )?;
        writeln!(out, "| --- | --- | --- | --- | --- | --- | --- | --- |")?;
        for size in &peer.sizes {
            for e in &size.http {
                writeln!(
                    out,
                    "| {} | `{}` | {} | {} | {} | {} | {} | {} |",
                    thousands(size.mounts as u64),
                    e.path,
                    rate(&e.peer),
                    rate(&e.shipped),
                    times(ratio(e.shipped.requests_per_sec, e.peer.requests_per_sec)),
                    ms(e.peer.p99),
                    ms(e.shipped.p99),
                    times(ratio(e.shipped.p99.as_secs_f64(), e.peer.p99.as_secs_f64()))
                )?;
            }
        }
        writeln!(out)?;

        writeln!(
            out,
            "**Memory.** Resident memory (VmRSS, memory files counted whole) of the same two \
             processes, idle 2 s after both answered 200, and the highest sampled every 50 ms \
             while `/healthz/status` was under load.\n"
        )?;
        writeln!(
            out,
            "| mounts | debrid-mount-monitor idle | under load | mount-monitor idle | under load | × DMM idle | × DMM under load |"
        )?;
        writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |")?;
        for size in &peer.sizes {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                thousands(size.mounts as u64),
                mib(size.peer_idle.rss_kib),
                mib(size.peer_load_kib),
                mib(size.monitor_idle.rss_kib),
                mib(size.monitor_load_kib),
                times(ratio(
                    size.monitor_idle.rss_kib as f64,
                    size.peer_idle.rss_kib as f64
                )),
                times(ratio(
                    size.monitor_load_kib as f64,
                    size.peer_load_kib as f64
                ))
            )?;
        }
        writeln!(out)?;

        let runs = peer.sizes.first().map_or(0, |s| s.monitor_startup.len());
        writeln!(
            out,
            "**Start to ready.** From spawning the process to the first 200 from `/healthz/ready` \
             (polled every 0.2 ms): both answer 200 once the first check of every mount has \
             passed. {runs} runs of each, one at a time, on every CPU: the median, and the \
             fastest–slowest.\n"
        )?;
        writeln!(
            out,
            "| mounts | debrid-mount-monitor | fastest–slowest | mount-monitor | fastest–slowest | × DMM (median) |"
        )?;
        writeln!(out, "| --- | --- | --- | --- | --- | --- |")?;
        for size in &peer.sizes {
            let (theirs, ours) = (median(&size.peer_startup), median(&size.monitor_startup));
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                thousands(size.mounts as u64),
                ms(theirs),
                spread(&size.peer_startup),
                ms(ours),
                spread(&size.monitor_startup),
                times(ratio(ours.as_secs_f64(), theirs.as_secs_f64()))
            )?;
        }
        writeln!(out)?;

        let limit = peer
            .sizes
            .iter()
            .flat_map(|s| &s.detection)
            .map(|d| d.limit)
            .max()
            .unwrap_or_default();
        writeln!(
            out,
            "**Detection.** Both servers watch the same mounts at the same time (their checks \
             only read), and one mount is made to fail: **canary removed** (its `.health-check` \
             is deleted) or **unmounted** (its tmpfs is detached, `umount -l`, leaving the empty \
             directory beneath). Each server's time is from that one instant to its first 503 on \
             `/healthz/ready`, polled every 2 ms; a trial waits {} at most. Each trial starts \
             after a random 0–{PEER_CHECK_INTERVAL} pause, so that it falls at a random phase of \
             either's check interval; the mount is then restored (canary back, or mounted again \
             with it) and both answer 200 before the next. A server that finds a fault only on \
             its next check, every {PEER_CHECK_INTERVAL} with `failureThreshold: \
             {PEER_FAILURE_THRESHOLD}`, takes half an interval on average and one interval \
             (+10% jitter) and a check at worst. mount-monitor also checks again the moment the \
             mount table changes (an unmount is one such change); a deleted canary changes no \
             mount table, and waits for the next check.\n",
            seconds(limit)
        )?;
        writeln!(
            out,
            "| mounts | fault | trials | debrid-mount-monitor median | worst | mount-monitor median | worst | × DMM (median) |"
        )?;
        writeln!(out, "| --- | --- | --- | --- | --- | --- | --- | --- |")?;
        for size in &peer.sizes {
            for d in &size.detection {
                let (theirs, ours) = (detected(&d.peer), detected(&d.monitor));
                let shown = |found: &Detected| {
                    let median = found.median.map_or("none detected".to_owned(), ms);
                    let worst = match (found.missed, found.worst) {
                        (0, Some(worst)) => ms(worst),
                        (missed, _) => format!("**{missed} not detected** within {}", ms(d.limit)),
                    };
                    (median, worst)
                };
                let ((their_median, their_worst), (our_median, our_worst)) =
                    (shown(&theirs), shown(&ours));
                let versus = match (ours.median, theirs.median) {
                    (Some(ours), Some(theirs)) => {
                        times(ratio(ours.as_secs_f64(), theirs.as_secs_f64()))
                    }
                    _ => String::new(),
                };
                writeln!(
                    out,
                    "| {} | {} | {} | {their_median} | {their_worst} | {our_median} | {our_worst} | {versus} |",
                    thousands(size.mounts as u64),
                    d.fault.describe(),
                    d.monitor.len(),
                )?;
            }
        }
        writeln!(out)?;
        writeln!(
            out,
            "The commands (below) show the 10-mount runs; the 100-mount ones differ only in the \
             config file and the port.\n"
        )
    }
}

/// One row of the goals table: every measured value, met when all are.
fn goal_row(
    out: &mut String,
    goal: &str,
    values: &[(String, f64)],
    ok: impl Fn(f64) -> bool,
) -> std::fmt::Result {
    let shown: Vec<&str> = values.iter().map(|(text, _)| text.as_str()).collect();
    let all = !values.is_empty() && values.iter().all(|(_, value)| ok(*value));
    writeln!(out, "| {goal} | {} | {} |", shown.join(", "), met(all))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs of rates (req/s) and costs (µs of CPU per request).
    fn runs(rates: &[f64], micros: &[f64]) -> Runs {
        Runs {
            rates: rates.to_vec(),
            costs: micros.iter().map(|m| m * 1e-6).collect(),
        }
    }

    fn load(rate: f64, p99_us: u64) -> Load {
        Load {
            requests_per_sec: rate,
            requests: (rate * 3.0) as u64,
            p50: Duration::from_micros(p99_us / 4),
            p99: Duration::from_micros(p99_us),
            errors: 0,
        }
    }

    fn status(rss_kib: u64) -> Status {
        Status {
            rss_kib,
            peak_rss_kib: rss_kib,
            threads: 3,
        }
    }

    fn sample() -> Report {
        let ms = Duration::from_millis;
        Report {
            date: "2026-11-26T02:00:00Z".into(),
            cores: 2,
            cpu: "Test CPU".into(),
            kernel: "6.1.0".into(),
            versions: vec!["mount-monitor 0.1.0".into(), "nginx 1.22.1".into()],
            settings: "wrk -t2 -c10".into(),
            sections: Section::ALL.to_vec(),
            http: vec![
                Endpoint {
                    mounts: 10,
                    path: "/healthz/status".into(),
                    body_bytes: 3186,
                    nginx: load(40_000.0, 900),
                    shipped: load(50_000.0, 1_500),
                    vs_nginx: Spread::of(&[1.25]),
                },
                Endpoint {
                    mounts: 10,
                    path: "/metrics".into(),
                    body_bytes: 46_458,
                    nginx: load(20_000.0, 1_000),
                    shipped: load(15_000.0, 2_500),
                    vs_nginx: Spread::of(&[0.75]),
                },
                Endpoint {
                    mounts: 100,
                    path: "/healthz/status".into(),
                    body_bytes: 31_860,
                    nginx: load(30_000.0, 1_000),
                    shipped: load(33_000.0, 1_200),
                    vs_nginx: Spread::of(&[1.02, 1.04, 1.20]),
                },
            ],
            musl_builds: vec![
                MuslBuild {
                    allocator: "dlmalloc".into(),
                    shipped: true,
                    size_bytes: 4_400_000,
                },
                MuslBuild {
                    allocator: "musl's malloc".into(),
                    shipped: false,
                    size_bytes: 4_300_000,
                },
            ],
            builds: vec![
                BuildLoads {
                    mounts: 10,
                    every_cpu: false,
                    path: "/healthz/status".into(),
                    glibc: runs(&[50_000.0, 52_000.0, 60_000.0], &[20.0, 19.0, 16.0]),
                    control: runs(&[51_000.0, 50_000.0, 60_600.0], &[20.0, 19.0, 16.0]),
                    musl: vec![
                        runs(&[48_000.0, 50_000.0, 57_600.0], &[20.8, 19.6, 16.6]),
                        runs(&[20_000.0, 20_800.0, 30_000.0], &[50.0, 47.5, 40.0]),
                    ],
                    busy: 0.99,
                },
                BuildLoads {
                    mounts: 100,
                    every_cpu: true,
                    path: "/metrics".into(),
                    glibc: runs(&[15_500.0, 15_000.0, 16_000.0], &[60.0, 62.0, 58.0]),
                    control: runs(&[15_500.0, 15_000.0, 16_000.0], &[60.0, 62.0, 58.0]),
                    // On every CPU, only the release binary beside glibc.
                    musl: vec![runs(&[15_035.0, 14_550.0, 15_520.0], &[61.0, 64.0, 59.0])],
                    busy: 0.97,
                },
            ],
            memory: vec![
                Memory {
                    mounts: 10,
                    monitor_idle: status(2_600),
                    monitor_load_kib: 3_800,
                    exporter_idle: status(12_000),
                    exporter_load_kib: 19_000,
                },
                Memory {
                    mounts: 1000,
                    monitor_idle: status(9_000),
                    monitor_load_kib: 45_000,
                    exporter_idle: status(14_000),
                    exporter_load_kib: 30_000,
                },
            ],
            scale: vec![
                Scale {
                    mounts: 1,
                    check_wall: ms(3),
                    check_cpu: ms(2),
                    serve_cpu_per_round: ms(0),
                },
                Scale {
                    mounts: 101,
                    check_wall: ms(6),
                    check_cpu: ms(7),
                    serve_cpu_per_round: ms(3),
                },
                Scale {
                    mounts: 1001,
                    check_wall: ms(40),
                    check_cpu: ms(52),
                    serve_cpu_per_round: ms(30),
                },
            ],
            startup: Startup {
                mounts: 10,
                monitor: vec![ms(5), ms(4), ms(30)],
                nginx: vec![ms(2), ms(3), ms(2)],
            },
            scrape: vec![Scrape {
                mounts: 10,
                monitor: load(15_000.0, 2_500),
                monitor_bytes: 46_458,
                exporter: load(3_000.0, 8_000),
                exporter_bytes: 9_000,
            }],
            peer: Some(sample_peer()),
            repeated_runs: Vec::new(),
            commands: vec![("load".into(), "wrk -t2 -c10 -d5s --latency URL".into())],
            nginx_config: "daemon off;\n".into(),
        }
    }

    fn sample_peer() -> Peer {
        let ms = Duration::from_millis;
        let size = |mounts: usize, ours: f64, theirs: f64| PeerSize {
            mounts,
            http: vec![
                PeerEndpoint {
                    path: "/healthz/status".into(),
                    peer: load(theirs, 2_000),
                    shipped: load(ours, 1_000),
                },
                PeerEndpoint {
                    path: "/healthz/ready".into(),
                    peer: load(theirs * 2.0, 1_600),
                    shipped: load(ours * 2.0, 1_200),
                },
            ],
            monitor_idle: status(3_000),
            monitor_load_kib: 3_500,
            peer_idle: status(10_000),
            peer_load_kib: 14_000,
            monitor_startup: vec![ms(6), ms(4), ms(5)],
            peer_startup: vec![ms(12), ms(30), ms(10)],
            detection: vec![
                Detection {
                    fault: Fault::CanaryRemoved,
                    monitor: vec![Some(ms(400)), Some(ms(900)), Some(ms(100))],
                    peer: vec![Some(ms(800)), Some(ms(500)), Some(ms(1_050))],
                    limit: Duration::from_secs(10),
                },
                Detection {
                    fault: Fault::Unmounted,
                    monitor: vec![Some(ms(300)), Some(ms(600)), Some(ms(200))],
                    peer: vec![Some(ms(700)), None, Some(ms(250))],
                    limit: Duration::from_secs(10),
                },
            ],
        };
        Peer {
            version: "debrid-mount-monitor (built from source)".into(),
            shown: "/opt/dmm/debrid-mount-monitor".into(),
            sizes: vec![size(10, 60_000.0, 30_000.0), size(100, 20_000.0, 25_000.0)],
        }
    }

    fn row<'a>(text: &'a str, start: &str) -> &'a str {
        text.lines()
            .find(|line| line.starts_with(start))
            .unwrap_or_else(|| panic!("no row starting {start:?} in\n{text}"))
    }

    #[test]
    fn ratios_are_against_the_baseline_of_the_same_run() {
        let text = sample().render();
        assert_eq!(
            row(&text, "| 10 | `/healthz/status` | 3,186 B |"),
            "| 10 | `/healthz/status` | 3,186 B | 40,000 | 50,000 | 1.25× (1.25–1.25) | 0.90 ms | 1.50 ms |"
        );
        assert_eq!(
            row(&text, "| 100 | `/healthz/status` | 31 KiB |"),
            // The median of the ratios run by run, not the ratio of the medians (1.10×).
            "| 100 | `/healthz/status` | 31 KiB | 30,000 | 33,000 | 1.04× (1.02–1.20) | 1.00 ms | 1.20 ms |"
        );
        assert_eq!(
            row(&text, "| mounts | CPUs | endpoint | glibc |"),
            "| mounts | CPUs | endpoint | glibc | glibc, control | musl + dlmalloc (shipped) | \
             musl + musl's malloc | busy |"
        );
        assert_eq!(
            row(&text, "| 100 | every CPU | `/metrics` | 15,500 |"),
            "| 100 | every CPU | `/metrics` | 15,500 | 15,500 (1.00×, 1.00–1.00) | 15,035 (0.97×, \
             0.97–0.97) | — | 97% |"
        );
        assert_eq!(
            row(&text, "| 100 | every CPU | `/metrics` | 60.0 |"),
            "| 100 | every CPU | `/metrics` | 60.0 | 60.0 (1.00×, 1.00–1.00) | 61.0 (0.98×, \
             0.97–0.98) | — |"
        );
        assert_eq!(
            row(&text, "| musl + musl's malloc | 4.10 MiB"),
            "| musl + musl's malloc | 4.10 MiB (4,300,000 bytes) | 0.98× |"
        );
        assert!(row(&text, "| 10 | 15,000 | 45 KiB |").ends_with("| 5.00× |"));
        assert!(row(&text, "| mount-monitor | 5.00 ms |").ends_with("| 2.50× |"));
    }

    #[test]
    fn runs_repeated_for_errors_are_named() {
        assert!(!sample().render().contains("Runs with errors"));
        let mut report = sample();
        report.repeated_runs = vec!["node_exporter answered URL with 1 errors".into()];
        assert!(report.render().contains(
            "Runs with errors, each run again (no figure is from such a run): node_exporter \
             answered URL with 1 errors."
        ));
    }

    #[test]
    fn builds_are_compared_run_by_run() {
        // A slow spell in the third run slows both servers: run by run the musl build answers
        // 0.96× glibc's requests, though its median rate is 0.75× glibc's.
        // Its CPU per request is 1.25× glibc's in every run: 0.8× the requests per CPU second.
        let loads = BuildLoads {
            glibc: runs(&[100.0, 200.0, 300.0], &[4.0, 4.0, 2.0]),
            control: runs(&[100.0, 200.0, 300.0], &[4.0, 4.0, 2.0]),
            musl: vec![runs(&[96.0, 192.0, 150.0], &[5.0, 5.0, 2.5])],
            ..Default::default()
        };
        let paired = loads.paired(&loads.musl[0]);
        assert_eq!(paired.rate, 150.0);
        assert!((paired.rate_ratio.median - 0.96).abs() < 1e-9, "{paired:?}");
        assert_eq!(
            (paired.rate_ratio.lowest, paired.rate_ratio.highest),
            (0.5, 0.96)
        );
        assert!((paired.cost - 5e-6).abs() < 1e-15, "{paired:?}");
        assert_eq!(paired.per_cpu_ratio.median, 0.8);
        let builds = [MuslBuild {
            shipped: true,
            ..Default::default()
        }];
        assert_eq!(loads.shipped(&builds), Some(paired));
        assert_eq!(loads.shipped(&[]), None);
        assert_eq!(median_f64(&[]), 0.0);
    }

    #[test]
    fn goals_are_met_only_when_every_figure_is() {
        let text = sample().render();
        assert_eq!(
            row(&text, "| HTTP: ≥ 1.0× nginx"),
            "| HTTP: ≥ 1.0× nginx's req/s | 10 mounts: `/healthz/status` 1.25×, `/metrics` 0.75×, \
             100 mounts: `/healthz/status` 1.04× | **no** |",
            "/metrics is at 0.75×"
        );
        assert!(row(&text, "| HTTP: p99 < 2 ms").ends_with("| **no** |"));
        assert_eq!(
            row(
                &text,
                "| static musl (shipped) ≥ 0.95× glibc's requests per CPU second, side by side, pinned"
            ),
            "| static musl (shipped) ≥ 0.95× glibc's requests per CPU second, side by side, \
             pinned | 10 mounts: `/healthz/status` 0.96× | yes |"
        );
        assert!(
            row(
                &text,
                "| static musl (shipped) ≥ 0.95× glibc's requests per CPU second, side by side, on \
                 every CPU"
            )
            .ends_with("| 100 mounts: `/metrics` 0.98× | yes |")
        );
        assert!(row(&text, "| RSS < 10 MiB at 10 mounts").ends_with("| yes |"));
        assert!(
            row(&text, "| start → `/readyz` 200 < 50 ms (10 mounts)").contains("| 5.00 ms | yes |"),
            "the median, not the slowest run"
        );
        // No 1,000-mount row in the sample: the round goal is left out rather than guessed.
        assert!(!text.contains("mounts: < 100 ms CPU per check round"));
        assert!(
            row(&text, "| RSS < 40 MiB at 1,000 mounts").ends_with("| **no** |"),
            "45,000 KiB under load"
        );
    }

    #[test]
    fn per_mount_cost_subtracts_the_smallest_round() {
        let ms = Duration::from_millis;
        let rows = [(1, ms(2)), (101, ms(7)), (1001, ms(52))];
        assert_eq!(
            per_mount(&rows),
            [
                (1, None),
                (101, Some(Duration::from_micros(50))),
                (1001, Some(Duration::from_micros(50)))
            ]
        );
        let text = sample().render();
        assert_eq!(
            row(&text, "| 101 |"),
            "| 101 | 6.00 ms | 7.00 ms | 5.00 ms | 50.0 µs | 1.00× | 3.00 ms | 30.0 µs | 1.00× |"
        );
        assert!(row(&text, "| CPU per round grows no faster").ends_with("| yes |"));
    }

    #[test]
    fn superlinear_growth_is_not_called_linear() {
        let mut report = sample();
        report.scale[2].serve_cpu_per_round = Duration::from_millis(300);
        let text = report.render();
        assert!(row(&text, "| CPU per round grows no faster").ends_with("| **no** |"));
        assert!(row(&text, "| 101 |").ends_with("| 0.10× |"));
    }

    #[test]
    fn numbers_are_grouped_and_medians_are_the_middle_run() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        let runs = [load(3.0, 1), load(1.0, 2), load(2.0, 3)];
        assert_eq!(median_load(&runs).p99, Duration::from_micros(3));
        assert_eq!(median(&[]), Duration::ZERO);
        assert_eq!(ratio(1.0, 0.0), 0.0, "no baseline, no ratio");
    }

    #[test]
    fn the_peer_is_compared_at_every_size() {
        let text = sample().render();
        assert!(text.contains("### 7. Beside debrid-mount-monitor"));
        assert!(text.contains(
            "debrid-mount-monitor (built from source) at `/opt/dmm/debrid-mount-monitor`, the \
             service mount-monitor succeeds"
        ));
        assert!(text.contains("`checkInterval: \"1s\"`, `readTimeout: \"500ms\"`"));
        assert_eq!(
            row(&text, "| 10 | `/healthz/status` | 30,000 |"),
            "| 10 | `/healthz/status` | 30,000 | 60,000 | 2.00× | 2.00 ms | 1.00 ms | 0.50× |"
        );
        assert_eq!(
            row(&text, "| 100 | `/healthz/ready` | 50,000 |"),
            "| 100 | `/healthz/ready` | 50,000 | 40,000 | 0.80× | 1.60 ms | 1.20 ms | 0.75× |"
        );
        assert_eq!(
            row(&text, "| 10 | 9.8 MiB |"),
            "| 10 | 9.8 MiB | 13.7 MiB | 2.9 MiB | 3.4 MiB | 0.30× | 0.25× |"
        );
        assert_eq!(
            row(&text, "| 10 | 12.0 ms |"),
            "| 10 | 12.0 ms | 10.0–30.0 ms | 5.00 ms | 4.00–6.00 ms | 0.42× |",
            "medians, the spread fastest–slowest, and the ratio of the medians"
        );
        assert_eq!(
            row(&text, "| 10 | canary removed |"),
            "| 10 | canary removed | 3 | 800 ms | 1050 ms | 400 ms | 900 ms | 0.50× |"
        );
        assert_eq!(
            row(&text, "| 100 | unmounted |"),
            "| 100 | unmounted | 3 | 700 ms | **1 not detected** within 10000 ms | 300 ms | \
             600 ms | 0.43× |",
            "a trial that saw no 503 is shown, never dropped"
        );
    }

    #[test]
    fn the_peer_goal_holds_at_every_size_or_is_not_met() {
        let text = sample().render();
        assert_eq!(
            row(&text, "| beside debrid-mount-monitor"),
            "| beside debrid-mount-monitor: ≥ 1.0× its req/s with a p99 no higher, RSS lower \
             (idle and under load) | 10 mounts: `/healthz/status` 2.00× (p99 0.50×), \
             `/healthz/ready` 2.00× (p99 0.75×), RSS 0.30× idle, 0.25× under load; 100 mounts: \
             `/healthz/status` 0.80× (p99 0.50×), `/healthz/ready` 0.80× (p99 0.75×), RSS 0.30× \
             idle, 0.25× under load | **no** |",
            "0.80× the rate at 100 mounts"
        );

        let mut report = sample();
        let peer = report.peer.as_mut().unwrap();
        peer.sizes.truncate(1);
        assert!(row(&report.render(), "| beside debrid-mount-monitor").ends_with("| yes |"));

        let peer = report.peer.as_mut().unwrap();
        peer.sizes[0].http[1].shipped.p99 = Duration::from_micros(1_700);
        assert!(
            row(&report.render(), "| beside debrid-mount-monitor").ends_with("| **no** |"),
            "a p99 above debrid-mount-monitor's"
        );

        let mut report = sample();
        report.peer.as_mut().unwrap().sizes.truncate(1);
        report.peer.as_mut().unwrap().sizes[0].monitor_load_kib = 14_000;
        assert!(
            row(&report.render(), "| beside debrid-mount-monitor").ends_with("| **no** |"),
            "as much memory under load is not lower"
        );
    }

    #[test]
    fn without_a_peer_the_report_says_how_to_get_one() {
        let mut report = sample();
        report.peer = None;
        let text = report.render();
        assert!(
            row(&text, "| beside debrid-mount-monitor")
                .ends_with("| not measured: run with `--peer PATH` | not measured |")
        );
        let section = &text[text.find("### 7.").unwrap()..text.find("### Commands").unwrap()];
        assert!(section.contains("Not measured in this run"), "{section}");
        assert!(section.contains("`--peer PATH`"), "{section}");
        assert!(section.contains("built from source"), "{section}");
        assert!(!section.contains('|'), "no empty tables: {section}");
    }

    #[test]
    fn a_partial_run_shows_only_its_sections() {
        let mut report = sample();
        report.sections = vec![Section::Http, Section::Peer];
        let text = report.render();
        assert!(text.contains("A partial run (`--only http,peer`)"));
        assert!(text.contains("### 1. HTTP"));
        assert!(text.contains("### 7. Beside debrid-mount-monitor"));
        for absent in ["### 2.", "### 3.", "### 4.", "### 5.", "### 6."] {
            assert!(!text.contains(absent), "{absent} in\n{text}");
        }
        for goal in ["| static musl", "| RSS <", "| start →", "| CPU per round"] {
            assert!(!text.contains(goal), "{goal} in\n{text}");
        }
        assert!(text.contains("| HTTP: ≥ 1.0× nginx"));
        assert!(
            !sample().render().contains("A partial run"),
            "a full run says nothing of the kind"
        );
    }

    #[test]
    fn detection_is_summed_up_over_the_trials_that_saw_a_503() {
        let ms = Duration::from_millis;
        assert_eq!(
            detected(&[Some(ms(300)), None, Some(ms(100)), Some(ms(900))]),
            Detected {
                median: Some(ms(300)),
                worst: Some(ms(900)),
                missed: 1
            }
        );
        assert_eq!(
            detected(&[None, None]),
            Detected {
                median: None,
                worst: None,
                missed: 2
            }
        );
        assert_eq!(spread(&[ms(5), ms(4), ms(30)]), "4.00–30.0 ms");
        assert_eq!(spread(&[]), "no run");
    }
}
