use std::path::PathBuf;

use super::*;

fn inputs() -> Inputs {
    Inputs {
        archs: Arch::ALL.to_vec(),
        version: "1.2.3".into(),
        source_date_epoch: Some("1700000000".into()),
        builder: Builder::Cargo,
        root: "/src/mm".into(),
        target_dir: "/src/mm/target".into(),
        out_dir: "/src/mm/target/dist".into(),
        cargo_home: "/home/u/.cargo".into(),
        sysroot: "/home/u/.rustup/toolchains/stable".into(),
        user_rustflags: UserRustflags::default(),
        missing_targets: Vec::new(),
        runners: BTreeMap::from([
            (Arch::Amd64, Runner::Native),
            (
                Arch::Arm64,
                Runner::Qemu(PathBuf::from("/usr/bin/qemu-aarch64-static")),
            ),
        ]),
        native_musl: None,
    }
}

fn printed(steps: &[Step]) -> Vec<String> {
    steps.iter().map(ToString::to_string).collect()
}

const REMAP_AMD64: &str = "'target.x86_64-unknown-linux-musl.rustflags=[\
    \"--remap-path-prefix=/src/mm=/mount-monitor\", \
    \"--remap-path-prefix=/src/mm/target=/mount-monitor/target\", \
    \"--remap-path-prefix=/home/u/.cargo=/cargo\", \
    \"--remap-path-prefix=/home/u/.rustup/toolchains/stable=/rustc-sysroot\"]'";

#[test]
fn default_plan_builds_both_arches_in_one_cargo_call_then_verifies_each() {
    let remap_arm64 = REMAP_AMD64.replace("x86_64", "aarch64");
    let expected = [
        "$ cargo metadata --format-version 1 --locked --filter-platform x86_64-unknown-linux-musl  # stop if a crate in the amd64 binary compiles C".to_owned(),
        "$ cargo metadata --format-version 1 --locked --filter-platform aarch64-unknown-linux-musl  # stop if a crate in the arm64 binary compiles C".to_owned(),
        format!("$ MOUNT_MONITOR_VERSION=1.2.3 SOURCE_DATE_EPOCH=1700000000 \
            CC_x86_64_unknown_linux_musl=musl-gcc \
            CFLAGS_x86_64_unknown_linux_musl='-DMI_DEFAULT_ALLOW_THP=0 -Wno-builtin-macro-redefined \
            -D__DATE__=\"-\" -D__TIME__=\"-\"' \
            CC_aarch64_unknown_linux_musl=clang \
            CFLAGS_aarch64_unknown_linux_musl='--target=aarch64-unknown-linux-musl -nostdlibinc \
            -isystem /usr/include/aarch64-linux-musl -DMI_DEFAULT_ALLOW_THP=0 \
            -Wno-builtin-macro-redefined -D__DATE__=\"-\" -D__TIME__=\"-\"' \
            cargo build --release --locked \
            --package mount-monitor --bin mount-monitor --target-dir /src/mm/target \
            --target x86_64-unknown-linux-musl --target aarch64-unknown-linux-musl \
            --config {REMAP_AMD64} --config {remap_arm64}"),
        "$ rm -f /src/mm/target/dist/SHA256SUMS".to_owned(),
        "$ install -D /src/mm/target/x86_64-unknown-linux-musl/release/mount-monitor /src/mm/target/dist/mount-monitor-linux-amd64".to_owned(),
        "# check /src/mm/target/dist/mount-monitor-linux-amd64: ELF for x86_64, no PT_INTERP, no DT_NEEDED, no build paths".to_owned(),
        "$ /src/mm/target/dist/mount-monitor-linux-amd64 --version  # expect `mount-monitor 1.2.3`".to_owned(),
        "$ install -D /src/mm/target/aarch64-unknown-linux-musl/release/mount-monitor /src/mm/target/dist/mount-monitor-linux-arm64".to_owned(),
        "# check /src/mm/target/dist/mount-monitor-linux-arm64: ELF for aarch64, no PT_INTERP, no DT_NEEDED, no build paths".to_owned(),
        "$ /usr/bin/qemu-aarch64-static /src/mm/target/dist/mount-monitor-linux-arm64 --version  # expect `mount-monitor 1.2.3`".to_owned(),
        "$ (cd /src/mm/target/dist && sha256sum mount-monitor-linux-amd64 mount-monitor-linux-arm64 > SHA256SUMS)".to_owned(),
    ];
    assert_eq!(printed(&plan(&inputs())), expected);
}

#[test]
fn one_arch_only_touches_that_arch() {
    let inputs = Inputs {
        archs: vec![Arch::Arm64],
        ..inputs()
    };
    let steps = plan(&inputs);
    let text = printed(&steps).join("\n");
    assert!(!text.contains("x86_64"), "{text}");
    assert!(!text.contains("amd64"), "{text}");
    assert!(text.contains("--target aarch64-unknown-linux-musl"));
    assert_eq!(
        steps.last(),
        Some(&Step::WriteChecksums {
            file: "/src/mm/target/dist/SHA256SUMS".into(),
            artifacts: vec!["/src/mm/target/dist/mount-monitor-linux-arm64".into()],
        })
    );
}

