//! Code generated from `proto/rkube.proto`: the resource service the daemons speak to the API
//! server. Nothing here is written by hand beyond this re-export.
#![allow(missing_docs, clippy::all)]

/// Messages, client and server of package `rkube.v1`.
pub mod v1 {
    tonic::include_proto!("rkube.v1");
}
