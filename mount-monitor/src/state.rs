//! The per-mount state machine: unknown → healthy | degraded | unhealthy.

use std::time::{Duration, SystemTime};

use crate::outcome::Stats;
use crate::reason::Failure;
use crate::reason::Reason;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Unknown,
    Healthy,
    Degraded,
    Unhealthy,
}

impl Health {
    pub const ALL: [Health; 4] = [
        Health::Unknown,
        Health::Healthy,
        Health::Degraded,
        Health::Unhealthy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unhealthy => "unhealthy",
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A time as every JSON body shows it: RFC 3339, UTC, whole seconds.
pub fn timestamp(at: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// A change of health, logged once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: Health,
    pub to: Health,
    pub reason: Option<Reason>,
}

impl Transition {
    /// What caused the change, in debrid-mount-monitor's words (its `trigger` log field).
    pub fn trigger(&self) -> &'static str {
        match (self.from, self.to, self.reason) {
            (Health::Unhealthy, Health::Healthy, _) => "recovered",
            (_, _, None) => "check_passed",
            (_, _, Some(_)) => "check_failed",
        }
    }
}

/// Everything known about one mount, as the monitor keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct MountState {
    pub health: Health,
    /// Consecutive failures; reset when the mount turns healthy.
    pub failure_count: u32,
    success_streak: u32,
    pub last_check: Option<SystemTime>,
    pub last_success: Option<SystemTime>,
    /// The latest failure while the mount is not healthy.
    pub failure: Option<Failure>,
    pub stats: Option<Stats>,
    /// Whether `stats` come from the latest check, rather than from an earlier one: a mount
    /// that is gone or hangs has no current figures.
    pub stats_current: bool,
    pub check_duration: Option<Duration>,
    /// When the counters below started: when the mount was added (OpenMetrics' `_created`).
    pub since: SystemTime,
    /// Checks made, and failures by reason, since `since` (for metrics).
    pub checks_total: u64,
    pub failures_total: std::collections::BTreeMap<Reason, u64>,
    /// How long the checks that returned took (one still stuck is observed when it returns).
    pub durations: DurationHistogram,
}

/// Upper bounds, in seconds, of the check-duration histogram: a tmpfs answers in ~100µs, a
/// healthy network share in milliseconds, a dying one in seconds.
pub const DURATION_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The bounds `/metrics` shows by default (a subset of [`DURATION_BUCKETS`], so that one set of
/// counts serves both): under 1 ms a local or cached filesystem, under 100 ms a share answering
/// in a few network round trips, under 1 s a slow one, above that one close to the timeout.
pub const BASIC_DURATION_BUCKETS: [f64; 3] = [0.001, 0.1, 1.0];

/// Check durations as a Prometheus histogram keeps them, as plain data so that a snapshot is a
/// value (cloning it copies, never shares, the counts).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DurationHistogram {
    /// Observations per bucket of [`DURATION_BUCKETS`] (not cumulative); the last one counts
    /// those above every bound.
    pub counts: [u64; DURATION_BUCKETS.len() + 1],
    pub sum_seconds: f64,
    pub count: u64,
}

impl DurationHistogram {
    pub fn observe(&mut self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let bucket = DURATION_BUCKETS.partition_point(|&bound| bound < seconds);
        self.counts[bucket] += 1;
        self.sum_seconds += seconds;
        self.count += 1;
    }

    /// (upper bound, observations in that bucket) for every finite bound.
    pub fn buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        DURATION_BUCKETS.iter().copied().zip(self.counts)
    }

    /// (upper bound, observations above the previous bound up to this one) for each of
    /// `bounds`, which must be among [`DURATION_BUCKETS`] in ascending order.
    pub fn coarse_buckets(&self, bounds: &[f64]) -> Vec<(f64, u64)> {
        let mut fine = self.buckets().peekable();
        bounds
            .iter()
            .map(|&bound| {
                let mut count = 0;
                while let Some((_, n)) = fine.next_if(|&(upper, _)| upper <= bound) {
                    count += n;
                }
                (bound, count)
            })
            .collect()
    }
}

