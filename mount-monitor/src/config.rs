//! Configuration: defaults < config file (JSON or TOML) < environment < flags, validated into
//! [`Settings`]. The JSON schema is debrid-mount-monitor's `config.json`, extended.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::mountinfo::normalize;

/// Every address, IPv4 and IPv6 (one dual-stack socket; IPv4 alone where IPv6 is off), as Go's
/// `":8080"` listens.
pub const DEFAULT_LISTEN: &str = "[::]:8080";
pub const DEFAULT_CANARY_FILE: &str = ".health-check";
/// Each hung mount holds one thread until its check returns; remounting it, or a mount that comes
/// back in discovery mode, may leave one more each time. This many at most.
pub const DEFAULT_MAX_BLOCKED_CHECKS: usize = 64;
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

/// How much `/metrics` tells about each mount (flag `--metrics-detail`, key `metricsDetail`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MetricsDetail {
    /// At most 16 series per healthy mount: what the alerts and the dashboard need.
    #[default]
    Basic,
    /// Every duration bucket, failures by reason, all states, every filesystem gauge.
    Full,
}

/// What the mount's read-write state must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Any,
    ReadWrite,
    ReadOnly,
}

/// A free-space or free-inode floor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Floor {
    Absolute(u64),
    Percent(f64),
}

impl Floor {
    /// True when `free` out of `total` is below the floor.
    pub fn violated(self, free: u64, total: u64) -> bool {
        match self {
            Floor::Absolute(min) => free < min,
            Floor::Percent(pct) => total > 0 && (free as f64) * 100.0 < pct * total as f64,
        }
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

/// What must be mounted at or above a path for it to count as mounted (`requireMountpoint`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Placement {
    /// `requireMountpoint: true`: the path itself is a mount point.
    MountPoint,
    /// The default: the path is on a mounted filesystem, at or below its mount point: not on the
    /// root filesystem, and not in an empty volume (a bind mount of a plain directory of a local
    /// filesystem, which is what a container sees once the mount it should carry is gone).
    #[default]
    Mounted,
    /// `requireMountpoint: false`: any directory; only a change of what it is on fails it.
    Anywhere,
}

impl Placement {
    fn from_flag(value: Option<bool>) -> Placement {
        match value {
            None => Placement::Mounted,
            Some(true) => Placement::MountPoint,
            Some(false) => Placement::Anywhere,
        }
    }
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
        }
    }
}

/// The validated configuration the service runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// At least one address. An unspecified IPv6 address (`[::]`) listens dual-stack.
    pub listen: Vec<SocketAddr>,
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
    /// How much `/metrics` tells about each mount (`metricsDetail`, `--metrics-detail`).
    pub metrics_detail: MetricsDetail,
    /// Connections served at once, over all clients (then capped by the open-file limit).
    pub max_connections: usize,
    /// Connections one client address may hold at once.
    pub max_connections_per_peer: usize,
    /// Empty: discover every real mount each round.
    pub mounts: Vec<MountSpec>,
    /// Where the settings came from, for the startup log line.
    pub config_file: Option<PathBuf>,
    pub watchdog: WatchdogSettings,
}

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
    /// A pod younger than this is not deleted until it is this old (restart-storm guard); 0: off.
    pub min_pod_age: Duration,
}

impl Default for WatchdogSettings {
    /// debrid-mount-monitor's defaults, and ours for `minPodAge`.
    fn default() -> Self {
        WatchdogSettings {
            enabled: false,
            restart_delay: Duration::ZERO,
            max_retries: 3,
            retry_backoff_initial: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(10),
            min_pod_age: Duration::from_secs(5 * 60),
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
            metrics_detail: MetricsDetail::Basic,
            max_connections: crate::server::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_peer: crate::limits::DEFAULT_PER_PEER,
            mounts: Vec::new(),
            config_file: None,
            watchdog: WatchdogSettings::default(),
        }
    }
}

/// Values from the environment and the command line (clap merges those two, flags winning).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub mounts: Vec<String>,
    pub listen: Option<String>,
    pub http_port: Option<u16>,
    pub check_interval: Option<String>,
    pub timeout: Option<String>,
    pub failure_threshold: Option<i64>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
    /// One round, then exit (debrid-mount-monitor's `--init-container-mode`): the settings
    /// only serving uses (interval, watchdog) are not checked.
    pub init_container_mode: bool,
    pub max_blocked_checks: Option<usize>,
    pub metrics_detail: Option<String>,
    pub max_connections: Option<usize>,
    pub max_connections_per_peer: Option<usize>,
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
    check_interval: Option<String>,
    #[serde(alias = "timeout")]
    read_timeout: Option<String>,
    shutdown_timeout: Option<String>,
    failure_threshold: Option<i64>,
    success_threshold: Option<i64>,
    http_port: Option<i64>,
    listen: Option<String>,
    log_level: Option<String>,
    log_format: Option<String>,
    canary_file: Option<String>,
    max_blocked_checks: Option<usize>,
    metrics_detail: Option<String>,
    max_connections: Option<usize>,
    max_connections_per_peer: Option<usize>,
    mounts: Option<Vec<FileMount>>,
    watchdog: Option<FileWatchdog>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileMount {
    name: Option<String>,
    path: Option<String>,
    canary_file: Option<String>,
    check_type: Option<String>,
    failure_threshold: Option<i64>,
    success_threshold: Option<i64>,
    fs_type: Option<String>,
    require_mountpoint: Option<bool>,
    expect: Option<String>,
    min_free: Option<serde_json::Value>,
    min_free_inodes: Option<serde_json::Value>,
}

/// debrid-mount-monitor's pod-restart watchdog, plus `minPodAge`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileWatchdog {
    enabled: Option<bool>,
    restart_delay: Option<String>,
    max_retries: Option<i64>,
    retry_backoff_initial: Option<String>,
    retry_backoff_max: Option<String>,
    min_pod_age: Option<String>,
}

