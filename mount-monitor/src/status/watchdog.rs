//! The pod-restart watchdog's status: where it stands, why, and how its restarts ended, as
//! `/healthz/status` and `/metrics` show it. Written by the runner in [`crate::watchdog`], read
//! through the snapshot's [`Shared`](crate::snapshot::Shared).

use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

use crate::config::WatchdogSettings;
use crate::state::timestamp;

/// Where the watchdog stands, as `/healthz/status` and `/metrics` show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Off in the configuration, or could not be armed for a reason other than those below.
    Disabled,
    /// No service account token: not running in Kubernetes.
    NotInCluster,
    /// The access review says this service account may not delete pods.
    Forbidden,
    /// The access review is under way.
    Arming,
    Armed,
    /// A mount is unhealthy; the pod will be deleted when the delay (or `minPodAge`) is over.
    Pending,
    /// The restart sequence runs, or the pod is being deleted.
    Restarting,
}

impl State {
    pub const ALL: [State; 7] = [
        State::Disabled,
        State::NotInCluster,
        State::Forbidden,
        State::Arming,
        State::Armed,
        State::Pending,
        State::Restarting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Disabled => "disabled",
            State::NotInCluster => "not_in_cluster",
            State::Forbidden => "forbidden",
            State::Arming => "arming",
            State::Armed => "armed",
            State::Pending => "pending",
            State::Restarting => "restarting",
        }
    }
}

/// How a triggered restart ended, counted in `mount_monitor_watchdog_restarts_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// The API server accepted the DELETE.
    Deleted,
    /// The pod was being deleted already (or was gone): nothing to do.
    AlreadyTerminating,
    /// The mount recovered before the delay was over.
    Cancelled,
    /// The pod was younger than `minPodAge`: the restart waits until it is old enough.
    Postponed,
    /// The monitor was shutting down.
    Aborted,
    /// DELETE refused for good or retries exhausted: the process exits 1.
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Deleted,
        Outcome::AlreadyTerminating,
        Outcome::Cancelled,
        Outcome::Postponed,
        Outcome::Aborted,
        Outcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Deleted => "deleted",
            Outcome::AlreadyTerminating => "already_terminating",
            Outcome::Cancelled => "cancelled",
            Outcome::Postponed => "postponed",
            Outcome::Aborted => "aborted",
            Outcome::Failed => "failed",
        }
    }
}

/// The `watchdog` object of `/healthz/status`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct View {
    pub state: State,
    /// Why it is in this state, in a sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The mount that triggered the pending or running restart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// When it entered this state (RFC 3339).
    pub since: String,
    /// When the pending restart is due (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_at: Option<String>,
    /// DELETE requests sent for the current restart.
    #[serde(skip_serializing_if = "is_zero")]
    pub delete_attempts: u32,
    /// The latest failed call to the API server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl View {
    fn new(state: State, reason: impl Into<String>) -> View {
        View {
            state,
            reason: Some(reason.into()),
            mount: None,
            pod: None,
            namespace: None,
            since: timestamp(SystemTime::now()),
            restart_at: None,
            delete_attempts: 0,
            last_error: None,
        }
    }
}

/// The watchdog's state, shared with the HTTP handlers.
#[derive(Debug)]
pub struct Status {
    view: Mutex<View>,
    outcomes: Mutex<[u64; Outcome::ALL.len()]>,
    changes: super::Changes,
}

impl Status {
    pub fn new(settings: &WatchdogSettings) -> Status {
        let view = if settings.enabled {
            View::new(State::Arming, "checking whether the pod can be deleted")
        } else {
            View::new(State::Disabled, "disabled in the configuration")
        };
        Status {
            view: Mutex::new(view),
            outcomes: Mutex::new([0; Outcome::ALL.len()]),
            changes: super::Changes::default(),
        }
    }

    /// Changes to the view or the outcomes so far: equal numbers, equal state.
    pub fn changes(&self) -> u64 {
        self.changes.get()
    }

    pub fn view(&self) -> View {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Restarts triggered so far, by outcome (every outcome, zero or not).
    pub fn outcomes(&self) -> Vec<(Outcome, u64)> {
        let counts = *self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
        Outcome::ALL.into_iter().zip(counts).collect()
    }

    pub(crate) fn count(&self, outcome: Outcome) {
        let mut counts = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = Outcome::ALL.iter().position(|o| *o == outcome) {
            counts[at] += 1;
            self.changes.bump();
        }
    }

    pub(crate) fn update(&self, change: impl FnOnce(&mut View)) {
        let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        let before = view.state;
        change(&mut view);
        if view.state != before {
            view.since = timestamp(SystemTime::now());
        }
        self.changes.bump();
    }

    /// A new state and reason; the restart's details are cleared.
    pub(crate) fn set(&self, state: State, reason: impl Into<String>) {
        let reason = reason.into();
        self.update(|v| {
            v.state = state;
            v.reason = Some(reason);
            v.mount = None;
            v.restart_at = None;
            v.delete_attempts = 0;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_outcomes_are_named_alike_in_json_and_metrics() {
        for state in State::ALL {
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
        let mut names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        names.dedup();
        assert_eq!(names.len(), Outcome::ALL.len());
    }

    #[test]
    fn the_status_starts_from_the_configuration() {
        let off = Status::new(&WatchdogSettings::default()).view();
        assert_eq!(off.state, State::Disabled);
        let json = serde_json::to_value(&off).unwrap();
        assert_eq!(json["state"], "disabled");
        assert_eq!(json["reason"], "disabled in the configuration");
        for absent in [
            "mount",
            "pod",
            "namespace",
            "restart_at",
            "delete_attempts",
            "last_error",
        ] {
            assert!(json.get(absent).is_none(), "{absent} in {json}");
        }
        let on = WatchdogSettings {
            enabled: true,
            ..Default::default()
        };
        assert_eq!(Status::new(&on).view().state, State::Arming);
    }

    #[test]
    fn outcomes_are_counted_and_a_new_state_clears_the_restart() {
        let status = Status::new(&WatchdogSettings::default());
        status.count(Outcome::Deleted);
        status.count(Outcome::Cancelled);
        status.count(Outcome::Cancelled);
        let counts: Vec<(&str, u64)> = status
            .outcomes()
            .into_iter()
            .map(|(o, n)| (o.as_str(), n))
            .collect();
        assert_eq!(
            counts,
            [
                ("deleted", 1),
                ("already_terminating", 0),
                ("cancelled", 2),
                ("postponed", 0),
                ("aborted", 0),
                ("failed", 0)
            ]
        );
        status.set(State::Pending, "mount media is unhealthy");
        status.update(|v| {
            v.mount = Some("media".into());
            v.delete_attempts = 2;
        });
        status.set(State::Armed, "restart cancelled");
        let view = status.view();
        assert_eq!((view.mount, view.delete_attempts), (None, 0));
        assert_eq!(view.reason.as_deref(), Some("restart cancelled"));
    }
}
