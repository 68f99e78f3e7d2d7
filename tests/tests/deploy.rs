//! The Kubernetes examples in deploy/: every manifest parses, and what it asks of mount-monitor
//! (probe paths, ports, scrape annotations, arguments, config) is what the binary serves and
//! accepts. No cluster and no root needed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// The port the binary listens on unless told otherwise.
fn default_port() -> u16 {
    mount_monitor::config::DEFAULT_LISTEN
        .parse::<SocketAddr>()
        .expect("a valid default address")
        .port()
}

/// Whether the binary serves `path` (query string ignored); `{mount}` stands for any mount.
fn served(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or_default();
    mount_monitor::http::ROUTES
        .iter()
        .any(|route| match route.split_once("{mount}") {
            Some((prefix, "")) => path.len() > prefix.len() && path.starts_with(prefix),
            _ => *route == path,
        })
}

struct Manifest {
    file: PathBuf,
    docs: Vec<Value>,
}

fn manifests() -> Vec<Manifest> {
    let dir = tests::workspace_root().join("deploy");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).unwrap();
            let docs = serde_norway::Deserializer::from_str(&text)
                .map(|doc| {
                    Value::deserialize(doc)
                        .unwrap_or_else(|e| panic!("{}: not valid YAML: {e}", file.display()))
                })
                .filter(|doc| !doc.is_null())
                .collect();
            Manifest { file, docs }
        })
        .collect()
}

/// The pod template's metadata and spec of a workload, or of a bare Pod.
fn pod(doc: &Value) -> Option<(&Value, &Value)> {
    let template = match doc["kind"].as_str()? {
        "Pod" => doc,
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            &doc["spec"]["template"]
        }
        "CronJob" => &doc["spec"]["jobTemplate"]["spec"]["template"],
        _ => return None,
    };
    Some((&template["metadata"], &template["spec"]))
}

