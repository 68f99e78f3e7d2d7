//! End to end: the release images as `cargo xtask docker --release --no-build` builds them with
//! the engines installable here (podman; Debian's docker.io, whose 20.10 CLI has BuildKit built
//! in), inspected, run against a real mount, pushed to a real registry and pulled back by digest.
//!
//! Needs root, podman, docker.io with dockerd running (`.ci/setup` starts it with
//! `--bridge=none --iptables=false`; containers use `--network host`), docker-registry and
//! qemu-user-static's binfmt entry for the arm64 images, so every test here is ignored under plain
//! `cargo test`; `cargo xtask test` (as root) sets them up and runs them, and a missing one fails
//! the test. `DOCKER` picks the docker CLI [default: /usr/bin/docker, as
//! /usr/local/bin/docker may be a newer CLI without buildx, which cannot do BuildKit builds].

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tests::docker::{
    SharedDir, free_port, mount_tmpfs, program as docker, require_dockerd, umount,
};
use tests::{require_root, require_tool, workspace_root};
use xtask::checksums::sha256_hex;
use xtask::elf::static_executable_problems;
use xtask::targets::Arch;

/// Engine commands that take longer than this are stuck.
const COMMAND_LIMIT: Duration = Duration::from_secs(180);
/// A container (arm64: under QEMU) answers ready within this.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// The size budget of each platform's image.
const MAX_IMAGE_BYTES: u64 = 5 * 1024 * 1024;

#[test]
#[ignore = "needs root, dockerd, podman, docker-registry and qemu-user-static: cargo xtask test, as root"]
fn podman_builds_one_manifest_list_holding_both_platforms() {
    let test = "podman_builds_one_manifest_list_holding_both_platforms";
    prerequisites(test);
    let dist = dist();
    let repository = "localhost/mount-monitor-e2e";
    let tag = format!("{repository}:podman-{}", std::process::id());
    let staged = xtask_docker(&["--engine", "podman", "--tag", &tag], &[]);
    let _cleanup = podman_cleanup(&tag);

    // The build context held exactly Dockerfile.release and the two binaries dist verified.
    let mut names: Vec<String> = staged.keys().cloned().collect();
    names.sort();
    let mut expected: Vec<String> = Arch::ALL.iter().map(|arch| arch.artifact_name()).collect();
    expected.push("Dockerfile.release".into());
    expected.sort();
    assert_eq!(names, expected);
    for arch in Arch::ALL {
        assert_eq!(staged[&arch.artifact_name()], dist.sha256[&arch], "{arch}");
    }

    let list = json(&run_ok("podman", &["manifest", "inspect", &tag]));
    let entries = platforms(&list);
    assert_eq!(
        entries
            .iter()
            .map(|(platform, _)| platform.as_str())
            .collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64"],
        "{list:#}"
    );
    for (platform, digest) in &entries {
        let arch = arch_of(platform);
        let image = format!("{repository}@{digest}");
        let inspect = json(&run_ok("podman", &["image", "inspect", &image]));
        check_image(&inspect[0], arch, &dist.version);
        let root = run_ok("podman", &["image", "mount", &image]);
        let binary = std::fs::read(Path::new(root.trim()).join("mount-monitor"));
        run_ok("podman", &["image", "unmount", &image]);
        check_binary(&binary.expect("reading /mount-monitor"), arch, dist);
        eprintln!("podman {platform} {digest}: config, labels and binary ok");
    }
}

#[test]
#[ignore = "needs root, dockerd, podman, docker-registry and qemu-user-static: cargo xtask test, as root"]
fn docker_images_serve_ready_and_healthy_while_the_mount_is_there() {
    let test = "docker_images_serve_ready_and_healthy_while_the_mount_is_there";
    prerequisites(test);
    let dist = dist();
    let docker = docker();
    let tag = format!("mount-monitor-e2e:docker-{}", std::process::id());
    let images: Vec<String> = Arch::ALL
        .iter()
        .map(|arch| {
            let image = format!("{tag}-{arch}");
            load_into_docker(*arch, &image);
            image
        })
        .collect();
    let mut remove = vec![docker.clone(), "rmi".into()];
    remove.extend(images.iter().cloned());
    let _cleanup = Cleanup::new(vec![remove]);

    std::thread::scope(|scope| {
        for (arch, image) in Arch::ALL.into_iter().zip(&images) {
            let docker = &docker;
            scope.spawn(move || {
                let inspect = json(&run_ok(docker, &["image", "inspect", image]));
                check_image(&inspect[0], arch, &dist.version);
                check_binary(&copy_out(docker, image), arch, dist);
                serve_and_report_health(docker, image, arch, &dist.version);
            });
        }
    });
}

