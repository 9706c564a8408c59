//! The `napiatke` binary: see `napiatke --help`.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc: a request allocates dozens of small short-lived
/// values (keys, headers, futures), and glibc's arenas cost more per call and contend
/// across worker threads (measured in docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = napiatke_web::cli::Args::parse();
    match napiatke_web::cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, naming the cause: start-up errors are read by people.
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
