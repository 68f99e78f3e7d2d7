//! The pod-restart watchdog end to end: the real binary against an HTTPS double of the
//! Kubernetes API server (`tests::kube_double`), each case asserting the exact requests made and
//! what became of the process.
//!
//! Most mounts here are directories checked through their canary file (`requireMountpoint:
//! false`): removing the canary turns the mount unhealthy without root. The cases with real
//! tmpfs mounts need root and are ignored unless run with `--include-ignored`.
//!
//! `MOUNT_MONITOR_BIN=target/dist/mount-monitor-linux-arm64` runs them against a release binary
//! (arm64 through QEMU's binfmt entry): its TLS is ring as compiled for musl by `cargo xtask dist`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use tests::kube_double::{
    self, Api, KubeDouble, NAMESPACE, POD, REVIEW_PATH, Request, ServiceAccount,
};
use tests::{Monitor, Tmpfs, mount_json};

const INTERVAL: Duration = Duration::from_millis(500);
const THRESHOLD: u32 = 2;
/// From a mount's failure to the DELETE: `THRESHOLD` intervals (with their 10% jitter), then the
/// three calls, which take milliseconds.
const TRIGGER_LIMIT: Duration = Duration::from_millis(500 * THRESHOLD as u64 + 1000);
const TOKEN: &str = "token-1";

fn bearer(token: &str) -> Option<String> {
    Some(format!("Bearer {token}"))
}

/// A directory whose health is its canary file.
struct CanaryDir {
    dir: tempfile::TempDir,
}

