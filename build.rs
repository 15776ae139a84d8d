//! Generates the gRPC code for `proto/cluster.proto` (Raft, membership, status) and
//! `proto/link.proto` (the data path between nodes) with tonic + prost.
//!
//! No hand-installed `protoc` is needed: `$PROTOC` is used when set, otherwise the
//! binary vendored by `protoc-bin-vendored`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/cluster.proto");
    println!("cargo:rerun-if-changed=proto/link.proto");
    println!("cargo:rerun-if-env-changed=PROTOC");
    let protoc = match std::env::var_os("PROTOC") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => protoc_bin_vendored::protoc_bin_path()?,
    };
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure().build_client(true).build_server(true).compile_with_config(
        config,
        &["proto/cluster.proto", "proto/link.proto"],
        &["proto"],
    )?;
    Ok(())
}
