//! `cargo xtask dist`: static musl release binaries named by Docker arch, checked, with SHA256SUMS.

mod plan;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{Shell, cmd};

pub use plan::{
    Builder, Inputs, ShellCommand, Step, UserRustflags, VERSION_ENV, c_compiler_env, plan,
    shell_quote, words,
};

use crate::emulator::{self, Runner, find_in_path};
use crate::targets::{Arch, BINARY};
use crate::{checksums, elf, in_ci, native_code, project_root, query, run_plan};

/// `--version` of a release binary must answer within this, even under QEMU on a busy machine.
const VERSION_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest release binary, per architecture: a sidecar beside every pod must stay small.
/// 4 MiB, plus what features users asked for needed, measured on the amd64 binary (4,152,360
/// bytes before them): debrid-mount-monitor's layouts and the waiting init mode with optional
/// mounts +36,960; the Docker actions (an Engine API client over a Unix socket, the reconciling
/// actor and its status) +176,416; debrid-mount-monitor's log format, exit codes, Go's mux
/// answers and the health check that reads its server from /proc +53,408; the bounded probe
/// pool +40,992: 4,460,136 bytes in all. mimalloc in place of dlmalloc (the musl binary as fast
/// as the glibc build) +9,344 over the same code with dlmalloc (4,443,752): 4,453,096 bytes, 67 KiB
/// under this budget (arm64: 3,789,832).
pub const SIZE_BUDGET: u64 = 4 * 1024 * 1024 + 320 * 1024;

/// Build static musl binaries for amd64 and arm64 into target/dist, verified, with SHA256SUMS
///
/// Writes <out>/mount-monitor-linux-<arch> for each architecture and <out>/SHA256SUMS (listing the
/// binaries of this run). Each binary is checked (ELF machine, no dynamic loader, no shared
/// libraries, no build-machine paths) and run with `--version` (arm64 through QEMU where available;
/// required when CI=true). Dependencies that compile C stop the build unless `--cross` is given.
#[derive(clap::Parser, Debug, Clone)]
pub struct Dist {
    /// Architecture to build; repeat for several [default: amd64 and arm64]
    #[arg(long = "arch", value_name = "ARCH")]
    pub archs: Vec<Arch>,

    /// Version embedded in the binaries [default: `git describe --tags --always --dirty`, else the
    /// crate version]
    #[arg(long)]
    pub version: Option<String>,

    /// Directory for the binaries and SHA256SUMS [default: <target-dir>/dist]
    #[arg(long, value_name = "DIR")]
    pub out: Option<Utf8PathBuf>,

    /// Cargo target directory to build in [default: $CARGO_TARGET_DIR, else target]
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<Utf8PathBuf>,

    /// Build with `cross` in a container instead of cargo (for dependencies that compile C)
    #[arg(long)]
    pub cross: bool,

    /// Print every command that would build, install or write, and run none of them (read-only
    /// look-ups such as `git describe` still run, so the printed commands are exact)
    #[arg(long)]
    pub dry_run: bool,
}

