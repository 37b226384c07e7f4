//! Generates the gRPC client and server of `proto/eventbus/v1/pubsub_api.proto`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; tonic-prost-build reads PROTOC.
    unsafe { std::env::set_var("PROTOC", protoc) };
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(&["proto/eventbus/v1/pubsub_api.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/eventbus/v1/pubsub_api.proto");
    Ok(())
}
