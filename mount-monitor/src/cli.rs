//! The command line. Every option also reads a `MOUNT_MONITOR_…` environment variable; flags
//! win over the environment, which wins over the config file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Overrides;

#[derive(Debug, Parser)]
#[command(
    name = "mount-monitor",
    version = crate::VERSION,
    about = "Tells whether each mount is really there and usable, over HTTP on :8080",
    after_help = "With no mounts configured, every real mount in /proc/self/mountinfo is monitored."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub options: Options,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Monitor the mounts and serve the probe endpoints (the default)
    Serve,
    /// Check every mount once, print the result, exit 0 when all are healthy, 1 otherwise
    Check {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Ask a running monitor whether it is ready: exit 0 on HTTP 200, 1 otherwise (for HEALTHCHECK)
    Healthcheck {
        /// Defaults to /readyz on the configured listen port of this host
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct Options {
    /// Config file, JSON (debrid-mount-monitor's config.json) or TOML; ./config.json is read when present
    #[arg(
        short,
        long,
        global = true,
        env = "MOUNT_MONITOR_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// A mount to monitor, repeatable: `[NAME=]PATH` then options, e.g.
    /// `media=/mnt/media,fstype=fuse.rclone,min-free=5%` (options: the config file's per-mount
    /// keys in kebab case). Several mounts in one value are separated by `;`
    #[arg(
        long = "mount",
        global = true,
        env = "MOUNT_MONITOR_MOUNTS",
        value_name = "[NAME=]PATH[,OPTION=VALUE…]"
    )]
    pub mounts: Vec<String>,
    /// Address to serve on, repeatable or comma-separated [default: [::]:8080, IPv4 and IPv6]
    #[arg(
        long,
        global = true,
        env = "MOUNT_MONITOR_LISTEN",
        value_delimiter = ',',
        value_name = "ADDR"
    )]
    pub listen: Vec<String>,
    /// Port to serve on, on all addresses (debrid-mount-monitor's flag)
    #[arg(
        long,
        global = true,
        env = "MOUNT_MONITOR_HTTP_PORT",
        value_name = "PORT"
    )]
    pub http_port: Option<u16>,
    /// Time between checks of a mount, ±10% jitter [default: 30s]
    #[arg(
        long,
        global = true,
        env = "MOUNT_MONITOR_CHECK_INTERVAL",
        value_name = "DURATION"
    )]
    pub check_interval: Option<String>,
    /// Deadline of one check [default: 5s]
    #[arg(
        long,
        alias = "read-timeout",
        global = true,
        env = "MOUNT_MONITOR_TIMEOUT",
        value_name = "DURATION"
    )]
    pub timeout: Option<String>,
    /// Consecutive failures before a mount is unhealthy [default: 3]
    #[arg(
        long,
        global = true,
        env = "MOUNT_MONITOR_FAILURE_THRESHOLD",
        allow_negative_numbers = true,
        value_name = "N"
    )]
    pub failure_threshold: Option<i64>,
    /// debug, info, warn or error [default: info]
    #[arg(
        long,
        global = true,
        env = "MOUNT_MONITOR_LOG_LEVEL",
        value_name = "LEVEL"
    )]
    pub log_level: Option<String>,
    /// json or text [default: json]
    #[arg(
        long,
        global = true,
        env = "MOUNT_MONITOR_LOG_FORMAT",
        value_name = "FORMAT"
    )]
    pub log_format: Option<String>,
    /// Checks left blocked in the kernel at most (a thread each); past it, a mount whose earlier
    /// check is still blocked reports `timeout` without starting another [default: 64]
    #[arg(
        long,
        global = true,
        env = "MOUNT_MONITOR_MAX_BLOCKED_CHECKS",
        value_name = "N"
    )]
    pub max_blocked_checks: Option<usize>,
    /// Connections served at once, over all clients (at most three quarters of the open-file
    /// limit) [default: 1365, what 32 MiB of memory holds]
    #[arg(
        long,
        global = true,
        env = "MOUNT_MONITOR_MAX_CONNECTIONS",
        value_name = "N"
    )]
    pub max_connections: Option<usize>,
    /// Connections one client address may hold at once, so that no client can take the
    /// connections probes need [default: 64]
    #[arg(
        long,
        global = true,
        env = "MOUNT_MONITOR_MAX_CONNECTIONS_PER_PEER",
        value_name = "N"
    )]
    pub max_connections_per_peer: Option<usize>,
    /// What /metrics tells about each mount: `basic` (at most 16 series per healthy mount) or
    /// `full` (every duration bucket, failures by reason, all states and filesystem gauges)
    /// [default: basic]
    #[arg(
        long,
        global = true,
        env = "MOUNT_MONITOR_METRICS_DETAIL",
        value_name = "basic|full"
    )]
    pub metrics_detail: Option<String>,
    /// Check the configured mounts once, log each result, exit 0 when all are healthy and 1
    /// otherwise (debrid-mount-monitor's flag: bare, =true or =false)
    #[arg(
        long,
        global = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "false",
        value_parser = go_bool,
        value_name = "BOOL"
    )]
    pub init_container_mode: bool,
    /// Treat warnings about the config file (unknown keys, duplicate names) as errors: exit 2
    #[arg(long = "strict-config", visible_alias = "strict", global = true)]
    pub strict_config: bool,
}

