//! A total deadline for writing each response. A deadline per write would restart whenever the
//! client reads a little, so a client reading a byte now and then would hold its connection
//! (and the response it has not read) for ever; this one runs from the first byte of a response
//! to the last, however the client reads.
//!
//! hyper gives no sign of where a response starts or ends at the I/O level, but it flushes only
//! once everything it has buffered is written: the deadline is armed by the first write after a
//! completed flush, and disarmed by the next completed flush. Every body served here is one
//! buffer, written whole before that flush.
//!
//! Writes also go in turns of 256 KiB, so that a connection writing megabytes never keeps a
//! worker from the probes queued behind it.
//!
//! A body kept in a memory file ([`crate::body_file`]) goes out with `sendfile`, and the
//! response head before it with `MSG_MORE`, so that the two leave in the same segments.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::body_file::{self, FilePart};

/// What one connection writes at most before it lets the others (and the probes) have the
/// worker: 50 clients fetching 5 MiB of metrics would otherwise each copy up to 4 MiB (the
/// socket buffer) per turn, and a probe would wait behind all of them. Smaller turns cost more
/// CPU per byte (64 KiB: 2.6 ms per 5 MiB answer in the debug build, against 1.5 ms at 256 KiB).
const TURN_BYTES: usize = 256 << 10;

/// A connection's stream: what it can do beyond writing from memory. The defaults write from
/// memory (a test's in-memory pipe); a TCP socket sends files and holds heads back.
pub trait Transport: AsyncRead + AsyncWrite + Unpin {
    /// Writes `bufs`, which more follows at once (`MSG_MORE`): a response head goes out in the
    /// same segment as the start of its body.
    fn poll_write_more(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self).poll_write_vectored(cx, bufs)
    }

    /// Writes `part` of a memory file, whose bytes `buf` also holds.
    fn poll_send_file(
        &mut self,
        cx: &mut Context<'_>,
        _part: &FilePart,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self).poll_write(cx, buf)
    }
}

#[cfg(test)]
impl Transport for tokio::io::DuplexStream {}

impl Transport for tokio::net::TcpStream {
    fn poll_write_more(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        use nix::sys::socket::{MsgFlags, sendmsg};
        use std::os::fd::AsRawFd;
        let fd = self.as_raw_fd();
        write_when_ready(self, cx, || {
            sendmsg::<()>(
                fd,
                bufs,
                &[],
                MsgFlags::from_bits_retain(nix::libc::MSG_MORE) | MsgFlags::MSG_NOSIGNAL,
                None,
            )
        })
    }

    fn poll_send_file(
        &mut self,
        cx: &mut Context<'_>,
        part: &FilePart,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut offset = i64::try_from(part.offset).unwrap_or(i64::MAX);
        let stream: &tokio::net::TcpStream = self;
        let sent = write_when_ready(stream, cx, || {
            nix::sys::sendfile::sendfile(stream, &*part.fd, Some(&mut offset), part.len)
        });
        if let Poll::Ready(Err(e)) = &sent
            && body_file::refused(e)
        {
            return Pin::new(self).poll_write(cx, buf);
        }
        #[cfg(test)]
        if let Poll::Ready(Ok(n)) = sent {
            tests::SENT_FROM_FILES.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
        sent
    }
}

/// `write` on `stream` once it has room: tokio's own dance for a non-blocking call it has no
/// method for (readiness cleared on `EAGAIN`, and the task woken when there is room again).
fn write_when_ready(
    stream: &tokio::net::TcpStream,
    cx: &mut Context<'_>,
    mut write: impl FnMut() -> nix::Result<usize>,
) -> Poll<io::Result<usize>> {
    loop {
        if let Err(e) = std::task::ready!(stream.poll_write_ready(cx)) {
            return Poll::Ready(Err(e));
        }
        match stream.try_io(tokio::io::Interest::WRITABLE, || {
            write().map_err(io::Error::from)
        }) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            done => return Poll::Ready(done),
        }
    }
}

