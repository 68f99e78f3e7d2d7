//! The JSON bodies of `/healthz/*`, shared with `check --format json`: debrid-mount-monitor's
//! objects with fields added, never renamed.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::cache::{Cache, render_status_mounts, rendered};
use super::code;
use crate::snapshot::{MountView, Shared, Snapshot};
use crate::state::{Health, timestamp};

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

    pub(super) fn status(ok: bool) -> &'static str {
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

/// A `/healthz/*` body. Its timestamp names whole seconds, so every response within one second
/// is the same bytes while the snapshot, the verdict and the actors' state stay: the body is
/// assembled once for them (the mounts' part comes from the render cache) and each response
/// shares it, instead of copying the whole body (360 KiB at 1,000 mounts) for every request.
pub(super) async fn status_json(
    cache: &Cache,
    snapshot: &Arc<Snapshot>,
    ok: bool,
    actors: Option<&Shared>,
) -> Response {
    let bodies = cache.of(snapshot);
    let mounts = rendered(
        &bodies,
        snapshot,
        |r| &r.status_mounts,
        render_status_mounts,
    )
    .await;
    let second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let key = WholeKey {
        second,
        ok,
        mounts,
        actors: actors.map(|shared| [shared.watchdog.changes(), shared.docker.changes()]),
    };
    let slot = &bodies.status_whole[usize::from(key.actors.is_some()) * 2 + usize::from(ok)];
    let mut kept = slot.lock().unwrap_or_else(|e| e.into_inner());
    let body = match kept.as_ref() {
        Some((for_key, body)) if *for_key == key => body.clone(),
        _ => {
            // The views are read after their change counts: at least as new as the key says.
            let views = actors.map(|shared| (shared.watchdog.view(), shared.docker.view()));
            let body = whole_body(&key, snapshot.blocked_checks, views.as_ref());
            *kept = Some((key, body.clone()));
            body
        }
    };
    drop(kept);
    (code(ok), [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// What a whole `/healthz/*` body is made of, besides its snapshot.
#[derive(Debug)]
pub(super) struct WholeKey {
    /// The timestamp, in seconds since the Unix epoch.
    second: u64,
    ok: bool,
    /// The mounts' part from the render cache.
    mounts: Bytes,
    /// `/healthz/status` only: the change counts of the watchdog's and the Docker actions'
    /// state ([`crate::status::Changes`]), so that a request compares two numbers rather than
    /// copying both views.
    actors: Option<[u64; 2]>,
}

impl PartialEq for WholeKey {
    fn eq(&self, other: &Self) -> bool {
        // The same kept part (the same bytes, not equal ones: no comparing megabytes).
        self.second == other.second
            && self.ok == other.ok
            && self.mounts.as_ptr() == other.mounts.as_ptr()
            && self.mounts.len() == other.mounts.len()
            && self.actors == other.actors
    }
}

fn whole_body(
    key: &WholeKey,
    blocked_checks: usize,
    actors: Option<&(crate::status::watchdog::View, crate::status::docker::View)>,
) -> Bytes {
    // `StatusBody`'s fields in its order (a test holds the two equal); neither the status nor
    // the timestamp has anything to escape.
    let mut body = Vec::with_capacity(key.mounts.len() + 128);
    let _ = write!(
        body,
        r#"{{"status":"{}","timestamp":"{}","mounts":"#,
        StatusBody::status(key.ok),
        timestamp(UNIX_EPOCH + Duration::from_secs(key.second))
    );
    body.extend_from_slice(&key.mounts);
    let _ = write!(body, r#","blocked_checks":{blocked_checks}"#);
    if let Some((watchdog, docker)) = actors {
        // Serializing plain data into memory cannot fail.
        body.extend_from_slice(br#","watchdog":"#);
        let _ = serde_json::to_writer(&mut body, watchdog);
        body.extend_from_slice(br#","docker":"#);
        let _ = serde_json::to_writer(&mut body, docker);
    }
    // Go's json.Encoder ends each body with a newline; clients comparing bodies expect it.
    body.extend_from_slice(b"}\n");
    crate::body_file::keep(body)
}
