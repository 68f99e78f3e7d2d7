use super::*;

const DELAY: Duration = Duration::from_secs(5);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The machine, with mounts 1, 2, 3 and 7 seen healthy once at `t0`.
fn machine(delay: Duration, t0: Instant) -> Machine {
    let mut m = Machine::new(delay);
    for id in [1, 2, 3, 7] {
        let name = format!("m{id}");
        assert_eq!(
            m.observe(id, &name, "/mnt", Health::Healthy, 0, t0),
            Reaction::Nothing
        );
    }
    m
}

#[test]
fn nothing_is_triggered_before_arming() {
    let t0 = Instant::now();
    let mut m = machine(DELAY, t0);
    assert_eq!(
        m.observe(1, "movies", "/mnt/movies", Health::Unhealthy, 3, t0),
        Reaction::Nothing
    );
    assert_eq!(m.due(), None);
    assert_eq!(m.begin(), None);
}

#[test]
fn a_mount_unhealthy_before_arming_triggers_once_armed() {
    let t0 = Instant::now();
    let mut m = machine(DELAY, t0);
    m.observe(1, "movies", "/mnt/movies", Health::Unhealthy, 3, t0);
    let Reaction::Pending(trigger) = m.arm() else {
        panic!("pending once armed")
    };
    assert_eq!((trigger.mount.as_str(), trigger.failures), ("movies", 3));
    assert_eq!(
        trigger.due,
        t0 + DELAY,
        "the delay counts from the transition"
    );
    assert_eq!(m.arm(), Reaction::Nothing, "arming twice changes nothing");
}

#[test]
fn a_transition_into_unhealthy_makes_a_restart_pending_after_the_delay() {
    let t0 = Instant::now();
    let mut m = machine(DELAY, t0);
    assert_eq!(m.arm(), Reaction::Nothing);
    let reaction = m.observe(7, "tv", "/mnt/tv", Health::Unhealthy, 5, t0);
    let expected = Trigger {
        id: 7,
        mount: "tv".into(),
        path: "/mnt/tv".into(),
        failures: 5,
        due: t0 + DELAY,
    };
    assert_eq!(reaction, Reaction::Pending(expected.clone()));
    assert_eq!(m.due(), Some(t0 + DELAY));
    assert_eq!(m.begin(), Some(expected));
    assert_eq!(m.due(), None);
    assert_eq!(m.begin(), None, "one restart per trigger");
}

#[test]
fn recovery_of_the_pending_mount_cancels() {
    let t0 = Instant::now();
    let mut m = machine(DELAY, t0);
    m.arm();
    m.observe(1, "movies", "/mnt/movies", Health::Unhealthy, 3, t0);
    assert_eq!(
        m.observe(1, "movies", "/mnt/movies", Health::Healthy, 0, t0 + secs(1)),
        Reaction::Cancelled {
            mount: "movies".into(),
            next: None
        }
    );
    assert_eq!(m.due(), None);
    // Armed again: the next transition triggers anew, its delay from its own time.
    let Reaction::Pending(again) = m.observe(
        1,
        "movies",
        "/mnt/movies",
        Health::Unhealthy,
        3,
        t0 + secs(2),
    ) else {
        panic!("armed again after a cancel")
    };
    assert_eq!(again.due, t0 + secs(2) + DELAY);
}

#[test]
fn other_mounts_failing_while_one_is_pending_are_ignored() {
    let t0 = Instant::now();
    let mut m = machine(DELAY, t0);
    m.arm();
    m.observe(1, "movies", "/mnt/movies", Health::Unhealthy, 3, t0);
    assert_eq!(
        m.observe(2, "tv", "/mnt/tv", Health::Unhealthy, 3, t0 + secs(1)),
        Reaction::Nothing
    );
    assert_eq!(
        m.observe(2, "tv", "/mnt/tv", Health::Healthy, 0, t0 + secs(2)),
        Reaction::Nothing
    );
    assert_eq!(m.begin().map(|t| t.mount), Some("movies".into()));
}

#[test]
fn a_cancel_hands_over_to_a_mount_that_is_still_unhealthy() {
    let t0 = Instant::now();
    let mut m = machine(DELAY, t0);
    m.arm();
    m.observe(1, "movies", "/mnt/movies", Health::Unhealthy, 3, t0);
    m.observe(2, "tv", "/mnt/tv", Health::Unhealthy, 4, t0 + secs(1));
    let Reaction::Cancelled { mount, next } =
        m.observe(1, "movies", "/mnt/movies", Health::Healthy, 0, t0 + secs(2))
    else {
        panic!("cancelled")
    };
    assert_eq!(mount, "movies");
    let next = next.expect("tv is still unhealthy");
    assert_eq!((next.id, next.failures), (2, 4));
    assert_eq!(next.due, t0 + secs(1) + DELAY);
}

