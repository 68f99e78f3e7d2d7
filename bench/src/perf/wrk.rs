//! Reading what `wrk --latency` prints.

use std::time::Duration;

use anyhow::Context;

/// One `wrk` run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Load {
    pub requests_per_sec: f64,
    /// Responses completed in the run.
    pub requests: u64,
    pub p50: Duration,
    pub p99: Duration,
    /// Responses other than 2xx/3xx plus socket errors: a run with any is not a fair figure.
    pub errors: u64,
}

/// Parses the output of `wrk --latency`.
pub fn parse(output: &str) -> anyhow::Result<Load> {
    let mut load = Load::default();
    let (mut rate, mut p50, mut p99) = (None, None, None);
    for line in output.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(value)) => {
                rate = Some(value.parse().with_context(|| format!("wrk: {line:?}"))?);
            }
            (Some("50%"), Some(value)) => p50 = Some(duration(value)?),
            (Some("99%"), Some(value)) => p99 = Some(duration(value)?),
            // "477436 requests in 5.00s, 56.01MB read"
            (Some(count), Some("requests")) => {
                load.requests = count.parse().with_context(|| format!("wrk: {line:?}"))?;
            }
            _ if line.starts_with("Non-2xx or 3xx responses:") => {
                load.errors += trailing_number(line)?;
            }
            _ if line.starts_with("Socket errors:") => {
                // "Socket errors: connect 0, read 0, write 0, timeout 0"
                for part in line["Socket errors:".len()..].split(',') {
                    load.errors += trailing_number(part)?;
                }
            }
            _ => {}
        }
    }
    let missing = |what| format!("wrk printed no {what} (run it with --latency):\n{output}");
    load.requests_per_sec = rate.with_context(|| missing("Requests/sec"))?;
    load.p50 = p50.with_context(|| missing("50% latency"))?;
    load.p99 = p99.with_context(|| missing("99% latency"))?;
    Ok(load)
}

fn trailing_number(text: &str) -> anyhow::Result<u64> {
    let word = text.split_whitespace().last().unwrap_or_default();
    word.parse()
        .with_context(|| format!("wrk: no count in {text:?}"))
}

/// wrk's latencies: `228.00us`, `1.07ms`, `2.00s`, `1.00m`.
fn duration(text: &str) -> anyhow::Result<Duration> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("wrk: no unit in latency {text:?}"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .with_context(|| format!("wrk: bad latency {text:?}"))?;
    let seconds = match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => anyhow::bail!("wrk: unknown unit in latency {text:?}"),
    };
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\
Running 5s test @ http://127.0.0.1:18080/readyz
  2 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   523.28us    1.15ms  25.25ms   93.77%
    Req/Sec    47.97k     4.47k   57.81k    71.00%
  Latency Distribution
     50%  228.00us
     75%  339.00us
     90%    1.07ms
     99%    6.05ms
  477436 requests in 5.00s, 56.01MB read
Requests/sec:  95482.46
Transfer/sec:     11.20MB
";

    #[test]
    fn rate_and_percentiles_are_read() {
        let load = parse(OUTPUT).unwrap();
        assert_eq!(load.requests_per_sec, 95482.46);
        assert_eq!(load.requests, 477_436);
        assert_eq!(load.p50, Duration::from_micros(228));
        assert_eq!(load.p99, Duration::from_micros(6050));
        assert_eq!(load.errors, 0);
    }

    #[test]
    fn failed_responses_and_socket_errors_are_counted() {
        let output = OUTPUT.replace(
            "Requests/sec:",
            "  Socket errors: connect 0, read 2, write 0, timeout 3\n  Non-2xx or 3xx responses: 12\nRequests/sec:",
        );
        assert_eq!(parse(&output).unwrap().errors, 17);
    }

    #[test]
    fn output_without_latency_distribution_is_an_error() {
        let output: String = OUTPUT
            .lines()
            .filter(|l| !l.contains('%') || l.contains("Stdev"))
            .map(|l| format!("{l}\n"))
            .collect();
        let err = parse(&output).unwrap_err();
        assert!(err.to_string().contains("--latency"), "{err}");
    }

    #[test]
    fn every_latency_unit_is_understood() {
        assert_eq!(duration("2.00s").unwrap(), Duration::from_secs(2));
        assert_eq!(duration("1.50m").unwrap(), Duration::from_secs(90));
        assert!(duration("3.0xs").is_err());
    }
}
