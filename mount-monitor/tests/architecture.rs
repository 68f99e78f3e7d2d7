//! ARCHITECTURE.md stays true: every path it names exists, and every module of the service is
//! named there, so that a newcomer who reads it finds each file, and a new module cannot be added
//! without a place on the map.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("mount-monitor/ is in the repository")
        .to_path_buf()
}

fn architecture() -> String {
    let path = repository().join("ARCHITECTURE.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `code span` of `text` that is a path in the repository: relative, made of path
/// characters only, and either with a `/` in it or a file's extension.
fn named_paths(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| {
            !span.is_empty()
                && !span.starts_with('/')
                && span
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
                && (span.contains('/')
                    || [".rs", ".md", ".toml"]
                        .iter()
                        .any(|ext| span.ends_with(ext)))
        })
        .map(str::to_owned)
        .collect()
}

/// The service's modules: every `.rs` file under `mount-monitor/src` but test modules' own
/// files (`tests.rs`, `fuzz.rs`), as paths from the repository's root.
fn modules(dir: &Path, root: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("a readable directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            modules(&path, root, found);
        } else if path.extension().is_some_and(|e| e == "rs")
            && !path.ends_with("tests.rs")
            && !path.ends_with("fuzz.rs")
        {
            let relative = path.strip_prefix(root).expect("under the repository");
            found.push(relative.to_string_lossy().into_owned());
        }
    }
}

/// Where the service's modules are.
const SOURCES: &str = "mount-monitor/src/";

/// Whether `module` is named: by its own path, or by a module's directory that holds it. A
/// module's directory (`mount-monitor/src/config/`) also names the module's own file
/// (`mount-monitor/src/config.rs`), so that the map need not change when a module's files are
/// split or renamed. The crate's directories (`mount-monitor/`, `mount-monitor/src/`) name none:
/// each module has its own line.
fn is_named(module: &str, named: &BTreeSet<String>) -> bool {
    named.contains(module)
        || named
            .iter()
            .filter(|n| n.ends_with('/') && n.starts_with(SOURCES) && n.len() > SOURCES.len())
            .any(|dir| {
                module.starts_with(dir.as_str())
                    || module.strip_suffix(".rs") == Some(dir.trim_end_matches('/'))
            })
}

#[test]
fn every_path_it_names_exists() {
    let root = repository();
    let named = named_paths(&architecture());
    assert!(
        named.contains("mount-monitor/src/snapshot.rs"),
        "paths are found in ARCHITECTURE.md: {named:?}"
    );
    let missing: Vec<&String> = named.iter().filter(|p| !root.join(p).exists()).collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist (correct them or drop them): {missing:?}"
    );
}

#[test]
fn every_module_of_the_service_is_named() {
    let root = repository();
    let named = named_paths(&architecture());
    let mut found = Vec::new();
    modules(&root.join(SOURCES), &root, &mut found);
    assert!(found.len() > 20, "the modules are found: {found:?}");
    let unnamed: Vec<&String> = found.iter().filter(|m| !is_named(m, &named)).collect();
    assert!(
        unnamed.is_empty(),
        "modules missing from ARCHITECTURE.md's \"Where each concern lives\": {unnamed:?}"
    );
}

#[test]
fn a_directory_names_the_files_below_it_and_its_module_file() {
    let named: BTreeSet<String> = ["mount-monitor/src/config/".to_owned()].into();
    assert!(is_named("mount-monitor/src/config/file.rs", &named));
    assert!(is_named("mount-monitor/src/config.rs", &named));
    assert!(!is_named("mount-monitor/src/configure.rs", &named));
    assert!(!is_named("mount-monitor/src/cli.rs", &named));
    let crate_dirs: BTreeSet<String> = ["mount-monitor/".to_owned(), SOURCES.to_owned()].into();
    assert!(!is_named("mount-monitor/src/cli.rs", &crate_dirs));
}
