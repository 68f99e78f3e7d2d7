//! Discovery mode: which mounts count as real when none are configured, and the loop that
//! watches them come and go.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::Event;
use super::blocked::PathChecks;
use super::task::{AbortOnDrop, Task};

use crate::config::{MountSpec, Placement, Settings};
use crate::mountinfo::{MountEntry, MountTable, Table};
use crate::paths::display_path;

/// Pseudo and virtual filesystems that say nothing about an application's data: the one list.
pub const EXCLUDED_FS_TYPES: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tracefs",
];

/// Kernel interfaces, whatever filesystem type happens to be mounted there.
const EXCLUDED_PREFIXES: &[&str] = &["/proc", "/sys", "/dev"];

/// What a container runtime mounts into every container: its name and DNS files, Kubernetes'
/// service-account token and other secrets. Not the application's data, and not worth showing to
/// whoever can reach the port.
const RUNTIME_MOUNTS: &[&str] = &[
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/run/secrets",
    "/var/run/secrets",
    "/run/.containerenv",
];

/// Whether discovery monitors this mount.
pub fn is_real(entry: &MountEntry) -> bool {
    !EXCLUDED_FS_TYPES.contains(&entry.fs_type.as_str())
        && !EXCLUDED_PREFIXES
            .iter()
            .chain(RUNTIME_MOUNTS)
            .any(|prefix| entry.mount_point.starts_with(Path::new(prefix)))
}

/// The mounts to monitor: the topmost at each mount point, in mountinfo order.
pub fn real_mounts(table: &Table) -> Vec<&MountEntry> {
    let mut seen = std::collections::HashSet::new();
    table
        .iter()
        .filter(|e| is_real(e))
        .filter(|e| seen.insert(e.mount_point.clone()))
        .filter_map(|e| table.mount_at(&e.mount_point))
        .filter(|e| is_real(e))
        .collect()
}

/// How a discovered mount is checked: it is the mount point, and stays of the type it was found
/// with (whatever it is: a bind of a local file or directory is what it is here).
pub fn spec(entry: &MountEntry, settings: &Settings) -> MountSpec {
    let mut spec = MountSpec::plain(None, entry.mount_point.clone(), settings);
    spec.placement = Placement::MountPoint;
    spec.fs_type = Some(entry.fs_type.clone());
    spec
}

/// The mounts discovery monitors, by mount point and mount ID: a new mount at a path is a new
/// mount, with checks of its own.
type DiscoveredKey = (PathBuf, u32);