impl Dist {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let inputs = self.inputs(sh)?;
        let started = Instant::now();
        if !run_plan(&plan(&inputs), self.dry_run, |step| {
            execute(sh, step, &inputs)
        })? {
            return Ok(());
        }
        println!(
            "dist: {BINARY} {} in {} ({:.1} s)",
            inputs.version,
            inputs.out_dir,
            started.elapsed().as_secs_f64()
        );
        for arch in &inputs.archs {
            let artifact = inputs.out_dir.join(arch.artifact_name());
            let size = std::fs::metadata(&artifact)
                .with_context(|| format!("reading the size of {artifact}"))?
                .len();
            println!("  {}  {}", arch.artifact_name(), human_size(size));
        }
        println!("  {}", checksums::FILE_NAME);
        Ok(())
    }

    /// The plan's inputs: these flags plus what the machine says (read-only look-ups only).
    fn inputs(&self, sh: &Shell) -> anyhow::Result<Inputs> {
        let root = project_root();
        let cwd = std::env::current_dir().context("reading the current directory")?;
        let cwd = Utf8PathBuf::try_from(cwd).context("the current directory is not UTF-8")?;
        let archs: Vec<Arch> = Arch::ALL
            .into_iter()
            .filter(|arch| self.archs.is_empty() || self.archs.contains(arch))
            .collect();
        let version = match &self.version {
            Some(version) => {
                check_version(version)?;
                version.clone()
            }
            None => default_version(sh)?,
        };
        let builder = if self.cross {
            check_cross_tools()?;
            Builder::Cross
        } else {
            Builder::Cargo
        };
        let target_dir = match self.target_dir.clone().or(env_path("CARGO_TARGET_DIR")?) {
            Some(dir) => cwd.join(dir),
            None => root.join("target"),
        };
        let out_dir = self
            .out
            .as_deref()
            .map_or_else(|| target_dir.join("dist"), |out| cwd.join(out));
        let sysroot = rust_sysroot(sh)?;
        let missing_targets = if builder == Builder::Cargo {
            missing_rust_targets(&sysroot, &archs, find_in_path("rustup").is_some())?
        } else {
            Vec::new()
        };
        let runners: BTreeMap<Arch, Runner> = archs
            .iter()
            .filter_map(|&arch| Some((arch, Runner::find(arch)?)))
            .collect();

        Ok(Inputs {
            version,
            source_date_epoch: source_date_epoch(sh)?,
            builder,
            root,
            target_dir,
            out_dir,
            cargo_home: cargo_home()?,
            sysroot,
            user_rustflags: UserRustflags::from_env(
                std::env::var("CARGO_ENCODED_RUSTFLAGS").ok().as_deref(),
                std::env::var("RUSTFLAGS").ok().as_deref(),
            ),
            missing_targets,
            runners,
            archs,
            // The release targets are musl ones: an xtask built for musl runs on a musl system.
            native_musl: Arch::host().filter(|_| cfg!(target_env = "musl")),
        })
    }
}

fn execute(sh: &Shell, step: &Step, inputs: &Inputs) -> anyhow::Result<()> {
    match step {
        Step::AddRustTarget(arch) => {
            let triple = arch.triple();
            eprintln!(
                "note: the Rust standard library for {triple} is missing; adding it with rustup"
            );
            cmd!(sh, "rustup target add {triple}")
                .quiet()
                .run()
                .with_context(|| {
                    format!("adding the Rust target {triple} failed: run `rustup target add {triple}` and retry")
                })
        }
        Step::RefuseNativeCode(arch) => {
            refuse_native_code(sh, *arch, inputs.native_musl == Some(*arch))
        }
        Step::Build(command) => {
            if !inputs.user_rustflags.vars.is_empty() {
                eprintln!(
                    "note: {} moved into --config target.<triple>.rustflags, so they apply \
                     without dropping the path remapping",
                    inputs.user_rustflags.vars.join(" and ")
                );
            }
            command.to_cmd(sh).run().with_context(|| {
                format!(
                    "building {BINARY} failed (compiler output above): fix the error it names, \
                     or if a C compiler or linker is missing, retry with `cargo xtask dist --cross`"
                )
            })
        }
        Step::RemoveOldChecksums(file) => match std::fs::remove_file(file) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(err).with_context(|| format!("removing the stale {file}: delete it by hand"))
            }
            _ => Ok(()),
        },
        Step::Install { from, to, .. } => install(from, to),
        Step::Check {
            arch,
            file,
            build_paths,
        } => check_artifact(file, *arch, build_paths).inspect_err(|_| {
            // A binary that failed its checks must not be picked up by a later step or command.
            let _ = std::fs::remove_file(file);
        }),
        Step::RunVersion {
            arch,
            file,
            runner,
            expected,
        } => run_version(file, *arch, runner.as_ref(), expected),
        Step::WriteChecksums { file, artifacts } => write_checksums(file, artifacts),
    }
}

/// The version `dist` embeds when none is given: what git says about HEAD, else the crate version.
pub fn default_version(sh: &Shell) -> anyhow::Result<String> {
    let described = query(cmd!(sh, "git describe --tags --always --dirty"))
        .filter(|version| !version.is_empty());
    let version = match described {
        Some(version) => version,
        None => {
            // mount-monitor takes its version from the workspace, as this crate does.
            let version = env!("CARGO_PKG_VERSION").to_owned();
            eprintln!("note: `git describe` found no commit; using the crate version {version}");
            version
        }
    };
    check_version(&version)?;
    Ok(version)
}

