//! [`HangFs`]: the test FUSE filesystem (`src/bin/hangfs.rs`) mounted on a fresh directory, with
//! a guard that always cleans up: it aborts the FUSE connection first, so no process (the monitor,
//! the test, the kernel) stays blocked on the mount, even when the test failed half-way.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the kernel lets root abort a FUSE connection.
const FUSECTL: &str = "/sys/fs/fuse/connections";

/// Panics unless a test needing FUSE can run: root, `/dev/fuse` and the fusectl filesystem
/// (mounted here when missing).
pub fn require_fuse(test: &str) {
    crate::require_root(test);
    assert!(
        Path::new("/dev/fuse").exists(),
        "{test}: /dev/fuse is missing (in a container: --device /dev/fuse; else modprobe fuse)"
    );
    if let Err(problem) = mount_fusectl() {
        panic!("{test}: {problem}");
    }
}

fn mount_fusectl() -> Result<(), String> {
    let mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("reading mountinfo: {e}"))?
        .lines()
        .any(|line| line.contains(" - fusectl "));
    if mounted {
        return Ok(());
    }
    nix::mount::mount(
        Some("fusectl"),
        FUSECTL,
        Some("fusectl"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| format!("cannot mount fusectl on {FUSECTL}: {e}"))
}

/// The `hangfs` binary: cargo builds it before the tests of this package, next to their `deps/`.
pub fn hangfs_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let beside_deps = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("hangfs"));
    match beside_deps {
        Some(path) if path.is_file() => path,
        _ => panic!(
            "hangfs is not built next to {}; run the tests with `cargo test -p tests`",
            exe.display()
        ),
    }
}

/// A mounted `hangfs`. Dropping it aborts the FUSE connection, kills the daemon and lazily
/// unmounts, in that order.
pub struct HangFs {
    daemon: Child,
    commands: Option<ChildStdin>,
    events: Arc<Mutex<Vec<(String, Instant)>>>,
    connection: Option<String>,
    mounted: bool,
    path: PathBuf,
    /// The mount point, when this guard created it.
    _dir: Option<tempfile::TempDir>,
}

impl HangFs {
    /// Mounts hangfs on a fresh directory.
    pub fn mount() -> HangFs {
        let dir = tempfile::Builder::new()
            .prefix("mm-hangfs-")
            .tempdir()
            .expect("create mount point");
        let path = dir.path().to_path_buf();
        Self::mount_with(path, Some(dir), None)
    }

    /// Mounts hangfs on a fresh directory inside `namespace`, out of the host's sight.
    pub fn mount_in(namespace: &crate::namespace::MountNamespace) -> HangFs {
        let dir = tempfile::Builder::new()
            .prefix("mm-hangfs-")
            .tempdir()
            .expect("create mount point");
        let path = dir.path().to_path_buf();
        Self::mount_with(path, Some(dir), Some(namespace))
    }

    /// Mounts hangfs on `path`, an existing directory (or a mount point: it stacks on top).
    pub fn mount_at(path: &Path) -> HangFs {
        Self::mount_with(path.to_path_buf(), None, None)
    }

    /// Mounts hangfs on `path` as `namespace` sees it, an existing directory there.
    pub fn mount_at_in(namespace: &crate::namespace::MountNamespace, path: &Path) -> HangFs {
        Self::mount_with(path.to_path_buf(), None, Some(namespace))
    }

