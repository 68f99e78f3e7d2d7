//! `cargo xtask bench perf`: mount-monitor's performance over real tmpfs mounts, each figure beside a
//! baseline measured in the same run (nginx for HTTP, a glibc build for the static musl binary,
//! node_exporter for memory and scrapes, the one-mount round for scale, and with `--peer`
//! debrid-mount-monitor, the service it succeeds). Rewrites the "## Performance" section of
//! BENCHMARKS.md; `--only` measures some sections and prints them.
//!
//! Needs root (it mounts up to 5,000 tmpfs) and `wrk`, `nginx` and `prometheus-node-exporter`.
//! The measuring half runs as PID 1 of its own mount and PID namespaces ([`system`]), so its
//! mounts and servers vanish with it however it ends.

mod peer;
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
use peer::{CANARY, PEER_SIZES, PeerBinary, peer_version};
use report::{
    BuildLoads, Endpoint, Memory, MuslBuild, Peer, Report, Runs, Scale, Scrape, Spread, Startup,
    median_f64, median_load,
};
use servers::{Server, free_port};
use wrk::Load;

/// Runs of one load before its errors (a timeout, a refused connection) fail the benchmark: a
/// run with any is not a fair figure, and is run again.
const WRK_ATTEMPTS: usize = 3;

/// Programs the benchmark runs, and the Debian package that has each.
const TOOLS: [(&str, &str); 4] = [
    ("wrk", "wrk"),
    ("nginx", "nginx-light"),
    ("prometheus-node-exporter", "prometheus-node-exporter"),
    ("unshare", "util-linux"),
];

/// The endpoints under HTTP load.
const ENDPOINTS: [&str; 3] = ["/healthz/status", "/readyz", "/metrics"];

/// Mounts for the HTTP, startup, memory and scrape figures; HTTP also at [`MEDIUM`], memory and
/// scrape also at [`LARGE`].
const SMALL: usize = 10;
const MEDIUM: usize = 100;
const LARGE: usize = 1000;

/// The mount counts of the HTTP comparison with nginx.
const HTTP_SIZES: [usize; 2] = [SMALL, MEDIUM];

/// The mount counts of the comparison of builds (glibc, and musl with each allocator).
const BUILD_SIZES: [usize; 3] = [SMALL, MEDIUM, LARGE];

/// The size of each benchmark tmpfs.
const MOUNT_SIZE: &str = "1m";

/// The serving monitor's check interval in the scale test (the shortest it accepts).
const SERVE_INTERVAL: Duration = Duration::from_secs(1);

/// Measure HTTP throughput, memory, check rounds and startup beside baselines from the same run,
/// and debrid-mount-monitor beside the release binary with --peer; writes the "## Performance"
/// section of BENCHMARKS.md (as root, in about 20 minutes once the binaries are built)
#[derive(clap::Args, Debug, Clone)]
pub struct Perf {
    /// A smoke run of about 2 minutes (1 s loads, one run each, up to 1,000 mounts) that prints
    /// the section instead of writing BENCHMARKS.md
    #[arg(long)]
    pub quick: bool,

    /// debrid-mount-monitor, built from source, to measure beside the release binary (relative
    /// paths are taken from the workspace root); without it, the report says it was not measured
    #[arg(long, value_name = "PATH")]
    pub peer: Option<Utf8PathBuf>,

    /// Measure only these sections and print them instead of writing BENCHMARKS.md (which only a
    /// full run writes)
    #[arg(long, value_delimiter = ',', value_name = "SECTION,…")]
    pub only: Vec<Section>,

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

/// The sections of the report, each of which `--only` can measure alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Section {
    /// The release binary beside nginx, at 10 and 100 mounts
    Http,
    /// Static musl beside glibc
    Builds,
    /// Memory and `/metrics` scrapes beside node_exporter, at 10 and 1,000 mounts
    Memory,
    /// Check rounds at the sizes of --scale
    Scale,
    /// Start to ready beside nginx
    Startup,
    /// Beside debrid-mount-monitor (needs --peer), at 10 and 100 mounts
    Peer,
}

