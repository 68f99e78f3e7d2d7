//! Kubernetes service links. For every Service in its namespace, Kubernetes gives each container
//! Docker-link variables (unless the pod sets `enableServiceLinks: false`): a Service named
//! `mount-monitor-http` yields `MOUNT_MONITOR_HTTP_PORT=tcp://10.0.0.1:8080`, which is also the
//! name of a setting here. debrid-mount-monitor read no environment, so such a pod ran there;
//! here those values are ignored with a warning instead of stopping the program.

use std::ffi::OsString;
use std::net::SocketAddr;

/// The variables among `settings` (the names our options read) whose value is a Docker link
/// (`tcp://IP:PORT`, `udp://…`, `sctp://…`): never a value any setting takes. Link variables
/// that are no setting (`MOUNT_MONITOR_HTTP_PORT_8080_TCP`) are not ours to mention.
pub fn find(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    settings: &[String],
) -> Vec<(String, String)> {
    vars.into_iter()
        .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
        .filter(|(key, value)| settings.contains(key) && is_link(value))
        .collect()
}

fn is_link(value: &str) -> bool {
    ["tcp://", "udp://", "sctp://"]
        .iter()
        .find_map(|scheme| value.strip_prefix(scheme))
        .is_some_and(|address| address.parse::<SocketAddr>().is_ok())
}

/// The warning logged for one ignored variable.
pub fn warning(key: &str, value: &str) -> String {
    format!(
        "ignoring {key}={value}: a Kubernetes service link (a Service whose name starts with mount-monitor), not a setting; set `enableServiceLinks: false` in the pod spec to drop it"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn only_link_values_of_our_variables() {
        let settings: Vec<String> = [
            "MOUNT_MONITOR_HTTP_PORT",
            "MOUNT_MONITOR_LISTEN",
            "MOUNT_MONITOR_MOUNTS",
            "MOUNT_MONITOR_CHECK_INTERVAL",
        ]
        .map(String::from)
        .to_vec();
        let found = find(
            vars(&[
                ("MOUNT_MONITOR_HTTP_PORT", "tcp://10.0.0.1:8080"),
                ("MOUNT_MONITOR_HTTP_PORT_8080_TCP", "tcp://10.0.0.1:8080"),
                ("MOUNT_MONITOR_LISTEN", "udp://[fd00::1]:53"),
                ("MOUNT_MONITOR_MOUNTS", "media=/mnt/media"),
                ("MOUNT_MONITOR_CHECK_INTERVAL", "tcp://soon"),
                ("OTHER_PORT", "tcp://10.0.0.2:80"),
            ]),
            &settings,
        );
        assert_eq!(
            found,
            [
                (
                    "MOUNT_MONITOR_HTTP_PORT".into(),
                    "tcp://10.0.0.1:8080".into()
                ),
                ("MOUNT_MONITOR_LISTEN".into(), "udp://[fd00::1]:53".into()),
            ]
        );
    }
}