/// A version is printed by `--version` and served on /version: keep it one plain token.
pub fn check_version(version: &str) -> anyhow::Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".-+_~".contains(c);
    if version.is_empty() || !version.chars().all(allowed) {
        bail!(
            "version {version:?} is not usable: use letters, digits and . - + _ ~ only \
             (for example `--version 1.4.0` or `--version v1.4.0-rc.1`)"
        );
    }
    Ok(())
}

/// `SOURCE_DATE_EPOCH` as given, else the time of the last commit; `None` without commits.
pub fn source_date_epoch(sh: &Shell) -> anyhow::Result<Option<String>> {
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        if epoch.is_empty() || !epoch.chars().all(|c| c.is_ascii_digit()) {
            bail!(
                "SOURCE_DATE_EPOCH={epoch:?} is not a number of seconds: unset it to use the last \
                 commit's time, or set it to one (e.g. `git log -1 --format=%ct`)"
            );
        }
        return Ok(Some(epoch));
    }
    let committed = query(cmd!(sh, "git log -1 --format=%ct")).filter(|epoch| !epoch.is_empty());
    if committed.is_none() {
        eprintln!("note: no git commit yet, so SOURCE_DATE_EPOCH is left unset");
    }
    Ok(committed)
}

fn env_path(name: &str) -> anyhow::Result<Option<Utf8PathBuf>> {
    match std::env::var_os(name) {
        None => Ok(None),
        Some(value) if value.is_empty() => Ok(None),
        Some(value) => Utf8PathBuf::try_from(std::path::PathBuf::from(value))
            .map(Some)
            .with_context(|| format!("${name} is not UTF-8: point it at a UTF-8 path")),
    }
}

fn cargo_home() -> anyhow::Result<Utf8PathBuf> {
    if let Some(home) = env_path("CARGO_HOME")? {
        return Ok(home);
    }
    match env_path("HOME")? {
        Some(home) => Ok(home.join(".cargo")),
        None => bail!("neither CARGO_HOME nor HOME is set: set CARGO_HOME to cargo's directory"),
    }
}

/// The sysroot of the toolchain cargo will use here (`$RUSTC` if set, as cargo does).
fn rust_sysroot(sh: &Shell) -> anyhow::Result<Utf8PathBuf> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let sysroot = cmd!(sh, "{rustc} --print sysroot")
        .quiet()
        .read()
        .with_context(|| format!("running `{rustc} --print sysroot` failed: install a Rust toolchain (https://rustup.rs)"))?;
    Ok(Utf8PathBuf::from(sysroot))
}

/// Architectures whose standard library is absent from `sysroot`. Without rustup to add it, that is
/// an error right away.
fn missing_rust_targets(
    sysroot: &Utf8Path,
    archs: &[Arch],
    have_rustup: bool,
) -> anyhow::Result<Vec<Arch>> {
    let missing: Vec<Arch> = archs
        .iter()
        .copied()
        .filter(|arch| {
            !sysroot
                .join(format!("lib/rustlib/{}/lib", arch.triple()))
                .is_dir()
        })
        .collect();
    if let Some(arch) = missing.first()
        && !have_rustup
    {
        let triple = arch.triple();
        bail!(
            "the Rust standard library for {triple} is not installed in {sysroot} and rustup is not in PATH: \
             install rustup (https://rustup.rs) and run `rustup target add {triple}`, or install your \
             distribution's rust-std package for that target"
        );
    }
    Ok(missing)
}

fn check_cross_tools() -> anyhow::Result<()> {
    if find_in_path("cross").is_none() {
        bail!(
            "`--cross` needs the `cross` tool, which is not in PATH: install it with `cargo install cross --locked`"
        );
    }
    if let Ok(engine) = std::env::var("CROSS_CONTAINER_ENGINE") {
        let found = Utf8Path::new(&engine).is_file() || find_in_path(&engine).is_some();
        if !found {
            bail!(
                "CROSS_CONTAINER_ENGINE={engine} is not an executable: point it at docker or podman, or unset it"
            );
        }
    } else if find_in_path("docker").is_none() && find_in_path("podman").is_none() {
        bail!(
            "`--cross` runs cargo in a container, and neither docker nor podman is in PATH: install \
             one (Debian: `apt-get install podman`), or set CROSS_CONTAINER_ENGINE"
        );
    }
    Ok(())
}

