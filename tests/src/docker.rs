//! dockerd for the image tests: which CLI talks to it, whether it answers, and a free port for
//! each container that serves with `--network host`.

use std::net::TcpListener;
use std::process::{Command, Stdio};

/// The docker CLI: `$DOCKER`, else Debian's (`/usr/local/bin/docker` may be a newer CLI that
/// lacks buildx).
pub fn program() -> String {
    std::env::var("DOCKER").unwrap_or_else(|_| "/usr/bin/docker".to_owned())
}

/// Panics unless the test runs as root and dockerd answers (`.ci/setup` starts it).
pub fn require_dockerd(test: &str) {
    crate::require_root(test);
    let docker = program();
    let daemon = Command::new(&docker)
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        daemon,
        "{test}: `{docker} info` fails: install docker.io and start dockerd (`.ci/setup`, which `cargo xtask test` as root runs, does both)"
    );
}

/// A loopback port no one listens on now, for a container on the host's network.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}
