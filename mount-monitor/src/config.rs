//! Configuration: defaults < config file (JSON or TOML) < environment < flags, validated into
//! [`Settings`]. The JSON schema is debrid-mount-monitor's `config.json`, extended.
//!
//! Every value is read by one `FromStr` (the `value` module) wherever it is written; the file and the
//! command line each become a `Layer`, and `Layer::over` is the one place they are merged.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::mountinfo::normalize;

mod value;

pub use value::{
    CheckType, Expect, Floor, GoDuration, InodeFloor, Listen, LogFormat, LogLevel, MAX_DURATION,
    MetricsDetail, Placement, SpaceFloor, go_bool,
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
/// More would only cost memory: the checks do not run on these threads.
pub const MAX_WORKER_THREADS: usize = 64;
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// The shortest check interval. debrid-mount-monitor refused anything under 1s; accepting less
/// keeps every config it accepted valid, and lets soak tests run many rounds in little time.
/// The timeout (at least 100ms) must still fit inside the interval.
pub const MIN_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// A configuration error: one line naming the file, flag or key, what was wrong and what to do.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(message.into()))
}

/// A value's error, prefixed with where the value was written.
fn at(what: &str) -> impl FnOnce(String) -> ConfigError + '_ {
    move |message| ConfigError(format!("{what}: {message}"))
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

/// One mount to watch, fully resolved.
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
            .unwrap_or_else(|| crate::mountinfo::display_path(&self.path))
    }

    /// A mount with default checks (mountinfo + statfs), as `--mount` and discovery create.
    pub fn plain(name: Option<String>, path: PathBuf, defaults: &Settings) -> MountSpec {
        MountSpec {
            name,
            shown_path: crate::mountinfo::display_path(&path),
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

/// The validated configuration the service runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// At least one address. An unspecified IPv6 address (`[::]`) listens dual-stack.
    pub listen: Vec<std::net::SocketAddr>,
    pub check_interval: Duration,
    pub timeout: Duration,
    pub shutdown_timeout: Duration,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    pub log_level: LogLevel,
    /// `None`: not set, JSON (debrid-mount-monitor logs JSON even on a terminal).
    pub log_format: Option<LogFormat>,
    /// Checks left blocked in the kernel (a thread each) at most; past it, a mount whose earlier
    /// check is still blocked starts no new one.
    pub max_blocked_checks: usize,
    /// Runtime worker threads (`workerThreads`, `--worker-threads`).
    pub worker_threads: usize,
    /// How much `/metrics` tells about each mount (`metricsDetail`, `--metrics-detail`).
    pub metrics_detail: MetricsDetail,
    /// Connections served at once, over all clients (then capped by the open-file limit).
    pub max_connections: usize,
    /// Connections one client address may hold at once.
    pub max_connections_per_peer: usize,
    /// The default canary file name, relative to each mount (`canaryFile`).
    pub canary_file: String,
    /// Empty: discover every real mount each round.
    pub mounts: Vec<MountSpec>,
    /// Where the settings came from, for the startup log line.
    pub config_file: Option<PathBuf>,
    pub watchdog: WatchdogSettings,
    /// Init-container mode and `check`: check again every [`WAIT_RETRY`] until every mount is
    /// healthy, for at most this long (`waitTimeout`); `None`: one round.
    pub wait_timeout: Option<Duration>,
    /// Stop, start and restart containers by their `mount-monitor.*` labels (see `docker`).
    pub docker_actions: bool,
}

/// How often the waiting mode (`waitTimeout`) checks again: an application waiting for its mount
/// starts within about this long of it.
pub const WAIT_RETRY: Duration = Duration::from_secs(1);

/// The pod-restart watchdog (`watchdog` in the file; see the `watchdog` module).
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

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: vec![DEFAULT_LISTEN.parse().expect("valid default address")],
            check_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(30),
            failure_threshold: 3,
            success_threshold: 1,
            log_level: LogLevel::Info,
            log_format: None,
            max_blocked_checks: DEFAULT_MAX_BLOCKED_CHECKS,
            worker_threads: DEFAULT_WORKER_THREADS,
            metrics_detail: MetricsDetail::Basic,
            max_connections: crate::server::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_peer: crate::limits::DEFAULT_PER_PEER,
            canary_file: DEFAULT_CANARY_FILE.to_owned(),
            mounts: Vec::new(),
            config_file: None,
            watchdog: WatchdogSettings::default(),
            wait_timeout: None,
            docker_actions: false,
        }
    }
}

