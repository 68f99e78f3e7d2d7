//! The HTTP API. Handlers only read the latest [`Snapshot`](crate::snapshot::Snapshot); they never
//! touch a filesystem.
//!
//! This file holds the routes; `body` the JSON bodies, `cache` the bodies kept per snapshot,
//! `metrics_body` the assembly of `/metrics`, `readyz` the addressing and query of
//! `/readyz`, and `go_mux` Go's `ServeMux` behaviours that clients rely on.

mod body;
mod cache;
mod go_mux;
mod metrics_body;
mod readyz;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};

use crate::snapshot::{MountView, Shared};
use crate::state::Health;
use body::status_json;
use cache::Cache;
use metrics_body::metrics;
use readyz::{Addressed, QueryOptions, label, readyz_body};

pub use body::{MountJson, StatusBody};
pub use readyz::{MAX_EXCLUDES, MAX_QUERY_BYTES, readyz_path};

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
    let ready = snapshot.is_ready();
    status_json(&cache, &snapshot, ready, Some(&shared)).await
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
    // One hash lookup per mount: O(mounts + excludes), whatever the number of either (and none
    // without excludes). Walked twice, for the verdict and for a body that lists them, never
    // collected.
    let excluded = Addressed::new(options.exclude.iter().map(String::as_str));
    let mounts = || {
        snapshot
            .mounts
            .iter()
            .map(Arc::as_ref)
            .filter(|m| !excluded.contains(&label(m)))
    };
    // Optional mounts are listed, but do not hold the pod unready.
    let ok = snapshot.initialized && crate::snapshot::all_healthy(mounts());
    text(
        ok,
        readyz_body(mounts(), ok, options.verbose, snapshot.initialized),
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
    text(ok, readyz_body(views, ok, options.verbose, true))
}

fn text(ok: bool, body: String) -> Response {
    (
        code(ok),
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests;