/// A boolean as Go's `strconv.ParseBool` (and so a Go bool flag) reads it.
fn go_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("{value:?} is not a boolean; use true or false")),
    }
}

impl Options {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            mounts: self
                .mounts
                .iter()
                .filter(|m| !m.trim().is_empty())
                .cloned()
                .collect(),
            listen: (!self.listen.is_empty()).then(|| self.listen.join(",")),
            http_port: self.http_port,
            check_interval: self.check_interval.clone(),
            timeout: self.timeout.clone(),
            failure_threshold: self.failure_threshold,
            log_level: self.log_level.clone(),
            log_format: self.log_format.clone(),
            init_container_mode: self.init_container_mode,
            max_blocked_checks: self.max_blocked_checks,
            metrics_detail: self.metrics_detail.clone(),
            max_connections: self.max_connections,
            max_connections_per_peer: self.max_connections_per_peer,
        }
    }
}

impl Cli {
    /// The environment variables the options read (`MOUNT_MONITOR_…`).
    pub fn environment_variables() -> Vec<String> {
        use clap::CommandFactory;
        Cli::command()
            .get_arguments()
            .filter_map(|arg| arg.get_env())
            .map(|var| var.to_string_lossy().into_owned())
            .collect()
    }

    /// The command line and the environment, leaving out the variables in `ignored` (service
    /// links, see [`crate::service_links`]) as if they were not set.
    pub fn parse_ignoring(ignored: &[String]) -> Result<Cli, clap::Error> {
        use clap::{CommandFactory, FromArgMatches};
        let command = Cli::command().mut_args(|arg| match arg.get_env() {
            Some(var) if ignored.iter().any(|i| var == i.as_str()) => arg.env(None::<&str>),
            _ => arg,
        });
        let mut matches = command.try_get_matches()?;
        Cli::from_arg_matches_mut(&mut matches)
    }
}

/// A command-line error on one line, like every other configuration error: clap's message
/// without its usage block, e.g. "invalid value 'x' for '--http-port <PORT>': invalid digit found
/// in string; see --help".
pub fn one_line(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .collect();
    format!(
        "{}; see --help",
        parts.join("; ").trim_start_matches("error: ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parse_errors_fit_on_one_line() {
        for args in [
            &["mount-monitor", "--http-port", "99999"][..],
            &["mount-monitor", "--bogus"],
            &["mount-monitor", "check", "--format", "xml"],
        ] {
            let error = Cli::try_parse_from(args).unwrap_err();
            let line = one_line(&error);
            assert!(!line.contains('\n'), "{args:?}: {line}");
            assert!(line.ends_with("; see --help"), "{args:?}: {line}");
            assert!(!line.starts_with("error:"), "{args:?}: {line}");
        }
        let error = Cli::try_parse_from(["mount-monitor", "check", "--format", "xml"]).unwrap_err();
        assert!(
            one_line(&error).contains("table, json"),
            "{}",
            one_line(&error)
        );
    }

    #[test]
    fn flags_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "mount-monitor",
            "check",
            "--format",
            "json",
            "--mount",
            "a=/x",
            "--mount",
            "/y",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Check {
                format: Format::Json
            })
        ));
        assert_eq!(cli.options.mounts, ["a=/x", "/y"]);
    }

    #[test]
    fn init_container_mode_is_a_go_bool_flag() {
        let mode = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("mount-monitor").chain(args.iter().copied()))
                .map(|cli| cli.options.init_container_mode)
                .map_err(|e| one_line(&e))
        };
        assert_eq!(mode(&[]), Ok(false));
        assert_eq!(mode(&["--init-container-mode"]), Ok(true));
        assert_eq!(mode(&["--init-container-mode=true"]), Ok(true));
        assert_eq!(mode(&["--init-container-mode=1"]), Ok(true));
        assert_eq!(mode(&["--init-container-mode=false"]), Ok(false));
        assert_eq!(mode(&["--init-container-mode=False"]), Ok(false));
        assert!(mode(&["--init-container-mode=yes"]).is_err());
        assert_eq!(
            mode(&["--init-container-mode", "--config", "c.json"]),
            Ok(true),
            "a bare flag does not swallow the next argument"
        );
    }

    #[test]
    fn every_setting_has_its_variable() {
        let vars = Cli::environment_variables();
        assert!(
            vars.contains(&"MOUNT_MONITOR_HTTP_PORT".to_owned()),
            "{vars:?}"
        );
        assert!(
            vars.iter().all(|v| v.starts_with("MOUNT_MONITOR_")),
            "{vars:?}"
        );
    }

    #[test]
    fn listen_takes_several_addresses() {
        let cli = Cli::try_parse_from([
            "mount-monitor",
            "--listen",
            "127.0.0.1:1,[::1]:2",
            "--listen",
            "127.0.0.2:3",
        ])
        .unwrap();
        assert_eq!(
            cli.options.overrides().listen.as_deref(),
            Some("127.0.0.1:1,[::1]:2,127.0.0.2:3")
        );
    }
}
