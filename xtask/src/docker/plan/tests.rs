use super::*;

fn inputs(engine: Engine) -> Inputs {
    Inputs {
        release: Some(Binaries::Reuse),
        engine,
        archs: Arch::ALL.to_vec(),
        tags: vec![
            "ghcr.io/org/mount-monitor:1.4.0".to_owned(),
            "ghcr.io/org/mount-monitor:latest".to_owned(),
        ],
        labels: Labels {
            version: "v1.4.0".to_owned(),
            revision: "0123abc".to_owned(),
            created: "2026-01-02T03:04:05Z".to_owned(),
            source: "https://github.com/mount-monitor/mount-monitor".to_owned(),
        },
        push: false,
        load: false,
        root: "/src/mm".into(),
        dist_dir: "/src/mm/target/dist".into(),
        context_dir: "/src/mm/target/docker-context".into(),
        build_platform: Some(Arch::Amd64),
    }
}

fn printed(steps: &[Step]) -> Vec<String> {
    steps.iter().map(ToString::to_string).collect()
}

const LABEL_ARGS: &str = "--build-arg VERSION=v1.4.0 --build-arg REVISION=0123abc \
    --build-arg CREATED=2026-01-02T03:04:05Z \
    --build-arg SOURCE=https://github.com/mount-monitor/mount-monitor";

fn buildx() -> Engine {
    Engine::Buildx {
        docker: "docker".to_owned(),
    }
}

#[test]
fn buildx_release_push_is_one_command_for_both_platforms() {
    let mut inputs = inputs(buildx());
    inputs.release = Some(Binaries::Build);
    inputs.push = true;
    assert_eq!(
        printed(&plan(&inputs)),
        [
            "$ cargo xtask dist --arch amd64 --arch arm64 --version v1.4.0 --out /src/mm/target/dist".to_owned(),
            "# check mount-monitor-linux-amd64, mount-monitor-linux-arm64 in /src/mm/target/dist \
             against SHA256SUMS, as static ELF executables of their platforms, and that they \
             print `mount-monitor v1.4.0`"
                .to_owned(),
            "$ rm -rf /src/mm/target/docker-context && mkdir -p /src/mm/target/docker-context && \
             cp /src/mm/Dockerfile.release /src/mm/target/dist/mount-monitor-linux-amd64 \
             /src/mm/target/dist/mount-monitor-linux-arm64 /src/mm/target/docker-context/"
                .to_owned(),
            format!(
                "$ docker buildx build --platform linux/amd64,linux/arm64 --provenance=false \
                 --file /src/mm/target/docker-context/Dockerfile.release {LABEL_ARGS} \
                 --tag ghcr.io/org/mount-monitor:1.4.0 --tag ghcr.io/org/mount-monitor:latest \
                 --push /src/mm/target/docker-context"
            ),
        ]
    );
}

#[test]
fn buildx_without_push_says_where_the_image_went() {
    let steps = printed(&plan(&inputs(buildx())));
    assert!(steps[0].starts_with("# check mount-monitor-linux-amd64, mount-monitor-linux-arm64 in /src/mm/target/dist against SHA256SUMS"), "{}", steps[0]);
    assert!(
        steps[2].ends_with("--tag ghcr.io/org/mount-monitor:latest /src/mm/target/docker-context"),
        "{}",
        steps[2]
    );
    assert!(steps[3].contains("add --push"), "{}", steps[3]);
    assert_eq!(steps.len(), 4);
}

#[test]
fn buildx_load_builds_the_one_platform_asked_for() {
    let mut inputs = inputs(buildx());
    inputs.archs = vec![Arch::Arm64];
    inputs.load = true;
    let steps = printed(&plan(&inputs));
    assert_eq!(steps.len(), 3);
    assert!(steps[1].ends_with(" cp /src/mm/Dockerfile.release /src/mm/target/dist/mount-monitor-linux-arm64 /src/mm/target/docker-context/"), "{}", steps[1]);
    assert!(
        steps[2].starts_with("$ docker buildx build --platform linux/arm64 --provenance=false "),
        "{}",
        steps[2]
    );
    assert!(
        steps[2].ends_with(" --load /src/mm/target/docker-context"),
        "{}",
        steps[2]
    );
}

