//! The settings model: [`Settings`], the validated configuration the service runs with, and the
//! field table that declares each of its settings once, with its default, config file key, flag,
//! environment variable, check and documentation (see `table`); the mounts ([`MountSpec`]) and the
//! watchdog ([`WatchdogSettings`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::table::{
    any, any_some, connections, duration, go_threshold, settings_table, worker_threads,
};
use super::{
    ConfigError, Expect, Floor, GoDuration, Listen, LogFormat, LogLevel, MetricsDetail, Placement,
    err, go_bool,
};

/// Every address, IPv4 and IPv6 (one dual-stack socket; IPv4 alone where IPv6 is off), as Go's
/// `":8080"` listens.
pub const DEFAULT_LISTEN: &str = "[::]:8080";
pub const DEFAULT_CANARY_FILE: &str = ".health-check";
/// Each hung mount holds one thread until its check returns; remounting it, or a mount that comes
/// back in discovery mode, may leave one more each time. This many at most.
pub const DEFAULT_MAX_BLOCKED_CHECKS: usize = 64;
/// Runtime worker threads: what serves the HTTP endpoints and schedules the checks (each check
/// runs on a thread of its own, see `probe_pool`). Not one per CPU: a sidecar serving a few probes
/// a second needs no more on a 64-core node than on a 2-core one.
pub const DEFAULT_WORKER_THREADS: usize = 2;

/// [`DEFAULT_WORKER_THREADS`], or one where the process may run on a single CPU only (its CPU
/// affinity, or a cgroup CPU quota of one CPU or less): two workers taking turns on one CPU make
/// a request that lands on the waiting one wait out the other's time slice, which multiplied
/// the p99 of every endpoint by ten (0.3 ms → 3.8 ms, BENCHMARKS.md), for no gain in throughput.
pub fn default_worker_threads() -> usize {
    let cpus = std::thread::available_parallelism().map_or(DEFAULT_WORKER_THREADS, |n| n.get());
    DEFAULT_WORKER_THREADS.min(cpus)
}
/// More would only cost memory: the checks do not run on these threads.
pub const MAX_WORKER_THREADS: usize = 64;
/// The shortest check interval. debrid-mount-monitor refused anything under 1s; accepting less
/// keeps every config it accepted valid, and lets soak tests run many rounds in little time.
/// The timeout (at least 100ms) must still fit inside the interval.
pub const MIN_CHECK_INTERVAL: Duration = Duration::from_millis(200);

