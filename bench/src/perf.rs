//! `cargo xtask bench perf`: mount-monitor's performance over real tmpfs mounts, each figure beside a
//! baseline measured in the same run (nginx for HTTP, a glibc build for the static musl binary,
//! node_exporter for memory and scrapes, the one-mount round for scale). Rewrites the
//! "## Performance" section of BENCHMARKS.md.
//!
//! Needs root (it mounts up to 5,000 tmpfs) and `wrk`, `nginx` and `prometheus-node-exporter`.
//! The measuring half runs as PID 1 of its own mount and PID namespaces ([`system`]), so its
//! mounts and servers vanish with it however it ends.

mod report;
mod servers;
pub(crate) mod system;
mod wrk;

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{Shell, cmd};

use xtask::emulator::find_in_path;
use xtask::project_root;
use xtask::targets::{Arch, BINARY};

use crate::measure::{cores, median};
use crate::report::BENCHMARKS;
use report::{Builds, Endpoint, Memory, Report, Scale, Scrape, Startup, median_load};
use servers::{Server, free_port};
use wrk::Load;

/// Programs the benchmark runs, and the Debian package that has each.
const TOOLS: [(&str, &str); 4] = [
    ("wrk", "wrk"),
    ("nginx", "nginx-light"),
    ("prometheus-node-exporter", "prometheus-node-exporter"),
    ("unshare", "util-linux"),
];

/// The endpoints under HTTP load.
const ENDPOINTS: [&str; 3] = ["/healthz/status", "/readyz", "/metrics"];

/// Mounts for the HTTP, startup, memory and scrape figures; memory and scrape also at
/// [`LARGE`].
const SMALL: usize = 10;
const LARGE: usize = 1000;

/// The serving monitor's check interval in the scale test (the shortest it accepts).
const SERVE_INTERVAL: Duration = Duration::from_secs(1);

/// Measure HTTP throughput, memory, check rounds and startup beside baselines from the same run;
/// writes the "## Performance" section of BENCHMARKS.md (as root, in under 10 minutes)
#[derive(clap::Args, Debug, Clone)]
pub struct Perf {
    /// A smoke run of about 2 minutes (1 s loads, one run each, up to 1,000 mounts) that prints
    /// the section instead of writing BENCHMARKS.md
    #[arg(long)]
    pub quick: bool,

    /// Seconds of each wrk run [default: 3, or 1 with --quick]
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<u64>,

    /// Runs of each load; the median is reported [default: 5, or 1 with --quick]
    #[arg(long)]
    pub runs: Option<usize>,

    /// Connections wrk keeps open
    #[arg(long, default_value_t = 10)]
    pub connections: usize,

    /// Let servers and wrk share every CPU instead of pinning the servers to one half of the
    /// CPUs and wrk to the other
    #[arg(long)]
    pub no_pin: bool,

    /// Mount counts of the scale test, comma-separated; the smallest is the baseline
    /// [default: 1,100,1000,5000, or 1,100,1000 with --quick]
    #[arg(long, value_delimiter = ',', value_name = "N,…")]
    pub scale: Vec<usize>,

    /// Measure the binaries already built instead of building them first
    #[arg(long)]
    pub no_build: bool,

    /// Print the section instead of writing BENCHMARKS.md
    #[arg(long)]
    pub no_write: bool,

    /// Set when the benchmark re-runs itself inside its namespaces
    #[arg(long, hide = true)]
    pub in_namespace: bool,
}

/// The sizes and durations of one run.
#[derive(Clone, Debug)]
struct Plan {
    duration: u64,
    runs: usize,
    connections: usize,
    /// `taskset -c` lists for the servers and for wrk.
    pinning: Option<(String, String)>,
    /// wrk's threads: one per CPU it may use, pinned and not.
    threads_pinned: usize,
    threads_shared: usize,
    scale: Vec<usize>,
    serve_window: Duration,
    startup_runs: usize,
    write: bool,
}