#[test]
#[ignore = "needs root, dockerd, podman, docker-registry and qemu-user-static: cargo xtask test, as root"]
fn podman_push_serves_each_platform_by_digest_from_a_registry() {
    let test = "podman_push_serves_each_platform_by_digest_from_a_registry";
    prerequisites(test);
    let registry = Registry::start();
    let repository = format!("127.0.0.1:{}/mount-monitor", registry.port);
    let tag = format!("{repository}:podman");
    // Plain HTTP for this registry only, as a registries.conf drop-in would say.
    let conf = registry.dir.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nlocation = \"127.0.0.1:{}\"\ninsecure = true\n",
            registry.port
        ),
    )
    .unwrap();
    let conf = conf.to_str().unwrap();
    xtask_docker(
        &["--engine", "podman", "--push", "--tag", &tag],
        &[("CONTAINERS_REGISTRIES_CONF", conf)],
    );
    let _cleanup = podman_cleanup(&tag);
    pull_each_platform_and_run(&registry, "mount-monitor", "podman");
}

#[test]
#[ignore = "needs root, dockerd, podman, docker-registry and qemu-user-static: cargo xtask test, as root"]
fn docker_push_joins_the_platforms_into_one_manifest_list() {
    let test = "docker_push_joins_the_platforms_into_one_manifest_list";
    prerequisites(test);
    let docker = docker();
    let registry = Registry::start();
    let repository = format!("127.0.0.1:{}/mount-monitor", registry.port);
    let tag = format!("{repository}:docker");
    xtask_docker(
        &["--engine", "docker", "--push", "--tag", &tag],
        &[("DOCKER", &docker)],
    );
    let _cleanup = Cleanup::new(vec![vec![
        docker.clone(),
        "rmi".into(),
        format!("{tag}-amd64"),
        format!("{tag}-arm64"),
    ]]);
    pull_each_platform_and_run(&registry, "mount-monitor", "docker");
}

/// The manifest list under `name:reference` holds exactly linux/amd64 and linux/arm64; each pulled
/// by its digest is its platform's image and runs.
fn pull_each_platform_and_run(registry: &Registry, name: &str, reference: &str) {
    let dist = dist();
    let docker = docker();
    let list = registry.manifest(name, reference);
    let media_type = list["mediaType"].as_str().unwrap_or_default();
    assert!(
        media_type == "application/vnd.docker.distribution.manifest.list.v2+json"
            || media_type == "application/vnd.oci.image.index.v1+json",
        "{name}:{reference} is not a manifest list: {list:#}"
    );
    let entries = platforms(&list);
    assert_eq!(
        entries
            .iter()
            .map(|(platform, _)| platform.as_str())
            .collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64"],
        "{list:#}"
    );
    for (platform, digest) in &entries {
        let arch = arch_of(platform);
        let image = format!("127.0.0.1:{}/{name}@{digest}", registry.port);
        run_ok(&docker, &["pull", "--quiet", &image]);
        let _cleanup = Cleanup::new(vec![vec![docker.clone(), "rmi".into(), image.clone()]]);
        let inspect = json(&run_ok(&docker, &["image", "inspect", &image]));
        check_image(&inspect[0], arch, &dist.version);
        check_binary(&copy_out(&docker, &image), arch, dist);
        let printed = run_ok(
            &docker,
            &[
                "run",
                "--rm",
                "--platform",
                platform,
                "--network",
                "host",
                "--read-only",
                "--cap-drop",
                "ALL",
                &image,
                "--version",
            ],
        );
        assert_eq!(
            printed.trim(),
            format!("mount-monitor {}", dist.version),
            "{platform}"
        );
        eprintln!(
            "{name}:{reference} {platform} pulled by {digest}: runs, prints {}",
            printed.trim()
        );
    }
}

