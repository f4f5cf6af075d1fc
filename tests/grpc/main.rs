//! The control plane: the gRPC services and the Prometheus endpoint over real
//! sockets ([`server`] runs them on random loopback ports), the typed client and
//! the `dbmazz` client commands, and the control plane steering a real engine and a
//! real `dbmazz run` process.

mod api;
mod cli;
mod client;
mod e2e;
mod metrics;
mod server;
mod slot;
