//! The command line. Every option also reads a `MOUNT_MONITOR_…` environment variable; flags
//! win over the environment, which wins over the config file.

use std::ffi::OsString;

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
    /// The settings flags, read as the config file's values are.
    #[command(flatten)]
    pub settings: Overrides,
    /// Treat warnings about the config file (unknown keys, duplicate names) as errors: exit 2
    #[arg(long = "strict-config", visible_alias = "strict", global = true)]
    pub strict_config: bool,
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
        let environment: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        Cli::parse_process(std::env::args_os().collect(), &environment, ignored)
    }

    /// The options a process with this command line and this environment runs with: this
    /// process's own, or the server's that `healthcheck` follows (read from `/proc/PID`), so
    /// that both are read by the one parser. clap reads variables only from this process's own
    /// environment, so each variable the command line leaves unset becomes `--flag=value` after
    /// it: a flag still wins over its variable, and a bad value names the flag as clap does.
    pub fn parse_process(
        args: Vec<OsString>,
        environment: &[(OsString, OsString)],
        ignored: &[String],
    ) -> Result<Cli, clap::Error> {
        use clap::parser::ValueSource;
        use clap::{CommandFactory, FromArgMatches};
        let with_variables = Cli::command();
        let without = with_variables.clone().mut_args(|arg| arg.env(None::<&str>));
        let given = without.clone().try_get_matches_from(&args)?;
        let mut args = args;
        for arg in with_variables.get_arguments() {
            let (Some(var), Some(long)) = (arg.get_env(), arg.get_long()) else {
                continue;
            };
            if ignored.iter().any(|i| var == i.as_str())
                || given.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine)
            {
                continue;
            }
            if let Some((_, value)) = environment.iter().find(|(key, _)| key == var) {
                let mut flag = OsString::from(format!("--{long}="));
                flag.push(value);
                args.push(flag);
            }
        }
        let mut matches = without.try_get_matches_from(args)?;
        Cli::from_arg_matches_mut(&mut matches)
    }
}

/// Whether the command line asks for init-container mode (`--init-container-mode`, `=true`, …),
/// for errors that stop clap before it says so.
pub fn asks_for_init_container_mode(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    args.into_iter().any(|arg| match arg.to_str() {
        Some("--init-container-mode") => true,
        Some(arg) => arg
            .strip_prefix("--init-container-mode=")
            .is_some_and(|value| crate::config::go_bool(value) == Ok(true)),
        None => false,
    })
}

/// A command-line error on one line, like every other configuration error: clap's message
/// without its usage block, e.g. `invalid value 'x' for '--http-port <PORT>': invalid digit found
/// in string; see --help`.
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
        assert_eq!(cli.options.settings.mounts, ["a=/x", "/y"]);
    }

    #[test]
    fn init_container_mode_is_a_go_bool_flag() {
        let mode = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("mount-monitor").chain(args.iter().copied()))
                .map(|cli| cli.options.settings.init_container_mode)
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
    fn another_process_is_read_with_its_own_environment() {
        let environment: Vec<(OsString, OsString)> = [
            ("MOUNT_MONITOR_HTTP_PORT", "9000"),
            ("MOUNT_MONITOR_LISTEN", "127.0.0.1:1,[::1]:2"),
            ("MOUNT_MONITOR_CONFIG", "/etc/mm/config.json"),
            ("MOUNT_MONITOR_MOUNTS", "tcp://10.0.0.1:80"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
        let parse = |args: &[&str]| {
            let args = std::iter::once("mount-monitor")
                .chain(args.iter().copied())
                .map(OsString::from)
                .collect();
            Cli::parse_process(args, &environment, &["MOUNT_MONITOR_MOUNTS".to_owned()])
                .map_err(|e| one_line(&e))
        };
        let cli = parse(&["serve", "--http-port", "19191"]).unwrap();
        let settings = &cli.options.settings;
        assert_eq!(settings.http_port, Some(19191), "the flag wins");
        assert_eq!(settings.listen.len(), 2, "{:?}", settings.listen);
        assert_eq!(
            settings.config.as_deref(),
            Some(std::path::Path::new("/etc/mm/config.json"))
        );
        assert!(settings.mounts.is_empty(), "an ignored variable is unset");
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.options.settings.http_port, Some(9000));
        let bad = [("MOUNT_MONITOR_HTTP_PORT".into(), "x".into())];
        let error = Cli::parse_process(vec!["mount-monitor".into()], &bad, &[]).unwrap_err();
        assert!(
            one_line(&error).contains("--http-port"),
            "{}",
            one_line(&error)
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
        let listen: Vec<String> = cli
            .options
            .settings
            .listen
            .iter()
            .flat_map(|l| l.0.iter().map(|a| a.to_string()))
            .collect();
        assert_eq!(listen.join(","), "127.0.0.1:1,[::1]:2,127.0.0.2:3");
    }

    /// Flags are read by the `FromStr` the config file uses; clap names the flag.
    #[test]
    fn bad_values_name_their_flag() {
        for (flag, value, needle) in [
            ("--timeout", "5", "is not a duration"),
            ("--check-interval", "soon", "is not a duration"),
            ("--listen", "localhost", "is not an address"),
            ("--log-level", "loud", "is not a log level"),
            ("--log-format", "xml", "is not a log format"),
            ("--metrics-detail", "all", "is not a metrics detail"),
        ] {
            let error = Cli::try_parse_from(["mount-monitor", flag, value]).unwrap_err();
            let line = one_line(&error);
            assert!(
                line.contains(flag) && line.contains(needle),
                "{flag} {value}: {line}"
            );
        }
    }

    #[test]
    fn init_container_mode_is_seen_before_parsing() {
        let asks = |args: &[&str]| asks_for_init_container_mode(args.iter().map(Into::into));
        assert!(asks(&["mount-monitor", "--init-container-mode"]));
        assert!(asks(&[
            "mount-monitor",
            "--log-level",
            "x",
            "--init-container-mode=1"
        ]));
        assert!(!asks(&["mount-monitor", "--init-container-mode=false"]));
        assert!(!asks(&["mount-monitor", "--log-level", "x"]));
    }
}
