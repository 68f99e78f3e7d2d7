//! `cargo xtask bench reliability`: reruns the reliability scenarios and the fuzzers, and writes
//! RELIABILITY.md from what they measured. Needs root and /dev/fuse, like the tests. The file is
//! written whole: nothing in it is kept from an earlier run.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;
use tests::figures::FIGURES_DIR;
use xtask::project_root;

use crate::measure::cores;
use crate::report::RELIABILITY;

/// Cases per property for the fuzzers (`PROPTEST_CASES`), full and quick.
const FUZZ_CASES: (u32, u32) = (20_000, 2_000);

/// Rerun the reliability scenarios and the fuzzers (as root, about 10 minutes) and rewrite
/// RELIABILITY.md whole from their figures
#[derive(clap::Args, Debug, Clone)]
pub struct Reliability {
    /// CI's lengths: a shorter soak and churn, fewer fuzz cases (about 5 minutes)
    #[arg(long)]
    pub quick: bool,

    /// Measure nothing: rewrite RELIABILITY.md from the figures in target/reliability
    #[arg(long)]
    pub render_only: bool,

    /// Rerun only the dead-mount scenarios (`tests/tests/dead_mounts.rs`, about a minute) and
    /// rewrite only their section
    #[arg(long, conflicts_with_all = ["quick", "render_only"])]
    pub dead_mounts_only: bool,
}

impl Reliability {
    pub fn run(self) -> anyhow::Result<()> {
        let root = project_root();
        let figures = root.join("target/reliability");
        if self.dead_mounts_only {
            let _ = std::fs::remove_dir_all(&figures);
            std::fs::create_dir_all(&figures).with_context(|| format!("creating {figures}"))?;
            dead_mounts(root.as_std_path(), figures.as_std_path())?;
            return RELIABILITY.write_section(&render_dead_mounts(figures.as_std_path()));
        }
        if !self.render_only {
            measure(root.as_std_path(), figures.as_std_path(), self.quick)?;
        }
        // The whole document, nothing kept from an older one.
        RELIABILITY.write(&render(figures.as_std_path()))
    }
}

/// Runs the scenarios and the fuzzers; their figures land in `figures`.
fn measure(root: &Path, figures: &Path, quick: bool) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(figures);
    std::fs::create_dir_all(figures).with_context(|| format!("creating {}", figures.display()))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());

    let mut scenarios = scenarios(root, figures, "reliability");
    if !quick {
        scenarios.env("MOUNT_MONITOR_SOAK", "full");
    }
    status(&mut scenarios, "the reliability scenarios")?;
    dead_mounts(root, figures)?;
    status(
        &mut self::scenarios(root, figures, "abuse"),
        "the abusive-client scenarios",
    )?;

    let cases = if quick { FUZZ_CASES.1 } else { FUZZ_CASES.0 };
    let fuzz = Command::new(&cargo)
        .current_dir(root)
        .args(["test", "-p", "mount-monitor", "--lib", "fuzz"])
        .env("PROPTEST_CASES", cases.to_string())
        .output()
        .context("running the fuzzers")?;
    let output = String::from_utf8_lossy(&fuzz.stdout);
    print!("{output}");
    if !fuzz.status.success() {
        bail!(
            "the fuzzers failed:\n{}",
            String::from_utf8_lossy(&fuzz.stderr)
        );
    }
    let properties: Vec<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix("test ")?.strip_suffix(" ... ok"))
        .collect();
    let fuzz = serde_json::json!({ "properties": properties, "cases": cases, "quick": quick });
    std::fs::write(figures.join("fuzz.json"), fuzz.to_string())
        .with_context(|| format!("writing into {}", figures.display()))
}

fn status(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status}); no report written");
    }
    Ok(())
}

/// The dead-mount scenarios: container volumes, remounts, many hung mounts.
fn dead_mounts(root: &Path, figures: &Path) -> anyhow::Result<()> {
    status(
        &mut scenarios(root, figures, "dead_mounts"),
        "the dead-mount scenarios",
    )
}

