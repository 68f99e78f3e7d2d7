//! The HTTP API. Handlers only read the latest [`Snapshot`]; they never touch a filesystem.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRef, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use serde::Serialize;

use crate::snapshot::{MountView, Shared, Snapshot};
use crate::state::Health;
use crate::state::timestamp;

/// The monitor loop counts as dead when it has not ticked for this long.
const LIVENESS_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The router's state: the monitor's handle, and the bodies kept for its latest snapshot.
#[derive(Clone)]
struct Api {
    shared: Arc<Shared>,
    cache: Arc<Cache>,
}

impl FromRef<Api> for Arc<Shared> {
    fn from_ref(api: &Api) -> Self {
        Arc::clone(&api.shared)
    }
}

impl FromRef<Api> for Arc<Cache> {
    fn from_ref(api: &Api) -> Self {
        Arc::clone(&api.cache)
    }
}

/// The routes, written once: [`ROUTES`] (deployment manifests are checked against it) and the
/// router both come from this table. `{mount}` is any mount name, `/` included.
macro_rules! routes {
    ($($path:literal => $handler:ident,)*) => {
        /// Every route the binary serves.
        pub const ROUTES: &[&str] = &[$($path),*];

        fn routes() -> Router<Api> {
            Router::new()
                $(.route(&$path.replace("{mount}", "{*mount}"), only_get(get($handler))))*
        }
    };
}

routes! {
    "/healthz/live" => healthz_live,
    "/healthz/ready" => healthz_ready,
    "/healthz/status" => healthz_status,
    "/livez" => livez,
    "/metrics" => metrics,
    "/readyz" => readyz,
    "/readyz/{mount}" => readyz_one,
    "/version" => version,
}

pub fn router(shared: Arc<Shared>) -> Router {
    let api = Api {
        shared,
        cache: Arc::default(),
    };
    routes().fallback(go_mux::fallback).with_state(api)
}

/// GET (and HEAD) only; anything else is 405 with debrid-mount-monitor's body.
fn only_get(route: MethodRouter<Api>) -> MethodRouter<Api> {
    route.fallback(|| async {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
            "method not allowed",
        )
    })
}

fn code(ok: bool) -> StatusCode {
    if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn healthz_live(
    State(shared): State<Arc<Shared>>,
    State(cache): State<Arc<Cache>>,
) -> Response {
    let snapshot = shared.snapshot();
    let live = snapshot.is_live();
    status_json(&cache, &snapshot, live, None).await
}

async fn healthz_ready(
    State(shared): State<Arc<Shared>>,
    State(cache): State<Arc<Cache>>,
) -> Response {
    let snapshot = shared.snapshot();
    let ready = snapshot.is_ready();
    status_json(&cache, &snapshot, ready, None).await
}

/// `/healthz/ready`'s verdict and body, with the watchdog's state.
async fn healthz_status(
    State(shared): State<Arc<Shared>>,
    State(cache): State<Arc<Cache>>,
) -> Response {
    let snapshot = shared.snapshot();
    let actors = Actors {
        watchdog: shared.watchdog.view(),
        docker: shared.docker.view(),
    };
    let ready = snapshot.is_ready();
    status_json(&cache, &snapshot, ready, Some(&actors)).await
}

/// The body of `/healthz/*` (and of `check --format json`).
#[derive(Serialize)]
pub struct StatusBody<'a> {
    pub status: &'static str,
    pub timestamp: String,
    pub mounts: Vec<MountJson<'a>>,
    /// Checks blocked in the kernel past their deadline, a thread each.
    pub blocked_checks: usize,
    /// `/healthz/status` only: the pod-restart watchdog.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watchdog: Option<crate::status::watchdog::View>,
    /// `/healthz/status` only: the Docker actions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker: Option<crate::status::docker::View>,
}

/// What the actors publish, in `/healthz/status` after the mounts.
pub struct Actors {
    pub watchdog: crate::status::watchdog::View,
    pub docker: crate::status::docker::View,
}