/// `native`: `arch` is this machine's own musl target, whose C the machine's `cc` compiles.
fn refuse_native_code(sh: &Shell, arch: Arch, native: bool) -> anyhow::Result<()> {
    let triple = arch.triple();
    let json = cmd!(
        sh,
        "cargo metadata --format-version 1 --locked --filter-platform {triple}"
    )
    .quiet()
    .read()
    .context("`cargo metadata` failed (output above): fix Cargo.toml/Cargo.lock as it says")?;
    let metadata: serde_json::Value = serde_json::from_str(&json)
        .context("`cargo metadata` printed something that is not JSON")?;
    let found = native_code::find(&metadata, BINARY)?;
    let refused: Vec<String> = native_code::not_allowed(&found)
        .map(|n| format!("  {n}"))
        .collect();
    if !refused.is_empty() {
        bail!(
            "{BINARY} for {triple} would contain C code that is not known to build for musl here:\n{}\n\
             Musl binaries are built here with only the C compilers of `.ci/setup` (see \
             xtask/src/targets.rs), so this would fail to build or make a broken binary. Replace the \
             dependency with a pure-Rust one, add it to native_code::ALLOWED after checking that it \
             builds for both musl targets, or build in a container with `cargo xtask dist --cross` \
             (needs `cargo install cross` and docker or podman)",
            refused.join("\n")
        );
    }
    let target = arch.target();
    if !found.is_empty() && !native && find_in_path(target.c_compiler).is_none() {
        let crates: Vec<&str> = found.iter().map(|n| n.package.as_str()).collect();
        bail!(
            "{} compiles C for {triple}, which needs `{}`; it is not in PATH: install it \
             (Debian/Ubuntu: `apt-get install {}`, or run `sudo .ci/setup`)",
            crates.join(", "),
            target.c_compiler,
            target.c_compiler_package
        );
    }
    if let Some((headers, package)) = target.c_headers
        && !found.is_empty()
        && !native
        && !Utf8Path::new(headers).is_dir()
    {
        let crates: Vec<&str> = found.iter().map(|n| n.package.as_str()).collect();
        bail!(
            "{} compiles C for {triple} against musl's headers for it, in {headers}, which is \
             missing: install them (Debian/Ubuntu: `dpkg --add-architecture arm64 && apt-get \
             update && apt-get install {package}`, or run `sudo .ci/setup`)",
            crates.join(", ")
        );
    }
    Ok(())
}

fn install(from: &Utf8Path, to: &Utf8Path) -> anyhow::Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
    }
    // Copy to a temporary name first, so `to` is never a half-written file.
    let partial = to.with_extension("partial");
    std::fs::copy(from, &partial).with_context(|| {
        format!("copying {from} to {partial}: the build did not leave a binary there; check the target dir")
    })?;
    std::fs::rename(&partial, to).with_context(|| format!("renaming {partial} to {to}"))
}

fn check_artifact(file: &Utf8Path, arch: Arch, build_paths: &[Utf8PathBuf]) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {file}"))?;
    let problems = elf::static_executable_problems(&bytes, arch);
    if !problems.is_empty() {
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        bail!(
            "{file} is not a static {arch} executable: {}; removed it. Check that RUSTFLAGS and \
             .cargo/config.toml don't change the target or turn off crt-static, or build with `--cross`",
            problems.join("; ")
        );
    }
    if let Some(problem) = over_budget(bytes.len() as u64) {
        bail!("{file}: {problem}; removed it");
    }
    let leaked = leaked_paths(&bytes, build_paths);
    if !leaked.is_empty() {
        bail!(
            "{file} contains build-machine paths ({}), so it is not reproducible; removed it. The \
             --remap-path-prefix flags did not reach every crate: look for a RUSTC_WRAPPER or \
             CARGO_TARGET_*_RUSTFLAGS that replaces them, or for a crate embedding env!(\"CARGO_MANIFEST_DIR\")",
            leaked.join(", ")
        );
    }
    Ok(())
}

