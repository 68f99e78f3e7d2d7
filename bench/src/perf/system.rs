//! The Linux under `cargo xtask bench perf`: its own mount and PID namespaces, tmpfs mounts, and what
//! /proc says about a process.
//!
//! The benchmark runs as PID 1 of new mount and PID namespaces, so whatever way it ends (an
//! error, Ctrl-C, SIGKILL of `unshare`), the kernel kills every server it started and drops every
//! tmpfs it mounted: nothing to unmount by hand, and the 5,000 mounts are never seen by the rest
//! of the machine (other tests that read the mount table, discovery mode).

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

/// `unshare` flags: new mount and PID namespaces with their own /proc; nothing propagates back
/// to the machine; the namespace's PID 1 dies with `unshare`.
pub const UNSHARE_ARGS: [&str; 6] = [
    "--mount",
    "--pid",
    "--fork",
    "--mount-proc",
    "--propagation=private",
    "--kill-child",
];

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Makes SIGINT and SIGTERM end this process at once. PID 1 of a namespace ignores signals it
/// has no handler for, so without this Ctrl-C would not stop the benchmark.
pub fn exit_on_signals() {
    extern "C" fn exit_now(_signal: libc::c_int) {
        // SAFETY: _exit is async-signal-safe. Leaving the namespace kills its processes and
        // drops its mounts.
        unsafe { libc::_exit(130) }
    }
    let handler: extern "C" fn(libc::c_int) = exit_now;
    let handler = handler as libc::sighandler_t;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only calls an async-signal-safe function.
        unsafe { libc::signal(signal, handler) };
    }
}

/// Mounts a tmpfs of `size` (e.g. "1m") on `target`. mount(2) rather than 5,000 `mount` processes.
pub fn mount_tmpfs(target: &Path, size: &str) -> anyhow::Result<()> {
    let c = |s: &[u8]| CString::new(s).context("a NUL byte in a mount argument");
    let (source, fstype) = (c(b"tmpfs")?, c(b"tmpfs")?);
    let target_c = c(target.as_os_str().as_bytes())?;
    let options = c(format!("size={size},mode=0755").as_bytes())?;
    // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target_c.as_ptr(),
            fstype.as_ptr(),
            0,
            options.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("mounting a tmpfs on {}", target.display()));
    }
    Ok(())
}

/// Detaches the mount on `target` (`umount -l`): gone from the path at once, the directory
/// beneath in its place.
pub fn unmount_lazy(target: &Path) -> anyhow::Result<()> {
    let target_c =
        CString::new(target.as_os_str().as_bytes()).context("a NUL byte in a mount point")?;
    // SAFETY: the pointer is a valid NUL-terminated string that outlives the call.
    let rc = unsafe { libc::umount2(target_c.as_ptr(), libc::MNT_DETACH) };
    if rc != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("unmounting {}", target.display()));
    }
    Ok(())
}

/// The CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: an all-zero cpu_set_t is an empty set, and sched_getaffinity only writes into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// CPU time (user + system) of the children this process has waited for.
pub fn waited_children_cpu() -> Duration {
    // SAFETY: an all-zero rusage is valid, and getrusage only writes into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// What /proc/<pid>/status says about memory and threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// Peak resident set size since start, KiB.
    pub peak_rss_kib: u64,
    pub threads: u64,
}

/// What `/proc/<pid>/status` says, with the process's memory files counted whole (see
/// [`parse_status`]).
pub fn status(pid: u32) -> anyhow::Result<Status> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_status(&text, memory_files_kib(pid))
        .with_context(|| format!("{path} has no VmRSS, VmHWM or Threads"))
}

/// Memory and threads from a status `text`. A process holding memory files (`memfd_create`:
/// mount-monitor keeps its large bodies in them, for `sendfile`) has them resident whatever it
/// maps: their size, `memory_files_kib`, stands in the resident set for their mapped part
/// (`RssShmem`), which counts only the pages the process itself has read.
pub fn parse_status(text: &str, memory_files_kib: u64) -> Option<Status> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|value| value.split_whitespace().next()?.parse::<u64>().ok())
    };
    let mut rss_kib = field("VmRSS")?;
    if memory_files_kib > 0 {
        rss_kib = rss_kib.saturating_sub(field("RssShmem").unwrap_or(0)) + memory_files_kib;
    }
    Some(Status {
        rss_kib,
        peak_rss_kib: field("VmHWM")?,
        threads: field("Threads")?,
    })
}

