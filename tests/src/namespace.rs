//! [`MountNamespace`]: a private mount namespace to build the mount layouts containers see
//! (volumes that are bind mounts of host directories, with mount propagation) without touching
//! the host's mount table. The namespace lives as long as a `sleep` process in it; dropping the
//! guard ends that process, and the namespace with all its mounts goes once the last process in
//! it has exited.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct MountNamespace {
    holder: Child,
}

impl MountNamespace {
    /// A new mount namespace whose mounts are all private: nothing done in it reaches the host.
    pub fn unshare() -> MountNamespace {
        let holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sleep", "infinity"])
            .stdin(Stdio::null())
            .spawn()
            .expect("run unshare (util-linux)");
        // unshare has switched namespaces once its mount namespace differs from ours.
        MountNamespace::entered(holder, &[])
    }

    /// A namespace made from this one as a container runtime makes a container's: a copy of
    /// its mounts, each a slave of the one it copies (`--propagation slave`), so that what is
    /// mounted and unmounted here below a shared mount reaches it, and nothing goes back.
    pub fn unshare_within(&self) -> MountNamespace {
        let holder = Command::new("nsenter")
            .arg(format!("--mount={}", self.ns_path().display()))
            .args([
                "unshare",
                "--mount",
                "--propagation",
                "slave",
                "sleep",
                "infinity",
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("run nsenter and unshare (util-linux)");
        // The holder passes through ours (before nsenter) and the parent's (before unshare).
        let parent = std::fs::read_link(self.ns_path()).expect("the parent namespace");
        MountNamespace::entered(holder, &[parent])
    }

    /// The namespace `holder` makes, once it is in it: in none of `passed` (the namespaces it
    /// goes through on its way) and not in ours.
    fn entered(holder: Child, passed: &[PathBuf]) -> MountNamespace {
        let ns = MountNamespace { holder };
        let ours = std::fs::read_link("/proc/self/ns/mnt").expect("our mount namespace");
        for _ in 0..500 {
            if std::fs::read_link(ns.ns_path())
                .is_ok_and(|theirs| theirs != ours && !passed.contains(&theirs))
            {
                return ns;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("unshare did not enter a new mount namespace");
    }

    /// The process that holds the namespace: `/proc/PID/root/…` reads a file as the namespace
    /// sees it.
    pub fn holder_pid(&self) -> u32 {
        self.holder.id()
    }

    fn ns_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/mnt", self.holder.id()))
    }

    /// Runs a shell script in the namespace; panics with its output when it fails.
    pub fn sh(&self, script: &str) {
        let out = Command::new("nsenter")
            .arg(format!("--mount={}", self.ns_path().display()))
            .args(["sh", "-euc", script])
            .output()
            .expect("run nsenter (util-linux)");
        assert!(
            out.status.success(),
            "in the namespace, `{script}` failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Makes `command` start in the namespace.
    pub fn enter(&self, command: &mut Command) {
        let ns = std::fs::File::open(self.ns_path()).expect("open the namespace");
        // SAFETY: between fork and exec only setns(2) runs, which is async-signal-safe; the file
        // stays open in the parent for as long as `command` is being spawned.
        unsafe {
            command.pre_exec(move || {
                if nix::libc::setns(ns.as_raw_fd(), nix::libc::CLONE_NEWNS) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }

    /// Makes `command` start in the namespace with `cwd` as its working directory, as the
    /// namespace sees it (entering a mount namespace moves the working directory to its root,
    /// so `Command::current_dir` alone does not hold).
    pub fn enter_at(&self, command: &mut Command, cwd: &Path) {
        self.enter(command);
        let cwd = std::ffi::CString::new(cwd.as_os_str().as_encoded_bytes())
            .expect("a working directory without NUL bytes");
        // SAFETY: chdir(2) is async-signal-safe; the hooks run in order, after setns(2).
        unsafe {
            command.pre_exec(move || {
                if nix::libc::chdir(cwd.as_ptr()) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }

    /// The namespace's mount table, as its processes read it.
    pub fn mountinfo(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/mountinfo", self.holder.id()))
            .expect("read the namespace's mountinfo")
    }

    /// Whether something is mounted exactly at `path` in the namespace.
    pub fn is_mount_point(&self, path: &Path) -> bool {
        let entries = mount_monitor::mountinfo::parse(self.mountinfo()).expect("mountinfo parses");
        mount_monitor::mountinfo::mount_at(&entries, path).is_some()
    }
}

impl Drop for MountNamespace {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