#[test]
fn buildx_development_image_builds_from_the_checkout_and_loads_it() {
    let mut inputs = inputs(buildx());
    inputs.release = None;
    inputs.archs = vec![Arch::Amd64];
    inputs.tags = vec!["mount-monitor:dev".to_owned()];
    assert_eq!(
        printed(&plan(&inputs)),
        [format!(
            "$ docker buildx build --platform linux/amd64 --provenance=false \
             --file /src/mm/Dockerfile {LABEL_ARGS} --tag mount-monitor:dev --load /src/mm"
        )]
    );
}

#[test]
fn podman_development_image_gets_the_build_platform_old_podman_leaves_out() {
    let mut inputs = inputs(Engine::Podman {
        podman: "podman".to_owned(),
    });
    inputs.release = None;
    inputs.archs = vec![Arch::Arm64];
    inputs.tags = vec!["mount-monitor:dev".to_owned()];
    assert_eq!(
        printed(&plan(&inputs)),
        [format!(
            "$ podman build --platform linux/arm64 --format docker --tag mount-monitor:dev \
             --file /src/mm/Dockerfile {LABEL_ARGS} --build-arg BUILDPLATFORM=linux/amd64 /src/mm"
        )]
    );
}

#[test]
fn podman_builds_a_manifest_list_in_docker_format_and_pushes_it_whole() {
    let mut inputs = inputs(Engine::Podman {
        podman: "podman".to_owned(),
    });
    inputs.push = true;
    assert_eq!(
        printed(&plan(&inputs))[2..],
        [
            "$ podman manifest rm ghcr.io/org/mount-monitor:1.4.0 2>/dev/null || \
             podman rmi --ignore ghcr.io/org/mount-monitor:1.4.0  \
             # then `podman rmi` the images the old list held"
                .to_owned(),
            format!(
                "$ podman build --platform linux/amd64,linux/arm64 --format docker --layers=false \
                 --manifest ghcr.io/org/mount-monitor:1.4.0 \
                 --file /src/mm/target/docker-context/Dockerfile.release {LABEL_ARGS} \
                 /src/mm/target/docker-context"
            ),
            "$ podman tag ghcr.io/org/mount-monitor:1.4.0 ghcr.io/org/mount-monitor:latest"
                .to_owned(),
            "$ podman manifest push --all --format v2s2 ghcr.io/org/mount-monitor:1.4.0 \
             docker://ghcr.io/org/mount-monitor:1.4.0"
                .to_owned(),
            "$ podman manifest push --all --format v2s2 ghcr.io/org/mount-monitor:1.4.0 \
             docker://ghcr.io/org/mount-monitor:latest"
                .to_owned(),
        ]
    );
}

#[test]
fn plain_docker_builds_each_platform_and_joins_them_when_pushing() {
    let mut inputs = inputs(Engine::DockerPerPlatform {
        docker: "/usr/bin/docker".to_owned(),
    });
    inputs.tags = vec!["127.0.0.1:5000/mount-monitor:1.4.0".to_owned()];
    inputs.push = true;
    let file_and_labels =
        format!("--file /src/mm/target/docker-context/Dockerfile.release {LABEL_ARGS}");
    assert_eq!(
        printed(&plan(&inputs))[2..],
        [
            format!(
                "$ DOCKER_BUILDKIT=1 /usr/bin/docker build --platform linux/amd64 {file_and_labels} \
                 --tag 127.0.0.1:5000/mount-monitor:1.4.0-amd64 /src/mm/target/docker-context"
            ),
            format!(
                "$ DOCKER_BUILDKIT=1 /usr/bin/docker build --platform linux/arm64 {file_and_labels} \
                 --tag 127.0.0.1:5000/mount-monitor:1.4.0-arm64 /src/mm/target/docker-context"
            ),
            "$ /usr/bin/docker push 127.0.0.1:5000/mount-monitor:1.4.0-amd64".to_owned(),
            "$ /usr/bin/docker push 127.0.0.1:5000/mount-monitor:1.4.0-arm64".to_owned(),
            "$ /usr/bin/docker manifest rm 127.0.0.1:5000/mount-monitor:1.4.0 2>/dev/null || true"
                .to_owned(),
            "$ /usr/bin/docker manifest create --insecure 127.0.0.1:5000/mount-monitor:1.4.0 \
             127.0.0.1:5000/mount-monitor:1.4.0-amd64 127.0.0.1:5000/mount-monitor:1.4.0-arm64"
                .to_owned(),
            "$ /usr/bin/docker manifest push --purge --insecure 127.0.0.1:5000/mount-monitor:1.4.0"
                .to_owned(),
        ]
    );
}