impl CanaryDir {
    fn new() -> CanaryDir {
        let dir = tempfile::Builder::new()
            .prefix("mm-watchdog-")
            .tempdir()
            .expect("create a mount directory");
        std::fs::write(dir.path().join(".health-check"), "ok").expect("write the canary");
        CanaryDir { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn fail(&self) {
        std::fs::remove_file(self.path().join(".health-check")).expect("remove the canary");
    }

    fn recover(&self) {
        std::fs::write(self.path().join(".health-check"), "ok").expect("write the canary");
    }
}

/// A config checking `mounts` every [`INTERVAL`], unhealthy after [`THRESHOLD`] failures.
fn write_config(dir: &Path, mounts: &[(&str, &Path)], watchdog: Value) -> PathBuf {
    let mounts: Vec<Value> = mounts
        .iter()
        .map(|(name, path)| json!({"name": name, "path": path, "requireMountpoint": false}))
        .collect();
    let config = json!({
        "checkInterval": format!("{}ms", INTERVAL.as_millis()),
        "readTimeout": "200ms",
        "failureThreshold": THRESHOLD,
        "logLevel": "debug",
        "mounts": mounts,
        "watchdog": watchdog,
    });
    let path = dir.join("config.json");
    std::fs::write(&path, config.to_string()).expect("write the config");
    path
}

/// The monitor with `config`, in a pod of `double` with `account` mounted, in `cwd`.
fn start(config: &Path, cwd: &Path, double: &KubeDouble, account: &ServiceAccount) -> Monitor {
    Monitor::start_with([Path::new("--config"), config], cwd, |command| {
        double.in_pod(command, account.path())
    })
}

/// A pod with the sidecar's config written: the API server `double`, the service account
/// `account` mounted, canary directories as its mounts, and `config` in `cwd`.
struct Pod {
    double: KubeDouble,
    account: ServiceAccount,
    mounts: Vec<(&'static str, CanaryDir)>,
    cwd: tempfile::TempDir,
    config: PathBuf,
}

impl Pod {
    /// The API server answering as `api`, one mount `media`, the config's `watchdog` object.
    fn new(api: Api, watchdog: Value) -> Pod {
        Pod::with(KubeDouble::start(api), &["media"], watchdog)
    }

    /// `double` for the API server, a mount for each of `names`, in a service account with
    /// [`TOKEN`] and [`NAMESPACE`].
    fn with(double: KubeDouble, names: &[&'static str], watchdog: Value) -> Pod {
        let account = ServiceAccount::new(double.ca_pem(), TOKEN, Some(NAMESPACE));
        let mounts: Vec<(&str, CanaryDir)> =
            names.iter().map(|&name| (name, CanaryDir::new())).collect();
        let cwd = tempfile::tempdir().unwrap();
        let paths: Vec<(&str, &Path)> = mounts.iter().map(|(n, d)| (*n, d.path())).collect();
        let config = write_config(cwd.path(), &paths, watchdog);
        Pod {
            double,
            account,
            mounts,
            cwd,
            config,
        }
    }

    /// The same pod with a service account directory without a token: not in a cluster.
    fn without_token(self) -> Pod {
        Pod {
            account: ServiceAccount::empty(),
            ..self
        }
    }

    /// The mount named `name` in the config.
    fn mount(&self, name: &str) -> &CanaryDir {
        self.mounts
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, dir)| dir)
            .unwrap_or_else(|| panic!("no mount {name} in this pod"))
    }

    fn media(&self) -> &CanaryDir {
        self.mount("media")
    }

    /// The monitor serving with the config, in this pod.
    fn start(&self) -> Monitor {
        self.start_with(|_| {})
    }

    /// The same, with `adjust` applied to the command after the pod's environment.
    fn start_with(&self, adjust: impl FnOnce(&mut std::process::Command)) -> Monitor {
        Monitor::start_with(
            [Path::new("--config"), &self.config],
            self.cwd.path(),
            |command| {
                self.double.in_pod(command, self.account.path());
                adjust(command);
            },
        )
    }
}

fn watchdog_of(monitor: &Monitor) -> Value {
    let (_, body) = monitor.get_json("/healthz/status");
    body["watchdog"].clone()
}

/// Polls `/healthz/status` until the watchdog is in `state`; its object then.
fn wait_for_state(monitor: &Monitor, state: &str, limit: Duration) -> Value {
    wait_for_watchdog(monitor, state, "", limit)
}

/// Armed, and every mount healthy: a mount that fails from now on has been healthy in this
/// pod's life, so that its failure restarts the pod.
fn armed_and_ready(monitor: &Monitor) {
    wait_for_state(monitor, "armed", Duration::from_secs(10));
    monitor.wait_for("/healthz/ready", 200, Duration::from_secs(10));
}

/// Polls until the watchdog is in `state` with a reason that contains `reason`.
fn wait_for_watchdog(monitor: &Monitor, state: &str, reason: &str, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        let watchdog = watchdog_of(monitor);
        if watchdog["state"] == state && watchdog["reason"].as_str().unwrap_or("").contains(reason)
        {
            return watchdog;
        }
        assert!(
            started.elapsed() < limit,
            "watchdog not {state} within {limit:?}: {watchdog}\nlog:\n{}",
            monitor.log()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The value of one series in `/metrics`.
fn metric(monitor: &Monitor, series: &str) -> f64 {
    let (status, text) = monitor.get("/metrics");
    assert_eq!(status, 200);
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

fn restarts(monitor: &Monitor, outcome: &str) -> f64 {
    metric(
        monitor,
        &format!("mount_monitor_watchdog_restarts_total{{outcome=\"{outcome}\"}}"),
    )
}

fn state_metric(monitor: &Monitor, state: &str) -> f64 {
    metric(
        monitor,
        &format!("mount_monitor_watchdog_state{{state=\"{state}\"}}"),
    )
}

fn assert_review(request: &Request, token: &str) {
    assert_eq!(request.line(), format!("POST {REVIEW_PATH}"));
    assert_eq!(request.authorization, bearer(token));
    assert_eq!(request.body["kind"], "SelfSubjectAccessReview");
    assert_eq!(
        request.body["spec"]["resourceAttributes"],
        json!({"verb": "delete", "resource": "pods", "namespace": NAMESPACE})
    );
}

/// GET the pod, POST the event, DELETE the pod, each with `token`; the event names the mount's
/// path, as debrid-mount-monitor's does.
fn assert_restart_sequence(requests: &[Request], token: &str, path: &Path) {
    let mount = path.display();
    let lines: Vec<String> = requests.iter().map(Request::line).collect();
    assert_eq!(
        lines,
        [
            format!("GET {}", kube_double::pod_path()),
            format!("POST {}", kube_double::events_path()),
            format!("DELETE {}", kube_double::pod_path()),
        ]
    );
    for request in requests {
        assert_eq!(request.authorization, bearer(token), "{}", request.line());
    }
    let event = &requests[1].body;
    assert_eq!(event["reason"], "WatchdogRestart");
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["source"]["component"], "mount-monitor-watchdog");
    assert_eq!(event["involvedObject"]["kind"], "Pod");
    assert_eq!(event["involvedObject"]["name"], POD);
    assert_eq!(event["involvedObject"]["namespace"], NAMESPACE);
    assert_eq!(
        event["message"],
        format!(
            "Mount {mount} unhealthy after {THRESHOLD} consecutive failures, triggering pod restart"
        )
    );
    assert_eq!(requests[2].body, Value::Null, "DELETE has no body");
}

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test mounts tmpfs filesystems and must run as root: cargo xtask test, or sudo cargo test -- --include-ignored"
    );
}

#[test]
fn not_in_cluster_it_serves_and_says_so() {
    let pod = Pod::new(Api::default(), json!({"enabled": true})).without_token();
    let (double, account, media) = (&pod.double, &pod.account, pod.media());
    let monitor = pod.start();
    let watchdog = wait_for_state(&monitor, "not_in_cluster", Duration::from_secs(5));
    assert!(
        watchdog["reason"].as_str().unwrap().contains(&format!(
            "no service account token at {}",
            account.path().join("token").display()
        )),
        "{watchdog}"
    );
    monitor.wait_for("/healthz/ready", 200, Duration::from_secs(5));
    let disabled = monitor.log_lines("watchdog disabled");
    assert_eq!(disabled.len(), 1, "{}", monitor.log());
    assert_eq!(disabled[0]["reason"], "not_in_cluster");
    assert_eq!(disabled[0]["level"], "INFO");
    assert_eq!(state_metric(&monitor, "not_in_cluster"), 1.0);
    assert_eq!(state_metric(&monitor, "armed"), 0.0);

    // Unhealthy, and still nothing is asked of any API server.
    media.fail();
    monitor.wait_for("/healthz/live", 503, TRIGGER_LIMIT);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(double.lines(), Vec::<String>::new());
    assert_eq!(monitor.get("/version").0, 200, "still serving");
}

#[test]
fn a_denied_access_review_leaves_it_serving_and_forbidden() {
    let pod = Pod::new(
        Api {
            allowed: false,
            ..Api::default()
        },
        json!({"enabled": true}),
    );
    let (double, media) = (&pod.double, pod.media());
    let monitor = pod.start();
    let watchdog = wait_for_state(&monitor, "forbidden", Duration::from_secs(10));
    assert_eq!(watchdog["pod"], POD);
    assert_eq!(watchdog["namespace"], NAMESPACE);
    assert!(
        watchdog["reason"]
            .as_str()
            .unwrap()
            .contains("may not delete pods in namespace media"),
        "{watchdog}"
    );
    let requests = double.requests();
    assert_eq!(requests.len(), 1, "{:?}", double.lines());
    assert_review(&requests[0], TOKEN);
    let disabled = monitor.log_lines("watchdog disabled");
    assert_eq!(disabled.len(), 1, "{}", monitor.log());
    assert_eq!(disabled[0]["level"], "WARN");
    assert_eq!(disabled[0]["reason"], "rbac_missing");
    assert_eq!(state_metric(&monitor, "forbidden"), 1.0);

    media.fail();
    monitor.wait_for("/healthz/live", 503, TRIGGER_LIMIT);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(double.requests().len(), 1, "{:?}", double.lines());
    assert_eq!(monitor.get("/version").0, 200, "still serving");
}

#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn an_unmounted_tmpfs_gets_the_pod_deleted() {
    require_root();
    let double = KubeDouble::start(Api::default());
    // No namespace file: POD_NAMESPACE names it.
    let account = ServiceAccount::new(double.ca_pem(), TOKEN, None);
    let mut media = Tmpfs::new("size=1m");
    std::fs::write(media.path().join(".health-check"), "ok").unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let config = json!({
        "checkInterval": format!("{}ms", INTERVAL.as_millis()),
        "readTimeout": "200ms",
        "failureThreshold": THRESHOLD,
        "mounts": [{"name": "media", "path": media.path()}],
        "watchdog": {"enabled": true},
    });
    let config_file = cwd.path().join("config.json");
    std::fs::write(&config_file, config.to_string()).unwrap();
    let monitor = start(&config_file, cwd.path(), &double, &account);
    let armed = wait_for_state(&monitor, "armed", Duration::from_secs(10));
    assert_eq!(
        (&armed["pod"], &armed["namespace"]),
        (&json!(POD), &json!(NAMESPACE))
    );
    assert_eq!(monitor.log_lines("watchdog armed").len(), 1);
    monitor.wait_for("/healthz/ready", 200, Duration::from_secs(5));
    assert_review(&double.requests()[0], TOKEN);

    // The kubelet rotates the token: every later call reads the new one.
    account.set_token("token-2");
    let unmounted = Instant::now();
    media.unmount();
    let requests = double.wait_for_requests(4, TRIGGER_LIMIT + Duration::from_secs(5));
    let deleted_after = requests[3].at.duration_since(unmounted);
    assert!(
        deleted_after <= TRIGGER_LIMIT,
        "DELETE {deleted_after:?} after the unmount, over {TRIGGER_LIMIT:?}"
    );
    assert_restart_sequence(&requests[1..], "token-2", media.path());

    // The state reads `restarting` while the DELETE is on its way, then says how it went.
    let watchdog = wait_for_watchdog(
        &monitor,
        "restarting",
        "deleted (HTTP 200)",
        Duration::from_secs(2),
    );
    assert_eq!(watchdog["mount"], "media");
    assert_eq!(watchdog["delete_attempts"], 1);
    assert!(
        watchdog["reason"]
            .as_str()
            .unwrap()
            .contains("deleted (HTTP 200)"),
        "{watchdog}"
    );
    assert_eq!(restarts(&monitor, "deleted"), 1.0);
    assert_eq!(state_metric(&monitor, "restarting"), 1.0);
    let triggered = monitor.log_lines("watchdog restart triggered");
    assert_eq!(triggered.len(), 1, "{}", monitor.log());
    assert_eq!(triggered[0]["mount"], "media");
    // debrid-mount-monitor's keys: the path, and how long the mount had been unhealthy.
    assert_eq!(
        triggered[0]["mount_path"],
        media.path().display().to_string(),
        "{}",
        triggered[0]
    );
    assert!(
        triggered[0]["unhealthy_duration"]
            .as_str()
            .is_some_and(|d| d.ends_with('s')),
        "{}",
        triggered[0]
    );
    assert_eq!(monitor.log_lines("pod deletion successful").len(), 1);

    // Kubernetes stops the pod now; until then, nothing more is sent and the monitor serves.
    std::thread::sleep(INTERVAL * 3);
    assert_eq!(double.requests().len(), 4, "{:?}", double.lines());
    let (status, body) = monitor.get_json("/healthz/status");
    assert_eq!(status, 503);
    assert_eq!(mount_json(&body, "media")["reason"], "not_mounted");
}

#[test]
fn transient_delete_failures_are_retried_with_growing_gaps() {
    let pod = Pod::new(
        Api {
            delete_statuses: vec![500, 500],
            ..Api::default()
        },
        json!({"enabled": true, "retryBackoffInitial": "300ms", "retryBackoffMax": "5s"}),
    );
    let (double, media) = (&pod.double, pod.media());
    let mut monitor = pod.start();
    armed_and_ready(&monitor);
    media.fail();
    let requests = double.wait_for_requests(6, TRIGGER_LIMIT + Duration::from_secs(5));
    let lines: Vec<String> = requests.iter().map(Request::line).collect();
    let delete = format!("DELETE {}", kube_double::pod_path());
    assert_eq!(
        lines[1..],
        [
            format!("GET {}", kube_double::pod_path()),
            format!("POST {}", kube_double::events_path()),
            delete.clone(),
            delete.clone(),
            delete,
        ]
    );
    let (first, second) = (
        requests[4].at.duration_since(requests[3].at),
        requests[5].at.duration_since(requests[4].at),
    );
    assert!(first >= Duration::from_millis(300), "first gap {first:?}");
    assert!(
        second >= Duration::from_millis(600),
        "second gap {second:?}"
    );
    assert!(second > first, "gaps {first:?} then {second:?}");
    assert!(
        second < Duration::from_millis(1500),
        "second gap {second:?}"
    );

    let watchdog = wait_for_state(&monitor, "restarting", Duration::from_secs(2));
    assert_eq!(watchdog["delete_attempts"], 3);
    assert!(
        watchdog["last_error"].as_str().unwrap().contains("500"),
        "{watchdog}"
    );
    assert_eq!(monitor.log_lines("pod deletion failed, retrying").len(), 2);
    assert_eq!(restarts(&monitor, "deleted"), 1.0);
    assert_eq!(restarts(&monitor, "failed"), 0.0);
    assert!(
        monitor.wait_exit(Duration::from_millis(500)).is_none(),
        "it keeps running"
    );
}

#[test]
fn a_forbidden_delete_exits_1() {
    let pod = Pod::new(
        Api {
            delete_statuses: vec![403],
            ..Api::default()
        },
        json!({"enabled": true}),
    );
    let (double, media) = (&pod.double, pod.media());
    let mut monitor = pod.start();
    armed_and_ready(&monitor);
    media.fail();
    let status = monitor
        .wait_exit(TRIGGER_LIMIT + Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running:\n{}", monitor.log()));
    assert_eq!(status.code(), Some(1), "{}", monitor.log());
    let lines = double.lines();
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("DELETE ")).count(),
        1,
        "a permanent error is not retried: {lines:?}"
    );
    assert_restart_sequence(&double.requests()[1..], TOKEN, media.path());
    let permanent = monitor.log_lines("pod deletion failed with permanent error");
    assert_eq!(permanent.len(), 1, "{}", monitor.log());
    assert!(
        permanent[0]["error"].as_str().unwrap().contains("403"),
        "{}",
        permanent[0]
    );
    assert_eq!(
        monitor
            .log_lines("pod deletion failed after all retries, exiting for container restart")
            .len(),
        1
    );
}