impl Perf {
    fn plan(&self) -> Plan {
        let pinning = if self.no_pin {
            None
        } else {
            split_cpus(&system::allowed_cpus())
        };
        let load_cpus = pinning
            .as_ref()
            .map_or_else(cores, |(_, load)| load.split(',').count());
        let mut scale = if self.scale.is_empty() {
            if self.quick {
                vec![1, 100, 1000]
            } else {
                vec![1, 100, 1000, 5000]
            }
        } else {
            self.scale.clone()
        };
        scale.sort();
        scale.dedup();
        let connections = self.connections.max(1);
        Plan {
            duration: self
                .duration
                .unwrap_or(if self.quick { 1 } else { 3 })
                .max(1),
            runs: self.runs.unwrap_or(if self.quick { 1 } else { 5 }).max(1),
            connections,
            threads_pinned: load_cpus.min(connections),
            threads_shared: cores().min(connections),
            pinning,
            scale,
            serve_window: Duration::from_secs(if self.quick { 3 } else { 10 }),
            startup_runs: if self.quick { 3 } else { 20 },
            write: !self.quick && !self.no_write,
        }
    }

    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let arch = Arch::host().context(
            "cargo xtask bench perf measures the release binary of this machine's architecture, and \
             there is none for it (amd64 and arm64 only)",
        )?;
        let binaries = Binaries::of(arch);
        if self.in_namespace {
            return Measure::new(sh, self.plan(), binaries)?.run();
        }

        if !system::is_root() {
            bail!(
                "cargo xtask bench perf mounts tmpfs filesystems (up to 5,000) in its own namespace \
                 and needs root: run it as root (sudo -E cargo xtask bench perf)"
            );
        }
        for (tool, package) in TOOLS {
            if find_in_path(tool).is_none() {
                bail!("`{tool}` is not installed: install it with `apt-get install {package}`");
            }
        }
        if self.no_build {
            for binary in binaries.all() {
                if !binary.exists() {
                    bail!("{binary} is missing: run `cargo xtask bench perf` without --no-build");
                }
            }
        } else {
            for (_, build) in build_commands(sh, arch) {
                build.run().context(
                    "building a binary to measure failed (output above): fix it, then rerun \
                     `cargo xtask bench perf`",
                )?;
            }
        }

        // Inside new mount and PID namespaces, as PID 1: see `system`.
        let exe = std::env::current_exe().context("finding the bench binary")?;
        let args: Vec<String> = std::env::args().skip(1).collect();
        let flags = system::UNSHARE_ARGS;
        cmd!(sh, "unshare {flags...} -- {exe} {args...} --in-namespace")
            .run()
            .context("the benchmark failed (output above)")?;
        Ok(())
    }
}

/// The three builds measured, relative to the workspace root.
struct Binaries {
    /// `cargo xtask dist`'s: static musl, with dlmalloc.
    shipped: Utf8PathBuf,
    /// The same target with musl's own malloc: the "before" of the allocator change.
    musl_malloc: Utf8PathBuf,
    /// A plain glibc release build.
    glibc: Utf8PathBuf,
}

impl Binaries {
    fn of(arch: Arch) -> Binaries {
        Binaries {
            shipped: Utf8PathBuf::from(format!("target/dist/{}", arch.artifact_name())),
            musl_malloc: Utf8PathBuf::from(format!(
                "target/bench/musl-malloc/{}/release/{BINARY}",
                arch.triple()
            )),
            glibc: Utf8PathBuf::from(format!("target/release/{BINARY}")),
        }
    }

    fn all(&self) -> [&Utf8Path; 3] {
        [&self.shipped, &self.musl_malloc, &self.glibc]
    }
}

fn build_commands(sh: &Shell, arch: Arch) -> [(&'static str, xshell::Cmd<'_>); 3] {
    let (docker_arch, triple) = (arch.docker_arch(), arch.triple());
    [
        (
            "release binary (static musl)",
            cmd!(sh, "cargo xtask dist --arch {docker_arch}"),
        ),
        (
            "glibc build",
            cmd!(
                sh,
                "cargo build --release --locked --package {BINARY} --bin {BINARY}"
            ),
        ),
        (
            "musl build with musl's malloc",
            cmd!(
                sh,
                "cargo build --release --locked --package {BINARY} --bin {BINARY} --target {triple} --no-default-features --target-dir target/bench/musl-malloc"
            ),
        ),
    ]
}

