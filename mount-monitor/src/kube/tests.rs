use super::*;
use std::collections::HashMap;

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| vars.get(name).cloned()
}

#[test]
fn not_in_cluster_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let dir_text = dir.path().display().to_string();
    let found = Cluster::discover(env(&[
        (SERVICE_ACCOUNT_DIR_ENV, &dir_text),
        ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
        ("KUBERNETES_SERVICE_PORT", "443"),
    ]));
    assert_eq!(found, Err(NotInCluster::NoToken(dir.path().join("token"))));
}

#[test]
fn a_token_without_an_api_server_address_says_which_variable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "t").unwrap();
    let dir_text = dir.path().display().to_string();
    let Err(NotInCluster::NoApiServer(why)) =
        Cluster::discover(env(&[(SERVICE_ACCOUNT_DIR_ENV, &dir_text)]))
    else {
        panic!("a missing host must be refused")
    };
    assert!(why.contains("KUBERNETES_SERVICE_HOST"), "{why}");
    let Err(NotInCluster::NoApiServer(why)) = Cluster::discover(env(&[
        (SERVICE_ACCOUNT_DIR_ENV, &dir_text),
        ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
        ("KUBERNETES_SERVICE_PORT", "https"),
    ])) else {
        panic!("a bad port must be refused")
    };
    assert!(why.contains("KUBERNETES_SERVICE_PORT \"https\""), "{why}");
}

#[test]
fn discovered_cluster_reads_the_service_account_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "t").unwrap();
    std::fs::write(dir.path().join("namespace"), "media\n").unwrap();
    let dir_text = dir.path().display().to_string();
    let cluster = Cluster::discover(env(&[
        (SERVICE_ACCOUNT_DIR_ENV, &dir_text),
        ("KUBERNETES_SERVICE_HOST", "fd00::1"),
        ("KUBERNETES_SERVICE_PORT", "443"),
    ]))
    .unwrap();
    assert_eq!(cluster.authority(), "[fd00::1]:443");
    assert_eq!(cluster.ca_file, dir.path().join("ca.crt"));
    assert_eq!(cluster.namespace().unwrap(), "media");
}

#[test]
fn the_default_directory_is_the_one_kubernetes_mounts() {
    let token = PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount/token");
    // An empty override counts as none. Whether this machine has a token decides the error,
    // never the directory looked at.
    match Cluster::discover(env(&[(SERVICE_ACCOUNT_DIR_ENV, "")])) {
        Err(NotInCluster::NoToken(path)) => assert_eq!(path, token),
        Err(NotInCluster::NoApiServer(_)) => assert!(token.exists()),
        Ok(cluster) => panic!("no KUBERNETES_SERVICE_HOST, yet {cluster:?}"),
    }
}

#[test]
fn pod_facts_from_a_pod_object() {
    let pod = json!({"metadata": {"name": "p", "uid": "u-1",
        "creationTimestamp": "2026-01-02T15:04:05Z"}});
    let facts = PodFacts::from_json(&pod);
    assert!(!facts.terminating);
    assert_eq!(facts.uid.as_deref(), Some("u-1"));
    assert_eq!(
        facts.created,
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_366_245))
    );
    let deleting = json!({"metadata": {"deletionTimestamp": "2026-01-02T15:05:00Z"}});
    let facts = PodFacts::from_json(&deleting);
    assert!(facts.terminating);
    assert_eq!(facts.created, None);
}

