//! mount-monitor: checks that mounts are really there and usable, and says so over HTTP.
//!
//! One module per concept (ARCHITECTURE.md at the repository's root draws the whole):
//!
//! - What to watch: [`config`] (settings from the file, the environment and the flags), [`cli`]
//!   (the command line), [`duration`] and `gojson` (reading `config.json` as Go does).
//! - The checks: [`mountinfo`] (what is mounted), `probe` (one check of one mount), `probe_pool`
//!   (the threads checks run on), [`monitor`] (one task per mount, the collector, discovery,
//!   the one-shot rounds).
//! - The vocabulary both sides share: [`reason`] (why a check failed), [`outcome`] (what a check
//!   found), `paths` (how a path is shown).
//! - What is published: [`state`] (the state machine), [`snapshot`] (plain data, with the
//!   verdicts), `status` (what the actors publish).
//! - Serving: [`http`] (the routes, bodies and render cache), [`metrics`] (`/metrics`),
//!   [`server`] (connections; [`limits`] on who may connect, `deadline` on writing, `body_file`
//!   for large bodies sent with `sendfile`), [`logging`] (debrid-mount-monitor's log lines),
//!   [`service_links`] (Kubernetes' `*_PORT` variables).
//! - The other modes: [`report`] (`check` and the init container), [`healthcheck`] (the
//!   container `HEALTHCHECK` client).
//! - The actors: [`watchdog`] (pod restarts) with `kube` (its Kubernetes API client), [`docker`]
//!   (Docker actions by label), both over `api_client` (one HTTP/1 connection).
//!
//! Modules are public only where the binary, the examples or the end-to-end tests use them.

mod api_client;
mod body_file;
pub mod cli;
pub mod config;
mod deadline;
pub mod docker;
pub mod duration;
mod gojson;
pub mod healthcheck;
pub mod http;
mod kube;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod mountinfo;
pub mod outcome;
mod paths;
mod probe;
mod probe_pool;
pub mod reason;
pub mod report;
pub mod server;
pub mod service_links;
pub mod snapshot;
pub mod state;
mod status;
pub mod watchdog;

/// The version: set by `cargo xtask dist` through `MOUNT_MONITOR_VERSION`, else the crate's.
pub const VERSION: &str = match option_env!("MOUNT_MONITOR_VERSION") {
    Some(version) => version,
    None => env!("CARGO_PKG_VERSION"),
};

