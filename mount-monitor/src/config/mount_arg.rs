//! The `--mount` parser: `[NAME=]PATH` and options, several mounts in one value (also
//! `MOUNT_MONITOR_MOUNTS`), read into the config file's per-mount keys by the same `FromStr`s.

use super::file::FileMount;
use super::merge::file_mount;
use super::{
    CheckType, ConfigError, DEFAULT_CANARY_FILE, MountSpec, Placement, Settings, err, go_bool,
};

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
pub(super) fn flag_mount(
    segments: &[String],
    flag: &str,
    s: &Settings,
) -> Result<MountSpec, ConfigError> {
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
