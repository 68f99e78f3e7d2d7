//! Harness for the end-to-end tests: the real `mount-monitor` binary, real mounts, a real
//! loopback port.
//!
//! Tests that need root, FUSE, a container engine or a tool are `#[ignore = "needs …"]`: plain
//! `cargo test` lists them as ignored with that reason, and `cargo xtask test` (as root) installs
//! what they need and runs them all. Run, they fail when something is missing; they never skip.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub mod docker;
pub mod figures;
pub mod fuse;
pub mod kube_double;
pub mod namespace;
pub mod peer;
pub mod prober;
pub mod process;

/// Panics unless the test runs as root. Tests that mount filesystems are `#[ignore]`d with that
/// reason, so plain `cargo test` lists them as ignored; `cargo xtask test` runs them as root.
pub fn require_root(test: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "{test}: needs root to mount filesystems; run the whole suite with `cargo xtask test` as root"
    );
}

/// Panics unless the program `tool` is on the PATH (`.ci/setup`, which `cargo xtask test` runs
/// as root, installs it).
pub fn require_tool(test: &str, tool: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()));
    assert!(
        found,
        "{test}: `{tool}` is not installed; `cargo xtask test` as root installs what the tests need"
    );
}

/// A deploy example's arguments with its `--wait-timeout` (minutes, for a mount that comes late
/// in a pod) set to `wait`: a test's mount is there or not from the start, and waiting the
/// example's minutes for it would only slow the suite down.
pub fn shorten_wait_timeout(args: &mut [String], wait: &str) {
    if let Some(i) = args.iter().position(|a| a == "--wait-timeout")
        && let Some(value) = args.get_mut(i + 1)
    {
        *value = wait.to_owned();
    }
}

/// The `mount-monitor` binary, built once per test process (`MOUNT_MONITOR_BIN` overrides).
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(bin) = std::env::var_os("MOUNT_MONITOR_BIN") {
            return PathBuf::from(bin);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let root = workspace_root();
        let status = Command::new(cargo)
            .current_dir(&root)
            .args([
                "build",
                "--quiet",
                "-p",
                "mount-monitor",
                "--bin",
                "mount-monitor",
            ])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building mount-monitor failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        target.join("debug/mount-monitor")
    })
}

/// The binary users run: the static musl release binary `cargo xtask dist` builds for this
/// machine's architecture into `<target>/dist`, built once per test process
/// (`MOUNT_MONITOR_SHIPPED_BIN` overrides).
pub fn shipped_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(bin) = std::env::var_os("MOUNT_MONITOR_SHIPPED_BIN") {
            return PathBuf::from(bin);
        }
        let arch = xtask::targets::Arch::host().expect("the tests run on amd64 or arm64");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let root = workspace_root();
        let output = Command::new(cargo)
            .current_dir(&root)
            .args(["xtask", "dist", "--arch", arch.docker_arch()])
            .output()
            .expect("run cargo xtask dist");
        assert!(
            output.status.success(),
            "cargo xtask dist --arch {} failed:\n{}",
            arch.docker_arch(),
            String::from_utf8_lossy(&output.stderr)
        );
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        root.join(target).join("dist").join(arch.artifact_name())
    })
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

