use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use xshell::{Shell, cmd};
use xtask::docker::{Docker, dockerfile};
use xtask::{dist::Dist, project_root, test::Test};

/// Release automation for mount-monitor.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Dist(Dist),
    Docker(Docker),
    /// Regenerate the files made from the xtask's tables: `Dockerfile` and `Dockerfile.release`
    Codegen,
    Bench(Bench),
    Test(Test),
}

/// Run a measurement tool: `cargo run -p bench -- <ARGS>` (perf, dist, docker, reliability, probes)
#[derive(clap::Args)]
#[command(disable_help_flag = true)]
struct Bench {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

fn main() -> ExitCode {
    match try_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn try_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    match cli.command {
        Command::Dist(cmd) => cmd.run(&sh),
        Command::Docker(cmd) => cmd.run(&sh),
        Command::Codegen => {
            for stale in dockerfile::update()? {
                println!("updated {stale}");
            }
            Ok(())
        }
        Command::Bench(Bench { args }) => {
            cmd!(sh, "cargo run --quiet --package bench -- {args...}")
                .run()
                .context("the measurement tool failed (output above)")
        }
        Command::Test(cmd) => cmd.run(&sh),
    }
}