fn is_mount_monitor(container: &Value) -> bool {
    container["image"]
        .as_str()
        .is_some_and(|image| image.contains("mount-monitor"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A probe's port, by number or by the name of one of the container's ports.
fn probe_port(container: &Value, port: &Value) -> Option<u64> {
    port.as_u64().or_else(|| {
        let name = port.as_str()?;
        container["ports"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name)?["containerPort"]
            .as_u64()
    })
}

#[test]
fn probes_and_annotations_match_the_binary() {
    let port = u64::from(default_port());
    let (mut sidecars, mut init_containers, mut scraped) = (0, 0, 0);
    for Manifest { file, docs } in manifests() {
        let file = file.file_name().unwrap().to_string_lossy().into_owned();
        for doc in &docs {
            assert!(
                doc["apiVersion"].is_string() && doc["kind"].is_string(),
                "{file}: {doc}"
            );
            let Some((metadata, spec)) = pod(doc) else {
                continue;
            };
            // Service links would put MOUNT_MONITOR_*=tcp://… into the environment.
            assert_eq!(
                spec["enableServiceLinks"],
                Value::Bool(false),
                "{file}: set `enableServiceLinks: false` in the pod spec"
            );
            let annotations = &metadata["annotations"];
            if annotations["prometheus.io/scrape"] == "true" {
                scraped += 1;
                let path = annotations["prometheus.io/path"]
                    .as_str()
                    .unwrap_or("/metrics");
                assert!(
                    served(path) && path == "/metrics",
                    "{file}: scrape path {path}"
                );
                assert_eq!(
                    annotations["prometheus.io/port"].as_str(),
                    Some(port.to_string().as_str()),
                    "{file}: scrape port (annotation values are strings)"
                );
            }
            for (kind, list) in [
                ("containers", &spec["containers"]),
                ("initContainers", &spec["initContainers"]),
            ] {
                for c in list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| is_mount_monitor(c))
                {
                    let name = format!("{file}: {kind}/{}", c["name"].as_str().unwrap_or("?"));
                    let args = strings(&c["args"]);
                    assert!(
                        !args
                            .iter()
                            .any(|a| a.starts_with("--listen") || a.starts_with("--http-port")),
                        "{name}: the probes and annotations assume the default port {port}"
                    );
                    check_hardening(&name, c, spec);
                    let restarts_as_sidecar = c["restartPolicy"] == "Always";
                    if kind == "initContainers" && !restarts_as_sidecar {
                        init_containers += 1;
                        assert!(
                            args.first().is_some_and(|a| a == "check")
                                || args.iter().any(|a| a == "--init-container-mode"),
                            "{name}: an init container runs `check`, got {args:?}"
                        );
                        continue;
                    }
                    sidecars += 1;
                    assert!(
                        c["ports"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|p| p["containerPort"] == port),
                        "{name}: declares no containerPort {port}"
                    );
                    for (probe, wanted) in [
                        ("readinessProbe", "/readyz"),
                        ("livenessProbe", "/livez"),
                        ("startupProbe", "/livez"),
                    ] {
                        let get = &c[probe]["httpGet"];
                        let path = get["path"]
                            .as_str()
                            .unwrap_or_else(|| panic!("{name}: no {probe} with httpGet.path"));
                        assert!(served(path), "{name}: {probe} path {path} is not served");
                        assert!(
                            path == wanted || path.starts_with(&format!("{wanted}/")),
                            "{name}: {probe} on {path}, expected {wanted}"
                        );
                        assert_eq!(
                            probe_port(c, &get["port"]),
                            Some(port),
                            "{name}: {probe} port {}",
                            get["port"]
                        );
                    }
                }
            }
        }
    }
    assert!(sidecars >= 1, "no sidecar example");
    assert!(init_containers >= 1, "no init-container example");
    assert!(scraped >= 1, "no scrape annotations");
}

/// Small requests, non-root, read-only root, no capabilities; FUSE mounts propagated.
fn check_hardening(name: &str, c: &Value, spec: &Value) {
    let requests = &c["resources"]["requests"];
    assert!(
        requests["cpu"].is_string() && requests["memory"].is_string(),
        "{name}: resources.requests"
    );
    let security = &c["securityContext"];
    assert_eq!(security["runAsNonRoot"], true, "{name}: runAsNonRoot");
    assert_eq!(
        security["readOnlyRootFilesystem"], true,
        "{name}: readOnlyRootFilesystem"
    );
    assert_eq!(
        security["allowPrivilegeEscalation"], false,
        "{name}: allowPrivilegeEscalation"
    );
    assert!(
        strings(&security["capabilities"]["drop"]).contains(&"ALL".to_owned()),
        "{name}: capabilities.drop ALL"
    );
    let host_paths: Vec<&str> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["hostPath"].is_object())
        .filter_map(|v| v["name"].as_str())
        .collect();
    for mount in c["volumeMounts"].as_array().into_iter().flatten() {
        if host_paths.iter().any(|v| mount["name"] == *v) {
            assert_eq!(
                mount["mountPropagation"], "HostToContainer",
                "{name}: {} must see mounts the node makes later",
                mount["mountPath"]
            );
        }
    }
}

/// The arguments and config files of the examples are accepted by the binary: `check` with them
/// exits 0 or 1 (the mounts are not there here), never 2 (bad configuration).
#[test]
fn example_arguments_and_configs_load() {
    let mut checked = 0;
    for Manifest { file, docs } in manifests() {
        let file = file.file_name().unwrap().to_string_lossy().into_owned();
        let dir = tempfile::tempdir().unwrap();
        for doc in &docs {
            let Some((_, spec)) = pod(doc) else { continue };
            let containers = [&spec["containers"], &spec["initContainers"]];
            let all = containers
                .iter()
                .flat_map(|l| l.as_array().into_iter().flatten());
            for c in all.filter(|c| is_mount_monitor(c)) {
                let name = format!("{file}: {}", c["name"].as_str().unwrap_or("?"));
                let mut args = strings(&c["args"]);
                match args.first().map(String::as_str) {
                    Some("check") => {}
                    Some("serve") => args[0] = "check".into(),
                    _ => args.insert(0, "check".into()),
                }
                // A config file comes from a ConfigMap in the same file: write it out.
                if let Some(i) = args.iter().position(|a| a == "--config" || a == "-c") {
                    let in_pod = PathBuf::from(&args[i + 1]);
                    let text = config_map_file(&docs, spec, c, &in_pod).unwrap_or_else(|| {
                        panic!("{name}: {} is in no ConfigMap here", in_pod.display())
                    });
                    let local = dir.path().join(in_pod.file_name().unwrap());
                    std::fs::write(&local, text).unwrap();
                    args[i + 1] = local.display().to_string();
                }
                let (code, out, err) = tests::run(&args);
                assert!(
                    code == 0 || code == 1,
                    "{name}: `mount-monitor {args:?}` exited {code}:\n{out}{err}"
                );
                assert!(out.starts_with("MOUNT "), "{name}: the check table:\n{out}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 2, "checked {checked} containers");
}

/// The content of `path` in container `c`, when a ConfigMap volume in `docs` provides it.
fn config_map_file(docs: &[Value], spec: &Value, c: &Value, path: &Path) -> Option<String> {
    let mount = c["volumeMounts"].as_array()?.iter().find(|m| {
        m["mountPath"]
            .as_str()
            .is_some_and(|p| path.parent() == Some(Path::new(p)))
    })?;
    let volume = spec["volumes"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == mount["name"])?;
    let map_name = volume["configMap"]["name"].as_str()?;
    let map = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == map_name)?;
    let key = path.file_name()?.to_str()?;
    map["data"][key].as_str().map(str::to_owned)
}

#[test]
fn route_matching() {
    assert!(served("/readyz"));
    assert!(served("/readyz?verbose"));
    assert!(served("/readyz/media"));
    assert!(served("/metrics"));
    assert!(!served("/readyz/"));
    assert!(!served("/healthz"));
    assert!(!served("/metrics/extra"));
}
