//! What `cargo xtask docker` does, as data: built from the flags and a few facts read from the
//! machine, printed by `--dry-run`, executed otherwise, and unit-tested without any engine.

use std::fmt;

use camino::{Utf8Path, Utf8PathBuf};

use crate::checksums;
use crate::dist::{ShellCommand, shell_quote as quote, words};
use crate::targets::{Arch, BINARY};

pub const RELEASE_DOCKERFILE: &str = "Dockerfile.release";
pub const DEV_DOCKERFILE: &str = "Dockerfile";
/// The repository of the image when `--tag` names none.
pub const DEFAULT_REPOSITORY: &str = "mount-monitor";
/// Build arguments the plan passes; both Dockerfiles declare them (checked by a test).
pub const BUILD_ARGS: [&str; 4] = ["VERSION", "REVISION", "CREATED", "SOURCE"];

/// The program that builds the image, and how it is driven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// `docker buildx build`: every platform in one command; a manifest list when pushed.
    Buildx { docker: String },
    /// One BuildKit `docker build --platform` per platform, each tagged `…-<arch>`; a push joins
    /// them into a manifest list with `docker manifest`. For a Docker CLI older than 23 without
    /// buildx (Debian's docker.io 20.10 has BuildKit built in), and for a buildx builder that
    /// builds one platform at a time (the `docker` driver without the containerd image store).
    DockerPerPlatform { docker: String },
    /// `podman build --platform … --manifest`: a local manifest list, pushed with
    /// `podman manifest push --all`.
    Podman { podman: String },
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Engine::Buildx { docker } => write!(f, "{docker} buildx"),
            Engine::DockerPerPlatform { docker } => {
                write!(f, "{docker} build, one platform at a time")
            }
            Engine::Podman { podman } => f.write_str(podman),
        }
    }
}

/// Where the release binaries come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binaries {
    /// Run `cargo xtask dist` first.
    Build,
    /// `--no-build`: reuse the dist directory as it is, after checking it against SHA256SUMS.
    Reuse,
}

/// The `org.opencontainers.image.*` values, passed as the build arguments in [`BUILD_ARGS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    /// What the binaries print with `--version` and serve on /version.
    pub version: String,
    pub revision: String,
    /// RFC 3339.
    pub created: String,
    pub source: String,
}

impl Labels {
    fn build_args(&self) -> Vec<String> {
        let values = [&self.version, &self.revision, &self.created, &self.source];
        BUILD_ARGS
            .iter()
            .zip(values)
            .flat_map(|(name, value)| ["--build-arg".to_owned(), format!("{name}={value}")])
            .collect()
    }
}

/// Everything the plan depends on. Read from the flags and the machine by `Docker::run`.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// `None`: the development image from `Dockerfile`, compiled inside the build.
    pub release: Option<Binaries>,
    pub engine: Engine,
    /// Platforms to build. Empty means the engine's own platform (development image only).
    pub archs: Vec<Arch>,
    /// Full references, `repository:tag`, the first one being the main name.
    pub tags: Vec<String>,
    pub labels: Labels,
    pub push: bool,
    pub load: bool,
    pub root: Utf8PathBuf,
    /// Where dist leaves the binaries and SHA256SUMS.
    pub dist_dir: Utf8PathBuf,
    /// The release build's context: `Dockerfile.release` and the binaries, nothing else.
    pub context_dir: Utf8PathBuf,
    /// The machine's own platform, where the development image compiles.
    pub build_platform: Option<Arch>,
}

/// One thing `docker` does, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `cargo xtask dist` with these arguments.
    Dist(Vec<String>),
    /// Each binary matches its SHA256SUMS line and is a static ELF of its platform, and the
    /// binaries that can run here print `mount-monitor <version>`.
    VerifyDist {
        dir: Utf8PathBuf,
        archs: Vec<Arch>,
        version: String,
    },
    /// Recreate `dir` holding exactly `files`.
    StageContext {
        dir: Utf8PathBuf,
        files: Vec<Utf8PathBuf>,
    },
    Run(ShellCommand),
    /// Forget a local image or manifest list, if there is one: a failure of this command only
    /// means there was none.
    RemoveStale(ShellCommand),
    /// Forget the local podman image or manifest list `name`, and the images an old list held
    /// (each rebuild makes new ones; left behind they pile up as `<none>` images).
    ReplacePodmanList {
        podman: String,
        name: String,
    },
    Note(String),
}

