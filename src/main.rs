//! The `orderly` binary: parses the command line and hands over to the library.

/// mimalloc instead of glibc malloc: glibc kept every freed 19 MiB Argon2id block in its
/// per-thread arenas, so RSS grew by ~19 MiB per login thread and never came back.
/// The `system-alloc` feature keeps the system allocator (heap profiling).
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Both rustls providers get compiled in by our dependencies; pick one before any TLS.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    orderly::cli::main()
}