#[test]
fn exhausted_retries_exit_1() {
    let pod = Pod::new(
        Api {
            delete_statuses: vec![503; 10],
            ..Api::default()
        },
        json!({"enabled": true, "maxRetries": 2, "retryBackoffInitial": "100ms"}),
    );
    let (double, media) = (&pod.double, pod.media());
    let mut monitor = pod.start();
    armed_and_ready(&monitor);
    media.fail();
    let status = monitor
        .wait_exit(TRIGGER_LIMIT + Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running:\n{}", monitor.log()));
    assert_eq!(status.code(), Some(1), "{}", monitor.log());
    let deletes = double
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("DELETE "))
        .count();
    assert_eq!(deletes, 2, "maxRetries DELETEs: {:?}", double.lines());
}

#[test]
fn a_pod_already_terminating_is_not_deleted() {
    let pod = Pod::new(
        Api {
            terminating: true,
            ..Api::default()
        },
        json!({"enabled": true}),
    );
    let (double, media) = (&pod.double, pod.media());
    let monitor = pod.start();
    armed_and_ready(&monitor);
    media.fail();
    double.wait_for_requests(2, TRIGGER_LIMIT + Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        double.lines(),
        [
            format!("POST {REVIEW_PATH}"),
            format!("GET {}", kube_double::pod_path())
        ]
    );
    let watchdog = watchdog_of(&monitor);
    assert_eq!(watchdog["state"], "restarting");
    assert!(
        watchdog["reason"]
            .as_str()
            .unwrap()
            .contains("already being deleted"),
        "{watchdog}"
    );
    assert_eq!(restarts(&monitor, "already_terminating"), 1.0);
    assert_eq!(restarts(&monitor, "deleted"), 0.0);
    assert_eq!(
        monitor
            .log_lines("pod already terminating, skipping deletion")
            .len(),
        1
    );
}

