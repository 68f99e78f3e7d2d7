//! What `cargo xtask dist` does, as data: built from the flags and a few facts read from the machine,
//! printed by `--dry-run`, executed otherwise, and unit-tested without building anything.

use std::collections::BTreeMap;
use std::fmt;

use camino::{Utf8Path, Utf8PathBuf};
use xshell::{Cmd, Shell};

use crate::checksums;
use crate::emulator::Runner;
use crate::targets::{Arch, BINARY};

/// The environment variable through which the service embeds its version (agreed with mount-monitor).
pub const VERSION_ENV: &str = "MOUNT_MONITOR_VERSION";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    Cargo,
    /// cross-rs: cargo in a container that has C cross compilers.
    Cross,
}

/// Rust flags the user set in the environment, which cargo would let win over ours (see [`Inputs`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserRustflags {
    /// The variables that are set: they are removed from the build's environment.
    pub vars: Vec<&'static str>,
    pub flags: Vec<String>,
}

impl UserRustflags {
    /// Cargo's own reading: `CARGO_ENCODED_RUSTFLAGS` (split on 0x1f) if set, else `RUSTFLAGS` (split
    /// on whitespace); a variable that is set but empty still counts as set.
    pub fn from_env(encoded: Option<&str>, plain: Option<&str>) -> UserRustflags {
        let vars = [("CARGO_ENCODED_RUSTFLAGS", encoded), ("RUSTFLAGS", plain)]
            .into_iter()
            .filter_map(|(name, value)| value.map(|_| name))
            .collect();
        let flags = match (encoded, plain) {
            (Some(encoded), _) => encoded
                .split('\x1f')
                .filter(|flag| !flag.is_empty())
                .map(str::to_owned)
                .collect(),
            (None, Some(plain)) => plain.split_whitespace().map(str::to_owned).collect(),
            (None, None) => Vec::new(),
        };
        UserRustflags { vars, flags }
    }
}

/// Everything the plan depends on. Read from the flags and the machine by `Dist::run`.
///
/// Path remapping and cargo's rustflags: cargo takes rustc flags from exactly one source, the first
/// of `CARGO_ENCODED_RUSTFLAGS`, `RUSTFLAGS`, all `target.<triple>.rustflags` / `target.<cfg>.rustflags`
/// entries joined, `build.rustflags`. Even an empty `RUSTFLAGS` silences every config entry,
/// including one passed with `--config`, and `build.rustflags` loses to any target entry. So the
/// remap goes into `--config target.<triple>.rustflags` (merged with the user's own target entries,
/// and only for the target, so host build scripts keep their cache), and the user's `RUSTFLAGS` /
/// `CARGO_ENCODED_RUSTFLAGS` are moved into that same list and removed from the build's
/// environment: their flags still apply, and can no longer drop the remap.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub archs: Vec<Arch>,
    pub version: String,
    pub source_date_epoch: Option<String>,
    pub builder: Builder,
    pub root: Utf8PathBuf,
    pub target_dir: Utf8PathBuf,
    pub out_dir: Utf8PathBuf,
    pub cargo_home: Utf8PathBuf,
    pub sysroot: Utf8PathBuf,
    pub user_rustflags: UserRustflags,
    /// Architectures whose Rust standard library is not installed.
    pub missing_targets: Vec<Arch>,
    /// How each architecture's binary can be run here; absent when it cannot.
    pub runners: BTreeMap<Arch, Runner>,
    /// The architecture whose musl target is this machine's own (Alpine): cc-rs compiles C for it
    /// with the machine's `cc`, so no C compiler is passed for it.
    pub native_musl: Option<Arch>,
}

/// One thing dist does, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    AddRustTarget(Arch),
    RefuseNativeCode(Arch),
    Build(ShellCommand),
    RemoveOldChecksums(Utf8PathBuf),
    Install {
        arch: Arch,
        from: Utf8PathBuf,
        to: Utf8PathBuf,
    },
    /// ELF machine, no `PT_INTERP`, no `DT_NEEDED`, none of `build_paths` left in the file.
    Check {
        arch: Arch,
        file: Utf8PathBuf,
        build_paths: Vec<Utf8PathBuf>,
    },
    RunVersion {
        arch: Arch,
        file: Utf8PathBuf,
        runner: Option<Runner>,
        expected: String,
    },
    WriteChecksums {
        file: Utf8PathBuf,
        artifacts: Vec<Utf8PathBuf>,
    },
}

