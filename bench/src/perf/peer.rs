//! debrid-mount-monitor beside the release binary (`--peer PATH`): the service mount-monitor
//! succeeds, given the same config.json and the same flags, as a user swaps one for the other.
//! HTTP and memory as in the other sections, start to ready, and how long each takes to answer
//! 503 after a fault that both watch at the same time.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use camino::{Utf8Path, Utf8PathBuf};
use serde_json::json;

use super::report::{Detection, Fault, PeerEndpoint, PeerSize, median_load};
use super::servers::{self, Server, free_port};
use super::{Cpus, Measure, Role, short_version, system};

/// The config both servers read.
pub const PEER_CHECK_INTERVAL: &str = "1s";
pub const PEER_READ_TIMEOUT: &str = "500ms";
pub const PEER_FAILURE_THRESHOLD: u32 = 1;
/// [`PEER_CHECK_INTERVAL`]: the range of the random pause before a fault.
const INTERVAL: Duration = Duration::from_secs(1);

/// The mount counts compared.
pub const PEER_SIZES: [usize; 2] = [10, 100];

/// The endpoints both serve, under load.
pub const PEER_ENDPOINTS: [&str; 2] = ["/healthz/status", "/healthz/ready"];
const READY: &str = "/healthz/ready";

/// The file both read in every mount (debrid-mount-monitor's default `canaryFile`).
pub const CANARY: &str = ".health-check";

/// The mount the detection trials break.
const FAULTY: usize = 0;
/// How often each server is asked whether it is ready after a fault.
const POLL: Duration = Duration::from_millis(2);
/// How long a trial waits for a 503 (ten check intervals).
const DETECTION_LIMIT: Duration = Duration::from_secs(10);
/// How long both may take to answer 200 again once the mount is restored.
const RESTORE_LIMIT: Duration = Duration::from_secs(30);

/// The debrid-mount-monitor binary `--peer` names.
#[derive(Clone, Debug)]
pub struct PeerBinary {
    /// Where it is: `--peer` taken from the workspace root, where `cargo xtask` runs it.
    pub path: Utf8PathBuf,
    /// As the report shows it: relative to the workspace root when under it, else as given.
    pub shown: String,
}

impl PeerBinary {
    pub fn new(root: &Utf8Path, given: &Utf8Path) -> PeerBinary {
        let path = if given.is_absolute() {
            given.to_owned()
        } else {
            root.join(given)
        };
        let shown = match path.strip_prefix(root) {
            Ok(relative) if !relative.as_str().is_empty() && !relative.starts_with("..") => {
                relative.to_string()
            }
            _ => given.to_string(),
        };
        PeerBinary { path, shown }
    }
}

/// What `--version` says, when the binary has one; debrid-mount-monitor built from source has
/// none, and no version is guessed for it.
pub fn peer_version(binary: &Utf8Path) -> String {
    let output = Command::new(binary).arg("--version").output();
    let banner = output.ok().filter(|o| o.status.success()).map(|o| {
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    });
    version_from(banner.as_deref())
}

fn version_from(banner: Option<&str>) -> String {
    let short = banner.map(short_version).unwrap_or_default();
    if short.is_empty() {
        "debrid-mount-monitor (built from source)".to_owned()
    } else if short.contains("debrid-mount-monitor") {
        short
    } else {
        format!("debrid-mount-monitor {short}")
    }
}

/// debrid-mount-monitor's config.json over `mounts` (name, path): the default check, a read of
/// each mount's canary.
pub fn peer_config(mounts: &[(String, Utf8PathBuf)]) -> String {
    let mounts: Vec<_> = mounts
        .iter()
        .map(|(name, path)| json!({ "name": name, "path": path.as_str() }))
        .collect();
    let config = json!({
        "checkInterval": PEER_CHECK_INTERVAL,
        "readTimeout": PEER_READ_TIMEOUT,
        "failureThreshold": PEER_FAILURE_THRESHOLD,
        "mounts": mounts,
    });
    serde_json::to_string_pretty(&config).expect("a JSON value always serializes") + "\n"
}

/// A number in [0, 1) that differs on every call, from the standard library's random hash keys
/// (a pause needs no better).
fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