/// The environment and the flags: every option also reads a `MOUNT_MONITOR_…` variable, and
/// clap lets the flag win over it. Each value is parsed by its type's `FromStr`, as in the file.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Overrides {
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
    pub log_level: Option<LogLevel>,
    /// json or text [default: json]
    #[arg(
        long,
        global = true,
        env = "MOUNT_MONITOR_LOG_FORMAT",
        value_name = "FORMAT"
    )]
    pub log_format: Option<LogFormat>,
    /// Checks left blocked in the kernel at most (a thread each); past it, a mount whose earlier
    /// check is still blocked reports `timeout` without starting another [default: 64]
    #[arg(
        long,
        global = true,
        env = "MOUNT_MONITOR_MAX_BLOCKED_CHECKS",
        value_name = "N"
    )]
    pub max_blocked_checks: Option<usize>,
    /// Runtime threads that serve HTTP and schedule checks (checks run on threads of their own)
    /// [default: 2, whatever the number of CPUs]
    #[arg(
        long,
        global = true,
        env = "MOUNT_MONITOR_WORKER_THREADS",
        value_name = "N"
    )]
    pub worker_threads: Option<usize>,
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
    pub metrics_detail: Option<MetricsDetail>,
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

/// Non-fatal findings of loading, logged once logging is set up.
pub type Warnings = Vec<String>;

/// The config file as written (camelCase keys). TOML is read strictly: unknown keys are errors.
/// JSON is read as debrid-mount-monitor's Go code reads it ([`crate::gojson`]): unknown keys are
/// warnings, and a zero value means the default.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileConfig {
    /// Read with Go's rules (a JSON file).
    #[serde(skip)]
    go_rules: bool,
    /// Keys ignored under Go's rules, one warning each.
    #[serde(skip)]
    ignored: Vec<String>,
    check_interval: Option<GoDuration>,
    #[serde(alias = "timeout")]
    read_timeout: Option<GoDuration>,
    shutdown_timeout: Option<GoDuration>,
    failure_threshold: Option<i64>,
    success_threshold: Option<i64>,
    http_port: Option<i64>,
    listen: Option<Listen>,
    log_level: Option<LogLevel>,
    log_format: Option<LogFormat>,
    canary_file: Option<String>,
    max_blocked_checks: Option<usize>,
    worker_threads: Option<usize>,
    metrics_detail: Option<MetricsDetail>,
    max_connections: Option<usize>,
    max_connections_per_peer: Option<usize>,
    mounts: Option<Vec<FileMount>>,
    watchdog: Option<FileWatchdog>,
    wait_timeout: Option<GoDuration>,
    docker_actions: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileMount {
    name: Option<String>,
    path: Option<String>,
    canary_file: Option<String>,
    check_type: Option<CheckType>,
    failure_threshold: Option<i64>,
    success_threshold: Option<i64>,
    fs_type: Option<String>,
    require_mountpoint: Option<bool>,
    expect: Option<Expect>,
    min_free: Option<SpaceFloor>,
    min_free_inodes: Option<InodeFloor>,
    optional: Option<bool>,
}

/// debrid-mount-monitor's pod-restart watchdog, plus `minPodAge`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileWatchdog {
    enabled: Option<bool>,
    restart_delay: Option<GoDuration>,
    max_retries: Option<i64>,
    retry_backoff_initial: Option<GoDuration>,
    retry_backoff_max: Option<GoDuration>,
    min_pod_age: Option<GoDuration>,
}

/// Where a configuration error was written, which decides the exit code (README, Exit codes):
/// debrid-mount-monitor exits 1 for its config file's errors, and its flag parser 2 for a bad
/// command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The config file, or the file together with the flags (a flag's timeout above the file's
    /// interval): the file is what the user edits to fix it.
    File,
    /// The flags or the environment alone.
    CommandLine,
}

/// A configuration error and where it was written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{error}")]
pub struct LoadError {
    pub error: ConfigError,
    pub origin: Origin,
}

/// Loads and validates the configuration.
pub fn load(overrides: &Overrides) -> Result<(Settings, Warnings), LoadError> {
    let in_file = |error| LoadError {
        error,
        origin: Origin::File,
    };
    let mut warnings = Warnings::new();
    let (mut file, file_path) = match &overrides.config {
        Some(path) => (
            read_file(path, &mut warnings).map_err(in_file)?,
            Some(path.clone()),
        ),
        None if Path::new("config.json").is_file() => {
            let path = PathBuf::from("config.json");
            (
                read_file(&path, &mut warnings).map_err(in_file)?,
                Some(path),
            )
        }
        None => (FileConfig::default(), None),
    };
    warnings.append(&mut file.ignored);
    let mut settings = resolve(file, file_path.as_deref(), overrides).map_err(|error| {
        // An error the flags make without any file is theirs.
        let origin = match resolve(FileConfig::default(), None, overrides) {
            Err(_) => Origin::CommandLine,
            Ok(_) => Origin::File,
        };
        LoadError { error, origin }
    })?;
    // Discovery is for running without a config file, as in debrid-mount-monitor, which
    // requires mounts in its file: a file without any is a mistake, not a wish to watch all.
    if let Some(path) = &file_path
        && settings.mounts.is_empty()
    {
        return Err(in_file(ConfigError(format!(
            "config file {}: at least one mount is required; list them under `mounts`, give --mount, or leave out the config file to monitor every mount",
            path.display()
        ))));
    }
    warnings.extend(duplicate_names(&settings.mounts));
    settings.config_file = file_path;
    Ok((settings, warnings))
}

