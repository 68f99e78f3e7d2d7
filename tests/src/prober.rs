//! [`Prober`]: asks a monitor's endpoints over and over from a background thread, each time on a
//! new connection as kubelet does, and keeps every latency and every failure to answer.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one answer may take before it counts as a failure.
const PATIENCE: Duration = Duration::from_secs(2);

/// Stops asking when stopped or dropped (a failed test must not leave it running).
pub struct Prober {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Samples>>,
}

/// Every answer's latency, by path, and every failure to answer.
#[derive(Default, Debug)]
pub struct Samples {
    pub latencies: BTreeMap<String, Vec<Duration>>,
    pub statuses: BTreeMap<u16, u64>,
    pub failures: Vec<String>,
}

impl Prober {
    /// Cycles through `paths`, pausing `pause` between requests, until [`Prober::stop`].
    pub fn start(addr: SocketAddr, paths: &[&str], pause: Duration) -> Prober {
        Self::start_with(addr, paths, pause, || {})
    }

    /// As [`Prober::start`], with `setup` run first on the prober's thread (its priority).
    pub fn start_with(
        addr: SocketAddr,
        paths: &[&str],
        pause: Duration,
        setup: impl FnOnce() + Send + 'static,
    ) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let paths: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            setup();
            let mut samples = Samples::default();
            for path in paths.iter().cycle() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let started = Instant::now();
                match get(addr, path) {
                    Ok(status) => {
                        let latency = started.elapsed();
                        samples
                            .latencies
                            .entry(path.clone())
                            .or_default()
                            .push(latency);
                        *samples.statuses.entry(status).or_default() += 1;
                    }
                    Err(e) => samples
                        .failures
                        .push(format!("GET {path} after {:?}: {e}", started.elapsed())),
                }
                std::thread::sleep(pause);
            }
            samples
        });
        Prober {
            stop,
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) -> Samples {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().expect("stopped once");
        thread.join().expect("the prober thread does not panic")
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Samples {
    pub fn count(&self) -> usize {
        self.latencies.values().map(Vec::len).sum()
    }

    /// The slowest answer, and the path it was for.
    pub fn worst(&self) -> (Duration, &str) {
        self.latencies
            .iter()
            .flat_map(|(path, l)| l.iter().map(move |d| (*d, path.as_str())))
            .max()
            .unwrap_or((Duration::ZERO, ""))
    }

    /// The `p`th percentile (0–100) of every latency.
    pub fn percentile(&self, p: f64) -> Duration {
        let mut all: Vec<Duration> = self.latencies.values().flatten().copied().collect();
        if all.is_empty() {
            return Duration::ZERO;
        }
        all.sort_unstable();
        let at = ((all.len() - 1) as f64 * p / 100.0).round() as usize;
        all[at]
    }

    pub fn json(&self) -> serde_json::Value {
        let ms = |d: Duration| (d.as_secs_f64() * 1e4).round() / 10.0;
        let worst_by_path: BTreeMap<&str, f64> = self
            .latencies
            .iter()
            .map(|(path, l)| {
                (
                    path.as_str(),
                    ms(l.iter().max().copied().unwrap_or_default()),
                )
            })
            .collect();
        serde_json::json!({
            "requests": self.count(),
            "failures": self.failures.len(),
            "p50_ms": ms(self.percentile(50.0)),
            "p95_ms": ms(self.percentile(95.0)),
            "p99_ms": ms(self.percentile(99.0)),
            "worst_ms": ms(self.worst().0),
            "worst_ms_by_path": worst_by_path,
            "statuses": self.statuses.iter().map(|(s, n)| (s.to_string(), *n)).collect::<BTreeMap<_, _>>(),
        })
    }
}

/// One request on a new connection; the status code.
fn get(addr: SocketAddr, path: &str) -> Result<u16, String> {
    let mut stream = TcpStream::connect_timeout(&addr, PATIENCE).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(PATIENCE))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| e.to_string())?;
    let head = String::from_utf8_lossy(&response[..response.len().min(64)]).into_owned();
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {head:?}"))
}
