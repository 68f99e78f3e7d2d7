use super::*;

fn labels<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
    move |key| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn container(id: &str, running: bool, pairs: &[(&str, &str)]) -> Container {
    Container {
        id: id.to_owned(),
        name: format!("/{id}"),
        running,
        policy: Policy::from_labels(labels(pairs)),
    }
}

fn health(pairs: &[(&str, Health)]) -> HashMap<String, Health> {
    pairs.iter().map(|(m, h)| ((*m).to_owned(), *h)).collect()
}

/// Plans a round and reports every step as done; returns the steps as `action name`.
fn round(
    planner: &mut Planner,
    containers: &[Container],
    mounts: &[(&str, Health)],
    now: Instant,
) -> Vec<String> {
    let steps = planner.plan(containers, &health(mounts), now);
    for step in &steps {
        planner.finished(step, Outcome::Done, now);
    }
    steps
        .iter()
        .map(|s| {
            let held = if s.held { " (held)" } else { "" };
            format!("{} {}{held}", s.action.as_str(), s.container)
        })
        .collect()
}

use Health::{Degraded, Healthy, Unhealthy, Unknown};

#[test]
fn labels_are_read_with_their_defaults_and_bad_values_named() {
    let policy = Policy::from_labels(labels(&[(DEPENDS_ON, " media, ,music ")])).unwrap();
    assert_eq!(policy.mounts, ["media", "music"]);
    assert_eq!(
        (policy.on_failure, policy.on_recovery),
        (OnFailure::Stop, OnRecovery::Start)
    );
    let provider = Policy::from_labels(labels(&[
        (DEPENDS_ON, "media"),
        (ON_FAILURE, "restart"),
        (ON_RECOVERY, "none"),
    ]))
    .unwrap();
    assert_eq!(
        (provider.on_failure, provider.on_recovery),
        (OnFailure::Restart, OnRecovery::Nothing)
    );
    assert_eq!(
        Policy::from_labels(labels(&[(DEPENDS_ON, " , ")])).unwrap_err(),
        "label mount-monitor.depends-on names no mount; set it to the mount names it needs, comma-separated"
    );
    assert_eq!(
        Policy::from_labels(labels(&[(DEPENDS_ON, "media"), (ON_FAILURE, "kill")])).unwrap_err(),
        "label mount-monitor.on-failure=\"kill\" is not stop, restart or none"
    );
    assert_eq!(
        Policy::from_labels(labels(&[(DEPENDS_ON, "media"), (ON_RECOVERY, "stop")])).unwrap_err(),
        "label mount-monitor.on-recovery=\"stop\" is not start, restart or none"
    );
}

#[test]
fn backoff_doubles_from_one_second_to_thirty() {
    let waits: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
    assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
}

#[test]
fn an_application_is_stopped_while_its_mount_is_dead_and_started_once_it_is_back() {
    let mut planner = Planner::default();
    let t = Instant::now();
    let app = |running| [container("app", running, &[(DEPENDS_ON, "media")])];
    assert!(round(&mut planner, &app(true), &[("media", Unknown)], t).is_empty());
    assert!(round(&mut planner, &app(true), &[("media", Healthy)], t).is_empty());
    assert_eq!(
        round(&mut planner, &app(true), &[("media", Unhealthy)], t),
        ["stop app"]
    );
    assert!(planner.stopped_by_us("app"));
    // Stopped: nothing more, whatever the number of rounds.
    assert!(round(&mut planner, &app(false), &[("media", Unhealthy)], t).is_empty());
    // Started by someone while the mount is still dead: stopped again.
    assert_eq!(
        round(&mut planner, &app(true), &[("media", Unhealthy)], t),
        ["stop app"]
    );
    assert_eq!(
        round(&mut planner, &app(false), &[("media", Degraded)], t),
        ["start app"]
    );
    assert!(!planner.stopped_by_us("app"));
    assert!(round(&mut planner, &app(true), &[("media", Healthy)], t).is_empty());
}

#[test]
fn a_container_the_user_stopped_stays_stopped() {
    let mut planner = Planner::default();
    let t = Instant::now();
    let app = [container("app", false, &[(DEPENDS_ON, "media")])];
    assert!(round(&mut planner, &app, &[("media", Unhealthy)], t).is_empty());
    assert!(round(&mut planner, &app, &[("media", Healthy)], t).is_empty());
    // The same for a provider with on-failure=restart.
    let provider = [container(
        "rclone",
        false,
        &[(DEPENDS_ON, "media"), (ON_FAILURE, "restart")],
    )];
    assert!(round(&mut planner, &provider, &[("media", Unhealthy)], t).is_empty());
}

