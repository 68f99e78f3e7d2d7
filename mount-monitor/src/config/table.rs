//! The field table's mechanism: [`settings_table!`] turns one entry per setting into every place
//! that setting appears, and the checks its entries name.
//!
//! An entry of the table (in `settings`) reads
//!
//! ```text
//! /// The flag's help, which is also the field's documentation [default: 64]
//! max_connections_per_peer: usize = crate::limits::DEFAULT_PER_PEER,
//!     file "maxConnectionsPerPeer", flag [long, global = true, env = "…", value_name = "N"],
//!     read usize, check connections;
//! ```
//!
//! that is: the `Settings` field, its type and default; the config file's key; the clap
//! attributes of its flag (`skip` for a setting only the file sets); the type both the file and
//! the flag are read as (its `FromStr`, see `value`); and the check that turns what was read into
//! the setting, or refuses it. The flag's name in errors (`--worker-threads`) is clap's, the field
//! name in kebab case. The file's struct (`file::FileConfig`) declares one field of the same name
//! and type: its order is the order serde lists the keys in when it refuses one, so it is written
//! by hand (a test checks that every table key is one of its keys).

use super::{ConfigError, GoDuration, MAX_WORKER_THREADS, err};

/// Defines, from the table: `Settings` (its own fields first, then one per entry) and its
/// `Default`; `Overrides`, the clap arguments (its own flags `before` and `after` the table's,
/// which keeps `--help` in the order it has always had); and `Values`, what one source sets of
/// the table's settings, checked, which the merge (`merge::Layer`) stacks and applies.
macro_rules! settings_table {
    (
        $(#[$settings_meta:meta])*
        pub struct Settings {
            $( $(#[$own_meta:meta])* pub $own:ident: $own_ty:ty = $own_default:expr, )*
        }

        $(#[$overrides_meta:meta])*
        pub struct Overrides {
            before { $($before:tt)* }
            after { $($after:tt)* }
        }

        table {
            $(
                $(#[$doc:meta])*
                $name:ident: $ty:ty = $default:expr,
                    file $key:literal, flag [$($arg:tt)*],
                    read $raw:ty, check $check:path;
            )*
        }
    ) => {
        $(#[$settings_meta])*
        pub struct Settings {
            $( $(#[$own_meta])* pub $own: $own_ty, )*
            $( $(#[$doc])* pub $name: $ty, )*
        }

        impl Default for Settings {
            fn default() -> Self {
                Settings {
                    $( $own: $own_default, )*
                    $( $name: $default, )*
                }
            }
        }

        $(#[$overrides_meta])*
        pub struct Overrides {
            $($before)*
            $( $(#[$doc])* #[arg($($arg)*)] pub $name: Option<$raw>, )*
            $($after)*
        }

        /// What one source (the config file, or the environment and flags) sets of the table's
        /// settings, checked; `None`: not set there.
        #[derive(Debug, Default)]
        pub(super) struct Values {
            $( $name: Option<$ty>, )*
        }

        impl Values {
            /// The file's values, each checked in table order (the first error is reported);
            /// under Go's rules (`go_rules`) a check may read a zero as "not set".
            pub(super) fn file(
                file: &$crate::config::file::FileConfig,
                origin: &dyn Fn(&str) -> String,
            ) -> Result<Values, $crate::config::ConfigError> {
                Ok(Values {
                    $( $name: match &file.$name {
                        Some(value) => $check(value, &origin($key), file.go_rules)?,
                        None => None,
                    }, )*
                })
            }

            /// The environment's and the flags' values (clap let a flag win over its variable).
            pub(super) fn flags(cli: &Overrides) -> Result<Values, $crate::config::ConfigError> {
                Ok(Values {
                    $( $name: match &cli.$name {
                        Some(value) => {
                            let flag = $crate::config::table::flag_of(stringify!($name));
                            $check(value, &flag, false)?
                        }
                        None => None,
                    }, )*
                })
            }

            /// `self` over `below`: each value from the first source that sets it.
            pub(super) fn over(self, below: Values) -> Values {
                Values {
                    $( $name: self.$name.or(below.$name), )*
                }
            }

            /// Writes the values set over `settings`' defaults.
            pub(super) fn apply(self, settings: &mut Settings) {
                $( if let Some(value) = self.$name {
                    settings.$name = value;
                } )*
            }
        }

        /// Every entry's field name and config file key, for the test that keeps them the file's
        /// keys and clap's flags.
        #[cfg(test)]
        pub(super) const TABLE: &[(&str, &str)] = &[$((stringify!($name), $key)),*];
    };
}

pub(super) use settings_table;

/// The flag of a table field, as clap names it: `--worker-threads` for `worker_threads`.
pub(super) fn flag_of(field: &str) -> String {
    format!("--{}", field.replace('_', "-"))
}

// The checks the table names: `(value as read, where it was written, under Go's rules)` to the
// setting, `None` for "not set" (Go's zero), or an error naming where it was written.

/// Any value that reads is valid.
pub(super) fn any<T: Clone>(value: &T, _: &str, _: bool) -> Result<Option<T>, ConfigError> {
    Ok(Some(value.clone()))
}

/// Any value that reads is valid, for a setting whose default is "not set" (`None`).
pub(super) fn any_some<T: Clone>(
    value: &T,
    _: &str,
    _: bool,
) -> Result<Option<Option<T>>, ConfigError> {
    Ok(Some(Some(value.clone())))
}

/// A duration, not negative; under Go's rules zero and below are the default.
pub(super) fn duration(
    value: &GoDuration,
    what: &str,
    go: bool,
) -> Result<Option<std::time::Duration>, ConfigError> {
    if go && !value.is_positive() {
        return Ok(None);
    }
    value.non_negative().map(Some).map_err(super::at(what))
}

/// A threshold, 1 or more; under Go's rules 0 and below are the default.
pub(super) fn go_threshold(value: &i64, what: &str, go: bool) -> Result<Option<u32>, ConfigError> {
    if go && *value <= 0 {
        return Ok(None);
    }
    threshold(*value, what).map(Some)
}

/// A count of 1 or more.
pub(super) fn threshold(value: i64, what: &str) -> Result<u32, ConfigError> {
    match u32::try_from(value) {
        Ok(v) if v >= 1 => Ok(v),
        _ => err(format!(
            "{what}: {value} must be a whole number of 1 or more"
        )),
    }
}

/// A connection limit: 0 would refuse every client.
pub(super) fn connections(
    value: &usize,
    what: &str,
    _: bool,
) -> Result<Option<usize>, ConfigError> {
    match *value {
        0 => err(format!(
            "{what}: 0 would refuse every client; set it to 1 or more"
        )),
        n => Ok(Some(n)),
    }
}

/// Runtime worker threads: at least one, and no more than can help.
pub(super) fn worker_threads(
    value: &usize,
    what: &str,
    _: bool,
) -> Result<Option<usize>, ConfigError> {
    match *value {
        0 => err(format!(
            "{what}: 0 would leave nothing to serve requests; set it to 1 or more (default {}, or 1 where the process may use only one CPU)",
            super::DEFAULT_WORKER_THREADS
        )),
        n if n > MAX_WORKER_THREADS => err(format!(
            "{what}: {n} is more than {MAX_WORKER_THREADS}, the most that can help (checks run on threads of their own); set it to {MAX_WORKER_THREADS} or less"
        )),
        n => Ok(Some(n)),
    }
}
