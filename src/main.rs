//! The `orderly` binary: parses the command line and hands over to the library.

fn main() -> std::process::ExitCode {
    // Both rustls providers get compiled in by our dependencies; pick one before any TLS.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    orderly::cli::main()
}
