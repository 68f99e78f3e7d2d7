use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xshell::Shell;
use xtask::{
    bench::Bench, bench_dist::BenchDist, bench_docker::BenchDocker, dist::Dist, docker::Docker,
    project_root, test::Test,
};

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
    BenchDist(BenchDist),
    Docker(Docker),
    BenchDocker(BenchDocker),
    Bench(Bench),
    Test(Test),
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
        Command::BenchDist(cmd) => cmd.run(&sh),
        Command::Docker(cmd) => cmd.run(&sh),
        Command::BenchDocker(cmd) => cmd.run(&sh),
        Command::Bench(cmd) => cmd.run(&sh),
        Command::Test(cmd) => cmd.run(&sh),
    }
}
