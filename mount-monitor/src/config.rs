//! Configuration: defaults < config file (JSON or TOML) < environment < flags, validated into
//! [`Settings`]. The JSON schema is debrid-mount-monitor's `config.json`, extended.
//!
//! By stage: `settings` is the model and the field table that declares each setting once (its
//! mechanism in `table`); `value` reads every value, by one `FromStr` wherever it is written;
//! `file` reads the config file; the flags are `Overrides`, generated from the table; `mount_arg`
//! parses `--mount`; `merge` turns the file and the command line each into a layer and stacks
//! them. [`load`] runs the stages.

use std::path::{Path, PathBuf};

mod file;
mod merge;
mod mount_arg;
mod settings;
mod table;
mod value;

use file::{FileConfig, read_file};
use merge::resolve;

pub use merge::duplicate_names;
pub use mount_arg::split_mount_arg;
pub use settings::{
    DEFAULT_CANARY_FILE, DEFAULT_LISTEN, DEFAULT_MAX_BLOCKED_CHECKS, DEFAULT_WORKER_THREADS,
    DataCheck, MAX_WORKER_THREADS, MIN_CHECK_INTERVAL, MountSpec, Overrides, Settings, WAIT_RETRY,
    WatchdogSettings, default_worker_threads,
};
pub use value::{
    CheckType, Expect, Floor, GoDuration, InodeFloor, Listen, LogFormat, LogLevel, MAX_DURATION,
    MetricsDetail, Placement, SpaceFloor, go_bool,
};

#[cfg(test)]
use file::parse_file;

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

/// Non-fatal findings of loading, logged once logging is set up.
pub type Warnings = Vec<String>;

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

#[cfg(test)]
mod tests;

/// Fuzzing the loader: whatever the file or the flags say, loading ends in settings or in a
/// one-line error, never in a panic. `PROPTEST_CASES` sets the number of cases of each property
/// (default 2,000).
#[cfg(test)]
mod fuzz;