impl Section {
    pub const ALL: [Section; 6] = [
        Section::Http,
        Section::Builds,
        Section::Memory,
        Section::Scale,
        Section::Startup,
        Section::Peer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Section::Http => "http",
            Section::Builds => "builds",
            Section::Memory => "memory",
            Section::Scale => "scale",
            Section::Startup => "startup",
            Section::Peer => "peer",
        }
    }
}

/// The sizes and durations of one run.
#[derive(Clone, Debug)]
struct Plan {
    duration: u64,
    runs: usize,
    /// Runs of each load in the side-by-side comparison of the builds, whose medians are of
    /// ratios (more runs, as each is shorter work: every build is loaded at once).
    side_by_side_runs: usize,
    connections: usize,
    /// `taskset -c` lists for the servers and for wrk.
    pinning: Option<(String, String)>,
    /// wrk's threads: one per CPU it may use, pinned and not.
    threads_pinned: usize,
    threads_shared: usize,
    scale: Vec<usize>,
    serve_window: Duration,
    startup_runs: usize,
    /// Trials of each fault beside debrid-mount-monitor.
    detection_trials: usize,
    /// The sections to measure, in the report's order.
    sections: Vec<Section>,
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
        let mut sections = if self.only.is_empty() {
            Section::ALL.to_vec()
        } else {
            self.only.clone()
        };
        sections.sort();
        sections.dedup();
        let runs = self.runs.unwrap_or(if self.quick { 1 } else { 5 }).max(1);
        Plan {
            duration: self
                .duration
                .unwrap_or(if self.quick { 1 } else { 3 })
                .max(1),
            runs,
            side_by_side_runs: runs * 2 - 1,
            connections,
            threads_pinned: load_cpus.min(connections),
            threads_shared: cores().min(connections),
            pinning,
            scale,
            serve_window: Duration::from_secs(if self.quick { 3 } else { 10 }),
            startup_runs: if self.quick { 3 } else { 20 },
            detection_trials: if self.quick { 3 } else { 10 },
            sections,
            // A partial run never overwrites the section a full run wrote.
            write: !self.quick && !self.no_write && self.only.is_empty(),
        }
    }

    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let arch = Arch::host().context(
            "cargo xtask bench perf measures the release binary of this machine's architecture, and \
             there is none for it (amd64 and arm64 only)",
        )?;
        let binaries = Binaries::of(arch);
        let plan = self.plan();
        let peer = self
            .peer
            .as_deref()
            .map(|given| PeerBinary::new(&project_root(), given));
        match &peer {
            Some(peer) if !peer.path.is_file() => bail!(
                "--peer {}: no such file; give the path of a debrid-mount-monitor binary built from \
                 source",
                peer.shown
            ),
            None if plan.sections == [Section::Peer] => bail!(
                "--only peer measures debrid-mount-monitor beside the release binary: give its \
                 binary, built from source, with --peer PATH"
            ),
            _ => {}
        }
        if self.in_namespace {
            return Measure::new(sh, plan, binaries, peer)?.run();
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
            let needed = if plan.sections.contains(&Section::Builds) {
                binaries.all()
            } else {
                vec![binaries.shipped.as_path()]
            };
            for binary in needed {
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

/// The release binary's allocator: mount-monitor's default cargo feature for musl targets.
pub(crate) const SHIPPED_ALLOCATOR: &str = "mimalloc";

/// The other allocators the static musl build is measured with: the name, the cargo feature
/// flags that select it, and the target directory (under target/bench) of that build.
const OTHER_ALLOCATORS: [(&str, &[&str], &str); 2] = [
    ("musl's malloc", &["--no-default-features"], "musl-malloc"),
    (
        "dlmalloc",
        &["--no-default-features", "--features=dlmalloc"],
        "musl-dlmalloc",
    ),
];

/// The builds measured, relative to the workspace root.
struct Binaries {
    /// `cargo xtask dist`'s: static musl, with [`SHIPPED_ALLOCATOR`].
    shipped: Utf8PathBuf,
    /// A plain glibc release build.
    glibc: Utf8PathBuf,
    /// The same static musl code with each of [`OTHER_ALLOCATORS`].
    others: Vec<(&'static str, Utf8PathBuf)>,
}

impl Binaries {
    fn of(arch: Arch) -> Binaries {
        Binaries {
            shipped: Utf8PathBuf::from(format!("target/dist/{}", arch.artifact_name())),
            glibc: Utf8PathBuf::from(format!("target/release/{BINARY}")),
            others: OTHER_ALLOCATORS
                .iter()
                .map(|(name, _, dir)| {
                    let path = format!("target/bench/{dir}/{}/release/{BINARY}", arch.triple());
                    (*name, Utf8PathBuf::from(path))
                })
                .collect(),
        }
    }

    fn all(&self) -> Vec<&Utf8Path> {
        let mut all = vec![self.shipped.as_path(), self.glibc.as_path()];
        all.extend(self.others.iter().map(|(_, path)| path.as_path()));
        all
    }
}

fn build_commands(sh: &Shell, arch: Arch) -> Vec<(String, xshell::Cmd<'_>)> {
    let (docker_arch, triple) = (arch.docker_arch(), arch.triple());
    let mut commands = vec![
        (
            "release binary (static musl)".to_owned(),
            cmd!(sh, "cargo xtask dist --arch {docker_arch}"),
        ),
        (
            "glibc build".to_owned(),
            cmd!(
                sh,
                "cargo build --release --locked --package {BINARY} --bin {BINARY}"
            ),
        ),
    ];
    // The C compiler `dist` uses for this target, for allocators written in C.
    let c_compiler = xtask::dist::c_compiler_env(arch);
    for (name, features, dir) in OTHER_ALLOCATORS {
        let target_dir = format!("target/bench/{dir}");
        let mut build = cmd!(
            sh,
            "cargo build --release --locked --package {BINARY} --bin {BINARY} --target {triple} {features...} --target-dir {target_dir}"
        );
        for (variable, value) in &c_compiler {
            build = build.env(variable, value);
        }
        commands.push((format!("musl build with {name}"), build));
    }
    commands
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
    /// debrid-mount-monitor, with `--peer`.
    peer: Option<PeerBinary>,
}

impl<'a> Measure<'a> {
    fn new(
        sh: &'a Shell,
        plan: Plan,
        binaries: Binaries,
        peer: Option<PeerBinary>,
    ) -> anyhow::Result<Self> {
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
            peer,
        })
    }

    fn run(mut self) -> anyhow::Result<()> {
        self.describe_machine()?;
        let arch = Arch::host().context("no release binary for this architecture")?;
        for (what, build) in build_commands(self.sh, arch) {
            let what = &what;
            self.report
                .commands
                .push((format!("build: {what}"), build.to_string()));
        }

        let sections = self.plan.sections.clone();
        let has = |section| sections.contains(&section);
        // Every size at which something is measured, smallest first: the mounts only grow, and
        // everything at a size is measured while exactly that many are mounted.
        let mut stops = Vec::new();
        if has(Section::Http) {
            stops.extend(HTTP_SIZES);
        }
        if has(Section::Builds) {
            stops.extend(BUILD_SIZES);
        }
        if has(Section::Startup) {
            stops.push(SMALL);
        }
        if has(Section::Peer) && self.peer.is_some() {
            stops.extend(PEER_SIZES);
        }
        if has(Section::Memory) {
            stops.extend([SMALL, LARGE]);
        }
        if has(Section::Scale) {
            stops.extend(&self.plan.scale);
        }
        stops.sort();
        stops.dedup();
        for mounts in stops {
            self.grow_mounts(mounts)?;
            if has(Section::Http) && HTTP_SIZES.contains(&mounts) {
                eprintln!("bench: HTTP load beside nginx, {mounts} mounts");
                self.http(mounts)?;
            }
            if has(Section::Builds) && BUILD_SIZES.contains(&mounts) {
                eprintln!("bench: HTTP load on each build, {mounts} mounts");
                self.builds(mounts)?;
            }
            if has(Section::Startup) && mounts == SMALL {
                eprintln!("bench: startup");
                self.startup()?;
            }
            if has(Section::Peer) && PEER_SIZES.contains(&mounts) {
                self.peer(mounts)?;
            }
            if has(Section::Memory) && (mounts == SMALL || mounts == LARGE) {
                eprintln!("bench: memory and scrapes, {mounts} mounts");
                self.memory_and_scrape(mounts)?;
            }
            if has(Section::Scale) && self.plan.scale.contains(&mounts) {
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
        report.sections = plan.sections.clone();
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
        if let Some(peer) = &self.peer
            && plan.sections.contains(&Section::Peer)
        {
            let version = peer_version(&peer.path);
            report.versions.push(version.clone());
            report.peer = Some(Peer {
                version,
                shown: peer.shown.clone(),
                sizes: Vec::new(),
            });
        }
        let cpus = match &plan.pinning {
            Some((server, load)) => format!(
                "Servers run on CPU {server} and wrk on CPU {load} (`taskset`, wrk with {} \
                 thread(s)), so that neither takes CPU time from the other; pinned like this, \
                 mount-monitor's tokio runtime has {} worker thread(s) and node_exporter's Go \
                 runtime as many Ps. The musl/glibc comparison also runs servers and wrk (with {} \
                 threads) on every CPU at 100 mounts, where the runtime has a worker thread per \
                 CPU (two at most).",
                plan.threads_pinned,
                server.split(',').count(),
                plan.threads_shared
            ),
            None => "Servers and wrk share every CPU (`--no-pin`).".to_owned(),
        };
        report.settings = format!(
            "Load: `wrk -c{} -d{}s --latency`; of {} run(s) of each load, the one with the median \
             req/s is reported, its p99 with it; the builds, all loaded at once, in {} runs of \
             each load ({} on every CPU). {cpus} Mounts: tmpfs of 1 MiB in the \
             benchmark's own mount namespace, each holding a canary file `{CANARY}`, configured \
             with `checkType = \"none\"` except beside debrid-mount-monitor, where both read the \
             canary.",
            plan.connections,
            plan.duration,
            plan.runs,
            plan.side_by_side_runs,
            plan.side_by_side_runs * 2 - 1
        );
        Ok(())
    }

    /// Mounts tmpfs until `count` are mounted under work/mnt.
    fn grow_mounts(&mut self, count: usize) -> anyhow::Result<()> {
        while self.mounted < count {
            let dir = self.mount_dir(self.mounted);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {dir}"))?;
            system::mount_tmpfs(dir.as_std_path(), MOUNT_SIZE)?;
            put_canary(&dir)?;
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

    /// The release binary beside nginx at `mounts` mounts, pinned.
    fn http(&mut self, mounts: usize) -> anyhow::Result<()> {
        let config = self.write_config(mounts, None)?;
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
        for (path, body_bytes) in ENDPOINTS.into_iter().zip(sizes) {
            // Interleaved, so that a slow spell of the machine hits every server alike.
            let (mut nginx_runs, mut shipped_runs) = (Vec::new(), Vec::new());
            for _ in 0..self.plan.runs {
                nginx_runs.push(self.wrk(&nginx, path)?);
                shipped_runs.push(self.wrk(&shipped, path)?);
            }
            let ratios: Vec<f64> = nginx_runs
                .iter()
                .zip(&shipped_runs)
                .map(|(nginx, shipped)| shipped.requests_per_sec / nginx.requests_per_sec)
                .collect();
            self.report.http.push(Endpoint {
                mounts,
                path: path.to_owned(),
                body_bytes,
                nginx: median_load(&nginx_runs),
                shipped: median_load(&shipped_runs),
                vs_nginx: Spread::of(&ratios),
            });
        }
        Ok(())
    }

    /// Every build under load at once at `mounts` mounts, pinned, and at [`MEDIUM`] also on
    /// every CPU: the servers share their CPUs, so a build that costs more per request answers
    /// fewer of them in the same instants. Run after run the ratios to glibc hold within a few
    /// percent where runs of one build alone, minutes apart, vary by ten (a second glibc server,
    /// the control, shows the spread that is left).
    fn builds(&mut self, mounts: usize) -> anyhow::Result<()> {
        if self.report.musl_builds.is_empty() {
            let mut builds = vec![MuslBuild {
                allocator: SHIPPED_ALLOCATOR.to_owned(),
                shipped: true,
                size_bytes: self.file_size(&self.binaries.shipped)?,
            }];
            for (name, path) in &self.binaries.others {
                builds.push(MuslBuild {
                    allocator: (*name).to_owned(),
                    shipped: false,
                    size_bytes: self.file_size(path)?,
                });
            }
            self.report.musl_builds = builds;
        }
        let config = self.write_config(mounts, None)?;
        // glibc, glibc again (the control), then the musl builds in the report's order.
        let glibc = self.binaries.glibc.clone();
        let mut binaries = vec![glibc.clone(), glibc, self.binaries.shipped.clone()];
        binaries.extend(self.binaries.others.iter().map(|(_, path)| path.clone()));
        let placements = if mounts == MEDIUM {
            vec![Cpus::Pinned, Cpus::Shared]
        } else {
            vec![Cpus::Pinned]
        };
        for cpus in placements {
            // On every CPU, wrk shares the CPUs with the servers: glibc, its control and the
            // release binary only (fewer threads to schedule), in twice the runs.
            let (count, runs) = match cpus {
                Cpus::Pinned => (binaries.len(), self.plan.side_by_side_runs),
                Cpus::Shared => (3, self.plan.side_by_side_runs * 2 - 1),
            };
            let monitors = binaries[..count]
                .iter()
                .map(|binary| self.monitor_on(binary, &config, cpus))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let server_cpus = match (cpus, &self.plan.pinning) {
                (Cpus::Pinned, Some((server, _))) => server.split(',').count(),
                _ => cores(),
            };
            for path in ENDPOINTS {
                let mut rates = vec![Vec::new(); monitors.len()];
                let mut costs = vec![Vec::new(); monitors.len()];
                let mut busy = Vec::new();
                for _ in 0..runs {
                    let before = monitors
                        .iter()
                        .map(|m| system::thread_cpu_times(m.pid()))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    let started = Instant::now();
                    let loads = self.wrk_together(&monitors, path, cpus)?;
                    let wall = started.elapsed();
                    let mut all = Duration::ZERO;
                    for (k, (monitor, before)) in monitors.iter().zip(before).enumerate() {
                        let used = system::cpu_used_since(monitor.pid(), &before)?;
                        all += used;
                        rates[k].push(loads[k].requests_per_sec);
                        costs[k].push(used.as_secs_f64() / loads[k].requests.max(1) as f64);
                    }
                    busy.push(all.as_secs_f64() / (wall.as_secs_f64() * server_cpus as f64));
                }
                let mut runs = rates
                    .into_iter()
                    .zip(costs)
                    .map(|(rates, costs)| Runs { rates, costs });
                self.report.builds.push(BuildLoads {
                    mounts,
                    every_cpu: cpus == Cpus::Shared,
                    path: path.to_owned(),
                    glibc: runs.next().unwrap_or_default(),
                    control: runs.next().unwrap_or_default(),
                    musl: runs.collect(),
                    busy: median_f64(&busy),
                });
            }
        }
        Ok(())
    }

    fn file_size(&self, binary: &Utf8Path) -> anyhow::Result<u64> {
        let path = self.root.join(binary);
        Ok(std::fs::metadata(&path)
            .with_context(|| format!("reading the size of {path}"))?
            .len())
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
        let (url, mut command) = self.wrk_command(server, path, cpus);
        self.note(cpus.label("load"), &command);
        for attempt in 1..=WRK_ATTEMPTS {
            let output = command
                .stderr(Stdio::inherit())
                .output()
                .context("running wrk")?;
            let load = wrk_load(server, &url, &output)?;
            if load.errors == 0 {
                return Ok(load);
            }
            let what = errors_under_load(server, &url, &load);
            if attempt == WRK_ATTEMPTS {
                bail!("{what} in each of {WRK_ATTEMPTS} runs: its figures would not be comparable");
            }
            eprintln!("bench: {what}; running that load again");
            self.report.repeated_runs.push(what);
        }
        unreachable!("the last attempt returns or fails")
    }

    /// `wrk --latency` against `path` on `server` with the plan's load, on the load's CPUs;
    /// and the URL it loads.
    fn wrk_command(&self, server: &Server, path: &str, cpus: Cpus) -> (String, Command) {
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
        (url, command)
    }

    /// [`Self::wrk_on`] against every server at once, one wrk each, all started together.
    fn wrk_together(
        &mut self,
        servers: &[Server],
        path: &str,
        cpus: Cpus,
    ) -> anyhow::Result<Vec<Load>> {
        let mut running = Vec::new();
        for server in servers {
            let (url, mut command) = self.wrk_command(server, path, cpus);
            self.note(cpus.label("load, a wrk per server at once"), &command);
            let child = command
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .context("running wrk")?;
            running.push((server, url, child));
        }
        let mut loads = Vec::new();
        for (server, url, child) in running {
            let output = child.wait_with_output().context("waiting for wrk")?;
            let load = wrk_load(server, &url, &output)?;
            if load.errors > 0 {
                bail!(
                    "{}: its figures would not be comparable",
                    errors_under_load(server, &url, &load)
                );
            }
            loads.push(load);
        }
        Ok(loads)
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

    /// `text` with paths relative to the workspace root, and debrid-mount-monitor's as given.
    fn relative(&self, text: &str) -> String {
        let text = match &self.peer {
            Some(peer) => text.replace(peer.path.as_str(), &peer.shown),
            None => text.to_owned(),
        };
        text.replace(&format!("{}/", self.root), "")
    }
}

/// What a finished wrk run measured; an error when wrk itself failed.
fn wrk_load(server: &Server, url: &str, output: &std::process::Output) -> anyhow::Result<Load> {
    if !output.status.success() {
        bail!(
            "wrk against {url} ({}) failed: {}",
            server.name,
            output.status
        );
    }
    wrk::parse(&String::from_utf8_lossy(&output.stdout))
}

fn errors_under_load(server: &Server, url: &str, load: &Load) -> String {
    format!(
        "{} answered {url} with {} errors or non-2xx responses under load",
        server.name, load.errors
    )
}

/// Puts the canary debrid-mount-monitor reads (its default `canaryFile`) in the mount at `dir`.
fn put_canary(dir: &Utf8Path) -> anyhow::Result<()> {
    let file = dir.join(CANARY);
    std::fs::write(&file, "ok\n").with_context(|| format!("writing {file}"))
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

    /// A full run's flags, as `cargo xtask bench perf` alone gives them.
    fn perf() -> Perf {
        Perf {
            quick: false,
            peer: None,
            only: vec![],
            duration: None,
            runs: None,
            connections: 10,
            no_pin: false,
            scale: vec![],
            no_build: false,
            no_write: false,
            in_namespace: false,
        }
    }

    #[test]
    fn quick_runs_are_short_and_do_not_write() {
        let bench = Perf {
            quick: true,
            ..perf()
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
        assert_eq!(full.sections, Section::ALL, "every section");
        assert_eq!((plan.detection_trials, full.detection_trials), (3, 10));
    }

    #[test]
    fn a_run_of_some_sections_never_writes() {
        let bench = Perf {
            peer: Some("peers/debrid-mount-monitor".into()),
            only: vec![Section::Peer, Section::Http, Section::Peer],
            ..perf()
        };
        let plan = bench.plan();
        assert_eq!(
            plan.sections,
            [Section::Http, Section::Peer],
            "in the report's order"
        );
        assert!(!plan.write, "BENCHMARKS.md is written by full runs only");
        let names: Vec<&str> = Section::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            ["http", "builds", "memory", "scale", "startup", "peer"],
            "the names --only takes"
        );
        for section in Section::ALL {
            use clap::ValueEnum;
            assert_eq!(
                Section::from_str(section.name(), false),
                Ok(section),
                "--only {}",
                section.name()
            );
        }
    }
}
