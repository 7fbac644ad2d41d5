//! Compiles the demo and test protobufs (used by `examples/` and `tests/` only).
//! `protoc` comes from the vendored binary so a fresh machine needs nothing installed.

// The build script is single-threaded; prost-build reads PROTOC from the environment.
#[allow(clippy::disallowed_methods)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_protos(&["proto/routeguide.proto", "proto/echo.proto"], &["proto"])?;
    Ok(())
}
