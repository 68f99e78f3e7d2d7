//! What the monitor publishes and everyone else reads: plain data. The monitor writes a new
//! [`Snapshot`] whole; the HTTP handlers, `/metrics`, `check`'s report and the watchdog read it
//! through [`Shared`], and take their verdicts from here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::config::{MountSpec, Settings};
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
    /// Checks blocked in the kernel past their deadline (one thread each), over all mounts.
    pub blocked_checks: usize,
    /// A monitor task died: the monitor can no longer be trusted, and `/livez` says so.
    pub failed: Option<String>,
}

impl Snapshot {
    /// The mounts the verdicts over all mounts count: every one but the optional ones.
    pub fn required(&self) -> impl Iterator<Item = &MountView> {
        required(self.mounts.iter().map(Arc::as_ref))
    }

    /// Every required mount is in `health`.
    pub fn all(&self, health: Health) -> bool {
        self.required().all(|m| m.state.health == health)
    }

    /// Live: no required mount is unhealthy (unknown and degraded count as alive).
    pub fn is_live(&self) -> bool {
        self.required().all(|m| m.state.health != Health::Unhealthy)
    }

    /// Ready: every required mount is healthy, and the initial set of mounts is known.
    pub fn is_ready(&self) -> bool {
        self.initialized && self.all(Health::Healthy)
    }
}

/// The mounts of `views` that count in a verdict over all mounts: optional mounts are reported
/// but count in none.
pub fn required<'a>(
    views: impl IntoIterator<Item = &'a MountView>,
) -> impl Iterator<Item = &'a MountView> {
    views.into_iter().filter(|v| !v.spec.optional)
}

/// Every required mount healthy: `check`'s and init-container mode's verdict over one round.
pub fn all_healthy<'a>(views: impl IntoIterator<Item = &'a MountView>) -> bool {
    required(views).all(|v| v.state.health == Health::Healthy)
}

/// A mount's health changed (or it is no longer monitored), as the actors (the watchdog, Docker actions)
/// hear of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountChange {
    pub id: u64,
    pub mount: String,
    /// The path as configured.
    pub path: String,
    /// `Unknown` when the mount is no longer monitored.
    pub health: Health,
    pub failure_count: u32,
    /// Counts in no verdict over all mounts: the watchdog ignores it, Docker actions do not.
    pub optional: bool,
}

/// What the HTTP side reads: the snapshot, the monitor's heartbeat and the actors' status
/// (the watchdog's and the Docker actions').
pub struct Shared {
    snapshot: RwLock<Arc<Snapshot>>,
    started: Instant,
    heartbeat_ms: AtomicU64,
    pub settings: Arc<Settings>,
    pub watchdog: Arc<crate::status::watchdog::Status>,
    pub docker: Arc<crate::status::docker::Status>,
    /// One sender per listener (the watchdog, the Docker actions).
    listeners: Mutex<Vec<mpsc::UnboundedSender<MountChange>>>,
}

impl Shared {
    pub fn new(settings: Arc<Settings>) -> Arc<Shared> {
        Arc::new(Shared {
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            started: Instant::now(),
            heartbeat_ms: AtomicU64::new(0),
            watchdog: Arc::new(crate::status::watchdog::Status::new(&settings.watchdog)),
            docker: Arc::new(crate::status::docker::Status::new(settings.docker_actions)),
            settings,
            listeners: Mutex::new(Vec::new()),
        })
    }

    /// Every change of a mount's health from now on, for one more listener (call before the
    /// monitor starts).
    pub fn changes(&self) -> mpsc::UnboundedReceiver<MountChange> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        rx
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn publish(&self, snapshot: Snapshot) {
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
    }

    /// Where the monitor tells of changes: the listeners [`Shared::changes`] gave out.
    pub(crate) fn change_listeners(&self) -> Vec<mpsc::UnboundedSender<MountChange>> {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn beat(&self) {
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
