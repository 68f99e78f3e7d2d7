//! The GitHub workflows only call the xtask, so they are checked here, offline: every
//! `cargo xtask …` command line they contain must parse and plan (`--dry-run`) with the xtask as
//! it is now, and the linters that GitHub would not run for us must pass on them and on the
//! Dockerfiles.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn workflows() -> Vec<PathBuf> {
    let dir = root().join(".github/workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "ci.yml and release.yml");
    files
}

/// Every `run:` block of every step, with the step's job name.
fn run_blocks(file: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(file).unwrap();
    let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let mut blocks = Vec::new();
    let jobs = doc["jobs"].as_mapping().expect("jobs");
    for (name, job) in jobs {
        for step in job["steps"].as_sequence().into_iter().flatten() {
            if let Some(run) = step.get("run").and_then(|r| r.as_str()) {
                blocks.push((name.as_str().unwrap_or("?").to_owned(), run.to_owned()));
            }
        }
    }
    blocks
}

/// Runs a `run:` block in bash with `cargo`, `docker`, `gh`, `sudo` and `sha256sum` replaced by
/// recorders, and returns the argument vectors `cargo xtask` was called with, after the
/// shell expanded them as it would on a runner.
fn xtask_calls(block: &str, tag: &str) -> Vec<Vec<String>> {
    let record = tempfile_path();
    let script = format!(
        r#"set -euo pipefail
cargo() {{ if [ "$1" = xtask ]; then shift; printf '%s\0' "$@" >> "$RECORD"; printf '\n' >> "$RECORD"; fi; }}
docker() {{ cat >/dev/null; }}
gh() {{ :; }}
sudo() {{ :; }}
sha256sum() {{ :; }}
{block}"#
    );
    let status = Command::new("bash")
        .arg("-c")
        .arg(&script)
        // The stubs read what a block pipes into them (`… | docker login --password-stdin`),
        // and nothing else.
        .stdin(std::process::Stdio::null())
        .env("RECORD", &record)
        .env("TAG", tag)
        .env("GITHUB_REPOSITORY", "Example-Org/Mount-Monitor")
        .env("GITHUB_REF_NAME", tag)
        .env("REGISTRY_TOKEN", "token")
        .env("REGISTRY_USER", "someone")
        .env("GH_TOKEN", "token")
        .status()
        .expect("bash");
    assert!(status.success(), "block failed under bash:\n{block}");
    let recorded = std::fs::read(&record).unwrap_or_default();
    let _ = std::fs::remove_file(&record);
    recorded
        .split(|b| *b == b'\n')
        .filter(|call| !call.is_empty())
        .map(|call| {
            call.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .collect()
}

fn tempfile_path() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "xtask-workflow-calls-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

#[test]
fn every_xtask_command_in_the_workflows_parses_and_plans() {
    let mut seen = Vec::new();
    for file in workflows() {
        for (job, block) in run_blocks(&file) {
            // A stable and a pre-release tag: both paths of the release must plan.
            for tag in ["v1.2.3", "v1.3.0-rc.1"] {
                for args in xtask_calls(&block, tag) {
                    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
                        .args(&args)
                        .arg("--dry-run")
                        // A dry run must not depend on the container engines installed here.
                        .env("DOCKER", "/nonexistent/docker")
                        .env("PODMAN", "/nonexistent/podman")
                        .current_dir(root())
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "{} job {job}: `cargo xtask {}` --dry-run failed:\n{}{}",
                        file.display(),
                        args.join(" "),
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    );
                    seen.push(args.first().cloned().unwrap_or_default());
                }
            }
        }
    }
    for command in ["dist", "docker"] {
        assert!(
            seen.iter().any(|c| c == command),
            "no `cargo xtask {command}` in the workflows: {seen:?}"
        );
    }
}

#[test]
fn release_workflow_follows_least_privilege() {
    let text = std::fs::read_to_string(root().join(".github/workflows/release.yml")).unwrap();
    let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    assert_eq!(
        doc["permissions"].as_mapping().map(|m| m.len()),
        Some(0),
        "no permissions at the top"
    );
    for (name, job) in doc["jobs"].as_mapping().unwrap() {
        let perms = job["permissions"]
            .as_mapping()
            .unwrap_or_else(|| panic!("job {name:?} sets its own permissions"));
        for (scope, level) in perms {
            if level.as_str() == Some("write") {
                let allowed = match name.as_str().unwrap() {
                    "image" => scope.as_str() == Some("packages"),
                    "github-release" => scope.as_str() == Some("contents"),
                    _ => false,
                };
                assert!(allowed, "job {name:?} writes {scope:?}");
            }
        }
    }
    for file in workflows() {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines().filter(|l| l.contains("uses:")) {
            let reference = line.split("uses:").nth(1).unwrap().trim();
            let (action, rest) = reference.split_once('@').expect("pinned");
            let sha: String = rest.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
            assert_eq!(
                sha.len(),
                40,
                "{action} pinned to a full commit SHA in {}",
                file.display()
            );
            assert!(rest.contains("# v"), "{action}: the version in a comment");
        }
        let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
        for (_, job) in doc["jobs"].as_mapping().unwrap() {
            for step in job["steps"].as_sequence().into_iter().flatten() {
                if step["uses"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("actions/checkout@"))
                {
                    assert_eq!(step["with"]["persist-credentials"].as_bool(), Some(false));
                }
            }
        }
    }
}

/// Linters from PyPI, installed by `.ci/setup` (which `cargo xtask test` as root runs) into
/// `.venv`, else found on the PATH. Panics when missing.
fn linter(name: &str) -> PathBuf {
    let venv = root().join(".venv/bin").join(name);
    if venv.exists() {
        return venv;
    }
    assert!(
        Command::new(name).arg("--version").output().is_ok(),
        "{name} is not installed: `cargo xtask test` as root (or `.ci/setup`) puts it in .venv"
    );
    PathBuf::from(name)
}

fn run_linter(tool: &Path, args: &[&str]) {
    let out = Command::new(tool)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {}:\n{}{}",
        tool.display(),
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "needs the linters from PyPI in .venv: cargo xtask test, as root"]
fn workflows_match_the_github_schema() {
    let files: Vec<String> = workflows()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut args = vec!["--builtin-schema", "vendor.github-workflows"];
    args.extend(files.iter().map(String::as_str));
    run_linter(&linter("check-jsonschema"), &args);
}

#[test]
#[ignore = "needs the linters from PyPI in .venv: cargo xtask test, as root"]
fn zizmor_finds_nothing() {
    run_linter(&linter("zizmor"), &["--offline", ".github/"]);
}

#[test]
#[ignore = "needs the linters from PyPI in .venv: cargo xtask test, as root"]
fn hadolint_passes_on_both_dockerfiles() {
    run_linter(&linter("hadolint"), &["Dockerfile", "Dockerfile.release"]);
}
