//! Timing and summing up runs, the same way in every tool.

use std::time::{Duration, Instant};

use anyhow::Context;

/// The CPUs this process may use (1 when the system will not say).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How long `command` took; its failure names the command to rerun once it is fixed.
pub fn timed(
    rerun: &str,
    command: impl FnOnce() -> xshell::Result<()>,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    command().with_context(|| {
        format!("a benchmarked command failed (output above): fix it, then rerun `{rerun}`")
    })?;
    Ok(started.elapsed())
}

/// The middle run (the later of the two middle ones for an even count); zero for none.
pub fn median(durations: &[Duration]) -> Duration {
    let mut sorted = durations.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// `12.3 s`
pub fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_is_the_middle_run() {
        let runs = [3, 1, 2].map(Duration::from_secs);
        assert_eq!(median(&runs), Duration::from_secs(2));
        assert_eq!(median(&[]), Duration::ZERO);
    }

    #[test]
    fn seconds_have_one_decimal() {
        assert_eq!(seconds(Duration::from_millis(1_260)), "1.3 s");
        assert_eq!(seconds(Duration::from_secs(134)), "134.0 s");
    }
}
