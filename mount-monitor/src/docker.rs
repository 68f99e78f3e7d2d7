//! Docker actions by label: stop the containers that depend on a dead mount, restart the one that
//! provides it, and start what mount-monitor stopped once the mount is back.
//!
//! Containers say what they need with labels (see [`policy`]). The actor reconciles: each round
//! lists the labelled containers and decides from the mounts' health now, so a container started
//! while its mount is dead (`compose up`, `restart: always`, dockerd restarting) is stopped too.
//! Rounds run on every change of a mount's health, on every event of a labelled container (the
//! Engine's `/events` stream), and on a timer in case the stream drops.
//!
//! What mount-monitor stopped is remembered in this process only: after a restart of the
//! monitor, a container it had stopped is not started by it again (start it by hand, or with
//! `docker compose up -d`). Docker cannot change a container's labels, and a state file would
//! need a writable volume the image does not otherwise need.
//!
//! The decisions are in [`policy`], without I/O; the API calls in [`engine`].

pub mod engine;
pub mod policy;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http_body_util::BodyExt;
use tokio::sync::{mpsc, watch};

use crate::snapshot::MountChange;
use crate::state::{Health, timestamp};
use crate::status::docker::{ContainerView, LastAction, Outcome, Status};
use engine::{Done, Engine};
use policy::{Container, Planner, Step};

/// A round at least this often, in case the event stream dropped without a word.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(10);

/// Runs the Docker actions until `stopping` turns true. `changes` are the monitor's changes of
/// health.
pub async fn run(
    engine: Engine,
    status: Arc<Status>,
    changes: mpsc::UnboundedReceiver<MountChange>,
    stopping: watch::Receiver<bool>,
) {
    let socket = engine.socket().display().to_string();
    status.update(|v| v.socket = Some(socket.clone()));
    // Said once at start; later failures to connect are logged when the connection is lost.
    match engine.ping().await {
        Ok(()) => {
            tracing::info!(socket = %socket, "docker actions: connected to the Docker Engine");
            status.connection(true, None);
        }
        Err(e) => {
            let reason = format!("{e}; mount-monitor keeps serving and tries again");
            tracing::warn!(socket = %socket, error = %e, "docker actions: the Docker Engine cannot be reached; mount the socket (see deploy/compose.yaml) or set DOCKER_HOST");
            status.connection(false, Some(reason));
        }
    }
    let (wake_tx, wake) = mpsc::channel(1);
    let follower = tokio::spawn(follow_events(engine.clone(), wake_tx));
    Actor {
        engine,
        status,
        planner: Planner::default(),
        health: HashMap::new(),
        last: BTreeMap::new(),
        failures: 0,
    }
    .reconcile(changes, wake, stopping)
    .await;
    follower.abort();
}

/// Follows the Engine's events for labelled containers: each one wakes the actor for a round.
/// A stream that fails or ends is opened again with backoff.
async fn follow_events(engine: Engine, wake: mpsc::Sender<()>) {
    let mut failures = 0;
    loop {
        match engine.events().await {
            Ok(mut body) => {
                failures = 0;
                tracing::debug!("docker actions: following the Engine's events");
                // A round reads the state whole: an event needs no parsing, it only says "look".
                while let Some(frame) = body.frame().await {
                    match frame {
                        Ok(frame) if frame.data_ref().is_some() => {
                            let _ = wake.try_send(());
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::debug!(error = %e, "docker actions: the event stream failed");
                            break;
                        }
                    }
                }
                // Missed events are made up by a round now.
                let _ = wake.try_send(());
            }
            Err(e) => {
                tracing::debug!(error = %e, "docker actions: cannot follow the Engine's events")
            }
        }
        failures += 1;
        tokio::time::sleep(policy::backoff(failures)).await;
    }
}

struct Actor {
    engine: Engine,
    status: Arc<Status>,
    planner: Planner,
    /// Every mount's health as the monitor last said (unknown until its first change).
    health: HashMap<String, Health>,
    /// The last action per container ID.
    last: BTreeMap<String, LastAction>,
    /// Rounds in a row that could not list the containers.
    failures: u32,
}