/// The image's `HEALTHCHECK` asks the port the server listens on however it was configured: a
/// config file given by `--config` whose `httpPort` is not 8080, `--http-port` on the command
/// line, and the same under an init (`docker run --init`, where the server is PID 1's child).
/// dockerd reports each healthy, which it never did while the health check read only its own
/// environment.
#[test]
#[ignore = "needs root and dockerd: cargo xtask test, as root"]
fn healthcheck_follows_the_server_however_it_was_configured() {
    use std::os::unix::fs::PermissionsExt;
    let test = "healthcheck_follows_the_server_however_it_was_configured";
    require_dockerd(test);
    let dist = dist();
    let docker = docker();
    let arch = Arch::host().expect("the tests run on amd64 or arm64");
    let image = format!("mount-monitor-e2e:healthcheck-{}", std::process::id());
    load_into_docker(arch, &image);
    let _cleanup = Cleanup::new(vec![vec![docker.clone(), "rmi".into(), image.clone()]]);
    let inspect = json(&run_ok(&docker, &["image", "inspect", &image]));
    check_image(&inspect[0], arch, &dist.version);

    let shared = SharedDir::new();
    let media = shared.path().join("media");
    std::fs::create_dir(&media).unwrap();
    mount_tmpfs(&media);
    std::fs::write(media.join(".health-check"), "ok").unwrap();
    let volume = format!("{}:/mnt:rslave", shared.path().display());
    let config_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(config_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let file_port = free_port();
    let config = config_dir.path().join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"httpPort": {file_port}, "checkInterval": "1s", "readTimeout": "500ms",
                "mounts": [{{"name": "media", "path": "/mnt/media"}}]}}"#
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config_volume = format!("{}:/etc/mm:ro", config_dir.path().display());
    let flag_port = free_port();
    let init_port = free_port();
    let flag_port_text = flag_port.to_string();
    let init_port_text = init_port.to_string();
    let by_flag = [
        "--http-port",
        flag_port_text.as_str(),
        "--mount",
        "media=/mnt/media",
        "--check-interval",
        "1s",
        "--timeout",
        "500ms",
    ];
    let by_flag_under_init = [
        "--http-port",
        init_port_text.as_str(),
        "--mount",
        "media=/mnt/media",
        "--check-interval",
        "1s",
        "--timeout",
        "500ms",
    ];
    let cases: [(&str, Vec<&str>, &[&str], u16); 3] = [
        (
            "--config with httpPort",
            vec!["--volume", &config_volume],
            &["--config", "/etc/mm/config.json"],
            file_port,
        ),
        ("--http-port", vec![], &by_flag, flag_port),
        (
            "--http-port under --init",
            vec!["--init"],
            &by_flag_under_init,
            init_port,
        ),
    ];
    let containers: Vec<(&str, Container, u16)> = cases
        .iter()
        .map(|(case, engine_args, args, port)| {
            let mut run = vec![
                "run",
                "--detach",
                "--network",
                "host",
                "--read-only",
                "--cap-drop",
                "ALL",
                "--volume",
                &volume,
                // The image's HEALTHCHECK command, checked more often than its 30s.
                "--health-interval",
                "1s",
                "--health-start-period",
                "1s",
                "--health-retries",
                "3",
            ];
            run.extend(engine_args.iter().copied());
            run.push(&image);
            run.extend(args.iter().copied());
            let id = run_ok(&docker, &run);
            let container = Container {
                docker: docker.clone(),
                id: id.trim().to_owned(),
            };
            (*case, container, *port)
        })
        .collect();
    for (case, container, port) in &containers {
        let addr: SocketAddr = ([127, 0, 0, 1], *port).into();
        container.wait_for(addr, "/readyz", 200, READY_WITHIN);
        container.wait_for_health("healthy");
        eprintln!("{case}: ready on {port} and healthy");
    }
    // The health check follows readiness on that port: unhealthy once the mount is gone.
    umount(&media);
    for (case, container, port) in &containers {
        let addr: SocketAddr = ([127, 0, 0, 1], *port).into();
        container.wait_for(addr, "/readyz", 503, Duration::from_secs(10));
        container.wait_for_health("unhealthy");
        eprintln!("{case}: unready and unhealthy once the mount is gone");
    }
}