/// `inner` with a total deadline of `limit` on writing each response, written in turns.
pub struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    /// Written since this connection's task last gave way.
    this_turn: usize,
    /// Made on the first response only: an idle connection holds no timer.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl<S> WriteDeadline<S> {
    pub fn new(inner: S, limit: Duration) -> WriteDeadline<S> {
        WriteDeadline {
            inner,
            limit,
            this_turn: 0,
            timer: None,
            armed: false,
        }
    }

    fn arm(&mut self) {
        if self.armed {
            return;
        }
        let deadline = Instant::now() + self.limit;
        match &mut self.timer {
            Some(timer) => timer.as_mut().reset(deadline),
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        self.armed = true;
    }

    /// True when this connection has had its turn: the task is woken at once, to go on after
    /// the others queued on the worker.
    fn give_way(&mut self, cx: &mut Context<'_>) -> bool {
        if self.this_turn < TURN_BYTES {
            return false;
        }
        self.this_turn = 0;
        cx.waker().wake_by_ref();
        true
    }

    fn wrote(&mut self, written: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match &written {
            Poll::Ready(Ok(n)) => self.this_turn += n,
            // Waiting for room counts as giving way.
            _ => self.this_turn = 0,
        }
        written
    }

    /// An error once the response being written is past its deadline; otherwise wakes the task
    /// when it will be.
    /// What a write must answer before it writes: the deadline's error once it has passed, or
    /// `Pending` while it gives way to other connections; `None` to go ahead.
    fn before_write(&mut self, cx: &mut Context<'_>) -> Option<Poll<io::Result<usize>>> {
        self.arm();
        if let Some(e) = self.expired(cx) {
            return Some(Poll::Ready(Err(e)));
        }
        self.give_way(cx).then_some(Poll::Pending)
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        let timer = self.timer.as_mut().filter(|_| self.armed)?;
        timer.as_mut().poll(cx).is_ready().then(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "the response was not written within the deadline",
            )
        })
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: Transport> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(stop) = this.before_write(cx) {
            return stop;
        }
        let buf = &buf[..buf.len().min(TURN_BYTES)];
        let written = match body_file::find(buf) {
            Some(part) => this.inner.poll_send_file(cx, &part, buf),
            None => Pin::new(&mut this.inner).poll_write(cx, buf),
        };
        this.wrote(written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(stop) = this.before_write(cx) {
            return stop;
        }
        // A part of a body in a memory file goes by itself, with `sendfile`; what comes before
        // it goes first, held back for it.
        let file = bufs
            .iter()
            .enumerate()
            .find_map(|(at, buf)| body_file::find(buf).map(|part| (at, part)));
        if let Some((0, mut part)) = file {
            part.len = part.len.min(TURN_BYTES);
            let written = this.inner.poll_send_file(cx, &part, &bufs[0][..part.len]);
            return this.wrote(written);
        }
        let before_file = file.as_ref().map_or(bufs.len(), |(at, _)| *at);
        let bufs = &bufs[..before_file];
        // The whole buffers that fit in a turn, or a turn's worth of the first one.
        let mut fitting = 0;
        let mut total = 0;
        for buf in bufs {
            total += buf.len();
            if total > TURN_BYTES {
                break;
            }
            fitting += 1;
        }
        let written = match bufs.first() {
            Some(first) if fitting == 0 => {
                Pin::new(&mut this.inner).poll_write(cx, &first[..TURN_BYTES])
            }
            _ if fitting == before_file && file.is_some() => {
                this.inner.poll_write_more(cx, &bufs[..fitting])
            }
            _ => Pin::new(&mut this.inner).poll_write_vectored(cx, &bufs[..fitting]),
        };
        this.wrote(written)
    }

    /// Keeps hyper writing a shared body straight from its buffer rather than copying it.
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.expired(cx) {
            return Poll::Ready(Err(e));
        }
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        if matches!(flushed, Poll::Ready(Ok(()))) {
            this.armed = false;
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.expired(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Bytes sent with `sendfile`, by every test of this process.
    pub(super) static SENT_FROM_FILES: std::sync::atomic::AtomicUsize =
        std::sync::atomic::AtomicUsize::new(0);

    /// Writes `bufs` whole, vectored, as hyper does.
    async fn write_all_vectored<S: Transport>(out: &mut WriteDeadline<S>, bufs: &[&[u8]]) {
        let mut left: Vec<&[u8]> = bufs.to_vec();
        while !left.is_empty() {
            let slices: Vec<io::IoSlice<'_>> = left.iter().map(|b| io::IoSlice::new(b)).collect();
            let mut n =
                std::future::poll_fn(|cx| Pin::new(&mut *out).poll_write_vectored(cx, &slices))
                    .await
                    .unwrap();
            assert!(n > 0);
            while n > 0 {
                let first = left[0];
                if n >= first.len() {
                    n -= first.len();
                    left.remove(0);
                } else {
                    left[0] = &first[n..];
                    n = 0;
                }
            }
        }
        out.flush().await.unwrap();
    }

    /// A body kept in a memory file reaches the client whole, after its head, through `sendfile`
    /// (in pieces, to a client that reads slowly), and so does one sent from a slice of it.
    #[tokio::test]
    async fn a_body_in_a_memory_file_goes_out_whole_with_sendfile() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut server = WriteDeadline::new(server, Duration::from_secs(10));
        let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let kept = crate::body_file::keep(body.clone());
        assert!(
            crate::body_file::find(&kept).is_some(),
            "not in a memory file"
        );
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 3000000\r\n\r\n";
        let tail = &kept[2_000_000..];
        let mut want = head.to_vec();
        want.extend_from_slice(&body);
        want.extend_from_slice(head);
        want.extend_from_slice(&body[2_000_000..]);
        let sent_before = SENT_FROM_FILES.load(std::sync::atomic::Ordering::Relaxed);
        let wanted = want.len();
        let reader = tokio::spawn(async move {
            // Slowly at first: the socket fills and `sendfile` sends what fits.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut got = vec![0; wanted];
            client.read_exact(&mut got).await.unwrap();
            got
        });
        write_all_vectored(&mut server, &[head, &kept]).await;
        write_all_vectored(&mut server, &[head, tail]).await;
        assert!(reader.await.unwrap() == want, "the bytes differ");
        let sent = SENT_FROM_FILES.load(std::sync::atomic::Ordering::Relaxed) - sent_before;
        assert!(sent >= 4_000_000, "{sent} bytes with sendfile");
    }

    /// A reader that takes a little now and then, always before a per-write deadline would
    /// pass, is still cut at the total one.
    #[tokio::test(start_paused = true)]
    async fn a_trickle_reader_is_cut_at_the_total_deadline() {
        let (server, mut client) = tokio::io::duplex(64);
        let mut server = WriteDeadline::new(server, Duration::from_secs(10));
        let started = Instant::now();
        let reader = tokio::spawn(async move {
            let mut byte = [0u8; 1];
            while client.read(&mut byte).await.is_ok_and(|n| n > 0) {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let error = server.write_all(&[0u8; 4096]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        let took = started.elapsed();
        assert!(
            (Duration::from_secs(10)..Duration::from_secs(11)).contains(&took),
            "{took:?}"
        );
        reader.abort();
    }

    /// A connection writes a turn's worth, then gives way (and is woken to go on).
    #[tokio::test]
    async fn large_writes_go_in_turns() {
        let (server, _client) = tokio::io::duplex(4 << 20);
        let mut server = WriteDeadline::new(server, Duration::from_secs(10));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let big = vec![0u8; 1 << 20];
        let first = Pin::new(&mut server).poll_write(&mut cx, &big);
        assert!(matches!(first, Poll::Ready(Ok(TURN_BYTES))), "{first:?}");
        let second = Pin::new(&mut server).poll_write(&mut cx, &big);
        assert!(second.is_pending(), "{second:?}");
        let third = Pin::new(&mut server).poll_write(&mut cx, &big);
        assert!(matches!(third, Poll::Ready(Ok(TURN_BYTES))), "{third:?}");
    }

    /// Each response gets the whole deadline: one written and flushed disarms it.
    #[tokio::test(start_paused = true)]
    async fn each_response_gets_the_whole_deadline() {
        let (server, mut client) = tokio::io::duplex(1 << 16);
        let mut server = WriteDeadline::new(server, Duration::from_secs(10));
        for _ in 0..3 {
            server.write_all(b"response").await.unwrap();
            server.flush().await.unwrap();
            let mut buf = [0u8; 8];
            client.read_exact(&mut buf).await.unwrap();
            tokio::time::sleep(Duration::from_secs(8)).await;
        }
        server.write_all(b"more").await.unwrap();
    }
}
