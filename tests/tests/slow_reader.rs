//! A client that sends requests but never reads the answers must not hold its connection for
//! ever: once the socket buffers are full, the server's write deadline ends the connection.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tests::Monitor;

const REQUESTS: usize = 20_000;

#[test]
fn a_client_that_never_reads_is_disconnected() {
    // Discovery mode: /metrics covers every mount of the machine, a few KiB per answer.
    let monitor = Monitor::start(["--check-interval", "30s"]);
    monitor.wait_for("/livez", 200, Duration::from_secs(5));
    let (_, metrics) = monitor.get("/metrics");
    assert!(
        metrics.len() * REQUESTS > 16 << 20,
        "answers must outgrow the socket buffers: {} bytes each",
        metrics.len()
    );

    let mut stream = TcpStream::connect(monitor.addr).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {}\r\n\r\n", monitor.addr);
    // Pipelined requests; once the server stops reading, writing blocks and times out here.
    for _ in 0..REQUESTS {
        if stream.write_all(request.as_bytes()).is_err() {
            break;
        }
    }
    // The server's write deadline (10 s) passes while nobody reads.
    std::thread::sleep(Duration::from_secs(14));

    // The other probes were answered all along.
    assert_eq!(monitor.get("/livez").0, 200);

    // Reading now drains what was buffered, then meets the end of the connection instead of
    // the rest of the answers.
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false;
            }
            Err(e) => panic!("read: {e}"),
        }
        assert!(started.elapsed() < Duration::from_secs(60), "still reading");
    };
    let answers = received
        .windows(b"HTTP/1.1 200".len())
        .filter(|w| *w == b"HTTP/1.1 200")
        .count();
    assert!(
        closed,
        "the connection is still open after {answers} answers"
    );
    assert!(answers < REQUESTS, "all {answers} answers were written");
}
