//! The `napiatke` binary: see `napiatke --help`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = napiatke_web::cli::Args::parse();
    napiatke_web::init_tracing();
    match napiatke_web::cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, naming the cause: start-up errors are read by people.
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
