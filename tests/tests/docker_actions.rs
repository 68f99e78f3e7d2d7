//! End to end: `--docker-actions` against a real dockerd. Containers run from our own release
//! image (`cargo xtask docker --release --load`), each serving on its own port with `--network
//! host` (no bridge network is ever created), carrying the `mount-monitor.*` labels. The monitor
//! runs on the host and watches a tmpfs and a FUSE mount that die and come back; and, as
//! `deploy/compose.yaml` runs it, in a container of the same image, through the socket mounted
//! in. What happened is read back with `docker inspect` (`State.Running`, `State.StartedAt`).
//!
//! Those two tests need root and dockerd (`.ci/setup` starts it), the first /dev/fuse too, so they
//! are ignored under plain `cargo test`; `cargo xtask test` (as root) runs them. `DOCKER` picks
//! the docker CLI [default: /usr/bin/docker].

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::docker::{
    SharedDir, free_port, mount_tmpfs, program as docker, require_dockerd, umount,
};
use tests::fuse::{HangFs, require_fuse};
use tests::{Monitor, Tmpfs, require_root, workspace_root};

/// Docker commands that take longer than this are stuck.
const COMMAND_LIMIT: Duration = Duration::from_secs(300);
/// What the monitor does (three failed checks, a round, a container stop) happens within this.
const WITHIN: Duration = Duration::from_secs(90);

