use std::path::PathBuf;

use aws_sdk_eventbridge::Client;
use clap::Args;
use gild_aws::eventbridge::EventBridgeBus;
use gild_core::catalog;
use gild_core::event::{BUILD_REQUESTED, GILD_SOURCE};
use gild_core::ports::Bus;
use serde_json::json;

use crate::{read, CliError};

#[derive(Args)]
pub struct BuildArgs {
    /// The family to bake.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    family: Option<String>,
    /// Bake every family.
    #[arg(long)]
    all: bool,
    /// Who asked, for the announcement (default: $USER).
    #[arg(long, env = "USER", default_value = "gild-cli")]
    requested_by: String,
    /// The event bus the trigger listens on.
    #[arg(long, default_value = "default", env = "GILD_EVENT_BUS")]
    bus: String,
    /// Check the family against this catalog before asking (skipped when absent).
    #[arg(long, default_value = catalog::CATALOG_FILE)]
    catalog: PathBuf,
}

pub fn run(args: &BuildArgs) -> Result<String, CliError> {
    let detail = match &args.family {
        Some(family) => {
            if args.catalog.exists() {
                let text = read(&args.catalog)?;
                let catalog = catalog::parse(&args.catalog.display().to_string(), &text)?;
                if catalog.get(family).is_none() {
                    return Err(CliError::Plan(gild_core::plan::PlanError::UnknownFamily {
                        family: family.clone(),
                        known: catalog.names().into_iter().map(str::to_owned).collect(),
                    }));
                }
            }
            json!({"family": family, "requested_by": args.requested_by})
        }
        None => json!({"all": true, "requested_by": args.requested_by}),
    };
    let event_id = crate::block_on(async {
        let config = gild_aws::load_cli_sdk_config().await;
        EventBridgeBus::new(Client::new(&config), &args.bus)
            .put(GILD_SOURCE, BUILD_REQUESTED, &detail)
            .await
    })?;
    let what = args.family.as_deref().unwrap_or("every family");
    Ok(format!(
        "requested a bake of {what} on bus `{}` (event {event_id}, requested by {}); follow it with `gild status`",
        args.bus, args.requested_by
    ))
}