#[test]
fn recovery_within_the_restart_delay_cancels() {
    let pod = Pod::new(
        Api::default(),
        json!({"enabled": true, "restartDelay": "2s"}),
    );
    let (double, media) = (&pod.double, pod.media());
    let monitor = pod.start();
    armed_and_ready(&monitor);
    media.fail();
    let pending = wait_for_state(&monitor, "pending", TRIGGER_LIMIT);
    let pending_since = Instant::now();
    assert_eq!(pending["mount"], "media");
    assert!(pending["restart_at"].is_string(), "{pending}");
    assert_eq!(state_metric(&monitor, "pending"), 1.0);

    std::thread::sleep(Duration::from_secs(1));
    media.recover();
    let armed = wait_for_state(&monitor, "armed", Duration::from_secs(2));
    assert!(
        armed["reason"].as_str().unwrap().contains("cancelled"),
        "{armed}"
    );
    // Past the moment the restart would have been due.
    std::thread::sleep(
        (pending_since + Duration::from_millis(2500)).saturating_duration_since(Instant::now()),
    );
    assert_eq!(double.lines(), [format!("POST {REVIEW_PATH}")]);
    assert_eq!(restarts(&monitor, "cancelled"), 1.0);
    assert_eq!(monitor.log_lines("watchdog restart cancelled").len(), 1);
}

