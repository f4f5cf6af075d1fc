//! The control plane. [`state`] is what pipelines publish for it.

pub mod state;

/// Code generated from `proto/dbmazz.proto` (package `dbmazz.v1`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("dbmazz.v1");

    /// Encoded descriptor set of `dbmazz.v1`, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("dbmazz_descriptor");
}