fn read_file(path: &Path, warnings: &mut Warnings) -> Result<FileConfig, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let meta = std::fs::metadata(path).or_else(|e| {
        err(format!(
            "config file {shown}: {e}; pass an existing file with --config or leave it out"
        ))
    })?;
    if !meta.is_file() {
        return err(format!("config file {shown}: not a regular file"));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return err(format!(
            "config file {shown}: {} bytes is over the 1 MiB limit; is this the right file?",
            meta.len()
        ));
    }
    if meta.permissions().mode() & 0o002 != 0 {
        warnings.push(format!(
            "config file {shown} is world-writable; anyone on this machine can change what is monitored (chmod o-w)"
        ));
    }
    let text = std::fs::read_to_string(path).or_else(|e| {
        err(format!(
            "config file {shown}: cannot read it: {e}; check its permissions"
        ))
    })?;
    parse_file(&text, path)
}

fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    let shown = path.display();
    // serde_path_to_error names the key a value was wrong for: `mounts[1].minFree`.
    let at_key = |key: String| match key.as_str() {
        "" | "." | "?" => String::new(),
        key => format!("`{key}`: "),
    };
    let is_toml = path.extension().is_some_and(|ext| ext == "toml");
    if is_toml {
        let toml_error = |key: String, e: toml::de::Error| {
            let line = e
                .span()
                .map(|span| {
                    let number = text.as_bytes()[..span.start.min(text.len())]
                        .split(|&b| b == b'\n')
                        .count();
                    // A syntax error has no key path: quote the line, which shows the key.
                    match text.lines().nth(number - 1).map(str::trim) {
                        Some(line) if key.is_empty() && !line.is_empty() => {
                            let line: String = line.chars().take(60).collect();
                            format!(" (line {number}: {line})")
                        }
                        _ => format!(" (line {number})"),
                    }
                })
                .unwrap_or_default();
            ConfigError(format!(
                "config file {shown}: {}{}{line}",
                at_key(key),
                e.message().trim_end().replace('\n', "; ")
            ))
        };
        let document = toml::Deserializer::parse(text).map_err(|e| toml_error(String::new(), e))?;
        serde_path_to_error::deserialize(document)
            .map_err(|e| toml_error(e.path().to_string(), e.into_inner()))
    } else {
        let json_error = |key: String, e: serde_json::Error| {
            ConfigError(format!("config file {shown}: {}{e}", at_key(key)))
        };
        let (mut document, ignored) = crate::gojson::normalize(text, &json_schema())
            .map_err(|e| json_error(String::new(), e))?;
        drop_empty_strings(&mut document);
        let mut file: FileConfig = serde_path_to_error::deserialize(document)
            .map_err(|e| json_error(e.path().to_string(), e.into_inner()))?;
        file.go_rules = true;
        file.ignored = ignored
            .into_iter()
            .map(|warning| format!("config file {shown}: {warning}"))
            .collect();
        Ok(file)
    }
}

/// The keys of `config.json`, taken from the structs serde reads it into.
fn json_schema() -> crate::gojson::Schema {
    use crate::gojson::Schema;
    // debrid-mount-monitor's earlier name for failureThreshold.
    let renamed = ("debounceThreshold", "failureThreshold");
    Schema::of::<FileConfig>()
        .renamed(renamed.0, renamed.1)
        .with(
            "mounts",
            Schema::of::<FileMount>().renamed(renamed.0, renamed.1),
        )
        .with("watchdog", Schema::of::<FileWatchdog>())
}

/// Under Go's rules an empty string is the zero value, and so the default, as `0` is. (Go
/// refuses an empty duration; it is the default here, as `null` is.)
fn drop_empty_strings(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| v.as_str() != Some(""));
            map.values_mut().for_each(drop_empty_strings);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_empty_strings),
        _ => {}
    }
}

