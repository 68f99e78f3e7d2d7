//! Release automation for mount-monitor, run as `cargo xtask <command>`.
//!
//! A library as well as a binary so that the end-to-end tests in `xtask/tests/` and `tests/`, and
//! the measurement tools in `bench/`, use the same target table and the same emulator lookup as
//! the commands they test.

pub mod checksums;
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

/// Carries out a plan of `dist` or `docker`: with `dry_run`, prints every step and runs none (the
/// whole of `--dry-run`); otherwise prints each step to stderr as it runs it. Returns whether the
/// steps ran.
pub fn run_plan<S: std::fmt::Display>(
    steps: &[S],
    dry_run: bool,
    mut execute: impl FnMut(&S) -> anyhow::Result<()>,
) -> anyhow::Result<bool> {
    if dry_run {
        for step in steps {
            println!("{step}");
        }
        return Ok(false);
    }
    for step in steps {
        eprintln!("{step}");
        execute(step)?;
    }
    Ok(true)
}

/// The output of a read-only query such as `git describe`; `None` when it fails, whose stderr is
/// not shown.
pub fn query(cmd: xshell::Cmd<'_>) -> Option<String> {
    cmd.quiet().ignore_stderr().read().ok()
}

/// `true` when running in CI (`CI=true` or `CI=1`, as CI services set it), where a release step
/// that cannot run here (the arm64 binary without QEMU) is an error rather than a warning.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_run_runs_no_step_and_a_failed_step_stops_the_plan() {
        let mut ran = Vec::new();
        let dry = run_plan(&["a", "b"], true, |step| {
            ran.push(*step);
            Ok(())
        });
        assert!(!dry.unwrap());
        assert!(ran.is_empty());

        let failed = run_plan(&["a", "b", "c"], false, |step| {
            ran.push(*step);
            anyhow::ensure!(*step != "b", "step b failed");
            Ok(())
        });
        assert_eq!(failed.unwrap_err().to_string(), "step b failed");
        assert_eq!(ran, ["a", "b"]);
        assert!(run_plan(&["a"], false, |_| Ok(())).unwrap());
    }
}
