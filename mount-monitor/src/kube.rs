//! The Kubernetes API calls the watchdog makes, over hyper's HTTP/1 client and rustls.
//!
//! Four REST calls (an access review, a pod read, an event, a pod delete) do not need kube-rs:
//! its client, with its config loading, watchers and generated API types, would add more
//! compile time and binary than the rest of mount-monitor. debrid-mount-monitor made the same
//! choice with Go's plain HTTP client over client-go.
//!
//! Each call opens its own connection: a watchdog makes at most a handful of calls in a pod's
//! lifetime, so a connection pool would only keep sockets open for nothing. Each call also reads
//! the service account's files again: the kubelet rotates the projected token (every hour by
//! default), and a token read once at start would expire in a long-lived pod.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, header};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};

mod tls;

/// Where Kubernetes mounts a pod's service account: `token`, `ca.crt` and `namespace`.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Points the client at another service account directory: for a token projected elsewhere
/// (with `automountServiceAccountToken: false`), and for tests against an API server double.
pub const SERVICE_ACCOUNT_DIR_ENV: &str = "MOUNT_MONITOR_SERVICE_ACCOUNT_DIR";

/// The deadline of one call: connecting, TLS, the request and the whole answer (client-go's
/// default).
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer read. The API server's answers to these calls are a few KiB; a larger
/// one is not the API server, and must not take the sidecar's memory.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Where the API server is and how to authenticate to it, as Kubernetes tells a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// `KUBERNETES_SERVICE_HOST`: an IP address (IPv4 or IPv6) or a DNS name.
    pub host: String,
    /// `KUBERNETES_SERVICE_PORT`.
    pub port: u16,
    pub token_file: PathBuf,
    pub ca_file: PathBuf,
    pub namespace_file: PathBuf,
}

/// Why the process is not a pod that can reach its API server.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotInCluster {
    /// No service account token: not in Kubernetes (or `automountServiceAccountToken: false`).
    #[error("no service account token at {0}")]
    NoToken(PathBuf),
    /// A token, but no usable address of the API server: a pod whose environment was changed.
    #[error("{0}")]
    NoApiServer(String),
}

impl Cluster {
    /// The cluster a pod is in, from its environment (`env`) and its service account directory.
    pub fn discover(env: impl Fn(&str) -> Option<String>) -> Result<Cluster, NotInCluster> {
        let dir = env(SERVICE_ACCOUNT_DIR_ENV)
            .filter(|d| !d.is_empty())
            .map_or_else(|| PathBuf::from(SERVICE_ACCOUNT_DIR), PathBuf::from);
        let token_file = dir.join("token");
        if !token_file.exists() {
            return Err(NotInCluster::NoToken(token_file));
        }
        let host = env("KUBERNETES_SERVICE_HOST")
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .ok_or_else(|| {
                NotInCluster::NoApiServer(
                    "KUBERNETES_SERVICE_HOST is not set; Kubernetes sets it in every container, so \
                     check that nothing in the pod spec overrides it"
                        .to_owned(),
                )
            })?;
        let port = env("KUBERNETES_SERVICE_PORT").unwrap_or_default();
        let port = port.trim().parse::<u16>().map_err(|_| {
            NotInCluster::NoApiServer(format!(
                "KUBERNETES_SERVICE_PORT {port:?} is not a port number; Kubernetes sets it in \
                 every container, so check that nothing in the pod spec overrides it"
            ))
        })?;
        Ok(Cluster {
            host,
            port,
            token_file,
            ca_file: dir.join("ca.crt"),
            namespace_file: dir.join("namespace"),
        })
    }

    /// `host:port` as it goes in the `Host` header and in messages (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The namespace in the service account's `namespace` file.
    pub fn namespace(&self) -> Result<String, KubeError> {
        let text = std::fs::read_to_string(&self.namespace_file).map_err(|source| {
            KubeError::ServiceAccount {
                path: self.namespace_file.clone(),
                source,
            }
        })?;
        Ok(text.trim().to_owned())
    }
}

/// A failed call. The message names the file, the address or the answer.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cannot read {path}: {source}")]
    ServiceAccount { path: PathBuf, source: io::Error },
    #[error("the service account token {0} is empty")]
    EmptyToken(PathBuf),
    #[error("{path} holds no usable PEM certificate{detail}; it must be the cluster's CA bundle")]
    CaCertificate { path: PathBuf, detail: String },
    #[error("{0:?} is not a valid address for TLS (KUBERNETES_SERVICE_HOST)")]
    ServerName(String),
    #[error("cannot connect to the API server at {authority}: {source}")]
    Connect {
        authority: String,
        source: io::Error,
    },
    #[error(
        "TLS handshake with the API server at {authority} failed: {source} (the server is verified against {})",
        ca.display()
    )]
    Tls {
        authority: String,
        ca: PathBuf,
        source: io::Error,
    },
    #[error("HTTP exchange with the API server failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("HTTP exchange with the API server failed: {0}")]
    Body(String),
    #[error("the API server did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the API server's answer is larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error("the API server answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("the API server's answer is not the expected JSON: {0}")]
    Decode(#[from] serde_json::Error),
}