/// A tmpfs mounted on a fresh directory; lazily unmounted (and the directory removed) on drop.
pub struct Tmpfs {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl Tmpfs {
    /// `options` as for `mount -o`, e.g. "size=1m,nr_inodes=64".
    pub fn new(options: &str) -> Tmpfs {
        let dir = tempfile::Builder::new()
            .prefix("mm-e2e-")
            .tempdir()
            .expect("create mount point");
        let mut fs = Tmpfs {
            dir,
            mounted: false,
        };
        fs.mount(options);
        fs
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn mount(&mut self, options: &str) {
        use nix::mount::{MsFlags, mount};
        mount(
            Some("tmpfs"),
            self.path(),
            Some("tmpfs"),
            MsFlags::empty(),
            Some(options),
        )
        .unwrap_or_else(|e| panic!("mount tmpfs on {}: {e}", self.path().display()));
        self.mounted = true;
    }

    pub fn remount(&self, flags: nix::mount::MsFlags) {
        use nix::mount::{MsFlags, mount};
        mount(
            None::<&str>,
            self.path(),
            None::<&str>,
            MsFlags::MS_REMOUNT | flags,
            None::<&str>,
        )
        .unwrap_or_else(|e| panic!("remount {}: {e}", self.path().display()));
    }

    /// Unmounts, leaving the empty directory behind, as a dead FUSE mount does.
    pub fn unmount(&mut self) {
        nix::mount::umount2(self.path(), nix::mount::MntFlags::MNT_DETACH)
            .unwrap_or_else(|e| panic!("umount {}: {e}", self.path().display()));
        self.mounted = false;
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if self.mounted {
            let _ = nix::mount::umount2(self.path(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// A running `mount-monitor serve` on 127.0.0.1 with an OS-chosen port; killed on drop.
pub struct Monitor {
    child: Child,
    /// The first address it listens on.
    pub addr: SocketAddr,
    /// Every address it listens on, in the order given.
    pub addrs: Vec<SocketAddr>,
    log: Arc<Mutex<Logs>>,
    /// The empty working directory [`Monitor::start`] made, removed on drop.
    _workdir: Option<tempfile::TempDir>,
}

/// What the monitor logged: info and debug go to stdout, warnings and errors to stderr.
#[derive(Default)]
struct Logs {
    /// Both streams, each line as it arrived.
    all: String,
    stdout: String,
    stderr: String,
}

/// One of the monitor's output streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// `--check-interval 1s --timeout 500ms`: the shortest round (the minimum interval is 200 ms, but
/// a loaded machine needs the slack) that the end-to-end tests wait on.
pub const EVERY_SECOND: [&str; 4] = ["--check-interval", "1s", "--timeout", "500ms"];

impl Monitor {
    /// `mount-monitor --mount MOUNT… EVERY_SECOND EXTRA…`, started as [`Monitor::start`] does.
    pub fn watch(mounts: &[&str], extra: &[&str]) -> Monitor {
        let mounts = mounts.iter().flat_map(|mount| ["--mount", mount]);
        Monitor::start(mounts.chain(EVERY_SECOND).chain(extra.iter().copied()))
    }

    /// Starts `mount-monitor ARGS --listen 127.0.0.1:0 --log-format json` and waits until it
    /// reports its address.
    pub fn start<I, S>(args: I) -> Monitor
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        // An empty directory: a `./config.json` wherever the tests happen to run must not
        // configure the binary under test.
        let workdir = empty_workdir();
        let mut monitor = Self::start_in(args, workdir.path());
        monitor._workdir = Some(workdir);
        monitor
    }

    /// As [`Monitor::start`], running `program` instead of the debug build (for instance
    /// [`shipped_binary`]).
    pub fn start_program<I, S>(program: &Path, args: I) -> Monitor
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let workdir = empty_workdir();
        let mut monitor = Self::launch(program, args, workdir.path(), Some("127.0.0.1:0"), |_| {});
        monitor._workdir = Some(workdir);
        monitor
    }

    pub fn start_in<I, S>(args: I, cwd: &Path) -> Monitor
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Self::start_with(args, cwd, |_| {})
    }

    /// As [`Monitor::start_in`], with `adjust` applied to the command first (limits, environment).
    pub fn start_with<I, S>(args: I, cwd: &Path, adjust: impl FnOnce(&mut Command)) -> Monitor
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Self::start_listening(args, cwd, Some("127.0.0.1:0"), adjust)
    }

    /// As [`Monitor::start_with`], listening on `listen` (what `--listen` takes) instead of
    /// 127.0.0.1 with an OS-chosen port; `None` gives no `--listen`, so the configured or
    /// default address is used.
    pub fn start_listening<I, S>(
        args: I,
        cwd: &Path,
        listen: Option<&str>,
        adjust: impl FnOnce(&mut Command),
    ) -> Monitor
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Self::launch(binary(), args, cwd, listen, adjust)
    }

    fn launch<I, S>(
        program: &Path,
        args: I,
        cwd: &Path,
        listen: Option<&str>,
        adjust: impl FnOnce(&mut Command),
    ) -> Monitor
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = Command::new(program);
        adjust(&mut command);
        let mut child = command
            .args(args)
            .args(
                listen
                    .map(|listen| ["--listen", listen])
                    .into_iter()
                    .flatten(),
            )
            .args(["--log-format", "json"])
            .current_dir(cwd)
            .env_remove("MOUNT_MONITOR_LISTEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mount-monitor");
        let log = Arc::new(Mutex::new(Logs::default()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let streams: [(Stream, Box<dyn Read + Send>); 2] = [
            (Stream::Stdout, Box::new(stdout)),
            (Stream::Stderr, Box::new(stderr)),
        ];
        for (stream, reader) in streams {
            let sink = Arc::clone(&log);
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(reader).lines().map_while(Result::ok) {
                    // Logged before the address is announced: the start line is in `log()`
                    // once `start` returns.
                    {
                        let mut log = sink.lock().unwrap_or_else(|e| e.into_inner());
                        log.push(stream, &line);
                    }
                    if let Some(addrs) = started_addresses(&line)
                        && let Some(tx) = tx.take()
                    {
                        let _ = tx.send(addrs);
                    }
                }
            });
        }
        drop(tx);
        let addrs = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addrs) => addrs,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "mount-monitor did not start; its log:\n{}",
                    log.lock().unwrap().all
                );
            }
        };
        Monitor {
            child,
            addr: addrs[0],
            addrs,
            log,
            _workdir: None,
        }
    }

    /// Everything logged so far, both streams.
    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .all
            .clone()
    }

    /// What was logged to one stream so far.
    pub fn log_of(&self, stream: Stream) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        match stream {
            Stream::Stdout => log.stdout.clone(),
            Stream::Stderr => log.stderr.clone(),
        }
    }

    /// The JSON log lines whose `msg` is `msg`, both streams.
    pub fn log_lines(&self, msg: &str) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|json| json["msg"] == msg)
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// GET `path`; (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http(self.addr, "GET", path)
    }

    /// GET `path` with extra request headers; (status, response head, body).
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
        http_with(self.addr, "GET", path, headers)
    }

    pub fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let (status, body) = self.get(path);
        let json = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"));
        (status, json)
    }

    /// Polls `/healthz/status` until mount `name` is `health` and failed with `reason` (each
    /// when given); its entry then. A mount not listed yet (right after start) is waited for too.
    pub fn wait_for_mount(
        &self,
        name: &str,
        health: Option<&str>,
        reason: Option<&str>,
        limit: Duration,
    ) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let (_, body) = self.get_json("/healthz/status");
            let mount = find_mount(&body, name).cloned().unwrap_or_default();
            if health.is_none_or(|h| mount["status"] == h)
                && reason.is_none_or(|r| mount["reason"] == r)
            {
                return mount;
            }
            assert!(
                started.elapsed() < limit,
                "{name}: wanted {health:?} {reason:?} within {limit:?}, still {mount}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls `path` until it answers `status`, or panics after `limit` with the last answer.
    pub fn wait_for(&self, path: &str, status: u16, limit: Duration) -> String {
        let started = Instant::now();
        loop {
            // A connection the server closed at once (at its connection cap) is "not yet".
            let got = try_http_with(self.addr, "GET", path, &[]);
            match &got {
                Ok((got, _, body)) if *got == status => return body.clone(),
                _ => {}
            }
            if started.elapsed() > limit {
                let got = match got {
                    Ok((got, _, body)) => format!("{got}: {body}"),
                    Err(e) => e,
                };
                panic!(
                    "GET {path}: wanted {status} within {limit:?}, still {got}\nlog:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits for the exit status, at most `limit`.
    pub fn terminate(mut self, limit: Duration) -> (Option<i32>, Duration) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let started = Instant::now();
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status.code(), started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (None, started.elapsed())
    }

    /// Waits for the process to end, at most `limit`; `None` while it runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if started.elapsed() >= limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        // A thread blocked on a hung FUSE request keeps a killed process from being reaped until
        // the request ends; do not wait for that forever (the FUSE guard aborts the connection).
        if self.wait_exit(Duration::from_secs(5)).is_none() {
            eprintln!(
                "mount-monitor (pid {}) has not exited 5s after SIGKILL: a thread is blocked in the kernel; threads (state, wait channel): {:?}",
                self.child.id(),
                process::thread_states(self.child.id())
            );
        }
    }
}

impl Logs {
    fn push(&mut self, stream: Stream, line: &str) {
        let text = match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        for text in [text, &mut self.all] {
            text.push_str(line);
            text.push('\n');
        }
    }
}

/// The addresses in the `mount-monitor started` line (on stdout, at info): `listen` is
/// comma-separated, as `--listen` takes it.
fn started_addresses(line: &str) -> Option<Vec<SocketAddr>> {
    let json: serde_json::Value = serde_json::from_str(line).ok()?;
    if json["msg"] != "mount-monitor started" {
        return None;
    }
    json["listen"]
        .as_str()?
        .split(',')
        .map(|a| a.parse().ok())
        .collect::<Option<Vec<_>>>()
        .filter(|addrs| !addrs.is_empty())
}

/// A minimal HTTP/1.1 exchange (`Connection: close`); (status, body).
pub fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let (status, _head, body) = http_with(addr, method, path, &[]);
    (status, body)
}

/// [`http`] with extra request headers; (status, response head, body).
pub fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    try_http_with(addr, method, path, headers).unwrap_or_else(|e| panic!("{e}"))
}