/// `cargo test` of one file of scenarios in `tests/tests/`, one at a time, their figures going
/// to `figures`.
fn scenarios(root: &Path, figures: &Path, file: &str) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args([
            "test",
            "-p",
            "tests",
            "--test",
            file,
            "--",
            // The scenarios need root and FUSE, so plain `cargo test` leaves them out.
            "--include-ignored",
            "--test-threads=1",
        ])
        .env(FIGURES_DIR, figures);
    command
}

fn load(dir: &Path, scenario: &str) -> Value {
    std::fs::read_to_string(dir.join(format!("{scenario}.json")))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null)
}

/// A number as the report shows it, or "–" when missing.
fn n(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(n).collect::<Vec<_>>().join(", "),
        _ => "–".to_owned(),
    }
}

fn usage(before: &Value, after: &Value) -> (String, String, String) {
    let mib = |v: &Value| {
        v.as_f64()
            .map_or("–".to_owned(), |kib| format!("{:.1}", kib / 1024.0))
    };
    (
        format!("{} → {}", n(&before["threads"]), n(&after["threads"])),
        format!("{} → {}", mib(&before["rss_kib"]), mib(&after["rss_kib"])),
        format!("{} → {}", n(&before["fds"]), n(&after["fds"])),
    )
}

fn command(test: &str) -> String {
    format!("`cargo test -p tests --test reliability -- --exact {test}`")
}

