//! How `/readyz` addresses mounts (by name, or by path with or without its leading slash), the
//! text it answers, and the bounded query (`verbose`, `exclude`) of `/readyz` and `/livez`.

use std::borrow::Cow;
use std::collections::HashSet;

use crate::snapshot::MountView;
use crate::state::Health;

/// The path of a mount's readiness endpoint: its name (or path) percent-encoded as one URL path
/// segment, so that `movies/4k` or `my movies` can be asked for.
pub fn readyz_path(label: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    /// Everything but RFC 3986's unreserved characters.
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    format!("/readyz/{}", utf8_percent_encode(label, SEGMENT))
}

/// How a mount is addressed in routes and `?exclude=`: its name, or its path when it has none.
/// Borrowed, so that matching allocates nothing (but for a path that is not UTF-8: once per
/// mount).
pub(super) fn label(view: &MountView) -> Cow<'_, str> {
    match (&view.spec.name, view.spec.path.to_str()) {
        (Some(name), _) => Cow::Borrowed(name),
        (None, Some(path)) => Cow::Borrowed(path),
        (None, None) => Cow::Owned(crate::paths::display_path(&view.spec.path)),
    }
}

/// The mounts a request names. A mount is addressed by its label, or, when that is a path,
/// also without its leading slash (`/readyz/<path>` swallows one).
pub(super) struct Addressed<'q> {
    exactly: HashSet<&'q str>,
    below_root: HashSet<&'q str>,
}

impl<'q> Addressed<'q> {
    pub(super) fn new(names: impl IntoIterator<Item = &'q str>) -> Self {
        let (exactly, below_root) = names
            .into_iter()
            .map(|name| (name, name.trim_start_matches('/')))
            .unzip();
        Addressed {
            exactly,
            below_root,
        }
    }

    pub(super) fn contains(&self, label: &str) -> bool {
        // Nothing named (a plain `/readyz`): no label hashed, whatever the number of mounts.
        if self.exactly.is_empty() {
            return false;
        }
        self.exactly.contains(label)
            || label
                .strip_prefix('/')
                .is_some_and(|path| self.below_root.contains(path))
    }
}

/// The text of `/readyz`: `ok` when ready and not verbose (the mounts are then not listed, nor
/// even visited), else a line per mount and the verdict.
pub(super) fn readyz_body<'a>(
    mounts: impl IntoIterator<Item = &'a MountView>,
    ok: bool,
    verbose: bool,
    initialized: bool,
) -> String {
    use std::fmt::Write;
    if ok && !verbose {
        return "ok".to_owned();
    }
    let mounts = mounts.into_iter();
    let mut body = String::with_capacity(mounts.size_hint().0 * 32 + 64);
    for m in mounts {
        let label = label(m);
        // Writing into a String cannot fail.
        let _ = if m.state.health == Health::Healthy {
            writeln!(body, "[+]{label} ok")
        } else {
            let why = m
                .state
                .failure
                .as_ref()
                .map(|f| f.reason.code())
                .unwrap_or("not checked yet");
            // Why `/readyz` passes all the same.
            let optional = if m.spec.optional { " (optional)" } else { "" };
            writeln!(body, "[-]{label} failed: {why}{optional}")
        };
    }
    if !initialized {
        body.push_str("[-]mounts failed: not discovered yet\n");
    }
    body.push_str(if ok {
        "readyz check passed\n"
    } else {
        "readyz check failed\n"
    });
    body
}

/// The longest query string answered; longer ones get 400. Far more than any probe needs, and
/// it bounds the work a request can ask for.
pub const MAX_QUERY_BYTES: usize = 4096;
/// The most `exclude`s in one request; more get 400.
pub const MAX_EXCLUDES: usize = 256;

#[derive(Default)]
pub(super) struct QueryOptions {
    pub verbose: bool,
    pub exclude: Vec<String>,
}

impl QueryOptions {
    /// The options, or why a query past the bounds is refused (with 400).
    pub(super) fn parse(query: Option<&str>) -> Result<Self, String> {
        let Some(query) = query else {
            return Ok(QueryOptions::default());
        };
        if query.len() > MAX_QUERY_BYTES {
            return Err(format!(
                "query of {} bytes; at most {MAX_QUERY_BYTES} are accepted\n",
                query.len()
            ));
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
        let mut options = QueryOptions::default();
        for (key, value) in pairs {
            match key.as_str() {
                "verbose" => options.verbose = value != "false" && value != "0",
                "exclude" => options.exclude.push(value),
                _ => {}
            }
        }
        if options.exclude.len() > MAX_EXCLUDES {
            return Err(format!(
                "{} excludes; at most {MAX_EXCLUDES} are accepted\n",
                options.exclude.len()
            ));
        }
        Ok(options)
    }
}
