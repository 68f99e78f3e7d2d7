//! What a labelled container asks for, and what to do about it now: the labels, and the decisions
//! over the mounts' health and what the actor remembers. No I/O, so that every rule is tested
//! without a Docker daemon.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::state::Health;
use crate::status::docker::{Action, Outcome};

/// The mounts (by name) a container needs, comma-separated.
pub const DEPENDS_ON: &str = "mount-monitor.depends-on";
/// `stop` (default), `restart` or `none`: when one of its mounts turns unhealthy.
pub const ON_FAILURE: &str = "mount-monitor.on-failure";
/// `start` (default), `restart` or `none`: once all its mounts are healthy again.
pub const ON_RECOVERY: &str = "mount-monitor.on-recovery";

/// A container restarted for a mount that did not come back is restarted again after this long
/// at the earliest (or once the mount was healthy in between).
pub const RESTART_HOLD: Duration = Duration::from_secs(5 * 60);

/// A failed API call is tried again after 1 s, then 2 s, 4 s… up to this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The wait before the attempt after `failures` failed ones (1 s doubling to 30 s).
pub fn backoff(failures: u32) -> Duration {
    let doubled = Duration::from_secs(1).saturating_mul(1u32 << failures.saturating_sub(1).min(5));
    doubled.min(MAX_BACKOFF)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFailure {
    Stop,
    Restart,
    Nothing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnRecovery {
    Start,
    Restart,
    Nothing,
}

/// A container's labels, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub mounts: Vec<String>,
    pub on_failure: OnFailure,
    pub on_recovery: OnRecovery,
}

impl Policy {
    /// Reads the labels; the error names the label, the value and the values it takes.
    pub fn from_labels<'a>(label: impl Fn(&str) -> Option<&'a str>) -> Result<Policy, String> {
        let mounts: Vec<String> = label(DEPENDS_ON)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect();
        if mounts.is_empty() {
            return Err(format!(
                "label {DEPENDS_ON} names no mount; set it to the mount names it needs, comma-separated"
            ));
        }
        let value = |key: &str| label(key).map(str::trim).filter(|v| !v.is_empty());
        let on_failure = match value(ON_FAILURE) {
            None | Some("stop") => OnFailure::Stop,
            Some("restart") => OnFailure::Restart,
            Some("none") => OnFailure::Nothing,
            Some(other) => {
                return Err(format!(
                    "label {ON_FAILURE}={other:?} is not stop, restart or none"
                ));
            }
        };
        let on_recovery = match value(ON_RECOVERY) {
            None | Some("start") => OnRecovery::Start,
            Some("restart") => OnRecovery::Restart,
            Some("none") => OnRecovery::Nothing,
            Some(other) => {
                return Err(format!(
                    "label {ON_RECOVERY}={other:?} is not start, restart or none"
                ));
            }
        };
        Ok(Policy {
            mounts,
            on_failure,
            on_recovery,
        })
    }
}

/// A labelled container as the Engine lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub running: bool,
    pub policy: Result<Policy, String>,
}

/// Where a container's mounts stand together.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Mounts {
    /// This one is unhealthy.
    Failing(String),
    /// Every one is healthy (or degraded: usable, with a warning).
    Healthy,
    /// Not all checked yet, or one is not monitored: nothing is decided on them.
    Unsure,
}

fn mounts_state(policy: &Policy, health: &HashMap<String, Health>) -> Mounts {
    let mut unsure = false;
    for mount in &policy.mounts {
        match health.get(mount).copied().unwrap_or(Health::Unknown) {
            Health::Unhealthy => return Mounts::Failing(mount.clone()),
            Health::Healthy | Health::Degraded => {}
            Health::Unknown => unsure = true,
        }
    }
    if unsure {
        Mounts::Unsure
    } else {
        Mounts::Healthy
    }
}

/// What the actor remembers of one container.
#[derive(Clone, Debug, Default)]
struct Memory {
    /// mount-monitor stopped it: only such a container is started on recovery.
    stopped_by_us: bool,
    /// One of its mounts failed while watched: its recovery action is due once all are healthy.
    failed: bool,
    /// Restarted for a failing mount at this time; cleared once its mounts are healthy.
    restarted_at: Option<Instant>,
    /// The held-back restart was counted as skipped already (once per hold, not per round).
    hold_counted: bool,
    /// Failed calls in a row, and when the next may be made.
    failures: u32,
    retry_at: Option<Instant>,
}

/// One thing to do, and why (for the log and the status).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub action: Action,
    pub container: String,
    pub name: String,
    /// Held back: count it as skipped, do not call the Engine.
    pub held: bool,
    pub why: String,
}

/// The decisions over every round, with what they need to remember.
#[derive(Debug, Default)]
pub struct Planner {
    memory: HashMap<String, Memory>,
}

