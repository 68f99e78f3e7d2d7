//! How many checks run, and on what: [`PARALLEL_CHECKS`] slots for the quick ones, one probe
//! pool for all, and the count of checks blocked in the kernel past their deadline that
//! `maxBlockedChecks` caps. A check still blocked at a path is remembered there ([`PathChecks`]),
//! so that no second one starts beside it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::config::{MountSpec, Settings};
use crate::mountinfo::MountTable;
use crate::outcome::{Identity, Outcome};
use crate::probe;
use crate::probe_pool::{Busy, Call, Panicked, ProbePool};
use crate::reason::{Failure, Reason};

/// Checks running at once, over all mounts, each on a thread of the `probe_pool`. A check holds
/// its slot only while it is quick (`SLOW_CHECK`): a slow or hung one gives it back at once, so
/// hung mounts never hold up the checks of the others.
pub const PARALLEL_CHECKS: usize = 8;
pub(super) static CHECK_SLOTS: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(PARALLEL_CHECKS);
/// A healthy local check takes microseconds, a healthy network share milliseconds.
pub(super) const SLOW_CHECK: Duration = Duration::from_millis(100);

/// The threads checks run on: one per slot for the quick ones, plus `maxBlockedChecks` for the
/// slow and blocked ones, at most; fixed by the first settings that ask (a process has one).
pub(super) fn probe_pool(settings: &Settings) -> &'static ProbePool {
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
pub(super) struct InFlight {
    phase: AtomicU8,
    mount_id: AtomicU64,
}

impl InFlight {
    pub(super) fn new() -> Arc<InFlight> {
        Arc::new(InFlight {
            phase: AtomicU8::new(RUNNING),
            mount_id: AtomicU64::new(NOT_LOCATED),
        })
    }

    /// Marks the check as past its deadline, counting its thread as blocked.
    pub(super) fn overdue(&self) {
        if self
            .phase
            .compare_exchange(RUNNING, OVERDUE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            BLOCKED.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn finish(&self) {
        if self.phase.swap(DONE, Ordering::AcqRel) == OVERDUE {
            BLOCKED.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn done(&self) -> bool {
        self.phase.load(Ordering::Acquire) == DONE
    }

    pub(super) fn mount_id(&self) -> Option<u32> {
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
pub(super) struct PathChecks {
    checks: std::sync::Mutex<Vec<Arc<InFlight>>>,
}

impl PathChecks {
    pub(super) fn register(&self, check: &Arc<InFlight>) {
        let mut checks = self.checks.lock().unwrap_or_else(|e| e.into_inner());
        checks.retain(|c| !c.done());
        checks.push(Arc::clone(check));
    }

    /// Checks at this path still running, but for `current`.
    pub(super) fn others_running(&self, current: Option<&Arc<InFlight>>) -> usize {
        let checks = self.checks.lock().unwrap_or_else(|e| e.into_inner());
        checks
            .iter()
            .filter(|c| !c.done() && current.is_none_or(|cur| !Arc::ptr_eq(c, cur)))
            .count()
    }

    pub(super) fn idle(&self) -> bool {
        self.others_running(None) == 0
    }
}

/// Starts the probe on a thread of the pool, once one is free before `wait`.
pub(super) async fn spawn_probe(
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
pub(super) fn no_thread(settings: &Settings, threads: usize) -> Outcome {
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
pub(super) fn timed_out(stuck_for: Duration, timeout: Duration) -> Outcome {
    Outcome::failed(Failure::new(
        Reason::Timeout,
        format!(
            "check has not returned after {:.1}s (timeout {timeout:?})",
            stuck_for.as_secs_f64()
        ),
    ))
}

/// What a check's call ended with: the probe's outcome, or the panic that ended it.
pub(super) fn finished(joined: Result<Outcome, Panicked>) -> Outcome {
    match joined {
        Ok(outcome) => outcome,
        Err(Panicked(message)) => Outcome::failed(Failure::new(
            Reason::Error,
            format!("check crashed: {message}"),
        )),
    }
}
