//! The one HTTP/1 client connection of the API clients (the watchdog's Kubernetes API over TLS,
//! the Docker actions' Engine API over a Unix socket).
//!
//! hyper's client is generic over its I/O and request body types, and every pair is another copy
//! of its connection code in the binary. Both clients hand their stream over boxed and send
//! `Full<Bytes>` bodies, so the release binary holds that code once.

use std::pin::Pin;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// A connected stream of either client.
pub trait Stream: AsyncRead + AsyncWrite + Send {}

impl<T: AsyncRead + AsyncWrite + Send> Stream for T {}

pub type Io = TokioIo<Pin<Box<dyn Stream>>>;

/// The HTTP/1 handshake on `stream`: the sender of requests, and the connection to drive.
pub async fn handshake(
    stream: impl Stream + 'static,
) -> hyper::Result<(SendRequest<Full<Bytes>>, Connection<Io, Full<Bytes>>)> {
    let boxed: Pin<Box<dyn Stream>> = Box::pin(stream);
    hyper::client::conn::http1::handshake(TokioIo::new(boxed)).await
}