    fn mount_with(
        path: PathBuf,
        dir: Option<tempfile::TempDir>,
        namespace: Option<&crate::namespace::MountNamespace>,
    ) -> HangFs {
        let mut command = Command::new(hangfs_binary());
        if let Some(namespace) = namespace {
            namespace.enter(&mut command);
        }
        let mut daemon = command
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start hangfs");
        let events = Arc::new(Mutex::new(Vec::new()));
        let stdout = daemon.stdout.take().expect("stdout is piped");
        let sink = Arc::clone(&events);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut events = sink.lock().unwrap_or_else(|e| e.into_inner());
                events.push((line, Instant::now()));
            }
        });
        let mut fs = HangFs {
            commands: daemon.stdin.take(),
            daemon,
            events,
            connection: None,
            mounted: false,
            path,
            _dir: dir,
        };
        fs.wait_event("mounted", Duration::from_secs(10));
        fs.mounted = true;
        fs.connection = connection_of(fs.daemon.id(), fs.path());
        assert!(
            fs.connection.is_some(),
            "hangfs on {} is not in mountinfo",
            fs.path().display()
        );
        fs
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&mut self, command: &str) {
        let stdin = self.commands.as_mut().expect("hangfs is running");
        writeln!(stdin, "{command}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("hangfs {command}: {e}"));
    }

    /// From now on `statfs` is read and never answered, until [`HangFs::release`].
    pub fn hang(&mut self) -> Instant {
        let seen = self.count("hanging");
        self.send("hang");
        self.wait_nth("hanging", seen + 1, Duration::from_secs(5))
    }

    /// The daemon stops reading requests (wedged on a lookup), until [`HangFs::release`].
    pub fn stall(&mut self) -> Instant {
        let seen = self.count("stalled");
        self.send("stall");
        self.wait_nth("stalled", seen + 1, Duration::from_secs(5))
    }

    /// Answers everything held and stops hanging; returns how many requests were held.
    pub fn release(&mut self) -> usize {
        let seen = self.count("released");
        self.send("release");
        self.wait_nth("released", seen + 1, Duration::from_secs(5));
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events
            .iter()
            .rev()
            .find_map(|(line, _)| line.strip_prefix("released "))
            .and_then(|n| n.parse().ok())
            .expect("hangfs says how many it released")
    }

    /// How many lines starting with `prefix` hangfs has printed (`held statfs`: requests held).
    pub fn count(&self, prefix: &str) -> usize {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events.iter().filter(|(l, _)| l.starts_with(prefix)).count()
    }

    /// When hangfs printed its first line starting with `prefix`; panics after `limit`.
    pub fn wait_event(&self, prefix: &str, limit: Duration) -> Instant {
        self.wait_nth(prefix, 1, limit)
    }

    /// When hangfs printed its `n`th line starting with `prefix`; panics after `limit`.
    pub fn wait_nth(&self, prefix: &str, n: usize, limit: Duration) -> Instant {
        let started = Instant::now();
        loop {
            {
                let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((_, at)) = events
                    .iter()
                    .filter(|(l, _)| l.starts_with(prefix))
                    .nth(n - 1)
                {
                    return *at;
                }
            }
            assert!(
                started.elapsed() < limit,
                "hangfs did not say {prefix:?} (#{n}) within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Kills the daemon with SIGKILL, leaving its mount behind dead (ENOTCONN).
    pub fn kill_daemon(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        self.commands = None;
    }

    /// `umount -l`: the empty directory stays behind.
    pub fn unmount_lazily(&mut self) {
        nix::mount::umount2(self.path(), nix::mount::MntFlags::MNT_DETACH)
            .unwrap_or_else(|e| panic!("umount -l {}: {e}", self.path().display()));
        self.mounted = false;
    }

    /// Fails every request now and later with ENOTCONN (`echo 1 > …/abort`).
    pub fn abort_connection(&self) {
        if let Some(connection) = &self.connection {
            let _ = std::fs::write(format!("{FUSECTL}/{connection}/abort"), "1");
        }
    }
}

impl Drop for HangFs {
    fn drop(&mut self) {
        self.abort_connection();
        self.commands = None;
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        if self.mounted {
            let _ = nix::mount::umount2(self.path(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// The fusectl connection of the FUSE mount on `path`: its device minor, from the daemon's
/// mountinfo (which never blocks, unlike a stat of the mount, and is in the daemon's namespace).
fn connection_of(daemon: u32, path: &Path) -> Option<String> {
    let mountinfo = std::fs::read_to_string(format!("/proc/{daemon}/mountinfo")).ok()?;
    let entries = mount_monitor::mountinfo::parse(&mountinfo).ok()?;
    let entry = mount_monitor::mountinfo::mount_at(&entries, path)?;
    let line = mountinfo
        .lines()
        .find(|l| l.split(' ').next() == Some(&entry.mount_id.to_string()))?;
    let (major, minor) = line.split(' ').nth(2)?.split_once(':')?;
    (major == "0").then(|| minor.to_owned())
}
