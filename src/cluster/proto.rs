//! Code generated from `proto/cluster.proto` by `build.rs` (tonic + prost).

#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("junction.cluster");