#[test]
fn plain_docker_with_one_platform_keeps_the_tag_as_given() {
    let mut inputs = inputs(Engine::DockerPerPlatform {
        docker: "docker".to_owned(),
    });
    inputs.archs = vec![Arch::Amd64];
    inputs.tags = vec!["mount-monitor:1.4.0".to_owned()];
    let steps = printed(&plan(&inputs));
    assert_eq!(steps.len(), 3);
    assert!(
        steps[2].ends_with(" --tag mount-monitor:1.4.0 /src/mm/target/docker-context"),
        "{}",
        steps[2]
    );
}

#[test]
fn latest_is_added_for_stable_releases_only() {
    let tags = |given: &[&str], version: &str, release: bool| {
        let given: Vec<String> = given.iter().map(|tag| (*tag).to_owned()).collect();
        super::tags(&given, version, release).unwrap()
    };
    assert_eq!(
        tags(&[], "1.4.0", true),
        ["mount-monitor:1.4.0", "mount-monitor:latest"]
    );
    assert_eq!(
        tags(&[], "v1.4.0", true),
        ["mount-monitor:1.4.0", "mount-monitor:latest"]
    );
    assert_eq!(
        tags(&[], "1.4.0+build.5", true),
        ["mount-monitor:1.4.0_build.5", "mount-monitor:latest"]
    );
    for pre_release in [
        "1.4.0-rc.1",
        "v2.0.0-alpha",
        "v1.4.0-3-gdeadbee",
        "v1.4.0-3-gdeadbee-dirty",
    ] {
        assert_eq!(tags(&[], pre_release, true).len(), 1, "{pre_release}");
    }
    for not_semver in ["4d463fc-dirty", "1.4", "01.4.0", "latest"] {
        assert_eq!(tags(&[], not_semver, true).len(), 1, "{not_semver}");
    }
    // The development image never claims to be the latest release.
    assert_eq!(tags(&[], "1.4.0", false), ["mount-monitor:1.4.0"]);
    // A repository gets the version's tags; a full reference is used as given.
    assert_eq!(
        tags(
            &["ghcr.io/org/mount-monitor", "127.0.0.1:5000/mm:ci"],
            "v1.4.0",
            true
        ),
        [
            "ghcr.io/org/mount-monitor:1.4.0",
            "ghcr.io/org/mount-monitor:latest",
            "127.0.0.1:5000/mm:ci"
        ]
    );
    assert_eq!(tags(&["mm:x", "mm:x"], "1.0.0", true), ["mm:x"]);
}

#[test]
fn references_that_engines_would_refuse_are_explained() {
    for bad in [
        "Mount-Monitor",
        "mm:bad+tag",
        "mm@sha256:abc",
        "mm:",
        "ghcr.io/Org/mm",
    ] {
        let err = tags(&[bad.to_owned()], "1.0.0", true).unwrap_err();
        assert!(err.starts_with(&format!("--tag {bad:?}: ")), "{err}");
    }
    for good in [
        "localhost:5000/mm:1",
        "Registry.Example:443/org/mm",
        "mm:1.0_x-y",
    ] {
        tags(&[good.to_owned()], "1.0.0", true).unwrap();
    }
}

#[test]
fn platforms_come_from_the_target_table() {
    assert_eq!(parse_platform("linux/arm64"), Ok(Arch::Arm64));
    assert_eq!(parse_platform("amd64"), Ok(Arch::Amd64));
    let err = parse_platform("linux/arm/v7").unwrap_err();
    assert!(err.contains("linux/amd64, linux/arm64"), "{err}");
    for arch in Arch::ALL {
        assert_eq!(parse_platform(&platform(arch)), Ok(arch));
    }
}

#[test]
fn loopback_registries_are_recognised() {
    assert!(is_loopback_registry("127.0.0.1:5000/mm:1"));
    assert!(is_loopback_registry("localhost:5000/mm:1"));
    assert!(!is_loopback_registry("mount-monitor:1"));
    assert!(!is_loopback_registry("ghcr.io/org/mm:1"));
}
