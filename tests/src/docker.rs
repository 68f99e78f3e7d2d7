//! dockerd for the image tests: which CLI talks to it, whether it answers, a free port for each
//! container that serves with `--network host`, and a shared directory whose mounts reach the
//! containers that bind it.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};

/// The docker CLI: `$DOCKER`, else Debian's (`/usr/local/bin/docker` may be a newer CLI that
/// lacks buildx).
pub fn program() -> String {
    std::env::var("DOCKER").unwrap_or_else(|_| "/usr/bin/docker".to_owned())
}

/// Panics unless the test runs as root and dockerd answers (`.ci/setup` starts it).
pub fn require_dockerd(test: &str) {
    crate::require_root(test);
    let docker = program();
    let daemon = Command::new(&docker)
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        daemon,
        "{test}: `{docker} info` fails: install docker.io and start dockerd (`.ci/setup`, which `cargo xtask test` as root runs, does both)"
    );
}

/// A loopback port no one listens on now, for a container on the host's network.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A directory bind-mounted on itself and made a shared mount, so that mounts made under it later
/// propagate into containers that bind it with `rslave`, as a host's `/` (shared under systemd)
/// does for the mounts of `deploy/compose.yaml`. Readable by the image's user 65534.
pub struct SharedDir {
    dir: tempfile::TempDir,
}

impl SharedDir {
    pub fn new() -> SharedDir {
        use nix::mount::{MsFlags, mount};
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("mm-image-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        mount(
            Some(dir.path()),
            dir.path(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .expect("bind-mounting the shared directory on itself");
        mount(
            None::<&str>,
            dir.path(),
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .expect("making the directory a shared mount");
        SharedDir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for SharedDir {
    fn default() -> SharedDir {
        SharedDir::new()
    }
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        // Whatever a test left mounted in it (its directories' names are the test's), then itself.
        if let Ok(entries) = std::fs::read_dir(self.path()) {
            for entry in entries.flatten() {
                let _ =
                    nix::mount::umount2(entry.path().as_path(), nix::mount::MntFlags::MNT_DETACH);
            }
        }
        let _ = nix::mount::umount2(self.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A 1 MiB tmpfs on `path`.
pub fn mount_tmpfs(path: &Path) {
    use nix::mount::{MsFlags, mount};
    mount(
        Some("tmpfs"),
        path,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=1m"),
    )
    .unwrap_or_else(|err| panic!("mounting tmpfs on {}: {err}", path.display()));
}

/// Unmounts `path` (lazily: a container may still hold it), which must be a mount point.
pub fn umount(path: &Path) {
    nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH)
        .unwrap_or_else(|err| panic!("unmounting {}: {err}", path.display()));
}
