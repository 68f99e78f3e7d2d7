//! `cargo xtask docker [--release]`: the container images, multi-arch, from the binaries dist built.

pub mod context;
pub mod dockerfile;
pub mod plan;

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{Shell, cmd};

pub use plan::{Binaries, Engine, Inputs, Labels, Step, plan};

use crate::dist::{self, Dist};
use crate::emulator::{self, Runner, find_in_path};
use crate::targets::{Arch, BINARY};
use crate::{project_root, query, run_plan};

/// Build the container image: from `Dockerfile` (development), or with --release from dist's
/// binaries and `Dockerfile.release` for linux/amd64 and linux/arm64 in one command
///
/// Engines: `docker buildx` when the docker CLI has it; else one BuildKit `docker build` per
/// platform tagged `<tag>-<arch>` (a Docker CLI before 23 such as Debian's docker.io, or buildx on
/// its `docker` driver); else podman. `DOCKER` and `PODMAN` name the programs [default: docker,
/// podman].
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Docker {
    /// Build the release image from dist's binaries (`Dockerfile.release`, no compiler inside)
    #[arg(long)]
    pub release: bool,

    /// With --release: reuse the binaries in the dist directory, after checking them against
    /// SHA256SUMS, instead of running `cargo xtask dist`
    #[arg(long, requires = "release")]
    pub no_build: bool,

    /// Image reference; repeat for several. A repository without `:tag` gets the version's tag
    /// and, for a stable release, `latest` [default: mount-monitor]
    #[arg(long = "tag", value_name = "REF")]
    pub tags: Vec<String>,

    /// Platforms to build, comma-separated or repeated [default: linux/amd64,linux/arm64 for
    /// --release, this machine's otherwise]
    #[arg(long = "platform", value_name = "PLATFORM", value_delimiter = ',', value_parser = plan::parse_platform)]
    pub platforms: Vec<Arch>,

    /// Push every tag to its registry (a manifest list holding each platform)
    #[arg(long, conflicts_with = "load")]
    pub push: bool,

    /// Load the image into the local engine to run it; one platform
    #[arg(long)]
    pub load: bool,

    /// Build with this engine instead of the first usable one (`docker`: buildx when the CLI
    /// has it, else one BuildKit build per platform). With --dry-run nothing is asked of the
    /// host: the plan is for this engine [default with --dry-run: buildx]
    #[arg(long, value_enum)]
    pub engine: Option<EngineKind>,

    /// Version for the tag and labels; with --no-build the binaries must print it [default:
    /// --no-build: what the binaries print; otherwise as `cargo xtask dist`]
    #[arg(long)]
    pub version: Option<String>,

    /// Directory of dist's binaries and SHA256SUMS [default: <target-dir>/dist]
    #[arg(long, value_name = "DIR")]
    pub dist_dir: Option<Utf8PathBuf>,

    /// Print the exact commands and run none of them; the engine is not looked up (see
    /// --engine), so the plan is the same on every machine
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    Buildx,
    Docker,
    Podman,
}