pub fn plan(inputs: &Inputs) -> Vec<Step> {
    let mut steps = Vec::new();
    if inputs.builder == Builder::Cargo {
        let missing_targets = inputs.missing_targets.iter().copied();
        steps.extend(missing_targets.map(Step::AddRustTarget));
        steps.extend(inputs.archs.iter().copied().map(Step::RefuseNativeCode));
    }
    steps.extend(build_commands(inputs).into_iter().map(Step::Build));

    let checksums_file = inputs.out_dir.join(checksums::FILE_NAME);
    steps.push(Step::RemoveOldChecksums(checksums_file.clone()));
    let mut artifacts = Vec::new();
    for &arch in &inputs.archs {
        let artifact = inputs.out_dir.join(arch.artifact_name());
        steps.push(Step::Install {
            arch,
            from: inputs
                .target_dir
                .join(arch.triple())
                .join("release")
                .join(BINARY),
            to: artifact.clone(),
        });
        steps.push(Step::Check {
            arch,
            file: artifact.clone(),
            build_paths: remaps(inputs).map(|(from, _)| from.clone()).into(),
        });
        steps.push(Step::RunVersion {
            arch,
            file: artifact.clone(),
            runner: inputs.runners.get(&arch).cloned(),
            expected: format!("{BINARY} {}", inputs.version),
        });
        artifacts.push(artifact);
    }
    steps.push(Step::WriteChecksums {
        file: checksums_file,
        artifacts,
    });
    steps
}

/// One `cargo build` for every architecture (their LTO steps then share the cores), or one
/// `cross build` per architecture (cross picks its container image by target).
fn build_commands(inputs: &Inputs) -> Vec<ShellCommand> {
    let (program, groups): (&str, Vec<Vec<Arch>>) = match inputs.builder {
        Builder::Cargo => ("cargo", vec![inputs.archs.clone()]),
        Builder::Cross => ("cross", inputs.archs.iter().map(|&a| vec![a]).collect()),
    };
    groups
        .into_iter()
        .map(|archs| {
            let mut env = vec![(VERSION_ENV.to_owned(), inputs.version.clone())];
            if let Some(epoch) = &inputs.source_date_epoch {
                env.push(("SOURCE_DATE_EPOCH".to_owned(), epoch.clone()));
            }
            if inputs.builder == Builder::Cargo {
                // cross's containers bring their own C cross compilers.
                for &arch in archs.iter().filter(|&&a| Some(a) != inputs.native_musl) {
                    env.extend(c_compiler_env(arch));
                }
            } else {
                // cross starts cargo in a container with only CARGO_*/CROSS_* variables passed.
                let names: Vec<&str> = env.iter().map(|(name, _)| name.as_str()).collect();
                env.push(("CROSS_BUILD_ENV_PASSTHROUGH".to_owned(), names.join(" ")));
            }
            let mut args = words(&["build", "--release", "--locked", "--package", BINARY]);
            args.extend(words(&["--bin", BINARY, "--target-dir"]));
            args.push(inputs.target_dir.to_string());
            for &arch in &archs {
                args.extend(["--target".to_owned(), arch.triple().to_owned()]);
            }
            for &arch in &archs {
                args.extend(["--config".to_owned(), rustflags_config(inputs, arch)]);
            }
            ShellCommand {
                env_remove: words(&inputs.user_rustflags.vars),
                env,
                program: program.to_owned(),
                args,
            }
        })
        .collect()
}

/// `CC_<triple>` and `CFLAGS_<triple>` (cc-rs's per-target variables, so host build scripts
/// keep the host's compiler) for the C code `native_code` allows.
pub fn c_compiler_env(arch: Arch) -> Vec<(String, String)> {
    let target = arch.target();
    let suffix = target.triple.replace('-', "_");
    let mut env = vec![(format!("CC_{suffix}"), target.c_compiler.to_owned())];
    if !target.c_flags.is_empty() {
        env.push((format!("CFLAGS_{suffix}"), target.c_flags.to_owned()));
    }
    env
}

/// `target.<triple>.rustflags=[…]`: the path remaps, then the user's own flags.
fn rustflags_config(inputs: &Inputs, arch: Arch) -> String {
    let flags: Vec<String> = remap_flags(inputs)
        .into_iter()
        .chain(inputs.user_rustflags.flags.iter().cloned())
        .map(|flag| toml_string(&flag))
        .collect();
    format!("target.{}.rustflags=[{}]", arch.triple(), flags.join(", "))
}

