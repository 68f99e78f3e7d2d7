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
        // Not Kubernetes: tests/docker_actions.rs checks the Compose example.
        .filter(|p| !p.ends_with("compose.yaml"))
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
    let mut native_sidecars = 0;
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
                    let native_sidecar = kind == "initContainers" && c["restartPolicy"] == "Always";
                    if kind == "initContainers" && !native_sidecar {
                        init_containers += 1;
                        assert!(
                            args.first().is_some_and(|a| a == "check")
                                || args.iter().any(|a| a == "--init-container-mode"),
                            "{name}: an init container runs `check`, got {args:?}"
                        );
                        continue;
                    }
                    sidecars += 1;
                    native_sidecars += usize::from(native_sidecar);
                    assert!(
                        c["ports"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|p| p["containerPort"] == port),
                        "{name}: declares no containerPort {port}"
                    );
                    // A native sidecar holds the application back until the mounts are ready;
                    // a plain one only until it serves.
                    let startup = if native_sidecar { "/readyz" } else { "/livez" };
                    for (probe, wanted) in [
                        ("readinessProbe", "/readyz"),
                        ("livenessProbe", "/livez"),
                        ("startupProbe", startup),
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
    assert!(native_sidecars >= 1, "no native-sidecar example");
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
                // The mounts are not there here: wait a second for them, not the example's minutes.
                tests::shorten_wait_timeout(&mut args, "1s");
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
                // The paths it watches, as the binary reads the arguments and the config.
                let mut json = args.clone();
                json.extend(["--format".into(), "json".into()]);
                let (_, out, err) = tests::run(&json);
                let report: Value = serde_json::from_str(&out)
                    .unwrap_or_else(|e| panic!("{name}: `check --format json` ({e}):\n{out}{err}"));
                let paths = report["mounts"].as_array().into_iter().flatten();
                for path in paths.filter_map(|m| m["path"].as_str()) {
                    assert!(
                        below_a_propagated_host_path(spec, c, Path::new(path)),
                        "{name}: {path} must lie below a hostPath volume mounted with \
                         HostToContainer, not at its mountPath: a hostPath that is a mount point \
                         when the container starts keeps that mount, whatever the node \
                         unmounts or mounts there later"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 2, "checked {checked} containers");
}

/// Whether `path` lies strictly below the mountPath of one of container `c`'s hostPath volumes,
/// mounted with propagation from the node. The node's mount is then made on a directory of
/// which the container has a copy, so that its unmount and its next mount both reach the
/// container (tests/dead_mounts.rs `a_bind_of_the_…` show either layout).
fn below_a_propagated_host_path(spec: &Value, c: &Value, path: &Path) -> bool {
    let volumes = spec["volumes"].as_array().into_iter().flatten();
    let host_paths: Vec<&Value> = volumes
        .filter(|v| v["hostPath"].is_object())
        .map(|v| &v["name"])
        .collect();
    c["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| host_paths.contains(&&m["name"]))
        .filter(|m| {
            matches!(
                m["mountPropagation"].as_str(),
                Some("HostToContainer" | "Bidirectional")
            )
        })
        .filter_map(|m| m["mountPath"].as_str())
        .any(|volume| {
            path.strip_prefix(volume)
                .is_ok_and(|rest| !rest.as_os_str().is_empty())
        })
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

/// Every manifest is valid against the Kubernetes 1.33 schemas (SidecarContainers is GA there),
/// unexpected keys included; only the Prometheus Operator's PodMonitor, a custom resource, has
/// no schema there.
#[test]
#[ignore = "needs kubernetes-validate from PyPI in .venv: cargo xtask test, as root"]
fn manifests_validate_against_the_kubernetes_schemas() {
    let tool = tests::workspace_root().join(".venv/bin/kubernetes-validate");
    assert!(
        tool.is_file(),
        "{} is not installed: `cargo xtask test` as root (or `.ci/setup`) puts it in .venv",
        tool.display()
    );
    let mut validated = 0;
    for Manifest { file, docs } in manifests() {
        let out = std::process::Command::new(&tool)
            .args(["--strict", "--kubernetes-version", "1.33.0"])
            .arg(&file)
            .output()
            .expect("run kubernetes-validate");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{}:\n{text}", file.display());
        for doc in &docs {
            let kind = doc["kind"].as_str().unwrap_or_default();
            let name = doc["metadata"]["name"].as_str().unwrap_or_default();
            let custom = doc["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("monitoring.coreos.com/"));
            let passed = format!("passed for resource {}/{name}", kind.to_lowercase());
            assert!(
                custom || text.contains(&passed),
                "{}: {kind}/{name} was not validated:\n{text}",
                file.display()
            );
            validated += usize::from(!custom);
        }
    }
    assert!(validated >= 5, "validated {validated} documents");
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

/// Every `kind` document of every manifest in deploy/, with its file's name.
fn documents_of_kind(kind: &str) -> Vec<(String, Value)> {
    manifests()
        .into_iter()
        .flat_map(|Manifest { file, docs }| {
            let file = file.file_name().unwrap().to_string_lossy().into_owned();
            docs.into_iter().map(move |doc| (file.clone(), doc))
        })
        .filter(|(_, doc)| doc["kind"] == kind)
        .collect()
}

/// The PodMonitor examples scrape the sidecar they select: a pod template in deploy/ carries
/// the labels, its mount-monitor container names the port, on the port the binary serves, and
/// the path is /metrics.
#[test]
fn pod_monitor_scrapes_the_sidecar() {
    let port = u64::from(default_port());
    let monitors = documents_of_kind("PodMonitor");
    assert!(!monitors.is_empty(), "no PodMonitor example in deploy/");
    let pods: Vec<(String, Value)> = manifests()
        .into_iter()
        .flat_map(|Manifest { file, docs }| {
            let file = file.file_name().unwrap().to_string_lossy().into_owned();
            docs.into_iter().map(move |doc| (file.clone(), doc))
        })
        .collect();
    for (file, monitor) in &monitors {
        let name = format!("{file}: PodMonitor {}", monitor["metadata"]["name"]);
        assert_eq!(
            monitor["apiVersion"], "monitoring.coreos.com/v1",
            "{name}: the Prometheus Operator's API"
        );
        let wanted = monitor["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap_or_else(|| panic!("{name}: no spec.selector.matchLabels"));
        assert!(
            !wanted.is_empty(),
            "{name}: an empty selector takes every pod"
        );
        let selected: Vec<&Value> = pods
            .iter()
            .filter_map(|(_, doc)| pod(doc))
            .filter(|(metadata, _)| {
                wanted
                    .iter()
                    .all(|(key, value)| metadata["labels"][key] == *value)
            })
            .map(|(_, spec)| spec)
            .collect();
        assert!(
            !selected.is_empty(),
            "{name}: selects no pod template in deploy/ ({wanted:?})"
        );
        let endpoints = monitor["spec"]["podMetricsEndpoints"]
            .as_array()
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| panic!("{name}: no spec.podMetricsEndpoints"));
        for endpoint in endpoints {
            let path = endpoint["path"].as_str().unwrap_or("/metrics");
            assert!(served(path) && path == "/metrics", "{name}: path {path}");
            let port_name = endpoint["port"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: an endpoint without a port name"));
            for spec in &selected {
                let container = spec["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| is_mount_monitor(c))
                    .unwrap_or_else(|| panic!("{name}: a selected pod has no mount-monitor"));
                assert_eq!(
                    probe_port(container, &Value::from(port_name)),
                    Some(port),
                    "{name}: port {port_name:?} is not the monitor's {port}"
                );
            }
            // Prometheus durations of one unit, as the examples write them: "30s", "1m".
            let seconds = |key: &str| {
                endpoint[key].as_str().map(|v| {
                    let (number, unit) = v.split_at(v.len() - 1);
                    let number: u64 = number
                        .parse()
                        .unwrap_or_else(|e| panic!("{name}: {key} {v:?}: {e}"));
                    match unit {
                        "s" => number,
                        "m" => number * 60,
                        "h" => number * 3600,
                        _ => panic!("{name}: {key} {v:?}: write it in s, m or h"),
                    }
                })
            };
            if let (Some(interval), Some(timeout)) = (seconds("interval"), seconds("scrapeTimeout"))
            {
                assert!(timeout <= interval, "{name}: scrapeTimeout above interval");
            }
        }
    }
}

fn read(relative: &str) -> String {
    let path = tests::workspace_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dashboard() -> Value {
    serde_json::from_str(&read("deploy/grafana/mount-monitor.json"))
        .unwrap_or_else(|e| panic!("deploy/grafana/mount-monitor.json is not JSON: {e}"))
}

/// Every panel of the dashboard, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        all.push(panel);
        all.extend(panel["panels"].as_array().into_iter().flatten());
    }
    all
}

/// (panel title, expression) of every query of the dashboard.
fn dashboard_expressions(dashboard: &Value) -> Vec<(String, String)> {
    panels(dashboard)
        .into_iter()
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap_or("?").to_owned();
            panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |t| (title.clone(), t["expr"].as_str().unwrap_or("").to_owned()))
        })
        .collect()
}

/// The dashboard's variables replaced by what Grafana would put there, so that promtool can
/// parse the expression.
fn with_variables_filled_in(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$job", ".*")
        .replace("$instance", ".*")
        .replace("$mount", ".*")
}

/// Every sample name `/metrics` can serve, in either detail.
fn served_metric_names() -> std::collections::BTreeSet<String> {
    use mount_monitor::metrics::{Format, MetricsDetail, render};
    let text = render(
        std::sync::Arc::new(mount_monitor::snapshot::Snapshot::default()),
        std::time::Instant::now(),
        Format::Prometheus,
        MetricsDetail::Full,
    );
    let mut names = std::collections::BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        names.insert(name.to_owned());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

/// The `mount_monitor_…` names an expression uses.
fn metric_names_in(expr: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("mount_monitor_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(&tail[..end]);
        rest = &tail[end..];
    }
    names
}

/// The watchdog's metrics, which the alerts already use: served once the watchdog is merged.
const WATCHDOG_METRICS: &[&str] = &["mount_monitor_watchdog_restarts_total"];

/// A misspelt metric parses fine and never fires: every name the alerts and the dashboard use
/// is one the binary serves.
#[test]
fn alerts_and_dashboard_use_served_metrics() {
    let served = served_metric_names();
    assert!(served.contains("mount_monitor_mount_up"), "{served:?}");
    let alerts: Value = serde_norway::from_str(&read("deploy/prometheus/alerts.yaml"))
        .expect("alerts.yaml is YAML");
    let mut used = Vec::new();
    for rule in alerts["groups"][0]["rules"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let alert = rule["alert"].as_str().unwrap_or("?").to_owned();
        used.push((
            format!("alert {alert}"),
            rule["expr"].as_str().unwrap().to_owned(),
        ));
    }
    assert!(used.len() >= 6, "{used:?}");
    for (title, expr) in dashboard_expressions(&dashboard()) {
        used.push((format!("panel {title:?}"), expr));
    }
    for (what, expr) in &used {
        let names = metric_names_in(expr);
        assert!(
            !names.is_empty() || expr.contains("up =="),
            "{what}: uses no mount-monitor metric: {expr}"
        );
        for name in names {
            assert!(
                served.contains(name) || WATCHDOG_METRICS.contains(&name),
                "{what}: {name} is not a metric mount-monitor serves ({served:?})"
            );
        }
    }
}

/// What the issue asks the dashboard to show, with the data source a variable.
#[test]
fn dashboard_shows_what_an_operator_looks_for() {
    let dashboard = dashboard();
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "no Prometheus data source variable: {variables:?}"
    );
    let uses_the_variable = |ds: &Value| ds["uid"] == "${datasource}";
    for panel in panels(&dashboard) {
        let title = &panel["title"];
        if panel["type"] == "row" {
            continue;
        }
        assert!(
            uses_the_variable(&panel["datasource"]),
            "panel {title}: {}",
            panel["datasource"]
        );
        let targets = panel["targets"].as_array().filter(|t| !t.is_empty());
        for target in targets.unwrap_or_else(|| panic!("panel {title} has no query")) {
            assert!(
                uses_the_variable(&target["datasource"]),
                "panel {title}: {target}"
            );
            assert!(
                target["expr"].as_str().is_some_and(|e| !e.is_empty()),
                "{title}"
            );
        }
    }
    let expressions = dashboard_expressions(&dashboard);
    for metric in [
        "mount_monitor_mount_up",
        "mount_monitor_mount_state",
        "mount_monitor_mount_reason",
        "mount_monitor_mount_check_failures_total",
        "mount_monitor_mount_check_duration_seconds_bucket",
        "mount_monitor_filesystem_avail_bytes",
        "mount_monitor_filesystem_files_free",
        "mount_monitor_mount_stuck_seconds",
        "mount_monitor_blocked_checks",
    ] {
        assert!(
            expressions
                .iter()
                .any(|(_, e)| metric_names_in(e).contains(&metric)),
            "no panel shows {metric}"
        );
    }
    let titles: Vec<&str> = panels(&dashboard)
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    let mut unique = titles.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        titles.len(),
        "panel titles repeat: {titles:?}"
    );
}

fn promtool(args: &[&str], dir: &Path) -> String {
    let out = std::process::Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {args:?} in {}:\n{text}",
        dir.display()
    );
    text
}

/// The alert rules load, and their unit tests (series in, alerts out) pass.
#[test]
#[ignore = "needs promtool: cargo xtask test, as root"]
fn alert_rules_pass_promtool_check_and_unit_tests() {
    tests::require_tool("alert_rules_pass_promtool_check_and_unit_tests", "promtool");
    let dir = tests::workspace_root().join("deploy/prometheus");
    let checked = promtool(&["check", "rules", "alerts.yaml"], &dir);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&["test", "rules", "alerts.test.yaml"], &dir);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Every alert has a test in which it fires and one in which it stays quiet.
    let alerts: Value = serde_norway::from_str(&read("deploy/prometheus/alerts.yaml")).unwrap();
    let unit: Value = serde_norway::from_str(&read("deploy/prometheus/alerts.test.yaml")).unwrap();
    let cases: Vec<&Value> = unit["tests"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["alert_rule_test"].as_array().into_iter().flatten())
        .collect();
    for rule in alerts["groups"][0]["rules"].as_array().unwrap() {
        let alert = &rule["alert"];
        let of_it = cases.iter().filter(|c| c["alertname"] == *alert);
        let (fires, quiet): (Vec<&&Value>, Vec<&&Value>) =
            of_it.partition(|c| c["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()));
        assert!(!fires.is_empty(), "{alert}: no test in which it fires");
        assert!(
            !quiet.is_empty(),
            "{alert}: no test in which it stays quiet"
        );
    }
}

/// Every panel expression parses: promtool checks them as recording rules.
#[test]
#[ignore = "needs promtool: cargo xtask test, as root"]
fn dashboard_expressions_parse() {
    tests::require_tool("dashboard_expressions_parse", "promtool");
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let expressions = dashboard_expressions(&dashboard());
    for (i, (_, expr)) in expressions.iter().enumerate() {
        let expr = serde_json::to_string(&with_variables_filled_in(expr)).unwrap();
        rules.push_str(&format!(
            "      - record: dashboard:panel_{i}\n        expr: {expr}\n"
        ));
    }
    std::fs::write(dir.path().join("dashboard.rules.yaml"), &rules).unwrap();
    let out = promtool(&["check", "rules", "dashboard.rules.yaml"], dir.path());
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", expressions.len())),
        "{out}\n{rules}"
    );
}

/// The "Mount state" panel shows the same state whether the monitor serves only the current
/// state (`--metrics-detail basic`) or all four (`full`): promtool evaluates it on both.
#[test]
#[ignore = "needs promtool: cargo xtask test, as root"]
fn dashboard_state_panel_reads_both_details() {
    tests::require_tool("dashboard_state_panel_reads_both_details", "promtool");
    let (_, expr) = dashboard_expressions(&dashboard())
        .into_iter()
        .find(|(title, _)| title == "Mount state")
        .expect("a Mount state panel");
    let expr = with_variables_filled_in(&expr);
    let series = |instance: &str, mount: &str, state: &str, value: u8| {
        format!(
            "      - series: 'mount_monitor_mount_state{{instance=\"{instance}\",job=\"m\",mount=\"{mount}\",path=\"/mnt/{mount}\",state=\"{state}\"}}'\n        values: '{value}x3'\n"
        )
    };
    let mut input = String::new();
    // basic: one series per mount, the current state.
    input.push_str(&series("basic:8080", "media", "degraded", 1));
    input.push_str(&series("basic:8080", "backup", "healthy", 1));
    // full: all four, 1 for the current one.
    for (state, value) in [
        ("unknown", 0),
        ("healthy", 0),
        ("degraded", 1),
        ("unhealthy", 0),
    ] {
        input.push_str(&series("full:8080", "media", state, value));
    }
    for (state, value) in [
        ("unknown", 1),
        ("healthy", 0),
        ("degraded", 0),
        ("unhealthy", 0),
    ] {
        input.push_str(&series("full:8080", "backup", state, value));
    }
    let expected = [
        ("basic:8080", "media", 2),
        ("basic:8080", "backup", 1),
        ("full:8080", "media", 2),
        ("full:8080", "backup", 0),
    ]
    .iter()
    .map(|(instance, mount, value)| {
        format!(
            "          - labels: '{{instance=\"{instance}\",mount=\"{mount}\"}}'\n            value: {value}\n"
        )
    })
    .collect::<String>();
    let expr = serde_json::to_string(&expr).unwrap();
    let unit = format!(
        "tests:\n  - interval: 1m\n    input_series:\n{input}    promql_expr_test:\n      - expr: {expr}\n        eval_time: 2m\n        exp_samples:\n{expected}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state.test.yaml"), &unit).unwrap();
    let out = promtool(&["test", "rules", "state.test.yaml"], dir.path());
    assert!(out.contains("SUCCESS"), "{out}\n{unit}");
}
