//! `mount-monitor healthcheck`: a tiny HTTP/1.1 client for container `HEALTHCHECK`s in a scratch
//! image, where there is no shell and no curl.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A process running this same binary, as `/proc` shows it: what the server that a container's
/// `HEALTHCHECK` asks about was started with, whatever `docker run` gave it.
#[derive(Debug)]
pub struct Process {
    pub args: Vec<OsString>,
    pub environment: Vec<(OsString, OsString)>,
    /// `/proc/PID/cwd`: entering it works across mount namespaces, unlike the path it names.
    pub cwd: PathBuf,
}

/// In a container, the server is PID 1, or a child of PID 1 when an init runs first
/// (`docker run --init`): the processes of this binary among them, in that order. Outside a
/// container PID 1 is the host's init, and it and its children are another binary or not
/// readable (another user's `/proc/PID/environ`): none.
pub fn candidates(proc: &Path) -> Vec<Process> {
    let Ok(ours) = proc.join("self/exe").metadata() else {
        return Vec::new();
    };
    let mut pids = vec!["1".to_owned()];
    if let Ok(tasks) = std::fs::read_dir(proc.join("1/task")) {
        for task in tasks.flatten() {
            if let Ok(children) = std::fs::read_to_string(task.path().join("children")) {
                pids.extend(children.split_whitespace().map(str::to_owned));
            }
        }
    }
    pids.iter()
        .filter_map(|pid| {
            let dir = proc.join(pid);
            let exe = dir.join("exe").metadata().ok()?;
            if (exe.dev(), exe.ino()) != (ours.dev(), ours.ino()) {
                return None;
            }
            Some(Process {
                args: nul_separated(&std::fs::read(dir.join("cmdline")).ok()?),
                environment: nul_separated(&std::fs::read(dir.join("environ")).ok()?)
                    .into_iter()
                    .filter_map(|entry| {
                        let entry = entry.into_vec();
                        let eq = entry.iter().position(|&b| b == b'=')?;
                        Some((
                            OsString::from_vec(entry[..eq].to_vec()),
                            OsString::from_vec(entry[eq + 1..].to_vec()),
                        ))
                    })
                    .collect(),
                cwd: dir.join("cwd"),
            })
        })
        .collect()
}

/// `/proc/PID/cmdline` and `environ`: each entry ends with a NUL; an empty argument is one.
fn nul_separated(bytes: &[u8]) -> Vec<OsString> {
    match bytes.strip_suffix(&[0]) {
        None if bytes.is_empty() => Vec::new(),
        rest => rest
            .unwrap_or(bytes)
            .split(|&b| b == 0)
            .map(|part| OsString::from_vec(part.to_vec()))
            .collect(),
    }
}

/// Exit 0 on HTTP 200, 1 otherwise; the whole exchange is bounded by `limit`.
pub fn run(url: &str, limit: Duration) -> Result<(), String> {
    let (addr, path) = parse_url(url)?;
    let status = get_status(addr, &path, limit)?;
    if status == 200 {
        Ok(())
    } else {
        Err(format!("GET {url}: HTTP {status}"))
    }
}

/// `http://HOST:PORT/PATH` → (address, path). Only plain HTTP: the server is local.
pub fn parse_url(url: &str) -> Result<(SocketAddr, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    let authority = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: no address"))?;
    Ok((addr, path))
}

fn get_status(addr: SocketAddr, path: &str, limit: Duration) -> Result<u16, String> {
    let started = Instant::now();
    let left = || {
        limit
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1))
    };
    let mut stream =
        TcpStream::connect_timeout(&addr, limit).map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_write_timeout(Some(left()))
        .and_then(|_| {
            write!(
                stream,
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: mount-monitor-healthcheck\r\nConnection: close\r\n\r\n"
            )
        })
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") {
        stream
            .set_read_timeout(Some(left()))
            .map_err(|e| e.to_string())?;
        let n = stream
            .read(&mut buf)
            .map_err(|e| format!("read from {addr}: {e}"))?;
        if n == 0 || head.len() > 4096 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    parse_status_line(&head).ok_or_else(|| format!("{addr}: not an HTTP response"))
}

fn parse_status_line(head: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(head).ok()?.lines().next()?;
    let mut parts = line.split(' ');
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let (addr, path) = parse_url("http://127.0.0.1:8080/readyz").unwrap();
        assert_eq!(addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(path, "/readyz");
        let (addr, path) = parse_url("http://127.0.0.1").unwrap();
        assert_eq!((addr.port(), path.as_str()), (80, "/"));
        let (addr, _) = parse_url("http://[::1]:9000/x").unwrap();
        assert_eq!(addr.port(), 9000);
        assert!(parse_url("https://x/").is_err());
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            parse_status_line(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(parse_status_line(b"SSH-2.0\r\n"), None);
    }

    #[test]
    fn environ_and_cmdline_are_split_on_nul() {
        assert_eq!(
            nul_separated(b"/mount-monitor\0--http-port\x0019191\0"),
            ["/mount-monitor", "--http-port", "19191"]
        );
        assert_eq!(
            nul_separated(b"/mount-monitor\0--config\0\0"),
            ["/mount-monitor", "--config", ""]
        );
        assert!(nul_separated(b"").is_empty());
    }

    /// This test binary is no mount-monitor: PID 1 of this machine or container is not one of
    /// its processes, so the health check keeps its own settings.
    #[test]
    fn another_binary_is_no_candidate() {
        assert!(candidates(Path::new("/proc")).is_empty());
    }

    #[test]
    fn refused_connection_fails_fast() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let started = Instant::now();
        assert!(run(&format!("http://{addr}/readyz"), Duration::from_secs(2)).is_err());
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
