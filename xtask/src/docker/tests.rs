use super::*;

fn cli(buildx: bool, major: Option<u32>) -> Option<DockerCli> {
    Some(DockerCli {
        program: "docker".to_owned(),
        buildx,
        multi_platform: buildx,
        major,
    })
}

fn choose(
    requested: Option<EngineKind>,
    docker: Option<DockerCli>,
    podman: bool,
) -> Result<(Engine, Option<String>), String> {
    choose_engine(
        requested,
        docker,
        podman.then(|| "podman".to_owned()),
        "docker",
        "podman",
    )
}

#[test]
fn buildx_wins_when_the_docker_cli_has_it() {
    let buildx = Engine::Buildx {
        docker: "docker".to_owned(),
    };
    assert_eq!(
        choose(None, cli(true, Some(28)), true),
        Ok((buildx.clone(), None))
    );
    assert_eq!(
        choose(Some(EngineKind::Docker), cli(true, Some(28)), true),
        Ok((buildx, None))
    );
}

#[test]
fn buildx_on_the_docker_driver_builds_per_platform_and_says_how_to_do_better() {
    let mut docker = cli(true, Some(28)).unwrap();
    docker.multi_platform = false;
    let (engine, note) = choose(None, Some(docker), true).unwrap();
    assert_eq!(
        engine,
        Engine::DockerPerPlatform {
            docker: "docker".to_owned()
        }
    );
    assert!(note.unwrap().contains("docker buildx create --use"));
    let inspect = "Name:          default\nDriver:        docker\nLast Activity: 2025-01-01\n\n\
                   Nodes:\nName:      default\nEndpoint:  default\nStatus:    running\n";
    assert_eq!(builder_driver(inspect), Some("docker"));
    assert_eq!(
        builder_driver("Name: b\nDriver: docker-container\n"),
        Some("docker-container")
    );
    assert_eq!(builder_driver(""), None);
}

#[test]
fn a_docker_cli_before_23_builds_per_platform_with_builtin_buildkit() {
    let (engine, note) = choose(None, cli(false, Some(20)), true).unwrap();
    assert_eq!(
        engine,
        Engine::DockerPerPlatform {
            docker: "docker".to_owned()
        }
    );
    assert_eq!(note, None);
}

#[test]
fn a_new_docker_cli_without_buildx_falls_back_to_podman_or_says_what_to_install() {
    let (engine, note) = choose(None, cli(false, Some(28)), true).unwrap();
    assert_eq!(
        engine,
        Engine::Podman {
            podman: "podman".to_owned()
        }
    );
    assert!(note.unwrap().contains("DOCKER=/usr/bin/docker"));
    let err = choose(None, cli(false, Some(28)), false).unwrap_err();
    assert!(err.contains("docker-buildx-plugin"), "{err}");
    let err = choose(Some(EngineKind::Docker), cli(false, Some(28)), true).unwrap_err();
    assert!(err.contains("--engine podman"), "{err}");
}

#[test]
fn buildx_when_asked_for_needs_a_multi_platform_builder() {
    let buildx = Engine::Buildx {
        docker: "docker".to_owned(),
    };
    assert_eq!(
        choose(Some(EngineKind::Buildx), cli(true, Some(28)), true),
        Ok((buildx, None))
    );
    let mut docker_driver = cli(true, Some(28)).unwrap();
    docker_driver.multi_platform = false;
    let err = choose(Some(EngineKind::Buildx), Some(docker_driver), true).unwrap_err();
    assert!(err.contains("buildx create --use"), "{err}");
    let err = choose(Some(EngineKind::Buildx), cli(false, Some(20)), true).unwrap_err();
    assert!(err.contains("docker-buildx-plugin"), "{err}");
}

#[test]
fn a_dry_run_plans_for_the_named_engine_or_buildx() {
    assert!(matches!(planned_engine(None), Engine::Buildx { .. }));
    assert!(matches!(
        planned_engine(Some(EngineKind::Buildx)),
        Engine::Buildx { .. }
    ));
    assert!(matches!(
        planned_engine(Some(EngineKind::Docker)),
        Engine::DockerPerPlatform { .. }
    ));
    assert!(matches!(
        planned_engine(Some(EngineKind::Podman)),
        Engine::Podman { .. }
    ));
}

#[test]
fn podman_is_used_when_asked_for_or_alone() {
    let podman = Engine::Podman {
        podman: "podman".to_owned(),
    };
    assert_eq!(
        choose(Some(EngineKind::Podman), cli(true, Some(28)), true),
        Ok((podman.clone(), None))
    );
    assert_eq!(choose(None, None, true), Ok((podman, None)));
    let err = choose(Some(EngineKind::Podman), None, false).unwrap_err();
    assert!(err.contains("apt-get install podman"), "{err}");
    let err = choose(None, None, false).unwrap_err();
    assert!(err.starts_with("neither `docker` nor `podman`"), "{err}");
}

#[test]
fn docker_versions_are_read_from_the_cli() {
    assert_eq!(
        docker_major_version("Docker version 20.10.24+dfsg1, build 297e128\n"),
        Some(20)
    );
    assert_eq!(
        docker_major_version("Docker version 28.2.2, build e6534b4"),
        Some(28)
    );
    assert_eq!(docker_major_version("podman version 4.3.1"), None);
}

#[test]
fn flags_parse_as_documented() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        docker: Docker,
    }
    let cli = Cli::try_parse_from([
        "docker",
        "--release",
        "--no-build",
        "--platform",
        "linux/amd64,linux/arm64",
        "--tag",
        "a:1",
        "--tag",
        "b",
        "--engine",
        "podman",
        "--dry-run",
    ])
    .unwrap();
    assert_eq!(cli.docker.platforms, Arch::ALL);
    assert_eq!(cli.docker.tags, ["a:1", "b"]);
    assert_eq!(cli.docker.engine, Some(EngineKind::Podman));
    assert!(
        Cli::try_parse_from(["docker", "--no-build"]).is_err(),
        "--no-build needs --release"
    );
    assert!(Cli::try_parse_from(["docker", "--push", "--load"]).is_err());
    let err = Cli::try_parse_from(["docker", "--platform", "linux/s390x"])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("linux/amd64, linux/arm64"), "{err}");
}
