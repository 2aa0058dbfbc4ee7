//! Compiles `cartella/v1/*.proto` with protox (pure Rust, no system `protoc`) and writes the
//! descriptor set that server reflection serves.
use std::{env, fs, path::PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "cartella/v1/types.proto",
        "cartella/v1/cartella_service.proto",
        "cartella/v1/feed_service.proto",
        "cartella/v1/stats_service.proto",
        "cartella/v1/siuss_service.proto",
        "cartella/v1/delivery_service.proto",
        "cartella/v1/audit_service.proto",
        "cartella/v1/import_service.proto",
        "cartella/v1/revisione_service.proto",
    ];
    let fds = protox::compile(files, ["."])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("cartella_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().build_server(true).build_client(true).compile_fds(fds)?;
    println!("cargo:rerun-if-changed=cartella");
    Ok(())
}
