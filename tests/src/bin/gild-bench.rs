//! `make bench`: gild's claims as numbers, each beside its goal. The parts
//! are in `gild_tests::bench`; this runs them and turns a broken claim
//! (the patch-day gate) into a failed exit.

use std::process::ExitCode;

use clap::Parser;
use gild_tests::bench::{run, Args, Verdict};

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(Verdict::Passed) => ExitCode::SUCCESS,
        Ok(Verdict::Violated(violations)) => {
            eprintln!("gild bench: the gate failed ({}):", violations.len());
            for violation in &violations {
                eprintln!("  {violation}");
            }
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("gild bench failed: {err}");
            ExitCode::FAILURE
        }
    }
}