pub fn plan(inputs: &Inputs) -> Vec<Step> {
    let mut steps = Vec::new();
    let (dockerfile, context) = match inputs.release {
        Some(binaries) => {
            if binaries == Binaries::Build {
                let mut args = Vec::new();
                for arch in &inputs.archs {
                    args.extend(["--arch".to_owned(), arch.to_string()]);
                }
                args.extend(["--version".to_owned(), inputs.labels.version.clone()]);
                args.extend(["--out".to_owned(), inputs.dist_dir.to_string()]);
                steps.push(Step::Dist(args));
            }
            steps.push(Step::VerifyDist {
                dir: inputs.dist_dir.clone(),
                archs: inputs.archs.clone(),
                version: inputs.labels.version.clone(),
            });
            let mut files = vec![inputs.root.join(RELEASE_DOCKERFILE)];
            files.extend(
                inputs
                    .archs
                    .iter()
                    .map(|arch| inputs.dist_dir.join(arch.artifact_name())),
            );
            steps.push(Step::StageContext {
                dir: inputs.context_dir.clone(),
                files,
            });
            (
                inputs.context_dir.join(RELEASE_DOCKERFILE),
                inputs.context_dir.clone(),
            )
        }
        None => (inputs.root.join(DEV_DOCKERFILE), inputs.root.clone()),
    };
    let build = Build {
        inputs,
        dockerfile: &dockerfile,
        context: &context,
    };
    match &inputs.engine {
        Engine::Buildx { docker } => build.buildx(docker, &mut steps),
        Engine::DockerPerPlatform { docker } => build.docker_per_platform(docker, &mut steps),
        Engine::Podman { podman } => build.podman(podman, &mut steps),
    }
    steps
}

struct Build<'a> {
    inputs: &'a Inputs,
    dockerfile: &'a Utf8Path,
    context: &'a Utf8Path,
}