settings_table! {
    /// The validated configuration the service runs with.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Settings {
        // Settings with rules of their own (`merge`), then the table's.

        /// At least one address. An unspecified IPv6 address (`[::]`) listens dual-stack.
        pub listen: Vec<SocketAddr> = vec![DEFAULT_LISTEN.parse().expect("valid default address")],
        pub check_interval: Duration = Duration::from_secs(30),
        pub timeout: Duration = Duration::from_secs(5),
        /// The default canary file name, relative to each mount (`canaryFile`).
        pub canary_file: String = DEFAULT_CANARY_FILE.to_owned(),
        /// Empty: discover every real mount each round.
        pub mounts: Vec<MountSpec> = Vec::new(),
        /// Where the settings came from, for the startup log line.
        pub config_file: Option<PathBuf> = None,
        pub watchdog: WatchdogSettings = WatchdogSettings::default(),
        /// Init-container mode and `check`: check again every [`WAIT_RETRY`] until every mount is
        /// healthy, for at most this long (`waitTimeout`); `None`: one round.
        pub wait_timeout: Option<Duration> = None,
        /// Stop, start and restart containers by their `mount-monitor.*` labels (see `docker`).
        pub docker_actions: bool = false,
    }

    /// The environment and the flags: every option also reads a `MOUNT_MONITOR_…` variable, and
    /// clap lets the flag win over it. Each value is parsed by its type's `FromStr`, as in the file.
    #[derive(Clone, Debug, Default, clap::Args)]
    pub struct Overrides {
        before {
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
            pub listen: Vec<Listen>,
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
            pub check_interval: Option<GoDuration>,
            /// Deadline of one check [default: 5s]
            #[arg(
                long,
                alias = "read-timeout",
                global = true,
                env = "MOUNT_MONITOR_TIMEOUT",
                value_name = "DURATION"
            )]
            pub timeout: Option<GoDuration>,
        }
        after {
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
            /// With --init-container-mode or `check`: check every second until every mount is healthy
            /// (exit 0) or this long has passed (exit 1), e.g. `5m` [default: one round]
            #[arg(
                long,
                global = true,
                env = "MOUNT_MONITOR_WAIT_TIMEOUT",
                value_name = "DURATION"
            )]
            pub wait_timeout: Option<GoDuration>,
            /// Stop, start and restart Docker containers by their `mount-monitor.depends-on` labels,
            /// through the Engine API on DOCKER_HOST (unix:// only) or /var/run/docker.sock (bare,
            /// =true or =false)
            #[arg(
                long,
                global = true,
                env = "MOUNT_MONITOR_DOCKER_ACTIONS",
                num_args = 0..=1,
                require_equals = true,
                default_missing_value = "true",
                value_parser = go_bool,
                value_name = "BOOL"
            )]
            pub docker_actions: Option<bool>,
        }
    }

    // The order of the entries is the order of their flags in `--help` and the order their
    // errors are found in.
    table {
        /// How long in-flight requests may take on SIGTERM (`shutdownTimeout`; no flag)
        shutdown_timeout: Duration = Duration::from_secs(30),
            file "shutdownTimeout", flag [skip],
            read GoDuration, check duration;

        /// Consecutive failures before a mount is unhealthy [default: 3]
        failure_threshold: u32 = 3,
            file "failureThreshold",
            flag [long, global = true, env = "MOUNT_MONITOR_FAILURE_THRESHOLD", allow_negative_numbers = true, value_name = "N"],
            read i64, check go_threshold;

        /// Consecutive successes before an unhealthy mount is healthy again (`successThreshold`;
        /// no flag)
        success_threshold: u32 = 1,
            file "successThreshold", flag [skip],
            read i64, check go_threshold;

        /// debug, info, warn or error [default: info]
        log_level: LogLevel = LogLevel::Info,
            file "logLevel",
            flag [long, global = true, env = "MOUNT_MONITOR_LOG_LEVEL", value_name = "LEVEL"],
            read LogLevel, check any;

        /// json or text [default: json]
        log_format: Option<LogFormat> = None,
            file "logFormat",
            flag [long, global = true, env = "MOUNT_MONITOR_LOG_FORMAT", value_name = "FORMAT"],
            read LogFormat, check any_some;

        /// Checks left blocked in the kernel at most (a thread each); past it, a mount whose earlier
        /// check is still blocked reports `timeout` without starting another [default: 64]
        max_blocked_checks: usize = DEFAULT_MAX_BLOCKED_CHECKS,
            file "maxBlockedChecks",
            flag [long, global = true, env = "MOUNT_MONITOR_MAX_BLOCKED_CHECKS", value_name = "N"],
            read usize, check any;

        /// Runtime threads that serve HTTP and schedule checks (checks run on threads of their own)
        /// [default: 2, whatever the number of CPUs; 1 where the process may use only one CPU]
        worker_threads: usize = default_worker_threads(),
            file "workerThreads",
            flag [long, global = true, env = "MOUNT_MONITOR_WORKER_THREADS", value_name = "N"],
            read usize, check worker_threads;

        /// Connections served at once, over all clients (at most three quarters of the open-file
        /// limit) [default: 1365, what 32 MiB of memory holds]
        max_connections: usize = crate::server::DEFAULT_MAX_CONNECTIONS,
            file "maxConnections",
            flag [long, global = true, env = "MOUNT_MONITOR_MAX_CONNECTIONS", value_name = "N"],
            read usize, check connections;

        /// Connections one client address may hold at once, so that no client can take the
        /// connections probes need [default: 64]
        max_connections_per_peer: usize = crate::limits::DEFAULT_PER_PEER,
            file "maxConnectionsPerPeer",
            flag [long, global = true, env = "MOUNT_MONITOR_MAX_CONNECTIONS_PER_PEER", value_name = "N"],
            read usize, check connections;

        /// What /metrics tells about each mount: `basic` (at most 16 series per healthy mount) or
        /// `full` (every duration bucket, failures by reason, all states and filesystem gauges)
        /// [default: basic]
        metrics_detail: MetricsDetail = MetricsDetail::Basic,
            file "metricsDetail",
            flag [long, global = true, env = "MOUNT_MONITOR_METRICS_DETAIL", value_name = "basic|full"],
            read MetricsDetail, check any;
    }
}