/// Cases per proptest property: `PROPTEST_CASES`, else `default`.
#[cfg(test)]
pub(crate) fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The modules' `crate::` paths outside their tests form no cycle: each concept can be read
/// without the ones that read it. A module is its file `src/<name>.rs` and its submodules'
/// files `src/<name>/…`, each read up to its first `#[cfg(test)]`; test modules, inline or in
/// their own file (`src/http/tests.rs`, `src/config/fuzz.rs`), are not read.
#[cfg(test)]
mod layout {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    /// Every `.rs` file under `dir` but test modules' own files.
    fn sources(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                sources(&path, files);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.ends_with("tests.rs")
                && !path.ends_with("fuzz.rs")
            {
                files.push(path);
            }
        }
    }

    fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for path in files {
            // The top-level module the file belongs to: `config/value.rs` is `config`.
            let first = path
                .strip_prefix(&src)
                .expect("under src/")
                .components()
                .next();
            let first = first.expect("a file name").as_os_str().to_string_lossy();
            let module = first.trim_end_matches(".rs").to_owned();
            let text = std::fs::read_to_string(&path).expect("a source file");
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let used: BTreeSet<String> = code
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .flat_map(|line| line.match_indices("crate::").map(|(at, _)| &line[at + 7..]))
                .map(|rest| {
                    rest.chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect::<String>()
                })
                .filter(|name| !name.is_empty() && *name != module)
                .collect();
            graph.entry(module).or_default().extend(used);
        }
        graph
    }

    /// Every module `module` depends on, directly or through others.
    fn reached(graph: &BTreeMap<String, BTreeSet<String>>, module: &str) -> BTreeSet<String> {
        let mut reached = BTreeSet::new();
        let mut next = vec![module.to_owned()];
        while let Some(at) = next.pop() {
            for dependency in graph.get(&at).into_iter().flatten() {
                if reached.insert(dependency.clone()) {
                    next.push(dependency.clone());
                }
            }
        }
        reached
    }

    /// The chain of modules from `from` to `to`, to say how a forbidden dependency came about.
    fn chain(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> Vec<String> {
        let mut came_from: BTreeMap<String, String> = BTreeMap::new();
        let mut next = std::collections::VecDeque::from([from.to_owned()]);
        while let Some(at) = next.pop_front() {
            if at == to {
                let mut path = vec![at];
                while let Some(before) = came_from.get(path.last().expect("not empty")) {
                    path.push(before.clone());
                }
                path.reverse();
                return path;
            }
            for dependency in graph.get(&at).into_iter().flatten() {
                if dependency != from && !came_from.contains_key(dependency) {
                    came_from.insert(dependency.clone(), at.clone());
                    next.push_back(dependency.clone());
                }
            }
        }
        Vec::new()
    }

    /// None of `modules` reaches `forbidden`, directly or through others; `user` does, so the
    /// graph is known to see it.
    fn assert_never_reach(modules: &[&str], forbidden: &str, user: &str) {
        let graph = dependencies();
        assert!(
            graph[user].contains(forbidden),
            "the graph sees {user} use {forbidden}"
        );
        for module in modules {
            assert!(
                !reached(&graph, module).contains(forbidden),
                "{module} reaches {forbidden}: {}",
                chain(&graph, module, forbidden).join(" -> ")
            );
        }
    }

    /// The published data is read by everyone, so it depends on data only: never on the
    /// runner that talks to the Kubernetes API.
    #[test]
    fn the_snapshot_never_reaches_the_kubernetes_client() {
        assert_never_reach(&["snapshot", "status"], "kube", "watchdog");
    }

    /// Handlers never touch a filesystem: the serving side cannot even name the probe.
    #[test]
    fn the_http_side_never_reaches_the_probe() {
        assert_never_reach(&["http", "metrics"], "probe", "monitor");
    }

    /// The most lines a source file holds before its tests: past that, a file holds more than
    /// one concern, and a newcomer cannot find one by the file's name.
    const MAX_LINES: usize = 700;

    #[test]
    fn no_source_file_is_crowded() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        assert!(files.len() > 20, "the sources are found: {files:?}");
        let crowded: Vec<String> = files
            .iter()
            .filter_map(|path| {
                let text = std::fs::read_to_string(path).expect("a source file");
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                let lines = code.lines().count();
                let path = path.strip_prefix(&src).unwrap_or(path);
                (lines > MAX_LINES).then(|| format!("src/{} ({lines} lines)", path.display()))
            })
            .collect();
        assert!(
            crowded.is_empty(),
            "over {MAX_LINES} lines before the tests; split by concern: {crowded:?}"
        );
    }

    #[test]
    fn modules_depend_on_each_other_without_cycles() {
        let graph = dependencies();
        assert!(graph.contains_key("snapshot") && graph["monitor"].contains("snapshot"));
        // Depth-first search from every module; a module met again on the path is a cycle.
        fn visit(
            graph: &BTreeMap<String, BTreeSet<String>>,
            module: &str,
            path: &mut Vec<String>,
        ) -> Option<Vec<String>> {
            if let Some(at) = path.iter().position(|m| m == module) {
                let mut cycle = path[at..].to_vec();
                cycle.push(module.to_owned());
                return Some(cycle);
            }
            path.push(module.to_owned());
            for next in graph.get(module).into_iter().flatten() {
                if let Some(cycle) = visit(graph, next, path) {
                    return Some(cycle);
                }
            }
            path.pop();
            None
        }
        for module in graph.keys() {
            if let Some(cycle) = visit(&graph, module, &mut Vec::new()) {
                panic!(
                    "modules depend on each other in a cycle: {}",
                    cycle.join(" -> ")
                );
            }
        }
    }
}
