use aws_sdk_dynamodb::Client;
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use gild_aws::dynamodb::DynamoLedger;
use gild_core::ledger::BakeRecord;
use gild_core::ports::Ledger;

use crate::CliError;

#[derive(Args)]
pub struct StatusArgs {
    /// Show this family's recent bakes instead of the latest of every family.
    family: Option<String>,
    /// The ledger table.
    #[arg(long, default_value = "gild-ledger", env = "GILD_LEDGER_TABLE")]
    table: String,
    /// How many bakes to show for one family.
    #[arg(long, default_value_t = 10)]
    limit: usize,
}

pub fn run(args: &StatusArgs) -> Result<String, CliError> {
    let records = crate::block_on(async {
        let config = gild_aws::load_cli_sdk_config().await;
        DynamoLedger::new(Client::new(&config), &args.table)
            .list()
            .await
    })?;
    Ok(render(
        records,
        args.family.as_deref(),
        args.limit,
        gild_now(),
    ))
}

fn gild_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The latest bake of each family, or one family's recent bakes, newest first.
pub fn render(
    mut records: Vec<BakeRecord>,
    family: Option<&str>,
    limit: usize,
    now: i64,
) -> String {
    records.sort_by(|a, b| {
        (b.requested_at, &b.key.dedupe_key).cmp(&(a.requested_at, &a.key.dedupe_key))
    });
    // One family's history, or every family's latest bake as the tree of
    // layered families, each child under its parent and marked when its
    // parent was promoted again since its image was baked.
    let shown: Vec<(String, &BakeRecord, Option<String>)> = match family {
        Some(family) => records
            .iter()
            .filter(|r| r.key.family == family)
            .take(limit)
            .map(|r| (r.key.family.clone(), r, None))
            .collect(),
        None => gild_core::layers::tree(&records)
            .into_iter()
            .map(|node| {
                let name = match node.depth {
                    0 => node.family.to_owned(),
                    depth => format!("{}└ {}", "  ".repeat(depth - 1), node.family),
                };
                (name, node.latest, node.outdated)
            })
            .collect(),
    };
    if shown.is_empty() {
        return match family {
            Some(family) => format!("no bakes of {family} in the ledger"),
            None => "no bakes in the ledger yet".into(),
        };
    }
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_header(["FAMILY", "STATE", "AMI", "TRIGGER", "COMMIT", "AGE", "BAKE"]);
    for (name, r, outdated) in shown {
        let mut state = match (&r.failed_stage, &r.reason) {
            (Some(stage), Some(reason)) => format!("failed at {stage}: {reason}"),
            _ => r.state.to_string(),
        };
        if let Some(parent_image) = outdated {
            state.push_str(&format!(" (outdated: its parent is now {parent_image})"));
        }
        table.add_row([
            name,
            state,
            r.image.clone().unwrap_or_else(|| "-".into()),
            r.trigger.to_string(),
            r.commit
                .as_deref()
                .map(|c| gild_core::announce::short_commit(c).to_owned())
                .unwrap_or_else(|| "-".into()),
            age(now - r.requested_at),
            r.key.dedupe_key.clone(),
        ]);
    }
    table.to_string()
}

fn age(seconds: i64) -> String {
    match seconds.max(0) {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gild_core::ledger::BakeKey;
    use gild_core::plan::Trigger;
    use gild_core::state::{BakeState, Stage};

    fn record(family: &str, key: &str, at: i64, state: BakeState) -> BakeRecord {
        let mut r = BakeRecord::requested(
            BakeKey::new(family, key),
            Trigger::Push,
            Some("a3f5c7e9b1d3f5a7".into()),
            at,
            60,
            "test",
        );
        r.state = state;
        r
    }

    #[test]
    fn shows_latest_per_family_or_one_family_history() {
        let mut failed = record("b", "push:2", 200, BakeState::Failed);
        failed.failed_stage = Some(Stage::Test);
        failed.reason = Some("test build FAILED".into());
        let records = vec![
            record("a", "schedule:2026-10", 100, BakeState::Promoted),
            record("a", "schedule:2026-11", 300, BakeState::Testing),
            failed,
        ];
        let all = render(records.clone(), None, 10, 400);
        assert!(
            all.contains("testing") && !all.contains("schedule:2026-10"),
            "{all}"
        );
        assert!(all.contains("failed at test: test build FAILED"), "{all}");
        assert!(
            all.contains("a3f5c7e9b1d3") && all.contains("100s"),
            "{all}"
        );
        let one = render(records, Some("a"), 10, 400);
        assert!(
            one.contains("schedule:2026-10") && one.contains("schedule:2026-11"),
            "{one}"
        );
        assert!(!one.contains("failed"), "{one}");
        assert_eq!(render(vec![], None, 10, 0), "no bakes in the ledger yet");
    }

    #[test]
    fn children_show_under_their_parent_and_say_when_they_are_outdated() {
        let mut parent = record("dotnet", "push:2", 300, BakeState::Promoted);
        parent.image = Some("ami-p2".into());
        let mut child = record("iis", "parent:ami-p1", 200, BakeState::Promoted);
        child.parent = Some("dotnet".into());
        child.parent_image = Some("ami-p1".into());
        let shown = render(vec![parent, child], None, 10, 400);
        let lines: Vec<&str> = shown.lines().collect();
        let dotnet = lines
            .iter()
            .position(|l| l.contains("dotnet"))
            .expect("dotnet");
        let iis = lines
            .iter()
            .position(|l| l.contains("└ iis"))
            .expect("iis under it");
        assert!(iis > dotnet, "{shown}");
        assert!(
            lines[iis].contains("outdated: its parent is now ami-p2"),
            "{shown}"
        );
    }
}
