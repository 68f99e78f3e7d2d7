//! Reliability: the real binary while storage misbehaves (a FUSE filesystem whose statfs hangs, a
//! FUSE daemon killed with SIGKILL), while clients misbehave (idle, slow, oversized, garbage),
//! with bad configuration, under mount churn, and over a long run.
//!
//! Each test records its figures (see `tests::figures`); `cargo xtask bench reliability` reruns
//! them and writes RELIABILITY.md. The tests run one at a time: they
//! measure latencies and thread counts, which a neighbour test would disturb.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::figures;
use tests::fuse::{HangFs, require_fuse};
use tests::prober::Prober;
use tests::process;
use tests::{Monitor, Tmpfs, mount_json, require_root};

const INTERVAL: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_millis(500);
/// What kubelet and Docker ask while the storage misbehaves.
const PROBE_PATHS: &[&str] = &[
    "/healthz/live",
    "/healthz/ready",
    "/healthz/status",
    "/readyz",
    "/livez",
];
/// How long the probe endpoints may take while a mount hangs.
const PROBE_LATENCY_LIMIT: Duration = Duration::from_millis(50);

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `[[mounts]]` tables for a TOML config: (name, path) with `checkType = "none"`.
fn mounts_toml(mounts: &[(&str, &Path)]) -> String {
    mounts
        .iter()
        .map(|(name, path)| {
            format!(
                "[[mounts]]\nname = \"{name}\"\npath = \"{}\"\ncheckType = \"none\"\n",
                path.display()
            )
        })
        .collect()
}

