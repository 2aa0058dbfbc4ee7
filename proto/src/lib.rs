//! The public contract of the SIGeSS hub, gRPC package `cartella.v1`, generated from
//! `proto/cartella/v1/*.proto`.

pub mod v1 {
    #![allow(clippy::all, missing_debug_implementations)]
    tonic::include_proto!("cartella.v1");

    /// Encoded `FileDescriptorSet` of the contract, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/cartella_descriptor.bin"));
}