fn render(dir: &Path) -> String {
    let fuzz = load(dir, "fuzz");
    let quick = fuzz["quick"].as_bool().unwrap_or(false);
    let cases = fuzz["cases"].as_u64().unwrap_or(0);
    let properties: Vec<&str> = fuzz["properties"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let hung = load(dir, "hung_mount");
    let dead = load(dir, "dead_daemon");
    let wedged = load(dir, "shutdown_wedged");
    let held = load(dir, "shutdown_held");
    let abuse = load(dir, "http_abuse");
    let fd = load(dir, "fd_limit");
    let bad = load(dir, "bad_configuration");
    let churn = load(dir, "churn");
    let soak = load(dir, "soak");
    let few_threads = load(dir, "threads");

    let mut out = String::new();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = cores();
    let _ = writeln!(
        out,
        "# Reliability\n\n\
         What mount-monitor does while storage and clients misbehave, measured on the real binary \
         (the debug build; the soak and the thread count run the shipped static musl binary, \
         built by `cargo xtask dist`) by `tests/tests/reliability.rs`. Written by `cargo xtask bench \
         reliability{}` as root with `/dev/fuse`; do not edit by hand, rerun it. Each \
         scenario below names the test that reproduces it (as root); CI runs all of them \
         (`cargo xtask test`, shorter soak and churn) on every change.\n\n\
         Measured on Linux {}, {cpus} CPUs. Checks every 1 s (the minimum; ±10% jitter) with a \
         500 ms timeout. \"Probe latency\" is the slowest answer to a client that asked \
         `/healthz/live`, `/healthz/ready`, `/healthz/status`, `/readyz` and `/livez` in turn, each \
         on a new connection, every 20 ms throughout the scenario. Threads, RSS and open \
         descriptors are the monitor's, from `/proc/<pid>/status` and `/proc/<pid>/fd`.\n",
        if quick { " --quick" } else { "" },
        kernel.trim()
    );

    let (threads, rss, _) = usage(&hung["before"], &hung["after"]);
    let (dthreads, drss, _) = usage(&dead["before"], &dead["after"]);
    let (athreads, arss, _) = usage(&abuse["before"], &abuse["after"]);
    let (cthreads, crss, _) = usage(&churn["before"], &churn["after"]);
    let (sthreads, srss, _) = usage(&soak["after_warm_up"], &soak["end"]);
    let _ = writeln!(
        out,
        "## Summary\n\n\
         | scenario | injected | detected after | worst probe latency | threads | RSS MiB |\n\
         |---|---|---|---|---|---|\n\
         | [hung mount](#1-hung-mount) | statfs never answered, {} mounts, {} intervals | {} s after the check began (worst) | {} ms | {threads} | {rss} |\n\
         | [dead FUSE daemon](#2-dead-fuse-daemon) | SIGKILL, then `umount -l` | {} s (`disconnected`), {} s (`not_mounted`) | {} ms | {dthreads} | {drss} |\n\
         | [shutdown, check stuck](#3-shutdown-while-a-check-is-stuck-in-the-kernel) | SIGTERM | exit 0 after {} s (daemon wedged); stopped after {} s (request held) | – | – | – |\n\
         | [abusive clients](#4-abusive-http-clients) | 1,000 idle, 200 slow, {} bad requests | idle closed after {} s | {} ms | {athreads} | {arss} |\n\
         | [bad configuration](#5-bad-configuration) | {} error classes | exit 2, one line each | – | – | – |\n\
         | [mount churn](#6-mount-churn-in-discovery-mode) | {} × {} tmpfs mounted and unmounted | {} s / {} s (worst) | – | {cthreads} | {crss} |\n\
         | [soak](#7-soak) | {} checks over {} tmpfs | – | {} ms | {sthreads} | {srss} |\n",
        n(&hung["hung_mounts"]),
        n(&hung["intervals"]),
        n(&hung["detection_after_check_hangs_worst_s"]),
        n(&hung["probes"]["worst_ms"]),
        n(&dead["disconnected_after_sigkill_s"]),
        n(&dead["not_mounted_after_lazy_unmount_s"]),
        n(&dead["probes"]["worst_ms"]),
        n(&wedged["exited_after_sigterm_s"]),
        n(&held["main_thread_exited_after_sigterm_s"]),
        abuse["bad_requests"].as_object().map_or(0, |m| m.len()),
        n(&abuse["idle"]["server_closed"]["last_closed_after_s"]),
        n(&abuse["probes"]["worst_ms"]),
        bad["cases"].as_array().map_or(0, Vec::len),
        n(&churn["rounds"]),
        n(&churn["mounts_per_round"]),
        n(&churn["picked_up_worst_s"]),
        n(&churn["dropped_worst_s"]),
        n(&soak["checks"]),
        n(&soak["mounts"]),
        n(&soak["probes"]["worst_ms"]),
    );

    let _ = writeln!(
        out,
        "## 1. Hung mount\n\n\
         **Injected:** {} FUSE mounts (`hangfs`, `tests/src/bin/hangfs.rs`), more than the 8 \
         checks that run at once, start holding every `statfs` without answering, as a FUSE \
         daemon does when its backend stops answering; a tmpfs stays healthy beside them, and is \
         still checked every interval. They stay hung for {} check intervals, then answer.\n\n\
         - Reported `timeout` {} s on average and {} s at worst after the hanging check began \
           (limit: timeout + 1 s = 1.5 s); {} s at worst after the hang was injected (the next \
           check comes up to one interval later).\n\
         - Checks held by the filesystem over the {} intervals: at most {} per mount: the stuck \
           check is kept and reported (`stuck_seconds`), never started again.\n\
         - Threads blocked in FUSE (`request_wait_answer`): {}. Threads {} before, {} at the peak \
           while hung (limit: before + one per hung mount), {} after. RSS {} KiB before, {} KiB \
           after; descriptors {} → {}.\n\
         - Probe answers while hung: {} requests, {} failed, p50 {} ms, p99 {} ms, worst {} ms \
           (limit 50 ms). `/readyz` and `/healthz/ready` answer 503 with the reason, as they \
           should.\n\
         - Recovered to healthy {} s after the filesystem answered: the stuck check's own result \
           is reported the moment it returns.\n\n\
         Reproduce: {}\n",
        n(&hung["hung_mounts"]),
        n(&hung["intervals"]),
        n(&hung["detection_after_check_hangs_mean_s"]),
        n(&hung["detection_after_check_hangs_worst_s"]),
        n(&hung["detection_after_injection_worst_s"]),
        n(&hung["intervals"]),
        n(&hung["statfs_held_per_mount_max"]),
        n(&hung["threads_blocked_in_fuse"]),
        n(&hung["before"]["threads"]),
        n(&hung["peak_while_hung"]["threads"]),
        n(&hung["after"]["threads"]),
        n(&hung["before"]["rss_kib"]),
        n(&hung["after"]["rss_kib"]),
        n(&hung["before"]["fds"]),
        n(&hung["after"]["fds"]),
        n(&hung["probes"]["requests"]),
        n(&hung["probes"]["failures"]),
        n(&hung["probes"]["p50_ms"]),
        n(&hung["probes"]["p99_ms"]),
        n(&hung["probes"]["worst_ms"]),
        n(&hung["recovery_after_release_s"]),
        command("hung_mount_reports_timeout_costs_one_thread_and_recovers"),
    );

    let _ = writeln!(
        out,
        "## 2. Dead FUSE daemon\n\n\
         **Injected:** the daemon of a healthy FUSE mount is killed with SIGKILL; later the dead \
         mount is lazily unmounted, leaving the empty directory behind.\n\n\
         - `disconnected` {} s after SIGKILL (`{}`).\n\
         - `not_mounted` {} s after `umount -l`.\n\
         - Probe answers: {} requests, {} failed, worst {} ms. Threads {}, RSS {} KiB → {} KiB.\n\n\
         Reproduce: {}\n",
        n(&dead["disconnected_after_sigkill_s"]),
        n(&dead["last_error"]),
        n(&dead["not_mounted_after_lazy_unmount_s"]),
        n(&dead["probes"]["requests"]),
        n(&dead["probes"]["failures"]),
        n(&dead["probes"]["worst_ms"]),
        dthreads,
        n(&dead["before"]["rss_kib"]),
        n(&dead["after"]["rss_kib"]),
        command("dead_fuse_daemon_is_disconnected_then_not_mounted"),
    );

    let _ = writeln!(
        out,
        "## 3. Shutdown while a check is stuck in the kernel\n\n\
         **Injected:** SIGTERM while a check of a hung FUSE mount has been blocked for longer than \
         the timeout; `shutdownTimeout` is {} s.\n\n\
         - *Daemon wedged* (it never read the request): exit status {}, {} s after SIGTERM. The \
           kernel drops an unread FUSE request when the process exits.\n\
         - *Request held by the daemon* (read, never answered): the monitor closed its port, \
           logged `mount-monitor stopped` and its main thread exited with status 0, {} s after \
           SIGTERM. {} thread stays blocked in `request_wait_answer`, and the kernel reaps the \
           process only when that request ends: it was reaped with status {}, {} s after the \
           filesystem answered. No signal can end a wait on a FUSE request that the daemon already \
           holds (not even SIGKILL); the request ends when the daemon answers or dies, or when \
           root aborts the connection (`echo 1 > /sys/fs/fuse/connections/N/abort`). In a pod \
           whose FUSE daemon is a sibling container, stopping the pod kills the daemon, which ends \
           the request.\n\n\
         Reproduce: {} and {}\n",
        n(&held["shutdown_timeout_s"]),
        n(&wedged["exit_code"]),
        n(&wedged["exited_after_sigterm_s"]),
        n(&held["main_thread_exited_after_sigterm_s"]),
        n(&held["threads_left_in_fuse"]),
        n(&held["exit_code"]),
        n(&held["reaped_after_release_s"]),
        command("sigterm_with_a_check_queued_on_a_wedged_daemon_exits_0"),
        command("sigterm_with_a_check_held_by_the_daemon_stops_within_the_timeout"),
    );

    let bad_requests = abuse["bad_requests"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k} → {}", n(v)))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "## 4. Abusive HTTP clients\n\n\
         **Injected**, while a client probed `/readyz`, `/livez` and `/healthz/ready` every 20 ms:\n\n\
         - 1,000 idle connections (no request), reopened as the server closed them, for {} s \
           ({} connections in all; the server held up to {} descriptors). The server closed each \
           after {}–{} s: the header read timeout (5 s) applies to connections that never send a \
           byte and to idle keep-alive ones.\n\
         - 200 slow-header clients sending one byte every 100 ms: cut after {}–{} s.\n\
         - Oversized heads, garbage and unknown paths and methods, five times each (status, or \
           `closed` without an answer): {bad_requests}.\n\n\
         Probe answers throughout: {} requests, {} failed, p50 {} ms, p99 {} ms, worst {} ms. \
         Threads {athreads}; RSS {arss} MiB (peak {} KiB: the buffers of 1,000 connections, kept \
         by the allocator). The server serves at most `max_connections` = {} connections at once \
         and closes further ones on accept.\n\n\
         **Open-file limit.** With `RLIMIT_NOFILE` = {}, the monitor serves at most {} \
         connections (three quarters of the limit): of {} idle clients, {} were closed at once, \
         the monitor peaked at {} descriptors, and its canary check kept working. Before this \
         limit existed, idle clients took every descriptor: the canary read failed with EMFILE \
         and a healthy mount was reported `canary_failed`, while `accept` failed every 50 ms.\n\n\
         **Clients that stop reading.** A client that pipelines 20,000 `/metrics` requests and \
         reads nothing is disconnected once a write has waited 10 s; without that deadline it \
         held its connection until it read every answer (`cargo test -p tests --test \
         slow_reader`).\n\n\
         Reproduce: {} and {}\n",
        n(&abuse["idle"]["seconds"]),
        n(&abuse["idle"]["opened_in_total"]),
        n(&abuse["idle"]["server_fds_peak"]),
        n(&abuse["idle"]["server_closed"]["first_closed_after_s"]),
        n(&abuse["idle"]["server_closed"]["last_closed_after_s"]),
        n(&abuse["slow_headers"]["first_closed_after_s"]),
        n(&abuse["slow_headers"]["last_closed_after_s"]),
        n(&abuse["probes"]["requests"]),
        n(&abuse["probes"]["failures"]),
        n(&abuse["probes"]["p50_ms"]),
        n(&abuse["probes"]["p99_ms"]),
        n(&abuse["probes"]["worst_ms"]),
        n(&abuse["after"]["peak_rss_kib"]),
        n(&abuse["max_connections"]),
        n(&fd["open_file_limit"]),
        n(&fd["max_connections"]),
        n(&fd["idle_connections"]),
        n(&fd["closed_at_once_over_the_cap"]),
        n(&fd["server_fds_peak"]),
        command("abusive_clients_do_not_stop_the_probes"),
        command("idle_clients_cannot_take_the_descriptors_checks_need"),
    );

    let _ = writeln!(
        out,
        "## 5. Bad configuration\n\n\
         Every class exits with status 2 and one line on stderr naming the file and key (or the \
         flag). `DIR` stands for the test's directory.\n\n\
         | class | message |\n|---|---|"
    );
    for case in bad["cases"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "| {} | `{}` |",
            n(&case["class"]),
            n(&case["message"]).replace('|', "\\|")
        );
    }
    let fuzz_list = properties
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        out,
        "\nFuzzing (proptest): {} properties × {cases} cases = {} generated inputs, no failure: \
         {fuzz_list}. The mountinfo parser never panics on arbitrary text or near-miss lines, and \
         every field escaped as the kernel escapes it (space, tab, newline, backslash) parses \
         back to the original; the config loader turns arbitrary text, and structured JSON and \
         TOML documents with arbitrary values and flags, into settings or a one-line error naming \
         the file, key or flag, never a panic. Fuzzing found that a `checkInterval` or \
         `readTimeout` near `u64::MAX` seconds was accepted and would overflow the deadline \
         arithmetic: durations over 24 h are now refused.\n\n\
         Reproduce: `cargo test -p tests --test reliability -- --exact \
         every_bad_configuration_exits_2_with_one_line` and `PROPTEST_CASES={cases} cargo test -p \
         mount-monitor --lib fuzz`\n",
        properties.len(),
        properties.len() as u64 * cases,
    );

    let _ = writeln!(
        out,
        "## 6. Mount churn in discovery mode\n\n\
         **Injected:** with no mounts configured, {} rounds of mounting {} tmpfs at once and \
         unmounting them again, in one monitor process.\n\n\
         - Picked up and checked healthy after {} s on average, {} s at worst.\n\
         - Dropped from the status {} s after unmounting on average, {} s at worst.\n\
         - Threads {cthreads}, RSS {crss} MiB.\n\n\
         Reproduce: {}\n",
        n(&churn["rounds"]),
        n(&churn["mounts_per_round"]),
        n(&churn["picked_up_mean_s"]),
        n(&churn["picked_up_worst_s"]),
        n(&churn["dropped_mean_s"]),
        n(&churn["dropped_worst_s"]),
        command("discovery_picks_up_and_drops_mounts_without_a_restart"),
    );

    let timeline = soak["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            format!(
                "| {} | {} | {} | {} | {} |",
                n(&t["s"]),
                n(&t["checks"]),
                n(&t["usage"]["rss_kib"]),
                n(&t["usage"]["fds"]),
                n(&t["usage"]["threads"])
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let _ = writeln!(
        out,
        "## 7. Soak\n\n\
         **Run** ({}): the {} binary, {} tmpfs mounts checked every 200 ms (the shortest interval accepted; ±10% \
         jitter; 100 ms timeout) with canary reads, directory listings, `fsType`, `expect: rw`, \
         `minFree` and `minFreeInodes`, until {} checks had run: {} rounds per mount in {} s. \
         Every check is counted exactly, by inotify on the canary file or directory it opens. \
         A client read `/healthz/status` (50 mounts), \
         `/readyz` and `/livez` every 50 ms throughout ({} requests, {} failed, worst {} ms).\n\n\
         | | threads | RSS KiB | open descriptors |\n|---|---|---|---|\n\
         | right after start | {} | {} | {} |\n\
         | after the warm-up ({} checks) | {} | {} | {} |\n\
         | end | {} | {} | {} |\n\n\
         Over the run (seconds since start):\n\n\
         | s | checks | RSS KiB | descriptors | threads |\n|---|---|---|---|---|\n{timeline}\n\n\
         Threads at most {} at the samples taken every second from 20 s on (threads a start \
         slowed by a busy machine began end after 10 s idle). The test fails if descriptors \
         grow at all, threads by more than 2 or past 16 at any of those samples, or RSS by more \
         than 2 MiB after the warm-up.\n\n\
         **Threads whatever the node and the first round** ({}): 50 mounts, 20 of them FUSE \
         mounts whose `statfs` hangs through the first rounds and then answers, run by the same \
         binary ({}). The checks' threads are started when needed and end after 10 s idle; the \
         runtime has 2 workers whatever the number of CPUs. The test fails past 16 threads once \
         the slow checks have returned.\n\n\
         | CPUs | threads while the first checks hang | all healthy after (s) | threads at most, the 20 s after |\n\
         |---|---|---|---|\n{}\n\n\
         Reproduce: `MOUNT_MONITOR_SOAK=full cargo test -p tests --test reliability -- \
         --include-ignored --exact soak_keeps_memory_and_descriptors_flat` (about 35 minutes; \
         the suite runs 600 rounds, 30,000 checks, without `MOUNT_MONITOR_SOAK`); {}\n",
        if soak["rounds_per_mount"].as_u64().unwrap_or(0) >= 10_000 {
            "the full run, `MOUNT_MONITOR_SOAK=full`"
        } else {
            "the suite's short run"
        },
        soak["binary"].as_str().unwrap_or("debug build of the"),
        n(&soak["mounts"]),
        n(&soak["checks"]),
        n(&soak["rounds_per_mount"]),
        n(&soak["seconds"]),
        n(&soak["probes"]["requests"]),
        n(&soak["probes"]["failures"]),
        n(&soak["probes"]["worst_ms"]),
        n(&soak["at_start"]["threads"]),
        n(&soak["at_start"]["rss_kib"]),
        n(&soak["at_start"]["fds"]),
        n(&soak["warm_up_checks"]),
        n(&soak["after_warm_up"]["threads"]),
        n(&soak["after_warm_up"]["rss_kib"]),
        n(&soak["after_warm_up"]["fds"]),
        n(&soak["end"]["threads"]),
        n(&soak["end"]["rss_kib"]),
        n(&soak["end"]["fds"]),
        n(&soak["peak_threads"]),
        command("threads_stay_few_on_any_node_after_a_slow_first_round"),
        soak["binary"].as_str().unwrap_or("–"),
        few_threads["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|run| format!(
                "| {} | {} | {} | {} |",
                n(&run["cpus"]),
                n(&run["first_round_threads"]),
                n(&run["settled_after_s"]),
                n(&run["steady_peak_threads"])
            ))
            .collect::<Vec<_>>()
            .join("\n"),
        command("threads_stay_few_on_any_node_after_a_slow_first_round"),
    );
    out.push_str(&render_dead_mounts(dir));
    out.push_str(&render_abuse(dir));
    out.trim_end().to_owned() + "\n"
}

