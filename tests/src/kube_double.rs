//! A double of the Kubernetes API server for the watchdog's end-to-end tests: HTTPS on
//! 127.0.0.1 with a certificate from a CA made for the test, answering the four calls the
//! watchdog makes as an API server with one pod would, and recording every request.
//!
//! The service account directory (token, ca.crt, namespace) is a temporary directory that the
//! binary reads through `MOUNT_MONITOR_SERVICE_ACCOUNT_DIR`: a mount namespace with a bind mount
//! over /var/run/secrets/… would not see the tests' later unmounts (the host's mounts are
//! private here, so nothing propagates into a new namespace), and the variable is a documented
//! setting of the binary for tokens projected elsewhere.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};

/// The pod and namespace of the double, and what the tests set as `POD_NAME`/`POD_NAMESPACE`.
pub const POD: &str = "media-server-7d9c5-x2x4b";
pub const NAMESPACE: &str = "media";

pub const REVIEW_PATH: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";

pub fn pod_path() -> String {
    format!("/api/v1/namespaces/{NAMESPACE}/pods/{POD}")
}

pub fn events_path() -> String {
    format!("/api/v1/namespaces/{NAMESPACE}/events")
}

/// One request as the double received it.
#[derive(Clone, Debug)]
pub struct Request {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    /// The JSON body; `Null` when there was none.
    pub body: Value,
}

impl Request {
    /// `METHOD path`, to compare sequences of requests at a glance.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// How the double behaves: an API server with one pod.
#[derive(Clone, Debug)]
pub struct Api {
    /// The access review's `status.allowed`.
    pub allowed: bool,
    /// The pod's `creationTimestamp`.
    pub pod_created: SystemTime,
    /// The pod has a `deletionTimestamp`.
    pub terminating: bool,
    /// The status of each DELETE in turn; 200 once they are used up.
    pub delete_statuses: Vec<u16>,
    /// The access review's answer is padded past 1 MiB.
    pub oversized_review: bool,
}

impl Default for Api {
    fn default() -> Self {
        Api {
            allowed: true,
            pod_created: SystemTime::now() - Duration::from_secs(3600),
            terminating: false,
            delete_statuses: Vec::new(),
            oversized_review: false,
        }
    }
}

impl Api {
    fn answer(&self, request: &Request, deletes_before: usize) -> (u16, Value) {
        let at = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
        let pod = || {
            let mut metadata = json!({
                "name": POD,
                "namespace": NAMESPACE,
                "uid": "0b4cd6a4-9e1f-4c57-8f0e-9d2d7a1c3e55",
                "creationTimestamp": at(self.pod_created),
            });
            if self.terminating {
                metadata["deletionTimestamp"] = json!(at(SystemTime::now()));
            }
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
                   "spec": {"containers": []}, "status": {"phase": "Running"}})
        };
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", REVIEW_PATH) => {
                let mut review = request.body.clone();
                review["status"] = if self.allowed {
                    json!({"allowed": true, "reason": "RBAC: allowed by RoleBinding \"mount-monitor-watchdog/media\""})
                } else {
                    json!({"allowed": false})
                };
                if self.oversized_review {
                    review["metadata"] = json!({"annotations": {"padding": "x".repeat(1_100_000)}});
                }
                (201, review)
            }
            ("GET", path) if path == pod_path() => (200, pod()),
            ("POST", path) if path == events_path() => (201, request.body.clone()),
            ("DELETE", path) if path == pod_path() => {
                let status = self
                    .delete_statuses
                    .get(deletes_before)
                    .copied()
                    .unwrap_or(200);
                if status == 200 {
                    (200, pod())
                } else {
                    (status, status_object(status))
                }
            }
            _ => (404, status_object(404)),
        }
    }
}

