//! The value types of the configuration. Each has one `FromStr`, and both the config file (serde
//! reads them through it) and the command line (clap picks `FromStr` as its value parser) use it:
//! a value means the same, and is refused in the same words, wherever it is written. Where it was
//! written (`--timeout`, ``config file c.json: `readTimeout` ``) is added by whoever reports the
//! error: serde_path_to_error for the file, clap for the flags.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// The longest interval or timeout accepted: longer ones are surely typos, and deadlines that far
/// out would overflow the clock arithmetic.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// A duration as written: Go's syntax (`"1m30s"`, `"-5s"`, `"300µs"`), or humantime's (`"1h 30m"`,
/// `"2min"`), which this program read before. It keeps its sign, because `config.json` reads a
/// negative duration as the default (Go's rules); [`GoDuration::non_negative`] refuses it
/// everywhere else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoDuration {
    nanos: i128,
    text: String,
}

impl FromStr for GoDuration {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let nanos = match crate::duration::parse_go(value) {
            Ok(nanos) => i128::from(nanos),
            Err(go_error) => humantime::parse_duration(value.trim())
                .map(|d| d.as_nanos() as i128)
                .map_err(|_| {
                    format!(
                        "{value:?} is not a duration ({go_error}); write it like \"30s\", \"500ms\" or \"1m30s\""
                    )
                })?,
        };
        if nanos > MAX_DURATION.as_nanos() as i128 {
            return Err(format!(
                "{value:?} is longer than the 24h maximum; write it like \"30s\" or \"5m\""
            ));
        }
        Ok(GoDuration {
            nanos,
            text: value.to_owned(),
        })
    }
}

impl GoDuration {
    /// Above zero: under Go's rules, zero and below are the default.
    pub fn is_positive(&self) -> bool {
        self.nanos > 0
    }

    pub fn non_negative(&self) -> Result<Duration, String> {
        u64::try_from(self.nanos)
            .map(Duration::from_nanos)
            .map_err(|_| {
                format!(
                    "{:?} is negative; write a duration such as \"30s\"",
                    self.text
                )
            })
    }
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

    /// `"5%"`, or what `absolute` reads.
    fn parse(
        text: &str,
        absolute: impl FnOnce(&str) -> Option<u64>,
    ) -> Option<Result<Floor, String>> {
        let text = text.trim();
        if let Some(pct) = text.strip_suffix('%') {
            return Some(match pct.trim().parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => Ok(Floor::Percent(p)),
                _ => Err(format!("{text:?} is not a percentage between 0% and 100%")),
            });
        }
        absolute(text).map(|v| Ok(Floor::Absolute(v)))
    }
}

/// A free-space floor (`minFree`, `min-free=`): `"512MiB"`, `"10GB"`, a byte count, or `"5%"`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpaceFloor(pub Floor);

impl FromStr for SpaceFloor {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bytes = |t: &str| t.parse::<bytesize::ByteSize>().ok().map(|b| b.as_u64());
        Floor::parse(text, bytes)
            .unwrap_or_else(|| {
                Err(format!(
                    "{:?} is not a size; write it like \"512MiB\", \"10GB\" or \"5%\"",
                    text.trim()
                ))
            })
            .map(SpaceFloor)
    }
}

/// A free-inode floor (`minFreeInodes`, `min-free-inodes=`): a count, or `"2%"`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InodeFloor(pub Floor);

impl FromStr for InodeFloor {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Floor::parse(text, |t| t.parse::<u64>().ok())
            .unwrap_or_else(|| {
                Err(format!(
                    "{:?} is not an inode count; write a number such as 10000, or \"2%\"",
                    text.trim()
                ))
            })
            .map(InodeFloor)
    }
}

/// What the mount's read-write state must be (`expect`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Any,
    ReadWrite,
    ReadOnly,
}

impl FromStr for Expect {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "any" => Ok(Expect::Any),
            "rw" => Ok(Expect::ReadWrite),
            "ro" => Ok(Expect::ReadOnly),
            other => Err(format!("{other:?} is not one of rw, ro, any")),
        }
    }
}

/// The data-path check asked for (`checkType`, `check=`); see [`super::DataCheck`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckType {
    Canary,
    Directory,
    List,
    None,
}

impl FromStr for CheckType {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "canary" => Ok(CheckType::Canary),
            "directory" => Ok(CheckType::Directory),
            "list" => Ok(CheckType::List),
            "none" => Ok(CheckType::None),
            other => Err(format!(
                "unknown check type {other:?}; use canary, directory, list or none"
            )),
        }
    }
}