/// A duration and where it was set, for the errors about the interval and the timeout together.
#[derive(Debug)]
struct Set {
    value: Duration,
    /// ``config file c.json: `checkInterval` `` or `--check-interval`.
    at: String,
    /// ``from `checkInterval` ``, `from --check-interval` or `by default`.
    set_by: String,
}

impl Set {
    /// `duration`, which must not be negative, set at `at` (by `name`).
    fn new(duration: &GoDuration, at: String, name: &str) -> Result<Set, ConfigError> {
        Ok(Set {
            value: duration.non_negative().map_err(self::at(&at))?,
            at,
            set_by: format!("from {name}"),
        })
    }

    fn default(value: Duration, key: &str) -> Set {
        Set {
            value,
            at: format!("`{key}` (default)"),
            set_by: "by default".to_owned(),
        }
    }
}

/// What one source sets, checked: the config file, or the environment and flags.
#[derive(Debug, Default)]
struct Layer {
    check_interval: Option<Set>,
    timeout: Option<Set>,
    shutdown_timeout: Option<Duration>,
    failure_threshold: Option<u32>,
    success_threshold: Option<u32>,
    http_port: Option<u16>,
    listen: Option<Vec<std::net::SocketAddr>>,
    log_level: Option<LogLevel>,
    log_format: Option<LogFormat>,
    max_blocked_checks: Option<usize>,
    worker_threads: Option<usize>,
    metrics_detail: Option<MetricsDetail>,
    max_connections: Option<usize>,
    max_connections_per_peer: Option<usize>,
}

impl Layer {
    /// The file's settings. Under Go's rules (config.json) a zero value is the default, as
    /// debrid-mount-monitor reads it: `httpPort: 0` is 8080, `failureThreshold: 0` is 3, a zero
    /// or negative duration is the default duration (an empty string was dropped on reading).
    fn file(
        file: &FileConfig,
        origin: &dyn Fn(&str) -> String,
        init_container_mode: bool,
    ) -> Result<Layer, ConfigError> {
        let go = file.go_rules;
        let duration = |value: &Option<GoDuration>, key: &str| match value {
            Some(d) if go && !d.is_positive() => Ok(None),
            Some(d) => Set::new(d, origin(key), &format!("`{key}`")).map(Some),
            None => Ok(None),
        };
        let threshold = |value: Option<i64>, name: &str| match value {
            Some(v) if go && v <= 0 => Ok(None),
            Some(v) => threshold(v, &origin(name)).map(Some),
            None => Ok(None),
        };
        let http_port = match file.http_port {
            Some(port) if go && port <= 0 => None,
            // One round serves nothing, and debrid-mount-monitor does not check the port then.
            Some(port) if init_container_mode && u16::try_from(port).is_err() => None,
            Some(port) => Some(port_number(port, &origin("httpPort"))?),
            None => None,
        };
        Ok(Layer {
            check_interval: duration(&file.check_interval, "checkInterval")?,
            timeout: duration(&file.read_timeout, "readTimeout")?,
            shutdown_timeout: duration(&file.shutdown_timeout, "shutdownTimeout")?.map(|s| s.value),
            failure_threshold: threshold(file.failure_threshold, "failureThreshold")?,
            success_threshold: threshold(file.success_threshold, "successThreshold")?,
            http_port,
            listen: file.listen.clone().map(|l| l.0),
            log_level: file.log_level,
            log_format: file.log_format,
            max_blocked_checks: file.max_blocked_checks,
            worker_threads: worker_threads(file.worker_threads, &origin("workerThreads"))?,
            metrics_detail: file.metrics_detail,
            max_connections: connections(file.max_connections, &origin("maxConnections"))?,
            max_connections_per_peer: connections(
                file.max_connections_per_peer,
                &origin("maxConnectionsPerPeer"),
            )?,
        }
        .listen_over_port())
    }

    /// The environment's and the flags' settings (clap already let flags win over the
    /// environment, and parsed each value).
    fn flags(cli: &Overrides) -> Result<Layer, ConfigError> {
        let duration = |value: &Option<GoDuration>, flag: &str| {
            value
                .as_ref()
                .map(|d| Set::new(d, flag.to_owned(), flag))
                .transpose()
        };
        Ok(Layer {
            check_interval: duration(&cli.check_interval, "--check-interval")?,
            timeout: duration(&cli.timeout, "--timeout")?,
            shutdown_timeout: None,
            failure_threshold: cli
                .failure_threshold
                .map(|v| threshold(v, "--failure-threshold"))
                .transpose()?,
            success_threshold: None,
            // 0 is "not given", as debrid-mount-monitor's `--http-port` reads it.
            http_port: cli.http_port.filter(|&port| port > 0),
            listen: (!cli.listen.is_empty()).then(|| {
                cli.listen
                    .iter()
                    .flat_map(|l| l.0.iter().copied())
                    .collect()
            }),
            log_level: cli.log_level,
            log_format: cli.log_format,
            max_blocked_checks: cli.max_blocked_checks,
            worker_threads: worker_threads(cli.worker_threads, "--worker-threads")?,
            metrics_detail: cli.metrics_detail,
            max_connections: connections(cli.max_connections, "--max-connections")?,
            max_connections_per_peer: connections(
                cli.max_connections_per_peer,
                "--max-connections-per-peer",
            )?,
        }
        .listen_over_port())
    }

