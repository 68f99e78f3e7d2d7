//! End to end: `cargo xtask dist` as a release is made, then the binaries as a user runs them.
//!
//! Needs root (to mount a tmpfs), `sha256sum` and QEMU for arm64, so both tests are ignored under
//! plain `cargo test`; `cargo xtask test` as root sets those up and runs them. Run without them,
//! they fail and say what is missing.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use camino::Utf8Path;
use xtask::emulator::{Runner, find_in_path, how_to_get_runner};
use xtask::project_root;
use xtask::targets::Arch;

/// Both tests run release builds; one at a time keeps each within its time budget on 2 cores.
static RELEASE_BUILDS: Mutex<()> = Mutex::new(());

/// How long a freshly started binary (arm64: under QEMU) may take to report its mount ready.
const READY_WITHIN: Duration = Duration::from_secs(60);

#[test]
#[ignore = "needs root and qemu-user-static: cargo xtask test, as root"]
fn dist_binaries_verify_and_serve_ready_on_a_tmpfs_mount() {
    require_prerequisites();
    let _one_build_at_a_time = RELEASE_BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let root = project_root();
    let out = root.join("target/dist");

    xtask_dist(&[]);

    let check = Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(&out)
        .output()
        .expect("running sha256sum");
    assert!(check.status.success(), "sha256sum -c SHA256SUMS: {check:?}");
    let checked = String::from_utf8_lossy(&check.stdout);
    for arch in Arch::ALL {
        assert!(
            checked.contains(&format!("{}: OK", arch.artifact_name())),
            "{checked}"
        );
    }

    let mount = Tmpfs::mount();
    let expected_version = expected_default_version(&root);
    for arch in Arch::ALL {
        let binary = out.join(arch.artifact_name());
        let runner = Runner::find(arch).expect("checked by missing_prerequisites");
        let service = Service::start(&runner, &binary, mount.path());

        let (status, body) = service.wait_for_status("/healthz/ready", 200);
        assert_eq!(status, 200, "{arch}: /healthz/ready answered {body}");

        let (status, body) = service.get("/version").expect("GET /version");
        assert_eq!(status, 200, "{arch}: /version answered {body}");
        let version: serde_json::Value = serde_json::from_str(&body).expect("/version is JSON");
        assert_eq!(
            version,
            serde_json::json!({ "version": expected_version }),
            "{arch} ({runner})"
        );
        eprintln!("{arch} ({runner}): /healthz/ready 200, /version {body}");
    }
}

#[test]
#[ignore = "builds both arches twice from empty target dirs (minutes): cargo xtask test, as root"]
fn dist_is_reproducible_across_clean_target_dirs() {
    let name = "dist_is_reproducible_across_clean_target_dirs";
    let _one_build_at_a_time = RELEASE_BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let root = project_root();
    let dirs = [root.join("target/repro-a"), root.join("target/repro-b")];
    for dir in &dirs {
        if dir.exists() {
            std::fs::remove_dir_all(dir).unwrap_or_else(|err| panic!("emptying {dir}: {err}"));
        }
        let started = Instant::now();
        xtask_dist(&[
            "--target-dir",
            dir.as_str(),
            "--out",
            dir.join("dist").as_str(),
            "--version",
            "0.0.0-repro",
        ]);
        eprintln!(
            "{name}: cold dist into {dir} took {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }

    let mut differences = Vec::new();
    for file in Arch::ALL
        .map(|arch| arch.artifact_name())
        .into_iter()
        .chain(["SHA256SUMS".to_owned()])
    {
        let [a, b] = dirs.clone().map(|dir| {
            let path = dir.join("dist").join(&file);
            std::fs::read(&path).unwrap_or_else(|err| panic!("reading {path}: {err}"))
        });
        if a != b {
            let first = a.iter().zip(&b).position(|(x, y)| x != y);
            differences.push(format!(
                "{file}: {} vs {} bytes, first difference at byte {first:?}",
                a.len(),
                b.len()
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "two dist runs from clean target dirs differ (kept {} and {} for diffoscope):\n{}",
        dirs[0],
        dirs[1],
        differences.join("\n")
    );
    for dir in &dirs {
        std::fs::remove_dir_all(dir).unwrap_or_else(|err| panic!("removing {dir}: {err}"));
    }
}

/// Runs the built `xtask dist` from the workspace root, its output going to the test's output.
fn xtask_dist(args: &[&str]) {
    let status = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("dist")
        .args(args)
        .current_dir(project_root())
        .status()
        .expect("starting xtask");
    assert!(
        status.success(),
        "cargo xtask dist {args:?} failed: {status}"
    );
}

/// What `dist` embeds by default, worked out independently of xtask's own code.
fn expected_default_version(root: &Utf8Path) -> String {
    Command::new("git")
        .args(["describe", "--tags", "--always", "--dirty"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .filter(|version| !version.is_empty())
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned())
}

/// Panics, naming everything missing, unless the serving test can run here.
fn require_prerequisites() {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root (to mount a tmpfs)".to_owned());
    }
    for tool in ["mount", "umount", "sha256sum"] {
        if find_in_path(tool).is_none() {
            missing.push(format!("`{tool}` in PATH"));
        }
    }
    for arch in Arch::ALL {
        if Runner::find(arch).is_none() {
            missing.push(format!(
                "a way to run {arch} binaries: {}",
                how_to_get_runner(arch)
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "this test needs {} (`cargo xtask test` as root sets everything up)",
        missing.join("; ")
    );
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// A small tmpfs, unmounted and removed when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount() -> Tmpfs {
        let dir = std::env::temp_dir().join(format!("xtask-dist-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(&dir)
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "mount -t tmpfs tmpfs {}: {status}",
            dir.display()
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A running release binary serving on a free loopback port; killed when dropped.
struct Service {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Service {
    fn start(runner: &Runner, binary: &Utf8Path, mount: &Path) -> Service {
        let addr = free_loopback_port();
        let name = binary.file_name().unwrap_or("service");
        let log = std::env::temp_dir().join(format!("{name}-e2e-{}.log", std::process::id()));
        let log_file = std::fs::File::create(&log).expect("creating the service log");
        let mut command = runner.command(binary.as_std_path());
        command
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--mount")
            .arg(format!("data={}", mount.display()))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("sharing the log file"))
            .stderr(log_file);
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("starting {binary} ({runner}): {err}"));
        Service { child, addr, log }
    }

    /// Polls `path` until it answers `want` (returned) or [`READY_WITHIN`] passes (last answer).
    fn wait_for_status(&self, path: &str, want: u16) -> (u16, String) {
        let deadline = Instant::now() + READY_WITHIN;
        let mut last = (0, String::from("no answer yet"));
        while Instant::now() < deadline {
            if let Ok(answer) = self.get(path) {
                if answer.0 == want {
                    return answer;
                }
                last = answer;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        panic!(
            "GET {path} did not answer {want} within {READY_WITHIN:?}; last: {last:?}\nservice log:\n{log}"
        );
    }

    /// One HTTP/1.0 request (so the body is never chunked); `(status, body)`.
    fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr)?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))?;
        let body = response
            .split_once("\r\n\r\n")
            .map_or("", |(_, body)| body)
            .to_owned();
        Ok((status, body))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_loopback_port() -> SocketAddr {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding a free loopback port");
    listener.local_addr().expect("reading the bound address")
}
