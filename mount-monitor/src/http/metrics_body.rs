//! `/metrics` assembled: the mounts' families, rendered once per snapshot, joined with the
//! actors' families, which change between snapshots (rendered again only when they do).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::cache::{Cache, Composed, Kept, Rendered, compact, rendered};
use crate::snapshot::Shared;

/// `/metrics`: the mounts' families from the render cache, the actors' families as of their
/// latest change.
pub(super) async fn metrics(
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
    // The actors (watchdog, Docker actions) change between snapshots: their families (a few
    // hundred bytes) are rendered, and the whole body assembled, only when their change counts
    // or the mounts' part moved; a scrape in between compares two numbers and a pointer.
    let changes = [
        shared.watchdog.changes(),
        if shared.settings.docker_actions {
            shared.docker.changes()
        } else {
            0
        },
    ];
    let mut composed = bodies.metrics_with_actors[index]
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let body = match composed.as_ref() {
        // The same kept body (the same bytes, not equal ones: no comparing megabytes).
        Some(kept)
            if kept.mounts.as_ptr() == mounts.as_ptr()
                && kept.mounts.len() == mounts.len()
                && kept.changes == changes =>
        {
            kept.body.clone()
        }
        _ => {
            // Rendered after the counts were read: at least as new as they say.
            let mut actors = crate::metrics::render_watchdog(&shared.watchdog, format);
            if shared.settings.docker_actions {
                actors.push_str(&crate::metrics::render_docker(&shared.docker, format));
            }
            let body = with_families(&mounts, &actors, format);
            *composed = Some(Composed {
                mounts,
                changes,
                body: body.clone(),
            });
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
    crate::body_file::keep(body)
}
