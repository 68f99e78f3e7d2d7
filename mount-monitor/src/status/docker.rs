//! The Docker actions' status: the Engine connection, the labelled containers and the actions
//! taken, as `/healthz/status` and `/metrics` show it. Written by the actor in
//! [`crate::docker`], read through the snapshot's [`Shared`](crate::snapshot::Shared).

use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

use crate::state::timestamp;

/// One call on a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Stop,
    Start,
    Restart,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::Stop, Action::Start, Action::Restart];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Stop => "stop",
            Action::Start => "start",
            Action::Restart => "restart",
        }
    }
}

/// How an action ended, as `mount_monitor_docker_actions_total` counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The Engine did it.
    Done,
    /// The call failed; it is tried again with backoff.
    Failed,
    /// Not needed after all (the container was in that state already, or gone), or held back
    /// (a restart within [`RESTART_HOLD`](crate::docker::policy::RESTART_HOLD) of the last one for a mount still dead).
    Skipped,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Done, Outcome::Failed, Outcome::Skipped];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }
}

/// The last action on one container, as `/healthz/status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LastAction {
    pub action: &'static str,
    pub outcome: &'static str,
    /// Why it was decided (the failing mount), and the Engine's error when it failed.
    pub detail: String,
    /// When (RFC 3339).
    pub at: String,
}

/// One labelled container, as `/healthz/status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ContainerView {
    pub name: String,
    pub id: String,
    pub running: bool,
    /// Its `mount-monitor.depends-on` mounts.
    pub depends_on: Vec<String>,
    /// mount-monitor stopped it and will start it once its mounts are healthy.
    pub stopped_by_monitor: bool,
    /// Its labels could not be read: it is left alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_action: Option<LastAction>,
}

/// The `docker` object of `/healthz/status`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct View {
    pub enabled: bool,
    pub connected: bool,
    /// The socket in use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
    /// Why not connected (or disabled), in a sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When `connected` last changed (RFC 3339).
    pub since: String,
    /// The labelled containers of the last round.
    pub containers: Vec<ContainerView>,
}

/// The actor's state, shared with the HTTP handlers.
#[derive(Debug)]
pub struct Status {
    view: Mutex<View>,
    /// Actions by [`Action::ALL`] then [`Outcome::ALL`].
    counts: Mutex<[[u64; 3]; 3]>,
    changes: super::Changes,
}

impl Status {
    pub fn new(enabled: bool) -> Status {
        Status {
            view: Mutex::new(View {
                enabled,
                connected: false,
                socket: None,
                reason: Some(
                    if enabled {
                        "connecting to the Docker Engine"
                    } else {
                        "disabled in the configuration; enable with --docker-actions"
                    }
                    .to_owned(),
                ),
                since: timestamp(SystemTime::now()),
                containers: Vec::new(),
            }),
            counts: Mutex::new([[0; 3]; 3]),
            changes: super::Changes::default(),
        }
    }

    /// Changes to the view or the counts so far: equal numbers, equal state.
    pub fn changes(&self) -> u64 {
        self.changes.get()
    }

    pub fn view(&self) -> View {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Actions so far, by action and outcome (every combination, zero or not).
    pub fn counts(&self) -> Vec<(Action, Outcome, u64)> {
        let counts = *self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut all = Vec::with_capacity(9);
        for (a, action) in Action::ALL.into_iter().enumerate() {
            for (o, outcome) in Outcome::ALL.into_iter().enumerate() {
                all.push((action, outcome, counts[a][o]));
            }
        }
        all
    }

    pub(crate) fn count(&self, action: Action, outcome: Outcome) {
        let a = Action::ALL.iter().position(|x| *x == action);
        let o = Outcome::ALL.iter().position(|x| *x == outcome);
        if let (Some(a), Some(o)) = (a, o) {
            let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            counts[a][o] += 1;
            self.changes.bump();
        }
    }

    pub(crate) fn update(&self, change: impl FnOnce(&mut View)) {
        let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut view);
        self.changes.bump();
    }

    /// Connected or not; true when that changed.
    pub(crate) fn connection(&self, connected: bool, reason: Option<String>) -> bool {
        let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        let changed = view.connected != connected;
        if changed {
            view.since = timestamp(SystemTime::now());
        }
        view.connected = connected;
        view.reason = reason;
        self.changes.bump();
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_and_outcome_is_counted_from_zero() {
        let status = Status::new(true);
        status.count(Action::Stop, Outcome::Done);
        status.count(Action::Restart, Outcome::Skipped);
        status.count(Action::Restart, Outcome::Skipped);
        let counts: Vec<String> = status
            .counts()
            .into_iter()
            .map(|(a, o, n)| format!("{} {} {n}", a.as_str(), o.as_str()))
            .collect();
        assert_eq!(
            counts,
            [
                "stop done 1",
                "stop failed 0",
                "stop skipped 0",
                "start done 0",
                "start failed 0",
                "start skipped 0",
                "restart done 0",
                "restart failed 0",
                "restart skipped 2"
            ]
        );
    }

    #[test]
    fn the_view_says_why_it_is_not_connected() {
        let off = serde_json::to_value(Status::new(false).view()).unwrap();
        assert_eq!(off["enabled"], false);
        assert_eq!(off["connected"], false);
        assert_eq!(
            off["reason"],
            "disabled in the configuration; enable with --docker-actions"
        );
        let status = Status::new(true);
        assert!(!status.connection(false, Some("no socket".into())));
        assert!(status.connection(true, None));
        let on = serde_json::to_value(status.view()).unwrap();
        assert_eq!(
            (on["connected"].clone(), on.get("reason")),
            (true.into(), None)
        );
    }
}
