//! Release automation for mount-monitor, run as `cargo xtask <command>`.
//!
//! A library as well as a binary so that the end-to-end tests in `xtask/tests/` and `tests/`, and
//! the measurement tools in `bench/`, use the same target table and the same emulator lookup as
//! the commands they test.

pub mod checksums;
pub mod codegen;
pub mod dist;
pub mod docker;
pub mod elf;
pub mod emulator;
pub mod native_code;
pub mod targets;
pub mod test;

use camino::{Utf8Path, Utf8PathBuf};

/// The workspace root: the parent of this crate's directory.
pub fn project_root() -> Utf8PathBuf {
    let xtask_dir = Utf8Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask_dir
        .parent()
        .expect("xtask/ always sits inside the workspace root")
        .to_owned()
}

/// `true` when running in CI (`CI=true` or `CI=1`, as CI services set it), where a release step
/// that cannot run here (the arm64 binary without QEMU) is an error rather than a warning.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}
