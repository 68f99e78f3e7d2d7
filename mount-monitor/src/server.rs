//! Serving the router: bounded connections (in total and per client address), bounded header
//! size and read time, a deadline for writing each response, graceful shutdown with a deadline.

use std::net::{Ipv4Addr, SocketAddr};
use std::task::Poll;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};

use crate::deadline::WriteDeadline;
use crate::limits::{ConnectionLimits, Refusal};

/// The memory all connections together may take: with the monitor's own few MiB, the process
/// stays under 48 MiB, inside the 64 Mi limit of the sidecar example (deploy/sidecar.yaml).
pub const CONNECTION_MEMORY: usize = 32 << 20;
/// What one connection costs at most, rounded up from what the end-to-end tests measure
/// (BENCHMARKS.md, "Connections": 11 KiB idle, up to 18.5 KiB with a request in flight on each):
/// the connection's task and hyper's read and header buffers; bodies are shared, never copied
/// per connection.
pub const CONNECTION_COST: usize = 24 << 10;
/// Connections served at once by default: [`CONNECTION_MEMORY`] / [`CONNECTION_COST`], 1,365.
/// More are closed on accept.
pub const DEFAULT_MAX_CONNECTIONS: usize = CONNECTION_MEMORY / CONNECTION_COST;
// A hog needs many addresses to fill the cap.
const _: () = assert!(DEFAULT_MAX_CONNECTIONS >= 16 * crate::limits::DEFAULT_PER_PEER);

/// `configured` connections (by default [`DEFAULT_MAX_CONNECTIONS`]), or three quarters of the
/// open-file limit when that is lower: clients must never take the descriptors the checks need
/// (a canary read failing with EMFILE would report a healthy mount as `canary_failed`).
pub fn connection_limit(configured: usize) -> usize {
    use nix::sys::resource::{Resource, getrlimit};
    limit_for(
        getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft),
        configured,
    )
}

fn limit_for(open_files: u64, configured: usize) -> usize {
    usize::try_from(open_files / 4 * 3)
        .unwrap_or(usize::MAX)
        .min(configured)
        .max(1)
}

/// A response must be written whole within this time, however the client reads: one that stops
/// reading, or reads a byte now and then, is disconnected.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client must send its request head within this time (slowloris protection).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head accepted (oversized headers get 431 or a closed connection).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Connections the kernel completes and queues for the server to accept. The default of 128
/// overflows under a burst of connections (a client opening its 64 at once, a few of them), and
/// the kernel then drops new connections' SYNs, kubelet's among them: each dropped one waits a
/// second for its retransmission, as long as a probe's default timeout. The kernel caps it at
/// `net.core.somaxconn`.
const ACCEPT_BACKLOG: i32 = 4096;

/// Listens on every address, in order; the first that fails is returned with its error. Call
/// inside the runtime.
///
/// An unspecified IPv6 address (`[::]`, the default) listens dual-stack, IPv4 included, as Go's
/// `":8080"` does; where the kernel has no IPv6 at all it falls back to `0.0.0.0`, logged.
pub fn bind(addresses: &[SocketAddr]) -> Result<Vec<TcpListener>, (SocketAddr, std::io::Error)> {
    bind_with(addresses, listen_on)
}

/// [`bind`], making each socket with `listen_on` (tests pretend a kernel without IPv6).
fn bind_with(
    addresses: &[SocketAddr],
    listen_on: impl Fn(SocketAddr) -> std::io::Result<std::net::TcpListener>,
) -> Result<Vec<TcpListener>, (SocketAddr, std::io::Error)> {
    let mut listeners = Vec::with_capacity(addresses.len());
    for &address in addresses {
        let listener = match listen_on(address) {
            Err(e) if address.is_ipv6() && address.ip().is_unspecified() && no_ipv6(&e) => {
                let ipv4 = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), address.port());
                tracing::info!(listen = %ipv4, error = %e, "IPv6 is not available; listening on IPv4 only");
                listen_on(ipv4).map_err(|e| (ipv4, e))?
            }
            other => other.map_err(|e| (address, e))?,
        };
        listeners.push(TcpListener::from_std(listener).map_err(|e| (address, e))?);
    }
    Ok(listeners)
}

