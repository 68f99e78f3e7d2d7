//! The Docker Engine API calls the Docker actions make, over a Unix socket with hyper's HTTP/1
//! client: a ping, the labelled containers, stop/start/restart, and the event stream.
//!
//! Five endpoints do not need a Docker SDK (bollard brings its own models of the whole API, and
//! with them more binary than the rest of mount-monitor). Each call opens its own connection: a
//! Unix socket connects in microseconds, and no connection is left half-used when dockerd
//! restarts.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode, header};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::policy::{self, Container, Policy};
use crate::status::docker::Action;

/// Docker's own default socket.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// The deadline of a call but stop and restart, which wait for the container's stop timeout.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Stop and restart wait up to the container's own stop timeout (10 s by default; compose's
/// `stop_grace_period` may set more) before the Engine answers.
pub const ACTION_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The largest answer read: the list of labelled containers is a few KiB per container.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// The socket to use, from `DOCKER_HOST` (as the docker CLI reads it): `unix://PATH`, or unset
/// for Docker's default. Other schemes are refused: the actions speak only to a local socket.
pub fn socket_from_docker_host(docker_host: Option<&str>) -> Result<PathBuf, String> {
    let Some(host) = docker_host.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(PathBuf::from(DEFAULT_SOCKET));
    };
    match host.strip_prefix("unix://") {
        Some(path) if path.starts_with('/') => Ok(PathBuf::from(path)),
        Some(_) => Err(format!(
            "DOCKER_HOST={host:?}: the socket path must be absolute, e.g. unix:///var/run/docker.sock"
        )),
        None => Err(format!(
            "DOCKER_HOST={host:?}: --docker-actions talks to Docker only over a Unix socket; set DOCKER_HOST=unix:///path/to/docker.sock, or unset it for {DEFAULT_SOCKET}"
        )),
    }
}

/// A failed call. The message names the socket or the Engine's answer.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot connect to the Docker socket {path}: {source}")]
    Connect { path: PathBuf, source: io::Error },
    #[error("HTTP exchange with the Docker Engine failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("HTTP exchange with the Docker Engine failed: {0}")]
    Body(String),
    #[error("the Docker Engine did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the Docker Engine answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("the Docker Engine's answer is not the expected JSON: {0}")]
    Decode(#[from] serde_json::Error),
}

/// How an action call ended, from the Engine's status code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Done {
    /// 204: done.
    Done,
    /// 304 (already in that state) or 404 (gone): nothing to do.
    Nothing(&'static str),
}

/// The Engine at one Unix socket.
#[derive(Clone, Debug)]
pub struct Engine {
    socket: PathBuf,
}

