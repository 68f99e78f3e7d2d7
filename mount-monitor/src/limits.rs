//! Who may hold a connection. The port is open to anything that can reach it, so one client
//! must never take the connections kubelet's probes need: at most `per_peer` connections come
//! from any one address, and at most `total` from everyone (a bound on memory and descriptors).
//! Called once per accepted connection, whatever listener accepted it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Connections one address may hold at once. kubelet opens a new connection per probe and
/// closes it; Prometheus keeps one per target; a browser six. 64 leaves room for all of them
/// behind one NAT address, and takes a hog 64 addresses to fill a cap of 4,096.
pub const DEFAULT_PER_PEER: usize = 64;

/// Connection counts, in total and per peer address; shared with the admissions it handed out.
#[derive(Clone)]
pub struct ConnectionLimits {
    counts: Arc<Mutex<Counts>>,
    total: usize,
    per_peer: usize,
}

#[derive(Default)]
struct Counts {
    total: usize,
    /// Only addresses holding a connection: at most `total` entries.
    by_peer: HashMap<IpAddr, usize>,
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Every connection the server serves is taken.
    Full,
    /// This address holds all it may.
    PeerFull,
}

/// One admitted connection; gives its place back when dropped.
pub struct Admission {
    counts: Arc<Mutex<Counts>>,
    peer: IpAddr,
}

impl ConnectionLimits {
    /// `per_peer` is capped at `total`; both are at least 1.
    pub fn new(total: usize, per_peer: usize) -> ConnectionLimits {
        let total = total.max(1);
        ConnectionLimits {
            counts: Arc::default(),
            total,
            per_peer: per_peer.clamp(1, total),
        }
    }

    pub fn total(&self) -> usize {
        self.total
    }

    pub fn per_peer(&self) -> usize {
        self.per_peer
    }

    /// Admits a connection from `peer`, or says why not.
    pub fn admit(&self, peer: IpAddr) -> Result<Admission, Refusal> {
        let peer = peer_key(peer);
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.total >= self.total {
            return Err(Refusal::Full);
        }
        let held = counts.by_peer.entry(peer).or_default();
        if *held >= self.per_peer {
            return Err(Refusal::PeerFull);
        }
        *held += 1;
        counts.total += 1;
        Ok(Admission {
            counts: Arc::clone(&self.counts),
            peer,
        })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(held) = counts.by_peer.get_mut(&self.peer) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                counts.by_peer.remove(&self.peer);
            }
        }
    }
}

/// The address a limit applies to: an IPv4 client reaching a dual-stack socket
/// (`::ffff:a.b.c.d`) counts as its IPv4 address, not as a second client.
fn peer_key(peer: IpAddr) -> IpAddr {
    peer.to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn one_address_cannot_take_what_others_need() {
        let limits = ConnectionLimits::new(10, 3);
        let hog: Vec<Admission> = (0..3)
            .map(|_| limits.admit(ip("10.0.0.9")).unwrap())
            .collect();
        assert_eq!(limits.admit(ip("10.0.0.9")).err(), Some(Refusal::PeerFull));
        // kubelet, from another address, still gets in.
        let kubelet = limits.admit(ip("10.0.0.1")).unwrap();
        drop(hog);
        assert!(limits.admit(ip("10.0.0.9")).is_ok());
        drop(kubelet);
    }

    #[test]
    fn the_total_stays_capped_and_places_come_back() {
        let limits = ConnectionLimits::new(4, 2);
        let held: Vec<Admission> = ["10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.3"]
            .into_iter()
            .map(|a| limits.admit(ip(a)).unwrap())
            .collect();
        assert_eq!(limits.admit(ip("10.0.0.4")).err(), Some(Refusal::Full));
        drop(held);
        let again: Vec<Admission> = (0..2)
            .map(|_| limits.admit(ip("10.0.0.4")).unwrap())
            .collect();
        assert_eq!(
            limits.counts.lock().unwrap().by_peer.len(),
            1,
            "emptied addresses are forgotten"
        );
        drop(again);
        assert_eq!(limits.counts.lock().unwrap().total, 0);
    }

    #[test]
    fn an_ipv4_client_on_a_dual_stack_socket_is_one_client() {
        let limits = ConnectionLimits::new(10, 1);
        let _v4 = limits.admit(ip("192.0.2.7")).unwrap();
        assert_eq!(
            limits.admit(ip("::ffff:192.0.2.7")).err(),
            Some(Refusal::PeerFull)
        );
        assert!(limits.admit(ip("2001:db8::7")).is_ok());
    }

    #[test]
    fn the_per_peer_limit_never_exceeds_the_total() {
        let limits = ConnectionLimits::new(8, 64);
        assert_eq!((limits.total(), limits.per_peer()), (8, 8));
        let limits = ConnectionLimits::new(0, 0);
        assert_eq!((limits.total(), limits.per_peer()), (1, 1));
    }
}