#[test]
fn nothing_is_triggered_while_restarting_or_after() {
    let t0 = Instant::now();
    let mut m = machine(Duration::ZERO, t0);
    m.arm();
    m.observe(1, "movies", "/mnt/movies", Health::Unhealthy, 3, t0);
    m.begin();
    assert_eq!(
        m.observe(2, "tv", "/mnt/tv", Health::Unhealthy, 3, t0),
        Reaction::Nothing
    );
    assert_eq!(
        m.observe(1, "movies", "/mnt/movies", Health::Healthy, 0, t0),
        Reaction::Nothing
    );
    m.finish();
    assert_eq!(
        m.observe(3, "music", "/mnt/music", Health::Unhealthy, 3, t0),
        Reaction::Nothing
    );
    assert_eq!(m.due(), None);
}

#[test]
fn a_postponed_restart_is_pending_again_and_can_be_cancelled() {
    let t0 = Instant::now();
    let mut m = machine(Duration::ZERO, t0);
    m.arm();
    m.observe(1, "movies", "/mnt/movies", Health::Unhealthy, 3, t0);
    let trigger = m.begin().unwrap();
    m.postpone(trigger, t0 + secs(60));
    assert_eq!(m.due(), Some(t0 + secs(60)));
    assert!(matches!(
        m.observe(
            1,
            "movies",
            "/mnt/movies",
            Health::Healthy,
            0,
            t0 + secs(10)
        ),
        Reaction::Cancelled { .. }
    ));
}

#[test]
fn a_mount_never_healthy_triggers_nothing_until_it_has_been() {
    let t0 = Instant::now();
    let mut m = Machine::new(DELAY);
    m.arm();
    // Degraded, then unhealthy, from the start: withheld, nothing pending.
    assert_eq!(
        m.observe(1, "movies", "/mnt/movies", Health::Degraded, 1, t0),
        Reaction::Nothing
    );
    assert_eq!(
        m.observe(1, "movies", "/mnt/movies", Health::Unhealthy, 3, t0),
        Reaction::Withheld {
            mount: "movies".into()
        }
    );
    assert_eq!(m.due(), None);
    // Healthy once, then dead: a restart at once, whatever the pod's age.
    m.observe(1, "movies", "/mnt/movies", Health::Healthy, 0, t0 + secs(1));
    let Reaction::Pending(trigger) = m.observe(
        1,
        "movies",
        "/mnt/movies",
        Health::Unhealthy,
        3,
        t0 + secs(4),
    ) else {
        panic!("pending once it was healthy")
    };
    assert_eq!(trigger.path, "/mnt/movies", "the event names the path");
    assert_eq!(trigger.due, t0 + secs(4) + DELAY);
}

#[test]
fn a_never_healthy_mount_before_arming_is_not_pending_once_armed() {
    let t0 = Instant::now();
    let mut m = Machine::new(DELAY);
    m.observe(1, "movies", "/mnt/movies", Health::Unhealthy, 3, t0);
    assert_eq!(m.arm(), Reaction::Nothing);
}

#[test]
fn backoff_doubles_from_initial_up_to_max() {
    let ms = Duration::from_millis;
    let schedule: Vec<Duration> = (0..8).map(|i| backoff(ms(100), secs(10), i)).collect();
    assert_eq!(
        schedule,
        [
            ms(100),
            ms(200),
            ms(400),
            ms(800),
            ms(1600),
            ms(3200),
            ms(6400),
            secs(10)
        ]
    );
    assert_eq!(backoff(ms(100), secs(10), 40), secs(10), "no overflow");
    assert_eq!(backoff(secs(3), secs(3), 0), secs(3));
}

#[test]
fn delete_answers_fall_into_three_classes() {
    use DeleteVerdict::*;
    for (status, verdict) in [
        (200, Done),
        (202, Done),
        (404, Done),
        (409, Done),
        (401, Permanent),
        (403, Permanent),
        (500, Transient),
        (503, Transient),
        (429, Transient),
        (400, Transient),
        (204, Transient),
    ] {
        assert_eq!(classify_delete(status), verdict, "{status}");
    }
}

#[test]
fn young_pods_are_deleted_only_once_old_enough() {
    let now = SystemTime::UNIX_EPOCH + secs(1_000_000);
    let min = secs(300);
    assert_eq!(
        postponed_until(Some(now - secs(60)), now, min),
        Some(now + secs(240))
    );
    assert_eq!(postponed_until(Some(now - secs(300)), now, min), None);
    assert_eq!(postponed_until(Some(now - secs(900)), now, min), None);
    assert_eq!(
        postponed_until(Some(now + secs(30)), now, min),
        Some(now + min),
        "a creation time ahead of the clock counts as now"
    );
    assert_eq!(postponed_until(None, now, min), None, "unknown age");
    assert_eq!(postponed_until(Some(now), now, Duration::ZERO), None, "off");
}
