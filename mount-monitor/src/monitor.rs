//! The monitor loop: one task per mount, at most one blocking probe in flight per mount, a single
//! collector that owns the state machines and publishes an immutable [`Snapshot`] for readers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{MountSpec, Settings, WAIT_RETRY};
use crate::discovery;
use crate::mountinfo::MountTable;
use crate::outcome::{Identity, Outcome};
use crate::paths::display_path;
use crate::probe;
use crate::probe_pool::{Busy, Call, Panicked, ProbePool};
use crate::reason::{Failure, Reason};
use crate::snapshot::MountChange;
use crate::snapshot::{HEARTBEAT, MountView, Shared, Snapshot};
use crate::state::{Health, MountState, Transition};

enum Event {
    /// Every mount known at start has been added.
    Initialized,
    Added(u64, Arc<MountSpec>),
    Removed(u64),
    Checked {
        id: u64,
        outcome: Box<Outcome>,
        /// When the check still in flight started, while it overruns its deadline.
        stuck_since: Option<Instant>,
    },
    /// A task the monitor cannot do without died (discovery).
    Failed(String),
}

/// Starts the monitor on the current tokio runtime. Returns at once; the loop runs until the
/// runtime stops.
pub fn start(shared: Arc<Shared>) {
    probe_pool(&shared.settings);
    let (tx, rx) = mpsc::unbounded_channel();
    let table = Arc::new(MountTable::new());
    let settings = Arc::clone(&shared.settings);
    tokio::spawn(collect(Arc::clone(&shared), rx));
    if settings.mounts.is_empty() {
        let failed = tx.clone();
        let discovery = tokio::spawn(discover(settings, table, tx));
        tokio::spawn(async move {
            if let Err(e) = discovery.await
                && e.is_panic()
            {
                let message = format!("discovery crashed: {}", panic_message(e));
                tracing::error!(error = %message, "the monitor is broken; /livez fails");
                let _ = failed.send(Event::Failed(message));
            }
        });
    } else {
        for (id, spec) in settings.mounts.iter().enumerate() {
            let spec = Arc::new(spec.clone());
            let _ = tx.send(Event::Added(id as u64, Arc::clone(&spec)));
            tokio::spawn(supervise(
                id as u64,
                spec,
                Arc::clone(&settings),
                Arc::clone(&table),
                Arc::new(PathChecks::default()),
                tx.clone(),
            ));
        }
        let _ = tx.send(Event::Initialized);
    }
}

/// Time between two snapshots, per mount. A snapshot takes a reference to every mount's view
/// (a few nanoseconds each) and results arrive one by one, so publishing each at once would make
/// a round cost mounts² references: tens of milliseconds of CPU per round at 1,000 mounts, and
/// growing with the square. Spaced like this, publishing takes well under 1% of a CPU whatever
/// the number of mounts, and a result waits at most 10 ms at 1,000 mounts before readers see it.
const PUBLISH_SPACING_PER_MOUNT: Duration = Duration::from_micros(10);

