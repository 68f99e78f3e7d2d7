//! Discovery mode: which mounts count as real when none are configured.

use std::path::{Path, PathBuf};

use crate::mountinfo::MountEntry;

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

/// Whether discovery monitors this mount.
pub fn is_real(entry: &MountEntry) -> bool {
    !EXCLUDED_FS_TYPES.contains(&entry.fs_type.as_str())
        && !EXCLUDED_PREFIXES
            .iter()
            .any(|prefix| entry.mount_point.starts_with(Path::new(prefix)))
}

/// The mount points to monitor, each once, in mountinfo order.
pub fn real_mount_points(entries: &[MountEntry]) -> Vec<PathBuf> {
    let mut seen = std::collections::HashSet::new();
    entries
        .iter()
        .filter(|e| is_real(e))
        .filter(|e| seen.insert(e.mount_point.clone()))
        .map(|e| e.mount_point.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mountinfo::parse;

    #[test]
    fn skips_pseudo_filesystems_and_kernel_interfaces() {
        let entries = parse(
            "1 0 0:1 / / rw - overlay overlay rw\n\
             2 1 0:2 / /proc rw - proc proc rw\n\
             3 1 0:3 / /sys/fs/cgroup rw - cgroup2 cgroup rw\n\
             4 1 0:4 / /dev/shm rw - tmpfs shm rw\n\
             5 1 0:5 / /mnt/media rw - fuse.rclone remote: rw\n\
             6 1 0:6 / /data rw - ext4 /dev/sda1 rw\n\
             7 6 0:7 / /data rw - tmpfs tmpfs rw\n\
             8 1 0:8 / /srv/nfs rw - nfs4 server:/x rw\n",
        )
        .unwrap();
        assert_eq!(
            real_mount_points(&entries),
            vec![
                PathBuf::from("/mnt/media"),
                PathBuf::from("/data"),
                PathBuf::from("/srv/nfs")
            ]
        );
    }
}
