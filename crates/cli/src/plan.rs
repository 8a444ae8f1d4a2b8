use std::path::PathBuf;

use clap::Args;
use gild_core::catalog::{self, Catalog, CATALOG_FILE};
use gild_core::completion::Projects;
use gild_core::event;
use gild_core::explain::{self, Snapshot};
use gild_core::github::pull_request::{
    triage_pull_request, PullRequestPayload, PULL_REQUEST_EVENT,
};
use gild_core::github::{triage_push, PushPayload, PUSH_EVENT};
use gild_core::plan::{self, Inputs, Settings, Triage};
use gild_core::pull_request::{ReviewPolicy, DEFAULT_TRUSTED_LABEL};
use gild_core::reconcile::Deadlines;
use gild_core::vocabulary::defaults;

use crate::{read, CliError};

#[derive(Args)]
pub struct PlanArgs {
    /// The event as EventBridge delivers it (JSON file), or a GitHub
    /// delivery's body with --github-event.
    #[arg(long, required_unless_present = "ledger", conflicts_with = "ledger")]
    event: Option<PathBuf>,
    /// The file is a GitHub webhook delivery body of this event type
    /// (`push` or `pull_request`), not an EventBridge event.
    #[arg(long, value_name = "TYPE", requires = "event")]
    github_event: Option<GitHubEvent>,
    /// The label that lets a fork's pull request be validated.
    #[arg(long, default_value = DEFAULT_TRUSTED_LABEL, env = "GILD_TRUSTED_LABEL")]
    trusted_label: String,
    /// Validate draft pull requests too.
    #[arg(long, env = "GILD_VALIDATE_DRAFTS")]
    validate_drafts: bool,
    /// Instead of an event: a ledger snapshot (JSON: `{"bakes": [...],
    /// "builds": {"project:uuid": {"status": "SUCCEEDED"}}}`); prints what
    /// the reconciler would do with it.
    #[arg(long)]
    ledger: Option<PathBuf>,
    #[command(flatten)]
    reconciler: ReconcilerArgs,
    /// The catalog at the event's commit.
    #[arg(long, default_value = CATALOG_FILE)]
    catalog: PathBuf,
    /// The catalog before the push; without it a change to gild.toml counts for every family.
    #[arg(long)]
    previous_catalog: Option<PathBuf>,
    /// A path the push or pull request changed (repeat); stands in for
    /// CodeCommit GetDifferences and GitHub's compare and pull-request files APIs.
    #[arg(long = "changed", value_name = "PATH")]
    changed: Vec<String>,
    /// The branch whose pushes build images.
    #[arg(long, default_value = defaults::TRACKED_BRANCH, env = "GILD_TRACKED_BRANCH")]
    tracked_branch: String,
    /// Only pushes and pull requests of this repository build (default:
    /// any; for a GitHub delivery, the delivery's own).
    #[arg(long, env = "GILD_REPOSITORY")]
    repository: Option<String>,
    /// The CodeBuild project that bakes images.
    #[arg(long, default_value = defaults::BAKE_PROJECT, env = "GILD_BAKE_PROJECT")]
    bake_project: String,
    /// The CodeBuild project that tests them.
    #[arg(long, default_value = defaults::TEST_PROJECT, env = "GILD_TEST_PROJECT")]
    test_project: String,
}

/// GitHub webhook event types `gild plan` reads.
#[derive(Clone, Copy, clap::ValueEnum)]
enum GitHubEvent {
    Push,
    #[value(name = "pull_request")]
    PullRequest,
}

/// The reconciler's clock and deadlines, as the stack sets them.
#[derive(Args)]
struct ReconcilerArgs {
    /// The reconciler's clock, epoch seconds (default: now).
    #[arg(long)]
    now: Option<i64>,
    #[arg(long, default_value_t = Deadlines::DEFAULT_BAKE_TIMEOUT_MINUTES)]
    bake_timeout_minutes: i64,
    #[arg(long, default_value_t = Deadlines::DEFAULT_TEST_TIMEOUT_MINUTES)]
    test_timeout_minutes: i64,
    #[arg(long, default_value_t = Deadlines::DEFAULT_QUEUED_TIMEOUT_MINUTES)]
    queued_timeout_minutes: i64,
    #[arg(long, default_value_t = Deadlines::DEFAULT_LONGEST_LEASE_SECS)]
    lease_secs: i64,
    /// The stack's ReconcileIntervalMinutes.
    #[arg(long, default_value_t = Deadlines::DEFAULT_MARGIN_MINUTES)]
    margin_minutes: i64,
}