#[test]
fn only_containers_of_the_failing_mount_are_touched_and_unknown_mounts_decide_nothing() {
    let mut planner = Planner::default();
    let t = Instant::now();
    let containers = [
        container("media-app", true, &[(DEPENDS_ON, "media")]),
        container("music-app", true, &[(DEPENDS_ON, "music")]),
        container("both", true, &[(DEPENDS_ON, "music,media")]),
        container("unlisted", true, &[(DEPENDS_ON, "photos")]),
        container(
            "patient",
            true,
            &[(DEPENDS_ON, "media"), (ON_FAILURE, "none")],
        ),
    ];
    let steps = round(
        &mut planner,
        &containers,
        &[("media", Unhealthy), ("music", Healthy)],
        t,
    );
    assert_eq!(steps, ["stop media-app", "stop both"]);
}

#[test]
fn a_provider_is_restarted_then_held_until_its_mount_was_healthy_or_five_minutes_passed() {
    let mut planner = Planner::default();
    let t = Instant::now();
    let rclone = [container(
        "rclone",
        true,
        &[
            (DEPENDS_ON, "media"),
            (ON_FAILURE, "restart"),
            (ON_RECOVERY, "none"),
        ],
    )];
    let dead = [("media", Unhealthy)];
    assert_eq!(round(&mut planner, &rclone, &dead, t), ["restart rclone"]);
    // Still dead: held, counted once.
    let later = t + Duration::from_secs(60);
    assert_eq!(
        round(&mut planner, &rclone, &dead, later),
        ["restart rclone (held)"]
    );
    assert!(round(&mut planner, &rclone, &dead, later).is_empty());
    // Five minutes on: again.
    let much_later = t + RESTART_HOLD + Duration::from_secs(1);
    assert_eq!(
        round(&mut planner, &rclone, &dead, much_later),
        ["restart rclone"]
    );
    // Healthy once: the next failure restarts at once.
    let t2 = much_later + Duration::from_secs(10);
    assert!(round(&mut planner, &rclone, &[("media", Healthy)], t2).is_empty());
    assert_eq!(round(&mut planner, &rclone, &dead, t2), ["restart rclone"]);
}

#[test]
fn on_recovery_restart_restarts_a_running_container_once_per_recovery() {
    let mut planner = Planner::default();
    let t = Instant::now();
    let app = [container(
        "app",
        true,
        &[
            (DEPENDS_ON, "media"),
            (ON_FAILURE, "none"),
            (ON_RECOVERY, "restart"),
        ],
    )];
    assert!(round(&mut planner, &app, &[("media", Healthy)], t).is_empty());
    assert!(round(&mut planner, &app, &[("media", Unhealthy)], t).is_empty());
    assert_eq!(
        round(&mut planner, &app, &[("media", Healthy)], t),
        ["restart app"]
    );
    assert!(round(&mut planner, &app, &[("media", Healthy)], t).is_empty());
}

#[test]
fn a_failed_call_waits_for_its_backoff_and_is_decided_again() {
    let mut planner = Planner::default();
    let t = Instant::now();
    let app = [container("app", true, &[(DEPENDS_ON, "media")])];
    let dead = health(&[("media", Unhealthy)]);
    let steps = planner.plan(&app, &dead, t);
    assert_eq!(steps.len(), 1);
    planner.finished(&steps[0], Outcome::Failed, t);
    assert!(
        planner
            .plan(&app, &dead, t + Duration::from_millis(500))
            .is_empty()
    );
    let steps = planner.plan(&app, &dead, t + Duration::from_secs(1));
    assert_eq!(steps.len(), 1);
    planner.finished(&steps[0], Outcome::Failed, t + Duration::from_secs(1));
    assert!(
        planner
            .plan(&app, &dead, t + Duration::from_millis(2500))
            .is_empty()
    );
    // The mount came back meanwhile: nothing was stopped, so nothing is started.
    assert!(
        planner
            .plan(
                &app,
                &health(&[("media", Healthy)]),
                t + Duration::from_secs(4)
            )
            .is_empty()
    );
}

#[test]
fn a_stop_found_done_already_is_not_ours_to_undo() {
    let mut planner = Planner::default();
    let t = Instant::now();
    let app = [container("app", true, &[(DEPENDS_ON, "media")])];
    let steps = planner.plan(&app, &health(&[("media", Unhealthy)]), t);
    planner.finished(&steps[0], Outcome::Skipped, t);
    assert!(!planner.stopped_by_us("app"));
}

#[test]
fn containers_with_bad_labels_are_left_alone() {
    let mut planner = Planner::default();
    let app = [container(
        "app",
        true,
        &[(DEPENDS_ON, "media"), (ON_FAILURE, "kill")],
    )];
    assert!(round(&mut planner, &app, &[("media", Unhealthy)], Instant::now()).is_empty());
}
