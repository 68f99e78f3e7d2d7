//! The render cache: bodies rendered once per snapshot (once a second while a check is stuck)
//! and kept with it, so that a flood of requests costs one rendering.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Bytes;

use super::body::{MountJson, WholeKey};
use crate::snapshot::Snapshot;

/// Bodies rendered from one [`Snapshot`] and kept with it, so that a flood of requests renders
/// each once per snapshot rather than once per request: rendering is many small copies, which
/// cost far more than serving the result (most on musl, whose `memcpy` is slow for short
/// copies). While a check is stuck, its `stuck_seconds` grows with time: the body is then
/// rendered as at a whole number of seconds after the snapshot was first asked for, and kept
/// for that second, so a stuck mount costs one rendering a second, whatever the load.
#[derive(Debug, Default)]
pub(super) struct Rendered {
    /// When the snapshot was first rendered: the time base of `stuck_seconds`.
    epoch: OnceLock<Instant>,
    /// The `mounts` array of `/healthz/*` (the `status` and `timestamp` around it vary).
    pub(super) status_mounts: Kept,
    /// Whole `/healthz/*` bodies, of the second their timestamp names: without the actors
    /// (`/healthz/live`, `/healthz/ready`) and with them (`/healthz/status`), each unhealthy
    /// and healthy.
    pub(super) status_whole: [std::sync::Mutex<Option<(WholeKey, Bytes)>>; 4],
    /// `/metrics` in the 0.0.4 text format and in OpenMetrics.
    pub(super) metrics: [Kept; 2],
    /// The same with the actors' families (watchdog, Docker actions), kept with the mounts'
    /// part and the actors' change counts it was assembled from: every response shares one
    /// body while neither changes, rather than copying megabytes per request.
    pub(super) metrics_with_actors: [std::sync::Mutex<Option<Composed>>; 2],
}

/// `/metrics` with the actors' families, and what it was assembled from.
#[derive(Debug)]
pub(super) struct Composed {
    /// The mounts' part from the render cache.
    pub(super) mounts: Bytes,
    /// The watchdog's and the Docker actions' change counts ([`crate::status::Changes`]).
    pub(super) changes: [u64; 2],
    pub(super) body: Bytes,
}

/// The bodies kept for the latest snapshot the HTTP side served, which it keeps alive until a
/// newer one replaces it (so that a new snapshot can never be taken for the old one).
#[derive(Debug, Default)]
pub(super) struct Cache(std::sync::Mutex<Option<(Arc<Snapshot>, Arc<Rendered>)>>);

impl Cache {
    /// The bodies kept for `snapshot`: new and empty when it is not the one kept so far.
    pub(super) fn of(&self, snapshot: &Arc<Snapshot>) -> Arc<Rendered> {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match kept.as_ref() {
            Some((for_snapshot, rendered)) if Arc::ptr_eq(for_snapshot, snapshot) => {
                Arc::clone(rendered)
            }
            _ => {
                let rendered = Arc::new(Rendered::default());
                *kept = Some((Arc::clone(snapshot), Arc::clone(&rendered)));
                rendered
            }
        }
    }
}

/// One body, and the second (after the epoch) it was rendered for.
#[derive(Debug, Default)]
pub(super) struct Kept(std::sync::Mutex<Option<Arc<Slot>>>);

#[derive(Debug)]
struct Slot {
    second: u64,
    /// Filled once: the requests that come while it renders wait for it, off the workers.
    body: tokio::sync::OnceCell<Bytes>,
}

/// The instant a body asked for at `now` is rendered as of, and the second it is kept for:
/// `epoch` itself while nothing depends on the time, else the latest whole second after it.
pub(super) fn render_instant(epoch: Instant, now: Instant, time_dependent: bool) -> (Instant, u64) {
    if !time_dependent {
        return (epoch, 0);
    }
    let second = now.saturating_duration_since(epoch).as_secs();
    (epoch + std::time::Duration::from_secs(second), second)
}

/// `kept`'s body for `snapshot` now: rendered at most once per snapshot (per second while a
/// check is stuck), on the blocking pool, so that a large one (5 MiB of metrics at 1,000 mounts)
/// never holds up the async workers that answer the probes.
pub(super) async fn rendered(
    bodies: &Rendered,
    snapshot: &Arc<Snapshot>,
    kept: fn(&Rendered) -> &Kept,
    render: impl FnOnce(&Arc<Snapshot>, Instant) -> Bytes + Send + 'static,
) -> Bytes {
    let epoch = *bodies.epoch.get_or_init(Instant::now);
    let stuck = snapshot.mounts.iter().any(|m| m.stuck_since.is_some());
    let (at, second) = render_instant(epoch, Instant::now(), stuck);
    let slot = {
        let mut current = kept(bodies).0.lock().unwrap_or_else(|e| e.into_inner());
        match current.as_ref() {
            // A request that computed its second just before the turn takes the newer body.
            Some(slot) if slot.second >= second => Arc::clone(slot),
            _ => {
                let slot = Arc::new(Slot {
                    second,
                    body: tokio::sync::OnceCell::new(),
                });
                *current = Some(Arc::clone(&slot));
                slot
            }
        }
    };
    slot.body
        .get_or_init(|| async {
            let snapshot = Arc::clone(snapshot);
            match tokio::task::spawn_blocking(move || render(&snapshot, at)).await {
                Ok(body) => body,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // The runtime is shutting down.
                Err(_) => Bytes::new(),
            }
        })
        .await
        .clone()
}

pub(super) fn render_status_mounts(snapshot: &Arc<Snapshot>, at: Instant) -> Bytes {
    let mounts: Vec<MountJson> = snapshot
        .mounts
        .iter()
        .map(|m| MountJson::new(m, at))
        .collect();
    // Serializing plain data into memory cannot fail.
    compact(serde_json::to_vec(&mounts).unwrap_or_default())
}

/// A body to keep, without the spare capacity it grew with (up to as much again: 8 MiB held
/// for 5 MiB of metrics, by every response still being written).
pub(super) fn compact(mut body: Vec<u8>) -> Bytes {
    body.shrink_to_fit();
    body.into()
}
