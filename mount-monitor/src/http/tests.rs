use super::cache::render_instant;
use super::*;
use crate::config::{MountSpec, Settings};
use crate::reason::Failure;
use crate::reason::Reason;
use crate::snapshot::Snapshot;
use crate::state::MountState;
use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use std::path::PathBuf;
use std::time::{Instant, SystemTime};
use tower::ServiceExt;

fn view(name: &str, health: Health) -> Arc<MountView> {
    let settings = Settings::default();
    let spec = MountSpec::plain(
        Some(name.to_owned()),
        PathBuf::from(format!("/mnt/{name}")),
        &settings,
    );
    let mut state = MountState::default();
    let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_767_366_245);
    match health {
        Health::Unknown => {}
        Health::Healthy => {
            state.record(Ok(()), at, 3, 1);
        }
        Health::Degraded => {
            state.record(Err(Failure::new(Reason::NotMounted, "gone")), at, 3, 1);
        }
        Health::Unhealthy => {
            state.record(Err(Failure::new(Reason::Stale, "stale handle")), at, 1, 1);
        }
    }
    assert_eq!(state.health, health);
    Arc::new(MountView {
        spec: Arc::new(spec),
        state,
        stuck_since: None,
    })
}

fn app(mounts: Vec<Arc<MountView>>) -> Router {
    let shared = Shared::new(Arc::new(Settings::default()));
    shared.publish(Snapshot {
        mounts,
        initialized: true,
        ..Default::default()
    });
    router(shared)
}

async fn call(app: &Router, method: Method, uri: &str) -> (StatusCode, String) {
    let response = app
        .clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn get(app: &Router, uri: &str) -> (StatusCode, String) {
    call(app, Method::GET, uri).await
}

#[tokio::test]
async fn figures_come_only_from_the_latest_check() {
    let mut gone = (*view("media", Health::Healthy)).clone();
    let stats = crate::outcome::Stats {
        fs_type: Some("fuse.rclone".into()),
        size_bytes: 100,
        ..Default::default()
    };
    gone.state
        .measured(Some(stats), Some(std::time::Duration::from_millis(1)));
    let app = app(vec![Arc::new(gone.clone())]);
    let (_, body) = get(&app, "/healthz/status").await;
    assert!(body.contains(r#""fs_type":"fuse.rclone""#), "{body}");
    // The next check found nothing mounted: no figures, rather than the old ones as if
    // they were current.
    gone.state.record(
        Err(crate::reason::Failure::new(
            crate::reason::Reason::NotMounted,
            "gone",
        )),
        SystemTime::now(),
        3,
        1,
    );
    gone.state
        .measured(None, Some(std::time::Duration::from_millis(1)));
    let app = super::tests::app(vec![Arc::new(gone)]);
    let (_, body) = get(&app, "/healthz/status").await;
    for field in ["fs_type", "size_bytes", "avail_bytes", "files"] {
        assert!(!body.contains(field), "{field} in {body}");
    }
}

#[tokio::test]
async fn blocked_checks_and_a_dead_monitor_show() {
    let shared = Shared::new(Arc::new(Settings::default()));
    shared.publish(Snapshot {
        mounts: vec![view("a", Health::Healthy)],
        initialized: true,
        blocked_checks: 3,
        ..Default::default()
    });
    let app = router(Arc::clone(&shared));
    let (_, body) = get(&app, "/healthz/status").await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["blocked_checks"], 3, "{body}");
    assert!(
        get(&app, "/metrics")
            .await
            .1
            .contains("\nmount_monitor_blocked_checks 3\n")
    );
    assert_eq!(get(&app, "/livez").await.0, StatusCode::OK);
    shared.publish(Snapshot {
        mounts: vec![view("a", Health::Healthy)],
        initialized: true,
        failed: Some("discovery crashed: boom".into()),
        ..Default::default()
    });
    let (status, body) = get(&app, "/livez").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("discovery crashed: boom"), "{body}");
}

#[tokio::test]
async fn verdicts_for_each_state() {
    use Health::*;
    // (mount states, live, ready)
    let cases = [
        (vec![Healthy, Healthy], 200, 200),
        (vec![Healthy, Unknown], 200, 503),
        (vec![Healthy, Degraded], 200, 503),
        (vec![Healthy, Unhealthy], 503, 503),
    ];
    for (states, live, ready) in cases {
        let mounts = states
            .iter()
            .enumerate()
            .map(|(i, h)| view(&format!("m{i}"), *h))
            .collect();
        let app = app(mounts);
        assert_eq!(
            get(&app, "/healthz/live").await.0.as_u16(),
            live,
            "{states:?}"
        );
        assert_eq!(
            get(&app, "/healthz/ready").await.0.as_u16(),
            ready,
            "{states:?}"
        );
        assert_eq!(
            get(&app, "/healthz/status").await.0.as_u16(),
            ready,
            "{states:?}"
        );
        assert_eq!(get(&app, "/readyz").await.0.as_u16(), ready, "{states:?}");
    }
}

#[tokio::test]
async fn status_body_keeps_debrid_field_names() {
    let app = app(vec![
        view("movies", Health::Healthy),
        view("tv", Health::Degraded),
    ]);
    let (status, body) = get(&app, "/healthz/status").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "unhealthy");
    assert!(json["timestamp"].as_str().unwrap().ends_with('Z'));
    let movies = &json["mounts"][0];
    assert_eq!(movies["name"], "movies");
    assert_eq!(movies["path"], "/mnt/movies");
    assert_eq!(movies["status"], "healthy");
    assert_eq!(movies["last_check"], "2026-01-02T15:04:05Z");
    assert_eq!(movies["failure_count"], 0);
    assert!(movies.get("last_error").is_none(), "omitted when empty");
    let tv = &json["mounts"][1];
    assert_eq!(tv["status"], "degraded");
    assert_eq!(tv["failure_count"], 1);
    assert_eq!(tv["last_error"], "gone");
    assert_eq!(tv["reason"], "not_mounted");
}