/// Runs `image` with a tmpfs from the host bind-mounted in (`rslave`, so later mounts and unmounts
/// on the host reach it), read-only and without capabilities, and follows the mount: ready and
/// healthy while it is there, 503 and unhealthy when it is gone, ready again when it is back.
fn serve_and_report_health(docker: &str, image: &str, arch: Arch, version: &str) {
    let shared = SharedDir::new();
    let media = shared.path().join("media");
    std::fs::create_dir(&media).unwrap();
    mount_tmpfs(&media);
    let port = free_port();
    let platform = format!("linux/{arch}");
    let volume = format!("{}:/mnt:rslave", shared.path().display());
    let listen = format!("MOUNT_MONITOR_LISTEN=127.0.0.1:{port}");
    let id = run_ok(
        docker,
        &[
            "run",
            "--detach",
            "--platform",
            &platform,
            "--network",
            "host",
            "--read-only",
            "--cap-drop",
            "ALL",
            "--volume",
            &volume,
            "--env",
            "MOUNT_MONITOR_MOUNTS=media=/mnt/media",
            "--env",
            &listen,
            "--env",
            "MOUNT_MONITOR_CHECK_INTERVAL=1s",
            "--env",
            "MOUNT_MONITOR_TIMEOUT=500ms",
            // The image's HEALTHCHECK command, checked more often than its 30s so the test is quick.
            "--health-interval",
            "1s",
            "--health-start-period",
            "1s",
            image,
        ],
    );
    let container = Container {
        docker: docker.to_owned(),
        id: id.trim().to_owned(),
    };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();

    let body = container.wait_for(addr, "/healthz/ready", 200, READY_WITHIN);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["mounts"][0]["fs_type"], "tmpfs", "{arch}: {body}");
    let (_, served) = tests::http(addr, "GET", "/version");
    assert_eq!(served, format!("{{\"version\":\"{version}\"}}\n"), "{arch}");
    container.wait_for_health("healthy");
    eprintln!("{image}: ready and healthy with the mount there");

    // The container's volume is a bind of the host's directory: with the host's mount gone, an
    // empty volume, however it is still a mount point.
    umount(&media);
    let body = container.wait_for(addr, "/healthz/ready", 503, Duration::from_secs(10));
    assert!(
        body.contains("\"reason\":\"empty_volume\""),
        "{arch}: {body}"
    );
    container.wait_for_health("unhealthy");
    eprintln!("{image}: 503 and unhealthy once the host unmounted it");

    mount_tmpfs(&media);
    container.wait_for(addr, "/healthz/ready", 200, Duration::from_secs(10));
    container.wait_for_health("healthy");
    eprintln!("{image}: ready and healthy again after the host mounted it again");
    umount(&media);
}

/// Panics unless every tool this file needs is here (`cargo xtask test` as root sets them up).
fn prerequisites(test: &str) {
    require_root(test);
    require_tool(test, "podman");
    require_tool(test, "docker-registry");
    require_dockerd(test);
    let binfmt =
        std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64").unwrap_or_default();
    // F: the kernel opens QEMU when the entry is registered, so it works inside containers too.
    assert!(
        binfmt.starts_with("enabled")
            && binfmt
                .lines()
                .any(|line| line.starts_with("flags:") && line.contains('F')),
        "{test}: arm64 images need qemu-user-static's binfmt entry (flag F): run `.ci/setup` as root"
    );
}

/// The release image of `arch` from dist's binaries, loaded into dockerd as `image`: one
/// platform per build, which every docker can hold in its image store (buildx's `docker` driver
/// cannot hold a multi-platform image).
fn load_into_docker(arch: Arch, image: &str) {
    let platform = format!("linux/{arch}");
    xtask_docker(
        &[
            "--engine",
            "docker",
            "--platform",
            &platform,
            "--load",
            "--tag",
            image,
        ],
        &[("DOCKER", &docker())],
    );
}

/// dist's binaries, built once per test process with `cargo xtask dist`.
struct Dist {
    dir: PathBuf,
    version: String,
    sha256: std::collections::HashMap<Arch, String>,
}

fn dist() -> &'static Dist {
    static DIST: OnceLock<Dist> = OnceLock::new();
    DIST.get_or_init(|| {
        let output = cargo(&["xtask", "dist"])
            .output()
            .expect("running cargo xtask dist");
        assert!(
            output.status.success(),
            "cargo xtask dist failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"));
        let dir = workspace_root().join(target).join("dist");
        let host = Arch::host().expect("the tests run on amd64 or arm64");
        let printed = Command::new(dir.join(host.artifact_name()))
            .arg("--version")
            .output()
            .expect("running the dist binary");
        let printed = String::from_utf8(printed.stdout).unwrap();
        let version = printed
            .trim()
            .strip_prefix("mount-monitor ")
            .unwrap_or_else(|| panic!("--version printed {printed:?}"))
            .to_owned();
        let sha256 = Arch::ALL
            .iter()
            .map(|&arch| {
                (
                    arch,
                    sha256_hex(&std::fs::read(dir.join(arch.artifact_name())).unwrap()),
                )
            })
            .collect();
        Dist {
            dir,
            version,
            sha256,
        }
    })
}