/// What the reconciler would do with a ledger snapshot.
fn reconcile(path: &std::path::Path, args: &PlanArgs) -> Result<String, CliError> {
    let snapshot: Snapshot = serde_json::from_str(&read(path)?)
        .map_err(|e| CliError::Usage(format!("{}: not a ledger snapshot: {e}", path.display())))?;
    let r = &args.reconciler;
    let now = r.now.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    });
    let deadlines = Deadlines::from_timeouts(
        r.bake_timeout_minutes,
        r.test_timeout_minutes,
        r.queued_timeout_minutes,
        r.lease_secs,
        r.margin_minutes,
    );
    let bakes = explain::reconcile(&snapshot, now, &deadlines, &projects(args));
    let output = serde_json::json!({
        "event": "reconcile",
        "now": now,
        "open": snapshot.bakes.iter().filter(|b| !b.state.is_terminal()).count(),
        "bakes": bakes,
    });
    serde_json::to_string_pretty(&output).map_err(|e| CliError::Usage(e.to_string()))
}

fn projects(args: &PlanArgs) -> Projects {
    Projects {
        bake: args.bake_project.clone(),
        test: args.test_project.clone(),
    }
}

fn load_catalog(path: &std::path::Path) -> Result<Catalog, CliError> {
    let text = read(path)?;
    Ok(catalog::parse(&path.display().to_string(), &text)?)
}

pub fn run(args: &PlanArgs) -> Result<String, CliError> {
    let event_path = match (&args.event, &args.ledger) {
        (_, Some(ledger)) => return reconcile(ledger, args),
        (Some(event), None) => event,
        (None, None) => return Err(CliError::Usage("give --event or --ledger".into())),
    };
    let text = read(event_path)?;
    let settings = Settings {
        tracked_branch: args.tracked_branch.clone(),
        repository: args.repository.clone(),
        projects: projects(args),
        review: ReviewPolicy {
            trusted_label: args.trusted_label.clone(),
            validate_drafts: args.validate_drafts,
        },
    };
    let (name, triage) = match args.github_event {
        None => {
            let event = event::parse_bytes(text.as_bytes())?;
            let triage = plan::triage(&event, &settings);
            (event.envelope.detail_type, triage)
        }
        Some(kind) => github(kind, &text, &settings, event_path)?,
    };
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
    let plan = plan::plan_triaged(&name, &triage, &inputs)?;
    serde_json::to_string_pretty(&plan).map_err(|e| CliError::Usage(e.to_string()))
}

/// A GitHub delivery body, triaged as the webhook does (its signature is
/// the webhook's to check; here the file is trusted).
fn github(
    kind: GitHubEvent,
    text: &str,
    settings: &Settings,
    path: &std::path::Path,
) -> Result<(String, Triage), CliError> {
    let bad = |e: serde_json::Error, what: &str| {
        CliError::Usage(format!("{}: not a GitHub {what} body: {e}", path.display()))
    };
    match kind {
        GitHubEvent::Push => {
            let push: PushPayload = serde_json::from_str(text).map_err(|e| bad(e, "push"))?;
            let repository = settings
                .repository
                .clone()
                .unwrap_or_else(|| push.repository.full_name.clone());
            let (triage, _) = triage_push(&push, settings, &repository);
            Ok((PUSH_EVENT.to_owned(), triage))
        }
        GitHubEvent::PullRequest => {
            let payload: PullRequestPayload =
                serde_json::from_str(text).map_err(|e| bad(e, "pull_request"))?;
            let repository = settings
                .repository
                .clone()
                .unwrap_or_else(|| payload.repository.full_name.clone());
            let triage = triage_pull_request(&payload, settings, &settings.review, &repository);
            Ok((PULL_REQUEST_EVENT.to_owned(), triage))
        }
    }
}