impl Engine {
    pub fn new(socket: PathBuf) -> Engine {
        Engine { socket }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET /_ping`: the socket is there and the Engine answers.
    pub async fn ping(&self) -> Result<(), EngineError> {
        self.call(Method::GET, "/_ping", TIMEOUT).await.map(drop)
    }

    /// Every container (running or not) with the `depends-on` label.
    pub async fn containers(&self) -> Result<Vec<Container>, EngineError> {
        let path = format!("/containers/json?all=true&filters={}", label_filter(false));
        let body = self.call(Method::GET, &path, TIMEOUT).await?;
        let list: Value = serde_json::from_slice(&body)?;
        Ok(list
            .as_array()
            .map(|items| items.iter().filter_map(container).collect())
            .unwrap_or_default())
    }

    /// Stops, starts or restarts a container (with its own stop timeout).
    pub async fn act(&self, id: &str, action: Action) -> Result<Done, EngineError> {
        let id = utf8_percent_encode(id, NON_ALPHANUMERIC);
        let path = format!("/containers/{id}/{}", action.as_str());
        match self.call(Method::POST, &path, ACTION_TIMEOUT).await {
            Ok(_) => Ok(Done::Done),
            Err(EngineError::Status { status: 304, .. }) => Ok(Done::Nothing(match action {
                Action::Stop => "already stopped",
                Action::Start | Action::Restart => "already running",
            })),
            Err(EngineError::Status { status: 404, .. }) => Ok(Done::Nothing("no such container")),
            Err(e) => Err(e),
        }
    }

    /// `GET /events` for containers with the label: the open stream, one JSON object a line.
    pub async fn events(&self) -> Result<Incoming, EngineError> {
        let path = format!("/events?filters={}", label_filter(true));
        let response = self.send(Method::GET, &path, TIMEOUT).await?;
        if !response.status().is_success() {
            let status = response.status();
            let body = read(response.into_body(), TIMEOUT).await?;
            return Err(status_error(status, &body));
        }
        Ok(response.into_body())
    }

    async fn connect(&self) -> Result<tokio::net::UnixStream, EngineError> {
        tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| EngineError::Connect {
                path: self.socket.clone(),
                source,
            })
    }

    /// Sends one request on its own connection; the answer's head within `timeout`.
    async fn send(
        &self,
        method: Method,
        path: &str,
        timeout: Duration,
    ) -> Result<Response<Incoming>, EngineError> {
        let exchange = async {
            let stream = self.connect().await?;
            let (mut sender, connection) = crate::api_client::handshake(stream).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "docker connection ended");
                }
            });
            let request = Request::builder()
                .method(method)
                .uri(path)
                // HTTP/1.1 requires a Host; the Engine ignores its value on a Unix socket.
                .header(header::HOST, "docker")
                .body(Full::new(Bytes::new()))
                .map_err(|e| EngineError::Body(e.to_string()))?;
            Ok(sender.send_request(request).await?)
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| EngineError::Timeout(timeout))?
    }

    /// One call, its answer read whole; an error status is an error with the Engine's message.
    async fn call(
        &self,
        method: Method,
        path: &str,
        timeout: Duration,
    ) -> Result<Bytes, EngineError> {
        let started = tokio::time::Instant::now();
        let response = self.send(method, path, timeout).await?;
        let status = response.status();
        let left = timeout.saturating_sub(started.elapsed());
        let body = read(response.into_body(), left).await?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(status_error(status, &body))
        }
    }
}

async fn read(body: Incoming, timeout: Duration) -> Result<Bytes, EngineError> {
    let collected = tokio::time::timeout(timeout, Limited::new(body, MAX_RESPONSE_BYTES).collect())
        .await
        .map_err(|_| EngineError::Timeout(timeout))?;
    collected
        .map(|c| c.to_bytes())
        .map_err(|e| EngineError::Body(e.to_string()))
}

/// The Engine's `{"message": …}`, else the start of the body.
fn status_error(status: StatusCode, body: &[u8]) -> EngineError {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            text.chars().take(200).collect::<String>().trim().to_owned()
        });
    EngineError::Status {
        status: status.as_u16(),
        message,
    }
}

/// `{"label":["mount-monitor.depends-on"]}` (and `"type":["container"]` for events), encoded
/// for a query string.
fn label_filter(events: bool) -> String {
    let filter = if events {
        serde_json::json!({"label": [policy::DEPENDS_ON], "type": ["container"]})
    } else {
        serde_json::json!({"label": [policy::DEPENDS_ON]})
    };
    utf8_percent_encode(&filter.to_string(), NON_ALPHANUMERIC).to_string()
}

/// One entry of `GET /containers/json`.
pub fn container(item: &Value) -> Option<Container> {
    let id = item["Id"].as_str()?.to_owned();
    let name = item["Names"][0]
        .as_str()
        .map(|n| n.trim_start_matches('/').to_owned())
        .unwrap_or_else(|| id.chars().take(12).collect());
    let labels = &item["Labels"];
    Some(Container {
        id,
        name,
        // "created", "restarting", "running", "removing", "paused", "exited" or "dead": a
        // restarting or paused container holds its files as a running one does.
        running: matches!(
            item["State"].as_str(),
            Some("running" | "restarting" | "paused")
        ),
        policy: Policy::from_labels(|key| labels[key].as_str()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::policy::{OnFailure, OnRecovery};

    #[test]
    fn docker_host_is_a_unix_socket_or_unset() {
        assert_eq!(
            socket_from_docker_host(None).unwrap(),
            Path::new(DEFAULT_SOCKET)
        );
        assert_eq!(
            socket_from_docker_host(Some(" ")).unwrap(),
            Path::new(DEFAULT_SOCKET)
        );
        assert_eq!(
            socket_from_docker_host(Some("unix:///run/user/1000/docker.sock")).unwrap(),
            Path::new("/run/user/1000/docker.sock")
        );
        assert_eq!(
            socket_from_docker_host(Some("tcp://127.0.0.1:2375")).unwrap_err(),
            "DOCKER_HOST=\"tcp://127.0.0.1:2375\": --docker-actions talks to Docker only over a Unix socket; set DOCKER_HOST=unix:///path/to/docker.sock, or unset it for /var/run/docker.sock"
        );
        assert!(
            socket_from_docker_host(Some("unix://docker.sock"))
                .unwrap_err()
                .contains("must be absolute")
        );
    }

    #[test]
    fn the_container_list_is_read_with_labels_and_state() {
        let list = serde_json::json!([
            {"Id": "abc", "Names": ["/plex"], "State": "running",
             "Labels": {"mount-monitor.depends-on": "media", "mount-monitor.on-recovery": "restart"}},
            {"Id": "def", "Names": ["/rclone"], "State": "exited",
             "Labels": {"mount-monitor.depends-on": "media", "mount-monitor.on-failure": "restart"}},
            {"Names": ["/no-id"]}
        ]);
        let containers: Vec<Container> = list
            .as_array()
            .unwrap()
            .iter()
            .filter_map(container)
            .collect();
        assert_eq!(containers.len(), 2);
        assert_eq!(
            (containers[0].name.as_str(), containers[0].running),
            ("plex", true)
        );
        let plex = containers[0].policy.as_ref().unwrap();
        assert_eq!(
            (plex.on_failure, plex.on_recovery),
            (OnFailure::Stop, OnRecovery::Restart)
        );
        assert_eq!(
            (containers[1].name.as_str(), containers[1].running),
            ("rclone", false)
        );
    }

    #[test]
    fn filters_are_encoded_for_the_query_string() {
        assert_eq!(
            label_filter(true),
            "%7B%22label%22%3A%5B%22mount%2Dmonitor%2Edepends%2Don%22%5D%2C%22type%22%3A%5B%22container%22%5D%7D"
        );
    }

    #[tokio::test]
    async fn a_missing_socket_is_named() {
        let engine = Engine::new(PathBuf::from("/nonexistent/docker.sock"));
        let e = engine.ping().await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot connect to the Docker socket /nonexistent/docker.sock: "),
            "{e}"
        );
    }
}
