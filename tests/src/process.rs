//! What a running process costs, read from `/proc`: threads, memory, open descriptors, and what
//! each of its threads is doing.

use std::time::Duration;

/// One sample of a process's resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub threads: u64,
    /// Resident memory now (`VmRSS`), and its peak since start (`VmHWM`), in KiB.
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
    pub fds: u64,
}

impl Usage {
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "threads": self.threads,
            "rss_kib": self.rss_kib,
            "peak_rss_kib": self.peak_rss_kib,
            "fds": self.fds,
        })
    }
}

/// The process's resources now; panics when it is gone.
pub fn usage(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("process {pid} is gone: {e}"));
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count() as u64);
    Usage {
        threads: field("Threads:"),
        rss_kib: field("VmRSS:"),
        peak_rss_kib: field("VmHWM:"),
        fds,
    }
}

/// The quiet level of a process: each resource's minimum over `samples` samples, `pause` apart,
/// so that a check or a request that happens to be in flight does not count.
pub fn settled_usage(pid: u32, samples: u32, pause: Duration) -> Usage {
    let mut low = usage(pid);
    for _ in 1..samples {
        std::thread::sleep(pause);
        let now = usage(pid);
        low = Usage {
            threads: low.threads.min(now.threads),
            rss_kib: low.rss_kib.min(now.rss_kib),
            peak_rss_kib: now.peak_rss_kib,
            fds: low.fds.min(now.fds),
        };
    }
    low
}

/// The state letter (`R`, `S`, `D`, `Z`…) and kernel wait channel of each thread of `pid`; the
/// main thread first.
pub fn thread_states(pid: u32) -> Vec<(char, String)> {
    let mut tids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    tids.sort_unstable();
    tids.into_iter()
        .filter_map(|tid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
            // The command name is in parentheses and may contain spaces; the state follows it.
            let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
            let wchan = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/wchan"))
                .unwrap_or_default();
            Some((state, wchan))
        })
        .collect()
}

/// CPU time the process has used so far, user and system, from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("process {pid} is gone: {e}"));
    // The command name is in parentheses and may contain spaces: count fields after it.
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of stat(5), the 12th and 13th after the name.
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}