impl Planner {
    /// What to do now about `containers`, given the mounts' `health`. Decided again every round
    /// from the current state (level, not edge): a container started while its mount is dead is
    /// stopped on the next round, whoever started it.
    pub fn plan(
        &mut self,
        containers: &[Container],
        health: &HashMap<String, Health>,
        now: Instant,
    ) -> Vec<Step> {
        // Containers gone from the Engine are forgotten.
        self.memory
            .retain(|id, _| containers.iter().any(|c| &c.id == id));
        let mut steps = Vec::new();
        for c in containers {
            let Ok(policy) = &c.policy else { continue };
            let memory = self.memory.entry(c.id.clone()).or_default();
            if memory.retry_at.is_some_and(|at| now < at) {
                continue;
            }
            let step = |action, held, why: String| Step {
                action,
                container: c.id.clone(),
                name: c.name.clone(),
                held,
                why,
            };
            match mounts_state(policy, health) {
                Mounts::Unsure => {}
                Mounts::Failing(mount) => {
                    memory.failed = true;
                    let why = format!("mount {mount} is unhealthy");
                    match policy.on_failure {
                        OnFailure::Nothing => {}
                        OnFailure::Stop if c.running => steps.push(step(Action::Stop, false, why)),
                        OnFailure::Stop => {}
                        // A provider the user stopped is theirs; one mount-monitor stopped or
                        // restarted (and that may have died on its own since) is started again.
                        OnFailure::Restart
                            if !c.running
                                && !memory.stopped_by_us
                                && memory.restarted_at.is_none() => {}
                        OnFailure::Restart => match memory.restarted_at {
                            Some(at) if now.saturating_duration_since(at) < RESTART_HOLD => {
                                if !memory.hold_counted {
                                    memory.hold_counted = true;
                                    steps.push(step(
                                        Action::Restart,
                                        true,
                                        format!(
                                            "{why}, and the container was restarted for it {}s ago: not again before the mount was healthy once or {} have passed",
                                            now.saturating_duration_since(at).as_secs(),
                                            humantime::format_duration(RESTART_HOLD)
                                        ),
                                    ));
                                }
                            }
                            _ => steps.push(step(Action::Restart, false, why)),
                        },
                    }
                }
                Mounts::Healthy => {
                    memory.restarted_at = None;
                    memory.hold_counted = false;
                    let recovered = std::mem::take(&mut memory.failed);
                    let why = format!("its mounts are healthy ({})", policy.mounts.join(", "));
                    match policy.on_recovery {
                        OnRecovery::Nothing => memory.stopped_by_us = false,
                        OnRecovery::Start if memory.stopped_by_us && !c.running => {
                            steps.push(step(Action::Start, false, why))
                        }
                        // Running again, started by someone: nothing of ours to undo.
                        OnRecovery::Start => memory.stopped_by_us = false,
                        OnRecovery::Restart if memory.stopped_by_us => {
                            steps.push(step(Action::Restart, false, why))
                        }
                        OnRecovery::Restart if recovered && c.running => {
                            steps.push(step(Action::Restart, false, why))
                        }
                        OnRecovery::Restart => {}
                    }
                }
            }
        }
        steps
    }

    /// Records how a step ended: what was stopped, restarted, and when to try a failed call again.
    pub fn finished(&mut self, step: &Step, outcome: Outcome, now: Instant) {
        let memory = self.memory.entry(step.container.clone()).or_default();
        if step.held {
            return;
        }
        match outcome {
            Outcome::Failed => {
                memory.failures += 1;
                memory.retry_at = Some(now + backoff(memory.failures));
                // A recovery restart is still due when the call is tried again (a start is,
                // by `stopped_by_us`).
                if step.action == Action::Restart {
                    memory.failed |= !memory.stopped_by_us;
                }
                return;
            }
            Outcome::Skipped => {
                // Already in that state: stopped by someone else, or started again by someone.
                memory.failures = 0;
                memory.retry_at = None;
                if step.action == Action::Start {
                    memory.stopped_by_us = false;
                }
                return;
            }
            Outcome::Done => {
                memory.failures = 0;
                memory.retry_at = None;
            }
        }
        match step.action {
            Action::Stop => memory.stopped_by_us = true,
            Action::Start => memory.stopped_by_us = false,
            Action::Restart if memory.failed => {
                // For a failing mount: held for a while unless the mount comes back.
                memory.restarted_at = Some(now);
                memory.hold_counted = false;
                memory.stopped_by_us = false;
            }
            Action::Restart => memory.stopped_by_us = false,
        }
    }

    /// When the soonest failed call is due again.
    pub fn next_retry(&self) -> Option<Instant> {
        self.memory.values().filter_map(|m| m.retry_at).min()
    }

    /// mount-monitor stopped this container and has not started it again.
    pub fn stopped_by_us(&self, container: &str) -> bool {
        self.memory.get(container).is_some_and(|m| m.stopped_by_us)
    }
}

#[cfg(test)]
mod tests;