/// [`http_with`], the connection's failure (refused, reset, no answer) an error instead of a
/// panic: a server at its connection cap closes a new connection at once.
pub fn try_http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String, String), String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| format!("{addr}: {e}"))?;
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let mut raw = Vec::new();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}\r\n"
    )
    .and_then(|()| stream.read_to_end(&mut raw))
    .map_err(|e| format!("{method} {path}: {e}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: malformed response {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: bad status line in {head:?}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, head.to_owned(), body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Runs the binary to completion in an empty working directory: (exit code, stdout, stderr).
pub fn run<I, S>(args: I) -> (i32, String, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let workdir = empty_workdir();
    run_in(workdir.path(), args, &[])
}

/// Runs the binary in `cwd` to completion with `env` added, and without the test's own
/// `MOUNT_MONITOR_LISTEN`: (exit code, stdout, stderr).
pub fn run_in<I, S>(cwd: &Path, args: I, env: &[(&str, &str)]) -> (i32, String, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(binary())
        .args(args)
        .current_dir(cwd)
        .envs(env.iter().copied())
        .env_remove("MOUNT_MONITOR_LISTEN")
        .stdin(Stdio::null())
        .output()
        .expect("run mount-monitor");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh empty directory to run the binary in, so that no `./config.json` is picked up.
pub fn empty_workdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mm-cwd-")
        .tempdir()
        .expect("create a working directory")
}

/// The entry for `name` in a `/healthz/*` body.
pub fn mount_json<'a>(body: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    find_mount(body, name).unwrap_or_else(|| panic!("no mount {name} in {body}"))
}

/// The entry for `name` in a `/healthz/*` body, if listed. A monitor serves an empty list until
/// its collector has run, which a request right after start may see on a loaded machine.
pub fn find_mount<'a>(body: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    body["mounts"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)
}
