//! The release targets: the one table mapping a Rust target triple to its Docker architecture name.
//!
//! `dist` names its artifacts by the Docker name, `docker` picks them up by `TARGETARCH`, and both
//! read it from [`TARGETS`] so the two can never disagree.

use std::fmt;

use clap::builder::PossibleValue;

/// A CPU architecture we ship a release binary for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    Amd64,
    Arm64,
}

/// Everything the release tooling needs to know about one architecture.
#[derive(Debug)]
pub struct Target {
    pub arch: Arch,
    /// Rust target triple the binary is compiled for.
    pub triple: &'static str,
    /// Name Docker, OCI image indexes and `TARGETARCH` use.
    pub docker_arch: &'static str,
    /// `std::env::consts::ARCH` of a machine that runs the binary natively; also the suffix of its
    /// QEMU user-mode emulator (`qemu-aarch64-static`) and binfmt_misc entry (`qemu-aarch64`).
    pub cpu: &'static str,
    /// ELF `e_machine` of the binary.
    pub elf_machine: object::elf::Machine,
    /// The C compiler for crates that compile C into the binary (ring, see `native_code`), and
    /// its flags: cc-rs would look for `<arch>-linux-musl-gcc`, which Debian and Ubuntu do not
    /// ship. amd64: Debian's musl-gcc, gcc with musl's own headers. arm64: clang for the target,
    /// with musl's own headers for it (Debian's `musl-dev:arm64`, [`Target::c_headers`]) in
    /// place of the machine's glibc headers: ring needs none, mimalloc (the allocator) needs libc's.
    pub c_compiler: &'static str,
    pub c_flags: &'static str,
    /// The Debian/Ubuntu package with `c_compiler` (`.ci/setup` installs it).
    pub c_compiler_package: &'static str,
    /// Where `c_flags` expects musl's headers for the target, when they are not the compiler's
    /// own, and the Debian package that puts them there (`.ci/setup` installs it).
    pub c_headers: Option<(&'static str, &'static str)>,
}

/// mimalloc without transparent huge pages: a sidecar's few MiB of heap touched in 2 MiB pages
/// (it asks for them with madvise, and nodes with THP `always` give them anyway) took the release
/// binary from 4.7 to 13.9 MiB of RSS idle, at 10 mounts. Its option `allow_thp` off from the
/// start, before the first allocation (the environment's `MIMALLOC_ALLOW_THP` still wins). And
/// no build time in the binary: mimalloc prints `__DATE__` and `__TIME__` in its verbose banner,
/// which gcc takes from `SOURCE_DATE_EPOCH` but Debian 12's clang from the clock, so two arm64
/// builds of one commit differed.
const MIMALLOC_FLAGS: &str =
    r#"-DMI_DEFAULT_ALLOW_THP=0 -Wno-builtin-macro-redefined -D__DATE__="-" -D__TIME__="-""#;

pub const TARGETS: [Target; 2] = [
    Target {
        arch: Arch::Amd64,
        triple: "x86_64-unknown-linux-musl",
        docker_arch: "amd64",
        cpu: "x86_64",
        elf_machine: object::elf::EM_X86_64,
        c_compiler: "musl-gcc",
        c_flags: MIMALLOC_FLAGS,
        c_compiler_package: "musl-tools",
        c_headers: None,
    },
    Target {
        arch: Arch::Arm64,
        triple: "aarch64-unknown-linux-musl",
        docker_arch: "arm64",
        cpu: "aarch64",
        elf_machine: object::elf::EM_AARCH64,
        c_compiler: "clang",
        c_flags: concat!(
            "--target=aarch64-unknown-linux-musl -nostdlibinc -isystem /usr/include/aarch64-linux-musl ",
            r#"-DMI_DEFAULT_ALLOW_THP=0 -Wno-builtin-macro-redefined -D__DATE__="-" -D__TIME__="-""#
        ),
        c_compiler_package: "clang",
        c_headers: Some(("/usr/include/aarch64-linux-musl", "musl-dev:arm64")),
    },
];

/// The name of the service binary, as cargo builds it and as release artifacts start.
pub const BINARY: &str = "mount-monitor";

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::Amd64, Arch::Arm64];

    pub fn target(self) -> &'static Target {
        TARGETS
            .iter()
            .find(|target| target.arch == self)
            .expect("every Arch has a row in TARGETS (checked by a test)")
    }

    pub fn triple(self) -> &'static str {
        self.target().triple
    }

    pub fn docker_arch(self) -> &'static str {
        self.target().docker_arch
    }

    fn find(matches: impl Fn(&Target) -> bool) -> Option<Arch> {
        TARGETS.iter().find(|t| matches(t)).map(|t| t.arch)
    }

    pub fn from_docker_arch(name: &str) -> Option<Arch> {
        Arch::find(|t| t.docker_arch == name)
    }

    /// The architecture of the machine running this program, if we ship a binary for it.
    pub fn host() -> Option<Arch> {
        Arch::find(|t| t.cpu == std::env::consts::ARCH)
    }

    /// File name of the release binary: `mount-monitor-linux-amd64`.
    pub fn artifact_name(self) -> String {
        format!("{BINARY}-linux-{}", self.docker_arch())
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.docker_arch())
    }
}

/// `--arch amd64|arm64` takes the Docker names straight from the table.
impl clap::ValueEnum for Arch {
    fn value_variants<'a>() -> &'a [Self] {
        &Arch::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.docker_arch()).help(self.triple()))
    }
}

#[cfg(test)]
impl Arch {
    fn from_triple(triple: &str) -> Option<Arch> {
        Arch::find(|t| t.triple == triple)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mimalloc_is_built_alike_for_every_target() {
        for target in TARGETS {
            assert!(
                target.c_flags.ends_with(MIMALLOC_FLAGS),
                "{}",
                target.triple
            );
        }
    }

    #[test]
    fn every_arch_has_exactly_one_row() {
        for arch in Arch::ALL {
            assert_eq!(
                TARGETS.iter().filter(|t| t.arch == arch).count(),
                1,
                "{arch:?}"
            );
        }
        assert_eq!(TARGETS.len(), Arch::ALL.len());
    }

    #[test]
    fn triples_and_docker_names_map_both_ways() {
        assert_eq!(Arch::Amd64.triple(), "x86_64-unknown-linux-musl");
        assert_eq!(Arch::Arm64.triple(), "aarch64-unknown-linux-musl");
        assert_eq!(Arch::from_docker_arch("amd64"), Some(Arch::Amd64));
        assert_eq!(Arch::from_docker_arch("arm64"), Some(Arch::Arm64));
        assert_eq!(
            Arch::from_triple("aarch64-unknown-linux-musl"),
            Some(Arch::Arm64)
        );
        assert_eq!(Arch::from_docker_arch("x86_64"), None);
        assert_eq!(Arch::from_triple("x86_64-unknown-linux-gnu"), None);
    }

    #[test]
    fn artifacts_are_named_by_docker_arch() {
        assert_eq!(Arch::Amd64.artifact_name(), "mount-monitor-linux-amd64");
        assert_eq!(Arch::Arm64.artifact_name(), "mount-monitor-linux-arm64");
    }

    #[test]
    fn arch_flag_accepts_docker_names_only() {
        use clap::ValueEnum;
        assert_eq!(Arch::from_str("arm64", false), Ok(Arch::Arm64));
        assert!(Arch::from_str("aarch64", false).is_err());
    }
}
