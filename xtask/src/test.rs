//! `cargo xtask test`: the whole test suite in one command, on a fresh machine too.

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

/// Run every test: also those that need root, FUSE, dockerd, podman, QEMU, promtool or the
/// workflow linters, which plain `cargo test` lists as ignored
///
/// As root it first runs `.ci/setup`, which installs and starts what those tests need (Debian
/// packages, rustup targets and components, linters in .venv, dockerd, binfmt, fusectl) and does
/// nothing when all is there. Then `cargo fmt --check`, clippy, and
/// `cargo test --workspace -- --include-ignored`. A test whose prerequisite is missing fails; none
/// is skipped.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Test {
    /// Do not run `.ci/setup` (everything is installed and running already)
    #[arg(long)]
    pub no_setup: bool,

    /// Do not check formatting and lints
    #[arg(long)]
    pub no_lint: bool,

    /// Passed to the test binaries after `--include-ignored`, e.g. a test name to run only it
    #[arg(last = true, value_name = "TEST ARGS")]
    pub args: Vec<String>,
}

impl Test {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        if !is_root(sh) {
            bail!(
                "the whole suite mounts filesystems and runs containers, so it needs root: run \
                 `sudo -E env PATH=\"$PATH\" cargo xtask test`. Plain `cargo test --workspace` \
                 runs every test that needs none of that and lists the others as ignored"
            );
        }
        if !self.no_setup {
            cmd!(sh, "bash .ci/setup")
                .run()
                .context(".ci/setup failed (output above); it needs Debian or Ubuntu and apt")?;
        }
        if !self.no_lint {
            cmd!(sh, "cargo fmt --all -- --check")
                .run()
                .context("formatting differs: run `cargo fmt --all`")?;
            cmd!(sh, "cargo clippy --workspace --all-targets -- -D warnings")
                .run()
                .context("clippy found problems (above)")?;
        }
        let args = &self.args;
        // Every test binary runs, so that one run shows every failure.
        cmd!(
            sh,
            "cargo test --workspace --no-fail-fast -- --include-ignored {args...}"
        )
        .run()
        .context("tests failed (above)")?;
        Ok(())
    }
}

fn is_root(sh: &Shell) -> bool {
    cmd!(sh, "id -u")
        .quiet()
        .read()
        .is_ok_and(|uid| uid.trim() == "0")
}
