//! One mount's task: checks the mount on its interval, forever, with at most one check in flight,
//! and is restarted after a panic. Its parameters travel together as one [`Task`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Event;
use super::blocked::{
    CHECK_SLOTS, InFlight, PARALLEL_CHECKS, PathChecks, SLOW_CHECK, blocked_checks, finished,
    no_thread, probe_pool, spawn_probe, timed_out,
};
use crate::config::{MountSpec, Settings};
use crate::mountinfo::MountTable;
use crate::outcome::{Identity, Outcome};
use crate::paths::display_path;
use crate::probe_pool::{Busy, Call};
use crate::reason::{Failure, Reason};

/// One mount's task: what its checks need, from the first to the last.
#[derive(Clone)]
pub(super) struct Task {
    /// The mount's key in the collector.
    pub id: u64,
    pub spec: Arc<MountSpec>,
    pub settings: Arc<Settings>,
    /// The mount table, shared by every task: read once per change.
    pub table: Arc<MountTable>,
    /// The checks started at the mount's path, kept across remounts.
    pub history: Arc<PathChecks>,
    /// To the collector.
    pub tx: mpsc::UnboundedSender<Event>,
}

impl Task {
    /// Runs [`watch`] for one mount and restarts it after a panic, which must not leave the mount's
    /// last state (perhaps healthy) standing: the mount fails with the panic's message meanwhile.
    pub(super) async fn supervise(self) {
        let Task {
            id,
            ref spec,
            ref settings,
            ref tx,
            ..
        } = self;
        loop {
            let mut task = AbortOnDrop(tokio::spawn(self.clone().watch()));
            let ended = (&mut task.0).await;
            let Err(e) = ended else { return };
            if !e.is_panic() {
                return;
            }
            let message = format!(
                "the monitor's task for this mount crashed: {}",
                panic_message(e)
            );
            tracing::error!(mount = %spec.label(), error = %message, "restarting the mount's checks");
            let failure = Outcome::failed(Failure::new(Reason::Error, message));
            if tx
                .send(Event::Checked {
                    id,
                    outcome: Box::new(failure),
                    stuck_since: None,
                })
                .is_err()
            {
                return;
            }
            tokio::time::sleep(settings.check_interval).await;
        }
    }

