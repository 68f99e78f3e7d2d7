//! `cargo xtask bench dist`: how long `dist` takes cold and warm, next to a plain `cargo build`, and
//! how big the binaries are. Prints a Markdown table for BENCHMARKS.md.
//!
//! Everything builds in its own directory under target/bench, so the main target dir is untouched
//! and "cold" really means an empty target dir (the crates.io download cache is kept).

use anyhow::Context;
use camino::Utf8PathBuf;
use xshell::{Shell, cmd};
use xtask::dist::human_size;
use xtask::project_root;
use xtask::targets::{Arch, BINARY};

use crate::measure::{cores, seconds, timed};

const RERUN: &str = "cargo xtask bench dist";

/// Time cold and warm `cargo xtask dist` against a plain `cargo build`, and report binary sizes
#[derive(clap::Args, Debug, Clone)]
pub struct Dist {
    /// Architecture to include; repeat for several [default: amd64 and arm64]
    #[arg(long = "arch", value_name = "ARCH")]
    pub archs: Vec<Arch>,
}

impl Dist {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let archs: Vec<Arch> = Arch::ALL
            .into_iter()
            .filter(|arch| self.archs.is_empty() || self.archs.contains(arch))
            .collect();
        let bench_dir = project_root().join("target/bench");
        let dist_dir = bench_dir.join("dist");
        let plain_dir = bench_dir.join("plain");
        let out_dir = dist_dir.join("out");

        let mut arch_args = Vec::new();
        let mut target_args = Vec::new();
        for arch in &archs {
            arch_args.extend(["--arch".to_owned(), arch.docker_arch().to_owned()]);
            target_args.extend(["--target".to_owned(), arch.triple().to_owned()]);
        }
        let (arch_args, target_args, plain_dir) = (&arch_args, &target_args, &plain_dir);
        // Through `cargo xtask` as a person runs it, so the times include cargo's own start-up.
        let dist = || {
            cmd!(
                sh,
                "cargo xtask dist {arch_args...} --target-dir {dist_dir} --out {out_dir}"
            )
        };
        let plain = || {
            cmd!(
                sh,
                "cargo build --release --locked --package {BINARY} --bin {BINARY} {target_args...}"
            )
            .env("CARGO_TARGET_DIR", plain_dir)
        };

        remove_dir(sh, &dist_dir)?;
        let dist_cold = timed(RERUN, || dist().run())?;
        let dist_warm = timed(RERUN, || dist().run())?;
        remove_dir(sh, plain_dir)?;
        let plain_cold = timed(RERUN, || plain().run())?;
        let plain_warm = timed(RERUN, || plain().run())?;

        let rustc = cmd!(sh, "rustc --version").quiet().read()?;
        println!();
        println!(
            "Measured on {} cores, {rustc}, targets: {}.",
            cores(),
            names(&archs)
        );
        println!();
        println!("| what | time |");
        println!("| --- | --- |");
        println!(
            "| `cargo xtask dist`, empty target dir | {} |",
            seconds(dist_cold)
        );
        println!(
            "| `cargo xtask dist` again, nothing changed | {} |",
            seconds(dist_warm)
        );
        println!(
            "| plain `cargo build --release --target …`, empty target dir | {} |",
            seconds(plain_cold)
        );
        println!(
            "| plain `cargo build --release --target …` again | {} |",
            seconds(plain_warm)
        );
        println!();
        println!("| binary | size |");
        println!("| --- | --- |");
        for arch in &archs {
            let file = out_dir.join(arch.artifact_name());
            let size = std::fs::metadata(&file)
                .with_context(|| format!("reading {file}"))?
                .len();
            println!("| `{}` | {} |", arch.artifact_name(), human_size(size));
        }
        Ok(())
    }
}

fn remove_dir(sh: &Shell, dir: &Utf8PathBuf) -> anyhow::Result<()> {
    sh.remove_path(dir)
        .with_context(|| format!("removing {dir}: delete it by hand"))
}

fn names(archs: &[Arch]) -> String {
    let names: Vec<&str> = archs.iter().map(|arch| arch.triple()).collect();
    names.join(", ")
}
