use super::*;
use serde_json::json;

/// A cargo-metadata-shaped document. `deps` are `(from, to, kind)` with kind null, "build" or "dev".
fn metadata(packages: &[(&str, bool)], deps: &[(&str, &str, Option<&str>)]) -> Value {
    let id = |name: &str| format!("registry+https://example.invalid/index#{name}@1.0.0");
    let packages: Vec<Value> = packages
        .iter()
        .map(|(name, proc_macro)| {
            let kind = if *proc_macro { "proc-macro" } else { "lib" };
            json!({"id": id(name), "name": name, "version": "1.0.0",
                   "targets": [{"kind": [kind]}, {"kind": ["custom-build"]}]})
        })
        .collect();
    let nodes: Vec<Value> = packages
        .iter()
        .map(|package| {
            let name = package["name"].as_str().unwrap();
            let edges: Vec<Value> = deps
                .iter()
                .filter(|(from, _, _)| *from == name)
                .map(|(_, to, kind)| {
                    json!({"name": to.replace('-', "_"), "pkg": id(to),
                           "dep_kinds": [{"kind": kind, "target": null}]})
                })
                .collect();
            json!({"id": id(name), "deps": edges})
        })
        .collect();
    json!({"packages": packages, "resolve": {"nodes": nodes, "root": null}})
}

fn names(found: &[NativeCode]) -> Vec<String> {
    found
        .iter()
        .map(|n| format!("{}<-{}", n.package, n.build_helper))
        .collect()
}

#[test]
fn pure_rust_tree_has_no_native_code() {
    let meta = metadata(
        &[("mount-monitor", false), ("tokio", false), ("libc", false)],
        &[("mount-monitor", "tokio", None), ("tokio", "libc", None)],
    );
    assert_eq!(find(&meta, "mount-monitor").unwrap(), []);
}

#[test]
fn transitive_dependency_building_c_is_found() {
    let meta = metadata(
        &[
            ("mount-monitor", false),
            ("rustls", false),
            ("ring", false),
            ("cc", false),
            ("zlib-sys", false),
            ("pkg-config", false),
        ],
        &[
            ("mount-monitor", "rustls", None),
            ("rustls", "ring", None),
            ("ring", "cc", Some("build")),
            ("mount-monitor", "zlib-sys", None),
            ("zlib-sys", "pkg-config", Some("build")),
        ],
    );
    let found = find(&meta, "mount-monitor").unwrap();
    assert_eq!(names(&found), ["ring<-cc", "zlib-sys<-pkg-config"]);
    assert_eq!(found[0].to_string(), "ring 1.0.0 (build script uses `cc`)");
}

#[test]
fn code_that_runs_only_on_the_build_machine_is_ignored() {
    let meta = metadata(
        &[
            ("mount-monitor", false),
            ("some-derive", true),
            ("helper-build", false),
            ("test-only", false),
            ("cc", false),
        ],
        &[
            // A proc-macro compiling C runs it on the build machine.
            ("mount-monitor", "some-derive", None),
            ("some-derive", "cc", Some("build")),
            // So does a build-dependency of our own build script…
            ("mount-monitor", "helper-build", Some("build")),
            ("helper-build", "cc", Some("build")),
            // …and a dev-dependency is not in the release binary at all.
            ("mount-monitor", "test-only", Some("dev")),
            ("test-only", "cc", Some("build")),
        ],
    );
    assert_eq!(find(&meta, "mount-monitor").unwrap(), []);
}

#[test]
fn the_root_package_itself_compiling_c_is_found() {
    let meta = metadata(
        &[("mount-monitor", false), ("cc", false)],
        &[("mount-monitor", "cc", Some("build"))],
    );
    assert_eq!(
        names(&find(&meta, "mount-monitor").unwrap()),
        ["mount-monitor<-cc"]
    );
}

#[test]
fn only_allowed_c_code_passes() {
    let found = [
        NativeCode {
            package: "ring".into(),
            version: "0.17.14".into(),
            build_helper: "cc".into(),
        },
        NativeCode {
            package: "zlib-sys".into(),
            version: "1.0.0".into(),
            build_helper: "pkg-config".into(),
        },
    ];
    let refused: Vec<&str> = not_allowed(&found).map(|n| n.package.as_str()).collect();
    assert_eq!(refused, ["zlib-sys"]);
    assert!(ALLOWED.iter().all(|(_, why)| !why.is_empty()));
}

#[test]
fn the_binary_has_exactly_the_allowed_c_code() {
    // The real dependency tree, as dist sees it for each release target.
    let root = crate::project_root();
    for arch in crate::targets::Arch::ALL {
        let output = std::process::Command::new(env!("CARGO"))
            .current_dir(&root)
            .args([
                "metadata",
                "--format-version",
                "1",
                "--locked",
                "--filter-platform",
            ])
            .arg(arch.triple())
            .output()
            .expect("running cargo metadata");
        assert!(output.status.success(), "{output:?}");
        let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
        let found = find(&metadata, "mount-monitor").unwrap();
        let names: Vec<&str> = found.iter().map(|n| n.package.as_str()).collect();
        assert_eq!(names, ["libmimalloc-sys", "ring"], "{arch}");
        assert_eq!(not_allowed(&found).count(), 0, "{arch}");
    }
}

#[test]
fn missing_root_package_is_an_error() {
    let meta = metadata(&[("other", false)], &[]);
    let err = find(&meta, "mount-monitor").unwrap_err();
    assert!(err.to_string().contains("`mount-monitor`"), "{err}");
}
