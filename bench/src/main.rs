//! mount-monitor's measurement tools, run as `cargo run -p bench -- <command>` (or
//! `cargo xtask bench <command>`). Each writes its figures into BENCHMARKS.md or RELIABILITY.md.

mod dist;
mod docker;
mod measure;
mod perf;
mod probes;
mod reliability;
mod report;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xshell::Shell;
use xtask::project_root;

/// Measurement tools for mount-monitor.
#[derive(Parser)]
#[command(name = "bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Perf(perf::Perf),
    Dist(dist::Dist),
    Docker(docker::Docker),
    Reliability(reliability::Reliability),
    Probes(probes::Probes),
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
        Command::Perf(cmd) => cmd.run(&sh),
        Command::Dist(cmd) => cmd.run(&sh),
        Command::Docker(cmd) => cmd.run(&sh),
        Command::Reliability(cmd) => cmd.run(),
        Command::Probes(cmd) => cmd.run(),
    }
}