#[test]
fn event_names_the_pod_and_the_reason() {
    let event = PodEvent {
        reason: "WatchdogRestart",
        message: "Mount movies unhealthy after 3 consecutive failures, triggering pod restart"
            .into(),
        pod: "media-0".into(),
        pod_uid: Some("u-1".into()),
    };
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_366_245);
    let body = event_body("media", &event, at);
    assert_eq!(body["reason"], "WatchdogRestart");
    assert_eq!(body["type"], "Warning");
    assert_eq!(body["source"]["component"], "mount-monitor-watchdog");
    assert_eq!(
        body["involvedObject"],
        json!({"apiVersion": "v1", "kind": "Pod", "name": "media-0",
               "namespace": "media", "uid": "u-1"})
    );
    assert_eq!(body["metadata"]["namespace"], "media");
    let name = body["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("media-0."), "{name}");
    assert!(is_object_name(name), "{name}");
    assert_eq!(body["firstTimestamp"], "2026-01-02T15:04:05Z");
    let long = PodEvent {
        pod: "p".repeat(253),
        ..event
    };
    let name = event_body("media", &long, at)["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(is_object_name(&name), "{} characters", name.len());
}

#[test]
fn access_review_asks_to_delete_pods_in_the_namespace() {
    assert_eq!(
        access_review_body("media")["spec"]["resourceAttributes"],
        json!({"verb": "delete", "resource": "pods", "namespace": "media"})
    );
}

#[test]
fn object_names_that_can_stand_in_a_path() {
    assert!(is_object_name("media-server-7d9c-x2x4b"));
    assert!(is_object_name("a.b"));
    for bad in [
        "",
        "A",
        "a/b",
        "a b",
        "..",
        "-a",
        "a.",
        "%2f",
        &"a".repeat(254),
    ] {
        assert!(!is_object_name(bad), "{bad:?}");
    }
}

/// A CA certificate (its key is not kept: no server here completes a handshake).
const TEST_CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBhDCCASugAwIBAgIUT+zScZSY0sRql9u6D2+9VoV27+QwCgYIKoZIzj0EAwIw\nFzEVMBMGA1UEAwwMdW5pdC10ZXN0LWNhMCAXDTI2MTEyOTIwMzYzM1oYDzIxMjYx\nMTA1MjAzNjMzWjAXMRUwEwYDVQQDDAx1bml0LXRlc3QtY2EwWTATBgcqhkjOPQIB\nBggqhkjOPQMBBwNCAARcn+emLgIz4drYJk3ubjtghPWCW+UPb7AXWdnIsk6AVsdW\nzdOhmJQVDNnGuxJo6sc3y5Nq2Uh6Lv15wjUvoShyo1MwUTAdBgNVHQ4EFgQUU5ir\n5PkrfSKLGbKH9AY4tSpEHSYwHwYDVR0jBBgwFoAUU5ir5PkrfSKLGbKH9AY4tSpE\nHSYwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiB3vI/Ir4cTfBSP\nQbnAFYPBRyE+CKwLeqKWB64mMIcj0wIgKRENHsazp4ZbDaB/KFcOyuqRjWpk2Ul4\nHk3gvT52WYM=\n-----END CERTIFICATE-----\n";

/// A service account in a temporary directory, and a server on loopback that accepts
/// connections and then does `behave` with each.
async fn cluster_with_server(
    behave: fn(tokio::net::TcpStream) -> tokio::task::JoinHandle<()>,
) -> (tempfile::TempDir, Client) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "t-1\n").unwrap();
    std::fs::write(dir.path().join("ca.crt"), TEST_CA).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            behave(stream);
        }
    });
    let cluster = Cluster {
        host: "127.0.0.1".into(),
        port,
        token_file: dir.path().join("token"),
        ca_file: dir.path().join("ca.crt"),
        namespace_file: dir.path().join("namespace"),
    };
    (dir, Client::new(cluster))
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let (_dir, client) = cluster_with_server(|stream| {
        tokio::spawn(async move {
            let _held = stream;
            std::future::pending::<()>().await
        })
    })
    .await;
    let started = std::time::Instant::now();
    let result = client
        .call(Method::GET, "/version", None, Duration::from_millis(300))
        .await;
    assert!(
        matches!(result, Err(KubeError::Timeout(t)) if t == Duration::from_millis(300)),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(TIMEOUT, Duration::from_secs(30), "what the API calls use");
}

#[tokio::test]
async fn a_server_that_is_not_tls_fails_the_handshake_and_names_the_ca() {
    let (dir, client) = cluster_with_server(|stream| {
        tokio::spawn(async move {
            let _ = stream.writable().await;
            let _ = stream.try_write(b"HTTP/1.1 200 OK\r\n\r\n");
        })
    })
    .await;
    let error = client
        .call(Method::GET, "/version", None, TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(error, KubeError::Tls { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&dir.path().join("ca.crt").display().to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn service_account_files_are_read_for_every_call() {
    let (dir, client) =
        cluster_with_server(|stream| tokio::spawn(async move { drop(stream) })).await;
    std::fs::remove_file(dir.path().join("token")).unwrap();
    let error = client
        .call(Method::GET, "/", None, TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        error.to_string().starts_with(&format!(
            "cannot read {}",
            dir.path().join("token").display()
        )),
        "{error}"
    );
    std::fs::write(dir.path().join("token"), "  \n").unwrap();
    let error = client
        .call(Method::GET, "/", None, TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(error, KubeError::EmptyToken(_)), "{error:?}");
    std::fs::write(dir.path().join("token"), "t-2").unwrap();
    std::fs::write(dir.path().join("ca.crt"), "not a certificate").unwrap();
    let error = client
        .call(Method::GET, "/", None, TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("holds no usable PEM certificate"),
        "{error}"
    );
}

#[test]
fn reply_messages_come_from_status_objects() {
    let reply = Reply {
        status: StatusCode::FORBIDDEN,
        body: Bytes::from_static(
            br#"{"kind":"Status","status":"Failure","message":"pods \"p\" is forbidden","code":403}"#,
        ),
    };
    assert_eq!(reply.message(), "pods \"p\" is forbidden");
    let reply = Reply {
        status: StatusCode::BAD_GATEWAY,
        body: Bytes::new(),
    };
    assert_eq!(reply.message(), "Bad Gateway");
}
