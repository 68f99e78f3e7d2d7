//! The pod-restart watchdog: when a mount turns unhealthy, delete our own pod through the
//! Kubernetes API so that its controller recreates it whole.
//!
//! Restarting one container does not help a dead FUSE mount: the volume, the daemon beside it
//! and the pod's mounts stay as they were. Deleting the pod recreates all of them. The contract
//! is debrid-mount-monitor's watchdog behaviour: arming that is never fatal, a
//! `SelfSubjectAccessReview`, a trigger on a transition into unhealthy, `restartDelay` with a
//! cancel on recovery, the already-terminating check, a `WatchdogRestart` event, the DELETE with
//! retries, and exit 1 as the last resort. Ours adds the restart-storm guard (a mount never healthy
//! in this pod restarts nothing; `minPodAge`, opt-in) and makes the state visible in `/healthz/status` and `/metrics`.
//!
//! The decisions are in `machine`, without I/O; this file runs them against the API.

mod machine;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};

use crate::config::WatchdogSettings;
use crate::kube::{self, Client, Cluster, NotInCluster, PodEvent, PodLookup};
use crate::snapshot::MountChange;
use crate::state::timestamp;
use crate::status::watchdog::{Outcome, State, Status};
use machine::{DeleteVerdict, Machine, Reaction, Trigger};

/// The deadline of the best-effort event before the DELETE: it must not hold the restart up.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why [`run`] returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing more to do (not enabled, not armed, or the pod is being deleted).
    Idle,
    /// The pod could not be deleted: exit 1 so that at least this container restarts.
    ExitForRestart,
}

/// Runs the watchdog for a serving monitor until it has nothing left to do, or until
/// `stopping` turns true. `changes` are the monitor's health changes.
pub async fn run(
    settings: WatchdogSettings,
    status: Arc<Status>,
    changes: mpsc::UnboundedReceiver<MountChange>,
    stopping: watch::Receiver<bool>,
) -> Verdict {
    let status = &status;
    if !settings.enabled {
        tracing::info!("watchdog disabled by configuration");
        return Verdict::Idle;
    }
    let Some(target) = arm(status, &settings).await else {
        return Verdict::Idle;
    };
    Watchdog {
        settings,
        status: Arc::clone(status),
        target,
        stopping,
        paths: Mutex::default(),
    }
    .watch(changes)
    .await
}

/// The pod to delete and how to reach the API server.
struct Target {
    client: Client,
    namespace: String,
    pod: String,
}

/// Arming: every way it can fail is logged and leaves the monitor running without a watchdog.
async fn arm(status: &Status, settings: &WatchdogSettings) -> Option<Target> {
    let env = |name: &str| std::env::var(name).ok();
    let cluster = match Cluster::discover(env) {
        Ok(cluster) => cluster,
        Err(NotInCluster::NoToken(path)) => {
            let reason = format!(
                "not running in Kubernetes: no service account token at {}",
                path.display()
            );
            tracing::info!(reason = "not_in_cluster", detail = %reason, "watchdog disabled");
            status.set(State::NotInCluster, reason);
            return None;
        }
        Err(NotInCluster::NoApiServer(why)) => {
            tracing::warn!(reason = "k8s_client_error", error = %why, "watchdog disabled");
            status.set(State::Disabled, why);
            return None;
        }
    };
    let client = Client::new(cluster);
    let disable = |why: String| {
        tracing::warn!(reason = "k8s_client_error", error = %why, "watchdog disabled");
        status.set(State::Disabled, why);
    };
    let namespace_file = client.cluster().namespace_file.display().to_string();
    let (namespace, namespace_from) = match env("POD_NAMESPACE").filter(|n| !n.trim().is_empty()) {
        Some(namespace) => (namespace.trim().to_owned(), "POD_NAMESPACE"),
        None => match client.cluster().namespace() {
            Ok(namespace) => (namespace, namespace_file.as_str()),
            Err(e) => {
                disable(format!(
                    "POD_NAMESPACE is not set and the service account's namespace is unknown ({e}); set POD_NAMESPACE from the Downward API (fieldRef metadata.namespace)"
                ));
                return None;
            }
        },
    };
    let Some(pod) = env("POD_NAME").map(|p| p.trim().to_owned()) else {
        disable(
            "POD_NAME is not set, so the watchdog does not know which pod to delete; set it from the Downward API (fieldRef metadata.name)".to_owned(),
        );
        return None;
    };
    for (source, value) in [("POD_NAME", &pod), (namespace_from, &namespace)] {
        if !kube::is_object_name(value) {
            disable(format!(
                "{source}: {value:?} is not a Kubernetes object name; set POD_NAME and POD_NAMESPACE from the Downward API"
            ));
            return None;
        }
    }
    status.update(|v| {
        v.pod = Some(pod.clone());
        v.namespace = Some(namespace.clone());
    });

    match client.review_pod_deletion(&namespace).await {
        Err(e) => {
            tracing::warn!(reason = "rbac_check_failed", error = %e, pod = %pod, namespace = %namespace, "watchdog disabled");
            status.update(|v| v.last_error = Some(e.to_string()));
            status.set(
                State::Disabled,
                format!("the access review (may this service account delete pods?) failed: {e}"),
            );
            None
        }
        Ok(review) if !review.allowed => {
            let detail = review.reason.map(|r| format!(" ({r})")).unwrap_or_default();
            tracing::warn!(reason = "rbac_missing", detail = "missing permission to delete pods", namespace = %namespace, "watchdog disabled");
            status.set(
                State::Forbidden,
                format!(
                    "the service account may not delete pods in namespace {namespace}{detail}; grant the Role in deploy/watchdog.yaml"
                ),
            );
            None
        }
        Ok(_) => {
            tracing::info!(pod = %pod, namespace = %namespace, restart_delay = ?settings.restart_delay, min_pod_age = ?settings.min_pod_age, "watchdog armed");
            status.set(
                State::Armed,
                format!("pod {pod} will be deleted when a mount turns unhealthy"),
            );
            Some(Target {
                client,
                namespace,
                pod,
            })
        }
    }
}