impl Default for MountState {
    fn default() -> Self {
        MountState {
            health: Health::Unknown,
            failure_count: 0,
            success_streak: 0,
            last_check: None,
            last_success: None,
            failure: None,
            stats: None,
            stats_current: false,
            check_duration: None,
            since: SystemTime::now(),
            checks_total: 0,
            failures_total: Default::default(),
            durations: DurationHistogram::default(),
        }
    }
}

impl MountState {
    /// Applies one check: its verdict, and what it measured.
    pub fn apply(
        &mut self,
        outcome: crate::outcome::Outcome,
        at: SystemTime,
        failure_threshold: u32,
        success_threshold: u32,
    ) -> Option<Transition> {
        let transition = self.record(outcome.result, at, failure_threshold, success_threshold);
        self.measured(outcome.stats, outcome.duration);
        transition
    }

    /// Applies one check result. `failure_threshold` consecutive failures make the mount
    /// unhealthy, fewer degraded; `success_threshold` consecutive successes make it healthy
    /// again (the first success after start always does).
    pub fn record(
        &mut self,
        result: Result<(), Failure>,
        at: SystemTime,
        failure_threshold: u32,
        success_threshold: u32,
    ) -> Option<Transition> {
        let from = self.health;
        self.last_check = Some(at);
        self.checks_total += 1;
        let reason = match result {
            Ok(()) => {
                self.last_success = Some(at);
                self.success_streak = self.success_streak.saturating_add(1);
                if from == Health::Unknown
                    || from == Health::Healthy
                    || self.success_streak >= success_threshold
                {
                    self.health = Health::Healthy;
                    self.failure_count = 0;
                    self.failure = None;
                }
                None
            }
            Err(failure) => {
                self.success_streak = 0;
                self.failure_count = self.failure_count.saturating_add(1);
                *self.failures_total.entry(failure.reason).or_default() += 1;
                self.health = if self.failure_count >= failure_threshold {
                    Health::Unhealthy
                } else {
                    Health::Degraded
                };
                let reason = failure.reason;
                self.failure = Some(failure);
                Some(reason)
            }
        };
        (from != self.health).then_some(Transition {
            from,
            to: self.health,
            reason,
        })
    }

