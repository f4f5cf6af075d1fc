//! Leases and fleets: both lease backends (PostgreSQL, Redis) under racing
//! acquirers, expiry and restarts; self-fencing of a pipeline whose lease ran out;
//! and fleets of real `dbmazz run` workers ([`harness`]) failing over under load —
//! the failover scenarios and the soak (`make soak` runs the long one).

mod failover;
mod harness;
mod lease_backends;
mod lease_fencing;
mod soak;