/// An answer of the API server, read whole (up to [`MAX_RESPONSE_BYTES`]).
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Reply {
    /// What went wrong, as a person reads it: the `message` of a Kubernetes `Status` object,
    /// else the start of the body.
    pub fn message(&self) -> String {
        let status_message = serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned));
        status_message.unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&self.body);
            let text: String = text.chars().take(200).collect();
            if text.trim().is_empty() {
                self.status
                    .canonical_reason()
                    .unwrap_or("no message")
                    .to_owned()
            } else {
                text.trim().to_owned()
            }
        })
    }

    fn into_status_error(self) -> KubeError {
        KubeError::Status {
            status: self.status.as_u16(),
            message: self.message(),
        }
    }
}

/// The API server's verdict on a `SelfSubjectAccessReview`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Review {
    pub allowed: bool,
    /// Why, when the authorizer says (RBAC says nothing when it denies).
    pub reason: Option<String>,
}

/// What the watchdog needs to know about its pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodLookup {
    /// 404: the pod is gone already.
    Gone,
    Found(PodFacts),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodFacts {
    /// `metadata.deletionTimestamp` is set: the pod is being deleted.
    pub terminating: bool,
    /// `metadata.creationTimestamp`.
    pub created: Option<SystemTime>,
    /// `metadata.uid`, for the event's `involvedObject`.
    pub uid: Option<String>,
}

impl PodFacts {
    /// Reads a `Pod` object.
    pub fn from_json(pod: &Value) -> PodFacts {
        let metadata = &pod["metadata"];
        PodFacts {
            terminating: !metadata["deletionTimestamp"].is_null(),
            created: metadata["creationTimestamp"]
                .as_str()
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok()),
            uid: metadata["uid"].as_str().map(str::to_owned),
        }
    }
}

/// A Kubernetes `Event` about the pod, as `kubectl describe pod` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodEvent {
    pub reason: &'static str,
    pub message: String,
    pub pod: String,
    pub pod_uid: Option<String>,
}

/// The `source.component` of our events.
pub const EVENT_COMPONENT: &str = "mount-monitor-watchdog";

/// The body of the access review: may this service account delete pods in `namespace`?
pub fn access_review_body(namespace: &str) -> Value {
    json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {
                "verb": "delete",
                "resource": "pods",
                "namespace": namespace,
            }
        }
    })
}

/// The body of an `Event` about `event.pod`, created at `now`.
pub fn event_body(namespace: &str, event: &PodEvent, now: SystemTime) -> Value {
    let at = humantime::format_rfc3339_seconds(now).to_string();
    let nanos = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // kubectl's and the kubelet's convention: `<object>.<unique hex>`; a name is at most 253
    // characters, a pod name too, so the pod part is shortened to leave room.
    let pod_part: String = event.pod.chars().take(200).collect();
    let mut involved = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "name": event.pod,
        "namespace": namespace,
    });
    if let Some(uid) = &event.pod_uid {
        involved["uid"] = json!(uid);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": format!("{pod_part}.{nanos:x}"),
            "namespace": namespace,
        },
        "involvedObject": involved,
        "reason": event.reason,
        "message": event.message,
        "type": "Warning",
        "firstTimestamp": at,
        "lastTimestamp": at,
        "count": 1,
        "source": { "component": EVENT_COMPONENT },
    })
}

/// A name that can stand in an API path: a DNS subdomain, as pod and namespace names are
/// (so never `..`, a `/` or anything to escape).
pub fn is_object_name(name: &str) -> bool {
    let alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = name.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            bytes.len() <= 253
                && alphanumeric(first)
                && alphanumeric(last)
                && bytes
                    .iter()
                    .all(|&b| alphanumeric(b) || b == b'-' || b == b'.')
        }
        _ => false,
    }
}