    /// Addresses and a port from one source: the addresses win.
    fn listen_over_port(mut self) -> Layer {
        if self.listen.is_some() {
            self.http_port = None;
        }
        self
    }

    /// `self` over `below`: each setting from the first source that sets it. A port applies to
    /// the addresses of its own source or one below (`--http-port` over a file's `listen`);
    /// addresses from above make a port from below moot.
    fn over(self, below: Layer) -> Layer {
        Layer {
            check_interval: self.check_interval.or(below.check_interval),
            timeout: self.timeout.or(below.timeout),
            shutdown_timeout: self.shutdown_timeout.or(below.shutdown_timeout),
            failure_threshold: self.failure_threshold.or(below.failure_threshold),
            success_threshold: self.success_threshold.or(below.success_threshold),
            http_port: match self.listen {
                Some(_) => self.http_port,
                None => self.http_port.or(below.http_port),
            },
            listen: self.listen.or(below.listen),
            log_level: self.log_level.or(below.log_level),
            log_format: self.log_format.or(below.log_format),
            max_blocked_checks: self.max_blocked_checks.or(below.max_blocked_checks),
            worker_threads: self.worker_threads.or(below.worker_threads),
            metrics_detail: self.metrics_detail.or(below.metrics_detail),
            max_connections: self.max_connections.or(below.max_connections),
            max_connections_per_peer: self
                .max_connections_per_peer
                .or(below.max_connections_per_peer),
        }
    }

    /// The settings over the defaults, with the checks of the interval and the timeout together.
    fn settings(self, init_container_mode: bool) -> Result<Settings, ConfigError> {
        let d = Settings::default();
        let interval = (self.check_interval)
            .unwrap_or_else(|| Set::default(d.check_interval, "checkInterval"));
        let timeout = (self.timeout).unwrap_or_else(|| Set::default(d.timeout, "readTimeout"));
        if timeout.value < Duration::from_millis(100) {
            return err(format!(
                "{}: {:?} is below the 100ms minimum; set it to 100ms or more",
                timeout.at, timeout.value
            ));
        }
        // One round (init-container mode) has no interval, as in debrid-mount-monitor.
        if !init_container_mode && interval.value < MIN_CHECK_INTERVAL {
            return err(format!(
                "{}: {:?} is below the {MIN_CHECK_INTERVAL:?} minimum; set it to {MIN_CHECK_INTERVAL:?} or more",
                interval.at, interval.value
            ));
        }
        if !init_container_mode && timeout.value >= interval.value {
            return err(format!(
                "{}: {:?} must be at least 100ms and below the check interval ({:?} {}); change one of them",
                timeout.at, timeout.value, interval.value, interval.set_by
            ));
        }
        let mut listen = self.listen.unwrap_or(d.listen);
        if let Some(port) = self.http_port {
            for address in &mut listen {
                address.set_port(port);
            }
        }
        Ok(Settings {
            listen,
            check_interval: interval.value,
            timeout: timeout.value,
            shutdown_timeout: self.shutdown_timeout.unwrap_or(d.shutdown_timeout),
            failure_threshold: self.failure_threshold.unwrap_or(d.failure_threshold),
            success_threshold: self.success_threshold.unwrap_or(d.success_threshold),
            log_level: self.log_level.unwrap_or(d.log_level),
            log_format: self.log_format,
            max_blocked_checks: self.max_blocked_checks.unwrap_or(d.max_blocked_checks),
            worker_threads: self.worker_threads.unwrap_or(d.worker_threads),
            metrics_detail: self.metrics_detail.unwrap_or(d.metrics_detail),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            max_connections_per_peer: self
                .max_connections_per_peer
                .unwrap_or(d.max_connections_per_peer),
            ..d
        })
    }
}