/// The measuring half, inside the namespaces.
struct Measure<'a> {
    sh: &'a Shell,
    plan: Plan,
    binaries: Binaries,
    root: Utf8PathBuf,
    /// A tmpfs holding configs, nginx's files and the mount points.
    work: Utf8PathBuf,
    mounted: usize,
    report: Report,
}

impl<'a> Measure<'a> {
    fn new(sh: &'a Shell, plan: Plan, binaries: Binaries) -> anyhow::Result<Self> {
        system::exit_on_signals();
        let root = project_root();
        let work = root.join("target/bench/perf");
        std::fs::create_dir_all(&work).with_context(|| format!("creating {work}"))?;
        system::mount_tmpfs(work.as_std_path(), "256m")?;
        std::fs::create_dir_all(work.join("mnt"))?;
        Ok(Measure {
            sh,
            plan,
            binaries,
            root,
            work,
            mounted: 0,
            report: Report::default(),
        })
    }

    fn run(mut self) -> anyhow::Result<()> {
        self.describe_machine()?;
        let arch = Arch::host().context("no release binary for this architecture")?;
        for (what, build) in build_commands(self.sh, arch) {
            self.report
                .commands
                .push((format!("build: {what}"), build.to_string()));
        }

        self.grow_mounts(SMALL)?;
        eprintln!("bench: HTTP load, {SMALL} mounts");
        self.http()?;
        eprintln!("bench: startup");
        self.startup()?;
        let mut stops = self.plan.scale.clone();
        stops.extend([SMALL, LARGE]);
        stops.sort();
        stops.dedup();
        for mounts in stops {
            self.grow_mounts(mounts)?;
            if mounts == SMALL || mounts == LARGE {
                eprintln!("bench: memory and scrapes, {mounts} mounts");
                self.memory_and_scrape(mounts)?;
            }
            if self.plan.scale.contains(&mounts) {
                eprintln!("bench: check rounds, {mounts} mounts");
                self.scale(mounts)?;
            }
        }

        let section = self.report.render();
        println!("{section}");
        if self.plan.write {
            BENCHMARKS.write_section(&section)?;
        }
        Ok(())
    }

    fn describe_machine(&mut self) -> anyhow::Result<()> {
        let plan = &self.plan;
        let report = &mut self.report;
        report.date = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        report.cores = cores();
        report.kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned();
        report.cpu = std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find_map(|line| Some(line.strip_prefix("model name")?.split_once(':')?.1.trim()))
            .unwrap_or("unknown CPU")
            .to_owned();
        let shipped = self.binaries.shipped.as_str();
        for (program, flag) in [
            (shipped, "--version"),
            ("nginx", "-v"),
            ("prometheus-node-exporter", "--version"),
            ("wrk", "-v"),
        ] {
            report.versions.push(version(program, flag));
        }
        let cpus = match &plan.pinning {
            Some((server, load)) => format!(
                "Servers run on CPU {server} and wrk on CPU {load} (`taskset`, wrk with {} \
                 thread(s)), so that neither takes CPU time from the other; pinned like this, \
                 mount-monitor's tokio runtime has {} worker thread(s) and node_exporter's Go \
                 runtime as many Ps. Only the musl/glibc comparison runs servers and wrk (with {} \
                 threads) on every CPU, where the runtime has a worker thread per CPU.",
                plan.threads_pinned,
                server.split(',').count(),
                plan.threads_shared
            ),
            None => "Servers and wrk share every CPU (`--no-pin`).".to_owned(),
        };
        report.settings = format!(
            "Load: `wrk -c{} -d{}s --latency`; of {} run(s) of each load, the one with the median \
             req/s is reported, its p99 with it. {cpus} Mounts: tmpfs of 1 MiB, configured with \
             `checkType = \"none\"`, in the benchmark's own mount namespace.",
            plan.connections, plan.duration, plan.runs
        );
        Ok(())
    }