#[tokio::test]
async fn unnamed_mount_omits_name() {
    let settings = Settings::default();
    let spec = MountSpec::plain(None, PathBuf::from("/data"), &settings);
    let app = app(vec![Arc::new(MountView {
        spec: Arc::new(spec),
        state: MountState::default(),
        stuck_since: None,
    })]);
    let (_, body) = get(&app, "/healthz/live").await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(json["mounts"][0].get("name").is_none());
    assert_eq!(json["mounts"][0]["status"], "unknown");
    assert!(json["mounts"][0].get("last_check").is_none());
    // Unnamed mounts are addressed by path.
    assert_eq!(
        get(&app, "/readyz/data").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn other_methods_are_405() {
    let app = app(vec![view("a", Health::Healthy)]);
    for uri in [
        "/healthz/live",
        "/healthz/ready",
        "/healthz/status",
        "/version",
        "/readyz",
        "/metrics",
    ] {
        for method in [Method::POST, Method::PUT, Method::DELETE] {
            let (status, body) = call(&app, method.clone(), uri).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
            assert_eq!(body, "method not allowed");
        }
        assert_eq!(
            call(&app, Method::HEAD, uri).await.0,
            StatusCode::OK,
            "HEAD {uri}"
        );
    }
    assert_eq!(get(&app, "/nope").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn readyz_verbose_exclude_and_single_mount() {
    let app = app(vec![
        view("movies", Health::Healthy),
        view("tv", Health::Unhealthy),
    ]);
    assert_eq!(
        get(&app, "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (_, body) = get(&app, "/readyz?verbose").await;
    assert_eq!(
        body,
        "[+]movies ok\n[-]tv failed: stale\nreadyz check failed\n"
    );
    assert_eq!(
        get(&app, "/readyz?exclude=tv").await,
        (StatusCode::OK, "ok".into())
    );
    let (status, body) = get(&app, "/readyz?exclude=tv&verbose").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "[+]movies ok\nreadyz check passed\n")
    );
    assert_eq!(
        get(&app, "/readyz/movies").await,
        (StatusCode::OK, "ok".into())
    );
    assert_eq!(
        get(&app, "/readyz/tv").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(get(&app, "/readyz/nope").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn names_with_slashes_and_shared_names_are_found() {
    let mut first = view("x", Health::Healthy).as_ref().clone();
    Arc::make_mut(&mut first.spec).name = Some("movies/4k hdr".into());
    let mut second = view("x", Health::Unhealthy).as_ref().clone();
    Arc::make_mut(&mut second.spec).name = Some("movies/4k hdr".into());
    let alone = view("tv", Health::Healthy);
    let one = app(vec![Arc::new(first.clone()), alone.clone()]);
    let url = readyz_path("movies/4k hdr");
    assert_eq!(url, "/readyz/movies%2F4k%20hdr");
    assert_eq!(get(&one, &url).await, (StatusCode::OK, "ok".into()));
    // Both mounts of a shared name must be healthy.
    let app = app(vec![Arc::new(first), Arc::new(second), alone]);
    let (status, body) = get(&app, &format!("{url}?verbose")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        "[+]movies/4k hdr ok\n[-]movies/4k hdr failed: stale\nreadyz check failed\n"
    );
    assert_eq!(get(&app, "/readyz/tv").await.0, StatusCode::OK);
}

#[tokio::test]
async fn bodies_end_with_a_newline_and_show_the_path_as_configured() {
    let mut relative = view("local", Health::Healthy).as_ref().clone();
    Arc::make_mut(&mut relative.spec).shown_path = "./data/local".into();
    let app = app(vec![Arc::new(relative)]);
    for uri in [
        "/healthz/live",
        "/healthz/ready",
        "/healthz/status",
        "/version",
    ] {
        let (_, body) = get(&app, uri).await;
        assert!(body.ends_with("}\n"), "{uri}: {body:?}");
    }
    let (_, body) = get(&app, "/healthz/status").await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["mounts"][0]["path"], "./data/local");
}

#[tokio::test]
async fn not_ready_before_mounts_are_known() {
    let shared = Shared::new(Arc::new(Settings::default()));
    let app = router(shared);
    assert_eq!(
        get(&app, "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get(&app, "/healthz/ready").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn every_listed_route_is_served() {
    let app = app(vec![view("a", Health::Healthy)]);
    for route in ROUTES {
        let uri = route.replace("{mount}", "a");
        assert_eq!(get(&app, &uri).await.0, StatusCode::OK, "{route}");
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let app = app(vec![view("a", Health::Healthy)]);
    let response = app
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let (_, body) = get(&app, "/metrics").await;
    assert!(
        body.contains("mount_monitor_mount_up{mount=\"a\",path=\"/mnt/a\",optional=\"false\"} 1\n"),
        "{body}"
    );
}

#[tokio::test]
async fn metrics_in_openmetrics_when_asked_each_format_kept_apart() {
    let app = app(vec![view("a", Health::Healthy)]);
    let scrape = |accept: Option<&'static str>| {
        let app = app.clone();
        async move {
            let mut request = Request::get("/metrics");
            if let Some(accept) = accept {
                request = request.header(header::ACCEPT, accept);
            }
            let response = app
                .oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap();
            let content_type = response.headers()[header::CONTENT_TYPE].clone();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (content_type, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let openmetrics = Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5");
    // Twice each, interleaved: the second answer of each comes from its own kept body.
    for _ in 0..2 {
        let (content_type, body) = scrape(openmetrics).await;
        assert_eq!(
            content_type,
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert!(body.ends_with("# EOF\n"), "{body}");
        assert!(
            body.contains("mount_monitor_mount_checks_created{"),
            "{body}"
        );
        let (content_type, body) = scrape(None).await;
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        assert!(!body.contains("# EOF"), "{body}");
        assert!(!body.contains("_created"), "{body}");
    }
}

#[tokio::test]
async fn status_body_is_what_status_body_serializes() {
    let mounts = vec![
        view("movies", Health::Healthy),
        view("tv", Health::Degraded),
    ];
    let app = app(mounts.clone());
    let (_, body) = get(&app, "/healthz/status").await;
    let mut served: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut expected = StatusBody::new(mounts.iter().map(Arc::as_ref), false, 0);
    expected.watchdog = Some(crate::status::watchdog::View {
        since: served["watchdog"]["since"].as_str().unwrap().to_owned(),
        ..crate::status::watchdog::Status::new(&Default::default()).view()
    });
    expected.docker = Some(crate::status::docker::View {
        since: served["docker"]["since"].as_str().unwrap().to_owned(),
        ..crate::status::docker::Status::new(false).view()
    });
    let mut expected = serde_json::to_value(&expected).unwrap();
    for json in [&mut served, &mut expected] {
        let timestamp = json["timestamp"].take();
        assert!(timestamp.as_str().unwrap().ends_with('Z'), "{timestamp}");
    }
    assert_eq!(served, expected);
}

#[tokio::test]
async fn kept_bodies_follow_the_snapshot() {
    let shared = Shared::new(Arc::new(Settings::default()));
    let app = router(Arc::clone(&shared));
    let publish = |health| {
        shared.publish(Snapshot {
            mounts: vec![view("a", health)],
            initialized: true,
            ..Default::default()
        })
    };
    let up = r#"mount_monitor_mount_up{mount="a",path="/mnt/a",optional="false"}"#;
    publish(Health::Healthy);
    for _ in 0..2 {
        assert!(get(&app, "/metrics").await.1.contains(&format!("{up} 1\n")));
        let (status, body) = get(&app, "/healthz/status").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains(r#""status":"healthy""#), "{body}");
    }
    publish(Health::Unhealthy);
    assert!(get(&app, "/metrics").await.1.contains(&format!("{up} 0\n")));
    let (status, body) = get(&app, "/healthz/status").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains(r#""status":"unhealthy""#), "{body}");
    let (status, body) = get(&app, "/healthz/live").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains(r#""status":"unhealthy""#), "{body}");
}

#[tokio::test]
async fn a_stuck_check_is_rendered_once_a_second() {
    let mut stuck = view("a", Health::Degraded).as_ref().clone();
    stuck.stuck_since = Instant::now().checked_sub(std::time::Duration::from_secs(12));
    let app = app(vec![Arc::new(stuck)]);
    let stuck_seconds = || async {
        let (_, body) = get(&app, "/healthz/status").await;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        json["mounts"][0]["stuck_seconds"].as_f64().unwrap()
    };
    let first = stuck_seconds().await;
    assert!((12.0..13.0).contains(&first), "{first}");
    let metrics = get(&app, "/metrics").await.1;
    // Longer than the 0.1 s the figure is rounded to, within the second it is kept for
    // (unless the test happens to straddle its end).
    std::thread::sleep(std::time::Duration::from_millis(150));
    let second = stuck_seconds().await;
    assert!(
        second == first || second == first + 1.0,
        "{first} then {second}"
    );
    if second == first {
        assert_eq!(get(&app, "/metrics").await.1, metrics, "kept");
    }
}

#[test]
fn time_dependent_bodies_are_rendered_as_at_whole_seconds() {
    let epoch = Instant::now();
    let ms = std::time::Duration::from_millis;
    assert_eq!(render_instant(epoch, epoch + ms(2500), false), (epoch, 0));
    assert_eq!(render_instant(epoch, epoch + ms(999), true), (epoch, 0));
    assert_eq!(
        render_instant(epoch, epoch + ms(2500), true),
        (epoch + ms(2000), 2)
    );
    // A clock read before the epoch was set (another request set it) is its second 0.
    assert_eq!(
        render_instant(epoch + ms(5), epoch, true),
        (epoch + ms(5), 0)
    );
}

#[tokio::test]
async fn exclude_and_lookup_address_mounts_by_name_or_path() {
    let settings = Settings::default();
    let unnamed = |path: &str| {
        Arc::new(MountView {
            spec: Arc::new(MountSpec::plain(None, PathBuf::from(path), &settings)),
            state: MountState::default(),
            stuck_since: None,
        })
    };
    let app = app(vec![view("movies", Health::Healthy), unnamed("/srv/data")]);
    for query in [
        "exclude=srv/data",
        "exclude=/srv/data",
        "exclude=%2F%2Fsrv%2Fdata",
    ] {
        assert_eq!(
            get(&app, &format!("/readyz?{query}")).await,
            (StatusCode::OK, "ok".into()),
            "{query}"
        );
    }
    // A named mount is addressed by its name only.
    let (status, body) = get(&app, "/readyz?exclude=/movies&exclude=/mnt/movies").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("[+]movies ok\n"), "{body}");
    assert_eq!(get(&app, "/readyz/movies").await.0, StatusCode::OK);
    assert_eq!(
        get(&app, "/readyz/srv/data").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get(&app, "/readyz/mnt/movies").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn queries_past_the_bounds_get_400() {
    let app = app(vec![view("a", Health::Healthy)]);
    let excludes = |n: usize| {
        (0..n)
            .map(|i| format!("exclude=m{i}"))
            .collect::<Vec<_>>()
            .join("&")
    };
    let at_most = excludes(MAX_EXCLUDES);
    assert!(at_most.len() <= MAX_QUERY_BYTES, "both bounds can be met");
    assert_eq!(
        get(&app, &format!("/readyz?{at_most}")).await,
        (StatusCode::OK, "ok".into())
    );
    let (status, body) = get(&app, &format!("/readyz?{}", excludes(MAX_EXCLUDES + 1))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("at most 256"), "{body}");
    let long = format!("verbose&x={}", "a".repeat(MAX_QUERY_BYTES));
    for path in ["/readyz", "/readyz/a", "/livez"] {
        let (status, body) = get(&app, &format!("{path}?{long}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(body.contains("at most 4096"), "{body}");
    }
}

#[tokio::test]
async fn livez_follows_the_heartbeat_and_version_answers() {
    let app = app(vec![view("a", Health::Unhealthy)]);
    assert_eq!(get(&app, "/livez").await, (StatusCode::OK, "ok".into()));
    let (status, body) = get(&app, "/version").await;
    assert_eq!(status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["version"], crate::VERSION);
}

/// An unhealthy optional mount is reported everywhere, and counted in no verdict over all mounts.
#[tokio::test]
async fn optional_mounts_are_reported_but_decide_no_aggregate() {
    let optional = |name: &str, health: Health| {
        let mut view = view(name, health).as_ref().clone();
        Arc::make_mut(&mut view.spec).optional = true;
        Arc::new(view)
    };
    let served = app(vec![
        view("media", Health::Healthy),
        optional("extra", Health::Unhealthy),
    ]);
    for route in [
        "/readyz",
        "/livez",
        "/healthz/ready",
        "/healthz/live",
        "/healthz/status",
    ] {
        assert_eq!(get(&served, route).await.0, StatusCode::OK, "{route}");
    }
    let (_, status) = get(&served, "/healthz/status").await;
    let json: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(json["status"], "healthy", "{status}");
    assert_eq!(json["mounts"][1]["name"], "extra", "{status}");
    assert_eq!(json["mounts"][1]["status"], "unhealthy", "{status}");
    assert_eq!(json["mounts"][1]["optional"], true, "{status}");
    // Only optional mounts carry the field: DMM's objects keep theirs.
    assert!(json["mounts"][0].get("optional").is_none(), "{status}");
    let (code, body) = get(&served, "/readyz/extra").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(get(&served, "/readyz/media").await.0, StatusCode::OK);
    let (code, body) = get(&served, "/readyz?verbose").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert!(body.contains("[-]extra failed: stale (optional)"), "{body}");
    let (_, metrics) = get(&served, "/metrics").await;
    assert!(
        metrics.contains(
            "mount_monitor_mount_up{mount=\"extra\",path=\"/mnt/extra\",optional=\"true\"} 0\n"
        ),
        "{metrics}"
    );

    // A required mount that fails still fails them, optional mounts or not.
    let failing = app(vec![
        view("media", Health::Unhealthy),
        optional("extra", Health::Healthy),
    ]);
    for route in [
        "/readyz",
        "/healthz/ready",
        "/healthz/live",
        "/healthz/status",
    ] {
        assert_eq!(
            get(&failing, route).await.0,
            StatusCode::SERVICE_UNAVAILABLE,
            "{route}"
        );
    }
}

async fn response(app: &Router, method: Method, uri: &str) -> Response {
    app.clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap()
}

/// Go's mux answers, as debrid-mount-monitor's clients see them.
#[tokio::test]
async fn unknown_paths_are_go_s_404() {
    let app = app(vec![view("media", Health::Healthy)]);
    for (method, uri) in [
        (Method::GET, "/nope"),
        (Method::POST, "/nope"),
        (Method::GET, "/healthz/ready/"),
        (Method::GET, "/healthz"),
    ] {
        let response = response(&app, method.clone(), uri).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {uri}");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"404 page not found\n", "{method} {uri}");
    }
}

#[tokio::test]
async fn unclean_paths_redirect_to_the_clean_one_with_the_query() {
    let app = app(vec![view("media", Health::Healthy)]);
    for (uri, location) in [
        ("//healthz/ready", "/healthz/ready"),
        ("/healthz/./ready", "/healthz/ready"),
        ("/healthz/../healthz/ready", "/healthz/ready"),
        ("/healthz//ready?x=1&y", "/healthz/ready?x=1&y"),
        ("/healthz/%2E/ready", "/healthz/ready"),
        ("/readyz/./media", "/readyz/media"),
        ("//nope/", "/nope/"),
    ] {
        let response = response(&app, Method::GET, uri).await;
        assert_eq!(response.status(), StatusCode::MOVED_PERMANENTLY, "{uri}");
        assert_eq!(response.headers()[header::LOCATION], location, "{uri}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let href = location.replace('&', "&amp;");
        assert_eq!(
            String::from_utf8_lossy(&body),
            format!("<a href=\"{href}\">Moved Permanently</a>.\n\n"),
            "{uri}"
        );
    }
    let post = response(&app, Method::POST, "//healthz/ready").await;
    assert_eq!(post.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(post.headers()[header::LOCATION], "/healthz/ready");
    // A clean path is served as it is.
    assert_eq!(get(&app, "/healthz/ready?x=1").await.0, StatusCode::OK);
}

/// Whole `/healthz/*` bodies are kept for the second their timestamp names, never past a change:
/// the actors' state and each endpoint's verdict show at once, within the same second and
/// snapshot.
#[tokio::test]
async fn kept_whole_bodies_follow_the_actors_and_the_verdict() {
    let shared = Shared::new(Arc::new(Settings::default()));
    let app = router(Arc::clone(&shared));
    // Live (degraded counts as alive) but not ready: the two verdicts differ on one snapshot.
    shared.publish(Snapshot {
        mounts: vec![view("a", Health::Degraded)],
        initialized: true,
        ..Default::default()
    });
    let state = |body: &str| {
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        json["watchdog"]["state"].as_str().unwrap().to_owned()
    };
    for _ in 0..2 {
        let (status, body) = get(&app, "/healthz/live").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.starts_with(r#"{"status":"healthy","#), "{body}");
        assert!(!body.contains("watchdog"), "{body}");
        let (status, body) = get(&app, "/healthz/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.starts_with(r#"{"status":"unhealthy","#), "{body}");
        let (_, body) = get(&app, "/healthz/status").await;
        assert_eq!(state(&body), "disabled");
    }
    shared
        .watchdog
        .set(crate::status::watchdog::State::Forbidden, "no");
    let (_, body) = get(&app, "/healthz/status").await;
    assert_eq!(state(&body), "forbidden");
    // The same bytes as before the change for the endpoints without the actors.
    let (_, body) = get(&app, "/healthz/ready").await;
    assert!(body.starts_with(r#"{"status":"unhealthy","#), "{body}");
}

#[tokio::test]
async fn kept_metrics_follow_every_change_of_the_actors() {
    use crate::status::docker::{Action, Outcome as DockerOutcome};
    use crate::status::watchdog::Outcome;
    let settings = Settings {
        docker_actions: true,
        ..Default::default()
    };
    let shared = Shared::new(Arc::new(settings));
    let app = router(Arc::clone(&shared));
    shared.publish(Snapshot {
        mounts: vec![view("a", Health::Healthy)],
        initialized: true,
        ..Default::default()
    });
    let line = |body: &str, prefix: &str| {
        body.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {body}"))
            .to_owned()
    };
    let deleted = r#"mount_monitor_watchdog_restarts_total{outcome="deleted"}"#;
    let stops = r#"mount_monitor_docker_actions_total{action="stop",outcome="done"}"#;
    let (_, first) = get(&app, "/metrics").await;
    let (_, again) = get(&app, "/metrics").await;
    assert_eq!(first, again);
    assert_eq!(line(&first, deleted), format!("{deleted} 0"));
    assert_eq!(line(&first, stops), format!("{stops} 0"));
    assert_eq!(
        line(&first, "mount_monitor_docker_connected"),
        "mount_monitor_docker_connected 0"
    );
    // Each change shows at the next scrape, on the same snapshot.
    shared.watchdog.count(Outcome::Deleted);
    let (_, body) = get(&app, "/metrics").await;
    assert_eq!(line(&body, deleted), format!("{deleted} 1"));
    shared.docker.count(Action::Stop, DockerOutcome::Done);
    let (_, body) = get(&app, "/metrics").await;
    assert_eq!(line(&body, stops), format!("{stops} 1"));
    shared.docker.connection(true, None);
    let (_, body) = get(&app, "/metrics").await;
    assert_eq!(
        line(&body, "mount_monitor_docker_connected"),
        "mount_monitor_docker_connected 1"
    );
    shared
        .watchdog
        .set(crate::status::watchdog::State::Forbidden, "no");
    let (_, body) = get(&app, "/metrics").await;
    assert!(
        body.contains(r#"mount_monitor_watchdog_state{state="forbidden"} 1"#),
        "{body}"
    );
    // The mounts' part is unchanged throughout.
    assert_eq!(
        line(&body, "mount_monitor_mount_up"),
        line(&first, "mount_monitor_mount_up")
    );
}