/// What is wrong with a binary of `size` bytes, if it is over [`SIZE_BUDGET`].
pub fn over_budget(size: u64) -> Option<String> {
    (size > SIZE_BUDGET).then(|| {
        format!(
            "{} is over the {} budget of a release binary: find what grew (cargo bloat \
             --release --target x86_64-unknown-linux-musl) and trim it, or raise \
             dist::SIZE_BUDGET with the reason",
            human_size(size),
            human_size(SIZE_BUDGET)
        )
    })
}

/// The `paths` that occur in `bytes` as the start of a path (followed by `/`).
///
/// A match preceded by a path character is part of a longer path (a remapped one included, like
/// `/mount-monitor/src/…` when the workspace is `/src`), so it does not count.
pub fn leaked_paths(bytes: &[u8], paths: &[Utf8PathBuf]) -> Vec<String> {
    let is_path_byte = |b: u8| b.is_ascii_alphanumeric() || b"/._-".contains(&b);
    paths
        .iter()
        .filter(|path| {
            let needle = format!("{}/", path.as_str().trim_end_matches('/'));
            memchr::memmem::find_iter(bytes, needle.as_bytes())
                .any(|at| at == 0 || !is_path_byte(bytes[at - 1]))
        })
        .map(|path| path.to_string())
        .collect()
}