    /// Checks one mount on its interval, forever. A check that overruns its deadline keeps its
    /// thread, and no second check of the same mount starts while it is blocked, unless another
    /// mount has taken the path (the usual repair: `umount -l`, mount again): then the blocked one
    /// is left behind, counted, and what is there now is checked at once.
    async fn watch(self) {
        let Task {
            id,
            spec,
            settings,
            table,
            history,
            tx,
        } = self;
        // What the path was on when it was last healthy.
        let mut expected: Option<Identity> = None;
        let mut stuck: Option<Stuck> = None;
        let mut table_changes = table.subscribe();
        table_changes.borrow_and_update();
        // When the next check is due on the interval; kept across the checks a change of the
        // mount table brings forward for a failing mount, which report only a recovery.
        let mut due: Option<tokio::time::Instant> = None;
        let mut brought_forward = false;
        // Whether the last check reported failed.
        let mut failing = false;
        loop {
            let started = tokio::time::Instant::now();
            if let Some(s) = stuck.take() {
                if !replaced(&spec, &table, &s.check).await {
                    stuck = Some(s);
                } else {
                    tracing::info!(mount = %spec.label(), path = %display_path(&spec.path), "another mount is at the path; checking it, and leaving the check blocked on the old one behind");
                }
            }
            let (outcome, stuck_since) = match stuck.take() {
                // Still blocked: say so again, with how long.
                Some(s) => {
                    let stuck_for = s.started.elapsed();
                    let since = s.started;
                    stuck = Some(s);
                    (timed_out(stuck_for, settings.timeout), Some(since))
                }
                None if history.others_running(None) > 0
                    && blocked_checks() >= settings.max_blocked_checks =>
                {
                    (
                        Outcome::failed(Failure::new(
                            Reason::Timeout,
                            format!(
                                "an earlier check at this path is still blocked, and {} checks are blocked in the kernel, the limit (maxBlockedChecks); no new check starts until one returns",
                                blocked_checks()
                            ),
                        )),
                        None,
                    )
                }
                None => 'check: {
                    // Bounded like the check: a check that cannot start in time is not one that passed.
                    let wait = tokio::time::Instant::now() + settings.timeout;
                    let slot = match tokio::time::timeout_at(wait, CHECK_SLOTS.acquire()).await {
                        Ok(slot) => slot.ok(),
                        Err(_) => break 'check (no_thread(&settings, PARALLEL_CHECKS), None),
                    };
                    let check = InFlight::new();
                    history.register(&check);
                    let pool = probe_pool(&settings);
                    let mut handle = match spawn_probe(
                        pool,
                        wait,
                        &spec,
                        &table,
                        expected.clone(),
                        &check,
                    )
                    .await
                    {
                        Ok(handle) => handle,
                        Err(Busy { threads }) => {
                            check.finish();
                            break 'check (no_thread(&settings, threads), None);
                        }
                    };
                    let started = Instant::now();
                    let quick = tokio::time::timeout(SLOW_CHECK, &mut handle).await;
                    drop(slot);
                    let joined = match quick {
                        Ok(joined) => Ok(joined),
                        Err(_) => {
                            let deadline =
                                tokio::time::Instant::from_std(started + settings.timeout);
                            tokio::time::timeout_at(deadline, &mut handle).await
                        }
                    };
                    match joined {
                        Ok(joined) => (finished(joined), None),
                        Err(_) => {
                            check.overdue();
                            stuck = Some(Stuck {
                                handle,
                                started,
                                check,
                            });
                            (
                                timed_out(started.elapsed(), settings.timeout),
                                Some(started),
                            )
                        }
                    }
                }
            };
            let passed = outcome.result.is_ok();
            // A failing mount's check brought forward counts only if it passed (or hung): the
            // mounts coming and going elsewhere never make failures reach failureThreshold
            // sooner than the interval would, and a remount is seen at once.
            let silent = brought_forward && failing && !passed && stuck.is_none();
            if silent {
                tracing::debug!(mount = %spec.label(), "still failing after the mount table changed; the next check stays on the interval");
            } else {
                if !report(&tx, id, outcome, stuck_since, &mut expected) {
                    return;
                }
                failing = !passed;
                due = None;
            }
            brought_forward = false;
            let deadline = *due.get_or_insert_with(|| {
                on_grid(
                    tokio::time::Instant::now() + jittered(settings.check_interval),
                    settings.check_interval,
                )
            });
            let next = tokio::time::sleep_until(deadline);
            tokio::pin!(next);
            if let Some(s) = stuck.as_mut() {
                // Report the stuck check's own result the moment it returns.
                tokio::select! {
                    joined = &mut s.handle => {
                        stuck = None;
                        let outcome = finished(joined);
                        failing = outcome.result.is_err();
                        if !report(&tx, id, outcome, None, &mut expected) {
                            return;
                        }
                        next.await;
                    }
                    _ = &mut next => {}
                }
            } else {
                // Checked again when the mount table changes (this may be the mount unmounted,
                // or mounted again), at most once per RECHECK_GAP.
                let earliest = (started + RECHECK_GAP).min(deadline);
                tokio::select! {
                    _ = &mut next => {}
                    () = table_changed(&mut table_changes, earliest) => {
                        tracing::debug!(mount = %spec.label(), "the mount table changed; checking again");
                        brought_forward = true;
                    }
                }
            }
            table_changes.borrow_and_update();
        }
    }
}

/// The least time between the start of a check and one the mount table's changes bring forward:
/// a storm of mounts elsewhere checks each mount at most this often.
pub(super) const RECHECK_GAP: Duration = Duration::from_millis(200);

/// Returns after the mount table's next change, but not before `earliest`; never when no
/// one watches the table.
async fn table_changed(
    changes: &mut tokio::sync::watch::Receiver<u64>,
    earliest: tokio::time::Instant,
) {
    if changes.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep_until(earliest).await;
}