impl Build<'_> {
    fn buildx(&self, docker: &str, steps: &mut Vec<Step>) {
        let inputs = self.inputs;
        let mut args = words(&["buildx", "build"]);
        args.extend(self.platform_args());
        // Without this, buildx 0.10+ adds provenance attestations as `unknown/unknown` entries
        // to the manifest list, next to the two platforms.
        args.push("--provenance=false".to_owned());
        args.extend(self.file_and_labels());
        for tag in &inputs.tags {
            args.extend(["--tag".to_owned(), tag.clone()]);
        }
        // A development image is for running here: load it unless it is pushed or multi-arch.
        let load =
            inputs.load || (inputs.release.is_none() && !inputs.push && inputs.archs.len() <= 1);
        if inputs.push {
            args.push("--push".to_owned());
        } else if load {
            args.push("--load".to_owned());
        }
        args.push(self.context.to_string());
        steps.push(Step::Run(command(docker, args)));
        if !inputs.push && !load {
            steps.push(Step::Note(
                "the multi-platform image stays in buildx's build cache: add --push to publish it, \
                 or --load --platform linux/<arch> to run one platform here"
                    .to_owned(),
            ));
        }
    }

    fn docker_per_platform(&self, docker: &str, steps: &mut Vec<Step>) {
        let inputs = self.inputs;
        let per_arch = inputs.archs.len() > 1;
        let tag_for = |tag: &str, arch: Option<Arch>| match arch {
            Some(arch) if per_arch => format!("{tag}-{arch}"),
            _ => tag.to_owned(),
        };
        let archs: Vec<Option<Arch>> = if inputs.archs.is_empty() {
            vec![None]
        } else {
            inputs.archs.iter().copied().map(Some).collect()
        };
        for &arch in &archs {
            let mut args = words(&["build"]);
            if let Some(arch) = arch {
                args.extend(["--platform".to_owned(), platform(arch)]);
            }
            args.extend(self.file_and_labels());
            for tag in &inputs.tags {
                args.extend(["--tag".to_owned(), tag_for(tag, arch)]);
            }
            args.push(self.context.to_string());
            let mut build = command(docker, args);
            build.env = vec![("DOCKER_BUILDKIT".to_owned(), "1".to_owned())];
            steps.push(Step::Run(build));
        }
        if !inputs.push {
            return;
        }
        for tag in &inputs.tags {
            for &arch in &archs {
                let tagged = tag_for(tag, arch);
                steps.push(Step::Run(command(docker, words(&["push", &tagged]))));
            }
        }
        if !per_arch {
            return;
        }
        for tag in &inputs.tags {
            // The Docker CLI talks to the registry itself here, and only allows plain HTTP with
            // --insecure; dockerd allows it for 127.0.0.0/8 without asking, so do the same.
            let insecure = is_loopback_registry(tag).then(|| "--insecure".to_owned());
            let remove = words(&["manifest", "rm", tag]);
            steps.push(Step::RemoveStale(command(docker, remove)));
            let mut create = words(&["manifest", "create"]);
            create.extend(insecure.clone());
            create.push(tag.clone());
            create.extend(archs.iter().map(|&arch| tag_for(tag, arch)));
            steps.push(Step::Run(command(docker, create)));
            let mut push = words(&["manifest", "push", "--purge"]);
            push.extend(insecure);
            push.push(tag.clone());
            steps.push(Step::Run(command(docker, push)));
        }
    }

    fn podman(&self, podman: &str, steps: &mut Vec<Step>) {
        let inputs = self.inputs;
        let main = &inputs.tags[0];
        // A release is always a manifest list, like buildx's, even with one platform.
        let manifest = inputs.release.is_some() || inputs.archs.len() > 1;
        let mut args = words(&["build"]);
        args.extend(self.platform_args());
        // The OCI image format has no HEALTHCHECK; Docker's keeps it.
        args.extend(words(&["--format", "docker"]));
        if manifest {
            steps.push(Step::ReplacePodmanList {
                podman: podman.to_owned(),
                name: main.clone(),
            });
            // Intermediate images of a --manifest build break `podman images` in podman 4
            // (containers/podman#19757); a COPY-only build has nothing worth caching anyway.
            args.extend(words(&["--layers=false", "--manifest"]));
            args.push(main.clone());
        } else {
            for tag in &inputs.tags {
                args.extend(["--tag".to_owned(), tag.clone()]);
            }
        }
        args.extend(self.file_and_labels());
        // `FROM --platform=$BUILDPLATFORM` compiles on this machine; podman before 4.4 (buildah
        // 1.29) leaves BUILDPLATFORM empty, and would pull the builder for the target platform.
        if let (None, Some(build_platform)) = (inputs.release, inputs.build_platform) {
            args.extend([
                "--build-arg".to_owned(),
                format!("BUILDPLATFORM={}", platform(build_platform)),
            ]);
        }
        args.push(self.context.to_string());
        steps.push(Step::Run(command(podman, args)));
        if manifest {
            for tag in &inputs.tags[1..] {
                steps.push(Step::Run(command(podman, words(&["tag", main, tag]))));
            }
        }
        if !inputs.push {
            return;
        }
        for tag in &inputs.tags {
            let args = if manifest {
                // v2s2 keeps the healthcheck, as --format docker did for the build.
                let to = format!("docker://{tag}");
                words(&["manifest", "push", "--all", "--format", "v2s2", main, &to])
            } else {
                words(&["push", "--format", "v2s2", tag])
            };
            steps.push(Step::Run(command(podman, args)));
        }
    }

    fn platform_args(&self) -> Vec<String> {
        if self.inputs.archs.is_empty() {
            return Vec::new();
        }
        let platforms: Vec<String> = self
            .inputs
            .archs
            .iter()
            .map(|&arch| platform(arch))
            .collect();
        vec!["--platform".to_owned(), platforms.join(",")]
    }

    fn file_and_labels(&self) -> Vec<String> {
        let mut args = vec!["--file".to_owned(), self.dockerfile.to_string()];
        args.extend(self.inputs.labels.build_args());
        args
    }
}

fn command(program: &str, args: Vec<String>) -> ShellCommand {
    ShellCommand {
        env_remove: Vec::new(),
        env: Vec::new(),
        program: program.to_owned(),
        args,
    }
}

/// `linux/amd64`: the OCI platform of a release architecture.
pub fn platform(arch: Arch) -> String {
    format!("linux/{}", arch.docker_arch())
}

/// `--platform` values: `linux/arm64` (or just `arm64`), from the one table of targets.
pub fn parse_platform(value: &str) -> Result<Arch, String> {
    let arch = value.strip_prefix("linux/").unwrap_or(value);
    Arch::from_docker_arch(arch).ok_or_else(|| {
        let known: Vec<String> = Arch::ALL.iter().map(|&arch| platform(arch)).collect();
        format!(
            "no release binary for {value:?}: choose from {}",
            known.join(", ")
        )
    })
}