/// The client: a [`Cluster`] and the TLS settings every call uses.
pub struct Client {
    cluster: Cluster,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl Client {
    pub fn new(cluster: Cluster) -> Client {
        Client {
            cluster,
            provider: Arc::new(tls::provider()),
        }
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`.
    pub async fn review_pod_deletion(&self, namespace: &str) -> Result<Review, KubeError> {
        let reply = self
            .call(
                Method::POST,
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                Some(access_review_body(namespace)),
                TIMEOUT,
            )
            .await?;
        if !reply.status.is_success() {
            return Err(reply.into_status_error());
        }
        let review: Value = serde_json::from_slice(&reply.body)?;
        let status = &review["status"];
        Ok(Review {
            allowed: status["allowed"].as_bool().unwrap_or(false),
            reason: status["reason"]
                .as_str()
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
        })
    }

    /// `GET /api/v1/namespaces/{namespace}/pods/{name}`.
    pub async fn pod(&self, namespace: &str, name: &str) -> Result<PodLookup, KubeError> {
        let reply = self
            .call(Method::GET, &pod_path(namespace, name), None, TIMEOUT)
            .await?;
        match reply.status {
            StatusCode::NOT_FOUND => Ok(PodLookup::Gone),
            StatusCode::OK => {
                let pod: Value = serde_json::from_slice(&reply.body)?;
                Ok(PodLookup::Found(PodFacts::from_json(&pod)))
            }
            _ => Err(reply.into_status_error()),
        }
    }

    /// `POST /api/v1/namespaces/{namespace}/events`, within `timeout`.
    pub async fn create_event(
        &self,
        namespace: &str,
        event: &PodEvent,
        timeout: Duration,
    ) -> Result<(), KubeError> {
        let body = event_body(namespace, event, SystemTime::now());
        let path = format!("/api/v1/namespaces/{namespace}/events");
        let reply = self.call(Method::POST, &path, Some(body), timeout).await?;
        if reply.status.is_success() {
            Ok(())
        } else {
            Err(reply.into_status_error())
        }
    }

    /// `DELETE /api/v1/namespaces/{namespace}/pods/{name}`, no body: the pod's own grace
    /// period. The answer is for the caller to classify.
    pub async fn delete_pod(&self, namespace: &str, name: &str) -> Result<Reply, KubeError> {
        self.call(Method::DELETE, &pod_path(namespace, name), None, TIMEOUT)
            .await
    }

    /// One request on a new connection, all of it within `timeout`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        timeout: Duration,
    ) -> Result<Reply, KubeError> {
        tokio::time::timeout(timeout, self.exchange(method, path, body))
            .await
            .unwrap_or(Err(KubeError::Timeout(timeout)))
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Reply, KubeError> {
        let cluster = &self.cluster;
        let authority = cluster.authority();
        let token = read_token(&cluster.token_file)?;
        let tls = self.tls_config()?;
        let server_name = ServerName::try_from(cluster.host.clone())
            .map_err(|_| KubeError::ServerName(cluster.host.clone()))?;

        let tcp = tokio::net::TcpStream::connect((cluster.host.as_str(), cluster.port))
            .await
            .map_err(|source| KubeError::Connect {
                authority: authority.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(server_name, tcp)
            .await
            .map_err(|source| KubeError::Tls {
                authority: authority.clone(),
                ca: cluster.ca_file.clone(),
                source,
            })?;
        let (mut sender, connection) = crate::api_client::handshake(stream).await?;
        // The connection's I/O runs beside the request; it ends with this call, whether the call
        // completes, fails or is dropped at its deadline.
        let driver = AbortOnDrop(tokio::spawn(async move {
            let _ = connection.await;
        }));

        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, authority)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                format!("mount-monitor/{}", crate::VERSION),
            );
        let payload = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(&body)?)
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(payload))
            .map_err(|e| KubeError::Body(e.to_string()))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    KubeError::TooLarge
                } else {
                    KubeError::Body(e.to_string())
                }
            })?
            .to_bytes();
        drop(driver);
        Ok(Reply { status, body })
    }

    /// TLS 1.2 or 1.3, the server verified against the cluster's CA and nothing else (no system
    /// roots: the API server's certificate is issued by the cluster's own CA).
    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, KubeError> {
        let path = &self.cluster.ca_file;
        let pem = std::fs::read(path).map_err(|source| KubeError::ServiceAccount {
            path: path.clone(),
            source,
        })?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| KubeError::CaCertificate {
                path: path.clone(),
                detail: format!(" ({e})"),
            })?;
            roots.add(cert).map_err(|e| KubeError::CaCertificate {
                path: path.clone(),
                detail: format!(" ({e})"),
            })?;
        }
        if roots.is_empty() {
            return Err(KubeError::CaCertificate {
                path: path.clone(),
                detail: String::new(),
            });
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| KubeError::Body(format!("TLS settings: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

fn pod_path(namespace: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/pods/{name}")
}

fn read_token(path: &Path) -> Result<String, KubeError> {
    let text = std::fs::read_to_string(path).map_err(|source| KubeError::ServiceAccount {
        path: path.to_owned(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(KubeError::EmptyToken(path.to_owned()));
    }
    Ok(token.to_owned())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests;
