//! The monitor loop: one task per mount, at most one blocking probe in flight per mount, a single
//! collector that owns the state machines and publishes an immutable
//! [`Snapshot`](crate::snapshot::Snapshot) for readers.
//!
//! `collector` owns the state machines and publishes; `task` checks one mount on its
//! interval; `blocked` bounds the checks (the slots, the probe pool, the count of checks
//! blocked in the kernel); `discovery` finds the mounts when none are configured; `rounds`
//! are the one-shot rounds of `check` and the init container.

mod blocked;
mod collector;
mod discovery;
mod rounds;
mod task;

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::config::MountSpec;
use crate::mountinfo::MountTable;
use crate::outcome::Outcome;
use crate::snapshot::Shared;
use blocked::PathChecks;
use task::Task;

pub use blocked::{PARALLEL_CHECKS, blocked_checks};
pub use rounds::{check_once, check_until_healthy};

/// What the mounts' tasks (and discovery) tell the collector.
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
    blocked::probe_pool(&shared.settings);
    let (tx, rx) = mpsc::unbounded_channel();
    let table = Arc::new(MountTable::new());
    let settings = Arc::clone(&shared.settings);
    tokio::spawn(collector::collect(Arc::clone(&shared), rx));
    // A healthy mount is checked again the moment the mount table changes (an unmount is
    // seen at once, not at the next interval).
    tokio::spawn(Arc::clone(&table).watch());
    if settings.mounts.is_empty() {
        let failed = tx.clone();
        let discovery = tokio::spawn(discovery::discover(settings, table, tx));
        tokio::spawn(async move {
            if let Err(e) = discovery.await
                && e.is_panic()
            {
                let message = format!("discovery crashed: {}", task::panic_message(e));
                tracing::error!(error = %message, "the monitor is broken; /livez fails");
                let _ = failed.send(Event::Failed(message));
            }
        });
    } else {
        for (id, spec) in settings.mounts.iter().enumerate() {
            let spec = Arc::new(spec.clone());
            let _ = tx.send(Event::Added(id as u64, Arc::clone(&spec)));
            let task = Task {
                id: id as u64,
                spec,
                settings: Arc::clone(&settings),
                table: Arc::clone(&table),
                history: Arc::new(PathChecks::default()),
                tx: tx.clone(),
            };
            tokio::spawn(task.supervise());
        }
        let _ = tx.send(Event::Initialized);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::config::Settings;
    use crate::reason::Reason;
    use crate::state::Health;
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