/// Owns every state machine; applies results, logs transitions, publishes snapshots.
async fn collect(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Event>) {
    // Shared with the published snapshots: a result copies only its own mount's view, and only
    // while a snapshot still holds it.
    let mut mounts: Vec<(u64, Arc<MountView>)> = Vec::new();
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
                initialized |= apply(&mut mounts, &mut failed, event, shared.change_listener());
                let spacing = PUBLISH_SPACING_PER_MOUNT * mounts.len() as u32;
                if let Some(next) = published.map(|at| at + spacing)
                    && Instant::now() < next
                {
                    tokio::time::sleep_until(next.into()).await;
                }
                // Drain what else is queued so a burst publishes one snapshot.
                while let Ok(event) = rx.try_recv() {
                    initialized |= apply(&mut mounts, &mut failed, event, shared.change_listener());
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
/// health go to `changes`.
fn apply(
    mounts: &mut Vec<(u64, Arc<MountView>)>,
    failed: &mut Option<String>,
    event: Event,
    changes: Option<&mpsc::UnboundedSender<MountChange>>,
) -> bool {
    let notify = |id: u64, view: &MountView| {
        if let Some(changes) = changes {
            let _ = changes.send(MountChange {
                id,
                mount: view.label(),
                path: view.spec.shown_path.clone(),
                health: view.state.health,
                failure_count: view.state.failure_count,
                optional: view.spec.optional,
            });
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

/// The interval with ±10% jitter, so many monitors (and many mounts) do not check in lockstep.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + fastrand::f64() * 0.2)
}

/// Checks running at once, over all mounts, each on a thread of the [`probe_pool`]. A check holds
/// its slot only while it is quick ([`SLOW_CHECK`]): a slow or hung one gives it back at once, so
/// hung mounts never hold up the checks of the others.
pub const PARALLEL_CHECKS: usize = 8;
static CHECK_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(PARALLEL_CHECKS);
/// A healthy local check takes microseconds, a healthy network share milliseconds.
const SLOW_CHECK: Duration = Duration::from_millis(100);

/// The threads checks run on: one per slot for the quick ones, plus `maxBlockedChecks` for the
/// slow and blocked ones, at most; fixed by the first settings that ask (a process has one).
fn probe_pool(settings: &Settings) -> &'static ProbePool {
    static POOL: std::sync::OnceLock<ProbePool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| ProbePool::new(PARALLEL_CHECKS + settings.max_blocked_checks))
}

/// Checks past their deadline that have not returned: threads blocked in the kernel.
static BLOCKED: AtomicUsize = AtomicUsize::new(0);

/// Checks blocked in the kernel past their deadline right now, over all mounts.
pub fn blocked_checks() -> usize {
    BLOCKED.load(Ordering::Relaxed)
}

const RUNNING: u8 = 0;
const OVERDUE: u8 = 1;
const DONE: u8 = 2;
const NOT_LOCATED: u64 = u64::MAX;

/// One check on its blocking thread: running, overdue (counted in [`BLOCKED`]) or done, and the
/// mount ID it found at the path before any call that may hang.
struct InFlight {
    phase: AtomicU8,
    mount_id: AtomicU64,
}

impl InFlight {
    fn new() -> Arc<InFlight> {
        Arc::new(InFlight {
            phase: AtomicU8::new(RUNNING),
            mount_id: AtomicU64::new(NOT_LOCATED),
        })
    }

    /// Marks the check as past its deadline, counting its thread as blocked.
    fn overdue(&self) {
        if self
            .phase
            .compare_exchange(RUNNING, OVERDUE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            BLOCKED.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn finish(&self) {
        if self.phase.swap(DONE, Ordering::AcqRel) == OVERDUE {
            BLOCKED.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn done(&self) -> bool {
        self.phase.load(Ordering::Acquire) == DONE
    }

    fn mount_id(&self) -> Option<u32> {
        u32::try_from(self.mount_id.load(Ordering::Acquire)).ok()
    }
}

/// Ends the check's life when its thread is done with it, also by a panic.
struct FinishOnDrop(Arc<InFlight>);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// The checks started at one path, kept across remounts and (in discovery mode) across the
/// watchers of the mounts that come and go there: an earlier check still blocked at the path
/// makes a new one count against `maxBlockedChecks`.
#[derive(Default)]
pub struct PathChecks {
    checks: std::sync::Mutex<Vec<Arc<InFlight>>>,
}

impl PathChecks {
    fn register(&self, check: &Arc<InFlight>) {
        let mut checks = self.checks.lock().unwrap_or_else(|e| e.into_inner());
        checks.retain(|c| !c.done());
        checks.push(Arc::clone(check));
    }

    /// Checks at this path still running, but for `current`.
    fn others_running(&self, current: Option<&Arc<InFlight>>) -> usize {
        let checks = self.checks.lock().unwrap_or_else(|e| e.into_inner());
        checks
            .iter()
            .filter(|c| !c.done() && current.is_none_or(|cur| !Arc::ptr_eq(c, cur)))
            .count()
    }

    fn idle(&self) -> bool {
        self.others_running(None) == 0
    }
}

/// A check past its deadline, still waited for.
struct Stuck {
    handle: Call<Outcome>,
    started: Instant,
    check: Arc<InFlight>,
}

/// Runs [`watch`] for one mount and restarts it after a panic, which must not leave the mount's
/// last state (perhaps healthy) standing: the mount fails with the panic's message meanwhile.
async fn supervise(
    id: u64,
    spec: Arc<MountSpec>,
    settings: Arc<Settings>,
    table: Arc<MountTable>,
    history: Arc<PathChecks>,
    tx: mpsc::UnboundedSender<Event>,
) {
    loop {
        let mut task = AbortOnDrop(tokio::spawn(watch(
            id,
            Arc::clone(&spec),
            Arc::clone(&settings),
            Arc::clone(&table),
            Arc::clone(&history),
            tx.clone(),
        )));
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

/// Aborts the task when dropped: aborting a supervisor aborts what it supervises.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_owned()),
        Err(e) => e.to_string(),
    }
}

/// Checks one mount on its interval, forever. A check that overruns its deadline keeps its
/// thread, and no second check of the same mount starts while it is blocked, unless another
/// mount has taken the path (the usual repair: `umount -l`, mount again): then the blocked one
/// is left behind, counted, and what is there now is checked at once.
async fn watch(
    id: u64,
    spec: Arc<MountSpec>,
    settings: Arc<Settings>,
    table: Arc<MountTable>,
    history: Arc<PathChecks>,
    tx: mpsc::UnboundedSender<Event>,
) {
    // What the path was on when it was last healthy.
    let mut expected: Option<Identity> = None;
    let mut stuck: Option<Stuck> = None;
    loop {
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
                let mut handle =
                    match spawn_probe(pool, wait, &spec, &table, expected.clone(), &check).await {
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
                        let deadline = tokio::time::Instant::from_std(started + settings.timeout);
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
        if !report(&tx, id, outcome, stuck_since, &mut expected) {
            return;
        }
        let next = tokio::time::sleep(jittered(settings.check_interval));
        tokio::pin!(next);
        if let Some(s) = stuck.as_mut() {
            // Report the stuck check's own result the moment it returns.
            tokio::select! {
                joined = &mut s.handle => {
                    stuck = None;
                    if !report(&tx, id, finished(joined), None, &mut expected) {
                        return;
                    }
                    next.await;
                }
                _ = &mut next => {}
            }
        } else {
            next.await;
        }
    }
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

/// Starts the probe on a thread of the pool, once one is free before `wait`.
async fn spawn_probe(
    pool: &ProbePool,
    wait: tokio::time::Instant,
    spec: &Arc<MountSpec>,
    table: &Arc<MountTable>,
    expected: Option<Identity>,
    check: &Arc<InFlight>,
) -> Result<Call<Outcome>, Busy> {
    let spec = Arc::clone(spec);
    let table = Arc::clone(table);
    let check = Arc::clone(check);
    pool.run(wait, move || {
        let _finish = FinishOnDrop(Arc::clone(&check));
        probe::probe(&spec, &table, expected.as_ref(), |mount_id| {
            check.mount_id.store(u64::from(mount_id), Ordering::Release)
        })
    })
    .await
}

/// A check that could not start within the timeout: every thread (or slot) it could run on is
/// held by checks that have not returned.
fn no_thread(settings: &Settings, threads: usize) -> Outcome {
    Outcome::failed(Failure::new(
        Reason::Timeout,
        format!(
            "no check could start within the timeout ({:?}): all {threads} threads checks run on are held by checks that have not returned ({} blocked in the kernel; the limit is {PARALLEL_CHECKS} + maxBlockedChecks)",
            settings.timeout,
            blocked_checks()
        ),
    ))
}

/// A check that has not returned within `timeout`.
fn timed_out(stuck_for: Duration, timeout: Duration) -> Outcome {
    Outcome::failed(Failure::new(
        Reason::Timeout,
        format!(
            "check has not returned after {:.1}s (timeout {timeout:?})",
            stuck_for.as_secs_f64()
        ),
    ))
}

/// What a check's call ended with: the probe's outcome, or the panic that ended it.
fn finished(joined: Result<Outcome, Panicked>) -> Outcome {
    match joined {
        Ok(outcome) => outcome,
        Err(Panicked(message)) => Outcome::failed(Failure::new(
            Reason::Error,
            format!("check crashed: {message}"),
        )),
    }
}

/// The mounts discovery monitors, by mount point and mount ID: a new mount at a path is a new
/// mount, with checks of its own.
type DiscoveredKey = (PathBuf, u32);

/// Discovery mode: every real mount, re-read each interval; new mounts get a watcher, vanished
/// ones are dropped.
async fn discover(
    settings: Arc<Settings>,
    table: Arc<MountTable>,
    tx: mpsc::UnboundedSender<Event>,
) {
    let mut watched: HashMap<DiscoveredKey, (u64, AbortOnDrop<()>)> = HashMap::new();
    // Kept across the mounts that come and go at a path, while a check there is blocked.
    let mut histories: HashMap<PathBuf, Arc<PathChecks>> = HashMap::new();
    let mut next_id = 0u64;
    let mut announced = false;
    let mut ticker = tokio::time::interval(settings.check_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let table_for_read = Arc::clone(&table);
        let entries = match tokio::task::spawn_blocking(move || table_for_read.current()).await {
            Ok(Ok(entries)) => entries,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot read /proc/self/mountinfo");
                continue;
            }
            Err(_) => continue,
        };
        let current = discovery::real_mounts(&entries);
        let present: std::collections::HashSet<DiscoveredKey> = current
            .iter()
            .map(|e| (e.mount_point.clone(), e.mount_id))
            .collect();
        let gone: Vec<DiscoveredKey> = watched
            .keys()
            .filter(|key| !present.contains(*key))
            .cloned()
            .collect();
        for key in gone {
            if let Some((id, task)) = watched.remove(&key) {
                drop(task);
                let path = display_path(&key.0);
                tracing::info!(mount = %path, %path, "mount disappeared; no longer monitored");
                if tx.send(Event::Removed(id)).is_err() {
                    return;
                }
            }
        }
        for entry in current {
            let key = (entry.mount_point.clone(), entry.mount_id);
            if watched.contains_key(&key) {
                continue;
            }
            let id = next_id;
            next_id += 1;
            let spec = Arc::new(discovery::spec(entry, &settings));
            let path = display_path(&entry.mount_point);
            tracing::info!(mount = %path, %path, fs_type = %entry.fs_type, "monitoring discovered mount");
            if tx.send(Event::Added(id, Arc::clone(&spec))).is_err() {
                return;
            }
            let history = Arc::clone(histories.entry(entry.mount_point.clone()).or_default());
            let task = tokio::spawn(supervise(
                id,
                spec,
                Arc::clone(&settings),
                Arc::clone(&table),
                history,
                tx.clone(),
            ));
            watched.insert(key, (id, AbortOnDrop(task)));
        }
        let watched_paths: std::collections::HashSet<&PathBuf> =
            watched.keys().map(|(path, _)| path).collect();
        histories.retain(|path, history| watched_paths.contains(path) || !history.idle());
        if !announced {
            announced = true;
            if tx.send(Event::Initialized).is_err() {
                return;
            }
        }
    }
}

/// One round over every mount, for `check` mode: all probes concurrently, each under the
/// deadline. Returns the views in configuration order.
pub async fn check_once(settings: &Settings) -> Vec<MountView> {
    check_until_healthy(settings, Instant::now(), |_| {}).await
}

/// Rounds over every mount, one every [`WAIT_RETRY`], until every required mount is healthy or
/// `until` has passed (one round at least, the last one at `until`). Each round's views go to
/// `round`, in configuration order; the last round's are returned. A check still blocked from
/// an earlier round is not started again: the mount reports `timeout` until it returns.
pub async fn check_until_healthy(
    settings: &Settings,
    until: Instant,
    mut round: impl FnMut(&[MountView]),
) -> Vec<MountView> {
    let table = Arc::new(MountTable::new());
    let specs: Vec<Arc<MountSpec>> = if settings.mounts.is_empty() {
        let t = Arc::clone(&table);
        let entries = tokio::task::spawn_blocking(move || t.current())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        discovery::real_mounts(&entries)
            .into_iter()
            .map(|entry| Arc::new(discovery::spec(entry, settings)))
            .collect()
    } else {
        settings.mounts.iter().cloned().map(Arc::new).collect()
    };
    let pool = probe_pool(settings);
    // Each mount's check in flight and when it started.
    let mut pending: Vec<Option<(Call<Outcome>, Instant)>> = specs.iter().map(|_| None).collect();
    loop {
        let round_started = Instant::now();
        let wait = tokio::time::Instant::from_std(round_started + settings.timeout);
        // Started one after the other: one waits only for a thread, which the earlier ones,
        // running meanwhile, give back. A mount whose check is still blocked starts none.
        let mut busy: Vec<Option<usize>> = vec![None; specs.len()];
        for ((spec, slot), busy) in specs.iter().zip(&mut pending).zip(&mut busy) {
            if slot.is_none() {
                match spawn_probe(pool, wait, spec, &table, None, &InFlight::new()).await {
                    Ok(call) => *slot = Some((call, Instant::now())),
                    Err(Busy { threads }) => *busy = Some(threads),
                }
            }
        }
        let mut views = Vec::with_capacity(specs.len());
        for ((spec, slot), busy) in specs.iter().zip(&mut pending).zip(&busy) {
            let outcome = match (busy, slot.as_mut()) {
                (Some(threads), _) => no_thread(settings, *threads),
                (None, Some((call, started))) => {
                    let started = *started;
                    let deadline = tokio::time::Instant::from_std(started + settings.timeout);
                    match tokio::time::timeout_at(deadline, call).await {
                        Ok(joined) => {
                            *slot = None;
                            finished(joined)
                        }
                        Err(_) => timed_out(started.elapsed(), settings.timeout),
                    }
                }
                (None, None) => continue,
            };
            let mut state = MountState::default();
            // One round decides: a single failure is reported as unhealthy.
            state.apply(outcome, SystemTime::now(), 1, 1);
            views.push(MountView {
                spec: Arc::clone(spec),
                state,
                stuck_since: None,
            });
        }
        round(&views);
        if crate::snapshot::all_healthy(&views) || Instant::now() >= until {
            return views;
        }
        // The last round runs at `until`, so that a mount has all the time given.
        let next = (round_started + WAIT_RETRY).min(until);
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                Some(&tx),
            );
            let checked = Event::Checked {
                id,
                outcome: Box::new(Outcome::failed(Failure::new(Reason::NotMounted, "gone"))),
                stuck_since: None,
            };
            apply(&mut mounts, &mut failed, checked, Some(&tx));
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

    #[tokio::test]
    async fn monitors_configured_mounts_and_publishes() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::default();
        let mut spec = MountSpec::plain(Some("tmp".into()), dir.path().to_path_buf(), &settings);
        spec.placement = crate::config::Placement::Anywhere;
        let mut missing =
            MountSpec::plain(Some("missing".into()), dir.path().join("nope"), &settings);
        missing.placement = crate::config::Placement::Anywhere;
        missing.failure_threshold = 1;
        settings.mounts = vec![spec, missing];
        let shared = Shared::new(Arc::new(settings));
        start(Arc::clone(&shared));
        let mut snapshot = shared.snapshot();
        for _ in 0..200 {
            snapshot = shared.snapshot();
            if snapshot.mounts.len() == 2
                && snapshot
                    .mounts
                    .iter()
                    .all(|m| m.state.health != Health::Unknown)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(snapshot.mounts[0].label(), "tmp");
        assert_eq!(snapshot.mounts[0].state.health, Health::Healthy);
        assert_eq!(snapshot.mounts[1].state.health, Health::Unhealthy);
        assert_eq!(
            snapshot.mounts[1].state.failure.as_ref().unwrap().reason,
            Reason::Missing
        );
    }
}