impl Measure<'_> {
    /// Both servers at `mounts` mounts: start to ready, then both running at once: memory, HTTP,
    /// detection.
    pub(super) fn peer(&mut self, mounts: usize) -> anyhow::Result<()> {
        let Some(peer) = self.peer.clone() else {
            return Ok(());
        };
        let config = self.write_peer_config(mounts)?;
        let shipped = self.binaries.shipped.clone();
        let mut size = PeerSize {
            mounts,
            ..PeerSize::default()
        };

        eprintln!("bench: debrid-mount-monitor, {mounts} mounts: start to ready");
        for _ in 0..self.plan.startup_runs {
            let theirs = self.peer_server(&peer.path, &config, Cpus::Shared)?;
            size.peer_startup.push(theirs.ready_after);
            drop(theirs);
            let ours = self.peer_server(&shipped, &config, Cpus::Shared)?;
            size.monitor_startup.push(ours.ready_after);
        }

        let mut theirs = self.peer_server(&peer.path, &config, Cpus::Pinned)?;
        let mut ours = self.peer_server(&shipped, &config, Cpus::Pinned)?;
        std::thread::sleep(Duration::from_secs(2));
        size.peer_idle = system::status(theirs.pid())?;
        size.monitor_idle = system::status(ours.pid())?;

        eprintln!("bench: debrid-mount-monitor, {mounts} mounts: HTTP load");
        for path in PEER_ENDPOINTS {
            // Interleaved, so that a slow spell of the machine hits both alike.
            let (mut their_runs, mut our_runs) = (Vec::new(), Vec::new());
            for _ in 0..self.plan.runs {
                if path == "/healthz/status" {
                    let (load, peak) = self.wrk_sampled(&theirs, path)?;
                    their_runs.push(load);
                    size.peer_load_kib = size.peer_load_kib.max(peak);
                    let (load, peak) = self.wrk_sampled(&ours, path)?;
                    our_runs.push(load);
                    size.monitor_load_kib = size.monitor_load_kib.max(peak);
                } else {
                    their_runs.push(self.wrk(&theirs, path)?);
                    our_runs.push(self.wrk(&ours, path)?);
                }
            }
            size.http.push(PeerEndpoint {
                path: path.to_owned(),
                peer: median_load(&their_runs),
                shipped: median_load(&our_runs),
            });
        }

        for fault in Fault::ALL {
            eprintln!(
                "bench: debrid-mount-monitor, {mounts} mounts: detection, {} trials of {fault:?}",
                self.plan.detection_trials
            );
            let mut detection = Detection {
                fault,
                monitor: Vec::new(),
                peer: Vec::new(),
                limit: DETECTION_LIMIT,
            };
            for _ in 0..self.plan.detection_trials {
                let [their_time, our_time] = self.detect(fault, [&mut theirs, &mut ours])?;
                detection.peer.push(their_time);
                detection.monitor.push(our_time);
            }
            size.detection.push(detection);
        }
        drop((theirs, ours));

        if let Some(report) = &mut self.report.peer {
            report.sizes.push(size);
        }
        Ok(())
    }

    fn write_peer_config(&self, mounts: usize) -> anyhow::Result<Utf8PathBuf> {
        let list: Vec<(String, Utf8PathBuf)> = (0..mounts)
            .map(|index| (format!("m{index:05}"), self.mount_dir(index)))
            .collect();
        let file = self.work.join(format!("peer-{mounts}-mounts.json"));
        std::fs::write(&file, peer_config(&list)).with_context(|| format!("writing {file}"))?;
        Ok(file)
    }

    /// Starts `binary` as debrid-mount-monitor is started: `--config`, `--http-port` (every
    /// address), `--log-level`; ready at the first 200 from `/healthz/ready`.
    fn peer_server(
        &mut self,
        binary: &Utf8Path,
        config: &Utf8Path,
        cpus: Cpus,
    ) -> anyhow::Result<Server> {
        let is_peer = self.peer.as_ref().is_some_and(|peer| peer.path == binary);
        let what = if is_peer {
            "debrid-mount-monitor"
        } else {
            "mount-monitor with debrid-mount-monitor's flags"
        };
        let port = free_port()?;
        let mut command = self.on_cpus(cpus, Role::Server, binary.as_str());
        command.args([
            "--config",
            config.as_str(),
            "--http-port",
            &port.to_string(),
            "--log-level",
            "error",
        ]);
        self.note(cpus.label(what), &command);
        let name = if is_peer {
            "debrid-mount-monitor"
        } else {
            binary.as_str()
        };
        Server::start(name, command, port, READY)
    }

    /// One trial: after a random pause, `fault` to one mount; each server's time from it to its
    /// first 503 (`None` past [`DETECTION_LIMIT`]); then the mount restored and both ready again.
    fn detect(
        &mut self,
        fault: Fault,
        servers: [&mut Server; 2],
    ) -> anyhow::Result<[Option<Duration>; 2]> {
        let dir = self.mount_dir(FAULTY);
        let canary = dir.join(CANARY);
        match fault {
            Fault::CanaryRemoved => {
                let shown = self.relative(&format!("rm {canary}"));
                self.note_shown("fault, canary removed (by unlink(2))", shown);
            }
            Fault::Unmounted => {
                let shown = self.relative(&format!("umount -l {dir}"));
                self.note_shown("fault, unmounted (by umount2(2), MNT_DETACH)", shown);
            }
        }

        std::thread::sleep(INTERVAL.mul_f64(random_fraction()));
        match fault {
            Fault::CanaryRemoved => {
                std::fs::remove_file(&canary).with_context(|| format!("removing {canary}"))?;
            }
            Fault::Unmounted => system::unmount_lazy(dir.as_std_path())?,
        }
        let fault_at = Instant::now();
        let mut found = [None; 2];
        while found.contains(&None) && fault_at.elapsed() < DETECTION_LIMIT {
            for (server, found) in servers.iter().zip(&mut found) {
                if found.is_none() && matches!(servers::get(server.port, READY), Ok((503, _))) {
                    *found = Some(fault_at.elapsed());
                }
            }
            std::thread::sleep(POLL);
        }

        if fault == Fault::Unmounted {
            system::mount_tmpfs(dir.as_std_path(), super::MOUNT_SIZE)?;
        }
        super::put_canary(&dir)?;
        for server in servers {
            server.wait_ready(READY, RESTORE_LIMIT).with_context(|| {
                format!(
                    "{} did not become ready again once {dir} was restored",
                    server.name
                )
            })?;
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_servers_read_one_config_json() {
        let mounts = [
            ("m00000".to_owned(), Utf8PathBuf::from("/w/mnt/m00000")),
            ("m00001".to_owned(), Utf8PathBuf::from("/w/mnt/m00001")),
        ];
        let text = peer_config(&mounts);
        let config: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(config["checkInterval"], "1s");
        assert_eq!(config["readTimeout"], "500ms");
        assert_eq!(config["failureThreshold"], 1);
        assert_eq!(
            config["mounts"],
            json!([
                {"name": "m00000", "path": "/w/mnt/m00000"},
                {"name": "m00001", "path": "/w/mnt/m00001"},
            ])
        );
        assert!(
            config["mounts"][0].get("checkType").is_none(),
            "the default check: a read of the canary"
        );
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn the_peer_is_shown_relative_to_the_root_when_under_it() {
        let root = Utf8Path::new("/work/repo");
        let under = PeerBinary::new(root, Utf8Path::new("/work/repo/peers/dmm"));
        assert_eq!(under.shown, "peers/dmm");
        let relative = PeerBinary::new(root, Utf8Path::new("peers/dmm"));
        assert_eq!(relative.path, "/work/repo/peers/dmm");
        assert_eq!(relative.shown, "peers/dmm");
        let outside = PeerBinary::new(root, Utf8Path::new("/opt/dmm/debrid-mount-monitor"));
        assert_eq!(outside.shown, "/opt/dmm/debrid-mount-monitor");
        let above = PeerBinary::new(root, Utf8Path::new("../dmm/debrid-mount-monitor"));
        assert_eq!(above.path, "/work/repo/../dmm/debrid-mount-monitor");
        assert_eq!(above.shown, "../dmm/debrid-mount-monitor", "as given");
    }

    #[test]
    fn a_version_is_never_guessed() {
        assert_eq!(
            version_from(None),
            "debrid-mount-monitor (built from source)"
        );
        assert_eq!(
            version_from(Some("")),
            "debrid-mount-monitor (built from source)"
        );
        assert_eq!(
            version_from(Some("debrid-mount-monitor version: 1.2.3 (abc)\n")),
            "debrid-mount-monitor 1.2.3"
        );
        assert_eq!(
            version_from(Some("v0.4.0\n")),
            "debrid-mount-monitor v0.4.0"
        );
    }

    #[test]
    fn pauses_fall_anywhere_in_the_interval() {
        let fractions: Vec<f64> = (0..200).map(|_| random_fraction()).collect();
        assert!(fractions.iter().all(|f| (0.0..1.0).contains(f)));
        assert!(fractions.iter().any(|f| *f < 0.25));
        assert!(fractions.iter().any(|f| *f > 0.75));
    }
}