/// Discovery mode: every real mount, re-read each interval; new mounts get a watcher, vanished
/// ones are dropped.
pub(super) async fn discover(
    settings: Arc<Settings>,
    table: Arc<MountTable>,
    tx: mpsc::UnboundedSender<Event>,
) {
    let mut watched: HashMap<DiscoveredKey, (u64, AbortOnDrop<()>)> = HashMap::new();
    // Kept across the mounts that come and go at a path, while a check there is blocked.
    let mut histories: HashMap<PathBuf, Arc<PathChecks>> = HashMap::new();
    let mut next_id = 0u64;
    let mut announced = false;
    let mut ticker = tokio::time::interval(settings.check_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let table_for_read = Arc::clone(&table);
        let entries = match tokio::task::spawn_blocking(move || table_for_read.current()).await {
            Ok(Ok(entries)) => entries,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot read /proc/self/mountinfo");
                continue;
            }
            Err(_) => continue,
        };
        let current = real_mounts(&entries);
        let present: std::collections::HashSet<DiscoveredKey> = current
            .iter()
            .map(|e| (e.mount_point.clone(), e.mount_id))
            .collect();
        let gone: Vec<DiscoveredKey> = watched
            .keys()
            .filter(|key| !present.contains(*key))
            .cloned()
            .collect();
        for key in gone {
            if let Some((id, task)) = watched.remove(&key) {
                drop(task);
                let path = display_path(&key.0);
                tracing::info!(mount = %path, %path, "mount disappeared; no longer monitored");
                if tx.send(Event::Removed(id)).is_err() {
                    return;
                }
            }
        }
        for entry in current {
            let key = (entry.mount_point.clone(), entry.mount_id);
            if watched.contains_key(&key) {
                continue;
            }
            let id = next_id;
            next_id += 1;
            let spec = Arc::new(spec(entry, &settings));
            let path = display_path(&entry.mount_point);
            tracing::info!(mount = %path, %path, fs_type = %entry.fs_type, "monitoring discovered mount");
            if tx.send(Event::Added(id, Arc::clone(&spec))).is_err() {
                return;
            }
            let history = Arc::clone(histories.entry(entry.mount_point.clone()).or_default());
            let task = Task {
                id,
                spec,
                settings: Arc::clone(&settings),
                table: Arc::clone(&table),
                history,
                tx: tx.clone(),
            };
            let task = tokio::spawn(task.supervise());
            watched.insert(key, (id, AbortOnDrop(task)));
        }
        let watched_paths: std::collections::HashSet<&PathBuf> =
            watched.keys().map(|(path, _)| path).collect();
        histories.retain(|path, history| watched_paths.contains(path) || !history.idle());
        if !announced {
            announced = true;
            if tx.send(Event::Initialized).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mountinfo::parse;

    #[test]
    fn skips_pseudo_filesystems_kernel_interfaces_and_runtime_files() {
        let table = Table::new(
            parse(
                "1 0 0:1 / / rw - overlay overlay rw\n\
                 2 1 0:2 / /proc rw - proc proc rw\n\
                 3 1 0:3 / /sys/fs/cgroup rw - cgroup2 cgroup rw\n\
                 4 1 0:4 / /dev/shm rw - tmpfs shm rw\n\
                 5 1 0:5 / /mnt/media rw - fuse.rclone remote: rw\n\
                 6 1 0:6 / /data rw - ext4 /dev/sda1 rw\n\
                 7 6 0:7 / /data rw - tmpfs tmpfs rw\n\
                 8 1 0:8 / /srv/nfs rw - nfs4 server:/x rw\n\
                 9 1 8:1 /var/lib/docker/containers/x/hosts /etc/hosts rw - ext4 /dev/sda1 rw\n\
                 10 1 0:9 / /var/run/secrets/kubernetes.io/serviceaccount ro - tmpfs tmpfs rw\n\
                 11 1 8:1 /var/lib/kubelet/pods/x/containers/app/y /dev/termination-log rw - ext4 /dev/sda1 rw\n\
                 12 1 8:1 /var/lib/kubelet/pods/x/etc-hosts /etc/hosts rw - ext4 /dev/sda1 rw\n\
                 13 1 8:1 /var/lib/docker/containers/x/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n\
                 14 1 8:1 /var/lib/docker/containers/x/resolv.conf /etc/resolv.conf rw - ext4 /dev/sda1 rw\n\
                 15 1 0:10 / /run/secrets ro - tmpfs tmpfs rw\n",
            )
            .unwrap(),
        );
        let found: Vec<(&Path, u32)> = real_mounts(&table)
            .iter()
            .map(|e| (e.mount_point.as_path(), e.mount_id))
            .collect();
        assert_eq!(
            found,
            vec![
                (Path::new("/mnt/media"), 5),
                (Path::new("/data"), 7),
                (Path::new("/srv/nfs"), 8)
            ]
        );
        let data = spec(found_entry(&table, 7), &Settings::default());
        assert_eq!(data.placement, Placement::MountPoint);
        assert_eq!(data.fs_type.as_deref(), Some("tmpfs"));
    }

    fn found_entry(table: &Table, id: u32) -> &MountEntry {
        table.iter().find(|e| e.mount_id == id).unwrap()
    }
}
