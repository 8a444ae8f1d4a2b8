//! `gild`: see what the pipeline would do with an event, request builds, and
//! read the ledger.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod build;
mod diff;
mod plan;
mod status;

#[derive(Parser)]
#[command(
    name = "gild",
    version,
    about = "Golden images as code: plan, build and follow AMI bakes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print, as JSON and without any AWS call, what the pipeline would do with an event.
    Plan(plan::PlanArgs),
    /// Request a bake of one family (or all) by putting a `Build Requested` event on the bus.
    Build(build::BuildArgs),
    /// Show the latest bakes from the ledger: state, AMI, trigger, commit, age.
    Status(status::StatusArgs),
    /// What changed in the packages between two images of a family (default: the promoted image and the latest bake).
    Diff(diff::DiffArgs),
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Event(#[from] gild_core::event::EventError),
    #[error(transparent)]
    Catalog(#[from] gild_core::catalog::CatalogError),
    #[error(transparent)]
    Plan(#[from] gild_core::plan::PlanError),
    #[error(transparent)]
    Aws(#[from] gild_core::ports::PortError),
    #[error("{0}")]
    Usage(String),
}

/// Runs one async AWS call from the synchronous CLI.
pub fn block_on<T>(
    work: impl std::future::Future<Output = Result<T, gild_core::ports::PortError>>,
) -> Result<T, CliError> {
    tokio::runtime::Runtime::new()
        .map_err(|e| CliError::Usage(format!("cannot start the async runtime: {e}")))?
        .block_on(work)
        .map_err(CliError::from)
}

pub fn read(path: &std::path::Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.to_owned(),
        source,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan(args) => plan::run(&args),
        Command::Build(args) => build::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Diff(args) => diff::run(&args),
    };
    match result {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            // One line, so scripts and CI logs show the cause at a glance.
            eprintln!("gild: error: {}", err.to_string().replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