fn listen_on(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if address.is_ipv6() && address.ip().is_unspecified() {
        // Off by default on Linux, but `net.ipv6.bindv6only=1` turns it on for every socket.
        socket.set_only_v6(false)?;
    }
    // What tokio's own `TcpListener::bind` does: a restart may bind while old connections
    // linger in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(ACCEPT_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// The errors of a kernel without IPv6 (`ipv6.disable=1`) or without an IPv6 address.
fn no_ipv6(error: &std::io::Error) -> bool {
    use nix::errno::Errno;
    error.raw_os_error().is_some_and(|code| {
        [
            Errno::EAFNOSUPPORT,
            Errno::EPROTONOSUPPORT,
            Errno::EADDRNOTAVAIL,
        ]
        .contains(&Errno::from_raw(code))
    })
}

/// The next connection on any of the listeners; each turn starts with the listener after the
/// one that answered last, so a flood on one cannot starve the others.
async fn accept_any(
    listeners: &[TcpListener],
    next: &mut usize,
) -> std::io::Result<(TcpStream, SocketAddr)> {
    std::future::poll_fn(|cx| {
        for offset in 0..listeners.len() {
            let at = (*next + offset) % listeners.len();
            if let Poll::Ready(accepted) = listeners[at].poll_accept(cx) {
                *next = at + 1;
                return Poll::Ready(accepted);
            }
        }
        Poll::Pending
    })
    .await
}

/// Serves until `shutdown` completes, then stops accepting and gives in-flight requests up to
/// `grace` to finish.
pub async fn serve(
    listeners: Vec<TcpListener>,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
    limits: ConnectionLimits,
) {
    let graceful = GracefulShutdown::new();
    let service = TowerToHyperService::new(app);
    tokio::pin!(shutdown);
    let mut next = 0;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = accept_any(&listeners, &mut next) => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let admission = match limits.admit(peer.ip()) {
            Ok(admission) => admission,
            Err(refusal) => {
                // Debug only: a client hammering the port must not flood the log as well.
                let refusal = match refusal {
                    Refusal::Full => "all connections are taken",
                    Refusal::PeerFull => "this address holds all it may",
                };
                tracing::debug!(%peer, refusal, "connection refused");
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(MAX_HEADER_BYTES.max(8192));
        // A client that stops reading, or reads a byte now and then, would otherwise hold its
        // connection (and its place) for ever once the socket buffers are full.
        let stream = WriteDeadline::new(stream, WRITE_TIMEOUT);
        let connection = builder.serve_connection(TokioIo::new(stream), service.clone());
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(admission);
        });
    }
    drop(listeners);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within the shutdown timeout");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_unspecified_ipv6_address_takes_ipv4_too() {
        let any: SocketAddr = "[::]:0".parse().unwrap();
        let listeners = bind(&[any, "127.0.0.1:0".parse().unwrap()]).unwrap();
        let port = listeners[0].local_addr().unwrap().port();
        for client in ["127.0.0.1", "::1"] {
            let address = SocketAddr::new(client.parse().unwrap(), port);
            let connected = TcpStream::connect(address).await;
            assert!(connected.is_ok(), "{address}: {connected:?}");
            let (_, peer) = listeners[0].accept().await.unwrap();
            assert_eq!(peer.ip().to_canonical().is_ipv4(), client.contains('.'));
        }
        // A port taken is an error naming the address.
        let taken = listeners[1].local_addr().unwrap();
        let (address, _) = bind(&[taken]).unwrap_err();
        assert_eq!(address, taken);
    }

    #[tokio::test]
    async fn without_ipv6_the_default_listens_on_ipv4() {
        let no_ipv6_kernel = |address: SocketAddr| {
            if address.is_ipv6() {
                Err(std::io::Error::from_raw_os_error(nix::libc::EAFNOSUPPORT))
            } else {
                listen_on(address)
            }
        };
        let listeners = bind_with(&["[::]:0".parse().unwrap()], no_ipv6_kernel).unwrap();
        let bound = listeners[0].local_addr().unwrap();
        assert_eq!(bound.ip(), std::net::IpAddr::from(Ipv4Addr::UNSPECIFIED));
        // Only the unspecified address falls back: `[::1]` asked for is `[::1]` or an error.
        let (address, e) = bind_with(&["[::1]:0".parse().unwrap()], no_ipv6_kernel).unwrap_err();
        assert_eq!(address, "[::1]:0".parse().unwrap());
        assert_eq!(e.raw_os_error(), Some(nix::libc::EAFNOSUPPORT));
        // Other errors do not fall back either.
        assert!(!no_ipv6(&std::io::Error::from_raw_os_error(
            nix::libc::EADDRINUSE
        )));
    }

    #[test]
    fn connections_leave_a_quarter_of_the_descriptors_to_the_checks() {
        let default = DEFAULT_MAX_CONNECTIONS;
        assert_eq!(limit_for(256, default), 192);
        assert_eq!(limit_for(1024, default), 768);
        assert_eq!(limit_for(65536, default), default);
        assert_eq!(limit_for(u64::MAX, default), default, "RLIM_INFINITY");
        assert_eq!(limit_for(65536, 100), 100, "configured");
        assert_eq!(limit_for(0, default), 1);
    }
}