/// What must be mounted at or above a path for it to count as mounted (`requireMountpoint`,
/// `require-mountpoint=true|false|auto`).
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
    pub fn from_flag(value: Option<bool>) -> Placement {
        match value {
            None => Placement::Mounted,
            Some(true) => Placement::MountPoint,
            Some(false) => Placement::Anywhere,
        }
    }
}

impl FromStr for Placement {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "true" => Ok(Placement::MountPoint),
            "false" => Ok(Placement::Anywhere),
            "auto" => Ok(Placement::Mounted),
            _ => Err(format!("{value:?} is not true, false or auto")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "debug" | "trace" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" | "warning" => Ok(LogLevel::Warn),
            "error" => Ok(LogLevel::Error),
            _ => Err(format!(
                "{value:?} is not a log level; use debug, info, warn or error"
            )),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            _ => Err(format!("{value:?} is not a log format; use json or text")),
        }
    }
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

impl FromStr for MetricsDetail {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "basic" => Ok(MetricsDetail::Basic),
            "full" => Ok(MetricsDetail::Full),
            _ => Err(format!(
                "{value:?} is not a metrics detail; use basic (about 16 series per mount) or full (about 50)"
            )),
        }
    }
}

/// Addresses to serve on (`listen`, `--listen`), comma-separated. `:PORT` is every address, IPv4
/// and IPv6, as in Go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen(pub Vec<SocketAddr>);

impl FromStr for Listen {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let mut addresses = Vec::new();
        for one in value.split(',').map(str::trim).filter(|v| !v.is_empty()) {
            let parsed = match one.strip_prefix(':') {
                Some(port) => format!("[::]:{port}").parse(),
                None => one.parse(),
            };
            addresses.push(parsed.map_err(|_| {
                format!(
                    "{one:?} is not an address; use IP:PORT such as [::]:8080, 0.0.0.0:8080, 127.0.0.1:8080 or :8080 (several: comma-separated)"
                )
            })?);
        }
        if addresses.is_empty() {
            return Err("no address given; use IP:PORT such as [::]:8080".to_owned());
        }
        Ok(Listen(addresses))
    }
}

/// A boolean as Go's `strconv.ParseBool` (and so a Go bool flag) reads it.
pub fn go_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("{value:?} is not a boolean; use true or false")),
    }
}

/// `Deserialize` through `FromStr`, from a string; with `numbers`, a number too, read as its text
/// (`"minFree": 1000000`). Durations take no numbers: Go refuses `"checkInterval": 5`. Each type
/// reads a [`Raw`] and parses it, so that the deserializers' generic code exists once, not once
/// per type (68 KiB of the release binary).
macro_rules! deserialize_from_str {
    ($($ty:ty: $expecting:literal, numbers: $numbers:literal;)*) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                Raw::deserialize(deserializer)?
                    .parse($numbers, $expecting)
                    .map_err(de::Error::custom)
            }
        }
    )*};
}

deserialize_from_str! {
    GoDuration: "a duration such as \"30s\"", numbers: false;
    SpaceFloor: "a string such as \"5%\" or \"512MiB\"", numbers: true;
    InodeFloor: "a number such as 10000, or a string such as \"2%\"", numbers: true;
    Expect: "rw, ro or any", numbers: false;
    CheckType: "canary, directory, list or none", numbers: false;
    LogLevel: "debug, info, warn or error", numbers: false;
    LogFormat: "json or text", numbers: false;
    MetricsDetail: "basic or full", numbers: false;
    Listen: "an address such as \"[::]:8080\"", numbers: false;
}

/// A value as a config file holds it where text is expected: a string, or a number with its
/// text and how serde names it (``integer `5` ``).
enum Raw {
    Text(String),
    Number { text: String, unexpected: String },
}

impl Raw {
    fn parse<T: FromStr<Err = String>>(self, numbers: bool, expecting: &str) -> Result<T, String> {
        match self {
            Raw::Text(text) => text.parse(),
            Raw::Number { text, .. } if numbers => text.parse(),
            Raw::Number { unexpected, .. } => {
                Err(format!("invalid type: {unexpected}, expected {expecting}"))
            }
        }
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl RawVisitor {
    fn number(text: String, unexpected: de::Unexpected) -> Raw {
        Raw::Number {
            text,
            unexpected: unexpected.to_string(),
        }
    }
}

impl Visitor<'_> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Text(v.to_owned()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        Ok(Self::number(v.to_string(), de::Unexpected::Unsigned(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Self::number(v.to_string(), de::Unexpected::Signed(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        let text = serde_json::Number::from_f64(v).map_or(v.to_string(), |n| n.to_string());
        Ok(Self::number(text, de::Unexpected::Float(v)))
    }
}