/// The size of the memory files a process holds open, in KiB of whole pages.
fn memory_files_kib(pid: u32) -> u64 {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    fds.flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| target.to_string_lossy().starts_with("/memfd:"))
        })
        .filter_map(|fd| std::fs::metadata(fd.path()).ok())
        .map(|file| file.len().div_ceil(4096) * 4)
        .sum()
}

/// CPU time (user + system) a running process has used, all its threads together, to the
/// kernel's clock tick (10 ms).
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let ticks = parse_cpu_ticks(&text).with_context(|| format!("{path}: unexpected format"))?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(Duration::from_secs_f64(ticks as f64 / per_second))
}

/// Each running thread's time on a CPU so far, ns, by thread id: the first field of
/// `/proc/<pid>/task/<tid>/schedstat`. [`cpu_time`] counts whole clock ticks, too coarse for the
/// CPU a server spends on a few seconds of load.
pub fn thread_cpu_times(pid: u32) -> anyhow::Result<HashMap<u32, u64>> {
    let tasks = format!("/proc/{pid}/task");
    let mut times = HashMap::new();
    for task in std::fs::read_dir(&tasks).with_context(|| format!("reading {tasks}"))? {
        let task = task?;
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // A thread that ended since the directory was read has nothing to add.
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        let nanos = parse_schedstat(&text)
            .with_context(|| format!("{tasks}/{tid}/schedstat: unexpected format"))?;
        times.insert(tid, nanos);
    }
    Ok(times)
}

/// The CPU time `pid`'s threads used since `before` ([`thread_cpu_times`]): each running
/// thread's growth, a thread started since counted whole. A thread that ended meanwhile (an
/// idle one of a pool) is left out, rather than taking its whole past off the sum.
pub fn cpu_used_since(pid: u32, before: &HashMap<u32, u64>) -> anyhow::Result<Duration> {
    Ok(Duration::from_nanos(used_since(
        &thread_cpu_times(pid)?,
        before,
    )))
}

fn used_since(now: &HashMap<u32, u64>, before: &HashMap<u32, u64>) -> u64 {
    now.iter()
        .map(|(tid, ns)| ns.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum()
}

/// The time on a CPU (ns) from a `schedstat` line: `on-cpu waiting timeslices`.
pub fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// utime + stime from /proc/<pid>/stat, in clock ticks. The command name in parentheses may
/// contain spaces, so fields are counted after the last ')'.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name: state (3), ppid, pgrp, session, tty_nr, tpgid, flags, minflt, cminflt,
    // majflt, cmajflt, utime (14), stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The mount points of this process's mount namespace.
pub fn mount_points() -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    Ok(text
        .lines()
        .filter_map(|line| line.split(' ').nth(4).map(str::to_owned))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_and_threads_are_read_from_status() {
        let text = "Name:\tmount-monitor\nVmPeak:\t  12000 kB\nVmHWM:\t    3824 kB\nVmRSS:\t    2624 kB\nThreads:\t3\n";
        assert_eq!(
            parse_status(text, 0),
            Some(Status {
                rss_kib: 2624,
                peak_rss_kib: 3824,
                threads: 3
            })
        );
        assert_eq!(parse_status("Name:\tx\n", 0), None);
        // Memory files count whole, in place of the part of them the process has mapped.
        let text = format!("{text}RssShmem:\t     100 kB\n");
        assert_eq!(parse_status(&text, 300).unwrap().rss_kib, 2624 - 100 + 300);
        assert_eq!(parse_status(&text, 0).unwrap().rss_kib, 2624);
    }

    #[test]
    fn cpu_ticks_are_counted_after_the_command_name() {
        let stat =
            "4242 (mount monitor) S 1 4242 4242 0 -1 4194560 526 0 0 0 37 5 0 0 20 0 3 0 1234 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(42));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1"), None);
    }

    #[test]
    fn cpu_time_is_read_from_every_thread_to_the_nanosecond() {
        assert_eq!(parse_schedstat("1234567 890 12\n"), Some(1_234_567));
        assert_eq!(parse_schedstat(""), None);
        // This process: its threads have run, and what they used since only grows.
        let pid = std::process::id();
        let before = thread_cpu_times(pid).unwrap();
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(20) {}
        let used = cpu_used_since(pid, &before).unwrap();
        assert!(used >= Duration::from_millis(10), "{used:?}");
    }

    #[test]
    fn a_thread_that_ended_takes_nothing_off() {
        let before = HashMap::from([(1, 1_000), (2, 5_000_000)]);
        // Thread 2 (five times what thread 1 used) ended; thread 3 started.
        let now = HashMap::from([(1, 1_500), (3, 200)]);
        assert_eq!(used_since(&now, &before), 700);
    }
}
