//! The merge: the config file and the command line each become a [`Layer`], and [`Layer::over`]
//! is the one place they are stacked; then the settings with rules of their own (the interval
//! and the timeout together, the addresses and the port, the mounts, the watchdog).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::mountinfo::normalize;

use super::file::{FileConfig, FileMount, FileWatchdog};
use super::mount_arg::{flag_mount, split_mount_arg};
use super::settings::Values;
use super::table::threshold;
use super::{
    CheckType, ConfigError, DEFAULT_CANARY_FILE, DataCheck, Expect, GoDuration, MIN_CHECK_INTERVAL,
    MountSpec, Overrides, Placement, Settings, Warnings, WatchdogSettings, at, err,
};

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
    http_port: Option<u16>,
    listen: Option<Vec<SocketAddr>>,
    /// The settings of the field table (`settings`).
    values: Values,
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
            http_port,
            listen: file.listen.clone().map(|l| l.0),
            values: Values::file(file, origin)?,
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
            // 0 is "not given", as debrid-mount-monitor's `--http-port` reads it.
            http_port: cli.http_port.filter(|&port| port > 0),
            listen: (!cli.listen.is_empty()).then(|| {
                cli.listen
                    .iter()
                    .flat_map(|l| l.0.iter().copied())
                    .collect()
            }),
            values: Values::flags(cli)?,
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
            http_port: match self.listen {
                Some(_) => self.http_port,
                None => self.http_port.or(below.http_port),
            },
            listen: self.listen.or(below.listen),
            values: self.values.over(below.values),
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
        let mut settings = Settings {
            listen,
            check_interval: interval.value,
            timeout: timeout.value,
            ..d
        };
        self.values.apply(&mut settings);
        Ok(settings)
    }
}

pub(super) fn resolve(
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

pub(super) fn file_mount(
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

/// `httpPort`: a port, 1 to 65535.
fn port_number(port: i64, what: &str) -> Result<u16, ConfigError> {
    u16::try_from(port).or_else(|_| err(format!("{what}: {port} is not a port; use 1 to 65535")))
}