impl<'a> StatusBody<'a> {
    pub fn new(
        mounts: impl IntoIterator<Item = &'a MountView>,
        ok: bool,
        blocked_checks: usize,
    ) -> Self {
        let now = Instant::now();
        StatusBody {
            status: Self::status(ok),
            timestamp: timestamp(SystemTime::now()),
            mounts: mounts.into_iter().map(|m| MountJson::new(m, now)).collect(),
            blocked_checks,
            watchdog: None,
            docker: None,
        }
    }

    fn status(ok: bool) -> &'static str {
        if ok { "healthy" } else { "unhealthy" }
    }
}

/// debrid-mount-monitor's per-mount object, with fields added (never renamed).
#[derive(Serialize)]
pub struct MountJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub path: String,
    pub status: Health,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_check: Option<String>,
    pub failure_count: u32,
    /// Present (and true) only for an optional mount, which counts in no verdict over all mounts.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avail_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_free: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stuck_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_duration_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success: Option<String>,
}

impl<'a> MountJson<'a> {
    pub fn new(view: &'a MountView, now: Instant) -> Self {
        let state = &view.state;
        // Figures only from the latest check: a mount that is gone or hangs has none.
        let stats = state.stats.as_ref().filter(|_| state.stats_current);
        let failure = state.failure.as_ref();
        MountJson {
            name: view.spec.name.as_deref(),
            path: view.spec.shown_path.clone(),
            status: state.health,
            last_check: state.last_check.map(timestamp),
            failure_count: state.failure_count,
            optional: view.spec.optional,
            last_error: failure.map(|f| f.detail.as_str()),
            reason: failure.map(|f| f.reason.code()),
            fs_type: stats.and_then(|s| s.fs_type.as_deref()),
            read_only: stats.map(|s| s.read_only),
            size_bytes: stats.map(|s| s.size_bytes),
            avail_bytes: stats.map(|s| s.avail_bytes),
            free_bytes: stats.map(|s| s.free_bytes),
            files: stats.map(|s| s.files),
            files_free: stats.map(|s| s.files_free),
            stuck_seconds: view
                .stuck_for(now)
                .map(|d| (d.as_secs_f64() * 10.0).round() / 10.0),
            check_duration_ms: state
                .check_duration
                .map(|d| (d.as_secs_f64() * 1e6).round() / 1e3),
            last_success: state.last_success.map(timestamp),
        }
    }
}

/// Bodies rendered from one [`Snapshot`] and kept with it, so that a flood of requests renders
/// each once per snapshot rather than once per request: rendering is many small copies, which
/// cost far more than serving the result (most on musl, whose `memcpy` is slow for short
/// copies). While a check is stuck, its `stuck_seconds` grows with time: the body is then
/// rendered as at a whole number of seconds after the snapshot was first asked for, and kept
/// for that second, so a stuck mount costs one rendering a second, whatever the load.
#[derive(Debug, Default)]
struct Rendered {
    /// When the snapshot was first rendered: the time base of `stuck_seconds`.
    epoch: OnceLock<Instant>,
    /// The `mounts` array of `/healthz/*` (the `status` and `timestamp` around it vary).
    status_mounts: Kept,
    /// `/metrics` in the 0.0.4 text format and in OpenMetrics.
    metrics: [Kept; 2],
    /// The same with the watchdog's families, and those families' text: every response shares
    /// one body while neither changes, rather than copying megabytes per request.
    metrics_with_watchdog: [std::sync::Mutex<Option<(Bytes, String, Bytes)>>; 2],
}

/// The bodies kept for the latest snapshot the HTTP side served, which it keeps alive until a
/// newer one replaces it (so that a new snapshot can never be taken for the old one).
#[derive(Debug, Default)]
struct Cache(std::sync::Mutex<Option<(Arc<Snapshot>, Arc<Rendered>)>>);