struct Watchdog {
    settings: WatchdogSettings,
    status: Arc<Status>,
    target: Target,
    stopping: watch::Receiver<bool>,
    /// Each mount's path as configured, by the monitor's id: debrid-mount-monitor's watchdog
    /// lines carry it as `mount_path`.
    paths: Mutex<HashMap<u64, String>>,
}

/// How a restart sequence ended.
enum Sequence {
    /// The pod is being deleted.
    Done,
    /// Too young: try again at this time.
    Postponed(Instant),
    Aborted,
    GaveUp,
}

impl Watchdog {
    fn status(&self) -> &Status {
        &self.status
    }

    async fn watch(self, mut changes: mpsc::UnboundedReceiver<MountChange>) -> Verdict {
        let mut stopping = self.stopping.clone();
        let mut machine = Machine::new(self.settings.restart_delay);
        let reaction = machine.arm();
        self.react(reaction, "");
        loop {
            let due = machine.due();
            tokio::select! {
                // Changes first: a recovery that arrived before the deadline cancels.
                biased;
                // The guard `wait_for` returns must not live across the other branches' awaits.
                () = async { drop(stopping.wait_for(|stopping| *stopping).await) } => {
                    if let Some(trigger) = machine.begin() {
                        self.abort(&trigger);
                    }
                    return Verdict::Idle;
                }
                change = changes.recv() => {
                    let Some(change) = change else { return Verdict::Idle };
                    // An optional mount is never a reason to restart the pod.
                    if change.optional {
                        continue;
                    }
                    self.paths
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(change.id, change.path.clone());
                    let reaction = machine.observe(
                        change.id,
                        &change.mount,
                        &change.path,
                        change.health,
                        change.failure_count,
                        Instant::now(),
                    );
                    self.react(reaction, &change.path);
                }
                _ = sleep_until(due), if due.is_some() => {
                    let Some(trigger) = machine.begin() else { continue };
                    match self.restart(&trigger).await {
                        Sequence::Done => machine.finish(),
                        Sequence::Postponed(until) => machine.postpone(trigger, until),
                        Sequence::Aborted => return Verdict::Idle,
                        Sequence::GaveUp => return Verdict::ExitForRestart,
                    }
                }
            }
        }
    }

    fn mount_path(&self, trigger: &Trigger) -> String {
        let paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        paths.get(&trigger.id).cloned().unwrap_or_default()
    }

    /// Since when the trigger's mount has been unhealthy: a restart is due `restartDelay` after.
    fn unhealthy_duration(&self, trigger: &Trigger) -> Duration {
        (Instant::now() + self.settings.restart_delay).saturating_duration_since(trigger.due)
    }