    /// Mounts tmpfs until `count` are mounted under work/mnt.
    fn grow_mounts(&mut self, count: usize) -> anyhow::Result<()> {
        while self.mounted < count {
            let dir = self.mount_dir(self.mounted);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {dir}"))?;
            system::mount_tmpfs(dir.as_std_path(), "1m")?;
            self.mounted += 1;
        }
        Ok(())
    }

    fn mount_dir(&self, index: usize) -> Utf8PathBuf {
        self.work.join(format!("mnt/m{index:05}"))
    }

    /// A TOML config with the first `mounts` mounts; with `interval`, checks that often.
    fn write_config(
        &self,
        mounts: usize,
        interval: Option<Duration>,
    ) -> anyhow::Result<Utf8PathBuf> {
        let mut text = String::new();
        if let Some(interval) = interval {
            let _ = writeln!(
                text,
                "checkInterval = \"{}ms\"\nreadTimeout = \"{}ms\"",
                interval.as_millis(),
                interval.as_millis() / 2
            );
        }
        for index in 0..mounts {
            let _ = writeln!(
                text,
                "\n[[mounts]]\nname = \"m{index:05}\"\npath = \"{}\"\ncheckType = \"none\"",
                self.mount_dir(index)
            );
        }
        let name = match interval {
            Some(interval) => format!("{mounts}-mounts-every-{}ms.toml", interval.as_millis()),
            None => format!("{mounts}-mounts.toml"),
        };
        let file = self.work.join(name);
        std::fs::write(&file, text).with_context(|| format!("writing {file}"))?;
        Ok(file)
    }

    /// Starts a monitor serving `config` on a free loopback port, on the servers' CPUs.
    fn monitor(&mut self, binary: &Utf8Path, config: &Utf8Path) -> anyhow::Result<Server> {
        self.monitor_on(binary, config, Cpus::Pinned)
    }

