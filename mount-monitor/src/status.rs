//! What the actors publish: plain data that the snapshot's [`Shared`](crate::snapshot::Shared)
//! holds, the actors write and `/healthz/status` and `/metrics` read. It lives apart from the
//! actors so that the serving side depends on this data, never on the runners (the Kubernetes
//! client, the Docker Engine).

pub mod docker;
pub mod watchdog;