fn resolve(
    file: FileConfig,
    file_path: Option<&Path>,
    cli: &Overrides,
) -> Result<Settings, ConfigError> {
    let origin = |key: &str| match file_path {
        Some(path) => format!("config file {}: `{key}`", path.display()),
        None => format!("`{key}`"),
    };
    let init = cli.init_container_mode;
    let layers = Layer::flags(cli)?.over(Layer::file(&file, &origin, init)?);
    let mut s = layers.settings(init)?;
    s.wait_timeout = wait_timeout(&file, &origin, cli)?;
    // One round restarts nothing: init-container mode leaves the watchdog alone, as
    // debrid-mount-monitor does.
    if let Some(w) = &file.watchdog
        && !init
    {
        s.watchdog = watchdog(w, &origin)?;
    }
    s.docker_actions = cli.docker_actions.or(file.docker_actions).unwrap_or(false);

    // Mounts: the file's, then --mount's.
    let default_canary = file
        .canary_file
        .clone()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| DEFAULT_CANARY_FILE.to_owned());
    let mut mounts = Vec::new();
    for (i, m) in file.mounts.unwrap_or_default().into_iter().enumerate() {
        let at = |key: &str| origin(&format!("mounts[{i}].{key}"));
        mounts.push(file_mount(m, &default_canary, file.go_rules, &s, &at)?);
    }
    for arg in &cli.mounts {
        for mount in split_mount_arg(arg) {
            let flag = format!("--mount {:?}", mount.join(","));
            mounts.push(flag_mount(&mount, &flag, &s)?);
        }
    }
    s.mounts = mounts;
    s.canary_file = default_canary;
    Ok(s)
}

/// `waitTimeout` / `--wait-timeout`: the flag over the file; `0s` is one round, as without it.
fn wait_timeout(
    file: &FileConfig,
    origin: &dyn Fn(&str) -> String,
    cli: &Overrides,
) -> Result<Option<Duration>, ConfigError> {
    let set = match (&cli.wait_timeout, &file.wait_timeout) {
        (Some(d), _) => d.non_negative().map_err(at("--wait-timeout"))?,
        (None, Some(d)) => d.non_negative().map_err(at(&origin("waitTimeout")))?,
        (None, None) => Duration::ZERO,
    };
    Ok((!set.is_zero()).then_some(set))
}

/// Mounts that share a name (debrid-mount-monitor allowed it, so it loads): `/readyz/<name>`
/// then answers for all of them together.
pub fn duplicate_names(mounts: &[MountSpec]) -> Warnings {
    let mut first = std::collections::HashMap::new();
    let mut warnings = Warnings::new();
    for (i, m) in mounts.iter().enumerate() {
        if let Some(name) = &m.name
            && let Some(earlier) = first.insert(name.as_str(), i)
        {
            first.insert(name.as_str(), earlier);
            warnings.push(format!(
                "mount {} ({}) has the name {name:?} of mount {} ({}); /readyz/<name> answers for both, give each a unique name to tell them apart",
                i + 1,
                m.shown_path,
                earlier + 1,
                mounts[earlier].shown_path
            ));
        }
    }
    warnings
}

fn file_mount(
    m: FileMount,
    default_canary: &str,
    go: bool,
    s: &Settings,
    at: &dyn Fn(&str) -> String,
) -> Result<MountSpec, ConfigError> {
    let (path, shown_path) = match m.path.as_deref() {
        Some(p) if !p.trim().is_empty() => (normalize(Path::new(p.trim())), p.to_owned()),
        _ => return err(format!("{}: every mount needs a path", at("path"))),
    };
    let check = match m.check_type.unwrap_or(CheckType::Canary) {
        CheckType::Canary => {
            // An empty canary name is the global one.
            let canary = m
                .canary_file
                .as_deref()
                .filter(|c| !c.is_empty())
                .unwrap_or(default_canary);
            DataCheck::Canary(path.join(canary.trim_start_matches('/')))
        }
        CheckType::Directory => DataCheck::Directory,
        CheckType::List => DataCheck::List,
        CheckType::None => DataCheck::None,
    };
    // 0 is the global value; under Go's rules only a negative per-mount threshold is an error,
    // as in debrid-mount-monitor.
    let failure_threshold = match m.failure_threshold {
        None | Some(0) => s.failure_threshold,
        Some(v) => threshold(v, &at("failureThreshold"))?,
    };
    let success_threshold = match m.success_threshold {
        None | Some(0) => s.success_threshold,
        Some(v) if go && v < 0 => s.success_threshold,
        Some(v) => threshold(v, &at("successThreshold"))?,
    };
    Ok(MountSpec {
        name: m.name.filter(|n| !n.trim().is_empty()),
        path,
        shown_path,
        fs_type: m.fs_type.filter(|t| !t.is_empty()),
        placement: Placement::from_flag(m.require_mountpoint),
        expect: m.expect.unwrap_or(Expect::Any),
        min_free: m.min_free.map(|f| f.0),
        min_free_inodes: m.min_free_inodes.map(|f| f.0),
        check,
        failure_threshold,
        success_threshold,
        optional: m.optional.unwrap_or(false),
    })
}

