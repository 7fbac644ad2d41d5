//! Compiles the demo and test protobufs (used by `examples/` and `tests/` only).
//! `protoc` comes from the vendored binary so a fresh machine needs nothing installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(&protoc);
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_with_config(
            config,
            &["proto/routeguide.proto", "proto/echo.proto"],
            &["proto"],
        )?;
    // The gRPC interop test service (tests/interop.rs). Default stubs answer
    // UNIMPLEMENTED for the methods a server does not write, as the interop cases
    // expect of `UnimplementedCall`.
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(&protoc);
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .generate_default_stubs(true)
        .compile_with_config(config, &["proto/interop/test.proto"], &["proto"])?;
    Ok(())
}