/// `cargo xtask docker --release --no-build ARGS`, one at a time (they share the staged context);
/// returns the staged context's files and their SHA-256.
fn xtask_docker(args: &[&str], env: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let dist = dist();
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut command = cargo(&["xtask", "docker", "--release", "--no-build"]);
    command.args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    let started = Instant::now();
    let output = xtask::emulator::output_within(command, COMMAND_LIMIT).unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "cargo xtask docker {args:?} failed:\n{log}"
    );
    eprintln!(
        "cargo xtask docker --release --no-build {args:?}: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let context = dist.dir.parent().unwrap().join("docker-context");
    std::fs::read_dir(&context)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            (name, sha256_hex(&std::fs::read(entry.path()).unwrap()))
        })
        .collect()
}

fn cargo(args: &[&str]) -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.args(args).current_dir(workspace_root());
    command
}

/// Runs `program args`, which must succeed within [`COMMAND_LIMIT`]; its stdout.
fn run_ok(program: &str, args: &[&str]) -> String {
    let mut command = Command::new(program);
    command.args(args);
    let output = xtask::emulator::output_within(command, COMMAND_LIMIT)
        .unwrap_or_else(|err| panic!("{program} {args:?}: {err:#}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))
}

/// (`os/architecture`, digest) of each entry of a manifest list, sorted.
fn platforms(list: &serde_json::Value) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = list["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("no manifests in {list:#}"))
        .iter()
        .map(|entry| {
            let platform = &entry["platform"];
            let mut name = format!(
                "{}/{}",
                platform["os"].as_str().unwrap_or("?"),
                platform["architecture"].as_str().unwrap_or("?")
            );
            if let Some(variant) = platform["variant"].as_str() {
                name = format!("{name}/{variant}");
            }
            (name, entry["digest"].as_str().unwrap().to_owned())
        })
        .collect();
    entries.sort();
    entries
}

fn arch_of(platform: &str) -> Arch {
    let name = platform.strip_prefix("linux/").unwrap_or(platform);
    Arch::from_docker_arch(name).unwrap_or_else(|| panic!("unexpected platform {platform}"))
}

/// The image config users rely on, as docker or podman `image inspect` shows it.
fn check_image(inspect: &serde_json::Value, arch: Arch, version: &str) {
    let config = &inspect["Config"];
    assert_eq!(inspect["Architecture"], arch.docker_arch(), "{inspect:#}");
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(config["User"], "65534:65534");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/mount-monitor"]));
    assert!(
        config["ExposedPorts"].get("8080/tcp").is_some(),
        "{config:#}"
    );
    // docker shows it in Config, podman beside it.
    let healthcheck = if config["Healthcheck"].is_object() {
        &config["Healthcheck"]
    } else {
        &inspect["Healthcheck"]
    };
    assert_eq!(
        healthcheck["Test"],
        serde_json::json!(["CMD", "/mount-monitor", "healthcheck"]),
        "{inspect:#}"
    );
    let labels = &config["Labels"];
    assert_eq!(labels["org.opencontainers.image.version"], version);
    let revision = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(workspace_root())
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default();
    assert_eq!(
        labels["org.opencontainers.image.revision"],
        revision.as_str()
    );
    let created = labels["org.opencontainers.image.created"]
        .as_str()
        .unwrap_or_default();
    assert!(
        created.len() == 20 && created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "created {created:?}"
    );
    assert!(
        labels["org.opencontainers.image.source"]
            .as_str()
            .is_some_and(|s| s.starts_with("https://")),
        "{labels:#}"
    );
    let size = inspect["Size"].as_u64().unwrap();
    assert!(size < MAX_IMAGE_BYTES, "{arch} image is {size} bytes");
}

/// The image's `/mount-monitor` is dist's binary for that platform: same bytes, static ELF.
fn check_binary(bytes: &[u8], arch: Arch, dist: &Dist) {
    let problems = static_executable_problems(bytes, arch);
    assert!(problems.is_empty(), "{arch}: {problems:?}");
    assert_eq!(
        sha256_hex(bytes),
        dist.sha256[&arch],
        "{arch}: not dist's binary"
    );
}

/// `/mount-monitor` from `image`, through a created (never started) container.
fn copy_out(docker: &str, image: &str) -> Vec<u8> {
    let id = run_ok(docker, &["create", image]);
    let id = id.trim();
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        docker,
        &[
            "cp",
            &format!("{id}:/mount-monitor"),
            dir.path().to_str().unwrap(),
        ],
    );
    run_ok(docker, &["rm", id]);
    std::fs::read(dir.path().join("mount-monitor")).unwrap()
}

/// A running container; removed on drop, with its log printed when the test failed.
struct Container {
    docker: String,
    id: String,
}

impl Container {
    fn wait_for(&self, addr: SocketAddr, path: &str, status: u16, limit: Duration) -> String {
        let started = Instant::now();
        loop {
            let answer = try_get(addr, path, None);
            if let Some((got, body)) = &answer
                && *got == status
            {
                return body.clone();
            }
            assert!(
                started.elapsed() < limit,
                "GET {path}: wanted {status} within {limit:?}, got {answer:?}; state {}",
                self.state()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_for_health(&self, wanted: &str) {
        let started = Instant::now();
        loop {
            let health = run_ok(
                &self.docker,
                &["inspect", "--format", "{{.State.Health.Status}}", &self.id],
            );
            if health.trim() == wanted {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "health {wanted:?} not reached in 30 s; state {}",
                self.state()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn state(&self) -> String {
        run_ok(
            &self.docker,
            &["inspect", "--format", "{{json .State}}", &self.id],
        )
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = Command::new(&self.docker).args(["logs", &self.id]).output();
            if let Ok(logs) = logs {
                eprintln!(
                    "container {} log:\n{}{}",
                    self.id,
                    String::from_utf8_lossy(&logs.stdout),
                    String::from_utf8_lossy(&logs.stderr)
                );
            }
        }
        let _ = Command::new(&self.docker)
            .args(["rm", "--force", &self.id])
            .stdout(Stdio::null())
            .status();
    }
}

/// Commands run on drop, failures ignored: removing what a test built.
struct Cleanup(Vec<Vec<String>>);

impl Cleanup {
    fn new(commands: Vec<Vec<String>>) -> Cleanup {
        Cleanup(commands)
    }
}

/// Removes podman's manifest list `tag`, then the images it lists.
fn podman_cleanup(tag: &str) -> Cleanup {
    let mut commands = vec![vec![
        "podman".into(),
        "manifest".into(),
        "rm".into(),
        tag.to_owned(),
    ]];
    let repository = tag
        .rsplit_once(':')
        .map_or(tag, |(repository, _)| repository);
    if let Ok(list) = serde_json::from_str(&run_ok("podman", &["manifest", "inspect", tag])) {
        for (_, digest) in platforms(&list) {
            let id = run_ok(
                "podman",
                &[
                    "image",
                    "inspect",
                    "--format",
                    "{{.Id}}",
                    &format!("{repository}@{digest}"),
                ],
            );
            commands.push(vec![
                "podman".into(),
                "rmi".into(),
                "--ignore".into(),
                id.trim().to_owned(),
            ]);
        }
    }
    Cleanup::new(commands)
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for command in &self.0 {
            let _ = Command::new(&command[0])
                .args(&command[1..])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A `docker-registry` (Debian's distribution 2.8) on a free loopback port, storing in a temporary
/// directory, plain HTTP; killed on drop.
struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("mm-registry-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let registry = Registry { child, port, dir };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let started = Instant::now();
        while try_get(addr, "/v2/", None).map(|(status, _)| status) != Some(200) {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "docker-registry did not answer on {addr}: {}",
                std::fs::read_to_string(registry.dir.path().join("registry.log"))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    /// The manifest (list) `name:reference`, as a client that understands lists asks for it.
    fn manifest(&self, name: &str, reference: &str) -> serde_json::Value {
        let accept = "application/vnd.oci.image.index.v1+json, \
                      application/vnd.docker.distribution.manifest.list.v2+json";
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let (status, body) = get(
            addr,
            &format!("/v2/{name}/manifests/{reference}"),
            Some(accept),
        );
        assert_eq!(status, 200, "{name}:{reference}: {body}");
        json(&body)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(addr: SocketAddr, path: &str, accept: Option<&str>) -> (u16, String) {
    try_get(addr, path, accept).unwrap_or_else(|| panic!("GET {path} on {addr}: no answer"))
}

/// One HTTP/1.1 GET (`Connection: close`, a body with Content-Length); `None` if nothing answers.
fn try_get(addr: SocketAddr, path: &str, accept: Option<&str>) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let accept = accept
        .map(|accept| format!("Accept: {accept}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}
