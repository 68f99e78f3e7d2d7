//! Starting, asking and stopping the servers under test.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A server process, stopped (and reaped) when dropped.
pub struct Server {
    pub name: String,
    pub port: u16,
    /// From spawning the process to the first 200 on the ready path.
    pub ready_after: Duration,
    child: Child,
}

impl Server {
    /// Starts `command` (which must listen on 127.0.0.1:`port`) and waits until `ready_path`
    /// answers 200.
    pub fn start(
        name: &str,
        mut command: Command,
        port: u16,
        ready_path: &str,
    ) -> anyhow::Result<Server> {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}: {command:?}"))?;
        let mut server = Server {
            name: name.to_owned(),
            port,
            ready_after: Duration::ZERO,
            child,
        };
        server.ready_after = server.wait_ready(ready_path, Duration::from_secs(60))?;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until GET `path` answers 200; returns how long that took.
    pub fn wait_ready(&mut self, path: &str, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            if let Ok((200, _)) = get(self.port, path) {
                return Ok(started.elapsed());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before {path} answered 200 (its stderr is above)",
                    self.name
                );
            }
            if started.elapsed() > timeout {
                bail!(
                    "{} did not answer 200 on {path} within {timeout:?}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        match get(self.port, path) {
            Ok((200, body)) => Ok(body),
            Ok((status, _)) => bail!("{} answered {status} on {path}", self.name),
            Err(err) => Err(err).with_context(|| format!("asking {} for {path}", self.name)),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM first: nginx's master stops its worker only then.
        // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// GET `path` on 127.0.0.1:`port` with HTTP/1.0 (the server closes after the body): status and
/// body. Written by hand: a few lines on loopback do not need an HTTP client crate.
pub fn get(port: u16, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    parse_response(&response)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response"))
}

fn parse_response(response: &[u8]) -> Option<(u16, Vec<u8>)> {
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..head_end]).ok()?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, response[head_end + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_body_are_split_at_the_blank_line() {
        let response = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nno\r\n";
        assert_eq!(parse_response(response), Some((503, b"no\r\n".to_vec())));
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\n"), None);
    }
}