/// Section 8, from the figures of `tests/tests/dead_mounts.rs`.
fn render_dead_mounts(dir: &Path) -> String {
    let volume = load(dir, "container_volume");
    let remount = load(dir, "remount_after_hang");
    let limit = load(dir, "blocked_limit");
    let many = load(dir, "many_hung");
    let test = |name: &str| {
        format!("`cargo test -p tests --test dead_mounts -- --include-ignored --exact {name}`")
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## 8. Dead mounts in the layouts users deploy\n\n\
         Rerun this section alone with `cargo xtask bench reliability --dead-mounts-only` (about a \
         minute, as root).\n\n\
         **Container volume** (built in a private mount namespace as a runtime builds it: a \
         recursive bind of the host directory above the mount point, a slave of the host's \
         propagation, as the README's Docker recipe and deploy/ make it: `/mnt/rclone` bound, \
         `MOUNT_MONITOR_MOUNTS=media=/mnt/rclone/media`): `empty_volume` before the host's mount \
         is up; healthy {} s after the host mounted; `empty_volume` again {} s after the host \
         unmounted, with no stale figures (`{}`). `deploy/init-container.yaml`'s arguments exit \
         1 on the empty volume and 0 once mounted; the sidecar's config reports `wrong_fstype`. \
         Reproduce: {} and {}\n\n\
         **The mount point itself bound** (made while the mount is up, as a `hostPath` of the \
         mount point gives it): the container keeps that mount whatever the host does next. With \
         a tmpfs, still healthy on the first filesystem after the host unmounted it and after it \
         mounted another; with a FUSE daemon killed, unmounted and mounted again, `disconnected` \
         for good, while a container bound above the mount point is `empty_volume` and then \
         healthy on the new mount. Reproduce: {}, {} and {}\n\n\
         **A hung FUSE mount mounted again** (`umount -l`, a new daemon on the same path, the \
         old check still blocked in the kernel): healthy {} s after the new mount, the old check \
         counted in `blocked_checks` ({}) until it returns. Reproduce: {}\n\n\
         **A hung mount that keeps coming back** (discovery mode, {} vanish-and-return cycles, \
         `--max-blocked-checks {}`): at most {} checks blocked, {} threads at the end; past the \
         limit the mount reports `timeout` naming the limit instead of starting another check. \
         Reproduce: {}\n\n\
         **{} hung mounts beside {} healthy ones** (interval {} s, timeout {} s; the healthy \
         ones listed last): every healthy mount checked {} s after start (they used to wait \
         ⌈50/8⌉ × timeout, more than 4.5 s here); all hung mounts reported `timeout` after {} s; \
         the fewest checks of a healthy mount in 8 s: {}; an unmount among them seen after {} s. \
         Reproduce: {}\n\n\
         **A mount whose path is not UTF-8** (`caf\\xe9`) appearing while serving changes nothing \
         for the others, a watched mount unmounted afterwards is still caught, and the odd mount \
         is itself checked in discovery, shown as `caf\\xe9`. Reproduce: {}\n",
        n(&volume["healthy_after_host_mount_s"]),
        n(&volume["empty_volume_after_host_unmount_s"]),
        n(&volume["last_error"]),
        test("a_container_volume_is_healthy_only_while_the_host_mount_is_in_it"),
        test("the_deploy_examples_refuse_an_empty_volume"),
        test("a_bind_of_the_mount_point_keeps_the_mount_found_at_the_start"),
        test("a_bind_of_the_directory_above_sees_the_mount_made_again"),
        test("a_restarted_fuse_daemon_reaches_only_a_container_bound_above_its_mount_point"),
        n(&remount["healthy_after_remount_s"]),
        n(&remount["blocked_checks"]),
        test("a_hung_mount_mounted_again_is_healthy_within_an_interval"),
        n(&limit["cycles"]),
        n(&limit["limit"]),
        n(&limit["most_blocked"]),
        n(&limit["threads"]),
        test("blocked_checks_stay_within_the_limit_when_a_hung_mount_keeps_coming_back"),
        n(&many["hung"]),
        n(&many["healthy"]),
        n(&many["interval_s"]),
        n(&many["timeout_s"]),
        n(&many["healthy_first_checked_after_s"]),
        n(&many["hung_all_seen_after_s"]),
        n(&many["fewest_checks_in_8s"]),
        n(&many["unmount_seen_after_s"]),
        test("fifty_hung_mounts_do_not_delay_the_others"),
        test("a_mount_path_that_is_not_utf8_breaks_nothing"),
    );
    out
}