    fn monitor_on(
        &mut self,
        binary: &Utf8Path,
        config: &Utf8Path,
        cpus: Cpus,
    ) -> anyhow::Result<Server> {
        let port = free_port()?;
        let mut command = self.on_cpus(cpus, Role::Server, binary.as_str());
        command
            .args(["--config", config.as_str()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--log-level", "warn"]);
        self.note(cpus.label("mount-monitor"), &command);
        Server::start(binary.as_str(), command, port, "/readyz")
    }

    /// Starts nginx (one worker) serving work/nginx/www on a free loopback port.
    fn nginx(&mut self) -> anyhow::Result<Server> {
        self.nginx_on(Cpus::Pinned)
    }

    fn nginx_on(&mut self, cpus: Cpus) -> anyhow::Result<Server> {
        let prefix = self.work.join("nginx");
        std::fs::create_dir_all(prefix.join("tmp"))?;
        std::fs::create_dir_all(prefix.join("www"))?;
        let port = free_port()?;
        let config = prefix.join("nginx.conf");
        std::fs::write(&config, nginx_config(&prefix, port))
            .with_context(|| format!("writing {config}"))?;
        let mut command = self.on_cpus(cpus, Role::Server, "nginx");
        command.args(["-c", config.as_str(), "-p", prefix.as_str(), "-e"]);
        command.arg(prefix.join("error.log"));
        self.note(cpus.label("nginx"), &command);
        if self.report.nginx_config.is_empty() {
            self.report.nginx_config = self.relative(&nginx_config(&prefix, port));
        }
        Server::start("nginx", command, port, "/readyz")
    }

    /// Starts node_exporter with only its filesystem collector, on the benchmark's mounts only.
    fn node_exporter(&mut self) -> anyhow::Result<Server> {
        let port = free_port()?;
        let keep = self.work.join("mnt");
        let exclude = exclude_regex(&system::mount_points()?, keep.as_str());
        let fixed = [
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--web.disable-exporter-metrics".to_owned(),
            "--collector.disable-defaults".to_owned(),
            "--collector.filesystem".to_owned(),
            "--log.level=warn".to_owned(),
        ];
        let mut command = self.on_cpus(Cpus::Pinned, Role::Server, "prometheus-node-exporter");
        command.args(&fixed);
        let mut shown = command.get_program().to_string_lossy().into_owned();
        for arg in command.get_args() {
            let _ = write!(shown, " {}", arg.to_string_lossy());
        }
        let _ = write!(
            shown,
            " '--collector.filesystem.mount-points-exclude=^(<every mount point not under {}>)$'",
            self.relative(keep.as_str())
        );
        self.note_shown("node_exporter", shown);
        command.arg(format!(
            "--collector.filesystem.mount-points-exclude={exclude}"
        ));
        command.stderr(Stdio::null());
        Server::start("node_exporter", command, port, "/metrics")
    }

    /// The release binary beside nginx, pinned; then the three builds on every CPU.
    fn http(&mut self) -> anyhow::Result<()> {
        let config = self.write_config(SMALL, None)?;
        let shipped_path = self.binaries.shipped.clone();
        let shipped = self.monitor(&shipped_path, &config)?;
        // nginx serves each endpoint's body as a static file: the same bytes, at the same path.
        let www = self.work.join("nginx/www");
        let mut sizes = Vec::new();
        for path in ENDPOINTS {
            let body = shipped.get(path)?;
            let file = www.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(file.parent().unwrap_or(www.as_path()))
                .with_context(|| format!("creating the directory of {file}"))?;
            std::fs::write(&file, &body).with_context(|| format!("writing {file}"))?;
            sizes.push(body.len());
        }
        let nginx = self.nginx()?;
        let mut endpoints = Vec::new();
        for (path, body_bytes) in ENDPOINTS.into_iter().zip(sizes) {
            // Interleaved, so that a slow spell of the machine hits every server alike.
            let (mut nginx_runs, mut shipped_runs) = (Vec::new(), Vec::new());
            for _ in 0..self.plan.runs {
                nginx_runs.push(self.wrk(&nginx, path)?);
                shipped_runs.push(self.wrk(&shipped, path)?);
            }
            endpoints.push(Endpoint {
                path: path.to_owned(),
                body_bytes,
                nginx: median_load(&nginx_runs),
                shipped: median_load(&shipped_runs),
                threaded: Builds::default(),
            });
        }
        drop((shipped, nginx));

        let binaries = [
            self.binaries.glibc.clone(),
            self.binaries.musl_malloc.clone(),
            self.binaries.shipped.clone(),
        ];
        let monitors = binaries
            .iter()
            .map(|binary| self.monitor_on(binary, &config, Cpus::Shared))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for endpoint in &mut endpoints {
            let mut runs: [Vec<Load>; 3] = Default::default();
            for _ in 0..self.plan.runs {
                for (monitor, runs) in monitors.iter().zip(&mut runs) {
                    runs.push(self.wrk_on(monitor, &endpoint.path, Cpus::Shared)?);
                }
            }
            endpoint.threaded = Builds {
                glibc: median_load(&runs[0]),
                musl_malloc: median_load(&runs[1]),
                shipped: median_load(&runs[2]),
            };
        }
        self.report.http = endpoints;
        Ok(())
    }

    fn startup(&mut self) -> anyhow::Result<()> {
        let config = self.write_config(SMALL, None)?;
        let shipped = self.binaries.shipped.clone();
        let mut startup = Startup {
            mounts: SMALL,
            ..Startup::default()
        };
        for _ in 0..self.plan.startup_runs {
            let monitor = self.monitor_on(&shipped, &config, Cpus::Shared)?;
            startup.monitor.push(monitor.ready_after);
            drop(monitor);
            startup.nginx.push(self.nginx_on(Cpus::Shared)?.ready_after);
        }
        self.report.startup = startup;
        Ok(())
    }

    fn memory_and_scrape(&mut self, mounts: usize) -> anyhow::Result<()> {
        let config = self.write_config(mounts, None)?;
        let shipped = self.binaries.shipped.clone();
        let monitor = self.monitor(&shipped, &config)?;
        let exporter = self.node_exporter()?;
        std::thread::sleep(Duration::from_secs(2));
        let monitor_idle = system::status(monitor.pid())?;
        let exporter_idle = system::status(exporter.pid())?;
        let monitor_bytes = monitor.get("/metrics")?.len();
        let exporter_bytes = exporter.get("/metrics")?.len();
        let (mut monitor_runs, mut exporter_runs) = (Vec::new(), Vec::new());
        let (mut monitor_peak, mut exporter_peak) = (0, 0);
        for _ in 0..self.plan.runs {
            let (load, peak) = self.wrk_sampled(&monitor, "/metrics")?;
            monitor_runs.push(load);
            monitor_peak = monitor_peak.max(peak);
            let (load, peak) = self.wrk_sampled(&exporter, "/metrics")?;
            exporter_runs.push(load);
            exporter_peak = exporter_peak.max(peak);
        }
        self.report.memory.push(Memory {
            mounts,
            monitor_idle,
            monitor_load_kib: monitor_peak,
            exporter_idle,
            exporter_load_kib: exporter_peak,
        });
        self.report.scrape.push(Scrape {
            mounts,
            monitor: median_load(&monitor_runs),
            monitor_bytes,
            exporter: median_load(&exporter_runs),
            exporter_bytes,
        });
        Ok(())
    }

    fn scale(&mut self, mounts: usize) -> anyhow::Result<()> {
        let config = self.write_config(mounts, Some(SERVE_INTERVAL))?;
        let shipped = self.binaries.shipped.clone();
        let (mut walls, mut cpus) = (Vec::new(), Vec::new());
        for _ in 0..self.plan.runs {
            let mut command = Command::new(&shipped);
            command.args([
                "check",
                "--format",
                "json",
                "--config",
                config.as_str(),
                "--log-level",
                "warn",
            ]);
            self.note("check round", &command);
            command.stdout(Stdio::null());
            let cpu_before = system::waited_children_cpu();
            let started = Instant::now();
            let status = command
                .status()
                .with_context(|| format!("running {shipped} check"))?;
            walls.push(started.elapsed());
            cpus.push(system::waited_children_cpu().saturating_sub(cpu_before));
            if !status.success() {
                bail!(
                    "`{shipped} check --config {config}` exited with {status}: one of the \
                     benchmark's tmpfs mounts is not healthy (its table is above)"
                );
            }
        }

        let monitor = self.monitor_on(&shipped, &config, Cpus::Shared)?;
        // Past the first rounds, which start every probe thread.
        std::thread::sleep(SERVE_INTERVAL * 3);
        let before = system::cpu_time(monitor.pid())?;
        std::thread::sleep(self.plan.serve_window);
        let used = system::cpu_time(monitor.pid())?.saturating_sub(before);
        let rounds = self.plan.serve_window.as_secs_f64() / SERVE_INTERVAL.as_secs_f64();
        drop(monitor);

        self.report.scale.push(Scale {
            mounts,
            check_wall: median(&walls),
            check_cpu: median(&cpus),
            serve_cpu_per_round: used.div_f64(rounds),
        });
        Ok(())
    }

    fn wrk(&mut self, server: &Server, path: &str) -> anyhow::Result<Load> {
        self.wrk_on(server, path, Cpus::Pinned)
    }

    fn wrk_on(&mut self, server: &Server, path: &str, cpus: Cpus) -> anyhow::Result<Load> {
        let url = format!("http://127.0.0.1:{}{path}", server.port);
        let threads = match cpus {
            Cpus::Pinned => self.plan.threads_pinned,
            Cpus::Shared => self.plan.threads_shared,
        };
        let mut command = self.on_cpus(cpus, Role::Load, "wrk");
        command.args([
            format!("-t{threads}"),
            format!("-c{}", self.plan.connections),
            format!("-d{}s", self.plan.duration),
            "--latency".to_owned(),
            url.clone(),
        ]);
        self.note(cpus.label("load"), &command);
        let output = command
            .stderr(Stdio::inherit())
            .output()
            .context("running wrk")?;
        if !output.status.success() {
            bail!(
                "wrk against {url} ({}) failed: {}",
                server.name,
                output.status
            );
        }
        let load = wrk::parse(&String::from_utf8_lossy(&output.stdout))?;
        if load.errors > 0 {
            bail!(
                "{} answered {url} with {} errors or non-2xx responses under load: its figures \
                 would not be comparable",
                server.name,
                load.errors
            );
        }
        Ok(load)
    }

    /// [`Self::wrk`], sampling the server's RSS every 50 ms meanwhile; returns the highest, KiB.
    fn wrk_sampled(&mut self, server: &Server, path: &str) -> anyhow::Result<(Load, u64)> {
        let pid = server.pid();
        let done = AtomicBool::new(false);
        let peak = AtomicU64::new(0);
        let load = std::thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    if let Ok(status) = system::status(pid) {
                        peak.fetch_max(status.rss_kib, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
            let load = self.wrk(server, path);
            done.store(true, Ordering::Relaxed);
            load
        })?;
        Ok((load, peak.load(Ordering::Relaxed)))
    }

    /// `program`, on the CPUs of its role when pinned.
    fn on_cpus(&self, cpus: Cpus, role: Role, program: &str) -> Command {
        let list = match (cpus, &self.plan.pinning) {
            (Cpus::Pinned, Some((server, load))) => Some(match role {
                Role::Server => server.as_str(),
                Role::Load => load.as_str(),
            }),
            _ => None,
        };
        match list {
            Some(list) => {
                let mut command = Command::new("taskset");
                command.args(["-c", list, program]);
                command
            }
            None => Command::new(program),
        }
    }

    /// Records the first command of each kind for the report.
    fn note(&mut self, what: impl AsRef<str>, command: &Command) {
        let what = what.as_ref();
        let mut shown = command.get_program().to_string_lossy().into_owned();
        for arg in command.get_args() {
            let arg = arg.to_string_lossy();
            if arg.is_empty() || arg.contains(' ') {
                let _ = write!(shown, " '{arg}'");
            } else {
                let _ = write!(shown, " {arg}");
            }
        }
        let shown = self.relative(&shown);
        self.note_shown(what, shown);
    }

    fn note_shown(&mut self, what: &str, shown: String) {
        if !self.report.commands.iter().any(|(w, _)| w == what) {
            self.report.commands.push((what.to_owned(), shown));
        }
    }

    fn relative(&self, text: &str) -> String {
        text.replace(&format!("{}/", self.root), "")
    }
}

/// Where a server and its load run: on their halves of the CPUs ([`split_cpus`]), or both on
/// every CPU, where a server's runtime has one thread per CPU (what musl's malloc lock needs to
/// show).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cpus {
    Pinned,
    Shared,
}

impl Cpus {
    fn label(self, what: &str) -> String {
        match self {
            Cpus::Pinned => what.to_owned(),
            Cpus::Shared => format!("{what}, on every CPU"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Role {
    Server,
    Load,
}

/// The allowed CPUs split in two `taskset -c` lists, servers first: the servers never lose CPU
/// time to the load generator, and the other way round. None with a single CPU.
fn split_cpus(cpus: &[usize]) -> Option<(String, String)> {
    if cpus.len() < 2 {
        return None;
    }
    let list = |cpus: &[usize]| {
        let names: Vec<String> = cpus.iter().map(usize::to_string).collect();
        names.join(",")
    };
    let (server, load) = cpus.split_at(cpus.len().div_ceil(2));
    Some((list(server), list(load)))
}

/// nginx as its ceiling: one worker, no access log, keep-alive as long as wrk likes, sendfile
/// as Debian's own configuration has it.
fn nginx_config(prefix: &Utf8Path, port: u16) -> String {
    format!(
        "daemon off;
worker_processes 1;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    types {{ }}
    default_type application/json;
    server {{
        listen 127.0.0.1:{port};
        root {prefix}/www;
    }}
}}
"
    )
}

/// node_exporter's `mount-points-exclude`: every mount point except those under `keep`, exactly
/// (Go's regexp has no negative look-ahead to say "not under").
fn exclude_regex(mount_points: &[String], keep: &str) -> String {
    let keep = format!("{}/", keep.trim_end_matches('/'));
    let mut others: Vec<String> = mount_points
        .iter()
        .filter(|point| !point.starts_with(&keep))
        .map(|point| regex_escape(point))
        .collect();
    others.sort();
    others.dedup();
    format!("^(?:{})$", others.join("|"))
}

fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What a program says its version is, in a few words.
fn version(program: &str, flag: &str) -> String {
    match Command::new(program).arg(flag).output() {
        Ok(output) => short_version(
            &(String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr)),
        ),
        Err(_) => format!("{program} (unknown version)"),
    }
}

/// The first line of a version banner without build details: `nginx version: nginx/1.22.1` →
/// `nginx/1.22.1`, `node_exporter, version 1.5.0 (branch: …)` → `node_exporter 1.5.0`.
fn short_version(banner: &str) -> String {
    let line = banner.lines().next().unwrap_or_default();
    let line = line
        .split_once("version: ")
        .map_or(line, |(_, after)| after);
    let line = line.split(['(', '[']).next().unwrap_or_default();
    line.replace(", version ", " ").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_exporter_keeps_only_the_benchmark_mounts() {
        let points = [
            "/".to_owned(),
            "/proc".to_owned(),
            "/work/target/bench/perf".to_owned(),
            "/work/target/bench/perf/mnt/m00000".to_owned(),
            "/work/target/bench/perf/mnt/m00001".to_owned(),
            "/var/lib/docker".to_owned(),
            "/run/a+b".to_owned(),
        ];
        assert_eq!(
            exclude_regex(&points, "/work/target/bench/perf/mnt"),
            r"^(?:/|/proc|/run/a\+b|/var/lib/docker|/work/target/bench/perf)$"
        );
    }

    #[test]
    fn servers_and_load_get_halves_of_the_cpus() {
        assert_eq!(split_cpus(&[0, 1]), Some(("0".into(), "1".into())));
        assert_eq!(
            split_cpus(&[4, 5, 6, 7, 9]),
            Some(("4,5,6".into(), "7,9".into()))
        );
        assert_eq!(split_cpus(&[3]), None);
        assert_eq!(split_cpus(&[]), None);
    }

    #[test]
    fn versions_are_shortened_to_name_and_number() {
        assert_eq!(
            short_version("nginx version: nginx/1.22.1\n"),
            "nginx/1.22.1"
        );
        assert_eq!(
            short_version("node_exporter, version 1.5.0 (branch: debian/sid)\n  build user: x"),
            "node_exporter 1.5.0"
        );
        assert_eq!(
            short_version("wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer\nUsage:"),
            "wrk debian/4.1.0-3+b2"
        );
        assert_eq!(
            short_version("mount-monitor 0.1.0\n"),
            "mount-monitor 0.1.0"
        );
    }

    #[test]
    fn quick_runs_are_short_and_do_not_write() {
        let bench = Perf {
            quick: true,
            duration: None,
            runs: None,
            connections: 10,
            no_pin: false,
            scale: vec![],
            no_build: false,
            no_write: false,
            in_namespace: false,
        };
        let plan = bench.plan();
        assert_eq!((plan.duration, plan.runs), (1, 1));
        assert_eq!(plan.scale, [1, 100, 1000]);
        assert!(!plan.write);
        let full = Perf {
            quick: false,
            scale: vec![5000, 1, 100, 100],
            ..bench
        }
        .plan();
        assert_eq!(full.scale, [1, 100, 5000], "sorted, once each");
        assert!(full.write);
    }
}
