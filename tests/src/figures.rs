//! The figures behind RELIABILITY.md. Each reliability scenario records what it measured with
//! [`record`]; when `MOUNT_MONITOR_FIGURES` names a directory (`cargo xtask bench reliability`
//! sets it), they land there as `<scenario>.json`, and the report is rendered from them.

/// The variable naming the directory the figures go to.
pub const FIGURES_DIR: &str = "MOUNT_MONITOR_FIGURES";

/// Longer runs for the report (`MOUNT_MONITOR_SOAK=full`); CI runs the short ones.
pub fn full_run() -> bool {
    std::env::var("MOUNT_MONITOR_SOAK").is_ok_and(|v| v == "full")
}

pub fn record(scenario: &str, figures: serde_json::Value) {
    let Some(dir) = std::env::var_os(FIGURES_DIR) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        let text = serde_json::to_string_pretty(&figures).unwrap_or_default();
        std::fs::write(dir.join(format!("{scenario}.json")), text)
    });
    if let Err(e) = written {
        panic!(
            "writing the figures of {scenario} to {}: {e}",
            dir.display()
        );
    }
}
