fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../../proto/rkube.proto");
    tonic_prost_build::configure().compile_protos(&["../../proto/rkube.proto"], &["../../proto"])?;
    Ok(())
}