/// The options of `--mount` and `MOUNT_MONITOR_MOUNTS`: the config file's per-mount keys in
/// kebab case (`fs-type` and `fstype` alike).
const MOUNT_OPTIONS: &[&str] = &[
    "name",
    "path",
    "fstype",
    "fs-type",
    "require-mountpoint",
    "expect",
    "min-free",
    "min-free-inodes",
    "check",
    "check-type",
    "canary",
    "canary-file",
    "failure-threshold",
    "success-threshold",
    "optional",
];

/// The option a `key=value` segment of `--mount` sets, if its key is one.
fn mount_option(segment: &str) -> Option<(&'static str, &str)> {
    let (key, value) = segment.split_once('=')?;
    let key = key.trim().to_ascii_lowercase();
    let known = MOUNT_OPTIONS.iter().find(|k| **k == key)?;
    Some((known, value))
}

/// Splits a `--mount` value into mounts, each a list of comma-separated segments: the first is
/// `[NAME=]PATH` or an option, the others options (`min-free=5%`). Mounts are separated by `;`,
/// a newline, or a comma before another path (`a=/x,b=/y`, as before options existed). A comma
/// splits only before an option or a path, so paths and names may contain `,` and `=`.
pub fn split_mount_arg(arg: &str) -> Vec<Vec<String>> {
    let starts_mount = |rest: &str| {
        let rest = rest.trim_start();
        rest.starts_with('/')
            || rest
                .split_once('=')
                .is_some_and(|(name, path)| !name.contains('/') && path.starts_with('/'))
    };
    let mut mounts = Vec::new();
    for item in arg.split([';', '\n']) {
        let mut mount: Vec<String> = Vec::new();
        let mut rest = item;
        loop {
            // The next comma that starts an option or a new mount.
            let split = rest
                .char_indices()
                .filter(|&(_, c)| c == ',')
                .find(|&(at, _)| {
                    let after = &rest[at + 1..];
                    mount_option(after).is_some() || starts_mount(after)
                });
            let (segment, next) = match split {
                Some((at, _)) => (&rest[..at], Some(&rest[at + 1..])),
                None => (rest, None),
            };
            if !segment.trim().is_empty() {
                mount.push(segment.trim().to_owned());
            }
            let Some(next) = next else { break };
            if mount_option(next).is_none() && !mount.is_empty() {
                mounts.push(std::mem::take(&mut mount));
            }
            rest = next;
        }
        if !mount.is_empty() {
            mounts.push(mount);
        }
    }
    mounts
}

/// One mount of `--mount`: `[NAME=]PATH` and options, as [`split_mount_arg`] cut them, read into
/// the file's per-mount keys by the same `FromStr`s.
fn flag_mount(segments: &[String], flag: &str, s: &Settings) -> Result<MountSpec, ConfigError> {
    let example = "e.g. --mount media=/mnt/media or --mount name=media,path=/mnt/media,fstype=fuse.rclone,min-free=5%";
    let mut name = None;
    let mut path = None;
    let mut file = FileMount::default();
    let mut check = None;
    for segment in segments {
        // Only the first segment can be other than an option: split_mount_arg cuts before
        // options and paths only.
        let Some((key, value)) = mount_option(segment) else {
            match segment.split_once('=') {
                Some((n, p)) if !n.contains('/') => {
                    name = Some(n.trim().to_owned());
                    path = Some(p.to_owned());
                }
                _ => path = Some(segment.clone()),
            }
            continue;
        };
        let value = value.trim().to_owned();
        let option = |file_key: &str| format!("{flag}: `{file_key}`");
        let parse = |file_key: &str| {
            let at = option(file_key);
            move |e: String| ConfigError(format!("{at}: {e}"))
        };
        match key {
            "name" => name = Some(value),
            "path" => path = Some(value),
            "fstype" | "fs-type" => file.fs_type = Some(value),
            "require-mountpoint" => {
                let placement: Placement = value.parse().map_err(parse(key))?;
                file.require_mountpoint = match placement {
                    Placement::MountPoint => Some(true),
                    Placement::Anywhere => Some(false),
                    Placement::Mounted => None,
                };
            }
            "expect" => file.expect = Some(value.parse().map_err(parse("expect"))?),
            "min-free" => file.min_free = Some(value.parse().map_err(parse("minFree"))?),
            "min-free-inodes" => {
                file.min_free_inodes = Some(value.parse().map_err(parse("minFreeInodes"))?);
            }
            "optional" => file.optional = Some(go_bool(&value).map_err(parse("optional"))?),
            "check" | "check-type" => check = Some(value.parse().map_err(parse("checkType"))?),
            "canary" | "canary-file" => {
                check.get_or_insert(CheckType::Canary);
                file.canary_file = Some(value);
            }
            "failure-threshold" | "success-threshold" => {
                let n = value.parse::<i64>().map_err(|_| {
                    ConfigError(format!("{}: {value:?} is not a whole number", option(key)))
                })?;
                if key == "failure-threshold" {
                    file.failure_threshold = Some(n);
                } else {
                    file.success_threshold = Some(n);
                }
            }
            _ => unreachable!("every key of MOUNT_OPTIONS is handled"),
        }
    }
    // Flags check mountinfo and statfs only, unless a data check is asked for.
    file.check_type = Some(check.unwrap_or(CheckType::None));
    if name.as_deref().is_some_and(|n| n.trim().is_empty())
        || path.as_deref().is_none_or(|p| p.trim().is_empty())
    {
        return err(format!(
            "{flag}: expected PATH, NAME=PATH or path=PATH with options; {example}"
        ));
    }
    file.name = name;
    file.path = path;
    let at = |key: &str| format!("{flag}: `{key}`");
    file_mount(file, DEFAULT_CANARY_FILE, false, s, &at)
}