/// Aborts the task when dropped: aborting a supervisor aborts what it supervises.
pub(super) struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(super) fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_owned()),
        Err(e) => e.to_string(),
    }
}

/// The interval with ±10% jitter, so many monitors (and many mounts) do not check in lockstep.
pub(super) fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + fastrand::f64() * 0.2)
}

/// `at` rounded to the nearest slot of a grid that every mount shares, an interval's fiftieth
/// wide: the mounts due in one slot are checked on one wakeup of the runtime and of the check
/// threads, rather than each on its own (1,000 mounts checked every second, jittered, woke them
/// a thousand times a second). The jitter stays: fifty slots of an interval, ten within its ±10%.
pub(super) fn on_grid(at: tokio::time::Instant, interval: Duration) -> tokio::time::Instant {
    static ORIGIN: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(|| at);
    let slot = (interval / 50).max(Duration::from_millis(1)).as_nanos();
    let Some(since) = at.checked_duration_since(origin) else {
        return at;
    };
    let slots = (since.as_nanos() + slot / 2) / slot;
    let rounded = u64::try_from(slots * slot).unwrap_or(u64::MAX);
    origin + Duration::from_nanos(rounded)
}

/// A check past its deadline, still waited for.
struct Stuck {
    handle: Call<Outcome>,
    started: Instant,
    check: Arc<InFlight>,
}

/// Sends one check's outcome to the collector, learning from a success what the path is on.
/// False once the collector is gone.
fn report(
    tx: &mpsc::UnboundedSender<Event>,
    id: u64,
    outcome: Outcome,
    stuck_since: Option<Instant>,
    expected: &mut Option<Identity>,
) -> bool {
    if outcome.result.is_ok() {
        expected.clone_from(&outcome.identity);
    }
    let event = Event::Checked {
        id,
        outcome: Box::new(outcome),
        stuck_since,
    };
    tx.send(event).is_ok()
}

/// Whether the mount a blocked check is about is no longer the one at the path. Reads only
/// mountinfo, never the mount.
async fn replaced(spec: &Arc<MountSpec>, table: &Arc<MountTable>, check: &InFlight) -> bool {
    let Some(blocked_on) = check.mount_id() else {
        return false;
    };
    let (spec, table) = (Arc::clone(spec), Arc::clone(table));
    let now = tokio::task::spawn_blocking(move || {
        let entries = table.current().ok()?;
        let entry = match spec.placement {
            crate::config::Placement::MountPoint => entries.mount_at(&spec.path),
            _ => entries.mount_containing(&spec.path),
        };
        entry.map(|e| e.mount_id)
    })
    .await
    .ok()
    .flatten();
    now.is_some_and(|now| now != blocked_on)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_fall_on_a_shared_grid_within_half_a_slot() {
        let interval = Duration::from_secs(1);
        let start = tokio::time::Instant::now();
        let slot = Duration::from_millis(20);
        let grid: Vec<tokio::time::Instant> = (0..200u64)
            .map(|i| on_grid(start + Duration::from_micros(i * 7_919), interval))
            .collect();
        for (i, at) in grid.iter().enumerate() {
            let wanted = start + Duration::from_micros(i as u64 * 7_919);
            let off = at.max(&wanted).duration_since(*at.min(&wanted));
            assert!(off <= slot / 2, "{off:?}");
        }
        // Any two deadlines are whole slots apart: due together, or a slot or more apart.
        for pair in grid.windows(2) {
            let apart = pair[1].duration_since(pair[0]).as_nanos();
            assert_eq!(apart % slot.as_nanos(), 0, "{apart}");
        }
        let slots: std::collections::BTreeSet<_> = grid.iter().collect();
        assert!(slots.len() < grid.len() / 2, "{} slots", slots.len());
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let base = Duration::from_secs(30);
        for _ in 0..1000 {
            let d = jittered(base);
            assert!(
                d >= Duration::from_secs(27) && d <= Duration::from_secs(33),
                "{d:?}"
            );
        }
    }
}
