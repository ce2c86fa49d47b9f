//! Compiles the etcd v3 .proto files in `proto/` (feature `grpc`) without a system protoc:
//! protox parses them in Rust into a file descriptor set, and tonic-prost-build turns that
//! into prost messages plus tonic clients and servers, one file per package in `OUT_DIR`.

/// The files to compile; the others they import are found under [`PROTO_ROOT`].
#[cfg(feature = "grpc")]
const PROTO_FILES: &[&str] = &[
    "proto/etcdserverpb/rpc.proto",
    "proto/mvccpb/kv.proto",
    "proto/authpb/auth.proto",
    "proto/v3lockpb/v3lock.proto",
    "proto/v3electionpb/v3election.proto",
];

/// The include root: imports are written relative to it (`import "mvccpb/kv.proto"`).
#[cfg(feature = "grpc")]
const PROTO_ROOT: &str = "proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(feature = "grpc")]
    compile_etcd_protos()?;
    Ok(())
}

#[cfg(feature = "grpc")]
fn compile_etcd_protos() -> Result<(), Box<dyn std::error::Error>> {
    // Rebuild when any .proto changes, and only then.
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(PROTO_FILES, [PROTO_ROOT])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // No `connect` helper: it would tie this crate to tonic's transport; callers build
        // their own channel (plain or TLS) and hand it to `XxxClient::new`.
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