/// Loads and validates the configuration.
pub fn load(overrides: &Overrides) -> Result<(Settings, Warnings), ConfigError> {
    let mut warnings = Warnings::new();
    let (mut file, file_path) = match &overrides.config {
        Some(path) => (read_file(path, &mut warnings)?, Some(path.clone())),
        None if Path::new("config.json").is_file() => {
            let path = PathBuf::from("config.json");
            (read_file(&path, &mut warnings)?, Some(path))
        }
        None => (FileConfig::default(), None),
    };
    warnings.append(&mut file.ignored);
    let mut settings = resolve(file, file_path.as_deref(), overrides)?;
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
        let (document, ignored) = crate::gojson::normalize(text, &json_schema())
            .map_err(|e| json_error(String::new(), e))?;
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

fn resolve(
    file: FileConfig,
    file_path: Option<&Path>,
    cli: &Overrides,
) -> Result<Settings, ConfigError> {
    let origin = |key: &str| match file_path {
        Some(path) => format!("config file {}: `{key}`", path.display()),
        None => format!("`{key}`"),
    };
    let mut s = Settings::default();
    // Where the interval and the timeout were set, for the errors about the two together.
    let mut interval_from = "`checkInterval` (default)".to_owned();
    let mut timeout_from = "`readTimeout` (default)".to_owned();
    let mut interval_set_by = "by default";

    // File values. Under Go's rules (config.json) a zero value is the default, as
    // debrid-mount-monitor reads it: `httpPort: 0` is 8080, `failureThreshold: 0` is 3, a zero or
    // negative duration is the default duration, `""` is the default string.
    let go = file.go_rules;
    let text = |v: &Option<String>| v.clone().filter(|v| !(go && v.is_empty()));
    if let Some(v) = &file.check_interval
        && let Some(d) = file_duration(v, go, &origin("checkInterval"))?
    {
        interval_from = origin("checkInterval");
        interval_set_by = "from `checkInterval`";
        s.check_interval = d;
    }
    if let Some(v) = &file.read_timeout
        && let Some(d) = file_duration(v, go, &origin("readTimeout"))?
    {
        timeout_from = origin("readTimeout");
        s.timeout = d;
    }
    if let Some(v) = &file.shutdown_timeout
        && let Some(d) = file_duration(v, go, &origin("shutdownTimeout"))?
    {
        s.shutdown_timeout = d;
    }
    match file.failure_threshold {
        Some(v) if go && v <= 0 => {}
        Some(v) => s.failure_threshold = threshold(v, &origin("failureThreshold"))?,
        None => {}
    }
    match file.success_threshold {
        Some(v) if go && v <= 0 => {}
        Some(v) => s.success_threshold = threshold(v, &origin("successThreshold"))?,
        None => {}
    }
    match file.http_port {
        Some(port) if go && port <= 0 => {}
        // One round serves nothing, and debrid-mount-monitor does not check the port then.
        Some(port) if cli.init_container_mode && u16::try_from(port).is_err() => {}
        Some(port) => set_port(&mut s.listen, port, &origin("httpPort"))?,
        None => {}
    }
    if let Some(v) = text(&file.listen) {
        s.listen = listen(&v, &origin("listen"))?;
    }
    if let Some(v) = text(&file.log_level) {
        s.log_level = log_level(&v, &origin("logLevel"))?;
    }
    if let Some(v) = text(&file.log_format) {
        s.log_format = Some(log_format(&v, &origin("logFormat"))?);
    }
    // One round restarts nothing: init-container mode leaves the watchdog alone, as
    // debrid-mount-monitor does.
    if let Some(w) = &file.watchdog
        && !cli.init_container_mode
    {
        s.watchdog = watchdog(w, &origin)?;
    }

    // Environment and flags (clap already let flags win over the environment).
    if let Some(v) = &cli.check_interval {
        interval_from = "--check-interval".to_owned();
        interval_set_by = "from --check-interval";
        s.check_interval = duration(v, &interval_from)?;
    }
    if let Some(v) = &cli.timeout {
        timeout_from = "--timeout".to_owned();
        s.timeout = duration(v, &timeout_from)?;
    }
    if let Some(v) = cli.failure_threshold {
        s.failure_threshold = threshold(v, "--failure-threshold")?;
    }
    // 0 is "not given", as debrid-mount-monitor's `--http-port` reads it.
    if let Some(port) = cli.http_port.filter(|&port| port > 0) {
        set_port(&mut s.listen, i64::from(port), "--http-port")?;
    }
    if let Some(v) = &cli.listen {
        s.listen = listen(v, "--listen")?;
    }
    if let Some(v) = &cli.log_level {
        s.log_level = log_level(v, "--log-level")?;
    }
    if let Some(v) = &cli.log_format {
        s.log_format = Some(log_format(v, "--log-format")?);
    }
    if let Some(v) = cli.max_blocked_checks.or(file.max_blocked_checks) {
        s.max_blocked_checks = v;
    }
    if let Some(v) = &cli.metrics_detail {
        s.metrics_detail = metrics_detail(v, "--metrics-detail")?;
    } else if let Some(v) = &file.metrics_detail {
        s.metrics_detail = metrics_detail(v, &origin("metricsDetail"))?;
    }
    let connections = [
        (
            cli.max_connections,
            file.max_connections,
            "--max-connections",
            "maxConnections",
            &mut s.max_connections,
        ),
        (
            cli.max_connections_per_peer,
            file.max_connections_per_peer,
            "--max-connections-per-peer",
            "maxConnectionsPerPeer",
            &mut s.max_connections_per_peer,
        ),
    ];
    for (flag, key, flag_name, key_name, setting) in connections {
        let (value, from) = match (flag, key) {
            (Some(v), _) => (v, flag_name.to_owned()),
            (None, Some(v)) => (v, origin(key_name)),
            (None, None) => continue,
        };
        if value == 0 {
            return err(format!(
                "{from}: 0 would refuse every client; set it to 1 or more"
            ));
        }
        *setting = value;
    }

    if s.timeout < Duration::from_millis(100) {
        return err(format!(
            "{timeout_from}: {:?} is below the 100ms minimum; set it to 100ms or more",
            s.timeout
        ));
    }
    // One round (init-container mode) has no interval, as in debrid-mount-monitor.
    if !cli.init_container_mode && s.check_interval < MIN_CHECK_INTERVAL {
        return err(format!(
            "{interval_from}: {:?} is below the {MIN_CHECK_INTERVAL:?} minimum; set it to {MIN_CHECK_INTERVAL:?} or more",
            s.check_interval
        ));
    }
    if !cli.init_container_mode && s.timeout >= s.check_interval {
        return err(format!(
            "{timeout_from}: {:?} must be at least 100ms and below the check interval ({:?} {interval_set_by}); change one of them",
            s.timeout, s.check_interval
        ));
    }

    // Mounts: the file's, then --mount's.
    let default_canary = file
        .canary_file
        .clone()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| DEFAULT_CANARY_FILE.to_owned());
    let mut mounts = Vec::new();
    for (i, m) in file.mounts.unwrap_or_default().into_iter().enumerate() {
        let at = |key: &str| origin(&format!("mounts[{i}].{key}"));
        mounts.push(file_mount(m, &default_canary, go, &s, &at)?);
    }
    for arg in &cli.mounts {
        for mount in split_mount_arg(arg) {
            let flag = format!("--mount {:?}", mount.join(","));
            mounts.push(flag_mount(&mount, &flag, &s)?);
        }
    }
    s.mounts = mounts;
    Ok(s)
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
    let name = m.name.filter(|n| !n.trim().is_empty());
    // `""` is the default check, and an empty canary name the global one.
    let check = match m.check_type.as_deref().unwrap_or("") {
        "canary" | "" => {
            let canary = m
                .canary_file
                .as_deref()
                .filter(|c| !c.is_empty())
                .unwrap_or(default_canary);
            DataCheck::Canary(path.join(canary.trim_start_matches('/')))
        }
        "directory" => DataCheck::Directory,
        "list" => DataCheck::List,
        "none" => DataCheck::None,
        other => {
            return err(format!(
                "{}: unknown check type {other:?}; use canary, directory, list or none",
                at("checkType")
            ));
        }
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
    let expect = match m.expect.as_deref() {
        None | Some("any") => Expect::Any,
        Some("rw") => Expect::ReadWrite,
        Some("ro") => Expect::ReadOnly,
        Some(other) => {
            return err(format!(
                "{}: {other:?} is not one of rw, ro, any",
                at("expect")
            ));
        }
    };
    Ok(MountSpec {
        name,
        path,
        shown_path,
        fs_type: m.fs_type.filter(|t| !t.is_empty()),
        placement: Placement::from_flag(m.require_mountpoint),
        expect,
        min_free: m
            .min_free
            .map(|v| floor(&v, true, &at("minFree")))
            .transpose()?,
        min_free_inodes: m
            .min_free_inodes
            .map(|v| floor(&v, false, &at("minFreeInodes")))
            .transpose()?,
        check,
        failure_threshold,
        success_threshold,
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

/// One mount of `--mount`: `[NAME=]PATH` and options, as [`split_mount_arg`] cut them.
fn flag_mount(segments: &[String], flag: &str, s: &Settings) -> Result<MountSpec, ConfigError> {
    let example = "e.g. --mount media=/mnt/media or --mount name=media,path=/mnt/media,fstype=fuse.rclone,min-free=5%";
    let mut name = None;
    let mut path = None;
    let mut file = FileMount::default();
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
        let at = |key: &str| format!("{flag}: `{key}`");
        match key {
            "name" => name = Some(value),
            "path" => path = Some(value),
            "fstype" | "fs-type" => file.fs_type = Some(value),
            "require-mountpoint" => {
                file.require_mountpoint = match value.as_str() {
                    "true" => Some(true),
                    "false" => Some(false),
                    "auto" => None,
                    _ => return err(format!("{}: {value:?} is not true, false or auto", at(key))),
                }
            }
            "expect" => file.expect = Some(value),
            "min-free" => file.min_free = Some(serde_json::Value::String(value)),
            "min-free-inodes" => file.min_free_inodes = Some(serde_json::Value::String(value)),
            "check" | "check-type" => file.check_type = Some(value),
            "canary" | "canary-file" => {
                file.check_type.get_or_insert_with(|| "canary".to_owned());
                file.canary_file = Some(value);
            }
            "failure-threshold" | "success-threshold" => {
                let n = value
                    .parse::<i64>()
                    .or_else(|_| err(format!("{}: {value:?} is not a whole number", at(key))))?;
                if key == "failure-threshold" {
                    file.failure_threshold = Some(n);
                } else {
                    file.success_threshold = Some(n);
                }
            }
            _ => unreachable!("every key of MOUNT_OPTIONS is handled"),
        }
    }
    if name.as_deref().is_some_and(|n| n.trim().is_empty())
        || path.as_deref().is_none_or(|p| p.trim().is_empty())
    {
        return err(format!(
            "{flag}: expected PATH, NAME=PATH or path=PATH with options; {example}"
        ));
    }
    // Flags check mountinfo and statfs only, unless a data check is asked for.
    file.check_type.get_or_insert_with(|| "none".to_owned());
    file.name = name;
    file.path = path;
    let at = |key: &str| format!("{flag}: `{key}`");
    file_mount(file, DEFAULT_CANARY_FILE, false, s, &at)
}

/// The longest interval or timeout accepted: longer ones are surely typos, and deadlines that
/// far out would overflow the clock arithmetic.
const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// A duration in Go's syntax (`"1m30s"`, `"-5s"`, `"300µs"`), or humantime's (`"1h 30m"`,
/// `"2min"`), which this program read before.
fn signed_duration(value: &str, what: &str) -> Result<i128, ConfigError> {
    match crate::duration::parse_go(value) {
        Ok(nanos) => Ok(i128::from(nanos)),
        Err(go_error) => humantime::parse_duration(value.trim())
            .map(|d| d.as_nanos() as i128)
            .or_else(|_| {
                err(format!(
                    "{what}: {value:?} is not a duration ({go_error}); write it like \"30s\", \"500ms\" or \"1m30s\""
                ))
            }),
    }
}

/// A duration from the config file: under Go's rules zero or negative is `None` (the default).
fn file_duration(value: &str, go: bool, what: &str) -> Result<Option<Duration>, ConfigError> {
    if go && signed_duration(value, what)? <= 0 {
        return Ok(None);
    }
    duration(value, what).map(Some)
}

fn duration(value: &str, what: &str) -> Result<Duration, ConfigError> {
    let nanos = signed_duration(value, what)?;
    if nanos < 0 {
        return err(format!(
            "{what}: {value:?} is negative; write a duration such as \"30s\""
        ));
    }
    let parsed = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
    if parsed > MAX_DURATION {
        return err(format!(
            "{what}: {value:?} is longer than the 24h maximum; write it like \"30s\" or \"5m\""
        ));
    }
    Ok(parsed)
}

/// debrid-mount-monitor's reading: a value of zero (or below) keeps the default, except
/// `minPodAge`, ours, where "0s" turns the guard off.
fn watchdog(
    w: &FileWatchdog,
    origin: &dyn Fn(&str) -> String,
) -> Result<WatchdogSettings, ConfigError> {
    let mut settings = WatchdogSettings::default();
    let positive = |value: &Option<String>, key: &str| -> Result<Option<Duration>, ConfigError> {
        match value {
            Some(v) => Ok(Some(duration(v, &origin(key))?).filter(|d| !d.is_zero())),
            None => Ok(None),
        }
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
    if let Some(v) = &w.min_pod_age {
        settings.min_pod_age = duration(v, &origin("watchdog.minPodAge"))?;
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

/// One or more comma-separated addresses. `:PORT` is every address, IPv4 and IPv6, as in Go.
fn listen(value: &str, what: &str) -> Result<Vec<SocketAddr>, ConfigError> {
    let mut addresses = Vec::new();
    for one in value.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        let parsed = match one.strip_prefix(':') {
            Some(port) => format!("[::]:{port}").parse(),
            None => one.parse(),
        };
        addresses.push(parsed.or_else(|_| {
            err(format!(
                "{what}: {one:?} is not an address; use IP:PORT such as [::]:8080, 0.0.0.0:8080, 127.0.0.1:8080 or :8080 (several: comma-separated)"
            ))
        })?);
    }
    if addresses.is_empty() {
        return err(format!(
            "{what}: no address given; use IP:PORT such as [::]:8080"
        ));
    }
    Ok(addresses)
}

/// `httpPort`/`--http-port`: that port on every listen address.
fn set_port(listen: &mut [SocketAddr], port: i64, what: &str) -> Result<(), ConfigError> {
    let port = u16::try_from(port)
        .or_else(|_| err(format!("{what}: {port} is not a port; use 1 to 65535")))?;
    for address in listen {
        address.set_port(port);
    }
    Ok(())
}

fn log_level(value: &str, what: &str) -> Result<LogLevel, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "debug" | "trace" => Ok(LogLevel::Debug),
        "info" => Ok(LogLevel::Info),
        "warn" | "warning" => Ok(LogLevel::Warn),
        "error" => Ok(LogLevel::Error),
        _ => err(format!(
            "{what}: {value:?} is not a log level; use debug, info, warn or error"
        )),
    }
}

fn metrics_detail(value: &str, what: &str) -> Result<MetricsDetail, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "basic" => Ok(MetricsDetail::Basic),
        "full" => Ok(MetricsDetail::Full),
        _ => err(format!(
            "{what}: {value:?} is not a metrics detail; use basic (about 16 series per mount) or full (about 50)"
        )),
    }
}

fn log_format(value: &str, what: &str) -> Result<LogFormat, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "json" => Ok(LogFormat::Json),
        "text" => Ok(LogFormat::Text),
        _ => err(format!(
            "{what}: {value:?} is not a log format; use json or text"
        )),
    }
}

