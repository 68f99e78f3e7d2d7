//! What the actors publish: plain data that the snapshot's [`Shared`](crate::snapshot::Shared)
//! holds, the actors write and `/healthz/status` and `/metrics` read. It lives apart from the
//! actors so that the serving side depends on this data, never on the runners (the Kubernetes
//! client, the Docker Engine).

pub mod docker;
pub mod watchdog;

use std::sync::atomic::{AtomicU64, Ordering};

/// How many times an actor's published state changed: readers that keep what they rendered from
/// it (`/healthz/status`, `/metrics`) compare this number instead of copying and comparing the
/// state on every request. Bumped after each change, under the lock that guards it, so a reader
/// that sees a number then reads a state at least that new; a body rendered from a newer state
/// than its number is rendered again at the next request, never served stale.
#[derive(Debug, Default)]
pub struct Changes(AtomicU64);

impl Changes {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    pub(crate) fn bump(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}
