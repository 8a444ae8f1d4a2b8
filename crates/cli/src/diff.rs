//! `gild diff <family> [<ami> [<ami>]]`: what changed in the packages
//! between two images of a family, from the bills of materials the bakes
//! keep in the artifact bucket (`docs/bom.md`).
//!
//! Which two, when not both are given: one AMI is compared with the
//! family's promoted image; none compares the promoted image with the
//! family's latest bake, or, when the latest bake is the promoted image,
//! that image with the one it replaced (what the last promotion changed).

use aws_sdk_dynamodb::Client as Dynamo;
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use gild_aws::dynamodb::DynamoLedger;
use gild_aws::s3::S3Artifacts;
use gild_aws::ssm::SsmParameters;
use gild_core::bom::{self, bom_key, DiffDocument, Lists, PackageChanges};
use gild_core::completion::parameter_name;
use gild_core::ledger::BakeRecord;
use gild_core::ports::{Artifacts, Ledger, Parameters, PortError};
use gild_core::vocabulary::defaults;

use crate::CliError;

#[derive(Args)]
pub struct DiffArgs {
    /// The family, as `gild.toml` names it.
    family: String,
    /// The older image (or, alone, the image to compare with the promoted one).
    old: Option<String>,
    /// The newer image.
    new: Option<String>,
    /// Print the whole diff as JSON (`gild.bom-diff/1`) instead of a table.
    #[arg(long)]
    json: bool,
    /// The artifact bucket (the stack's `ArtifactBucketName` output).
    #[arg(long, env = "GILD_ARTIFACT_BUCKET")]
    bucket: String,
    /// The ledger table, to find the latest bake.
    #[arg(long, default_value = "gild-ledger", env = "GILD_LEDGER_TABLE")]
    table: String,
    /// The stack's parameter prefix.
    #[arg(long, default_value = defaults::PARAMETER_PREFIX, env = "GILD_PARAMETER_PREFIX")]
    parameter_prefix: String,
}

/// The two images to compare, older first, and why those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub old: String,
    pub new: String,
    pub why: String,
}

/// Which images, from the arguments, the promoted image and the ledger.
pub fn pick(
    family: &str,
    old: Option<&str>,
    new: Option<&str>,
    promoted: Option<&str>,
    records: &[BakeRecord],
) -> Result<Pair, CliError> {
    let pair = |old: &str, new: &str, why: String| Pair {
        old: old.to_owned(),
        new: new.to_owned(),
        why,
    };
    let no_promoted = || CliError::Usage(format!("{family} has no promoted image: name two AMIs"));
    match (old, new) {
        (Some(old), Some(new)) => Ok(pair(old, new, "as asked".into())),
        (Some(image), None) => {
            let promoted = promoted.ok_or_else(no_promoted)?;
            Ok(pair(
                promoted,
                image,
                format!("{image} against the promoted image"),
            ))
        }
        (None, _) => {
            let promoted = promoted.ok_or_else(no_promoted)?;
            let latest = records
                .iter()
                .filter(|r| r.key.family == family && r.image.is_some())
                .max_by_key(|r| (r.requested_at, r.updated_at))
                .ok_or_else(|| {
                    CliError::Usage(format!("no bake of {family} with an image in the ledger"))
                })?;
            let image = latest.image.as_deref().unwrap_or_default();
            if image != promoted {
                return Ok(pair(
                    promoted,
                    image,
                    format!(
                        "the latest bake ({}) against the promoted image",
                        latest.key.dedupe_key
                    ),
                ));
            }
            let replaced = latest
                .packages
                .as_ref()
                .and_then(PackageChanges::against)
                .ok_or_else(|| CliError::Usage(format!("the latest bake of {family} is the promoted image {promoted}, and the ledger does not say what it replaced: name two AMIs")))?;
            Ok(pair(
                replaced,
                promoted,
                "the promoted image against the one it replaced".into(),
            ))
        }
    }
}

pub fn run(args: &DiffArgs) -> Result<String, CliError> {
    let parameter = parameter_name(&args.parameter_prefix, &args.family);
    let both = args.old.is_some() && args.new.is_some();
    // One runtime and one SDK configuration for both rounds of calls: the
    // images are picked between them, from what the first round read.
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| CliError::Usage(format!("cannot start the async runtime: {e}")))?;
    let config = runtime.block_on(gild_aws::load_cli_sdk_config());
    let (promoted, records) = runtime.block_on(async {
        if both {
            return Ok::<_, PortError>((None, Vec::new()));
        }
        let promoted = SsmParameters::new(aws_sdk_ssm::Client::new(&config))
            .current(&parameter)
            .await?;
        let records = match args.old {
            Some(_) => Vec::new(),
            None => {
                DynamoLedger::new(Dynamo::new(&config), &args.table)
                    .list()
                    .await?
            }
        };
        Ok((promoted, records))
    })?;
    let pair = pick(
        &args.family,
        args.old.as_deref(),
        args.new.as_deref(),
        promoted.as_deref(),
        &records,
    )?;
    let (old, new) = runtime.block_on(async {
        let artifacts = S3Artifacts::new(aws_sdk_s3::Client::new(&config), &args.bucket);
        let old = artifacts.get(&bom_key(&pair.old)).await?;
        let new = artifacts.get(&bom_key(&pair.new)).await?;
        Ok::<_, PortError>((old, new))
    })?;
    let (changes, document) = bom::compare(Lists {
        family: &args.family,
        image: &pair.new,
        new: new.as_deref(),
        promoted: Some((&pair.old, old.as_deref())),
    });
    let Some(document) = document else {
        return Err(CliError::Usage(format!(
            "{} and {}: {changes}",
            pair.old, pair.new
        )));
    };
    if args.json {
        return serde_json::to_string_pretty(&document)
            .map_err(|e| CliError::Usage(format!("cannot write the diff as JSON: {e}")));
    }
    Ok(render(&pair, &changes, &document))
}

/// The summary line, then one row per change.
pub fn render(pair: &Pair, changes: &PackageChanges, document: &DiffDocument) -> String {
    let mut out = format!(
        "{}: {} → {} ({})\n{changes}\n",
        document.family, pair.old, pair.new, pair.why
    );
    let rows = bom::rows(&document.diff);
    if rows.is_empty() {
        return out;
    }
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_header(["CHANGE", "KIND", "PACKAGE", "OLD", "NEW"]);
    for row in rows {
        table.add_row([
            row.change.to_string(),
            row.kind.to_string(),
            row.package(),
            row.old.clone().unwrap_or_else(|| "-".into()),
            row.new.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    out.push_str(&table.to_string());
    out
}

#[cfg(test)]
mod tests;
