//! Compiles `proto/dbmazz.proto` into the gRPC server and client code
//! (`crate::grpc::pb`) plus the encoded descriptor set that server reflection
//! serves.
//!
//! `protoc` comes from the vendored binary so a fresh machine needs no system
//! package; set `PROTOC` to use another one.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/dbmazz.proto");
    println!("cargo:rerun-if-env-changed=PROTOC");
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path().map_err(|e| {
            format!("no vendored protoc for this platform ({e}); install protoc and set PROTOC")
        })?;
        // Build scripts are single-threaded here; nothing else reads the environment.
        std::env::set_var("PROTOC", protoc);
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("dbmazz_descriptor.bin"))
        .compile_protos(&["proto/dbmazz.proto"], &["proto"])?;
    Ok(())
}