fn run_version(
    file: &Utf8Path,
    arch: Arch,
    runner: Option<&Runner>,
    expected: &str,
) -> anyhow::Result<()> {
    let Some(runner) = runner else {
        if in_ci() {
            bail!(
                "cannot run {file} (arm64 binaries need QEMU here) and CI=true requires it: {}",
                emulator::how_to_get_runner(arch)
            );
        }
        eprintln!(
            "warning: {file} was not run: no way to run {arch} binaries here. To run it, {}",
            emulator::how_to_get_runner(arch)
        );
        return Ok(());
    };
    let mut command = runner.command(file.as_std_path());
    command.arg("--version");
    let output = emulator::output_within(command, VERSION_TIMEOUT)
        .with_context(|| format!("running {file} --version {runner}"))?;
    let printed = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || printed.trim_end() != expected {
        bail!(
            "{file} --version ({runner}) {} and printed {:?} (stderr {:?}), expected {expected:?}: \
             mount-monitor must print `{BINARY} <version>` using option_env!(\"{VERSION_ENV}\")",
            output.status,
            printed.trim_end(),
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    eprintln!("ok: {} ({runner})", printed.trim_end());
    Ok(())
}

fn write_checksums(file: &Utf8Path, artifacts: &[Utf8PathBuf]) -> anyhow::Result<()> {
    let mut entries = Vec::new();
    for artifact in artifacts {
        let bytes = std::fs::read(artifact).with_context(|| format!("reading {artifact}"))?;
        let name = artifact
            .file_name()
            .context("artifact path has no file name")?;
        entries.push((name.to_owned(), checksums::sha256_hex(&bytes)));
    }
    std::fs::write(file, checksums::format(&entries)).with_context(|| format!("writing {file}"))
}

pub fn human_size(bytes: u64) -> String {
    format!(
        "{:.2} MiB ({bytes} bytes)",
        bytes as f64 / (1024.0 * 1024.0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_git_and_semver_are_accepted() {
        for version in [
            "0.1.0",
            "v1.2.3-rc.1",
            "v0.1.0-3-gdeadbee-dirty",
            "deadbee",
            "1.0.0+build.5",
        ] {
            check_version(version).unwrap();
        }
    }

    #[test]
    fn versions_that_would_break_the_output_are_refused_with_an_example() {
        for version in ["", "1.0 beta", "1.0\n", "\"1\"", "a/b"] {
            let err = check_version(version).unwrap_err().to_string();
            assert!(err.contains("--version 1.4.0"), "{err}");
        }
    }

    #[test]
    fn binaries_over_the_size_budget_are_refused() {
        assert_eq!(
            over_budget(4_460_136),
            None,
            "amd64 with the Docker actions"
        );
        assert_eq!(over_budget(SIZE_BUDGET), None);
        let problem = over_budget(SIZE_BUDGET + 1).unwrap();
        assert!(
            problem.starts_with("4.31 MiB (4521985 bytes) is over the 4.31 MiB"),
            "{problem}"
        );
    }

    #[test]
    fn build_paths_are_found_only_as_path_starts() {
        let paths = [
            Utf8PathBuf::from("/src"),
            Utf8PathBuf::from("/home/u/.cargo"),
        ];
        let clean = b"\0/mount-monitor/src/main.rs\0/cargo/registry/src/tokio/lib.rs";
        assert!(leaked_paths(clean, &paths).is_empty());
        let leaked = b"panicked at \0/home/u/.cargo/registry/src/x.rs";
        assert_eq!(leaked_paths(leaked, &paths), ["/home/u/.cargo"]);
        assert_eq!(leaked_paths(b"/src/main.rs", &paths), ["/src"]);
    }

    #[test]
    fn artifact_checks_name_the_file_and_remove_it() {
        let dir = std::env::temp_dir().join(format!("xtask-dist-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dir = Utf8PathBuf::try_from(dir).unwrap();
        let fixtures = Utf8Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let file = dir.join("mount-monitor-linux-amd64");

        install(&fixtures.join("static-amd64"), &file).unwrap();
        let inputs = test_inputs(&dir);
        execute(&Shell::new().unwrap(), &check_step(&file, &dir), &inputs).unwrap();
        assert!(file.exists());

        install(&fixtures.join("dynamic-amd64"), &file).unwrap();
        let err = execute(&Shell::new().unwrap(), &check_step(&file, &dir), &inputs)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("{file} is not a static amd64 executable")),
            "{err}"
        );
        assert!(err.contains("PT_INTERP"), "{err}");
        assert!(!file.exists(), "a rejected binary is removed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn version_run_checks_the_printed_line() {
        // The fixture of this machine's architecture runs natively.
        let host = Arch::host().expect("the xtask is developed on amd64 or arm64");
        let fixture = Utf8Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(format!("static-{host}"));
        run_version(
            &fixture,
            host,
            Some(&Runner::Native),
            "mount-monitor 0.0.0-fixture",
        )
        .unwrap();
        let err = run_version(&fixture, host, Some(&Runner::Native), "mount-monitor 9.9.9")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("{fixture} --version (natively)")),
            "{err}"
        );
        assert!(err.contains("\"mount-monitor 0.0.0-fixture\""), "{err}");
    }

    #[test]
    fn missing_rust_target_is_added_with_rustup_and_explained_without() {
        let sysroot = std::env::temp_dir().join(format!("xtask-sysroot-{}", std::process::id()));
        let sysroot = Utf8PathBuf::try_from(sysroot).unwrap();
        let installed = sysroot.join("lib/rustlib/x86_64-unknown-linux-musl/lib");
        std::fs::create_dir_all(&installed).unwrap();

        let missing = missing_rust_targets(&sysroot, &Arch::ALL, true).unwrap();
        assert_eq!(missing, [Arch::Arm64]);
        assert_eq!(
            missing_rust_targets(&sysroot, &[Arch::Amd64], false).unwrap(),
            []
        );
        let err = missing_rust_targets(&sysroot, &Arch::ALL, false)
            .unwrap_err()
            .to_string();
        assert!(!err.contains('\n'), "one line: {err}");
        assert!(
            err.contains("rustup target add aarch64-unknown-linux-musl"),
            "{err}"
        );
        std::fs::remove_dir_all(&sysroot).unwrap();
    }

    fn check_step(file: &Utf8Path, build_dir: &Utf8Path) -> Step {
        Step::Check {
            arch: Arch::Amd64,
            file: file.to_owned(),
            build_paths: vec![build_dir.join("nowhere")],
        }
    }

    fn test_inputs(dir: &Utf8Path) -> Inputs {
        Inputs {
            archs: vec![Arch::Amd64],
            version: "0.0.0".into(),
            source_date_epoch: None,
            builder: Builder::Cargo,
            root: dir.to_owned(),
            target_dir: dir.to_owned(),
            out_dir: dir.to_owned(),
            cargo_home: dir.to_owned(),
            sysroot: dir.to_owned(),
            user_rustflags: UserRustflags::default(),
            missing_targets: Vec::new(),
            runners: BTreeMap::new(),
            native_musl: None,
        }
    }
}
