//! Serving the router: bounded connections (in total and per client address), bounded header
//! size and read time, a deadline for writing each response, graceful shutdown with a deadline.

use std::net::SocketAddr;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

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
const ACCEPT_BACKLOG: u32 = 4096;

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // As std's and tokio's own `bind`: a restarted server can listen again at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// Serves until `shutdown` completes, then stops accepting and gives in-flight requests up to
/// `grace` to finish.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
    limits: ConnectionLimits,
) {
    let graceful = GracefulShutdown::new();
    let service = TowerToHyperService::new(app);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
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
    drop(listener);
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
