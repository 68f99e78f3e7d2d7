//! The monitor loop: one task per mount, at most one blocking probe in flight per mount, a single
//! collector that owns the state machines and publishes an immutable [`Snapshot`] for readers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{MountSpec, Settings};
use crate::discovery;
use crate::mountinfo::MountTable;
use crate::probe::{self, Failure, Outcome};
use crate::reason::Reason;
use crate::state::{Health, MountState};

/// One mount as readers see it.
#[derive(Clone, Debug)]
pub struct MountView {
    pub spec: Arc<MountSpec>,
    pub state: MountState,
    /// When the probe still in flight started, if it has overrun its deadline.
    pub stuck_since: Option<Instant>,
}

impl MountView {
    pub fn label(&self) -> String {
        self.spec.label()
    }

    pub fn stuck_for(&self, now: Instant) -> Option<Duration> {
        self.stuck_since
            .map(|since| now.saturating_duration_since(since))
    }
}

/// The monitor's latest word on every mount. Immutable; replaced whole.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub mounts: Vec<Arc<MountView>>,
    /// Every configured mount (or the first discovery round) is in `mounts`. Before that, an
    /// empty list must not read as "all healthy".
    pub initialized: bool,
    /// Response bodies rendered from this snapshot, reused until it is replaced.
    pub rendered: crate::http::Rendered,
}

impl Snapshot {
    pub fn all(&self, health: Health) -> bool {
        self.mounts.iter().all(|m| m.state.health == health)
    }
}

/// A mount's health changed (or it is no longer monitored), as the watchdog hears of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountChange {
    pub id: u64,
    pub mount: String,
    /// `Unknown` when the mount is no longer monitored.
    pub health: Health,
    pub failure_count: u32,
}

/// What the HTTP side reads: the snapshot, the monitor's heartbeat and the watchdog's status.
pub struct Shared {
    snapshot: RwLock<Arc<Snapshot>>,
    started: Instant,
    heartbeat_ms: AtomicU64,
    pub settings: Arc<Settings>,
    pub watchdog: crate::watchdog::Status,
    changes: OnceLock<mpsc::UnboundedSender<MountChange>>,
}

impl Shared {
    pub fn new(settings: Arc<Settings>) -> Arc<Shared> {
        Arc::new(Shared {
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            started: Instant::now(),
            heartbeat_ms: AtomicU64::new(0),
            watchdog: crate::watchdog::Status::new(&settings.watchdog),
            settings,
            changes: OnceLock::new(),
        })
    }

