//! The collector: owns every mount's state machine, applies the checks' results, logs checks and
//! transitions, tells the actors of changes and publishes the snapshots.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use super::Event;
use super::blocked::blocked_checks;
use crate::config::MountSpec;
use crate::reason::{Failure, Reason};
use crate::snapshot::{HEARTBEAT, MountChange, MountView, Shared, Snapshot};
use crate::state::{Health, MountState, Transition};

/// Time between two snapshots, per mount. A snapshot takes a reference to every mount's view
/// (a few nanoseconds each) and results arrive one by one, so publishing each at once would make
/// a round cost mounts² references: tens of milliseconds of CPU per round at 1,000 mounts, and
/// growing with the square. Spaced like this, publishing takes well under 1% of a CPU whatever
/// the number of mounts, and a result waits at most 10 ms at 1,000 mounts before readers see it.
const PUBLISH_SPACING_PER_MOUNT: Duration = Duration::from_micros(10);

/// Owns every state machine; applies results, logs transitions, publishes snapshots.
pub(super) async fn collect(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Event>) {
    // Shared with the published snapshots: a result copies only its own mount's view, and only
    // while a snapshot still holds it.
    let mut mounts: Vec<(u64, Arc<MountView>)> = Vec::new();
    // The actors subscribed before the monitor started.
    let listeners = shared.change_listeners();
    let mut initialized = false;
    let mut failed = None;
    let mut published: Option<Instant> = None;
    let mut published_blocked = 0;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = rx.recv() => {
                let Some(event) = event else { return };
                initialized |= apply(&mut mounts, &mut failed, event, &listeners);
                let spacing = PUBLISH_SPACING_PER_MOUNT * mounts.len() as u32;
                if let Some(next) = published.map(|at| at + spacing)
                    && Instant::now() < next
                {
                    tokio::time::sleep_until(next.into()).await;
                }
                // Drain what else is queued so a burst publishes one snapshot.
                while let Ok(event) = rx.try_recv() {
                    initialized |= apply(&mut mounts, &mut failed, event, &listeners);
                }
            }
            _ = heartbeat.tick() => {
                shared.beat();
                // A check left blocked may return without any event: keep the count current.
                if blocked_checks() == published_blocked {
                    continue;
                }
            }
        }
        published_blocked = blocked_checks();
        shared.publish(Snapshot {
            mounts: mounts.iter().map(|(_, v)| Arc::clone(v)).collect(),
            initialized,
            blocked_checks: published_blocked,
            failed: failed.clone(),
        });
        published = Some(Instant::now());
    }
}

/// Applies one event; true when it marks the initial set of mounts as complete. Changes of
/// health go to every one of `listeners`; one that ended (the watchdog when disabled) does not
/// stop the others.
pub(super) fn apply(
    mounts: &mut Vec<(u64, Arc<MountView>)>,
    failed: &mut Option<String>,
    event: Event,
    listeners: &[mpsc::UnboundedSender<MountChange>],
) -> bool {
    let notify = |id: u64, view: &MountView| {
        let change = MountChange {
            id,
            mount: view.label(),
            path: view.spec.shown_path.clone(),
            health: view.state.health,
            failure_count: view.state.failure_count,
            optional: view.spec.optional,
        };
        for listener in listeners {
            let _ = listener.send(change.clone());
        }
    };
    match event {
        Event::Initialized => return true,
        Event::Failed(message) => *failed = Some(message),
        Event::Added(id, spec) => {
            let at = mounts.partition_point(|(i, _)| *i < id);
            mounts.insert(
                at,
                (
                    id,
                    Arc::new(MountView {
                        spec,
                        state: MountState::default(),
                        stuck_since: None,
                    }),
                ),
            );
        }
        Event::Removed(id) => mounts.retain(|(i, view)| {
            if *i == id && view.state.health == Health::Unhealthy {
                let gone = MountView {
                    state: MountState::default(),
                    ..view.as_ref().clone()
                };
                notify(id, &gone);
            }
            *i != id
        }),
        Event::Checked {
            id,
            outcome,
            stuck_since,
        } => {
            let Ok(at) = mounts.binary_search_by_key(&id, |(i, _)| *i) else {
                return false;
            };
            let view = Arc::make_mut(&mut mounts[at].1);
            let spec = Arc::clone(&view.spec);
            let failure = outcome.result.as_ref().err().cloned();
            let duration = outcome.duration;
            let transition = view.state.apply(
                *outcome,
                SystemTime::now(),
                spec.failure_threshold,
                spec.success_threshold,
            );
            log_check(&spec, failure.as_ref(), duration, view.state.health);
            if let Some(t) = transition {
                log_transition(&spec, &t);
                notify(id, view);
            }
            view.stuck_since = stuck_since;
        }
    }
    false
}

/// Every check, as debrid-mount-monitor logs it: a WARN `health check failed` per failure (log
/// alerts count them), `health check passed` at debug.
fn log_check(
    spec: &MountSpec,
    failure: Option<&Failure>,
    duration: Option<Duration>,
    status: Health,
) {
    let path = spec.shown_path.as_str();
    let name = spec.name.as_deref().unwrap_or("");
    let mount = spec.label();
    let duration = duration.map(|d| format!("{d:?}")).unwrap_or_default();
    match failure {
        None => tracing::debug!(
            path,
            success = true,
            duration,
            status = status.as_str(),
            name,
            mount,
            "health check passed"
        ),
        Some(f) => tracing::warn!(
            path,
            success = false,
            duration,
            status = status.as_str(),
            name,
            error = f.detail.as_str(),
            reason = f.reason.code(),
            mount,
            "health check failed"
        ),
    }
}

/// A change of state, once, with debrid-mount-monitor's message and fields.
fn log_transition(spec: &MountSpec, t: &Transition) {
    tracing::info!(
        path = spec.shown_path.as_str(),
        previous_state = t.from.as_str(),
        new_state = t.to.as_str(),
        trigger = t.trigger(),
        name = spec.name.as_deref().unwrap_or(""),
        mount = spec.label(),
        reason = t.reason.map_or("ok", Reason::code),
        "mount state changed"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    use crate::config::Settings;
    use crate::outcome::Outcome;
    /// The actors hear of every mount turning unhealthy, each change saying whether its mount
    /// is optional (the watchdog ignores those, Docker actions act on them).
    #[test]
    fn changes_say_whether_the_mount_is_optional() {
        let settings = Settings::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut mounts = Vec::new();
        let mut failed = None;
        for (id, optional) in [(0, false), (1, true)] {
            let mut spec = MountSpec::plain(
                Some(format!("m{id}")),
                PathBuf::from(format!("/mnt/m{id}")),
                &settings,
            );
            spec.optional = optional;
            spec.failure_threshold = 1;
            apply(
                &mut mounts,
                &mut failed,
                Event::Added(id, Arc::new(spec)),
                std::slice::from_ref(&tx),
            );
            let checked = Event::Checked {
                id,
                outcome: Box::new(Outcome::failed(Failure::new(Reason::NotMounted, "gone"))),
                stuck_since: None,
            };
            apply(&mut mounts, &mut failed, checked, std::slice::from_ref(&tx));
        }
        assert!(
            mounts
                .iter()
                .all(|(_, v)| v.state.health == Health::Unhealthy)
        );
        let heard: Vec<MountChange> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        let heard: Vec<(&str, Health, bool)> = heard
            .iter()
            .map(|c| (c.mount.as_str(), c.health, c.optional))
            .collect();
        assert_eq!(
            heard,
            [
                ("m0", Health::Unhealthy, false),
                ("m1", Health::Unhealthy, true)
            ]
        );
    }
}