/// debrid-mount-monitor's reading: a value of zero (or below) keeps the default, except
/// `minPodAge`, ours, off by default and by "0s".
fn watchdog(
    w: &FileWatchdog,
    origin: &dyn Fn(&str) -> String,
) -> Result<WatchdogSettings, ConfigError> {
    let mut settings = WatchdogSettings::default();
    let duration = |value: &Option<GoDuration>, key: &str| {
        value
            .as_ref()
            .map(|d| d.non_negative().map_err(at(&origin(key))))
            .transpose()
    };
    let positive = |value: &Option<GoDuration>, key: &str| {
        duration(value, key).map(|d| d.filter(|d| !d.is_zero()))
    };
    settings.enabled = w.enabled.unwrap_or(false);
    if let Some(d) = positive(&w.restart_delay, "watchdog.restartDelay")? {
        settings.restart_delay = d;
    }
    match w.max_retries {
        Some(n) if n > 0 => {
            settings.max_retries = u32::try_from(n).or_else(|_| {
                err(format!(
                    "{}: {n} is too many; a few attempts are enough (the default is 3)",
                    origin("watchdog.maxRetries")
                ))
            })?;
        }
        _ => {}
    }
    if let Some(d) = positive(&w.retry_backoff_initial, "watchdog.retryBackoffInitial")? {
        settings.retry_backoff_initial = d;
    }
    if let Some(d) = positive(&w.retry_backoff_max, "watchdog.retryBackoffMax")? {
        settings.retry_backoff_max = d;
    }
    if let Some(d) = duration(&w.min_pod_age, "watchdog.minPodAge")? {
        settings.min_pod_age = d;
    }
    Ok(settings)
}

fn threshold(value: i64, what: &str) -> Result<u32, ConfigError> {
    match u32::try_from(value) {
        Ok(v) if v >= 1 => Ok(v),
        _ => err(format!(
            "{what}: {value} must be a whole number of 1 or more"
        )),
    }
}

/// `httpPort`: a port, 1 to 65535.
fn port_number(port: i64, what: &str) -> Result<u16, ConfigError> {
    u16::try_from(port).or_else(|_| err(format!("{what}: {port} is not a port; use 1 to 65535")))
}

/// A connection limit: 0 would refuse every client.
fn connections(value: Option<usize>, what: &str) -> Result<Option<usize>, ConfigError> {
    match value {
        Some(0) => err(format!(
            "{what}: 0 would refuse every client; set it to 1 or more"
        )),
        other => Ok(other),
    }
}

fn worker_threads(value: Option<usize>, what: &str) -> Result<Option<usize>, ConfigError> {
    match value {
        Some(0) => err(format!(
            "{what}: 0 would leave nothing to serve requests; set it to 1 or more (default {DEFAULT_WORKER_THREADS})"
        )),
        Some(n) if n > MAX_WORKER_THREADS => err(format!(
            "{what}: {n} is more than {MAX_WORKER_THREADS}, the most that can help (checks run on threads of their own); set it to {MAX_WORKER_THREADS} or less"
        )),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests;

/// Fuzzing the loader: whatever the file or the flags say, loading ends in settings or in a
/// one-line error, never in a panic. `PROPTEST_CASES` sets the number of cases of each property
/// (default 2,000).
#[cfg(test)]
mod fuzz;