impl Actor {
    async fn reconcile(
        mut self,
        mut changes: mpsc::UnboundedReceiver<MountChange>,
        mut wake: mpsc::Receiver<()>,
        mut stopping: watch::Receiver<bool>,
    ) {
        let mut next = Instant::now();
        loop {
            tokio::select! {
                biased;
                () = async { drop(stopping.wait_for(|stopping| *stopping).await) } => return,
                change = changes.recv() => {
                    let Some(change) = change else { return };
                    self.heard(change);
                    // A burst of changes makes one round.
                    while let Ok(change) = changes.try_recv() {
                        self.heard(change);
                    }
                }
                Some(()) = wake.recv() => {}
                () = tokio::time::sleep_until(next.into()) => {}
            }
            next = self.round().await;
        }
    }

    fn heard(&mut self, change: MountChange) {
        self.health.insert(change.mount, change.health);
    }

    /// Lists, decides, acts; returns when the next round is due at the latest.
    async fn round(&mut self) -> Instant {
        let containers = match self.engine.containers().await {
            Ok(containers) => containers,
            Err(e) => {
                self.failures += 1;
                let wait = policy::backoff(self.failures);
                let reason = format!("{e}; trying again in {}s", wait.as_secs());
                if self.status.connection(false, Some(reason)) {
                    tracing::warn!(error = %e, "docker actions: lost the Docker Engine; no action until it answers again");
                }
                return Instant::now() + wait;
            }
        };
        self.failures = 0;
        if self.status.connection(true, None) {
            tracing::info!(socket = %self.engine.socket().display(), "docker actions: connected to the Docker Engine");
        }
        let steps = self.planner.plan(&containers, &self.health, Instant::now());
        for step in &steps {
            let outcome = self.act(step).await;
            self.planner.finished(step, outcome, Instant::now());
        }
        self.publish(&containers);
        let soonest = self.planner.next_retry();
        let regular = Instant::now() + RECONCILE_EVERY;
        soonest.map_or(regular, |at| at.min(regular))
    }

    async fn act(&mut self, step: &Step) -> Outcome {
        let action = step.action.as_str();
        let name = step.name.as_str();
        let (outcome, detail) = if step.held {
            tracing::info!(container = name, action, why = %step.why, "docker action held back");
            (Outcome::Skipped, step.why.clone())
        } else {
            tracing::info!(container = name, action, why = %step.why, "docker action");
            match self.engine.act(&step.container, step.action).await {
                Ok(Done::Done) => {
                    tracing::warn!(container = name, action, why = %step.why, "docker action done");
                    (Outcome::Done, step.why.clone())
                }
                Ok(Done::Nothing(why_not)) => {
                    tracing::info!(
                        container = name,
                        action,
                        detail = why_not,
                        "docker action not needed"
                    );
                    (Outcome::Skipped, format!("{}; {why_not}", step.why))
                }
                Err(e) => {
                    tracing::warn!(container = name, action, error = %e, "docker action failed; trying again with backoff");
                    (Outcome::Failed, format!("{}; {e}", step.why))
                }
            }
        };
        self.status.count(step.action, outcome);
        self.last.insert(
            step.container.clone(),
            LastAction {
                action,
                outcome: outcome.as_str(),
                detail,
                at: timestamp(SystemTime::now()),
            },
        );
        outcome
    }

    fn publish(&mut self, containers: &[Container]) {
        self.last
            .retain(|id, _| containers.iter().any(|c| &c.id == id));
        let views = containers
            .iter()
            .map(|c| ContainerView {
                name: c.name.clone(),
                id: c.id.chars().take(12).collect(),
                running: c.running,
                depends_on: c
                    .policy
                    .as_ref()
                    .map(|p| p.mounts.clone())
                    .unwrap_or_default(),
                stopped_by_monitor: self.planner.stopped_by_us(&c.id),
                label_error: c.policy.as_ref().err().cloned(),
                last_action: self.last.get(&c.id).cloned(),
            })
            .collect();
        self.status.update(|v| v.containers = views);
    }
}