/// A Kubernetes `Status` object for an error answer.
pub fn status_object(code: u16) -> Value {
    let (reason, message) = match code {
        401 => ("Unauthorized", "Unauthorized".to_owned()),
        403 => (
            "Forbidden",
            format!(
                "pods \"{POD}\" is forbidden: User \"system:serviceaccount:{NAMESPACE}:mount-monitor\" cannot delete resource \"pods\" in API group \"\" in the namespace \"{NAMESPACE}\""
            ),
        ),
        404 => (
            "NotFound",
            "the server could not find the requested resource".to_owned(),
        ),
        500 => (
            "InternalError",
            "Internal error occurred: etcdserver: request timed out".to_owned(),
        ),
        _ => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request".to_owned(),
        ),
    };
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

/// The running double; stopped on drop.
pub struct KubeDouble {
    addr: SocketAddr,
    /// The CA the binary is told to trust (`ca.crt`).
    ca_pem: String,
    requests: Arc<Mutex<Vec<Request>>>,
    handshake_failures: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl KubeDouble {
    /// A double whose certificate is issued by the CA in [`KubeDouble::ca_pem`].
    pub fn start(api: Api) -> KubeDouble {
        Self::start_inner(api, false, false)
    }

    /// A double whose certificate is issued by another CA than the one in `ca_pem`: an API
    /// server the binary must not trust.
    pub fn start_untrusted(api: Api) -> KubeDouble {
        Self::start_inner(api, true, false)
    }

    /// A double that speaks TLS 1.2 only.
    pub fn start_tls12_only(api: Api) -> KubeDouble {
        Self::start_inner(api, false, true)
    }

    fn start_inner(api: Api, foreign: bool, tls12_only: bool) -> KubeDouble {
        let (trusted, trusted_pem) = ca("kubernetes-double-ca");
        let (server_chain, server_key) = if foreign {
            let (other, _) = ca("another-ca");
            server_certificate(&other)
        } else {
            server_certificate(&trusted)
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
            &[&rustls::version::TLS12]
        } else {
            rustls::DEFAULT_VERSIONS
        };
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("ring supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_single_cert(server_chain, server_key)
            .expect("a valid server certificate");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the API server double");
        let addr = listener.local_addr().expect("local address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handshake_failures = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (recorded, failures, stopping) = (
            Arc::clone(&requests),
            Arc::clone(&handshake_failures),
            Arc::clone(&stop),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (config, api) = (Arc::clone(&config), api.clone());
                let (recorded, failures) = (Arc::clone(&recorded), Arc::clone(&failures));
                std::thread::spawn(move || {
                    serve_one(stream, config, &api, &recorded, &failures);
                });
            }
        });
        KubeDouble {
            addr,
            ca_pem: trusted_pem,
            requests,
            handshake_failures,
            stop,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Every request completed so far, in the order they arrived.
    pub fn requests(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `METHOD path` of every request so far.
    pub fn lines(&self) -> Vec<String> {
        self.requests().iter().map(Request::line).collect()
    }

    /// Connections that ended before a request (the client refused the certificate, say).
    pub fn handshake_failures(&self) -> Vec<String> {
        self.handshake_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits for a connection that ended before a request; its error, or `None` after `limit`.
    pub fn wait_for_handshake_failure(&self, limit: Duration) -> Option<String> {
        let started = Instant::now();
        loop {
            if let Some(failure) = self.handshake_failures().into_iter().next() {
                return Some(failure);
            }
            if started.elapsed() >= limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `count` requests have arrived; panics with those there are after `limit`.
    pub fn wait_for_requests(&self, count: usize, limit: Duration) -> Vec<Request> {
        let started = Instant::now();
        loop {
            let requests = self.requests();
            if requests.len() >= count {
                return requests;
            }
            assert!(
                started.elapsed() < limit,
                "wanted {count} requests within {limit:?}, got {:?}",
                self.lines()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The environment of a container in the double's pod, with `service_account` mounted.
    pub fn in_pod(&self, command: &mut Command, service_account: &Path) {
        command
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env("KUBERNETES_SERVICE_PORT", self.port().to_string())
            .env("MOUNT_MONITOR_SERVICE_ACCOUNT_DIR", service_account)
            .env("POD_NAME", POD)
            .env("POD_NAMESPACE", NAMESPACE);
    }
}

impl Drop for KubeDouble {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// A service account directory: `token`, `ca.crt` and (unless `None`) `namespace`.
pub struct ServiceAccount {
    dir: tempfile::TempDir,
}

impl ServiceAccount {
    pub fn new(ca_pem: &str, token: &str, namespace: Option<&str>) -> ServiceAccount {
        let dir = tempfile::Builder::new()
            .prefix("mm-serviceaccount-")
            .tempdir()
            .expect("create the service account directory");
        std::fs::write(dir.path().join("ca.crt"), ca_pem).expect("write ca.crt");
        if let Some(namespace) = namespace {
            std::fs::write(dir.path().join("namespace"), namespace).expect("write namespace");
        }
        let account = ServiceAccount { dir };
        account.set_token(token);
        account
    }

    /// A directory without a token: not in a cluster.
    pub fn empty() -> ServiceAccount {
        ServiceAccount {
            dir: tempfile::Builder::new()
                .prefix("mm-serviceaccount-")
                .tempdir()
                .expect("create the service account directory"),
        }
    }

    /// Replaces the token, as the kubelet does when it rotates it.
    pub fn set_token(&self, token: &str) {
        let partial = self.dir.path().join("token.partial");
        std::fs::write(&partial, format!("{token}\n")).expect("write token");
        std::fs::rename(&partial, self.dir.path().join("token")).expect("replace token");
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

type Ca = rcgen::CertifiedIssuer<'static, rcgen::KeyPair>;

/// A new CA named `name`, and its certificate in PEM.
fn ca(name: &str) -> (Ca, String) {
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().expect("generate the CA key");
    let ca = rcgen::CertifiedIssuer::self_signed(params, key).expect("self-sign the CA");
    let pem = ca.pem();
    (ca, pem)
}

/// The API server's certificate for 127.0.0.1 (an IP SAN, as real API servers have for their
/// service IP), issued by `ca`.
fn server_certificate(ca: &Ca) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let key = rcgen::KeyPair::generate().expect("generate the server key");
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "kubernetes".to_owned()])
            .expect("valid names");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kube-apiserver");
    let cert = params
        .signed_by(&key, ca)
        .expect("sign the server certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (vec![cert.der().clone()], key)
}

/// One connection: TLS, one request, its answer, close.
fn serve_one(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    api: &Api,
    recorded: &Mutex<Vec<Request>>,
    failures: &Mutex<Vec<String>>,
) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(connection) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head_len, method, path, authorization, content_length) = loop {
        let failed = |why: String| {
            failures.lock().unwrap_or_else(|e| e.into_inner()).push(why);
        };
        match tls.read(&mut chunk) {
            Ok(0) => {
                if buffer.is_empty() {
                    failed("the client closed the connection before sending a request".into());
                }
                return;
            }
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) => {
                if buffer.is_empty() {
                    failed(e.to_string());
                }
                return;
            }
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buffer) {
            Ok(httparse::Status::Complete(len)) => {
                let header = |name: &str| {
                    request
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).into_owned())
                };
                let length = header("content-length")
                    .and_then(|l| l.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (
                    len,
                    request.method.unwrap_or("").to_owned(),
                    request.path.unwrap_or("").to_owned(),
                    header("authorization"),
                    length,
                );
            }
            Ok(httparse::Status::Partial) => continue,
            Err(_) => return,
        }
    };
    while buffer.len() < head_len + content_length {
        match tls.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    let body = &buffer[head_len..head_len + content_length];
    let request = Request {
        at: Instant::now(),
        method,
        path,
        authorization,
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
    };
    let answer = {
        let mut recorded = recorded.lock().unwrap_or_else(|e| e.into_inner());
        let deletes_before = recorded.iter().filter(|r| r.method == "DELETE").count();
        let answer = api.answer(&request, deletes_before);
        recorded.push(request);
        answer
    };
    let (status, body) = answer;
    let body = body.to_string();
    let response = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason_phrase(status),
        body.len()
    );
    let _ = tls.write_all(response.as_bytes());
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        500 => "Internal Server Error",
        _ => "Service Unavailable",
    }
}