    /// Keeps what a check measured besides its verdict: the statfs figures (the last known ones
    /// stay for the JSON when this check got none) and, when the check returned, its duration.
    pub fn measured(&mut self, stats: Option<Stats>, duration: Option<Duration>) {
        self.stats_current = stats.is_some();
        if stats.is_some() {
            self.stats = stats;
        }
        if let Some(duration) = duration {
            self.check_duration = Some(duration);
            self.durations.observe(duration);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail() -> Result<(), Failure> {
        Err(Failure::new(Reason::NotMounted, "gone"))
    }

    fn now() -> SystemTime {
        SystemTime::now()
    }

    #[test]
    fn first_success_is_healthy() {
        let mut s = MountState::default();
        let t = s.record(Ok(()), now(), 3, 1).unwrap();
        assert_eq!((t.from, t.to), (Health::Unknown, Health::Healthy));
        assert_eq!(
            s.record(Ok(()), now(), 3, 1),
            None,
            "no repeated transition"
        );
    }

    #[test]
    fn failures_degrade_then_make_unhealthy() {
        let mut s = MountState::default();
        s.record(Ok(()), now(), 3, 1);
        let t = s.record(fail(), now(), 3, 1).unwrap();
        assert_eq!(
            (t.to, t.reason),
            (Health::Degraded, Some(Reason::NotMounted))
        );
        assert_eq!(s.record(fail(), now(), 3, 1), None);
        assert_eq!(s.failure_count, 2);
        assert_eq!(s.record(fail(), now(), 3, 1).unwrap().to, Health::Unhealthy);
        assert_eq!(s.failure_count, 3);
        assert_eq!(s.failure.as_ref().unwrap().detail, "gone");
        assert_eq!(s.failures_total[&Reason::NotMounted], 3);
    }

    #[test]
    fn triggers_name_the_cause() {
        let mut s = MountState::default();
        assert_eq!(
            s.record(Ok(()), now(), 2, 1).unwrap().trigger(),
            "check_passed"
        );
        assert_eq!(
            s.record(fail(), now(), 2, 1).unwrap().trigger(),
            "check_failed"
        );
        assert_eq!(
            s.record(Ok(()), now(), 2, 1).unwrap().trigger(),
            "check_passed"
        );
        s.record(fail(), now(), 2, 1);
        assert_eq!(
            s.record(fail(), now(), 2, 1).unwrap().trigger(),
            "check_failed"
        );
        assert_eq!(
            s.record(Ok(()), now(), 2, 1).unwrap().trigger(),
            "recovered"
        );
    }

    #[test]
    fn threshold_one_goes_straight_to_unhealthy() {
        let mut s = MountState::default();
        assert_eq!(s.record(fail(), now(), 1, 1).unwrap().to, Health::Unhealthy);
    }

    #[test]
    fn one_success_resets() {
        let mut s = MountState::default();
        for _ in 0..5 {
            s.record(fail(), now(), 3, 1);
        }
        assert_eq!(s.record(Ok(()), now(), 3, 1).unwrap().to, Health::Healthy);
        assert_eq!(s.failure_count, 0);
        assert!(s.failure.is_none());
    }

    #[test]
    fn durations_land_in_their_buckets() {
        let mut s = MountState::default();
        s.measured(None, Some(Duration::from_micros(100)));
        s.measured(None, Some(Duration::from_micros(101)));
        s.measured(None, Some(Duration::from_secs(30)));
        let h = &s.durations;
        assert_eq!((h.counts[0], h.counts[1]), (1, 1), "a bound is inclusive");
        assert_eq!(h.counts[DURATION_BUCKETS.len()], 1, "above every bound");
        assert_eq!(h.count, 3);
        assert!((h.sum_seconds - 30.000201).abs() < 1e-9);
        assert_eq!(s.check_duration, Some(Duration::from_secs(30)));
    }

    #[test]
    fn coarse_buckets_add_up_the_fine_ones() {
        for bound in BASIC_DURATION_BUCKETS {
            assert!(
                DURATION_BUCKETS.contains(&bound),
                "{bound} is not a fine bound"
            );
        }
        let mut h = DurationHistogram::default();
        for micros in [50, 1_000, 1_001, 20_000, 100_000, 700_000, 3_000_000] {
            h.observe(Duration::from_micros(micros));
        }
        assert_eq!(
            h.coarse_buckets(&BASIC_DURATION_BUCKETS),
            [(0.001, 2), (0.1, 3), (1.0, 1)],
            "the one above every bound is only in the count"
        );
        assert_eq!(h.count, 7);
    }

    #[test]
    fn stats_are_current_only_when_the_latest_check_got_them() {
        let mut s = MountState::default();
        s.measured(Some(Stats::default()), Some(Duration::from_millis(1)));
        assert!(s.stats_current);
        // A check that timed out: no figures, no duration; the last known ones stay.
        s.measured(None, None);
        assert!(!s.stats_current);
        assert!(s.stats.is_some());
        assert_eq!(s.durations.count, 1);
    }

    #[test]
    fn success_threshold_delays_recovery() {
        let mut s = MountState::default();
        for _ in 0..3 {
            s.record(fail(), now(), 3, 2);
        }
        assert_eq!(s.record(Ok(()), now(), 3, 2), None);
        assert_eq!(s.health, Health::Unhealthy);
        // A failure in between restarts the count.
        s.record(fail(), now(), 3, 2);
        assert_eq!(s.record(Ok(()), now(), 3, 2), None);
        assert_eq!(s.record(Ok(()), now(), 3, 2).unwrap().to, Health::Healthy);
    }
}
