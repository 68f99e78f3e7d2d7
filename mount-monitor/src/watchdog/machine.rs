//! The watchdog's decisions, without I/O or clocks of its own: when a restart becomes due, when
//! it is cancelled, how long to wait between DELETE attempts, what an answer to a DELETE means,
//! and whether the pod is too young to be deleted again.
//!
//! The restart-storm guard: a mount that has never been healthy in this pod's life does not
//! trigger a restart. A pod that starts on a dead mount would be recreated on the same dead
//! mount, again and again; it stays unready instead, which its readiness probe and the
//! mount's `reason` say. Any mount that was healthy and then fails restarts the pod at once
//! (after `restartDelay`), however young the pod: debrid-mount-monitor's own e2e timeline. It
//! needs no API call and no memory beyond this process.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use crate::state::Health;

/// A restart that is waiting for its time: the mount that caused it and when it is due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trigger {
    /// The monitor's id of the mount (names may repeat in a debrid-mount-monitor config).
    pub id: u64,
    pub mount: String,
    /// The mount's path as configured, which the event names (as debrid-mount-monitor's does).
    pub path: String,
    /// Consecutive failures when the mount turned unhealthy, for the event's message.
    pub failures: u32,
    pub due: Instant,
}

/// What an observation changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reaction {
    Nothing,
    /// A restart is now pending.
    Pending(Trigger),
    /// The mount of the pending restart is no longer unhealthy, so the restart is off. When
    /// another mount is still unhealthy, a restart for it is pending instead (`next`).
    Cancelled {
        mount: String,
        next: Option<Trigger>,
    },
    /// The mount turned unhealthy but has never been healthy since the monitor started: no
    /// restart (the storm guard).
    Withheld {
        mount: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Not armed (yet): unhealthy mounts are noted, nothing is triggered.
    Unarmed,
    Armed,
    Pending(Trigger),
    /// The restart sequence runs; mounts are noted, nothing else is triggered.
    Restarting,
    /// The pod is being deleted: nothing more to do.
    Done,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Unhealthy {
    mount: String,
    path: String,
    failures: u32,
    since: Instant,
}

/// The state machine: Unarmed → Armed → Pending → Restarting → Done, with Pending → Armed on
/// recovery and Restarting → Pending when the pod is too young to be deleted yet.
#[derive(Clone, Debug)]
pub struct Machine {
    restart_delay: Duration,
    phase: Phase,
    unhealthy: BTreeMap<u64, Unhealthy>,
    /// Mounts seen healthy since the monitor started.
    healthy_once: BTreeSet<u64>,
}

impl Machine {
    pub fn new(restart_delay: Duration) -> Machine {
        Machine {
            restart_delay,
            phase: Phase::Unarmed,
            unhealthy: BTreeMap::new(),
            healthy_once: BTreeSet::new(),
        }
    }

    /// Arming succeeded. A mount that turned unhealthy while the access review ran counts as
    /// if the watchdog had been armed first (debrid-mount-monitor arms before the first check).
    pub fn arm(&mut self) -> Reaction {
        if self.phase != Phase::Unarmed {
            return Reaction::Nothing;
        }
        self.phase = Phase::Armed;
        self.pend_next()
    }

    /// A mount's health changed (`Unknown`: no longer monitored).
    pub fn observe(
        &mut self,
        id: u64,
        mount: &str,
        path: &str,
        health: Health,
        failures: u32,
        now: Instant,
    ) -> Reaction {
        if health == Health::Healthy {
            self.healthy_once.insert(id);
        }
        if health == Health::Unhealthy {
            if !self.healthy_once.contains(&id) {
                return Reaction::Withheld {
                    mount: mount.to_owned(),
                };
            }
            self.unhealthy.entry(id).or_insert_with(|| Unhealthy {
                mount: mount.to_owned(),
                path: path.to_owned(),
                failures,
                since: now,
            });
            if self.phase == Phase::Armed {
                return self.pend_next();
            }
            return Reaction::Nothing;
        }
        self.unhealthy.remove(&id);
        match &self.phase {
            Phase::Pending(trigger) if trigger.id == id => {
                let mount = trigger.mount.clone();
                self.phase = Phase::Armed;
                let next = match self.pend_next() {
                    Reaction::Pending(next) => Some(next),
                    _ => None,
                };
                Reaction::Cancelled { mount, next }
            }
            _ => Reaction::Nothing,
        }
    }

    /// When the pending restart is due; `None` when none is pending.
    pub fn due(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Pending(trigger) => Some(trigger.due),
            _ => None,
        }
    }

    /// The pending restart starts: its trigger, and from now on nothing else is triggered.
    pub fn begin(&mut self) -> Option<Trigger> {
        match std::mem::replace(&mut self.phase, Phase::Restarting) {
            Phase::Pending(trigger) => Some(trigger),
            other => {
                self.phase = other;
                None
            }
        }
    }

    /// The restart must wait until `until` (the pod is too young): pending again, and cancelled
    /// as before if the mount recovers meanwhile.
    pub fn postpone(&mut self, trigger: Trigger, until: Instant) {
        if self.phase == Phase::Restarting {
            self.phase = Phase::Pending(Trigger {
                due: until,
                ..trigger
            });
        }
    }

    /// The pod is being deleted (by us or by someone else): nothing more to trigger.
    pub fn finish(&mut self) {
        self.phase = Phase::Done;
    }

    /// The earliest mount still unhealthy becomes the pending restart, due `restartDelay`
    /// after it turned unhealthy.
    fn pend_next(&mut self) -> Reaction {
        let Some((&id, first)) = self.unhealthy.iter().min_by_key(|(_, u)| u.since) else {
            return Reaction::Nothing;
        };
        let trigger = Trigger {
            id,
            mount: first.mount.clone(),
            path: first.path.clone(),
            failures: first.failures,
            due: first.since + self.restart_delay,
        };
        self.phase = Phase::Pending(trigger.clone());
        Reaction::Pending(trigger)
    }
}

/// The wait before DELETE attempt `retry + 1` (0: the wait after the first attempt):
/// `initial`, doubling each time, never more than `max`.
pub fn backoff(initial: Duration, max: Duration, retry: u32) -> Duration {
    let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
    initial.saturating_mul(factor).min(max)
}

/// What the answer to a DELETE of the pod means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteVerdict {
    /// 200, 202: deletion started; 404: gone already; 409: a conflicting deletion is under way.
    Done,
    /// 401, 403: the token or the RBAC rules refuse it; asking again will not help.
    Permanent,
    /// Anything else (5xx, 429, …): worth another try.
    Transient,
}

pub fn classify_delete(status: u16) -> DeleteVerdict {
    match status {
        200 | 202 | 404 | 409 => DeleteVerdict::Done,
        401 | 403 => DeleteVerdict::Permanent,
        _ => DeleteVerdict::Transient,
    }
}

/// When a pod created at `created` may be deleted again, if that is later than `now`: the
/// opt-in `minPodAge`, for a mount that comes up and dies again in every new pod. A creation
/// time in the future (clock skew) counts as a pod created now. `min_age` zero (the default)
/// turns it off.
pub fn postponed_until(
    created: Option<SystemTime>,
    now: SystemTime,
    min_age: Duration,
) -> Option<SystemTime> {
    let created = created?;
    if min_age.is_zero() {
        return None;
    }
    let age = now.duration_since(created).unwrap_or(Duration::ZERO);
    (age < min_age).then(|| now + (min_age - age))
}

#[cfg(test)]
mod tests;