/// How often the waiting mode (`waitTimeout`) checks again: an application waiting for its mount
/// starts within about this long of it.
pub const WAIT_RETRY: Duration = Duration::from_secs(1);

impl Settings {
    /// Checks that matter only to a serving monitor (debrid-mount-monitor skips them in
    /// init-container mode, and so does `check`).
    pub fn check_serve(&self) -> Result<(), ConfigError> {
        let w = &self.watchdog;
        if w.retry_backoff_max < w.retry_backoff_initial {
            let at = match &self.config_file {
                Some(path) => format!("config file {}: ", path.display()),
                None => String::new(),
            };
            return err(format!(
                "{at}`watchdog.retryBackoffMax`: {:?} is below `watchdog.retryBackoffInitial` ({:?}); raise the maximum or lower the initial backoff",
                w.retry_backoff_max, w.retry_backoff_initial
            ));
        }
        Ok(())
    }
}

/// The data-path check that follows the mount and statfs checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataCheck {
    /// mountinfo and statfs only.
    None,
    /// Read this file (absolute; the canary relative to the mount, resolved).
    Canary(PathBuf),
    /// `stat`: the path must be a directory (debrid-mount-monitor's `directory`; no read
    /// permission needed).
    Directory,
    /// The path must be a directory that can be listed (needs read permission).
    List,
}

/// One mount to watch, fully resolved. Its keys (`mounts[i].…` in the file, the options of
/// `--mount`) are read by `merge::file_mount` and `mount_arg`: they are not in the field table,
/// because each mount's defaults come from the settings above and `--mount`'s options have
/// aliases and a data check of their own.
#[derive(Clone, Debug, PartialEq)]
pub struct MountSpec {
    /// The configured name; `None` when the mount was given by path only.
    pub name: Option<String>,
    /// Absolute and normalized, what the checks use.
    pub path: PathBuf,
    /// The path as configured (`./data/local`), what the JSON and the logs show.
    pub shown_path: String,
    pub fs_type: Option<String>,
    pub placement: Placement,
    pub expect: Expect,
    pub min_free: Option<Floor>,
    pub min_free_inodes: Option<Floor>,
    pub check: DataCheck,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    /// Checked and reported, but counted in no verdict over all mounts (`/readyz`, the
    /// top-level status, the exit codes) and never a reason for the watchdog.
    pub optional: bool,
}

impl MountSpec {
    /// How the mount is named in routes, logs and metrics: its name, or else its path.
    pub fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| crate::paths::display_path(&self.path))
    }

    /// A mount with default checks (mountinfo + statfs), as `--mount` and discovery create.
    pub fn plain(name: Option<String>, path: PathBuf, defaults: &Settings) -> MountSpec {
        MountSpec {
            name,
            shown_path: crate::paths::display_path(&path),
            path,
            fs_type: None,
            placement: Placement::Mounted,
            expect: Expect::Any,
            min_free: None,
            min_free_inodes: None,
            check: DataCheck::None,
            failure_threshold: defaults.failure_threshold,
            success_threshold: defaults.success_threshold,
            optional: false,
        }
    }
}

/// The pod-restart watchdog (`watchdog` in the file; see the `watchdog` module). Its keys live
/// in the file only and are read by `merge::watchdog` with debrid-mount-monitor's rule for each
/// (zero keeps the default, except `minPodAge`): not in the field table, which is for settings
/// that a file key and a flag both set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchdogSettings {
    pub enabled: bool,
    /// How long a mount stays unhealthy before the pod is deleted; 0: at once.
    pub restart_delay: Duration,
    /// DELETE attempts before the process exits 1 instead.
    pub max_retries: u32,
    pub retry_backoff_initial: Duration,
    pub retry_backoff_max: Duration,
    /// A pod younger than this is not deleted until it is this old (opt-in); 0, the default: off.
    pub min_pod_age: Duration,
}

impl Default for WatchdogSettings {
    /// debrid-mount-monitor's defaults; `minPodAge` off.
    fn default() -> Self {
        WatchdogSettings {
            enabled: false,
            restart_delay: Duration::ZERO,
            max_retries: 3,
            retry_backoff_initial: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(10),
            min_pod_age: Duration::ZERO,
        }
    }
}
