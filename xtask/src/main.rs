use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use xshell::{Shell, cmd};
use xtask::{codegen::Codegen, dist::Dist, docker::Docker, project_root, test::Test};

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
    Codegen(Codegen),
    Bench(Bench),
    Test(Test),
}

/// Run a measurement tool: `cargo run -p bench -- <ARGS>` (perf, dist, docker, reliability)
#[derive(clap::Args)]
#[command(disable_help_flag = true)]
struct Bench {
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    args: Vec<String>,
}

impl Bench {
    fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let args = self.args;
        cmd!(sh, "cargo run --quiet --package bench -- {args...}")
            .run()
            .context("the measurement tool failed (output above)")?;
        Ok(())
    }
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
        Command::Codegen(cmd) => cmd.run(),
        Command::Bench(cmd) => cmd.run(&sh),
        Command::Test(cmd) => cmd.run(&sh),
    }
}
