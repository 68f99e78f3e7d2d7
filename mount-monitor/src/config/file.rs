//! Reading the config file: JSON as debrid-mount-monitor's Go code reads it ([`crate::gojson`]),
//! or TOML, strictly; at most 1 MiB; a warning when anyone may write it.

use std::path::Path;

use serde::Deserialize;

use super::{
    CheckType, ConfigError, Expect, GoDuration, InodeFloor, Listen, LogFormat, LogLevel,
    MetricsDetail, SpaceFloor, Warnings, err,
};

const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The config file as written (camelCase keys). TOML is read strictly: unknown keys are errors.
/// JSON is read as debrid-mount-monitor's Go code reads it ([`crate::gojson`]): unknown keys are
/// warnings, and a zero value means the default.
///
/// A field of the settings table (`settings`) has the entry's name and read type here; the order
/// of the fields is the order serde names the keys in when it refuses an unknown one.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct FileConfig {
    /// Read with Go's rules (a JSON file).
    #[serde(skip)]
    pub(super) go_rules: bool,
    /// Keys ignored under Go's rules, one warning each.
    #[serde(skip)]
    pub(super) ignored: Vec<String>,
    pub(super) check_interval: Option<GoDuration>,
    #[serde(alias = "timeout")]
    pub(super) read_timeout: Option<GoDuration>,
    pub(super) shutdown_timeout: Option<GoDuration>,
    pub(super) failure_threshold: Option<i64>,
    pub(super) success_threshold: Option<i64>,
    pub(super) http_port: Option<i64>,
    pub(super) listen: Option<Listen>,
    pub(super) log_level: Option<LogLevel>,
    pub(super) log_format: Option<LogFormat>,
    pub(super) canary_file: Option<String>,
    pub(super) max_blocked_checks: Option<usize>,
    pub(super) worker_threads: Option<usize>,
    pub(super) metrics_detail: Option<MetricsDetail>,
    pub(super) max_connections: Option<usize>,
    pub(super) max_connections_per_peer: Option<usize>,
    pub(super) mounts: Option<Vec<FileMount>>,
    pub(super) watchdog: Option<FileWatchdog>,
    pub(super) wait_timeout: Option<GoDuration>,
    pub(super) docker_actions: Option<bool>,
}

/// One entry of `mounts`; `--mount`'s options are read into it too (`mount_arg`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct FileMount {
    pub(super) name: Option<String>,
    pub(super) path: Option<String>,
    pub(super) canary_file: Option<String>,
    pub(super) check_type: Option<CheckType>,
    pub(super) failure_threshold: Option<i64>,
    pub(super) success_threshold: Option<i64>,
    pub(super) fs_type: Option<String>,
    pub(super) require_mountpoint: Option<bool>,
    pub(super) expect: Option<Expect>,
    pub(super) min_free: Option<SpaceFloor>,
    pub(super) min_free_inodes: Option<InodeFloor>,
    pub(super) optional: Option<bool>,
}

/// debrid-mount-monitor's pod-restart watchdog, plus `minPodAge`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct FileWatchdog {
    pub(super) enabled: Option<bool>,
    pub(super) restart_delay: Option<GoDuration>,
    pub(super) max_retries: Option<i64>,
    pub(super) retry_backoff_initial: Option<GoDuration>,
    pub(super) retry_backoff_max: Option<GoDuration>,
    pub(super) min_pod_age: Option<GoDuration>,
}

pub(super) fn read_file(path: &Path, warnings: &mut Warnings) -> Result<FileConfig, ConfigError> {
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

pub(super) fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
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
