//! `cargo xtask bench probes`: how fast the probe endpoints answer while other clients load the
//! server, for the shipped binary with its fixed worker count, beside the same binary with more
//! workers and (with `--before`) another build, all measured in the same run, interleaved.
//!
//! Needs root (it mounts tmpfs). Prints a Markdown table; writes nothing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tests::prober::Prober;
use tests::{Monitor, Tmpfs, process};

use crate::measure::cores;

/// Probe latency under HTTP load: the shipped binary (2 workers), the same with
/// `--worker-threads` = 4 × CPUs, and `--before` if given; as root, about a minute per run
#[derive(clap::Args, Debug, Clone)]
pub struct Probes {
    /// Another build to measure beside this tree's (e.g. the previous release binary)
    #[arg(long, value_name = "BINARY")]
    pub before: Option<PathBuf>,

    /// Healthy tmpfs mounts, checked every 200 ms
    #[arg(long, default_value_t = 50)]
    pub mounts: usize,

    /// Threads loading the server with `GET /healthz/status` and `/metrics`, each on a new
    /// connection, as fast as answered [default: 4 × CPUs]
    #[arg(long)]
    pub load_threads: Option<usize>,

    /// Seconds of load per run
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,

    /// Runs of each binary, interleaved; all samples are pooled
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

/// One binary with its flags.
struct Variant {
    name: String,
    program: PathBuf,
    args: Vec<String>,
}

#[derive(Default)]
struct Figures {
    latencies: Vec<Duration>,
    failures: usize,
    load_requests: u64,
    peak_threads: u64,
}

impl Probes {
    pub fn run(self) -> anyhow::Result<()> {
        if !crate::perf::system::is_root() {
            bail!("bench probes mounts tmpfs: run it as root (`sudo -E cargo xtask bench probes`)");
        }
        let load_threads = self.load_threads.unwrap_or(4 * cores());
        let shipped = tests::shipped_binary().to_path_buf();
        let mut variants = vec![
            Variant {
                name: "this tree, default (2 workers)".into(),
                program: shipped.clone(),
                args: Vec::new(),
            },
            Variant {
                name: format!("this tree, --worker-threads {}", 4 * cores()),
                program: shipped,
                args: vec!["--worker-threads".into(), (4 * cores()).min(64).to_string()],
            },
        ];
        if let Some(before) = &self.before {
            std::fs::metadata(before)
                .with_context(|| format!("--before {}: no such binary", before.display()))?;
            variants.push(Variant {
                name: format!("--before {}", before.display()),
                program: before.clone(),
                args: Vec::new(),
            });
        }
        let mounts: Vec<Tmpfs> = (0..self.mounts).map(|_| Tmpfs::new("size=1m")).collect();
        let dir = tests::empty_workdir();
        let config = dir.path().join("probes.toml");
        let mut text = String::from("checkInterval = \"200ms\"\nreadTimeout = \"100ms\"\n");
        for (i, m) in mounts.iter().enumerate() {
            std::fs::write(m.path().join(".health-check"), "ok")
                .with_context(|| format!("writing the canary in {}", m.path().display()))?;
            text.push_str(&format!(
                "[[mounts]]\nname = \"m{i}\"\npath = \"{}\"\n",
                m.path().display()
            ));
        }
        std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;

        let mut figures: Vec<Figures> = variants.iter().map(|_| Figures::default()).collect();
        for run in 0..self.runs {
            for (variant, figures) in variants.iter().zip(&mut figures) {
                eprintln!("run {}/{}: {}", run + 1, self.runs, variant.name);
                let mut args = variant.args.clone();
                args.extend(["--config".into(), config.display().to_string()]);
                let monitor = Monitor::start_program(&variant.program, &args);
                monitor.wait_for("/readyz", 200, Duration::from_secs(10));
                measure(
                    &monitor,
                    load_threads,
                    Duration::from_secs(self.seconds),
                    figures,
                );
            }
        }

        let baseline = percentile(&mut figures[0].latencies, 0.99);
        println!(
            "{} healthy mounts checked every 200 ms; {load_threads} threads loading \
             `/healthz/status` and `/metrics`; a prober asking `/readyz` and `/livez` every 10 ms \
             on a new connection; {} runs of {} s each, interleaved; {} CPUs.\n",
            self.mounts,
            self.runs,
            self.seconds,
            cores()
        );
        println!(
            "| binary | probes | p50 ms | p99 ms | max ms | p99 / default's | failures | load requests/s | peak threads |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for (variant, f) in variants.iter().zip(&mut figures) {
            let p50 = percentile(&mut f.latencies, 0.5);
            let p99 = percentile(&mut f.latencies, 0.99);
            let max = percentile(&mut f.latencies, 1.0);
            println!(
                "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {:.0} | {} |",
                variant.name,
                f.latencies.len(),
                ms(p50),
                ms(p99),
                ms(max),
                p99.as_secs_f64() / baseline.as_secs_f64().max(1e-9),
                f.failures,
                f.load_requests as f64 / (self.seconds * self.runs as u64) as f64,
                f.peak_threads,
            );
        }
        Ok(())
    }
}

/// Loads the monitor for `span` while probing it; adds what was seen to `figures`.
fn measure(monitor: &Monitor, load_threads: usize, span: Duration, figures: &mut Figures) {
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let loaders: Vec<_> = (0..load_threads)
        .map(|i| {
            let (stop, served, addr) = (Arc::clone(&stop), Arc::clone(&served), monitor.addr);
            let path = if i % 4 == 3 {
                "/metrics"
            } else {
                "/healthz/status"
            };
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if get(addr, path) {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let prober = Prober::start(
        monitor.addr,
        &["/readyz", "/livez"],
        Duration::from_millis(10),
    );
    let until = Instant::now() + span;
    while Instant::now() < until {
        figures.peak_threads = figures
            .peak_threads
            .max(process::usage(monitor.pid()).threads);
        std::thread::sleep(Duration::from_millis(100));
    }
    let samples = prober.stop();
    stop.store(true, Ordering::Relaxed);
    for loader in loaders {
        let _ = loader.join();
    }
    figures.load_requests += served.load(Ordering::Relaxed);
    figures.failures += samples.failures.len();
    figures
        .latencies
        .extend(samples.latencies.into_values().flatten());
}

/// One request on a new connection; true when a whole response came back.
fn get(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = Vec::new();
    stream.read_to_end(&mut response).is_ok() && response.starts_with(b"HTTP/1.1 ")
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let at = ((samples.len() - 1) as f64 * p).round() as usize;
    samples[at]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