impl Docker {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let inputs = self.inputs(sh)?;
        let _context = match inputs.release {
            Some(_) if !self.dry_run => Some(lock_context(&inputs.context_dir)?),
            _ => None,
        };
        let started = Instant::now();
        if !run_plan(&plan(&inputs), self.dry_run, |step| execute(sh, step))? {
            return Ok(());
        }
        println!(
            "docker: {} with {} in {:.1} s{}",
            inputs.tags.join(", "),
            inputs.engine,
            started.elapsed().as_secs_f64(),
            if inputs.push { ", pushed" } else { "" }
        );
        Ok(())
    }

    fn inputs(&self, sh: &Shell) -> anyhow::Result<Inputs> {
        let root = project_root();
        let cwd = std::env::current_dir().context("reading the current directory")?;
        let cwd = Utf8PathBuf::try_from(cwd).context("the current directory is not UTF-8")?;
        let target_dir = match std::env::var("CARGO_TARGET_DIR") {
            Ok(dir) if !dir.is_empty() => cwd.join(dir),
            _ => root.join("target"),
        };
        let dist_dir = match &self.dist_dir {
            Some(dir) => cwd.join(dir),
            None => target_dir.join("dist"),
        };
        let release = self.release.then_some(if self.no_build {
            Binaries::Reuse
        } else {
            Binaries::Build
        });
        let mut archs: Vec<Arch> = Arch::ALL
            .into_iter()
            .filter(|arch| self.platforms.contains(arch))
            .collect();
        if archs.is_empty() {
            // A release is every platform; the development image is this machine's, named
            // explicitly, as podman before 4.4 sets TARGETARCH only for an explicit --platform.
            archs = match release {
                Some(_) => Arch::ALL.to_vec(),
                None => Arch::host().into_iter().collect(),
            };
        }
        if self.load && archs.len() > 1 {
            bail!(
                "--load puts one image into the local engine: pick its platform, e.g. \
                 `--load --platform linux/{}`",
                Arch::host().unwrap_or(Arch::Amd64)
            );
        }

        let version = match (&self.version, release) {
            (Some(given), _) => Some(given.clone()),
            // Reused binaries already carry their version: ask them.
            (None, Some(Binaries::Reuse)) => version_of_binaries(&dist_dir, &archs)?,
            (None, _) => None,
        };
        let version = version.map_or_else(|| dist::default_version(sh), Ok)?;
        dist::check_version(&version)?;
        let tags =
            plan::tags(&self.tags, &version, release.is_some()).map_err(anyhow::Error::msg)?;
        let labels = Labels {
            revision: query(cmd!(sh, "git rev-parse HEAD")).unwrap_or_else(|| "unknown".to_owned()),
            created: created(sh)?,
            source: env!("CARGO_PKG_REPOSITORY").to_owned(),
            version,
        };
        Ok(Inputs {
            release,
            engine: if self.dry_run {
                planned_engine(self.engine)
            } else {
                detect_engine(sh, self.engine)?
            },
            archs,
            tags,
            labels,
            push: self.push,
            load: self.load,
            root,
            dist_dir,
            context_dir: target_dir.join("docker-context"),
            build_platform: Arch::host(),
        })
    }
}

fn execute(sh: &Shell, step: &Step) -> anyhow::Result<()> {
    match step {
        // The arguments the step prints, read as the command line would read them.
        Step::Dist(args) => <Dist as clap::Parser>::try_parse_from(
            std::iter::once("dist").chain(args.iter().map(String::as_str)),
        )
        .context("the dist step's arguments do not parse (a bug in `cargo xtask docker`)")?
        .run(sh),
        Step::VerifyDist {
            dir,
            archs,
            version,
        } => {
            context::verify_dist(dir, archs)?;
            for &arch in archs {
                let file = dir.join(arch.artifact_name());
                match binary_version(&file, arch)? {
                    Some(printed) if &printed != version => bail!(
                        "{file} says it is version {printed}, not {version}: build it with \
                         `cargo xtask dist --version {version}`, or leave out --version"
                    ),
                    Some(_) => eprintln!("ok: {file} is version {version}"),
                    None => eprintln!(
                        "note: cannot run {arch} binaries here; {file} not asked its version"
                    ),
                }
            }
            Ok(())
        }
        Step::StageContext { dir, files } => context::stage(dir, files),
        Step::Run(command) => command.to_cmd(sh).run().with_context(|| {
            format!(
                "`{}` failed (output above). {}",
                command.program,
                engine_hint(&command.program, &command.args)
            )
        }),
        Step::RemoveStale(command) => {
            let _ = command.to_cmd(sh).ignore_stdout().ignore_stderr().run();
            Ok(())
        }
        Step::ReplacePodmanList { podman, name } => remove_podman_list(sh, podman, name),
        Step::Note(note) => {
            eprintln!("note: {note}");
            Ok(())
        }
    }
}

/// Holds `<context>.lock` until dropped: another `docker --release` in this checkout would
/// restage the context under a running build.
fn lock_context(context: &Utf8Path) -> anyhow::Result<std::fs::File> {
    let lock = context.with_extension("lock");
    if let Some(dir) = lock.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
    }
    let file = std::fs::File::create(&lock).with_context(|| format!("creating {lock}"))?;
    if file.try_lock().is_err() {
        eprintln!(
            "note: waiting for another `cargo xtask docker --release` to finish with {context}"
        );
        file.lock().with_context(|| format!("locking {lock}"))?;
    }
    Ok(file)
}