/// "512MiB", "10GB", a plain byte count, or "5%"; inode floors are counts or percentages.
fn floor(value: &serde_json::Value, bytes: bool, what: &str) -> Result<Floor, ConfigError> {
    let text = match value {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.trim().to_owned(),
        _ => {
            return err(format!(
                "{what}: expected a string such as \"5%\" or \"512MiB\""
            ));
        }
    };
    if let Some(pct) = text.strip_suffix('%') {
        return match pct.trim().parse::<f64>() {
            Ok(p) if (0.0..=100.0).contains(&p) => Ok(Floor::Percent(p)),
            _ => err(format!(
                "{what}: {text:?} is not a percentage between 0% and 100%"
            )),
        };
    }
    let parsed = if bytes {
        text.parse::<bytesize::ByteSize>().ok().map(|b| b.as_u64())
    } else {
        text.parse::<u64>().ok()
    };
    match parsed {
        Some(v) => Ok(Floor::Absolute(v)),
        None if bytes => err(format!(
            "{what}: {text:?} is not a size; write it like \"512MiB\", \"10GB\" or \"5%\""
        )),
        None => err(format!(
            "{what}: {text:?} is not an inode count; write a number such as 10000, or \"2%\""
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_json(json: &str, cli: Overrides) -> Result<Settings, ConfigError> {
        let file = parse_file(json, Path::new("config.json"))?;
        resolve(file, Some(Path::new("config.json")), &cli)
    }

    const DEBRID_EXAMPLE: &str =
        include_str!("../../tests/fixtures/debrid-mount-monitor.config.example.json");

    #[test]
    fn debrid_example_loads_unchanged() {
        let s = from_json(DEBRID_EXAMPLE, Overrides::default()).unwrap();
        assert_eq!(s.check_interval, Duration::from_secs(30));
        assert_eq!(s.timeout, Duration::from_secs(5));
        assert_eq!(s.failure_threshold, 3);
        assert_eq!(s.listen[0].port(), 8080);
        assert_eq!(s.log_format, Some(LogFormat::Json));
        assert_eq!(s.mounts.len(), 2);
        let movies = &s.mounts[0];
        assert_eq!(movies.name.as_deref(), Some("movies"));
        assert_eq!(
            movies.check,
            DataCheck::Canary(PathBuf::from("/mnt/movies/.health-check"))
        );
        let tv = &s.mounts[1];
        assert_eq!(tv.check, DataCheck::Directory);
        assert_eq!(tv.failure_threshold, 5);
    }

    #[test]
    fn metrics_detail_from_file_and_flag() {
        let basic = from_json("{}", Overrides::default()).unwrap();
        assert_eq!(basic.metrics_detail, MetricsDetail::Basic, "the default");
        let file = r#"{"metricsDetail": "full"}"#;
        let full = from_json(file, Overrides::default()).unwrap();
        assert_eq!(full.metrics_detail, MetricsDetail::Full);
        let flag = Overrides {
            metrics_detail: Some("basic".into()),
            ..Default::default()
        };
        assert_eq!(
            from_json(file, flag).unwrap().metrics_detail,
            MetricsDetail::Basic,
            "the flag wins over the file"
        );
        let ConfigError(message) =
            from_json(r#"{"metricsDetail": "all"}"#, Overrides::default()).unwrap_err();
        assert_eq!(
            message,
            "config file config.json: `metricsDetail`: \"all\" is not a metrics detail; use basic (about 16 series per mount) or full (about 50)"
        );
    }

    #[test]
    fn connection_limits_from_file_and_flags() {
        let s = from_json("{}", Overrides::default()).unwrap();
        assert_eq!(s.max_connections_per_peer, crate::limits::DEFAULT_PER_PEER);
        assert_eq!(s.max_connections, crate::server::DEFAULT_MAX_CONNECTIONS);
        let json = r#"{"maxConnections":500,"maxConnectionsPerPeer":8}"#;
        let s = from_json(json, Overrides::default()).unwrap();
        assert_eq!((s.max_connections, s.max_connections_per_peer), (500, 8));
        let cli = Overrides {
            max_connections_per_peer: Some(16),
            ..Default::default()
        };
        assert_eq!(from_json(json, cli).unwrap().max_connections_per_peer, 16);
        let error = from_json(r#"{"maxConnectionsPerPeer":0}"#, Overrides::default())
            .unwrap_err()
            .0;
        assert!(error.contains("`maxConnectionsPerPeer`: 0"), "{error}");
        let cli = Overrides {
            max_connections: Some(0),
            ..Default::default()
        };
        assert!(
            from_json("{}", cli)
                .unwrap_err()
                .0
                .starts_with("--max-connections: 0")
        );
    }

    #[test]
    fn toml_uses_the_same_keys() {
        let text = r#"
checkInterval = "10s"
readTimeout = "2s"
[[mounts]]
name = "media"
path = "/mnt/media"
checkType = "none"
fsType = "fuse.rclone"
expect = "rw"
minFree = "5%"
minFreeInodes = 1000
"#;
        let file = parse_file(text, Path::new("c.toml")).unwrap();
        let s = resolve(file, None, &Overrides::default()).unwrap();
        assert_eq!(s.check_interval, Duration::from_secs(10));
        let m = &s.mounts[0];
        assert_eq!(m.fs_type.as_deref(), Some("fuse.rclone"));
        assert_eq!(m.expect, Expect::ReadWrite);
        assert_eq!(m.min_free, Some(Floor::Percent(5.0)));
        assert_eq!(m.min_free_inodes, Some(Floor::Absolute(1000)));
        assert_eq!(m.check, DataCheck::None);
    }

    #[test]
    fn precedence_defaults_file_then_overrides() {
        let json = r#"{"checkInterval":"20s","httpPort":9000,"logLevel":"warn"}"#;
        let s = from_json(json, Overrides::default()).unwrap();
        assert_eq!(s.check_interval, Duration::from_secs(20));
        assert_eq!(s.listen[0].port(), 9000);
        assert_eq!(s.log_level, LogLevel::Warn);
        assert_eq!(s.timeout, Duration::from_secs(5), "default kept");

        let cli = Overrides {
            check_interval: Some("40s".into()),
            http_port: Some(9100),
            ..Default::default()
        };
        let s = from_json(json, cli).unwrap();
        assert_eq!(s.check_interval, Duration::from_secs(40));
        assert_eq!(s.listen[0].port(), 9100);
        assert_eq!(s.log_level, LogLevel::Warn);

        let cli = Overrides {
            listen: Some("127.0.0.1:7000".into()),
            http_port: Some(9100),
            ..Default::default()
        };
        assert_eq!(
            from_json(json, cli).unwrap().listen,
            ["127.0.0.1:7000".parse().unwrap()]
        );
    }

    #[test]
    fn mount_flags() {
        let cli = Overrides {
            mounts: vec!["media=/mnt/media/".into(), "/srv/data".into()],
            ..Default::default()
        };
        let s = resolve(FileConfig::default(), None, &cli).unwrap();
        assert_eq!(s.mounts[0].label(), "media");
        assert_eq!(s.mounts[0].path, Path::new("/mnt/media"));
        assert_eq!(s.mounts[1].name, None);
        assert_eq!(s.mounts[1].label(), "/srv/data");
        assert_eq!(s.mounts[1].check, DataCheck::None);
    }

    fn flags(mounts: &[&str]) -> Result<Vec<MountSpec>, ConfigError> {
        let cli = Overrides {
            mounts: mounts.iter().map(|m| (*m).to_owned()).collect(),
            ..Default::default()
        };
        resolve(FileConfig::default(), None, &cli).map(|s| s.mounts)
    }

    #[test]
    fn every_per_mount_option_can_be_a_flag() {
        let m = flags(&[
            "media=/mnt/media,fstype=fuse.rclone,min-free=5%,min-free-inodes=1000,expect=ro,require-mountpoint=true,failure-threshold=2,success-threshold=3",
        ])
        .unwrap();
        assert_eq!(m.len(), 1);
        let m = &m[0];
        assert_eq!(m.label(), "media");
        assert_eq!(m.path, Path::new("/mnt/media"));
        assert_eq!(m.fs_type.as_deref(), Some("fuse.rclone"));
        assert_eq!(m.min_free, Some(Floor::Percent(5.0)));
        assert_eq!(m.min_free_inodes, Some(Floor::Absolute(1000)));
        assert_eq!(m.expect, Expect::ReadOnly);
        assert_eq!(m.placement, Placement::MountPoint);
        assert_eq!((m.failure_threshold, m.success_threshold), (2, 3));
        assert_eq!(m.check, DataCheck::None);

        let m = &flags(&["name=backup,path=/mnt/backup,canary=.mounted"]).unwrap()[0];
        assert_eq!(m.label(), "backup");
        assert_eq!(
            m.check,
            DataCheck::Canary(PathBuf::from("/mnt/backup/.mounted"))
        );
        let m = &flags(&["/srv/x,require-mountpoint=false,check=directory"]).unwrap()[0];
        assert_eq!(
            (m.placement, &m.check),
            (Placement::Anywhere, &DataCheck::Directory)
        );
        assert_eq!(flags(&["/srv/x"]).unwrap()[0].placement, Placement::Mounted);
    }

    #[test]
    fn paths_with_commas_and_equals_signs_still_work() {
        let m = flags(&["media=/mnt/a=b,c,fstype=nfs4"]).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].path, Path::new("/mnt/a=b,c"));
        assert_eq!(m[0].fs_type.as_deref(), Some("nfs4"));
        let m = flags(&["path=/srv/x,y=z"]).unwrap();
        assert_eq!(m[0].path, Path::new("/srv/x,y=z"));
    }

    #[test]
    fn one_value_holds_several_mounts() {
        // The environment variable's forms: `;` or a newline between mounts, and the old
        // comma-separated list of paths.
        for value in [
            "a=/x,fstype=tmpfs;b=/y",
            "a=/x,fstype=tmpfs\nb=/y",
            "a=/x,fstype=tmpfs,b=/y",
        ] {
            let m = flags(&[value]).unwrap();
            let got: Vec<(String, &Path, Option<&str>)> = m
                .iter()
                .map(|m| (m.label(), m.path.as_path(), m.fs_type.as_deref()))
                .collect();
            assert_eq!(
                got,
                [
                    ("a".to_owned(), Path::new("/x"), Some("tmpfs")),
                    ("b".to_owned(), Path::new("/y"), None)
                ],
                "{value:?}"
            );
        }
        assert_eq!(flags(&["/x,/y"]).unwrap().len(), 2);
    }

    #[test]
    fn bad_mount_options_say_what_is_wrong() {
        for (value, needle) in [
            ("media=/m,min-free=lots", "`minFree`"),
            ("media=/m,require-mountpoint=maybe", "true, false or auto"),
            ("media=/m,failure-threshold=x", "not a whole number"),
            ("name=media", "expected PATH"),
        ] {
            let e = flags(&[value]).unwrap_err().0;
            assert!(e.contains(needle), "{value}: {e}");
            assert!(e.contains("--mount"), "{value}: {e}");
        }
    }

    fn error_of(json: &str) -> String {
        from_json(json, Overrides::default()).unwrap_err().0
    }

    #[test]
    fn every_error_class_names_what_is_wrong() {
        let cases = [
            (r#"{"checkInterval": "#, "config.json"),
            (r#"{"checkInterval":"often"}"#, "`checkInterval`"),
            (r#"{"checkInterval":5}"#, "`checkInterval`"),
            (
                r#"{"mounts":[{"path":"/x","failureThreshold":-2}]}"#,
                "`mounts[0].failureThreshold`: -2 must be",
            ),
            (r#"{"mounts":[{"name":"a"}]}"#, "`mounts[0].path`"),
            (r#"{"httpPort":70000}"#, "`httpPort`: 70000 is not a port"),
            (r#"{"httpPort":"80"}"#, "`httpPort`"),
            ("[]", "config.json"),
            (r#"{"listen":"nope"}"#, "`listen`"),
            (
                r#"{"checkInterval":"100ms"}"#,
                "`checkInterval`: 100ms is below the 200ms minimum",
            ),
            (
                r#"{"checkInterval":"18446744073709551615s"}"#,
                "`checkInterval`: \"18446744073709551615s\" is longer than the 24h maximum",
            ),
            (
                r#"{"readTimeout":"30s"}"#,
                "config file config.json: `readTimeout`: 30s must be at least 100ms and below the check interval (30s by default)",
            ),
            (
                r#"{"mounts":[{"path":"/x","checkType":"ping"}]}"#,
                "`mounts[0].checkType`",
            ),
            (
                r#"{"mounts":[{"path":"/x","minFree":"lots"}]}"#,
                "`mounts[0].minFree`",
            ),
            (
                r#"{"mounts":[{"path":"/x","expect":"rx"}]}"#,
                "`mounts[0].expect`",
            ),
            (
                r#"{"watchdog":{"enabled":true,"restartDelay":"soon"}}"#,
                "`watchdog.restartDelay`: \"soon\" is not a duration",
            ),
            (r#"{"watchdog":{"minPodAge":"5"}}"#, "`watchdog.minPodAge`"),
            (r#"{"logLevel":"loud"}"#, "`logLevel`"),
        ];
        for (json, needle) in cases {
            let message = error_of(json);
            assert!(message.contains(needle), "{json}: {message}");
            assert!(!message.contains('\n'), "one line: {message}");
        }
    }

    /// config.json as debrid-mount-monitor's Go code reads it (COMPAT.md).
    #[test]
    fn json_is_read_with_go_rules() {
        let load = |json: &str| {
            let file = parse_file(json, Path::new("config.json")).unwrap();
            let ignored = file.ignored.clone();
            let s = resolve(file, Some(Path::new("config.json")), &Overrides::default()).unwrap();
            (s, ignored)
        };
        // Keys in any case, unknown keys warned about, the last of a repeated key.
        let (s, ignored) = load(
            r#"{"$schema": "https://example.com/s.json", "HttpPort": 9000, "debounceThreshold": 2,
                "FAILURETHRESHOLD": 4, "failureThreshold": 5,
                "mounts": [{"Name": "a/b", "PATH": "/mnt/a", "checkType": ""},
                           {"name": "a/b", "path": "./data/local", "CanaryFile": ""}]}"#,
        );
        assert_eq!(s.listen[0].port(), 9000);
        assert_eq!(s.failure_threshold, 5);
        assert_eq!(ignored.len(), 2, "{ignored:?}");
        assert!(
            ignored[0].starts_with("config file config.json: unknown key `$schema` ignored"),
            "{ignored:?}"
        );
        assert!(
            ignored[1].ends_with("did you mean `failureThreshold`?"),
            "{ignored:?}"
        );
        assert_eq!(s.mounts[0].name.as_deref(), Some("a/b"));
        assert_eq!(
            s.mounts[0].check,
            DataCheck::Canary("/mnt/a/.health-check".into())
        );
        assert_eq!(s.mounts[1].shown_path, "./data/local");
        assert!(s.mounts[1].path.is_absolute());
        assert_eq!(
            s.mounts[1].check,
            DataCheck::Canary(s.mounts[1].path.join(".health-check"))
        );
        assert_eq!(duplicate_names(&s.mounts).len(), 1);

        // Zero means the default.
        let (s, _) = load(
            r#"{"httpPort": 0, "failureThreshold": 0, "canaryFile": "", "checkInterval": "0s",
                "readTimeout": "-1s", "shutdownTimeout": "0", "logLevel": "", "logFormat": "",
                "mounts": [{"path": "/m", "failureThreshold": 0}]}"#,
        );
        let defaults = Settings::default();
        assert_eq!(s.listen, defaults.listen);
        assert_eq!(s.failure_threshold, 3);
        assert_eq!(s.check_interval, defaults.check_interval);
        assert_eq!(s.timeout, defaults.timeout);
        assert_eq!(s.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(s.log_level, LogLevel::Info);
        assert_eq!(s.log_format, None);
        assert_eq!(s.mounts[0].failure_threshold, 3);
        assert_eq!(
            s.mounts[0].check,
            DataCheck::Canary("/m/.health-check".into())
        );
        let (s, _) = load(r#"{"checkInterval": "-5s", "failureThreshold": -1, "httpPort": -1}"#);
        assert_eq!(s.check_interval, defaults.check_interval);
        assert_eq!(s.failure_threshold, 3);

        // Go's duration syntax.
        let (s, _) = load(r#"{"checkInterval": "1m30s", "readTimeout": "1.5s"}"#);
        assert_eq!(s.check_interval, Duration::from_secs(90));
        assert_eq!(s.timeout, Duration::from_millis(1500));
        let (s, _) = load(r#"{"readTimeout": "500000µs", "checkInterval": "2000000μs"}"#);
        assert_eq!(s.timeout, Duration::from_millis(500));
        assert_eq!(s.check_interval, Duration::from_secs(2));
        let (s, _) = load(
            r#"{"mounts": [{"path": "/m", "checkType": "directory"}, {"path": "/n", "checkType": "list"}]}"#,
        );
        assert_eq!(s.mounts[0].check, DataCheck::Directory);
        assert_eq!(s.mounts[1].check, DataCheck::List);
    }

    #[test]
    fn toml_stays_strict() {
        for (text, needle) in [
            ("bogus = 1", "unknown field `bogus`"),
            ("HttpPort = 1", "unknown field `HttpPort`"),
            ("failureThreshold = 0", "`failureThreshold`: 0 must be"),
            ("checkInterval = \"-5s\"", "negative"),
        ] {
            let e = parse_file(text, Path::new("c.toml"))
                .and_then(|file| resolve(file, Some(Path::new("c.toml")), &Overrides::default()))
                .unwrap_err();
            assert!(e.0.contains(needle), "{text}: {}", e.0);
        }
    }

    #[test]
    fn init_container_mode_skips_the_serving_checks() {
        let json =
            r#"{"checkInterval": "100ms", "readTimeout": "5s", "watchdog": {"enabled": true}}"#;
        assert!(from_json(json, Overrides::default()).is_err());
        let once = Overrides {
            init_container_mode: true,
            ..Default::default()
        };
        let s = from_json(json, once.clone()).unwrap();
        assert_eq!(s.timeout, Duration::from_secs(5));
        assert!(from_json(r#"{"httpPort": 70000}"#, once.clone()).is_ok());
        // The timeout is still checked: a round needs one.
        assert!(from_json(r#"{"readTimeout": "50ms"}"#, once).is_err());
    }

    #[test]
    fn listen_takes_several_addresses_and_go_ports() {
        let cli = Overrides {
            listen: Some("127.0.0.1:1, [::1]:2,:3".into()),
            ..Default::default()
        };
        let s = from_json("{}", cli).unwrap();
        let want: Vec<SocketAddr> = ["127.0.0.1:1", "[::1]:2", "[::]:3"]
            .map(|a| a.parse().unwrap())
            .to_vec();
        assert_eq!(s.listen, want);
        assert_eq!(Settings::default().listen, ["[::]:8080".parse().unwrap()]);
        let cli = Overrides {
            http_port: Some(0),
            ..Default::default()
        };
        assert_eq!(
            from_json(r#"{"httpPort": 9000}"#, cli).unwrap().listen[0].port(),
            9000
        );
    }

    #[test]
    fn disabled_watchdog_is_accepted() {
        let json = r#"{"watchdog":{"enabled":false,"restartDelay":"30s","maxRetries":3,"retryBackoffInitial":"1s","retryBackoffMax":"1m"}}"#;
        let s = from_json(json, Overrides::default()).unwrap();
        assert!(!s.watchdog.enabled);
        assert_eq!(s.watchdog.restart_delay, Duration::from_secs(30));
    }

    #[test]
    fn watchdog_keys_and_defaults() {
        let s = from_json(r#"{"watchdog":{"enabled":true}}"#, Overrides::default()).unwrap();
        assert_eq!(
            s.watchdog,
            WatchdogSettings {
                enabled: true,
                ..WatchdogSettings::default()
            }
        );
        assert_eq!(s.watchdog.max_retries, 3);
        assert_eq!(s.watchdog.retry_backoff_initial, Duration::from_millis(100));
        assert_eq!(s.watchdog.retry_backoff_max, Duration::from_secs(10));
        assert_eq!(s.watchdog.min_pod_age, Duration::from_secs(300));
        assert_eq!(s.watchdog.restart_delay, Duration::ZERO);
        assert!(!Settings::default().watchdog.enabled, "off by default");

        let json = r#"{"watchdog":{"enabled":true,"restartDelay":"2s","maxRetries":5,
            "retryBackoffInitial":"250ms","retryBackoffMax":"4s","minPodAge":"10m"}}"#;
        let w = from_json(json, Overrides::default()).unwrap().watchdog;
        assert_eq!(
            w,
            WatchdogSettings {
                enabled: true,
                restart_delay: Duration::from_secs(2),
                max_retries: 5,
                retry_backoff_initial: Duration::from_millis(250),
                retry_backoff_max: Duration::from_secs(4),
                min_pod_age: Duration::from_secs(600),
            }
        );
    }

    #[test]
    fn watchdog_zero_means_default_except_min_pod_age() {
        let json = r#"{"watchdog":{"enabled":true,"restartDelay":"0s","maxRetries":0,
            "retryBackoffInitial":"0s","retryBackoffMax":"0s","minPodAge":"0s"}}"#;
        let w = from_json(json, Overrides::default()).unwrap().watchdog;
        assert_eq!(
            w,
            WatchdogSettings {
                enabled: true,
                min_pod_age: Duration::ZERO,
                ..WatchdogSettings::default()
            }
        );
        let w = from_json(r#"{"watchdog":{"maxRetries":-4}}"#, Overrides::default())
            .unwrap()
            .watchdog;
        assert_eq!(w.max_retries, 3);
    }

    #[test]
    fn watchdog_backoff_is_checked_only_for_serving() {
        let json = r#"{"watchdog":{"enabled":true,"retryBackoffInitial":"20s"}}"#;
        let s = from_json(json, Overrides::default()).expect("loads for `check`");
        let e = s.check_serve().unwrap_err().0;
        assert!(
            e.contains(
                "`watchdog.retryBackoffMax`: 10s is below `watchdog.retryBackoffInitial` (20s)"
            ),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        assert!(Settings::default().check_serve().is_ok());
    }

    #[test]
    fn bad_flags_are_errors() {
        let bad = [
            Overrides {
                listen: Some("localhost".into()),
                ..Default::default()
            },
            Overrides {
                timeout: Some("5".into()),
                ..Default::default()
            },
            Overrides {
                mounts: vec!["name=".into()],
                ..Default::default()
            },
            Overrides {
                failure_threshold: Some(0),
                ..Default::default()
            },
        ];
        for cli in bad {
            let e = resolve(FileConfig::default(), None, &cli).unwrap_err();
            assert!(e.0.contains("--"), "{}", e.0);
        }
    }

    #[test]
    fn file_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        let e = load(&Overrides {
            config: Some(missing),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.0.contains("missing.json"), "{}", e.0);

        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; 1024 * 1024 + 1]).unwrap();
        let e = load(&Overrides {
            config: Some(big),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.0.contains("1 MiB"), "{}", e.0);

        use std::os::unix::fs::PermissionsExt;
        let open = dir.path().join("open.json");
        std::fs::write(&open, "{}").unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o666)).unwrap();
        let (_, warnings) = load(&Overrides {
            config: Some(open),
            ..Default::default()
        })
        .unwrap();
        assert!(warnings[0].contains("world-writable"));
    }

    #[test]
    fn floors() {
        assert!(Floor::Percent(5.0).violated(4, 100));
        assert!(!Floor::Percent(5.0).violated(5, 100));
        assert!(!Floor::Percent(5.0).violated(0, 0));
        assert!(Floor::Absolute(10).violated(9, 0));
        let v = serde_json::Value::String("512MiB".into());
        assert_eq!(floor(&v, true, "x").unwrap(), Floor::Absolute(512 << 20));
    }
}

/// Fuzzing the loader: whatever the file or the flags say, loading ends in settings or in a
/// one-line error, never in a panic. `PROPTEST_CASES` sets the number of cases of each property
/// (default 2,000).
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;
    use serde_json::Value;

    fn cases() -> u32 {
        crate::proptest_cases(2_000)
    }

    /// Every key, with values (as JSON) that it accepts, so that most documents get past the
    /// first check and exercise the later ones.
    type Keys = &'static [(&'static str, &'static [&'static str])];
    const KEYS: Keys = &[
        ("checkInterval", &[r#""30s""#, r#""2s""#, r#""1m30s""#]),
        ("readTimeout", &[r#""5s""#, r#""500ms""#]),
        ("timeout", &[r#""1s""#]),
        ("shutdownTimeout", &[r#""30s""#, r#""0s""#]),
        ("failureThreshold", &["1", "3", "0"]),
        ("successThreshold", &["1", "2"]),
        ("httpPort", &["8080", "0", "65535"]),
        (
            "listen",
            &[r#"":8080""#, r#""127.0.0.1:0""#, r#""[::]:9000""#],
        ),
        ("logLevel", &[r#""debug""#, r#""WARN""#]),
        ("logFormat", &[r#""json""#, r#""text""#]),
        ("canaryFile", &[r#"".health-check""#, r#""/x/y""#]),
    ];
    const MOUNT_KEYS: Keys = &[
        ("name", &[r#""media""#, r#""tv""#, r#""""#, r#""a/b""#]),
        (
            "path",
            &[
                r#""/mnt/media""#,
                r#""/mnt/tv/../tv2""#,
                r#""rel""#,
                r#""/""#,
            ],
        ),
        ("canaryFile", &[r#""ok""#, r#""/abs""#]),
        ("checkType", &[r#""canary""#, r#""directory""#, r#""none""#]),
        ("failureThreshold", &["0", "2"]),
        ("successThreshold", &["0", "3"]),
        ("fsType", &[r#""fuse.rclone""#, r#""""#]),
        ("requireMountpoint", &["true", "false"]),
        ("expect", &[r#""rw""#, r#""ro""#, r#""any""#]),
        ("minFree", &[r#""5%""#, r#""512MiB""#, "1000000", r#""0%""#]),
        ("minFreeInodes", &[r#""2%""#, "10000"]),
    ];

    /// Values near and far from what each key accepts.
    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-3i64..100_000).prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            prop::sample::select(
                &[
                    "30s",
                    "1s",
                    "500ms",
                    "0s",
                    "1m30s",
                    "-5s",
                    "5",
                    "18446744073709551615s",
                    "9999999999999h",
                    "5%",
                    "-1%",
                    "101%",
                    "NaN%",
                    "512MiB",
                    "10GB",
                    "99999999 EiB",
                    ":8080",
                    "0.0.0.0:80",
                    "[::]:8080",
                    ":99999",
                    "rw",
                    "ro",
                    "any",
                    "canary",
                    "directory",
                    "none",
                    "json",
                    "text",
                    "debug",
                    "/mnt/a",
                    "a/b",
                    "",
                    " ",
                    "..",
                ][..]
            )
            .prop_map(Value::from),
            any::<String>().prop_map(Value::from),
        ]
    }

    /// A key and its value: mostly a known key with a value it accepts, sometimes a known key
    /// with any value, rarely an unknown key.
    fn entry(keys: Keys) -> impl Strategy<Value = (String, Value)> {
        let known = move || prop::sample::select(keys);
        prop_oneof![
            12 => known().prop_flat_map(|(key, values)| {
                prop::sample::select(values).prop_map(move |v| {
                    (key.to_owned(), serde_json::from_str(v).expect("valid JSON in the table"))
                })
            }),
            4 => (known().prop_map(|(key, _)| key.to_owned()), scalar()),
            1 => ("[a-zA-Z]{1,12}", scalar()),
        ]
    }

    fn object(keys: Keys, len: std::ops::Range<usize>) -> impl Strategy<Value = Value> {
        vec(entry(keys), len).prop_map(|entries| Value::Object(entries.into_iter().collect()))
    }

    fn mount() -> impl Strategy<Value = Value> {
        object(MOUNT_KEYS, 0..8)
    }

    fn document() -> impl Strategy<Value = Value> {
        (
            object(KEYS, 0..6),
            prop::option::of(vec(mount(), 0..4)),
            prop::option::of(btree_map(
                prop::sample::select(&["enabled", "restartDelay", "maxRetries", "x"][..]),
                scalar(),
                0..3,
            )),
        )
            .prop_map(|(top, mounts, watchdog)| {
                let Value::Object(mut doc) = top else {
                    unreachable!("object() makes objects")
                };
                if let Some(mounts) = mounts {
                    doc.insert("mounts".into(), Value::Array(mounts));
                }
                if let Some(w) = watchdog {
                    let w = w.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                    doc.insert("watchdog".into(), Value::Object(w));
                }
                Value::Object(doc)
            })
    }

    /// The same document as TOML, written by hand: the `toml` crate is built without its
    /// serializer.
    fn to_toml(doc: &Value) -> String {
        fn value(v: &Value) -> Option<String> {
            match v {
                Value::Null | Value::Object(_) => None,
                Value::Bool(b) => Some(b.to_string()),
                Value::Number(n) if n.as_f64().is_some_and(|f| !f.is_finite()) => None,
                Value::Number(n) if n.is_f64() && !n.to_string().contains(['.', 'e', 'E']) => {
                    Some(format!("{n}.0"))
                }
                Value::Number(n) => Some(n.to_string()),
                // A JSON string literal is a TOML basic string.
                Value::String(_) => Some(v.to_string()),
                Value::Array(items) => {
                    let items: Vec<String> = items.iter().filter_map(value).collect();
                    Some(format!("[{}]", items.join(", ")))
                }
            }
        }
        fn table(out: &mut String, map: &serde_json::Map<String, Value>) {
            for (k, v) in map {
                if let Some(v) = value(v) {
                    out.push_str(&format!("{} = {v}\n", Value::from(k.as_str())));
                }
            }
        }
        let mut out = String::new();
        let Value::Object(doc) = doc else {
            return out;
        };
        table(&mut out, doc);
        if let Some(Value::Object(w)) = doc.get("watchdog") {
            out.push_str("[watchdog]\n");
            table(&mut out, w);
        }
        if let Some(Value::Array(mounts)) = doc.get("mounts") {
            for m in mounts {
                out.push_str("[[mounts]]\n");
                if let Value::Object(m) = m {
                    table(&mut out, m);
                }
            }
        }
        out
    }

    fn overrides() -> impl Strategy<Value = Overrides> {
        let text = || {
            prop::option::of(prop_oneof![
                scalar().prop_map(|v| v.to_string()),
                any::<String>()
            ])
        };
        (
            vec(any::<String>(), 0..3),
            text(),
            prop::option::of(any::<u16>()),
            text(),
            text(),
            prop::option::of(any::<i64>()),
            text(),
            text(),
        )
            .prop_map(
                |(
                    mounts,
                    listen,
                    http_port,
                    check_interval,
                    timeout,
                    failure_threshold,
                    log_level,
                    log_format,
                )| Overrides {
                    config: None,
                    mounts,
                    listen,
                    http_port,
                    check_interval,
                    timeout,
                    failure_threshold,
                    log_level,
                    log_format,
                    init_container_mode: false,
                    max_blocked_checks: None,
                    metrics_detail: None,
                    max_connections: None,
                    max_connections_per_peer: None,
                },
            )
    }

    /// Loads `text` as the file `name` would be: settings, or one line naming the file.
    fn load_text(text: &str, name: &str, cli: &Overrides) -> Result<(), TestCaseError> {
        let path = Path::new(name);
        let result = parse_file(text, path).and_then(|file| resolve(file, Some(path), cli));
        if let Err(ConfigError(message)) = result {
            prop_assert!(!message.contains('\n'), "more than one line: {message:?}");
            prop_assert!(
                message.contains(name) || message.contains("--") || message.contains("(default)"),
                "names no file, key or flag: {message:?}"
            );
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases()))]

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            load_text(&text, "config.json", &Overrides::default())?;
            load_text(&text, "config.toml", &Overrides::default())?;
        }

        #[test]
        fn structured_json_never_panics(doc in document(), cli in overrides()) {
            load_text(&doc.to_string(), "config.json", &Overrides::default())?;
            load_text(&doc.to_string(), "config.json", &cli)?;
        }

        #[test]
        fn structured_toml_never_panics(doc in document(), cli in overrides()) {
            load_text(&to_toml(&doc), "config.toml", &Overrides::default())?;
            load_text(&to_toml(&doc), "config.toml", &cli)?;
        }
    }
}
