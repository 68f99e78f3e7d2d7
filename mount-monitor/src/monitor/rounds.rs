//! The one-shot rounds: `check` mode's single round, and the init container's rounds until every
//! required mount is healthy. Each checks every mount at once on the probe pool, and a check
//! still blocked from an earlier round is not started again.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::blocked::{InFlight, finished, no_thread, probe_pool, spawn_probe, timed_out};
use crate::config::{MountSpec, Settings, WAIT_RETRY};
use crate::mountinfo::MountTable;
use crate::outcome::Outcome;
use crate::probe_pool::{Busy, Call};
use crate::snapshot::MountView;
use crate::state::MountState;

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
        super::discovery::real_mounts(&entries)
            .into_iter()
            .map(|entry| Arc::new(super::discovery::spec(entry, settings)))
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
