//! Clients from a chosen loopback address (Linux routes all of 127.0.0.0/8 to `lo`), to act as
//! many different peers from one test, and keep-alive exchanges on their connections.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, setsockopt, socket, sockopt,
};

/// A connection to `server` (IPv4) from `source`; `receive_buffer` shrinks the socket's receive
/// buffer first, so that a server's answer backs up sooner.
pub fn connect_from(
    source: Ipv4Addr,
    server: SocketAddr,
    receive_buffer: Option<usize>,
) -> std::io::Result<TcpStream> {
    let SocketAddr::V4(server) = server else {
        panic!("{server}: the tests listen on IPv4 loopback");
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    if let Some(size) = receive_buffer {
        setsockopt(&fd, sockopt::RcvBuf, &size)?;
    }
    bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(SocketAddrV4::new(source, 0)),
    )?;
    connect(fd.as_raw_fd(), &SockaddrIn::from(server))?;
    let stream = TcpStream::from(fd);
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(stream)
}

/// The `n`th address of 127.0.0.0/8 from 127.0.1.0 on, for as many peers as a test needs.
pub fn loopback(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 1, 0)) + n)
}

/// A keep-alive HTTP/1.1 connection.
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn new(stream: TcpStream) -> Client {
        Client {
            reader: BufReader::with_capacity(64 << 10, stream),
        }
    }

    /// Sends a GET for `path` without waiting for the answer.
    pub fn send(&mut self, path: &str) -> std::io::Result<()> {
        // One write: in pieces, Nagle's algorithm would hold the second for a delayed ACK.
        let request = format!("GET {path} HTTP/1.1\r\nHost: mount-monitor\r\n\r\n");
        self.reader.get_mut().write_all(request.as_bytes())
    }

    /// Reads one answer: its status and body length. An error or `None` when the server closed
    /// the connection instead.
    pub fn receive(&mut self) -> std::io::Result<Option<(u16, usize)>> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut length = 0;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Ok(None);
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let copied = std::io::copy(
            &mut (&mut self.reader).take(length as u64),
            &mut std::io::sink(),
        )?;
        if copied < length as u64 {
            return Ok(None);
        }
        Ok(Some((status, length)))
    }

    /// One exchange.
    pub fn get(&mut self, path: &str) -> std::io::Result<Option<(u16, usize)>> {
        self.send(path)?;
        self.receive()
    }
}