/// Whether `reference` names an image on a registry at localhost or 127.0.0.0/8.
pub fn is_loopback_registry(reference: &str) -> bool {
    let Some((registry, _)) = reference.split_once('/') else {
        return false;
    };
    let host = registry.rsplit_once(':').map_or(registry, |(host, _)| host);
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

/// The image references to build: each `--tag` given (default: [`DEFAULT_REPOSITORY`]) that names
/// a tag is used as is; one that names only a repository gets the version's tag, and for a stable
/// release also `latest`.
pub fn tags(given: &[String], version: &str, release: bool) -> Result<Vec<String>, String> {
    let default = [DEFAULT_REPOSITORY.to_owned()];
    let given = if given.is_empty() {
        &default[..]
    } else {
        given
    };
    let mut tags = Vec::new();
    for reference in given {
        check_reference(reference)?;
        if has_tag(reference) {
            tags.push(reference.clone());
            continue;
        }
        tags.push(format!("{reference}:{}", image_tag(version)));
        if release && is_stable_release(version) {
            tags.push(format!("{reference}:latest"));
        }
    }
    let mut seen = std::collections::HashSet::new();
    tags.retain(|tag| seen.insert(tag.clone()));
    Ok(tags)
}

/// A stable semver release (`1.4.0`, `v1.4.0`, `1.4.0+build.5`): not a pre-release
/// (`1.4.0-rc.1`), and not what `git describe` says between tags (`v1.4.0-3-gdeadbee`).
pub fn is_stable_release(version: &str) -> bool {
    let bare = version.strip_prefix('v').unwrap_or(version);
    semver::Version::parse(bare).is_ok_and(|version| version.pre.is_empty())
}

/// The image tag for a version: without the `v` of a semver version (`v1.4.0` → `1.4.0`, as
/// registries list releases), with characters a tag cannot hold (`+` of build metadata) as `_`.
pub fn image_tag(version: &str) -> String {
    let bare = match version.strip_prefix('v') {
        Some(rest) if semver::Version::parse(rest).is_ok() => rest,
        _ => version,
    };
    bare.chars()
        .map(|c| if is_tag_char(c) { c } else { '_' })
        .collect()
}

fn is_tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_.-".contains(c)
}

/// Whether the last path component of `reference` carries a `:tag`.
fn has_tag(reference: &str) -> bool {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    last.contains(':')
}

/// The parts of Docker's reference grammar that people get wrong: upper case in the repository,
/// a digest instead of a tag, characters a tag cannot hold.
fn check_reference(reference: &str) -> Result<(), String> {
    let fail = |why: &str| Err(format!("--tag {reference:?}: {why}"));
    if reference.contains('@') {
        return fail("a digest cannot be built; give a tag like `ghcr.io/org/mount-monitor:1.4.0`");
    }
    let (repository, tag) = if has_tag(reference) {
        reference.rsplit_once(':').expect("has_tag found a colon")
    } else {
        (reference, "")
    };
    let path = match repository.split_once('/') {
        // A first component with a dot, a port or `localhost` is a registry host, which may
        // have upper case; the rest may not.
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => rest,
        _ => repository,
    };
    let path_ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c);
    if path.is_empty() || !path.chars().all(path_ok) || path.starts_with(['.', '_', '-', '/']) {
        return fail(
            "the repository must be lower-case letters, digits and . _ - / (for example `mount-monitor` or `ghcr.io/org/mount-monitor`)",
        );
    }
    if has_tag(reference)
        && (tag.is_empty()
            || tag.len() > 128
            || !tag.chars().all(is_tag_char)
            || tag.starts_with(['.', '-']))
    {
        return fail("a tag is 1 to 128 letters, digits and _ . - (not starting with . or -)");
    }
    Ok(())
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Dist(args) => {
                let args: Vec<String> = args.iter().map(|arg| quote(arg)).collect();
                write!(f, "$ cargo xtask dist {}", args.join(" "))
            }
            Step::VerifyDist {
                dir,
                archs,
                version,
            } => {
                let names: Vec<String> = archs.iter().map(|arch| arch.artifact_name()).collect();
                write!(
                    f,
                    "# check {} in {dir} against {}, as static ELF executables of their platforms, \
                     and that they print `{BINARY} {version}`",
                    names.join(", "),
                    checksums::FILE_NAME,
                )
            }
            Step::StageContext { dir, files } => {
                let files: Vec<String> = files.iter().map(|file| quote(file.as_str())).collect();
                let dir = quote(dir.as_str());
                write!(
                    f,
                    "$ rm -rf {dir} && mkdir -p {dir} && cp {} {dir}/",
                    files.join(" ")
                )
            }
            Step::Run(command) => write!(f, "$ {command}"),
            Step::RemoveStale(command) => write!(f, "$ {command} 2>/dev/null || true"),
            Step::ReplacePodmanList { podman, name } => {
                let podman = quote(podman);
                let name = quote(name);
                write!(
                    f,
                    "$ {podman} manifest rm {name} 2>/dev/null || {podman} rmi --ignore {name}  \
                     # then `{podman} rmi` the images the old list held"
                )
            }
            Step::Note(note) => write!(f, "# {note}"),
        }
    }
}

#[cfg(test)]
mod tests;