impl Cache {
    /// The bodies kept for `snapshot`: new and empty when it is not the one kept so far.
    fn of(&self, snapshot: &Arc<Snapshot>) -> Arc<Rendered> {
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
struct Kept(std::sync::Mutex<Option<Arc<Slot>>>);

#[derive(Debug)]
struct Slot {
    second: u64,
    /// Filled once: the requests that come while it renders wait for it, off the workers.
    body: tokio::sync::OnceCell<Bytes>,
}

/// The instant a body asked for at `now` is rendered as of, and the second it is kept for:
/// `epoch` itself while nothing depends on the time, else the latest whole second after it.
fn render_instant(epoch: Instant, now: Instant, time_dependent: bool) -> (Instant, u64) {
    if !time_dependent {
        return (epoch, 0);
    }
    let second = now.saturating_duration_since(epoch).as_secs();
    (epoch + std::time::Duration::from_secs(second), second)
}

/// `kept`'s body for `snapshot` now: rendered at most once per snapshot (per second while a
/// check is stuck), on the blocking pool, so that a large one (5 MiB of metrics at 1,000 mounts)
/// never holds up the async workers that answer the probes.
async fn rendered(
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

fn render_status_mounts(snapshot: &Arc<Snapshot>, at: Instant) -> Bytes {
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
fn compact(mut body: Vec<u8>) -> Bytes {
    body.shrink_to_fit();
    body.into()
}

async fn status_json(
    cache: &Cache,
    snapshot: &Arc<Snapshot>,
    ok: bool,
    actors: Option<&Actors>,
) -> Response {
    let bodies = cache.of(snapshot);
    let mounts = rendered(
        &bodies,
        snapshot,
        |r| &r.status_mounts,
        render_status_mounts,
    )
    .await;
    // `StatusBody`'s fields in its order (a test holds the two equal); neither the status nor
    // the timestamp has anything to escape.
    let mut body = Vec::with_capacity(mounts.len() + 64);
    let _ = write!(
        body,
        r#"{{"status":"{}","timestamp":"{}","mounts":"#,
        StatusBody::status(ok),
        timestamp(SystemTime::now())
    );
    body.extend_from_slice(&mounts);
    let _ = write!(body, r#","blocked_checks":{}"#, snapshot.blocked_checks);
    if let Some(actors) = actors {
        // Serializing plain data into memory cannot fail.
        body.extend_from_slice(br#","watchdog":"#);
        let _ = serde_json::to_writer(&mut body, &actors.watchdog);
        body.extend_from_slice(br#","docker":"#);
        let _ = serde_json::to_writer(&mut body, &actors.docker);
    }
    // Go's json.Encoder ends each body with a newline; clients comparing bodies expect it.
    body.extend_from_slice(b"}\n");
    (code(ok), [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn metrics(
    State(shared): State<Arc<Shared>>,
    State(cache): State<Arc<Cache>>,
    headers: HeaderMap,
) -> Response {
    use crate::metrics::Format;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let snapshot = shared.snapshot();
    let detail = shared.settings.metrics_detail;
    let index = match format {
        Format::Prometheus => 0,
        Format::OpenMetrics => 1,
    };
    let kept: fn(&Rendered) -> &Kept = match format {
        Format::Prometheus => |r| &r.metrics[0],
        Format::OpenMetrics => |r| &r.metrics[1],
    };
    let bodies = cache.of(&snapshot);
    let mounts = rendered(&bodies, &snapshot, kept, move |snapshot, at| {
        compact(crate::metrics::render(Arc::clone(snapshot), at, format, detail).into_bytes())
    })
    .await;
    // The watchdog changes between snapshots: its families (a few hundred bytes) are rendered
    // for every scrape, and the whole body again only when they or the mounts' part changed.
    let mut watchdog = crate::metrics::render_watchdog(&shared.watchdog, format);
    if shared.settings.docker_actions {
        watchdog.push_str(&crate::metrics::render_docker(&shared.docker, format));
    }
    let mut composed = bodies.metrics_with_watchdog[index]
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let body = match composed.as_ref() {
        // The same kept body (the same bytes, not equal ones: no comparing megabytes).
        Some((part, families, body))
            if part.as_ptr() == mounts.as_ptr()
                && part.len() == mounts.len()
                && families == &watchdog =>
        {
            body.clone()
        }
        _ => {
            let body = with_families(&mounts, &watchdog, format);
            *composed = Some((mounts, watchdog, body.clone()));
            body
        }
    };
    drop(composed);
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// The mounts' part of `/metrics` with `families` added, before OpenMetrics' closing `# EOF`.
fn with_families(mounts: &Bytes, families: &str, format: crate::metrics::Format) -> Bytes {
    const EOF: &[u8] = b"# EOF\n";
    let mounts = mounts.strip_suffix(EOF).unwrap_or(mounts);
    let mut body = Vec::with_capacity(mounts.len() + families.len() + EOF.len());
    body.extend_from_slice(mounts);
    body.extend_from_slice(families.as_bytes());
    if format == crate::metrics::Format::OpenMetrics {
        body.extend_from_slice(EOF);
    }
    body.into()
}

async fn version() -> Response {
    let body = format!("{}\n", serde_json::json!({ "version": crate::VERSION }));
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn livez(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let options = match QueryOptions::parse(query.as_deref()) {
        Ok(options) => options,
        Err(why) => return (StatusCode::BAD_REQUEST, why).into_response(),
    };
    let age = shared.heartbeat_age();
    let failed = shared.snapshot().failed.clone();
    let ok = age < LIVENESS_LIMIT && failed.is_none();
    let line = match failed {
        Some(why) => format!("[-]monitor-loop failed: {why}"),
        None if ok => "[+]monitor-loop ok".to_owned(),
        None => format!("[-]monitor-loop failed: no tick for {}s", age.as_secs()),
    };
    let body = if options.verbose || !ok {
        format!(
            "{line}\nlivez check {}\n",
            if ok { "passed" } else { "failed" }
        )
    } else {
        "ok".to_owned()
    };
    text(ok, body)
}

async fn readyz(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let options = match QueryOptions::parse(query.as_deref()) {
        Ok(options) => options,
        Err(why) => return (StatusCode::BAD_REQUEST, why).into_response(),
    };
    let snapshot = shared.snapshot();
    // One hash lookup per mount: O(mounts + excludes), whatever the number of either.
    let excluded = Addressed::new(options.exclude.iter().map(String::as_str));
    let mounts: Vec<&MountView> = snapshot
        .mounts
        .iter()
        .map(Arc::as_ref)
        .filter(|m| !excluded.contains(&label(m)))
        .collect();
    // Optional mounts are listed, but do not hold the pod unready.
    let ok = snapshot.initialized && crate::snapshot::all_healthy(mounts.iter().copied());
    text(
        ok,
        readyz_body(&mounts, ok, options.verbose, snapshot.initialized),
    )
}

async fn readyz_one(
    State(shared): State<Arc<Shared>>,
    Path(mount): Path<String>,
    RawQuery(query): RawQuery,
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> Response {
    if let Some(redirect) = go_mux::redirect_unclean(&method, &uri) {
        return redirect;
    }
    let options = match QueryOptions::parse(query.as_deref()) {
        Ok(options) => options,
        Err(why) => return (StatusCode::BAD_REQUEST, why).into_response(),
    };
    let snapshot = shared.snapshot();
    // Several mounts may share a name (debrid-mount-monitor allowed it): all of them answer.
    let wanted = Addressed::new([mount.as_str()]);
    let views: Vec<&MountView> = snapshot
        .mounts
        .iter()
        .map(Arc::as_ref)
        .filter(|m| wanted.contains(&label(m)))
        .collect();
    if views.is_empty() {
        return (StatusCode::NOT_FOUND, format!("no mount named {mount:?}\n")).into_response();
    }
    let ok = views.iter().all(|v| v.state.health == Health::Healthy);
    text(ok, readyz_body(&views, ok, options.verbose, true))
}

/// The path of a mount's readiness endpoint: its name (or path) percent-encoded as one URL path
/// segment, so that `movies/4k` or `my movies` can be asked for.
pub fn readyz_path(label: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    /// Everything but RFC 3986's unreserved characters.
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    format!("/readyz/{}", utf8_percent_encode(label, SEGMENT))
}

/// How a mount is addressed in routes and `?exclude=`: its name, or its path when it has none.
/// Borrowed, so that matching allocates nothing (but for a path that is not UTF-8: once per
/// mount).
fn label(view: &MountView) -> Cow<'_, str> {
    match (&view.spec.name, view.spec.path.to_str()) {
        (Some(name), _) => Cow::Borrowed(name),
        (None, Some(path)) => Cow::Borrowed(path),
        (None, None) => Cow::Owned(crate::paths::display_path(&view.spec.path)),
    }
}

/// The mounts a request names. A mount is addressed by its label, or, when that is a path,
/// also without its leading slash (`/readyz/<path>` swallows one).
struct Addressed<'q> {
    exactly: HashSet<&'q str>,
    below_root: HashSet<&'q str>,
}

impl<'q> Addressed<'q> {
    fn new(names: impl IntoIterator<Item = &'q str>) -> Self {
        let (exactly, below_root) = names
            .into_iter()
            .map(|name| (name, name.trim_start_matches('/')))
            .unzip();
        Addressed {
            exactly,
            below_root,
        }
    }

    fn contains(&self, label: &str) -> bool {
        self.exactly.contains(label)
            || label
                .strip_prefix('/')
                .is_some_and(|path| self.below_root.contains(path))
    }
}

fn readyz_body(mounts: &[&MountView], ok: bool, verbose: bool, initialized: bool) -> String {
    use std::fmt::Write;
    if ok && !verbose {
        return "ok".to_owned();
    }
    let mut body = String::with_capacity(mounts.len() * 32 + 64);
    for m in mounts {
        let label = label(m);
        // Writing into a String cannot fail.
        let _ = if m.state.health == Health::Healthy {
            writeln!(body, "[+]{label} ok")
        } else {
            let why = m
                .state
                .failure
                .as_ref()
                .map(|f| f.reason.code())
                .unwrap_or("not checked yet");
            // Why `/readyz` passes all the same.
            let optional = if m.spec.optional { " (optional)" } else { "" };
            writeln!(body, "[-]{label} failed: {why}{optional}")
        };
    }
    if !initialized {
        body.push_str("[-]mounts failed: not discovered yet\n");
    }
    body.push_str(if ok {
        "readyz check passed\n"
    } else {
        "readyz check failed\n"
    });
    body
}

fn text(ok: bool, body: String) -> Response {
    (
        code(ok),
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The longest query string answered; longer ones get 400. Far more than any probe needs, and
/// it bounds the work a request can ask for.
pub const MAX_QUERY_BYTES: usize = 4096;
/// The most `exclude`s in one request; more get 400.
pub const MAX_EXCLUDES: usize = 256;

#[derive(Default)]
struct QueryOptions {
    verbose: bool,
    exclude: Vec<String>,
}

impl QueryOptions {
    /// The options, or why a query past the bounds is refused (with 400).
    fn parse(query: Option<&str>) -> Result<Self, String> {
        let Some(query) = query else {
            return Ok(QueryOptions::default());
        };
        if query.len() > MAX_QUERY_BYTES {
            return Err(format!(
                "query of {} bytes; at most {MAX_QUERY_BYTES} are accepted\n",
                query.len()
            ));
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
        let mut options = QueryOptions::default();
        for (key, value) in pairs {
            match key.as_str() {
                "verbose" => options.verbose = value != "false" && value != "0",
                "exclude" => options.exclude.push(value),
                _ => {}
            }
        }
        if options.exclude.len() > MAX_EXCLUDES {
            return Err(format!(
                "{} excludes; at most {MAX_EXCLUDES} are accepted\n",
                options.exclude.len()
            ));
        }
        Ok(options)
    }
}

mod go_mux;

#[cfg(test)]
mod tests;