#[test]
fn a_second_mount_failing_while_one_is_pending_makes_one_delete() {
    let pod = Pod::with(
        KubeDouble::start(Api::default()),
        &["movies", "tv"],
        json!({"enabled": true, "restartDelay": "1500ms"}),
    );
    let (double, movies, tv) = (&pod.double, pod.mount("movies"), pod.mount("tv"));
    let monitor = pod.start();
    armed_and_ready(&monitor);
    movies.fail();
    wait_for_state(&monitor, "pending", TRIGGER_LIMIT);
    tv.fail();
    let requests = double.wait_for_requests(4, Duration::from_secs(6));
    assert_restart_sequence(&requests[1..], TOKEN, movies.path());
    // The second mount's failure is on the status page, and triggers nothing more.
    std::thread::sleep(INTERVAL * 4);
    let (_, body) = monitor.get_json("/healthz/status");
    assert_eq!(mount_json(&body, "tv")["status"], "unhealthy");
    assert_eq!(double.requests().len(), 4, "{:?}", double.lines());
    assert_eq!(monitor.log_lines("watchdog restart triggered").len(), 1);
}

#[test]
fn a_server_certificate_from_another_ca_is_refused() {
    let pod = Pod::with(
        KubeDouble::start_untrusted(Api::default()),
        &["media"],
        json!({"enabled": true}),
    );
    let (double, account) = (&pod.double, &pod.account);
    let monitor = pod.start();
    let watchdog = wait_for_state(&monitor, "disabled", Duration::from_secs(10));
    let reason = watchdog["reason"].as_str().unwrap();
    assert!(reason.contains("TLS handshake"), "{watchdog}");
    assert!(reason.contains("UnknownIssuer"), "{watchdog}");
    assert!(
        reason.contains(&account.path().join("ca.crt").display().to_string()),
        "names the CA it trusts: {watchdog}"
    );
    assert_eq!(double.lines(), Vec::<String>::new(), "no request completed");
    let failure = double.wait_for_handshake_failure(Duration::from_secs(5));
    assert!(failure.is_some(), "the client ended the handshake");
    assert_eq!(double.lines(), Vec::<String>::new(), "no request completed");
    let disabled = monitor.log_lines("watchdog disabled");
    assert_eq!(disabled.len(), 1, "{}", monitor.log());
    assert_eq!(disabled[0]["level"], "WARN");
    assert!(
        disabled[0]["error"]
            .as_str()
            .unwrap()
            .contains("UnknownIssuer")
    );
    monitor.wait_for("/healthz/ready", 200, Duration::from_secs(5));
}

#[test]
fn without_pod_namespace_the_service_accounts_namespace_is_used() {
    let pod = Pod::new(Api::default(), json!({"enabled": true}));
    let double = &pod.double;
    let monitor = pod.start_with(|command| {
        command.env_remove("POD_NAMESPACE");
    });
    let armed = wait_for_state(&monitor, "armed", Duration::from_secs(10));
    assert_eq!(armed["namespace"], NAMESPACE);
    assert_review(&double.requests()[0], TOKEN);
}

#[test]
fn without_pod_name_it_does_not_arm_and_says_why() {
    let pod = Pod::new(Api::default(), json!({"enabled": true}));
    let (double, media) = (&pod.double, pod.media());
    let monitor = pod.start_with(|command| {
        command.env_remove("POD_NAME");
    });
    let watchdog = wait_for_state(&monitor, "disabled", Duration::from_secs(10));
    assert!(
        watchdog["reason"]
            .as_str()
            .unwrap()
            .contains("POD_NAME is not set"),
        "{watchdog}"
    );
    media.fail();
    monitor.wait_for("/healthz/live", 503, TRIGGER_LIMIT);
    assert_eq!(
        double.lines(),
        Vec::<String>::new(),
        "no request without a pod to delete"
    );
}

#[test]
fn a_tls12_only_api_server_is_accepted() {
    let pod = Pod::with(
        KubeDouble::start_tls12_only(Api::default()),
        &["media"],
        json!({"enabled": true}),
    );
    let double = &pod.double;
    let monitor = pod.start();
    wait_for_state(&monitor, "armed", Duration::from_secs(10));
    assert_review(&double.requests()[0], TOKEN);
}