    /// `path`: the path of the mount whose change caused `reaction`.
    fn react(&self, reaction: Reaction, path: &str) {
        match reaction {
            Reaction::Nothing => {}
            Reaction::Pending(trigger) => self.pending(&trigger),
            Reaction::Withheld { mount } => {
                tracing::warn!(mount = %mount, reason = "never_healthy", detail = "the mount has not been healthy since this pod started, so a new pod would most likely start on the same dead mount; the pod stays unready", "watchdog restart withheld");
                self.status().update(|v| {
                    v.reason = Some(format!(
                        "mount {mount} is unhealthy but has not been healthy since this pod started: no restart (a new pod would start on the same dead mount); the pod stays unready"
                    ));
                });
            }
            Reaction::Cancelled { mount, next } => {
                tracing::info!(mount = %mount, mount_path = path, reason = "mount_recovered", "watchdog restart cancelled");
                self.status().count(Outcome::Cancelled);
                match next {
                    Some(trigger) => self.pending(&trigger),
                    None => self.status().set(
                        State::Armed,
                        format!("restart cancelled: mount {mount} recovered"),
                    ),
                }
            }
        }
    }

    fn pending(&self, trigger: &Trigger) {
        let delay = trigger.due.saturating_duration_since(Instant::now());
        tracing::warn!(mount = %trigger.mount, mount_path = self.mount_path(trigger), failure_count = trigger.failures, delay = ?delay, "watchdog restart pending");
        self.set_pending(
            trigger,
            format!(
                "mount {} is unhealthy; the pod is deleted unless it recovers first",
                trigger.mount
            ),
            delay,
        );
    }

    fn set_pending(&self, trigger: &Trigger, reason: String, delay: Duration) {
        let at = timestamp(SystemTime::now() + delay);
        self.status().set(State::Pending, reason);
        self.status().update(|v| {
            v.mount = Some(trigger.mount.clone());
            v.restart_at = Some(at);
        });
    }

    fn abort(&self, trigger: &Trigger) {
        tracing::info!(mount = %trigger.mount, mount_path = self.mount_path(trigger), "watchdog restart aborted due to shutdown");
        self.status().count(Outcome::Aborted);
        self.status().set(
            State::Armed,
            "restart aborted: the monitor is shutting down",
        );
    }

    fn shutting_down(&self) -> bool {
        *self.stopping.borrow()
    }

    /// The restart sequence: already terminating? too young? then the event and the DELETE.
    async fn restart(&self, trigger: &Trigger) -> Sequence {
        if self.shutting_down() {
            self.abort(trigger);
            return Sequence::Aborted;
        }
        let Target {
            client,
            namespace,
            pod,
        } = &self.target;
        self.status().set(
            State::Restarting,
            format!("mount {} is unhealthy: deleting pod {pod}", trigger.mount),
        );
        self.status()
            .update(|v| v.mount = Some(trigger.mount.clone()));

        let mut uid = None;
        match client.pod(namespace, pod).await {
            Ok(PodLookup::Gone) => return self.already_terminating("the pod no longer exists"),
            Ok(PodLookup::Found(facts)) if facts.terminating => {
                return self.already_terminating("the pod is already being deleted");
            }
            Ok(PodLookup::Found(facts)) => {
                let now = SystemTime::now();
                if let Some(until) =
                    machine::postponed_until(facts.created, now, self.settings.min_pod_age)
                {
                    let wait = until.duration_since(now).unwrap_or_default();
                    return self.postpone(trigger, facts.uid, wait).await;
                }
                uid = facts.uid;
            }
            Err(e) => {
                tracing::warn!(error = %e, "failed to check pod termination status");
                self.status().update(|v| v.last_error = Some(e.to_string()));
            }
        }

        let message = format!(
            "Mount {} unhealthy after {} consecutive failures, triggering pod restart",
            trigger.path, trigger.failures
        );
        tracing::warn!(
            mount = %trigger.mount,
            mount_path = self.mount_path(trigger),
            failure_count = trigger.failures,
            unhealthy_duration = ?self.unhealthy_duration(trigger),
            pod = %pod,
            "watchdog restart triggered"
        );
        self.event("WatchdogRestart", message, uid).await;

        if self.shutting_down() {
            self.abort(trigger);
            return Sequence::Aborted;
        }
        self.delete(trigger).await
    }