fn reason(body: &Value, name: &str) -> String {
    mount_json(body, name)["reason"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

fn health(body: &Value, name: &str) -> String {
    mount_json(body, name)["status"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// Polls `/healthz/status` until `done` holds; when it first did. Panics after `limit`.
fn poll_until(
    monitor: &Monitor,
    limit: Duration,
    what: &str,
    mut done: impl FnMut(&Value) -> bool,
) -> Instant {
    let started = Instant::now();
    loop {
        let (_, body) = monitor.get_json("/healthz/status");
        if done(&body) {
            return Instant::now();
        }
        assert!(
            started.elapsed() < limit,
            "{what}: not within {limit:?}; last status {body}\nlog:\n{}",
            monitor.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Lets this test process hold thousands of client sockets.
fn raise_open_file_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
    hard
}

fn log_field(monitor: &Monitor, message: &str, field: &str) -> Value {
    monitor
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|json| json["msg"] == message)
        .map(|json| json[field].clone())
        .unwrap_or(Value::Null)
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

// ---------------------------------------------------------------------------------------------
// 1. A mount whose statfs hangs.

#[test]
#[ignore = "needs root and /dev/fuse: cargo xtask test, as root"]
fn hung_mount_reports_timeout_costs_one_thread_and_recovers() {
    let test = "hung_mount_reports_timeout_costs_one_thread_and_recovers";
    require_fuse(test);
    let _serial = serial();
    const INTERVALS: u32 = 100;
    // More hung mounts than checks run at once (8): stuck checks must not hold up the others.
    const HUNG: usize = 9;
    let mut hung: Vec<HangFs> = (0..HUNG).map(|_| HangFs::mount()).collect();
    let names: Vec<String> = (0..HUNG).map(|i| format!("hung{i}")).collect();
    let healthy = Tmpfs::new("size=1m");
    let dir = tempfile::tempdir().unwrap();
    let mut mounts: Vec<(&str, &Path)> = names
        .iter()
        .zip(&hung)
        .map(|(name, fs)| (name.as_str(), fs.path()))
        .collect();
    mounts.push(("ok", healthy.path()));
    let config = write_config(
        dir.path(),
        "mount-monitor.toml",
        &format!(
            "checkInterval = \"1s\"\nreadTimeout = \"500ms\"\n{}",
            mounts_toml(&mounts)
        ),
    );
    let monitor = Monitor::start(["--config", config.to_str().unwrap()]);
    let pid = monitor.pid();
    monitor.wait_for("/healthz/ready", 200, Duration::from_secs(5));
    let prober = Prober::start(monitor.addr, PROBE_PATHS, Duration::from_millis(20));
    // A few rounds, so the runtime has the threads it keeps.
    std::thread::sleep(3 * INTERVAL);
    let before = process::settled_usage(pid, 10, Duration::from_millis(100));

    let injected: Vec<Instant> = hung.iter_mut().map(HangFs::hang).collect();
    let (_, body) = monitor.get_json("/healthz/status");
    let healthy_checked_at = mount_json(&body, "ok")["last_check"].clone();
    // When each mount was first seen reported as `timeout`.
    let mut detected: Vec<Option<Instant>> = vec![None; HUNG];
    poll_until(
        &monitor,
        TIMEOUT + INTERVAL * 2,
        "timeout reported",
        |body| {
            for (i, name) in names.iter().enumerate() {
                if detected[i].is_none() && reason(body, name) == "timeout" {
                    detected[i] = Some(Instant::now());
                }
            }
            detected.iter().all(Option::is_some)
        },
    );
    // The check that hangs is the one whose statfs hangfs holds (hangfs notes when it got it).
    let held: Vec<Instant> = hung
        .iter()
        .map(|fs| fs.wait_event("held statfs", INTERVAL))
        .collect();
    let mut detection = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let at = detected[i].expect("seen");
        let since_check = at.saturating_duration_since(held[i]);
        assert!(
            since_check <= TIMEOUT + Duration::from_secs(1),
            "{name}: timeout reported {since_check:?} after the check began to hang"
        );
        detection.push((since_check, at - injected[i]));
    }

    // 100 check intervals with both mounts hung.
    let mut peak = before;
    let until = injected[0] + INTERVAL * INTERVALS;
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
        let now = process::usage(pid);
        peak.threads = peak.threads.max(now.threads);
        peak.rss_kib = peak.rss_kib.max(now.rss_kib);
        peak.fds = peak.fds.max(now.fds);
    }
    let during = process::usage(pid);
    let (status, body) = monitor.get_json("/healthz/status");
    assert_eq!(status, 503);
    for name in &names {
        assert_eq!(reason(&body, name), "timeout", "{body}");
        assert_eq!(health(&body, name), "unhealthy", "{body}");
        let stuck = mount_json(&body, name)["stuck_seconds"]
            .as_f64()
            .unwrap_or(0.0);
        assert!(
            stuck >= f64::from(INTERVALS) - 5.0,
            "{name}: stuck_seconds {stuck}"
        );
    }
    assert_eq!(health(&body, "ok"), "healthy", "{body}");
    assert_ne!(
        mount_json(&body, "ok")["last_check"],
        healthy_checked_at,
        "the healthy mount is still checked beside {HUNG} hung ones"
    );
    let (_, verbose) = monitor.get("/readyz?verbose");
    assert!(verbose.contains("[-]hung0 failed: timeout"), "{verbose}");
    assert!(verbose.contains("[+]ok ok"), "{verbose}");
    // One check per hung mount stays in flight; none is started beside it.
    for fs in &hung {
        assert_eq!(
            fs.count("held statfs"),
            1,
            "a second check of a hung mount started"
        );
    }
    let blocked = process::thread_states(pid)
        .into_iter()
        .filter(|(_, wchan)| wchan == "request_wait_answer")
        .count();
    assert_eq!(blocked, hung.len(), "threads blocked in FUSE");
    assert!(
        peak.threads <= before.threads + hung.len() as u64,
        "threads grew from {} to {} with {} hung mounts",
        before.threads,
        peak.threads,
        hung.len()
    );

    // The filesystem answers again.
    let released = Instant::now();
    for fs in &mut hung {
        assert_eq!(fs.release(), 1, "one statfs was held");
    }
    let recovered = poll_until(&monitor, INTERVAL * 2, "recovery", |b| {
        names.iter().all(|name| health(b, name) == "healthy")
    });
    let recovery = recovered - released;
    monitor.wait_for("/healthz/ready", 200, INTERVAL);
    let samples = prober.stop();
    let after = process::settled_usage(pid, 10, Duration::from_millis(100));
    assert!(samples.failures.is_empty(), "{:?}", samples.failures);
    let (worst, path) = samples.worst();
    assert!(
        worst < PROBE_LATENCY_LIMIT,
        "GET {path} took {worst:?} while mounts hung"
    );

    figures::record(
        "hung_mount",
        json!({
            "hung_mounts": hung.len(),
            "healthy_mounts": 1,
            "intervals": INTERVALS,
            "check_interval_s": secs(INTERVAL),
            "timeout_s": secs(TIMEOUT),
            "detection_after_check_hangs_worst_s": secs(detection.iter().map(|d| d.0).max().unwrap_or_default()),
            "detection_after_check_hangs_mean_s": secs(detection.iter().map(|d| d.0).sum::<Duration>() / HUNG as u32),
            "detection_after_injection_worst_s": secs(detection.iter().map(|d| d.1).max().unwrap_or_default()),
            "recovery_after_release_s": secs(recovery),
            "statfs_held_per_mount_max": hung.iter().map(|fs| fs.count("held statfs")).max(),
            "threads_blocked_in_fuse": blocked,
            "before": before.json(),
            "peak_while_hung": peak.json(),
            "while_hung": during.json(),
            "after": after.json(),
            "probes": samples.json(),
        }),
    );
}

// ---------------------------------------------------------------------------------------------
// 2. The FUSE daemon dies.

#[test]
#[ignore = "needs root and /dev/fuse: cargo xtask test, as root"]
fn dead_fuse_daemon_is_disconnected_then_not_mounted() {
    let test = "dead_fuse_daemon_is_disconnected_then_not_mounted";
    require_fuse(test);
    let _serial = serial();
    let mut fs = HangFs::mount();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "mount-monitor.toml",
        &format!(
            "checkInterval = \"1s\"\nreadTimeout = \"500ms\"\n{}",
            mounts_toml(&[("media", fs.path())])
        ),
    );
    let monitor = Monitor::start(["--config", config.to_str().unwrap()]);
    let pid = monitor.pid();
    monitor.wait_for("/healthz/ready", 200, Duration::from_secs(5));
    let prober = Prober::start(monitor.addr, PROBE_PATHS, Duration::from_millis(20));
    std::thread::sleep(2 * INTERVAL);
    let before = process::settled_usage(pid, 5, Duration::from_millis(100));
    // Jitter makes an interval up to 10% longer; the check itself is fast.
    let one_round = INTERVAL.mul_f64(1.1) + Duration::from_millis(500);

    let killed = Instant::now();
    fs.kill_daemon();
    let disconnected = poll_until(&monitor, one_round, "disconnected", |b| {
        reason(b, "media") == "disconnected"
    });
    let (_, body) = monitor.get_json("/healthz/status");
    let error = mount_json(&body, "media")["last_error"]
        .as_str()
        .unwrap_or("");
    assert!(error.contains("not connected"), "{body}");

    let unmounted = Instant::now();
    fs.unmount_lazily();
    let not_mounted = poll_until(&monitor, one_round, "not_mounted", |b| {
        reason(b, "media") == "not_mounted"
    });
    let samples = prober.stop();
    let after = process::settled_usage(pid, 5, Duration::from_millis(100));
    assert!(samples.failures.is_empty(), "{:?}", samples.failures);
    let (worst, path) = samples.worst();
    assert!(worst < PROBE_LATENCY_LIMIT, "GET {path} took {worst:?}");

    figures::record(
        "dead_daemon",
        json!({
            "disconnected_after_sigkill_s": secs(disconnected - killed),
            "not_mounted_after_lazy_unmount_s": secs(not_mounted - unmounted),
            "last_error": error,
            "before": before.json(),
            "after": after.json(),
            "probes": samples.json(),
        }),
    );
}

// ---------------------------------------------------------------------------------------------
// 3. SIGTERM while a check is stuck in the kernel.

const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

fn start_for_shutdown(fs: &HangFs, dir: &Path) -> Monitor {
    let config = write_config(
        dir,
        "mount-monitor.toml",
        &format!(
            "checkInterval = \"1s\"\nreadTimeout = \"500ms\"\nshutdownTimeout = \"{}s\"\n{}",
            SHUTDOWN_TIMEOUT.as_secs(),
            mounts_toml(&[("media", fs.path())])
        ),
    );
    let monitor = Monitor::start(["--config", config.to_str().unwrap()]);
    monitor.wait_for("/healthz/ready", 200, Duration::from_secs(5));
    monitor
}

/// The daemon is wedged and never reads the statfs request: the kernel drops the request when the
/// process exits, and the exit is complete.
#[test]
#[ignore = "needs root and /dev/fuse: cargo xtask test, as root"]
fn sigterm_with_a_check_queued_on_a_wedged_daemon_exits_0() {
    let test = "sigterm_with_a_check_queued_on_a_wedged_daemon_exits_0";
    require_fuse(test);
    let _serial = serial();
    let mut fs = HangFs::mount();
    let dir = tempfile::tempdir().unwrap();
    let mut monitor = start_for_shutdown(&fs, dir.path());
    fs.stall();
    poll_until(&monitor, INTERVAL * 3, "timeout", |b| {
        reason(b, "media") == "timeout"
    });
    let pid = monitor.pid();
    let stuck = process::thread_states(pid)
        .into_iter()
        .filter(|(_, wchan)| wchan == "request_wait_answer")
        .count();
    assert_eq!(stuck, 1, "one check waits on the FUSE daemon");

    let signalled = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let code = monitor.wait_exit(SHUTDOWN_TIMEOUT).and_then(|s| s.code());
    let exited = signalled.elapsed();
    assert_eq!(
        code,
        Some(0),
        "exit within {SHUTDOWN_TIMEOUT:?}; log:\n{}",
        monitor.log()
    );
    fs.release();
    figures::record(
        "shutdown_wedged",
        json!({
            "exit_code": code,
            "exited_after_sigterm_s": secs(exited),
            "shutdown_timeout_s": SHUTDOWN_TIMEOUT.as_secs(),
        }),
    );
}

/// The daemon has read the statfs request and sits on it. The monitor still stops within the
/// shutdown timeout: it closes its port, logs, and its main thread exits with status 0. The kernel
/// reaps the process only once that request ends (the daemon answers or dies, or the connection
/// is aborted): a thread waiting on a FUSE request already in the daemon's hands cannot be
/// killed, by any signal.
#[test]
#[ignore = "needs root and /dev/fuse: cargo xtask test, as root"]
fn sigterm_with_a_check_held_by_the_daemon_stops_within_the_timeout() {
    let test = "sigterm_with_a_check_held_by_the_daemon_stops_within_the_timeout";
    require_fuse(test);
    let _serial = serial();
    let mut fs = HangFs::mount();
    let dir = tempfile::tempdir().unwrap();
    let mut monitor = start_for_shutdown(&fs, dir.path());
    fs.hang();
    fs.wait_event("held statfs", INTERVAL * 3);
    poll_until(&monitor, INTERVAL * 2, "timeout", |b| {
        reason(b, "media") == "timeout"
    });
    let pid = monitor.pid();
    let addr = monitor.addr;

    let signalled = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let stopped = loop {
        let states = process::thread_states(pid);
        if states.first().is_some_and(|(state, _)| *state == 'Z') {
            break signalled.elapsed();
        }
        assert!(
            signalled.elapsed() < SHUTDOWN_TIMEOUT,
            "main thread still running {SHUTDOWN_TIMEOUT:?} after SIGTERM: {states:?}\nlog:\n{}",
            monitor.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    // exit_group ends every other thread; one still on its way out shows as running for a
    // moment after the main thread is a zombie.
    let settled = Instant::now() + Duration::from_secs(2);
    let (states, left) = loop {
        let states = process::thread_states(pid);
        let left: Vec<_> = states.iter().skip(1).cloned().collect();
        let only_held = left.len() == 1 && left[0].1 == "request_wait_answer";
        if only_held || Instant::now() > settled {
            break (states, left);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(
        left.len() == 1 && left[0].1 == "request_wait_answer",
        "only the held check is left: {states:?}"
    );
    assert!(monitor.log().contains("\"mount-monitor stopped\""));
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "the port is closed"
    );

    let released = Instant::now();
    assert_eq!(fs.release(), 1);
    let code = monitor
        .wait_exit(Duration::from_secs(2))
        .and_then(|s| s.code());
    let reaped = released.elapsed();
    assert_eq!(code, Some(0));
    figures::record(
        "shutdown_held",
        json!({
            "exit_code": code,
            "main_thread_exited_after_sigterm_s": secs(stopped),
            "threads_left_in_fuse": left.len(),
            "reaped_after_release_s": secs(reaped),
            "shutdown_timeout_s": SHUTDOWN_TIMEOUT.as_secs(),
        }),
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Abusive HTTP clients.

/// What the server did with a connection: answered (status), or closed it without an answer.
fn exchange(addr: SocketAddr, request: &[u8]) -> Result<Option<u16>, String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may answer and close before it has read everything: ignore write errors.
    let _ = stream.write_all(request);
    let mut response = Vec::new();
    match stream.read_to_end(&mut response) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) if response.is_empty() => return Err(e.to_string()),
        Err(_) => {}
    }
    let head = String::from_utf8_lossy(&response[..response.len().min(32)]).into_owned();
    Ok(head.split(' ').nth(1).and_then(|s| s.parse().ok()))
}

/// Sockets the client keeps open; `closed_after` is set when the server closes one.
struct Held {
    stream: TcpStream,
    opened: Instant,
    closed_after: Option<Duration>,
}

fn open_idle(addr: SocketAddr, count: usize) -> Vec<Held> {
    (0..count)
        .map(|_| {
            let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
            stream.set_nonblocking(true).unwrap();
            Held {
                stream,
                opened: Instant::now(),
                closed_after: None,
            }
        })
        .collect()
}

/// Notes which sockets the server has closed by now.
fn note_closed(held: &mut [Held]) {
    let mut buf = [0u8; 1024];
    for h in held.iter_mut().filter(|h| h.closed_after.is_none()) {
        loop {
            match h.stream.read(&mut buf) {
                Ok(0) => {
                    h.closed_after = Some(h.opened.elapsed());
                    break;
                }
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    h.closed_after = Some(h.opened.elapsed());
                    break;
                }
            }
        }
    }
}

fn close_times(held: &[Held]) -> Value {
    let mut times: Vec<Duration> = held.iter().filter_map(|h| h.closed_after).collect();
    times.sort_unstable();
    json!({
        "connections": held.len(),
        "closed_by_server": times.len(),
        "first_closed_after_s": times.first().map(|d| secs(*d)),
        "last_closed_after_s": times.last().map(|d| secs(*d)),
    })
}

#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn abusive_clients_do_not_stop_the_probes() {
    let test = "abusive_clients_do_not_stop_the_probes";
    require_root(test);
    let _serial = serial();
    let header_timeout = mount_monitor::server::HEADER_READ_TIMEOUT;
    let client_fds = raise_open_file_limit();
    assert!(
        client_fds >= 2048,
        "the test needs 2048 descriptors, the hard limit is {client_fds}"
    );
    let data = Tmpfs::new("size=1m");
    std::fs::write(data.path().join(".health-check"), "ok").unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A canary check: it needs a descriptor each round, which idle clients must not take.
    let config = write_config(
        dir.path(),
        "mount-monitor.toml",
        &format!(
            "checkInterval = \"1s\"\nreadTimeout = \"500ms\"\nfailureThreshold = 1\n[[mounts]]\nname = \"data\"\npath = \"{}\"\n",
            data.path().display()
        ),
    );
    // Every client here is 127.0.0.1: lift the per-address limit (tests/abuse.rs covers it), so
    // that what is measured is the header timeout and the cap.
    let monitor = Monitor::start([
        "--config",
        config.to_str().unwrap(),
        "--max-connections-per-peer",
        "4096",
    ]);
    let pid = monitor.pid();
    let addr = monitor.addr;
    monitor.wait_for("/readyz", 200, Duration::from_secs(5));
    let before = process::settled_usage(pid, 5, Duration::from_millis(100));
    let prober = Prober::start(
        addr,
        &["/readyz", "/livez", "/healthz/ready"],
        Duration::from_millis(20),
    );
    let mut found = BTreeMap::new();

    // 1,000 idle connections, reopened as the server closes them, for three header timeouts.
    let started = Instant::now();
    let mut idle = open_idle(addr, 1000);
    let mut all_idle = Vec::new();
    let mut peak = process::usage(pid);
    while started.elapsed() < header_timeout * 3 {
        std::thread::sleep(Duration::from_millis(100));
        note_closed(&mut idle);
        let (closed, open): (Vec<Held>, Vec<Held>) =
            idle.into_iter().partition(|h| h.closed_after.is_some());
        idle = open;
        idle.extend(open_idle(addr, closed.len()));
        all_idle.extend(closed);
        let now = process::usage(pid);
        peak.fds = peak.fds.max(now.fds);
        peak.rss_kib = peak.rss_kib.max(now.rss_kib);
    }
    let opened = all_idle.len() + idle.len();
    drop(idle);
    let earliest = all_idle
        .iter()
        .filter_map(|h| h.closed_after)
        .min()
        .unwrap();
    let latest = all_idle
        .iter()
        .filter_map(|h| h.closed_after)
        .max()
        .unwrap();
    assert!(
        earliest >= header_timeout - Duration::from_millis(500),
        "idle connections were held open, not refused: first closed after {earliest:?}"
    );
    assert!(
        latest <= header_timeout + Duration::from_secs(3),
        "idle connections are closed after the header timeout: one lasted {latest:?}"
    );
    assert!(
        peak.fds >= 1000,
        "the server held the idle connections: {peak:?}"
    );
    found.insert(
        "idle",
        json!({
            "held_at_once": 1000,
            "opened_in_total": opened,
            "seconds": secs(header_timeout * 3),
            "server_fds_peak": peak.fds,
            "server_closed": close_times(&all_idle),
        }),
    );

    // Slow headers: a byte every 100ms, never finishing the head.
    let mut slow = open_idle(addr, 200);
    let started = Instant::now();
    for h in &mut slow {
        let _ = h
            .stream
            .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    }
    while started.elapsed() < header_timeout + Duration::from_secs(2) {
        for h in slow.iter_mut().filter(|h| h.closed_after.is_none()) {
            let _ = h.stream.write_all(b"a");
        }
        std::thread::sleep(Duration::from_millis(100));
        note_closed(&mut slow);
    }
    assert!(
        slow.iter().all(|h| h
            .closed_after
            .is_some_and(|d| d <= header_timeout + Duration::from_secs(3))),
        "slow-header clients are cut at the header timeout: {}",
        close_times(&slow)
    );
    found.insert("slow_headers", close_times(&slow));

    // Oversized heads, garbage, unknown paths and methods: a 4xx or a closed connection, never a
    // 5xx, never a crash.
    let big_header = format!(
        "GET /readyz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let many_headers = format!(
        "GET /readyz HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..2000)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect::<String>()
    );
    let long_uri = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("64 KiB header", big_header.into_bytes()),
        ("2,000 headers", many_headers.into_bytes()),
        ("100 KiB URI", long_uri.into_bytes()),
        ("no method", b"/readyz HTTP/1.1\r\n\r\n".to_vec()),
        ("bare word", b"HELLO\r\n\r\n".to_vec()),
        ("binary", (0..=255u8).cycle().take(4096).collect()),
        (
            "TLS hello",
            vec![
                0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
            ],
        ),
        (
            "HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        ),
        ("HTTP/9", b"GET /readyz HTTP/9.9\r\n\r\n".to_vec()),
        (
            "bad header",
            b"GET /readyz HTTP/1.1\r\nHost x\r\n\r\n".to_vec(),
        ),
        (
            "NUL in path",
            b"GET /ready\0z HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "bad chunked",
            b"POST /readyz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
                .to_vec(),
        ),
        (
            "huge content-length",
            b"POST /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n"
                .to_vec(),
        ),
        (
            "unknown path",
            b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "traversal",
            b"GET /readyz/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                .to_vec(),
        ),
        (
            "encoded",
            b"GET /readyz/%00%ff%2e%2e HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "POST",
            b"POST /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_vec(),
        ),
        (
            "DELETE",
            b"DELETE /healthz/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "OPTIONS",
            b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "CONNECT",
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
                .to_vec(),
        ),
        (
            "TRACE",
            b"TRACE /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "made-up method",
            b"BREW /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "lowercase method",
            b"get /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
    ];
    let mut answers = BTreeMap::new();
    for round in 0..5 {
        for (what, request) in &cases {
            let answer = exchange(addr, request).unwrap_or_else(|e| panic!("{what}: {e}"));
            // An unclean path is redirected to its clean form, as Go's mux (and so
            // debrid-mount-monitor) does: `/etc/passwd` is then a 404 like any unknown path.
            let redirected = *what == "traversal";
            assert!(
                answer.is_none_or(
                    |status| (400..500).contains(&status) || (redirected && status == 301)
                ),
                "{what}: answered {answer:?}"
            );
            if round == 0 {
                answers.insert(
                    *what,
                    answer.map_or("closed".to_owned(), |status| status.to_string()),
                );
            }
        }
    }
    assert_eq!(answers["64 KiB header"], "431", "{answers:?}");
    assert_eq!(answers["unknown path"], "404", "{answers:?}");
    assert_eq!(answers["traversal"], "301", "{answers:?}");
    assert_eq!(answers["DELETE"], "405", "{answers:?}");
    found.insert("bad_requests", json!(answers));

    let samples = prober.stop();
    assert!(samples.failures.is_empty(), "{:?}", samples.failures);
    let after = process::settled_usage(pid, 5, Duration::from_millis(100));
    assert!(
        after.peak_rss_kib < 100 * 1024,
        "memory stays bounded: peak {} KiB",
        after.peak_rss_kib
    );
    assert_eq!(monitor.get("/livez").0, 200, "still alive");
    let (_, body) = monitor.get_json("/healthz/status");
    assert_eq!(
        health(&body, "data"),
        "healthy",
        "the canary check never lacked a descriptor"
    );
    assert!(
        !monitor.log().contains("accept failed"),
        "{}",
        monitor.log()
    );
    found.insert("before", before.json());
    found.insert("after", after.json());
    found.insert("probes", samples.json());
    found.insert(
        "max_connections",
        log_field(&monitor, "mount-monitor started", "max_connections"),
    );
    figures::record("http_abuse", json!(found));
}

/// With few descriptors, idle clients get at most three quarters of them: the canary check keeps
/// working and the server never runs out (it used to: EMFILE failed the canary read and the mount
/// was reported `canary_failed`).
#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn idle_clients_cannot_take_the_descriptors_checks_need() {
    let test = "idle_clients_cannot_take_the_descriptors_checks_need";
    require_root(test);
    let _serial = serial();
    raise_open_file_limit();
    const LIMIT: u64 = 256;
    let data = Tmpfs::new("size=1m");
    std::fs::write(data.path().join(".health-check"), "ok").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "mount-monitor.toml",
        &format!(
            "checkInterval = \"1s\"\nreadTimeout = \"500ms\"\nfailureThreshold = 1\n[[mounts]]\nname = \"data\"\npath = \"{}\"\n",
            data.path().display()
        ),
    );
    let monitor = Monitor::start_with(
        [
            "--config",
            config.to_str().unwrap(),
            "--max-connections-per-peer",
            "4096",
        ],
        &std::env::temp_dir(),
        |command| {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                command.pre_exec(|| {
                    use nix::sys::resource::{Resource, setrlimit};
                    setrlimit(Resource::RLIMIT_NOFILE, LIMIT, LIMIT).map_err(std::io::Error::from)
                });
            }
        },
    );
    let pid = monitor.pid();
    let cap = log_field(&monitor, "mount-monitor started", "max_connections");
    assert_eq!(cap, json!(LIMIT / 4 * 3), "{}", monitor.log());
    monitor.wait_for("/readyz", 200, Duration::from_secs(5));

    let mut idle = open_idle(monitor.addr, 400);
    let started = Instant::now();
    let mut peak_fds = 0;
    let mut unhealthy = Vec::new();
    while started.elapsed() < Duration::from_secs(3) {
        peak_fds = peak_fds.max(process::usage(pid).fds);
        std::thread::sleep(Duration::from_millis(100));
    }
    note_closed(&mut idle);
    let refused = idle.iter().filter(|h| h.closed_after.is_some()).count();
    // The held ones time out; then everything answers again.
    drop(idle);
    monitor.wait_for("/readyz", 200, Duration::from_secs(2));
    let (_, body) = monitor.get_json("/healthz/status");
    if health(&body, "data") != "healthy" || body.to_string().contains("canary_failed") {
        unhealthy.push(body.to_string());
    }
    assert!(unhealthy.is_empty(), "{unhealthy:?}");
    assert!(
        !monitor.log().contains("canary_failed") && !monitor.log().contains("accept failed"),
        "{}",
        monitor.log()
    );
    assert!(peak_fds < LIMIT, "peak {peak_fds} descriptors of {LIMIT}");
    assert!(
        refused >= 400 - LIMIT as usize * 3 / 4,
        "{refused} connections over the cap closed"
    );
    figures::record(
        "fd_limit",
        json!({
            "open_file_limit": LIMIT,
            "max_connections": cap,
            "idle_connections": 400,
            "closed_at_once_over_the_cap": refused,
            "server_fds_peak": peak_fds,
        }),
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Bad configuration.

#[test]
#[ignore = "needs root to run the binary as another user: cargo xtask test, as root"]
fn every_bad_configuration_exits_2_with_one_line() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let file = |name: &str, text: &str| write_config(dir.path(), name, text).display().to_string();
    let huge = write_config(dir.path(), "huge.json", &" ".repeat(1024 * 1024 + 1));
    let unreadable = file("unreadable.json", "{}");
    std::fs::set_permissions(
        &unreadable,
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("dir.json")).unwrap();

    // (class, arguments, what the one line must name)
    let cases: Vec<(&str, Vec<String>, Vec<String>)> = vec![
        (
            "bad JSON",
            vec!["-c".into(), file("bad.json", "{\"checkInterval\": ")],
            vec![path("bad.json"), "line 1".into()],
        ),
        (
            "bad JSON, trailing",
            vec!["-c".into(), file("trail.json", "{} {}")],
            vec![path("trail.json")],
        ),
        (
            "bad TOML",
            vec!["-c".into(), file("bad.toml", "checkInterval = \n")],
            vec![path("bad.toml"), "checkInterval".into()],
        ),
        (
            "TOML duplicate key",
            vec![
                "-c".into(),
                file("dup.toml", "readTimeout = \"1s\"\nreadTimeout = \"2s\"\n"),
            ],
            vec![path("dup.toml"), "readTimeout".into()],
        ),
        (
            // A warning in config.json (read as debrid-mount-monitor's Go code reads it),
            // an error for those who lint.
            "unknown key, --strict",
            vec![
                "-c".into(),
                file(
                    "unknown.json",
                    "{\"chekInterval\": \"5s\", \"mounts\": [{\"path\": \"/\"}]}",
                ),
                "--strict".into(),
            ],
            vec![path("unknown.json"), "`chekInterval`".into()],
        ),
        (
            "unknown mount key",
            vec![
                "-c".into(),
                file(
                    "unknown.toml",
                    "[[mounts]]\npath = \"/x\"\ncolour = \"red\"\n",
                ),
            ],
            vec![path("unknown.toml"), "`mounts[0].colour`".into()],
        ),
        (
            "wrong type",
            vec!["-c".into(), file("type.json", "{\"checkInterval\": 5}")],
            vec![path("type.json"), "`checkInterval`".into()],
        ),
        (
            "bad duration",
            vec![
                "-c".into(),
                file("duration.json", "{\"readTimeout\": \"soon\"}"),
            ],
            vec![path("duration.json"), "`readTimeout`".into()],
        ),
        (
            "huge duration",
            vec![
                "-c".into(),
                file("long.json", "{\"checkInterval\": \"100000h\"}"),
            ],
            vec![path("long.json"), "`checkInterval`".into()],
        ),
        (
            "interval below 200ms",
            vec![
                "-c".into(),
                file("fast.json", "{\"checkInterval\": \"100ms\"}"),
            ],
            vec![path("fast.json"), "`checkInterval`".into()],
        ),
        (
            "timeout not below interval",
            vec!["-c".into(), file("slow.json", "{\"readTimeout\": \"1m\"}")],
            vec![path("slow.json"), "`readTimeout`".into()],
        ),
        (
            // In config.json, 0 is the default.
            "zero threshold",
            vec!["-c".into(), file("zero.toml", "failureThreshold = 0\n")],
            vec![path("zero.toml"), "`failureThreshold`".into()],
        ),
        (
            "negative threshold",
            vec![
                "-c".into(),
                file("negative.toml", "successThreshold = -1\n"),
            ],
            vec![path("negative.toml"), "`successThreshold`".into()],
        ),
        (
            "negative mount threshold",
            vec![
                "-c".into(),
                file(
                    "mneg.json",
                    "{\"mounts\":[{\"path\":\"/x\",\"failureThreshold\":-3}]}",
                ),
            ],
            vec![path("mneg.json"), "`mounts[0].failureThreshold`".into()],
        ),
        (
            "missing path",
            vec![
                "-c".into(),
                file("nopath.json", "{\"mounts\":[{\"name\":\"media\"}]}"),
            ],
            vec![path("nopath.json"), "`mounts[0].path`".into()],
        ),
        (
            // Shared names load (a warning), as in debrid-mount-monitor.
            "duplicate names, --strict",
            vec![
                "-c".into(),
                file(
                    "twice.json",
                    "{\"mounts\":[{\"name\":\"a\",\"path\":\"/x\"},{\"name\":\"a\",\"path\":\"/y\"}]}",
                ),
                "--strict".into(),
            ],
            vec!["\"a\"".into(), "(/y)".into(), "(/x)".into()],
        ),
        (
            "duplicate flag names, --strict",
            vec![
                "--mount".into(),
                "a=/x".into(),
                "--mount".into(),
                "a=/y".into(),
                "--strict".into(),
            ],
            vec!["\"a\"".into(), "(/y)".into(), "(/x)".into()],
        ),
        (
            "bad size",
            vec![
                "-c".into(),
                file(
                    "size.json",
                    "{\"mounts\":[{\"path\":\"/x\",\"minFree\":\"lots\"}]}",
                ),
            ],
            vec![path("size.json"), "`mounts[0].minFree`".into()],
        ),
        (
            "bad percentage",
            vec![
                "-c".into(),
                file(
                    "pct.json",
                    "{\"mounts\":[{\"path\":\"/x\",\"minFreeInodes\":\"120%\"}]}",
                ),
            ],
            vec![path("pct.json"), "`mounts[0].minFreeInodes`".into()],
        ),
        (
            "bad watchdog duration",
            vec![
                "-c".into(),
                file(
                    "wd.json",
                    "{\"watchdog\":{\"enabled\":true,\"restartDelay\":\"soon\"}}",
                ),
            ],
            vec![path("wd.json"), "`watchdog.restartDelay`".into()],
        ),
        (
            "file over 1 MiB",
            vec!["-c".into(), huge.display().to_string()],
            vec![huge.display().to_string(), "1 MiB".into()],
        ),
        (
            "unreadable file",
            vec!["-c".into(), unreadable.clone()],
            vec![unreadable.clone(), "ermission denied".into()],
        ),
        (
            "missing file",
            vec!["-c".into(), path("absent.json")],
            vec![path("absent.json")],
        ),
        (
            "not a file",
            vec!["-c".into(), path("dir.json")],
            vec![path("dir.json")],
        ),
        (
            "bad --listen",
            vec!["--listen".into(), "localhost".into()],
            vec!["--listen".into()],
        ),
        (
            "bad listen key",
            vec![
                "-c".into(),
                file("listen.json", "{\"listen\": \"0.0.0.0:http\"}"),
            ],
            vec![path("listen.json"), "`listen`".into()],
        ),
        (
            "bad --http-port",
            vec!["--http-port".into(), "99999".into()],
            vec!["--http-port".into()],
        ),
        (
            "bad --failure-threshold",
            vec!["--failure-threshold".into(), "many".into()],
            vec!["--failure-threshold".into()],
        ),
        (
            "bad --check-interval",
            vec!["--check-interval".into(), "0.5".into()],
            vec!["--check-interval".into()],
        ),
        (
            "bad --mount",
            vec!["--mount".into(), "media=".into()],
            vec!["--mount".into()],
        ),
        (
            "bad --log-level",
            vec!["--log-level".into(), "loud".into()],
            vec!["--log-level".into()],
        ),
        (
            "unknown flag",
            vec!["--chek-interval".into(), "5s".into()],
            vec!["--chek-interval".into()],
        ),
    ];
    let mut results = Vec::new();
    for (class, args, needles) in &cases {
        // Root reads any file: the unreadable case runs as nobody.
        let as_nobody = *class == "unreadable file" && nix::unistd::geteuid().is_root();
        let (code, stderr) = run_config_check(args, as_nobody, dir.path());
        assert_eq!(code, 2, "{class}: {args:?}: {stderr}");
        let line = stderr.trim_end();
        assert_eq!(line.lines().count(), 1, "{class}: one line: {stderr}");
        assert!(line.starts_with("mount-monitor: "), "{class}: {line}");
        assert!(!line.contains("panicked"), "{class}: {line}");
        for needle in needles {
            assert!(
                line.contains(needle.as_str()),
                "{class}: {line:?} does not name {needle:?}"
            );
        }
        results.push(json!({ "class": class, "message": line.replace(&dir.path().display().to_string(), "DIR") }));
    }
    figures::record("bad_configuration", json!({ "cases": results }));
}

/// Runs `mount-monitor check ARGS` (one round, or exit 2 on bad configuration).
fn run_config_check(args: &[String], as_nobody: bool, scratch: &Path) -> (i32, String) {
    use std::os::unix::process::CommandExt;
    let mut binary = tests::binary().to_path_buf();
    if as_nobody {
        // A copy nobody may execute, wherever the checkout lives.
        let copy = scratch.join("mount-monitor");
        if !copy.exists() {
            std::fs::copy(&binary, &copy).unwrap();
            std::fs::set_permissions(scratch, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        binary = copy;
    }
    let mut command = std::process::Command::new(binary);
    command
        .arg("check")
        .args(args)
        .current_dir(scratch)
        .env_remove("MOUNT_MONITOR_CONFIG")
        .stdin(std::process::Stdio::null());
    if as_nobody {
        command.uid(65534).gid(65534);
    }
    let out = command.output().expect("run mount-monitor");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------------------------
// 6. Mounts come and go in discovery mode.

#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn discovery_picks_up_and_drops_mounts_without_a_restart() {
    let test = "discovery_picks_up_and_drops_mounts_without_a_restart";
    require_root(test);
    let _serial = serial();
    let rounds = if figures::full_run() { 20 } else { 6 };
    const PER_ROUND: usize = 5;
    let monitor = Monitor::start(["--check-interval", "1s", "--timeout", "500ms"]);
    let pid = monitor.pid();
    // Not /readyz: whether every mount of this machine is healthy is none of this test's business.
    monitor.wait_for("/livez", 200, Duration::from_secs(5));
    let before = process::settled_usage(pid, 5, Duration::from_millis(100));
    let present = |body: &Value, path: &Path| {
        body["mounts"].as_array().is_some_and(|mounts| {
            mounts
                .iter()
                .any(|m| m["path"] == path.display().to_string() && m["status"] == "healthy")
        })
    };
    let listed = |body: &Value, path: &Path| {
        body["mounts"].as_array().is_some_and(|mounts| {
            mounts
                .iter()
                .any(|m| m["path"] == path.display().to_string())
        })
    };
    // Discovery re-reads the table every interval; the new mount's first check follows at once.
    let limit = INTERVAL * 2 + TIMEOUT;
    let mut picked_up = Vec::new();
    let mut dropped = Vec::new();
    for _ in 0..rounds {
        let mut mounts: Vec<Tmpfs> = (0..PER_ROUND).map(|_| Tmpfs::new("size=64k")).collect();
        let mounted = Instant::now();
        let seen = poll_until(&monitor, limit, "new mounts monitored", |body| {
            mounts.iter().all(|m| present(body, m.path()))
        });
        picked_up.push(seen - mounted);
        let paths: Vec<PathBuf> = mounts.iter().map(|m| m.path().to_path_buf()).collect();
        for m in &mut mounts {
            m.unmount();
        }
        let unmounted = Instant::now();
        let gone = poll_until(&monitor, limit, "vanished mounts dropped", |body| {
            paths.iter().all(|p| !listed(body, p))
        });
        dropped.push(gone - unmounted);
    }
    assert_eq!(monitor.pid(), pid);
    let log = monitor.log();
    let added = log.matches("monitoring discovered mount").count();
    let removed = log
        .matches("mount disappeared; no longer monitored")
        .count();
    assert!(added >= rounds * PER_ROUND, "{added} mounts picked up");
    assert!(removed >= rounds * PER_ROUND, "{removed} mounts dropped");
    assert_eq!(monitor.get("/livez").0, 200);
    let after = process::settled_usage(pid, 5, Duration::from_millis(100));
    let worst = |d: &[Duration]| d.iter().max().copied().unwrap_or_default();
    figures::record(
        "churn",
        json!({
            "rounds": rounds,
            "mounts_per_round": PER_ROUND,
            "picked_up_worst_s": secs(worst(&picked_up)),
            "dropped_worst_s": secs(worst(&dropped)),
            "picked_up_mean_s": secs(picked_up.iter().sum::<Duration>() / rounds as u32),
            "dropped_mean_s": secs(dropped.iter().sum::<Duration>() / rounds as u32),
            "before": before.json(),
            "after": after.json(),
        }),
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Soak.

/// The threads of `pid` at their highest over `span`, sampled every 100 ms.
fn peak_threads(pid: u32, span: Duration) -> u64 {
    let until = Instant::now() + span;
    let mut peak = 0;
    while Instant::now() < until {
        peak = peak.max(process::usage(pid).threads);
        std::thread::sleep(Duration::from_millis(100));
    }
    peak
}

#[test]
#[ignore = "needs root, /dev/fuse and the musl target `cargo xtask dist` builds with: cargo xtask test, as root"]
fn threads_stay_few_on_any_node_after_a_slow_first_round() {
    let test = "threads_stay_few_on_any_node_after_a_slow_first_round";
    require_fuse(test);
    tests::require_tool(test, "taskset");
    let _serial = serial();
    const MOUNTS: usize = 50;
    // Checks of these hang through the first rounds: 20 threads held at once, more than the 8
    // quick checks the monitor runs together.
    const SLOW: usize = 20;
    let mut slow: Vec<HangFs> = (0..SLOW).map(|_| HangFs::mount()).collect();
    let healthy: Vec<Tmpfs> = (SLOW..MOUNTS).map(|_| Tmpfs::new("size=1m")).collect();
    let names: Vec<String> = (0..MOUNTS).map(|i| format!("m{i}")).collect();
    let paths = slow
        .iter()
        .map(HangFs::path)
        .chain(healthy.iter().map(Tmpfs::path));
    let mounts: Vec<(&str, &Path)> = names.iter().map(String::as_str).zip(paths).collect();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "threads.toml",
        &format!(
            "checkInterval = \"1s\"\nreadTimeout = \"500ms\"\n{}",
            mounts_toml(&mounts)
        ),
    );
    let binary = tests::shipped_binary().to_str().unwrap().to_owned();
    let mut runs = Vec::new();
    // Every CPU, then one: an affinity mask can only lower the count tokio sees, and the
    // default must not depend on it (64 cores would otherwise mean 64 workers).
    for cpus in [None, Some("0")] {
        for fs in &mut slow {
            fs.hang();
        }
        let mut args = Vec::new();
        let program = match cpus {
            Some(list) => {
                args.extend(["-c".to_owned(), list.to_owned(), binary.clone()]);
                Path::new("taskset")
            }
            None => Path::new(&binary),
        };
        args.extend(["--config".to_owned(), config.to_str().unwrap().to_owned()]);
        let monitor = Monitor::start_program(program, &args);
        let pid = monitor.pid();
        // The first rounds: every slow check blocked at once, each on a thread of its own.
        let started = Instant::now();
        while process::thread_states(pid)
            .iter()
            .filter(|(_, wchan)| wchan == "request_wait_answer")
            .count()
            < SLOW
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the {SLOW} slow checks did not all start: {:?}",
                process::thread_states(pid)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let first_round = process::usage(pid).threads;
        for fs in &mut slow {
            fs.release();
        }
        poll_until(&monitor, Duration::from_secs(10), "all healthy", |body| {
            body["status"] == "healthy"
        });
        // Threads idle for 10 s end: wait for it, then the count holds.
        let settle = Instant::now();
        while process::usage(pid).threads > THREADS_LIMIT {
            assert!(
                settle.elapsed() < Duration::from_secs(60),
                "still {} threads {:?} after the slow round ended (at most {THREADS_LIMIT})",
                process::usage(pid).threads,
                settle.elapsed()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        let steady = peak_threads(pid, Duration::from_secs(20));
        assert!(
            steady <= THREADS_LIMIT,
            "{steady} threads with {MOUNTS} healthy mounts (CPUs: {}); at most {THREADS_LIMIT}",
            cpus.unwrap_or("all")
        );
        let (status, body) = monitor.get_json("/healthz/status");
        assert_eq!(status, 200, "{body}");
        runs.push(json!({
            "cpus": match cpus {
                None => std::thread::available_parallelism().map_or(0, usize::from).to_string(),
                Some(list) => format!("1 (taskset -c {list})"),
            },
            "first_round_threads": first_round,
            "settled_after_s": secs(settle.elapsed()),
            "steady_peak_threads": steady,
        }));
    }
    figures::record(
        "threads",
        json!({ "mounts": MOUNTS, "slow_first_round": SLOW, "runs": runs }),
    );
}

/// Counts the opens of each canary file and checked directory: one per check, seen by the kernel.
struct CheckCounter {
    inotify: nix::sys::inotify::Inotify,
    count: u64,
}

impl CheckCounter {
    fn watch(paths: &[PathBuf]) -> CheckCounter {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).unwrap();
        for path in paths {
            inotify.add_watch(path, AddWatchFlags::IN_OPEN).unwrap();
        }
        CheckCounter { inotify, count: 0 }
    }

    fn update(&mut self) -> u64 {
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
            self.count += events.len() as u64;
        }
        self.count
    }
}

/// Threads the process may have in all (main, runtime workers, blocking and check threads) with
/// 50 healthy mounts, whatever the node: a sidecar sized for its job.
const THREADS_LIMIT: u64 = 16;

#[test]
#[ignore = "needs root to mount filesystems, and the musl target `cargo xtask dist` builds with: cargo xtask test, as root"]
fn soak_keeps_memory_and_descriptors_flat() {
    let test = "soak_keeps_memory_and_descriptors_flat";
    require_root(test);
    let _serial = serial();
    const MOUNTS: usize = 50;
    // The full run is 10,000 rounds of every mount (about 35 minutes); the suite runs 600 (about
    // two minutes), enough for a leak of a few bytes per check to pass the allowance.
    let rounds_wanted: u64 = if figures::full_run() { 10_000 } else { 600 };
    let checks_wanted = rounds_wanted * MOUNTS as u64;
    let mounts: Vec<Tmpfs> = (0..MOUNTS).map(|_| Tmpfs::new("size=1m")).collect();
    // The shortest interval the monitor accepts, so that many rounds fit in little time.
    let mut config = String::from("checkInterval = \"200ms\"\nreadTimeout = \"100ms\"\n");
    let mut watched = Vec::new();
    for (i, m) in mounts.iter().enumerate() {
        // Every kind of check: canary reads, directory listings, capacity floors, rw.
        let (check, target) = if i % 5 == 0 {
            ("directory", m.path().to_path_buf())
        } else {
            let canary = m.path().join(".health-check");
            std::fs::write(&canary, "ok").unwrap();
            ("canary", canary)
        };
        watched.push(target);
        config.push_str(&format!(
            "[[mounts]]\nname = \"m{i}\"\npath = \"{}\"\ncheckType = \"{check}\"\nexpect = \"rw\"\nminFree = \"10%\"\nminFreeInodes = 10\nfsType = \"tmpfs\"\n",
            m.path().display()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "soak.toml", &config);
    let mut counter = CheckCounter::watch(&watched);
    // What users run: the static musl release binary, with its allocator.
    let monitor = Monitor::start_program(
        tests::shipped_binary(),
        ["--config", config.to_str().unwrap()],
    );
    let pid = monitor.pid();
    let started = Instant::now();
    monitor.wait_for("/healthz/ready", 200, Duration::from_secs(5));
    let at_start = process::usage(pid);
    let prober = Prober::start(
        monitor.addr,
        &["/healthz/status", "/readyz", "/livez"],
        Duration::from_millis(50),
    );
    // Warm-up: ten rounds, so allocator arenas and the thread pool reach their working size.
    while counter.update() < 10 * MOUNTS as u64 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let warm = process::settled_usage(pid, 10, Duration::from_millis(50));
    let warm_checks = counter.update();
    let mut samples = vec![(started.elapsed(), warm_checks, warm)];
    let sample_every = Duration::from_secs(if figures::full_run() { 120 } else { 10 });
    // Threads that a start slowed by a busy machine began end after 10 s idle; what counts is
    // the count after that (the first round's own test is threads_stay_few_…).
    let mut peak_threads = 0;
    while counter.update() < checks_wanted {
        std::thread::sleep(Duration::from_secs(1));
        if started.elapsed() > Duration::from_secs(20) {
            peak_threads = peak_threads.max(process::usage(pid).threads);
        }
        if samples
            .last()
            .is_some_and(|(at, _, _)| started.elapsed() - *at >= sample_every)
        {
            samples.push((started.elapsed(), counter.update(), process::usage(pid)));
        }
        assert!(
            started.elapsed()
                < Duration::from_millis(rounds_wanted * 400) + Duration::from_secs(60),
            "only {} checks after {:?}",
            counter.update(),
            started.elapsed()
        );
    }
    let checks = counter.update();
    let end = process::settled_usage(pid, 10, Duration::from_millis(50));
    let elapsed = started.elapsed();
    let probes = prober.stop();
    // Recorded before the verdict: a failed run's figures show what grew.
    figures::record(
        "soak",
        json!({
            "binary": "static musl release (cargo xtask dist)",
            "mounts": MOUNTS,
            "checks": checks,
            "peak_threads": peak_threads,
            "rounds_per_mount": checks / MOUNTS as u64,
            "seconds": secs(elapsed),
            "at_start": at_start.json(),
            "after_warm_up": warm.json(),
            "warm_up_checks": warm_checks,
            "end": end.json(),
            "timeline": samples.iter().map(|(at, n, u)| json!({"s": at.as_secs(), "checks": n, "usage": u.json()})).collect::<Vec<_>>(),
            "probes": probes.json(),
        }),
    );
    let (_, body) = monitor.get_json("/healthz/status");
    assert_eq!(body["status"], "healthy", "{body}");
    assert!(probes.failures.is_empty(), "{:?}", probes.failures);
    assert!(
        end.fds <= warm.fds,
        "descriptors grew from {} to {}",
        warm.fds,
        end.fds
    );
    // Two more: a check slowed by a busy machine may start a thread, which ends 10 s idle.
    assert!(
        end.threads <= warm.threads + 2,
        "threads grew from {} to {}",
        warm.threads,
        end.threads
    );
    assert!(
        peak_threads <= THREADS_LIMIT,
        "{peak_threads} threads at the peak with {MOUNTS} healthy mounts; at most {THREADS_LIMIT}"
    );
    // Allowance for the allocator, below what a per-check leak would show: 10,000 rounds of 50
    // mounts leaking 4 bytes a check add 2 MiB.
    assert!(
        end.rss_kib <= warm.rss_kib + 2048,
        "resident memory grew from {} KiB to {} KiB over {checks} checks: {:?}",
        warm.rss_kib,
        end.rss_kib,
        samples
    );
}
