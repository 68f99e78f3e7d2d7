//! Serving the router: bounded connections, bounded header size and read time, graceful
//! shutdown with a deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connections served at once; more are closed on accept so probes are never starved by an
/// unbounded number of idle sockets.
pub const MAX_CONNECTIONS: usize = 4096;

/// [`MAX_CONNECTIONS`], or three quarters of the open-file limit when that is lower: clients
/// must never take the descriptors the checks need (a canary read failing with EMFILE would
/// report a healthy mount as `canary_failed`).
pub fn connection_limit() -> usize {
    use nix::sys::resource::{Resource, getrlimit};
    limit_for(getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft))
}

fn limit_for(open_files: u64) -> usize {
    usize::try_from(open_files / 4 * 3)
        .unwrap_or(usize::MAX)
        .clamp(1, MAX_CONNECTIONS)
}

/// A response that cannot be written for this long (the client stopped reading) ends the
/// connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client must send its request head within this time (slowloris protection).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head accepted (oversized headers get 431 or a closed connection).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until `shutdown` completes, then stops accepting and gives in-flight requests up to
/// `grace` to finish.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
) {
    let permits = Arc::new(Semaphore::new(connection_limit()));
    let graceful = GracefulShutdown::new();
    let service = TowerToHyperService::new(app);
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
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
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(MAX_HEADER_BYTES.max(8192));
        // A client that sends requests but never reads the answers would otherwise hold its
        // connection (and a permit) for ever once the socket buffers are full.
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(WRITE_TIMEOUT));
        let connection = builder.serve_connection(TokioIo::new(Box::pin(stream)), service.clone());
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
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
        assert_eq!(limit_for(256), 192);
        assert_eq!(limit_for(1024), 768);
        assert_eq!(limit_for(65536), MAX_CONNECTIONS);
        assert_eq!(limit_for(u64::MAX), MAX_CONNECTIONS, "RLIM_INFINITY");
        assert_eq!(limit_for(0), 1);
    }
}
