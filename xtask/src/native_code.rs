//! Does the binary, as compiled for a target, contain C code, and is it C we know how to build?
//!
//! Our musl binaries are linked by rust-lld (aarch64) or the host `cc` with Rust's self-contained musl
//! objects (x86_64). The only C compilers for the targets are those `xtask/src/targets.rs` names
//! (musl-gcc for amd64, clang for arm64), and no musl sysroot for arm64. A crate whose build script
//! compiles C for the target (`cc`, `cmake`, …) or links a system library (`pkg-config`, …) would
//! either fail with a confusing compiler error or, worse, link C built against glibc headers into a
//! "static musl" binary. So dist refuses such a dependency tree up front, except for the crates in
//! [`ALLOWED`], each checked to build for both targets with those compilers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use anyhow::{Context, bail};
use serde_json::Value;

/// Crates a build script uses to compile C/C++ or to link a system C library.
pub const C_BUILD_CRATES: [&str; 7] = [
    "cc",
    "cmake",
    "autotools",
    "bindgen",
    "pkg-config",
    "system-deps",
    "vcpkg",
];

/// C code that builds for both musl targets with the compilers of `targets.rs`, and why it is in
/// the binary.
pub const ALLOWED: [(&str, &str); 2] = [
    (
        "ring",
        "the crypto provider of rustls (the watchdog's TLS to the Kubernetes API server): its C and \
         assembly need no libc headers on aarch64-musl (it passes -nostdlibinc to clang) and build \
         against musl's own headers with musl-gcc on x86_64-musl; the other provider, aws-lc-rs, \
         needs cmake and a far larger C build",
    ),
    (
        "libmimalloc-sys",
        "mimalloc, the allocator of the musl binaries (musl's malloc and dlmalloc serve requests \
         slower, see mount-monitor/Cargo.toml): plain C against libc's headers, musl's own on both \
         targets (musl-gcc's on x86_64-musl, Debian's musl-dev:arm64 for clang on aarch64-musl)",
    ),
];

/// The crates of `found` that are not in [`ALLOWED`].
pub fn not_allowed(found: &[NativeCode]) -> impl Iterator<Item = &NativeCode> {
    found
        .iter()
        .filter(|n| !ALLOWED.iter().any(|(name, _)| *name == n.package))
}

/// A package compiled into the binary whose build script brings C code in.
#[derive(Debug, PartialEq, Eq)]
pub struct NativeCode {
    pub package: String,
    pub version: String,
    pub build_helper: String,
}

impl fmt::Display for NativeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} (build script uses `{}`)",
            self.package, self.version, self.build_helper
        )
    }
}

struct Package<'a> {
    name: &'a str,
    version: &'a str,
    is_proc_macro: bool,
}

/// Packages reachable from `root_package` through normal dependencies (the code that ends up in the
/// binary) whose build script depends on one of [`C_BUILD_CRATES`], in the output of
/// `cargo metadata --format-version 1 --filter-platform <triple>`. Proc-macros and
/// build-dependencies run on the build machine and are not followed.
pub fn find(metadata: &Value, root_package: &str) -> anyhow::Result<Vec<NativeCode>> {
    let packages = packages(metadata)?;
    let nodes = metadata["resolve"]["nodes"]
        .as_array()
        .context("cargo metadata has no resolve.nodes")?;
    let nodes: HashMap<&str, &Value> = nodes
        .iter()
        .filter_map(|node| Some((node["id"].as_str()?, node)))
        .collect();
    let Some(root) = packages
        .iter()
        .find(|(id, package)| package.name == root_package && nodes.contains_key(*id))
        .map(|(id, _)| *id)
    else {
        bail!("package `{root_package}` is not in the resolved dependency graph");
    };

    let mut found = Vec::new();
    let mut seen = HashSet::from([root]);
    let mut queue = VecDeque::from([root]);
    while let Some(id) = queue.pop_front() {
        let package = &packages[id];
        for (dep_id, kind) in dependencies(nodes[id]) {
            let Some(dep) = packages.get(dep_id) else {
                continue;
            };
            match kind {
                Some("build") if C_BUILD_CRATES.contains(&dep.name) => found.push(NativeCode {
                    package: package.name.to_owned(),
                    version: package.version.to_owned(),
                    build_helper: dep.name.to_owned(),
                }),
                None if !dep.is_proc_macro && seen.insert(dep_id) => queue.push_back(dep_id),
                _ => {}
            }
        }
    }
    found.sort_by(|a, b| (&a.package, &a.version).cmp(&(&b.package, &b.version)));
    found.dedup();
    Ok(found)
}

fn packages(metadata: &Value) -> anyhow::Result<HashMap<&str, Package<'_>>> {
    let packages = metadata["packages"]
        .as_array()
        .context("cargo metadata has no packages")?;
    Ok(packages
        .iter()
        .filter_map(|package| {
            let is_proc_macro = package["targets"].as_array()?.iter().any(|target| {
                target["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|kind| kind == "proc-macro"))
            });
            let entry = Package {
                name: package["name"].as_str()?,
                version: package["version"].as_str()?,
                is_proc_macro,
            };
            Some((package["id"].as_str()?, entry))
        })
        .collect())
}

/// `(package id, kind)` for every edge of a resolve node, with cargo's kind: `None` for a normal
/// dependency, else `build` or `dev`; an edge can carry several kinds.
fn dependencies(node: &Value) -> impl Iterator<Item = (&str, Option<&str>)> {
    node["deps"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|dep| {
            let id = dep["pkg"].as_str().unwrap_or_default();
            dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |kind| (id, kind["kind"].as_str()))
        })
}

#[cfg(test)]
mod tests;