#[test]
fn an_answer_over_1_mib_is_not_read() {
    let pod = Pod::new(
        Api {
            oversized_review: true,
            ..Api::default()
        },
        json!({"enabled": true}),
    );
    let double = &pod.double;
    let monitor = pod.start();
    let watchdog = wait_for_state(&monitor, "disabled", Duration::from_secs(10));
    assert!(
        watchdog["reason"]
            .as_str()
            .unwrap()
            .contains("answer is larger than 1048576 bytes"),
        "{watchdog}"
    );
    assert_eq!(double.requests().len(), 1);
}

#[test]
fn sigterm_while_pending_deletes_nothing() {
    let pod = Pod::new(
        Api::default(),
        json!({"enabled": true, "restartDelay": "3s"}),
    );
    let (double, media) = (&pod.double, pod.media());
    let monitor = pod.start();
    armed_and_ready(&monitor);
    media.fail();
    wait_for_state(&monitor, "pending", TRIGGER_LIMIT);
    let log_before = monitor.log();
    let (code, took) = monitor.terminate(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{log_before}");
    assert!(took < Duration::from_secs(3), "stopped in {took:?}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(double.lines(), [format!("POST {REVIEW_PATH}")]);
}

#[test]
fn a_young_pod_is_deleted_only_once_it_is_min_pod_age_old() {
    let created = SystemTime::now();
    let pod = Pod::new(
        Api {
            pod_created: created,
            ..Api::default()
        },
        json!({"enabled": true, "minPodAge": "4s"}),
    );
    let (double, media) = (&pod.double, pod.media());
    let monitor = pod.start();
    armed_and_ready(&monitor);
    media.fail();
    let requests = double.wait_for_requests(3, TRIGGER_LIMIT + Duration::from_secs(5));
    assert_eq!(
        requests[1..].iter().map(Request::line).collect::<Vec<_>>(),
        [
            format!("GET {}", kube_double::pod_path()),
            format!("POST {}", kube_double::events_path()),
        ]
    );
    let postponed = &requests[2].body;
    assert_eq!(postponed["reason"], "WatchdogRestartPostponed");
    assert!(
        postponed["message"]
            .as_str()
            .unwrap()
            .contains("younger than minPodAge (4s)"),
        "{postponed}"
    );
    let watchdog = wait_for_state(&monitor, "pending", Duration::from_secs(1));
    assert!(
        watchdog["reason"].as_str().unwrap().contains("minPodAge"),
        "{watchdog}"
    );

    let requests = double.wait_for_requests(6, Duration::from_secs(8));
    assert_restart_sequence(&requests[3..], TOKEN, media.path());
    // The creation time has a resolution of a second.
    let deleted_at = SystemTime::now() - requests[5].at.elapsed();
    let age = deleted_at.duration_since(created).unwrap_or_default();
    assert!(age >= Duration::from_secs(3), "deleted at age {age:?}");
    assert_eq!(restarts(&monitor, "postponed"), 1.0);
    assert_eq!(restarts(&monitor, "deleted"), 1.0);
}

/// debrid-mount-monitor's kind e2e timeline (`scripts/kind-e2e-test.sh`): the pod became ready
/// moments ago, the canary is removed, and the pod is deleted at once (it expects a new pod
/// within 120 s): no age guard holds a first restart back.
#[test]
fn a_pod_created_seconds_ago_is_deleted_at_once_when_its_healthy_mount_dies() {
    let pod = Pod::new(
        Api {
            pod_created: SystemTime::now(),
            ..Api::default()
        },
        json!({"enabled": true}),
    );
    let (double, media) = (&pod.double, pod.media());
    let monitor = pod.start();
    armed_and_ready(&monitor);
    let failed = Instant::now();
    media.fail();
    let requests = double.wait_for_requests(4, TRIGGER_LIMIT + Duration::from_secs(5));
    let deleted_after = requests[3].at.duration_since(failed);
    assert!(
        deleted_after <= TRIGGER_LIMIT,
        "DELETE {deleted_after:?} after the canary went, over {TRIGGER_LIMIT:?}: {:?}",
        double.lines()
    );
    assert_restart_sequence(&requests[1..], TOKEN, media.path());
    assert_eq!(restarts(&monitor, "postponed"), 0.0);
    assert_eq!(restarts(&monitor, "deleted"), 1.0);
}

/// An optional mount counts in no verdict: its failure deletes nothing, while a required mount's
/// failure, afterwards, still deletes the pod.
#[test]
fn an_optional_mount_failing_does_not_get_the_pod_deleted() {
    let pod = Pod::with(
        KubeDouble::start(Api::default()),
        &["media", "extra"],
        json!({"enabled": true}),
    );
    let (double, media, extra) = (&pod.double, pod.media(), pod.mount("extra"));
    // The same config with `extra` optional.
    let mut written: Value =
        serde_json::from_str(&std::fs::read_to_string(&pod.config).unwrap()).unwrap();
    written["mounts"][1]["optional"] = json!(true);
    std::fs::write(&pod.config, written.to_string()).unwrap();
    let monitor = pod.start();
    armed_and_ready(&monitor);
    extra.fail();
    monitor.wait_for_mount(
        "extra",
        Some("unhealthy"),
        None,
        TRIGGER_LIMIT + Duration::from_secs(5),
    );
    // Long enough for a required mount's failure to have deleted the pod.
    std::thread::sleep(TRIGGER_LIMIT);
    assert_eq!(
        double.lines(),
        ["POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews"],
        "only the access review: {}",
        monitor.log()
    );
    monitor.wait_for("/healthz/ready", 200, Duration::from_secs(1));
    assert_eq!(watchdog_of(&monitor)["state"], "armed");
    media.fail();
    let requests = double.wait_for_requests(4, TRIGGER_LIMIT + Duration::from_secs(5));
    assert_restart_sequence(&requests[1..], TOKEN, media.path());
}

/// The storm guard: a pod that starts on a dead mount is not deleted (its successor would start
/// on the same dead mount); it stays unready and says why. Once the mount has been healthy, its
/// failure restarts the pod.
#[test]
fn a_mount_never_healthy_in_the_pod_does_not_get_it_deleted() {
    let pod = Pod::new(
        Api {
            pod_created: SystemTime::now(),
            ..Api::default()
        },
        json!({"enabled": true}),
    );
    let (double, media) = (&pod.double, pod.media());
    media.fail();
    let monitor = pod.start();
    let watchdog = wait_for_watchdog(
        &monitor,
        "armed",
        "has not been healthy since this pod started",
        TRIGGER_LIMIT + Duration::from_secs(10),
    );
    assert!(
        watchdog["reason"].as_str().unwrap().contains("media"),
        "{watchdog}"
    );
    let (status, body) = monitor.get_json("/healthz/ready");
    assert_eq!(status, 503, "unready: {body}");
    assert_eq!(mount_json(&body, "media")["status"], "unhealthy");
    assert_eq!(monitor.log_lines("watchdog restart withheld").len(), 1);
    // Several intervals more, unhealthy all along: nothing but the access review was sent.
    std::thread::sleep(INTERVAL * 6);
    assert_eq!(double.lines(), [format!("POST {REVIEW_PATH}")]);
    assert_eq!(state_metric(&monitor, "armed"), 1.0);

    // The mount comes up, then dies: that restarts the pod.
    media.recover();
    monitor.wait_for("/healthz/ready", 200, Duration::from_secs(5));
    media.fail();
    let requests = double.wait_for_requests(4, TRIGGER_LIMIT + Duration::from_secs(5));
    assert_restart_sequence(&requests[1..], TOKEN, media.path());
}

#[test]
fn check_mode_does_nothing_with_the_watchdog() {
    let pod = Pod::new(Api::default(), json!({"enabled": true}));
    let (double, account) = (&pod.double, &pod.account);
    for args in [
        vec!["check".to_owned()],
        vec!["--init-container-mode".to_owned()],
    ] {
        let mut command = std::process::Command::new(tests::binary());
        double.in_pod(&mut command, account.path());
        let output = command
            .args(&args)
            .arg("--config")
            .arg(&pod.config)
            .current_dir(pod.cwd.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("watchdog"), "{args:?}: {stderr}");
    }
    assert_eq!(double.lines(), Vec::<String>::new());
}

#[test]
fn backoff_settings_are_checked_when_serving_only() {
    let media = CanaryDir::new();
    let cwd = tempfile::tempdir().unwrap();
    let config = write_config(
        cwd.path(),
        &[("media", media.path())],
        json!({"enabled": true, "retryBackoffInitial": "20s"}),
    );
    let config = config.display().to_string();
    let (code, _, stderr) = tests::run(["--config", &config, "--listen", "127.0.0.1:0"]);
    // A config file's error, which serving exits 1 for (docs/configuration.md, Exit codes).
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "`watchdog.retryBackoffMax`: 10s is below `watchdog.retryBackoffInitial` (20s)"
        ),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with("mount-monitor: config file "),
        "{stderr}"
    );
    let (code, _, stderr) = tests::run(["check", "--config", &config]);
    assert_eq!(code, 0, "{stderr}");
}