/// Runs `docker args`, which must succeed; its stdout.
fn docker_ok(args: &[&str]) -> String {
    let mut command = Command::new(docker());
    command.args(args).stdin(Stdio::null());
    let output = xtask::emulator::output_within(command, COMMAND_LIMIT)
        .unwrap_or_else(|e| panic!("docker {args:?}: {e:#}"));
    assert!(
        output.status.success(),
        "docker {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Our release image for this machine's platform, loaded into dockerd; removed when the last test
/// holding it is done.
struct Image {
    tag: String,
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new(docker())
            .args(["rmi", "--force", &self.tag])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The release image, built and loaded once for the tests that run at the same time (the release
/// build is most of their time): a test that starts while another holds it gets the same.
fn release_image() -> Arc<Image> {
    static SHARED: Mutex<Weak<Image>> = Mutex::new(Weak::new());
    // A test that panicked while holding the lock left nothing half done: the Weak is still right.
    let mut shared = SHARED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(image) = shared.upgrade() {
        return image;
    }
    let image = Arc::new(Image {
        tag: format!("mount-monitor-e2e:docker-actions-{}", std::process::id()),
    });
    load_release_image(&image.tag);
    *shared = Arc::downgrade(&image);
    image
}

/// Builds our release image for this machine's platform and loads it into dockerd under `tag`.
fn load_release_image(tag: &str) {
    let arch = xtask::targets::Arch::host().expect("the tests run on amd64 or arm64");
    let platform = format!("linux/{arch}");
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .current_dir(workspace_root())
        .env("DOCKER", docker())
        .args([
            "xtask",
            "docker",
            "--release",
            "--engine",
            "docker",
            "--load",
        ])
        .args(["--platform", &platform, "--tag", tag]);
    let output = xtask::emulator::output_within(command, Duration::from_secs(1800)).unwrap();
    assert!(
        output.status.success(),
        "cargo xtask docker --release --load failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Removes the containers, whatever the test's end.
struct Cleanup {
    containers: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in &self.containers {
            let _ = Command::new(docker())
                .args(["rm", "--force", name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Starts a container of `image` named `name` with `labels`, serving on a port of its own.
fn run_container(image: &str, name: &str, labels: &[(&str, &str)]) {
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["run", "--detach", "--network", "host", "--name", name];
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for label in &labels {
        args.extend(["--label", label]);
    }
    args.extend([image, "--listen", &listen, "--log-format", "text"]);
    docker_ok(&args);
}

/// `(State.Running, State.StartedAt)` of a container.
fn state(name: &str) -> (bool, String) {
    let out = docker_ok(&[
        "inspect",
        "--format",
        "{{.State.Running}} {{.State.StartedAt}}",
        name,
    ]);
    let (running, started) = out.trim().split_once(' ').expect("two fields");
    (running == "true", started.to_owned())
}

/// Waits until `name` is in the state `check` accepts; its state then. `context` says what the
/// monitor saw, for the failure's message.
fn wait_state(
    name: &str,
    what: &str,
    check: impl Fn(bool, &str) -> bool,
    context: impl Fn() -> String,
) -> (bool, String) {
    let started = Instant::now();
    loop {
        let (running, at) = state(name);
        if check(running, &at) {
            return (running, at);
        }
        assert!(
            started.elapsed() < WITHIN,
            "{name}: not {what} within {WITHIN:?} (running {running}, started at {at}); {}",
            context()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The host monitor's docker status and log, for a failure's message.
fn seen_by(monitor: &Monitor) -> String {
    format!(
        "the monitor's docker status: {:#}\nits log:\n{}",
        monitor.get_json("/healthz/status").1["docker"],
        monitor.log()
    )
}

fn docker_status(monitor: &Monitor) -> Value {
    monitor.get_json("/healthz/status").1["docker"].clone()
}

/// The counter `mount_monitor_docker_actions_total{action,outcome}` in `/metrics`.
fn actions_total(monitor: &Monitor, action: &str, outcome: &str) -> u64 {
    let (_, metrics) = monitor.get("/metrics");
    let series =
        format!("mount_monitor_docker_actions_total{{action=\"{action}\",outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

/// The monitor as `deploy/compose.yaml` runs it: a container of our release image (user 65534, no
/// shell), read-only, without capabilities, the host's Docker socket mounted read-write and its
/// group added, `DOCKER_HOST` unset (the image's default socket path), the directory above the
/// mount point bound `rslave` from a shared directory so that the host's unmounts and mounts
/// reach it (a bind of the mount point itself does not see the unmount: the app is never
/// stopped; so compose.yaml binds /mnt/rclone for /mnt/rclone/media). A labelled
/// application container is stopped when the host's tmpfs goes, and started when it is back with
/// its canary. The mount is called `library`, not the example's `media`, so that this monitor and
/// the host's of `containers_are_stopped_restarted_and_started_by_their_mounts_health`, which
/// may run at the same time on the same dockerd, decide nothing on each other's containers (a
/// mount a monitor does not watch decides nothing).
#[test]
#[ignore = "needs root and a running dockerd: cargo xtask test, as root"]
fn a_monitor_container_run_as_in_the_compose_example_stops_and_starts_its_application() {
    use std::os::unix::fs::MetadataExt;
    let test = "a_monitor_container_run_as_in_the_compose_example_stops_and_starts_its_application";
    require_dockerd(test);
    let socket = Path::new("/var/run/docker.sock");
    // compose.yaml's DOCKER_GID: the socket is root:docker 0660 and the image's user is 65534.
    let socket_gid = std::fs::metadata(socket)
        .unwrap_or_else(|e| panic!("{test}: {}: {e}", socket.display()))
        .gid()
        .to_string();
    let pid = std::process::id();
    let (monitor, app) = (
        format!("mm-e2e-{pid}-compose-monitor"),
        format!("mm-e2e-{pid}-compose-app"),
    );
    let _cleanup = Cleanup {
        containers: vec![monitor.clone(), app.clone()],
    };
    let image = release_image();
    let image = image.tag.as_str();

    let shared = SharedDir::new();
    let library = shared.path().join("library");
    std::fs::create_dir(&library).unwrap();
    let mount_library = || {
        mount_tmpfs(&library);
        std::fs::write(library.join(".health-check"), "ok").unwrap();
    };
    mount_library();
    run_container(image, &app, &[("mount-monitor.depends-on", "library")]);

    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let listen = addr.to_string();
    let mounts_volume = format!("{}:/mnt:rslave", shared.path().display());
    let socket_volume = format!("{0}:{0}", socket.display());
    docker_ok(&[
        "run",
        "--detach",
        "--name",
        &monitor,
        "--network",
        "host",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--group-add",
        &socket_gid,
        "--volume",
        &socket_volume,
        "--volume",
        &mounts_volume,
        "--env",
        // compose.yaml's form, with a canary read by user 65534 besides.
        "MOUNT_MONITOR_MOUNTS=library=/mnt/library,fstype=tmpfs,canary=.health-check",
        "--env",
        "MOUNT_MONITOR_DOCKER_ACTIONS=true",
        image,
        "--listen",
        &listen,
        "--check-interval",
        "1s",
        "--timeout",
        "500ms",
        "--failure-threshold",
        "2",
    ]);
    // Null until the container listens (tests::http panics on a refused connection).
    let status = || -> Value {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err() {
            return Value::Null;
        }
        let (_, body) = tests::http(addr, "GET", "/healthz/status");
        serde_json::from_str(&body).unwrap_or(Value::Null)
    };
    let seen = || {
        let logs = Command::new(docker())
            .args(["logs", &monitor])
            .output()
            .map(|out| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                )
            })
            .unwrap_or_else(|e| format!("docker logs: {e}"));
        format!(
            "the monitor container's /healthz/status: {:#}\nits log:\n{logs}",
            status()
        )
    };
    let mount_is = |health: &str| {
        tests::find_mount(&status(), "library").is_some_and(|m| m["status"] == health)
    };
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let started = Instant::now();
        while !done() {
            assert!(
                started.elapsed() < WITHIN,
                "{what}: not within {WITHIN:?}; {}",
                seen()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    wait_for("the mount healthy in the monitor container", &|| {
        mount_is("healthy")
    });
    // Connected through the default socket path, as user 65534 by the added group: without
    // --group-add the socket refuses it and `connected` stays false.
    wait_for(
        "the monitor container connected, the application listed",
        &|| {
            let docker = &status()["docker"];
            docker["connected"] == true
                && docker["socket"] == "/var/run/docker.sock"
                && docker["containers"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["name"] == app.as_str()))
        },
    );
    // The image's user, not root: what the socket's group is added for.
    let user = docker_ok(&["inspect", "--format", "{{.Config.User}}", &monitor]);
    assert_eq!(user.trim(), "65534:65534");
    let (_, app_started) = state(&app);

    // The host's tmpfs goes: the unmount reaches the monitor's container (rslave), which stops
    // the application through the socket.
    umount(&library);
    wait_state(&app, "stopped", |running, _| !running, seen);
    assert!(mount_is("unhealthy"), "{}", seen());

    // Back, with its canary: the application the monitor stopped is started again.
    mount_library();
    wait_state(
        &app,
        "started again",
        |running, at| running && at != app_started,
        seen,
    );
    wait_for("the mount healthy again", &|| mount_is("healthy"));
    let status = status();
    let docker = &status["docker"];
    assert_eq!(docker["connected"], true, "{status:#}");
    let app_view = docker["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == app.as_str()))
        .unwrap_or_else(|| panic!("{app} not in {status:#}"));
    assert_eq!(app_view["last_action"]["action"], "start", "{status:#}");
    assert_eq!(app_view["last_action"]["outcome"], "done", "{status:#}");
    assert_eq!(app_view["stopped_by_monitor"], false, "{status:#}");
    let (running, _) = state(&monitor);
    assert!(running, "the monitor container stopped: {}", seen());
}

#[test]
#[ignore = "needs root, /dev/fuse and a running dockerd: cargo xtask test, as root"]
fn containers_are_stopped_restarted_and_started_by_their_mounts_health() {
    let test = "containers_are_stopped_restarted_and_started_by_their_mounts_health";
    require_root(test);
    require_fuse(test);
    require_dockerd(test);
    let pid = std::process::id();
    let name = |role: &str| format!("mm-e2e-{pid}-{role}");
    let (app, provider, other, stopped, late) = (
        name("app"),
        name("provider"),
        name("other"),
        name("user-stopped"),
        name("late"),
    );
    let _cleanup = Cleanup {
        containers: vec![
            app.clone(),
            provider.clone(),
            other.clone(),
            stopped.clone(),
            late.clone(),
        ],
    };
    let image = release_image();
    let image = image.tag.as_str();

    let mut media = Tmpfs::new("size=1m");
    let music_dir = tempfile::Builder::new()
        .prefix("mm-e2e-music-")
        .tempdir()
        .unwrap();
    let mut music = Some(HangFs::mount_at(music_dir.path()));
    let depends = "mount-monitor.depends-on";
    run_container(image, &app, &[(depends, "media")]);
    run_container(
        image,
        &provider,
        &[
            (depends, "media"),
            ("mount-monitor.on-failure", "restart"),
            ("mount-monitor.on-recovery", "none"),
        ],
    );
    run_container(image, &other, &[(depends, "music")]);
    run_container(image, &stopped, &[(depends, "media")]);
    docker_ok(&["stop", &stopped]);

    let media_arg = format!("media={}", media.path().display());
    let music_arg = format!("music={}", music_dir.path().display());
    let monitor = Monitor::watch(
        &[&media_arg, &music_arg],
        &["--failure-threshold", "2", "--docker-actions"],
    );
    monitor.wait_for_mount("media", Some("healthy"), None, WITHIN);
    monitor.wait_for_mount("music", Some("healthy"), None, WITHIN);
    let deadline = Instant::now() + WITHIN;
    while !(docker_status(&monitor)["connected"] == true
        && docker_status(&monitor)["containers"]
            .as_array()
            .is_some_and(|c| c.len() >= 4))
    {
        assert!(
            Instant::now() < deadline,
            "the monitor did not list the labelled containers: {:#}",
            docker_status(&monitor)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, app_started) = state(&app);
    let (_, provider_started) = state(&provider);
    let (_, other_started) = state(&other);
    assert!(!state(&stopped).0);

    // media dies: the application is stopped, the provider restarted, the others left alone.
    media.unmount();
    wait_state(&app, "stopped", |running, _| !running, || seen_by(&monitor));
    let (_, provider_restarted) = wait_state(
        &provider,
        "restarted",
        |running, at| running && at != provider_started,
        || seen_by(&monitor),
    );
    assert_eq!(state(&other), (true, other_started.clone()));
    assert!(!state(&stopped).0);
    // A labelled container started while its mount is dead is stopped too.
    run_container(image, &late, &[(depends, "media")]);
    let (_, late_started) = wait_state(
        &late,
        "stopped after its start",
        |running, at| !running && !at.starts_with("0001"),
        || seen_by(&monitor),
    );

    // media comes back: what the monitor stopped starts; the user's stays stopped.
    media.mount("size=1m");
    wait_state(
        &app,
        "started again",
        |running, at| running && at != app_started,
        || seen_by(&monitor),
    );
    wait_state(
        &late,
        "started again",
        |running, at| running && at != late_started,
        || seen_by(&monitor),
    );
    // Two more rounds at least (one per 10 s, and every event) to be sure of what is left alone.
    std::thread::sleep(Duration::from_secs(12));
    assert!(
        !state(&stopped).0,
        "the container the user stopped was started"
    );
    assert_eq!(
        state(&provider),
        (true, provider_restarted),
        "on-recovery=none: the provider is left as it is"
    );
    assert_eq!(state(&other), (true, other_started));

    // The FUSE mount dies (its daemon killed: ENOTCONN) and comes back.
    music.as_mut().unwrap().kill_daemon();
    let (_, other_stopped_at) = wait_state(
        &other,
        "stopped",
        |running, _| !running,
        || seen_by(&monitor),
    );
    assert!(state(&app).0, "a container of another mount was stopped");
    drop(music.take());
    music = Some(HangFs::mount_at(music_dir.path()));
    wait_state(
        &other,
        "started again",
        |running, at| running && at != other_stopped_at,
        || seen_by(&monitor),
    );

    assert!(actions_total(&monitor, "stop", "done") >= 3);
    assert!(actions_total(&monitor, "start", "done") >= 3);
    assert!(actions_total(&monitor, "restart", "done") >= 1);
    assert_eq!(actions_total(&monitor, "stop", "failed"), 0);
    let (_, metrics) = monitor.get("/metrics");
    assert!(
        metrics.contains("\nmount_monitor_docker_connected 1\n"),
        "{metrics}"
    );
    let status = docker_status(&monitor);
    let listed = status["containers"].as_array().unwrap();
    let app_view = listed
        .iter()
        .find(|c| c["name"] == app.as_str())
        .unwrap_or_else(|| panic!("{app} not in {status:#}"));
    assert_eq!(app_view["last_action"]["action"], "start", "{status:#}");
    assert_eq!(app_view["last_action"]["outcome"], "done", "{status:#}");
    assert!(
        monitor.log().contains("docker action done"),
        "{}",
        monitor.log()
    );
    drop(music);
}

/// A socket that is not there: said once at start and in `/healthz/status`; the monitor serves.
#[test]
fn a_missing_socket_is_reported_and_the_monitor_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let host = format!("unix://{}", socket.display());
    let root = Path::new("/").display().to_string();
    let monitor = Monitor::start_with(
        [
            "--mount",
            &format!("root={root}"),
            "--check-interval",
            "1s",
            "--timeout",
            "500ms",
            "--docker-actions",
        ],
        dir.path(),
        |command| {
            command.env("DOCKER_HOST", &host);
        },
    );
    monitor.wait_for_mount("root", Some("healthy"), None, WITHIN);
    let status = docker_status(&monitor);
    assert_eq!(status["enabled"], true, "{status:#}");
    assert_eq!(status["connected"], false, "{status:#}");
    assert_eq!(status["socket"], socket.display().to_string(), "{status:#}");
    let reason = status["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!(
            "cannot connect to the Docker socket {}",
            socket.display()
        )),
        "{status:#}"
    );
    let (code, _) = monitor.get("/readyz");
    assert_eq!(code, 200);
    let (_, metrics) = monitor.get("/metrics");
    assert!(
        metrics.contains("\nmount_monitor_docker_connected 0\n"),
        "{metrics}"
    );
    for action in ["stop", "start", "restart"] {
        for outcome in ["done", "failed", "skipped"] {
            assert_eq!(actions_total(&monitor, action, outcome), 0);
        }
    }
    // Once, however many rounds failed since.
    std::thread::sleep(Duration::from_secs(3));
    let said = monitor
        .log()
        .matches("the Docker Engine cannot be reached")
        .count();
    assert_eq!(said, 1, "{}", monitor.log());
}

/// `DOCKER_HOST=tcp://…` is refused at start with one line, as a bad flag value is.
#[test]
fn docker_host_other_than_a_unix_socket_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(tests::binary())
        .args(["--mount", "root=/", "--docker-actions"])
        .env("DOCKER_HOST", "tcp://127.0.0.1:2375")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr,
        "mount-monitor: DOCKER_HOST=\"tcp://127.0.0.1:2375\": --docker-actions talks to Docker only over a Unix socket; set DOCKER_HOST=unix:///path/to/docker.sock, or unset it for /var/run/docker.sock\n"
    );
    // Without --docker-actions, DOCKER_HOST is none of the monitor's business.
    let output = Command::new(tests::binary())
        .args(["check", "--mount", "root=/"])
        .env("DOCKER_HOST", "tcp://127.0.0.1:2375")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
}

fn compose_example() -> Value {
    let file = workspace_root().join("deploy/compose.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// deploy/compose.yaml: the labels read as the monitor reads them, every `depends-on` names a
/// mount the monitor watches, and the monitor has what it needs (the socket read-write, the
/// docker group, actions on).
#[test]
fn the_compose_example_labels_the_mounts_the_monitor_watches() {
    use mount_monitor::docker::policy::Policy;
    let compose = compose_example();
    let services = compose["services"].as_object().expect("services");
    let monitor = &services["mount-monitor"];
    let environment = &monitor["environment"];
    assert_eq!(environment["MOUNT_MONITOR_DOCKER_ACTIONS"], "true");
    let watched: Vec<String> = environment["MOUNT_MONITOR_MOUNTS"]
        .as_str()
        .unwrap()
        .split(';')
        .map(|m| m.split(['=', ',']).next().unwrap().to_owned())
        .collect();
    let volumes: Vec<&str> = monitor["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        volumes.contains(&"/var/run/docker.sock:/var/run/docker.sock"),
        "the socket, read-write: {volumes:?}"
    );
    assert!(
        monitor["group_add"][0]
            .as_str()
            .unwrap()
            .contains("DOCKER_GID")
    );
    // Each watched mount lies below a bind of the directory above it, rslave: a bind of the mount
    // point itself would keep the mount it found at the start, alive or dead, whatever the host
    // mounts or unmounts later (the container test above shows it).
    let paths: Vec<&str> = environment["MOUNT_MONITOR_MOUNTS"]
        .as_str()
        .unwrap()
        .split(';')
        .map(|m| m.split(',').next().unwrap().split_once('=').unwrap().1)
        .collect();
    for path in paths {
        let below_a_bind = monitor["volumes"].as_array().unwrap().iter().any(|v| {
            v["type"] == "bind"
                && v["bind"]["propagation"] == "rslave"
                && v["target"].as_str().is_some_and(|target| {
                    Path::new(path)
                        .strip_prefix(target)
                        .is_ok_and(|rest| !rest.as_os_str().is_empty())
                })
        });
        assert!(
            below_a_bind,
            "{path}: no rslave bind of a directory above it in {:#}",
            monitor["volumes"]
        );
    }
    let mut labelled = 0;
    for (name, service) in services {
        let labels = &service["labels"];
        if labels.get("mount-monitor.depends-on").is_none() {
            continue;
        }
        labelled += 1;
        let policy = Policy::from_labels(|key| labels[key].as_str())
            .unwrap_or_else(|e| panic!("service {name}: {e}"));
        for mount in &policy.mounts {
            assert!(
                watched.contains(mount),
                "service {name}: mount {mount} is not watched ({watched:?})"
            );
        }
    }
    assert_eq!(labelled, 2);
}

/// `check-jsonschema` of the linters' virtualenv (`.venv` in the workspace), else the PATH's.
fn check_jsonschema(test: &str) -> std::path::PathBuf {
    let venv = workspace_root().join(".venv/bin/check-jsonschema");
    if venv.is_file() {
        return venv;
    }
    tests::require_tool(test, "check-jsonschema");
    "check-jsonschema".into()
}

/// Valid against the Compose Specification's JSON schema (tests/fixtures/compose-spec.json),
/// offline; a file that breaks it is refused, so the check is real.
#[test]
#[ignore = "needs check-jsonschema (the linters' virtualenv): cargo xtask test, as root"]
fn the_compose_example_is_valid_against_the_compose_specification() {
    let program =
        check_jsonschema("the_compose_example_is_valid_against_the_compose_specification");
    let schema = workspace_root().join("tests/fixtures/compose-spec.json");
    let check = |file: &Path| {
        Command::new(&program)
            .arg("--schemafile")
            .arg(&schema)
            .arg(file)
            .output()
            .unwrap()
    };
    let output = check(&workspace_root().join("deploy/compose.yaml"));
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("compose.yaml");
    std::fs::write(
        &broken,
        "services:\n  app:\n    group_add: docker\n    labels: 5\n",
    )
    .unwrap();
    assert!(!check(&broken).status.success());
}