/// Section 9, from the figures of `tests/tests/abuse.rs`: each scenario's figures as measured.
fn render_abuse(dir: &Path) -> String {
    const SCENARIOS: [(&str, &str, &str); 7] = [
        (
            "One address at its limit",
            "abuse_one_address",
            "one_address_at_its_limit_cannot_starve_the_probes",
        ),
        (
            "A full cap of keep-alive clients",
            "abuse_full_cap",
            "a_full_cap_of_keep_alive_clients_stays_under_48_mib",
        ),
        (
            "`/metrics` flood, no mount stuck",
            "abuse_metrics_flood_calm",
            "a_stuck_mount_under_a_metrics_flood_costs_no_more_per_request",
        ),
        (
            "`/metrics` flood, one mount stuck in the kernel",
            "abuse_metrics_flood_stuck",
            "a_stuck_mount_under_a_metrics_flood_costs_no_more_per_request",
        ),
        (
            "`?exclude=` floods",
            "abuse_exclude_floods",
            "exclude_floods_at_5000_mounts_are_cheap_or_refused",
        ),
        (
            "A trickle reader",
            "abuse_trickle_reader",
            "a_trickle_reader_is_cut_at_the_total_deadline",
        ),
        (
            "A mount source with credentials",
            "abuse_credentials",
            "a_mount_source_with_credentials_appears_in_no_endpoint",
        ),
    ];
    let mut out = String::from(
        "## 9. Abusive clients\n\n\
         No client can starve the probes, take the descriptors or the memory, or read a secret: \
         the figures of `tests/tests/abuse.rs` (debug build), as each scenario measured them in \
         this run. Each test fails when its limit is passed (see its assertions).\n",
    );
    for (title, file, test) in SCENARIOS {
        let mut rows = Vec::new();
        flatten("", &load(dir, file), &mut rows);
        let _ = writeln!(
            out,
            "\n**{title}.** Reproduce: `cargo test -p tests --test abuse -- --include-ignored --exact {test}`\n\n\
             | figure | value |\n|---|---|"
        );
        for (key, value) in rows {
            let _ = writeln!(out, "| {key} | {value} |");
        }
    }
    out
}

/// `value`'s leaves as (dotted key, shown value); long lists are counted, not listed.
fn flatten(prefix: &str, value: &Value, rows: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, inner, rows);
            }
        }
        Value::Array(items) if items.len() > 8 || items.iter().any(|i| i.is_object()) => {
            rows.push((prefix.to_owned(), format!("{} entries", items.len())));
        }
        Value::Null if prefix.is_empty() => rows.push(("(not run)".to_owned(), "–".to_owned())),
        Value::Bool(b) => rows.push((prefix.to_owned(), b.to_string())),
        other => rows.push((prefix.to_owned(), n(other).replace('|', "\\|"))),
    }
}