/// Every absolute path that could reach the binary (panic locations, `file!()`), and where it
/// points inside the binaries, so they don't depend on who built them: the workspace, the target
/// dir (generated code under `OUT_DIR`), registry sources in `$CARGO_HOME`, and the toolchain's
/// sysroot. A source path left in a release binary means its remap did not apply.
fn remaps(inputs: &Inputs) -> [(&Utf8PathBuf, &'static str); 4] {
    [
        (&inputs.root, "/mount-monitor"),
        (&inputs.target_dir, "/mount-monitor/target"),
        (&inputs.cargo_home, "/cargo"),
        (&inputs.sysroot, "/rustc-sysroot"),
    ]
}

/// `--remap-path-prefix` for each of [`remaps`]. rustc applies the last matching remap, so the
/// mappings are ordered from the shortest source path to the longest: a target dir inside the
/// workspace is then remapped as a target dir.
pub fn remap_flags(inputs: &Inputs) -> Vec<String> {
    let mut remaps = remaps(inputs);
    remaps.sort_by_key(|(from, _)| from.as_str().len());
    remaps
        .iter()
        .map(|(from, to)| format!("--remap-path-prefix={from}={to}"))
        .collect()
}

/// A TOML basic string.
fn toml_string(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// A command with its environment changes, printable as a line a POSIX shell would run as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellCommand {
    pub env_remove: Vec<String>,
    pub env: Vec<(String, String)>,
    pub program: String,
    pub args: Vec<String>,
}

impl ShellCommand {
    pub fn to_cmd<'a>(&self, sh: &'a Shell) -> Cmd<'a> {
        let mut cmd = sh.cmd(&self.program).args(&self.args).quiet();
        for name in &self.env_remove {
            cmd = cmd.env_remove(name);
        }
        for (name, value) in &self.env {
            cmd = cmd.env(name, value);
        }
        cmd
    }
}

impl fmt::Display for ShellCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words = Vec::new();
        if !self.env_remove.is_empty() {
            words.push("env".to_owned());
            for name in &self.env_remove {
                words.extend(["-u".to_owned(), name.clone()]);
            }
        }
        for (name, value) in &self.env {
            words.push(format!("{name}={}", shell_quote(value)));
        }
        words.push(shell_quote(&self.program));
        words.extend(self.args.iter().map(|arg| shell_quote(arg)));
        f.write_str(&words.join(" "))
    }
}

/// Owned command-line words.
pub fn words(words: &[&str]) -> Vec<String> {
    words.iter().map(|word| (*word).to_owned()).collect()
}

/// `value` as one POSIX shell word.
pub fn shell_quote(value: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !value.is_empty() && value.chars().all(plain) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::AddRustTarget(arch) => write!(f, "$ rustup target add {}", arch.triple()),
            Step::RefuseNativeCode(arch) => write!(
                f,
                "$ cargo metadata --format-version 1 --locked --filter-platform {}  \
                 # stop if a crate in the {arch} binary compiles C",
                arch.triple()
            ),
            Step::Build(command) => write!(f, "$ {command}"),
            Step::RemoveOldChecksums(file) => write!(f, "$ rm -f {}", shell_quote(file.as_str())),
            Step::Install { from, to, .. } => write!(
                f,
                "$ install -D {} {}",
                shell_quote(from.as_str()),
                shell_quote(to.as_str())
            ),
            Step::Check { arch, file, .. } => write!(
                f,
                "# check {file}: ELF for {}, no PT_INTERP, no DT_NEEDED, no build paths",
                arch.target().cpu
            ),
            Step::RunVersion {
                arch,
                file,
                runner,
                expected,
            } => match runner {
                Some(runner) => {
                    let qemu = match runner {
                        Runner::Qemu(qemu) => format!("{} ", qemu.display()),
                        Runner::Native | Runner::Binfmt => String::new(),
                    };
                    let file = shell_quote(file.as_str());
                    write!(f, "$ {qemu}{file} --version  # expect `{expected}`")
                }
                None => write!(
                    f,
                    "# cannot run {arch} binaries here (no QEMU): {file} --version is skipped, \
                     and fails dist when CI=true"
                ),
            },
            Step::WriteChecksums { file, artifacts } => {
                let dir = file.parent().unwrap_or(Utf8Path::new("."));
                let names: Vec<String> = artifacts
                    .iter()
                    .filter_map(|artifact| artifact.file_name())
                    .map(shell_quote)
                    .collect();
                write!(
                    f,
                    "$ (cd {} && sha256sum {} > {})",
                    shell_quote(dir.as_str()),
                    names.join(" "),
                    checksums::FILE_NAME
                )
            }
        }
    }
}

#[cfg(test)]
mod tests;