    /// Every change of a mount's health from now on (call before [`start`]); one listener.
    pub fn changes(&self) -> mpsc::UnboundedReceiver<MountChange> {
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = self.changes.set(tx);
        rx
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn publish(&self, snapshot: Snapshot) {
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
    }

    fn beat(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.heartbeat_ms.store(ms, Ordering::Relaxed);
    }

    /// How long ago the monitor loop last ticked.
    pub fn heartbeat_age(&self) -> Duration {
        let last = Duration::from_millis(self.heartbeat_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

/// How often the collector proves it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

enum Event {
    /// Every mount known at start has been added.
    Initialized,
    Added(u64, Arc<MountSpec>),
    Removed(u64),
    Checked {
        id: u64,
        result: Result<(), Failure>,
        stats: Option<probe::Stats>,
        duration: Option<Duration>,
        stuck_since: Option<Instant>,
    },
}

/// Starts the monitor on the current tokio runtime. Returns at once; the loop runs until the
/// runtime stops.
pub fn start(shared: Arc<Shared>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let table = Arc::new(MountTable::new());
    let settings = Arc::clone(&shared.settings);
    tokio::spawn(collect(Arc::clone(&shared), rx));
    if settings.mounts.is_empty() {
        tokio::spawn(discover(settings, table, tx));
    } else {
        for (id, spec) in settings.mounts.iter().enumerate() {
            let spec = Arc::new(spec.clone());
            let _ = tx.send(Event::Added(id as u64, Arc::clone(&spec)));
            tokio::spawn(watch(
                id as u64,
                spec,
                Arc::clone(&settings),
                Arc::clone(&table),
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
    let mut published: Option<Instant> = None;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = rx.recv() => {
                let Some(event) = event else { return };
                initialized |= apply(&mut mounts, event, shared.changes.get());
                let spacing = PUBLISH_SPACING_PER_MOUNT * mounts.len() as u32;
                if let Some(next) = published.map(|at| at + spacing)
                    && Instant::now() < next
                {
                    tokio::time::sleep_until(next.into()).await;
                }
                // Drain what else is queued so a burst publishes one snapshot.
                while let Ok(event) = rx.try_recv() {
                    initialized |= apply(&mut mounts, event, shared.changes.get());
                }
                shared.publish(Snapshot {
                    mounts: mounts.iter().map(|(_, v)| Arc::clone(v)).collect(),
                    initialized,
                    ..Default::default()
                });
                published = Some(Instant::now());
            }
            _ = heartbeat.tick() => shared.beat(),
        }
    }
}

/// Applies one event; true when it marks the initial set of mounts as complete. Changes of
/// health go to `changes`.
fn apply(
    mounts: &mut Vec<(u64, Arc<MountView>)>,
    event: Event,
    changes: Option<&mpsc::UnboundedSender<MountChange>>,
) -> bool {
    let notify = |id: u64, view: &MountView| {
        if let Some(changes) = changes {
            let _ = changes.send(MountChange {
                id,
                mount: view.label(),
                health: view.state.health,
                failure_count: view.state.failure_count,
            });
        }
    };
    match event {
        Event::Initialized => return true,
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
            result,
            stats,
            duration,
            stuck_since,
        } => {
            let Ok(at) = mounts.binary_search_by_key(&id, |(i, _)| *i) else {
                return false;
            };
            let view = Arc::make_mut(&mut mounts[at].1);
            let spec = Arc::clone(&view.spec);
            let reason = result.as_ref().err().map(|f| f.reason);
            let detail = result.as_ref().err().map(|f| f.detail.clone());
            if let Some(t) = view.state.record(
                result,
                SystemTime::now(),
                spec.failure_threshold,
                spec.success_threshold,
            ) {
                log_transition(&spec, t.from, t.to, reason, detail.as_deref());
                notify(id, view);
            } else if let Some(reason) = reason {
                tracing::debug!(mount = %spec.label(), path = %spec.path.display(), reason = reason.code(), error = detail.as_deref().unwrap_or(""), "check failed");
            }
            view.state.measured(stats, duration);
            view.stuck_since = stuck_since;
        }
    }
    false
}

fn log_transition(
    spec: &MountSpec,
    from: Health,
    to: Health,
    reason: Option<Reason>,
    detail: Option<&str>,
) {
    let mount = spec.label();
    let path = spec.path.display();
    let reason = reason.map(Reason::code).unwrap_or("ok");
    let error = detail.unwrap_or("");
    match to {
        Health::Healthy => {
            tracing::info!(%mount, %path, %from, %to, reason, "mount is healthy")
        }
        Health::Degraded => {
            tracing::warn!(%mount, %path, %from, %to, reason, error, "mount check failed")
        }
        _ => tracing::error!(%mount, %path, %from, %to, reason, error, "mount is unhealthy"),
    }
}

/// The interval with ±10% jitter, so many monitors (and many mounts) do not check in lockstep.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + fastrand::f64() * 0.2)
}

/// Checks running at once, over all mounts. Each takes a blocking thread, and the runtime keeps
/// every thread it ever started while it reuses them in turn: 50 mounts checked together at start
/// used to leave 35–50 threads behind for good. A check that overruns its deadline gives its slot
/// back, so hung mounts never hold up the others.
const PARALLEL_CHECKS: usize = 8;
static CHECK_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(PARALLEL_CHECKS);

/// Checks one mount on its interval, forever. A probe that overruns its deadline keeps its
/// thread; no second probe of this mount starts until it returns.
async fn watch(
    id: u64,
    spec: Arc<MountSpec>,
    settings: Arc<Settings>,
    table: Arc<MountTable>,
    tx: mpsc::UnboundedSender<Event>,
) {
    let mut stuck: Option<(JoinHandle<Outcome>, Instant)> = None;
    loop {
        let (mut handle, started, slot) = match stuck.take() {
            Some((in_flight, started)) => (in_flight, started, None),
            None => {
                // The deadline starts once the check runs, not while it waits for a slot.
                let slot = CHECK_SLOTS.acquire().await.ok();
                (spawn_probe(&spec, &table), Instant::now(), slot)
            }
        };
        let deadline = tokio::time::Instant::from_std(started + settings.timeout);
        let joined = tokio::time::timeout_at(deadline, &mut handle).await;
        drop(slot);
        let event = match joined {
            Ok(joined) => finished(id, joined),
            Err(_) => {
                let stuck_for = started.elapsed();
                stuck = Some((handle, started));
                Event::Checked {
                    id,
                    result: Err(Failure::new(
                        Reason::Timeout,
                        format!(
                            "check has not returned after {:.1}s (timeout {:?})",
                            stuck_for.as_secs_f64(),
                            settings.timeout
                        ),
                    )),
                    stats: None,
                    duration: None,
                    stuck_since: Some(started),
                }
            }
        };
        if tx.send(event).is_err() {
            return;
        }
        let next = tokio::time::sleep(jittered(settings.check_interval));
        tokio::pin!(next);
        if let Some((handle, _)) = stuck.as_mut() {
            // Report the stuck probe's own result the moment it returns.
            tokio::select! {
                joined = handle => {
                    stuck = None;
                    if tx.send(finished(id, joined)).is_err() {
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

fn spawn_probe(spec: &Arc<MountSpec>, table: &Arc<MountTable>) -> JoinHandle<Outcome> {
    let spec = Arc::clone(spec);
    let table = Arc::clone(table);
    tokio::task::spawn_blocking(move || probe::probe(&spec, &table))
}

fn finished(id: u64, joined: Result<Outcome, tokio::task::JoinError>) -> Event {
    match joined {
        Ok(outcome) => Event::Checked {
            id,
            result: outcome.result,
            stats: outcome.stats,
            duration: Some(outcome.duration),
            stuck_since: None,
        },
        Err(e) => Event::Checked {
            id,
            result: Err(Failure::new(Reason::Error, format!("check crashed: {e}"))),
            stats: None,
            duration: None,
            stuck_since: None,
        },
    }
}

/// Discovery mode: every real mount, re-read each interval; new mounts get a watcher, vanished
/// ones are dropped.
async fn discover(
    settings: Arc<Settings>,
    table: Arc<MountTable>,
    tx: mpsc::UnboundedSender<Event>,
) {
    let mut watched: HashMap<PathBuf, (u64, tokio::task::AbortHandle)> = HashMap::new();
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
        let current: Vec<PathBuf> = discovery::real_mount_points(&entries);
        let present: std::collections::HashSet<&Path> =
            current.iter().map(PathBuf::as_path).collect();
        let gone: Vec<PathBuf> = watched
            .keys()
            .filter(|p| !present.contains(p.as_path()))
            .cloned()
            .collect();
        for path in gone {
            if let Some((id, task)) = watched.remove(&path) {
                task.abort();
                tracing::info!(mount = %path.display(), path = %path.display(), "mount disappeared; no longer monitored");
                if tx.send(Event::Removed(id)).is_err() {
                    return;
                }
            }
        }
        for path in current {
            if watched.contains_key(&path) {
                continue;
            }
            let id = next_id;
            next_id += 1;
            let spec = Arc::new(MountSpec::plain(None, path.clone(), &settings));
            tracing::info!(mount = %path.display(), path = %path.display(), "monitoring discovered mount");
            if tx.send(Event::Added(id, Arc::clone(&spec))).is_err() {
                return;
            }
            let task = tokio::spawn(watch(
                id,
                spec,
                Arc::clone(&settings),
                Arc::clone(&table),
                tx.clone(),
            ));
            watched.insert(path, (id, task.abort_handle()));
        }
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
    let table = Arc::new(MountTable::new());
    let specs: Vec<MountSpec> = if settings.mounts.is_empty() {
        let t = Arc::clone(&table);
        let entries = tokio::task::spawn_blocking(move || t.current())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        discovery::real_mount_points(&entries)
            .into_iter()
            .map(|path| MountSpec::plain(None, path, settings))
            .collect()
    } else {
        settings.mounts.clone()
    };
    let started = Instant::now();
    let handles: Vec<_> = specs
        .into_iter()
        .map(|spec| {
            let spec = Arc::new(spec);
            (Arc::clone(&spec), spawn_probe(&spec, &table))
        })
        .collect();
    let deadline = tokio::time::Instant::from_std(started + settings.timeout);
    let mut views = Vec::with_capacity(handles.len());
    for (spec, handle) in handles {
        let (result, stats, duration) = match tokio::time::timeout_at(deadline, handle).await {
            Ok(Ok(outcome)) => (outcome.result, outcome.stats, Some(outcome.duration)),
            Ok(Err(e)) => (
                Err(Failure::new(Reason::Error, format!("check crashed: {e}"))),
                None,
                None,
            ),
            Err(_) => (
                Err(Failure::new(
                    Reason::Timeout,
                    format!("check did not return within {:?}", settings.timeout),
                )),
                None,
                None,
            ),
        };
        let mut state = MountState::default();
        // One round decides: a single failure is reported as unhealthy.
        state.record(result, SystemTime::now(), 1, 1);
        state.measured(stats, duration);
        views.push(MountView {
            spec,
            state,
            stuck_since: None,
        });
    }
    views
}

#[cfg(test)]
mod tests {
    use super::*;

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
        spec.require_mountpoint = false;
        let mut missing =
            MountSpec::plain(Some("missing".into()), dir.path().join("nope"), &settings);
        missing.require_mountpoint = false;
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