    fn already_terminating(&self, why: &str) -> Sequence {
        tracing::info!(pod = %self.target.pod, detail = why, "pod already terminating, skipping deletion");
        self.status().count(Outcome::AlreadyTerminating);
        self.status().update(|v| {
            v.reason = Some(format!("{why}; nothing to do"));
        });
        Sequence::Done
    }

    async fn postpone(&self, trigger: &Trigger, uid: Option<String>, wait: Duration) -> Sequence {
        let min_age = self.settings.min_pod_age;
        let at = timestamp(SystemTime::now() + wait);
        let why = format!(
            "the pod is younger than minPodAge ({}); restart postponed until {at}",
            humantime::format_duration(min_age)
        );
        tracing::warn!(mount = %trigger.mount, pod = %self.target.pod, min_pod_age = ?min_age, restart_at = %at, "watchdog restart postponed");
        self.status().count(Outcome::Postponed);
        let message = format!(
            "Mount {} unhealthy after {} consecutive failures, but {why}",
            trigger.path, trigger.failures
        );
        self.event("WatchdogRestartPostponed", message, uid).await;
        self.set_pending(trigger, why, wait);
        Sequence::Postponed(Instant::now() + wait)
    }

    /// Best effort: a failed event is logged and the restart goes on.
    async fn event(&self, reason: &'static str, message: String, pod_uid: Option<String>) {
        let event = PodEvent {
            reason,
            message,
            pod: self.target.pod.clone(),
            pod_uid,
        };
        if let Err(e) = self
            .target
            .client
            .create_event(&self.target.namespace, &event, EVENT_TIMEOUT)
            .await
        {
            tracing::warn!(error = %e, "failed to create kubernetes event");
        }
    }

    /// DELETE, retried with backoff on transient failures.
    async fn delete(&self, trigger: &Trigger) -> Sequence {
        let Target {
            client,
            namespace,
            pod,
        } = &self.target;
        let attempts = self.settings.max_retries;
        for attempt in 1..=attempts {
            self.status().update(|v| v.delete_attempts = attempt);
            let error = match client.delete_pod(namespace, pod).await {
                Ok(reply) => match machine::classify_delete(reply.status.as_u16()) {
                    DeleteVerdict::Done => {
                        tracing::info!(pod = %pod, namespace = %namespace, attempt, status = reply.status.as_u16(), "pod deletion successful");
                        self.status().count(Outcome::Deleted);
                        self.status().update(|v| {
                            v.reason = Some(format!(
                                "pod {pod} deleted (HTTP {}) because mount {} is unhealthy; waiting for Kubernetes to stop it",
                                reply.status.as_u16(),
                                trigger.mount
                            ));
                        });
                        return Sequence::Done;
                    }
                    DeleteVerdict::Permanent => {
                        let e = format!(
                            "the API server answered {}: {}",
                            reply.status.as_u16(),
                            reply.message()
                        );
                        tracing::error!(error = %e, pod = %pod, "pod deletion failed with permanent error");
                        self.status().update(|v| v.last_error = Some(e));
                        break;
                    }
                    DeleteVerdict::Transient => format!(
                        "the API server answered {}: {}",
                        reply.status.as_u16(),
                        reply.message()
                    ),
                },
                Err(e) => e.to_string(),
            };
            self.status().update(|v| v.last_error = Some(error.clone()));
            if attempt == attempts {
                tracing::warn!(error = %error, attempt, max_retries = attempts, "pod deletion failed");
                break;
            }
            let wait = machine::backoff(
                self.settings.retry_backoff_initial,
                self.settings.retry_backoff_max,
                attempt - 1,
            );
            tracing::warn!(error = %error, attempt, max_retries = attempts, next_backoff = ?wait, "pod deletion failed, retrying");
            tokio::time::sleep(wait).await;
        }
        tracing::error!(retries = attempts, pod = %pod, "pod deletion failed after all retries, exiting for container restart");
        self.status().count(Outcome::Failed);
        self.status().update(|v| {
            v.reason = Some(format!(
                "pod {pod} could not be deleted; exiting 1 so that this container restarts"
            ));
        });
        Sequence::GaveUp
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due.into()).await,
        None => std::future::pending().await,
    }
}