/// debrid-mount-monitor's README example and kind ConfigMap, as written but for the mount
/// paths (pointed at tmpfs mounts), start, serve and arm the watchdog.
#[test]
#[ignore = "needs root to mount filesystems: cargo xtask test, as root"]
fn debrid_configs_with_the_watchdog_start_and_serve() {
    require_root();
    for fixture in ["dmm-readme.config.json", "dmm-kind.config.json"] {
        let text =
            std::fs::read_to_string(tests::workspace_root().join("tests/fixtures").join(fixture))
                .unwrap();
        let mut config: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(config["watchdog"]["enabled"], true, "{fixture}");
        let cwd = tempfile::tempdir().unwrap();
        let mut mounts = Vec::new();
        for mount in config["mounts"].as_array_mut().unwrap() {
            let written = mount["path"].as_str().unwrap().to_owned();
            let fs = if written.starts_with("./") {
                // A relative path stays as written, under the working directory.
                let dir = cwd.path().join(&written);
                std::fs::create_dir_all(&dir).unwrap();
                mount_at(&dir);
                None
            } else {
                let fs = Tmpfs::new("size=1m");
                mount["path"] = json!(fs.path());
                Some(fs)
            };
            let path = fs
                .as_ref()
                .map(|fs| fs.path().to_path_buf())
                .unwrap_or_else(|| cwd.path().join(&written));
            std::fs::write(path.join(".health-check"), "ok").unwrap();
            mounts.push((mount["name"].as_str().unwrap().to_owned(), fs, path));
        }
        let config_file = cwd.path().join("config.json");
        std::fs::write(&config_file, config.to_string()).unwrap();

        let double = KubeDouble::start(Api::default());
        let account = ServiceAccount::new(double.ca_pem(), TOKEN, Some(NAMESPACE));
        let monitor = start(&config_file, cwd.path(), &double, &account);
        armed_and_ready(&monitor);
        let (status, body) = monitor.get_json("/healthz/status");
        assert_eq!(status, 200, "{fixture}: {body}");
        for (name, _, _) in &mounts {
            assert_eq!(
                mount_json(&body, name)["status"],
                "healthy",
                "{fixture}: {body}"
            );
        }
        assert_eq!(body["watchdog"]["state"], "armed");
        let requests = double.requests();
        assert_eq!(requests.len(), 1, "{fixture}: {:?}", double.lines());
        assert_review(&requests[0], TOKEN);
        for (_, _, path) in &mounts {
            if path.starts_with(cwd.path()) {
                let _ = nix::mount::umount2(path.as_path(), nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

/// Mounts a tmpfs on `dir` (which the caller unmounts).
fn mount_at(dir: &Path) {
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1m"),
    )
    .unwrap_or_else(|e| panic!("mount tmpfs on {}: {e}", dir.display()));
}

/// deploy/watchdog.yaml grants exactly what the watchdog asks for, to the pod's service account,
/// and gives the sidecar the pod's identity and a config with the watchdog on.
#[test]
fn the_watchdog_manifest_grants_exactly_the_four_permissions() {
    use serde::Deserialize;
    let file = tests::workspace_root().join("deploy/watchdog.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let docs: Vec<Value> = serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .collect();
    let find = |kind: &str| -> &Value {
        let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
        assert_eq!(found.len(), 1, "one {kind} in {}", file.display());
        found[0]
    };
    let mut rules: Vec<(String, String, String)> = Vec::new();
    for rule in find("Role")["rules"].as_array().unwrap() {
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    rules.push((
                        group.as_str().unwrap().to_owned(),
                        resource.as_str().unwrap().to_owned(),
                        verb.as_str().unwrap().to_owned(),
                    ));
                }
            }
        }
    }
    rules.sort();
    let expected = [
        ("", "events", "create"),
        ("", "pods", "delete"),
        ("", "pods", "get"),
        ("authorization.k8s.io", "selfsubjectaccessreviews", "create"),
    ]
    .map(|(g, r, v)| (g.to_owned(), r.to_owned(), v.to_owned()));
    assert_eq!(rules, expected);

    let account = find("ServiceAccount")["metadata"]["name"].clone();
    let binding = find("RoleBinding");
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert_eq!(binding["roleRef"]["name"], find("Role")["metadata"]["name"]);
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": account}])
    );

    let pod = &find("Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], account);
    assert_eq!(pod["enableServiceLinks"], false);
    let sidecar = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["image"].as_str().unwrap().contains("mount-monitor"))
        .expect("a mount-monitor container");
    let env = |name: &str| {
        sidecar["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["valueFrom"]["fieldRef"]["fieldPath"].clone())
    };
    assert_eq!(env("POD_NAME"), Some(json!("metadata.name")));
    assert_eq!(env("POD_NAMESPACE"), Some(json!("metadata.namespace")));
    let config = find("ConfigMap")["data"]["config.toml"].as_str().unwrap();
    assert!(
        config.contains("[watchdog]\nenabled = true\n"),
        "the watchdog is on:\n{config}"
    );
}

/// debrid-mount-monitor's WARN when the watchdog is on and the Downward API variables are not
/// set; none when they are.
#[test]
fn a_watchdog_without_pod_identity_is_warned_about() {
    let pod = Pod::new(Api::default(), json!({"enabled": true})).without_token();
    let without = Monitor::start_with(
        [Path::new("--config"), &pod.config],
        pod.cwd.path(),
        |command| {
            command.env_remove("POD_NAME").env_remove("POD_NAMESPACE");
        },
    );
    monitor_started(&without);
    let warned = without.log_lines("watchdog enabled but pod identity not configured");
    assert_eq!(warned.len(), 1, "{}", without.log());
    assert_eq!(warned[0]["level"], "WARN");
    assert_eq!(warned[0]["pod_name_set"], false);
    assert_eq!(warned[0]["pod_namespace_set"], false);
    assert!(
        warned[0]["hint"].as_str().unwrap().contains("Downward API"),
        "{}",
        warned[0]
    );
    let with = pod.start();
    monitor_started(&with);
    assert_eq!(
        with.log_lines("watchdog enabled but pod identity not configured")
            .len(),
        0,
        "{}",
        with.log()
    );
}

/// Waits for `http server started`, logged after the WARN: once it is there, so would the WARN be.
fn monitor_started(monitor: &Monitor) {
    let started = Instant::now();
    while monitor.log_lines("http server started").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no `http server started`: {}",
            monitor.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