/// Removes podman's image or manifest list `name`, and the images a list held.
pub fn remove_podman_list(sh: &Shell, podman: &str, name: &str) -> anyhow::Result<()> {
    let id_format = "{{.Id}}";
    let repository = name
        .rsplit_once(':')
        .map_or(name, |(repository, _)| repository);
    let old_images: Vec<String> = query(cmd!(sh, "{podman} manifest inspect {name}"))
        .and_then(|list| serde_json::from_str::<serde_json::Value>(&list).ok())
        .map(|list| {
            list["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|entry| entry["digest"].as_str())
                .filter_map(|digest| {
                    let image = format!("{repository}@{digest}");
                    query(cmd!(
                        sh,
                        "{podman} image inspect --format {id_format} {image}"
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let list_removed = cmd!(sh, "{podman} manifest rm {name}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok();
    if !list_removed {
        cmd!(sh, "{podman} rmi --ignore {name}")
            .quiet()
            .ignore_stdout()
            .run()
            .with_context(|| {
                format!("removing the old image {name}: run `{podman} rmi {name}` by hand")
            })?;
    }
    if !old_images.is_empty() {
        // Best effort: an image a container still uses stays.
        let _ = cmd!(sh, "{podman} rmi --ignore {old_images...}")
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run();
    }
    Ok(())
}

/// What usually fixes a failed engine command.
fn engine_hint(program: &str, args: &[String]) -> &'static str {
    match args.first().map(String::as_str) {
        Some("push" | "manifest") => {
            "Log in to the registry (`docker login` / `podman login`), check that the \
             repository exists and that you may push to it"
        }
        _ if program.ends_with("podman") => {
            "Check `podman info`; running arm64 steps needs qemu-user-static (`sudo .ci/setup`)"
        }
        _ => {
            "Is dockerd running (`docker info`; `sudo .ci/setup` starts it)? Another engine: \
             `--engine podman`"
        }
    }
}

/// `org.opencontainers.image.created`: `SOURCE_DATE_EPOCH`, else the last commit's time (so a
/// rebuild of the same commit is labelled the same), else now.
fn created(sh: &Shell) -> anyhow::Result<String> {
    let epoch = dist::source_date_epoch(sh)?.and_then(|epoch| epoch.parse().ok());
    let time = epoch.map_or_else(SystemTime::now, |epoch| {
        SystemTime::UNIX_EPOCH + Duration::from_secs(epoch)
    });
    Ok(humantime::format_rfc3339_seconds(time).to_string())
}

/// What the release binaries say they are, asked of the first one this machine can run; `None`
/// when there is none (not built yet, or no way to run it).
fn version_of_binaries(dir: &Utf8Path, archs: &[Arch]) -> anyhow::Result<Option<String>> {
    let mut candidates: Vec<Arch> = archs.to_vec();
    candidates.sort_by_key(|&arch| Some(arch) != Arch::host());
    for arch in candidates {
        let file = dir.join(arch.artifact_name());
        if file.is_file()
            && let Some(version) = binary_version(&file, arch)?
        {
            return Ok(Some(version));
        }
    }
    eprintln!("note: no binary in {dir} could be asked its version; using dist's default");
    Ok(None)
}

/// `<version>` from `file --version` (`mount-monitor <version>`); `None` when `arch` binaries cannot
/// run here.
fn binary_version(file: &Utf8Path, arch: Arch) -> anyhow::Result<Option<String>> {
    use std::os::unix::fs::PermissionsExt;
    let Some(runner) = Runner::find(arch) else {
        return Ok(None);
    };
    // Binaries passed through a CI artifact lose their execute bit: run a copy that has it.
    let mode = std::fs::metadata(file)
        .with_context(|| format!("reading {file}"))?
        .permissions()
        .mode();
    let copy = (mode & 0o111 == 0)
        .then(|| -> anyhow::Result<Utf8PathBuf> {
            let copy = Utf8PathBuf::try_from(std::env::temp_dir())?.join(format!(
                "xtask-docker-{}-{}",
                std::process::id(),
                arch.artifact_name()
            ));
            std::fs::copy(file, &copy).with_context(|| format!("copying {file} to {copy}"))?;
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))?;
            Ok(copy)
        })
        .transpose()?;
    let mut command = runner.command(copy.as_deref().unwrap_or(file).as_std_path());
    command.arg("--version");
    let output = emulator::output_within(command, Duration::from_secs(30));
    if let Some(copy) = &copy {
        let _ = std::fs::remove_file(copy);
    }
    let output = output.with_context(|| format!("running {file} --version {runner}"))?;
    let printed = String::from_utf8_lossy(&output.stdout);
    match printed.trim_end().strip_prefix(&format!("{BINARY} ")) {
        Some(version) if output.status.success() => Ok(Some(version.to_owned())),
        _ => bail!(
            "{file} --version ({runner}) printed {:?}, not `{BINARY} <version>`: rebuild it with \
             `cargo xtask dist`",
            printed.trim_end()
        ),
    }
}

/// What a docker CLI can do, as far as the build is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerCli {
    pub program: String,
    pub buildx: bool,
    /// Whether buildx's current builder builds several platforms in one command: any driver but
    /// `docker`, or the `docker` driver on the containerd image store.
    pub multi_platform: bool,
    /// `docker --version`'s major version, when it is Docker's.
    pub major: Option<u32>,
}

impl DockerCli {
    /// Docker 23 made buildx the builder of `docker build`; before, BuildKit was built in.
    fn has_builtin_buildkit(&self) -> bool {
        self.major.is_some_and(|major| (18..23).contains(&major))
    }

    /// Asks `program` (read-only commands).
    fn probe(sh: &Shell, program: &str) -> DockerCli {
        let read = |args: &[&str]| query(cmd!(sh, "{program} {args...}"));
        let buildx = read(&["buildx", "version"]).is_some();
        let multi_platform = buildx
            && match read(&["buildx", "inspect"])
                .as_deref()
                .and_then(builder_driver)
            {
                Some("docker") => read(&["info", "--format", "{{json .DriverStatus}}"])
                    .is_some_and(|status| status.contains("io.containerd.snapshotter")),
                _ => true,
            };
        DockerCli {
            program: program.to_owned(),
            buildx,
            multi_platform,
            major: read(&["--version"])
                .as_deref()
                .and_then(docker_major_version),
        }
    }
}

/// The `Driver:` of `docker buildx inspect`'s output.
pub fn builder_driver(inspect: &str) -> Option<&str> {
    inspect
        .lines()
        .find_map(|line| line.trim().strip_prefix("Driver:"))
        .map(str::trim)
}

/// The docker and podman programs: `$DOCKER` and `$PODMAN`, else found by name.
fn programs() -> (String, String) {
    let var = |name, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    (var("DOCKER", "docker"), var("PODMAN", "podman"))
}

/// The engine a dry run plans for, without asking the host: what `--engine` names, else buildx
/// (what the release workflow uses).
pub fn planned_engine(requested: Option<EngineKind>) -> Engine {
    let (docker, podman) = programs();
    match requested {
        None | Some(EngineKind::Buildx) => Engine::Buildx { docker },
        Some(EngineKind::Docker) => Engine::DockerPerPlatform { docker },
        Some(EngineKind::Podman) => Engine::Podman { podman },
    }
}

fn detect_engine(sh: &Shell, requested: Option<EngineKind>) -> anyhow::Result<Engine> {
    let (docker_program, podman_program) = programs();
    let installed = |program: &str| {
        let path = Utf8Path::new(program);
        path.is_absolute() && path.is_file() || find_in_path(program).is_some()
    };
    let docker = (requested != Some(EngineKind::Podman) && installed(&docker_program))
        .then(|| DockerCli::probe(sh, &docker_program));
    let podman = (requested != Some(EngineKind::Docker) && installed(&podman_program))
        .then(|| podman_program.clone());
    let (engine, note) = choose_engine(requested, docker, podman, &docker_program, &podman_program)
        .map_err(anyhow::Error::msg)?;
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    Ok(engine)
}

/// `Docker version 20.10.24+dfsg1, build 297e128` → 20.
pub fn docker_major_version(printed: &str) -> Option<u32> {
    let rest = printed.trim().strip_prefix("Docker version ")?;
    rest.split('.').next()?.parse().ok()
}

/// The engine to build with, and a note when the choice needs explaining.
pub fn choose_engine(
    requested: Option<EngineKind>,
    docker: Option<DockerCli>,
    podman: Option<String>,
    docker_program: &str,
    podman_program: &str,
) -> Result<(Engine, Option<String>), String> {
    let install_podman = "install podman (Debian: `apt-get install podman`) or set PODMAN to it";
    let docker_unusable = |cli: &DockerCli| {
        format!(
            "{} has no buildx plugin, and a Docker CLI {} needs it for BuildKit builds \
             (`COPY --chmod`, `--platform`): install the buildx plugin (docker-buildx-plugin), \
             or set DOCKER to a CLI with BuildKit built in (Debian's docker.io 20.10: \
             DOCKER=/usr/bin/docker), or use --engine podman",
            cli.program,
            match cli.major {
                Some(major) => format!("{major} (23 or newer)"),
                None => "that is not Docker's own".to_owned(),
            }
        )
    };
    let usable_docker = |cli: &DockerCli| {
        let docker = cli.program.clone();
        if cli.buildx && cli.multi_platform {
            Some((Engine::Buildx { docker }, None))
        } else if cli.buildx {
            Some((
                Engine::DockerPerPlatform { docker },
                Some(
                    "buildx's builder uses the `docker` driver, which builds one platform per \
                     command: building each platform on its own (tagged <tag>-<arch>). For one \
                     multi-platform build, `docker buildx create --use` first"
                        .to_owned(),
                ),
            ))
        } else if cli.has_builtin_buildkit() {
            Some((Engine::DockerPerPlatform { docker }, None))
        } else {
            None
        }
    };
    match requested {
        Some(EngineKind::Podman) => match podman {
            Some(podman) => Ok((Engine::Podman { podman }, None)),
            None => Err(format!(
                "--engine podman: `{podman_program}` is not installed: {install_podman}"
            )),
        },
        Some(EngineKind::Buildx) => match docker {
            Some(cli) if cli.buildx && cli.multi_platform => Ok((
                Engine::Buildx {
                    docker: cli.program,
                },
                None,
            )),
            Some(cli) if cli.buildx => Err(format!(
                "--engine buildx: the current builder of `{} buildx` uses the `docker` driver, \
                 which builds one platform per command: run `{} buildx create --use` first, or \
                 use --engine docker",
                cli.program, cli.program
            )),
            Some(cli) => Err(format!(
                "--engine buildx: `{}` has no buildx plugin: install docker-buildx-plugin, or use \
                 --engine docker or --engine podman",
                cli.program
            )),
            None => Err(format!(
                "--engine buildx: `{docker_program}` is not installed: install Docker with the \
                 buildx plugin, or set DOCKER to its CLI"
            )),
        },
        Some(EngineKind::Docker) => match docker {
            Some(cli) => usable_docker(&cli).ok_or_else(|| docker_unusable(&cli)),
            None => Err(format!(
                "--engine docker: `{docker_program}` is not installed: install Docker (Debian: \
                 `apt-get install docker.io`) or set DOCKER to its CLI"
            )),
        },
        None => {
            if let Some(choice) = docker.as_ref().and_then(usable_docker) {
                return Ok(choice);
            }
            match (podman, docker) {
                (Some(podman), Some(cli)) => Ok((
                    Engine::Podman { podman },
                    Some(format!("building with podman: {}", docker_unusable(&cli))),
                )),
                (Some(podman), None) => Ok((Engine::Podman { podman }, None)),
                (None, Some(cli)) => Err(docker_unusable(&cli)),
                (None, None) => Err(format!(
                    "neither `{docker_program}` nor `{podman_program}` is installed: install \
                     Docker with buildx, or podman (Debian: `apt-get install podman`)"
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests;
