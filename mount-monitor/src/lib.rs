//! mount-monitor: checks that mounts are really there and usable, and says so over HTTP.
//!
//! One module per concept: [`config`] (what to watch), [`mountinfo`] (what is mounted),
//! [`probe`] (one check of one mount), [`reason`] (why a check failed), [`state`] (the state
//! machine), [`monitor`] (the loop), [`http`] and [`server`] (the API; [`limits`] on who may
//! connect, [`deadline`] on writing), [`metrics`] (`/metrics`), [`report`] and [`healthcheck`]
//! (the other modes), [`watchdog`] and [`kube`] (the pod-restart watchdog and its Kubernetes API
//! client).

pub mod cli;
pub mod config;
pub mod deadline;
pub mod discovery;
pub mod duration;
pub mod gojson;
pub mod healthcheck;
pub mod http;
pub mod kube;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod mountinfo;
pub mod probe;
pub mod reason;
pub mod report;
pub mod server;
pub mod service_links;
pub mod state;
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