#[test]
fn missing_rust_target_is_added_first() {
    let inputs = Inputs {
        missing_targets: vec![Arch::Arm64],
        ..inputs()
    };
    assert_eq!(plan(&inputs)[0], Step::AddRustTarget(Arch::Arm64));
    assert_eq!(
        plan(&inputs)[0].to_string(),
        "$ rustup target add aarch64-unknown-linux-musl"
    );
}

#[test]
fn cross_builds_each_arch_in_its_container_and_passes_the_version_in() {
    let inputs = Inputs {
        builder: Builder::Cross,
        missing_targets: vec![Arch::Arm64],
        ..inputs()
    };
    let steps = plan(&inputs);
    let builds: Vec<&ShellCommand> = steps
        .iter()
        .filter_map(|step| match step {
            Step::Build(command) => Some(command),
            Step::AddRustTarget(_) | Step::RefuseNativeCode(_) => {
                panic!("cross handles targets and C code itself: {step}")
            }
            _ => None,
        })
        .collect();
    assert_eq!(builds.len(), 2);
    assert!(builds.iter().all(|c| c.program == "cross"));
    assert!(
        builds[0]
            .args
            .contains(&"x86_64-unknown-linux-musl".to_owned())
    );
    assert!(
        !builds[0]
            .args
            .contains(&"aarch64-unknown-linux-musl".to_owned())
    );
    assert!(builds[0].env.contains(&(
        "CROSS_BUILD_ENV_PASSTHROUGH".to_owned(),
        "MOUNT_MONITOR_VERSION SOURCE_DATE_EPOCH".to_owned()
    )));
}

#[test]
fn users_rustflags_join_the_remap_instead_of_replacing_it() {
    let inputs = Inputs {
        archs: vec![Arch::Amd64],
        user_rustflags: UserRustflags::from_env(None, Some("  -C target-cpu=x86-64-v2 ")),
        ..inputs()
    };
    let Step::Build(build) = &plan(&inputs)[1] else {
        panic!("second step is the build")
    };
    assert_eq!(build.env_remove, ["RUSTFLAGS"]);
    assert!(
        build
            .to_string()
            .starts_with("env -u RUSTFLAGS MOUNT_MONITOR_VERSION=")
    );
    let config = build.args.last().unwrap();
    assert!(
        config.starts_with("target.x86_64-unknown-linux-musl.rustflags=[\"--remap-path-prefix=")
    );
    assert!(
        config.ends_with(", \"-C\", \"target-cpu=x86-64-v2\"]"),
        "{config}"
    );
}

#[test]
fn empty_rustflags_still_count_as_set() {
    // Cargo ignores every config rustflags entry when either variable is set, even to "".
    let flags = UserRustflags::from_env(Some(""), Some(""));
    assert_eq!(flags.vars, ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS"]);
    assert!(flags.flags.is_empty());
    assert_eq!(
        UserRustflags::from_env(None, None),
        UserRustflags::default()
    );
}

#[test]
fn encoded_rustflags_win_over_plain_and_keep_spaces() {
    let flags = UserRustflags::from_env(Some("-Clink-arg=a b\x1f-Cdebuginfo=0"), Some("-Cfoo"));
    assert_eq!(flags.flags, ["-Clink-arg=a b", "-Cdebuginfo=0"]);
}

#[test]
fn most_specific_remap_comes_last() {
    let flags = remap_flags(&inputs());
    assert_eq!(
        flags.last().unwrap(),
        "--remap-path-prefix=/home/u/.rustup/toolchains/stable=/rustc-sysroot"
    );
    let target = flags
        .iter()
        .position(|f| f.contains("/src/mm/target="))
        .unwrap();
    let root = flags.iter().position(|f| f.contains("/src/mm=")).unwrap();
    assert!(root < target);
}

#[test]
fn on_alpine_the_native_musl_target_uses_the_machines_cc() {
    let inputs = Inputs {
        native_musl: Some(Arch::Amd64),
        ..inputs()
    };
    let Step::Build(build) = &plan(&inputs)[2] else {
        panic!("third step is the build")
    };
    let names: Vec<&str> = build.env.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "MOUNT_MONITOR_VERSION",
            "SOURCE_DATE_EPOCH",
            "CC_aarch64_unknown_linux_musl",
            "CFLAGS_aarch64_unknown_linux_musl"
        ]
    );
}

#[test]
fn cross_passes_no_c_compiler() {
    let inputs = Inputs {
        builder: Builder::Cross,
        ..inputs()
    };
    let text = printed(&plan(&inputs)).join("\n");
    assert!(!text.contains("CC_"), "{text}");
}

#[test]
fn toml_strings_escape_quotes_and_backslashes() {
    assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
    assert_eq!(toml_string("tab\there"), "\"tab\\u0009here\"");
}

#[test]
fn shell_words_are_quoted_only_when_needed() {
    assert_eq!(shell_quote("/a/b-c_d.e"), "/a/b-c_d.e");
    assert_eq!(shell_quote("a b"), "'a b'");
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
    assert_eq!(shell_quote(""), "''");
}

#[test]
fn without_a_runner_the_version_run_is_announced_as_skipped() {
    let mut inputs = inputs();
    inputs.runners.remove(&Arch::Arm64);
    let text = printed(&plan(&inputs)).join("\n");
    assert!(
        text.contains("# cannot run arm64 binaries here (no QEMU)"),
        "{text}"
    );
}
