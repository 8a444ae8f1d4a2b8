use std::path::PathBuf;

use clap::Args;
use gild_core::catalog::{self, Catalog, CATALOG_FILE};
use gild_core::completion::Projects;
use gild_core::event;
use gild_core::plan::{self, Inputs, Settings, Triage};

use crate::{read, CliError};

#[derive(Args)]
pub struct PlanArgs {
    /// The event as EventBridge delivers it (JSON file).
    #[arg(long)]
    event: PathBuf,
    /// The catalog at the event's commit.
    #[arg(long, default_value = CATALOG_FILE)]
    catalog: PathBuf,
    /// The catalog before the push; without it a change to gild.toml counts for every family.
    #[arg(long)]
    previous_catalog: Option<PathBuf>,
    /// A path the push changed (repeat); stands in for CodeCommit GetDifferences.
    #[arg(long = "changed", value_name = "PATH")]
    changed: Vec<String>,
    /// The branch whose pushes build images.
    #[arg(long, default_value = "main", env = "GILD_TRACKED_BRANCH")]
    tracked_branch: String,
    /// Only pushes to this repository build (default: any).
    #[arg(long, env = "GILD_REPOSITORY")]
    repository: Option<String>,
    /// The CodeBuild project that bakes images.
    #[arg(long, default_value = "gild-bake", env = "GILD_BAKE_PROJECT")]
    bake_project: String,
    /// The CodeBuild project that tests them.
    #[arg(long, default_value = "gild-test", env = "GILD_TEST_PROJECT")]
    test_project: String,
}

fn load_catalog(path: &std::path::Path) -> Result<Catalog, CliError> {
    let text = read(path)?;
    Ok(catalog::parse(&path.display().to_string(), &text)?)
}

pub fn run(args: &PlanArgs) -> Result<String, CliError> {
    let event = event::parse_bytes(read(&args.event)?.as_bytes())?;
    let settings = Settings {
        tracked_branch: args.tracked_branch.clone(),
        repository: args.repository.clone(),
        projects: Projects {
            bake: args.bake_project.clone(),
            test: args.test_project.clone(),
        },
    };
    let triage = plan::triage(&event, &settings);
    let inputs = match &triage {
        // Ignored events need no catalog: explain them even without one.
        Triage::Ignore(_) | Triage::Completion(_) => Inputs::default(),
        _ => Inputs {
            catalog: load_catalog(&args.catalog)?,
            previous_catalog: args
                .previous_catalog
                .as_deref()
                .map(load_catalog)
                .transpose()?,
            changed: args.changed.clone(),
            commit: None,
        },
    };
    let plan = plan::plan(&event, &triage, &inputs)?;
    serde_json::to_string_pretty(&plan).map_err(|e| CliError::Usage(e.to_string()))
}
