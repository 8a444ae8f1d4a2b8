//! The planner: which families an event rebuilds, and why.
//!
//! Planning happens in two steps so that the trigger Lambda does only the I/O
//! an event needs: [`triage`] looks at the event alone and says what must be
//! read (nothing, the catalog at the tracked branch's tip, or the catalog and
//! the diff of a push); [`plan`] then decides from those inputs. `gild plan`
//! runs the same two functions with local files standing in for the reads.

use std::collections::BTreeMap;

use crate::catalog::{Catalog, CATALOG_FILE};
use crate::completion::{classify, work_chain, Completion, Finished, Projects, ENV_FAMILY};
use crate::event::{parse_time, BuildRequest, BuildTarget, Event, EventKind};
use crate::layers;
use crate::pull_request::{self, PullRequest, PullRequestTriage, ReviewPolicy};

pub use crate::vocabulary::{DiffBase, Trigger};

pub use crate::explain::{Action, Plan};

/// Deployment settings the planner needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub tracked_branch: String,
    /// The images repository; pushes to other repositories are ignored.
    /// `None` accepts any (used by `gild plan` when not told).
    pub repository: Option<String>,
    pub projects: Projects,
    /// Forks and drafts.
    pub review: ReviewPolicy,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tracked_branch: crate::vocabulary::defaults::TRACKED_BRANCH.into(),
            repository: None,
            projects: Projects::default(),
            review: ReviewPolicy::default(),
        }
    }
}

/// What an event needs before it can be planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Triage {
    Ignore(String),
    /// Every family, once per calendar month (`YYYY-MM`).
    Schedule {
        month: String,
    },
    Push {
        branch: String,
        commit: String,
        base: DiffBase,
    },
    Manual {
        request_id: String,
        request: BuildRequest,
    },
    /// A completed build of one of gild's projects.
    Completion(Finished),
    /// A pull request opened, updated, labelled or closed.
    PullRequest(PullRequestTriage),
}

pub fn triage(event: &Event, settings: &Settings) -> Triage {
    match &event.kind {
        EventKind::Schedule => match parse_time(&event.envelope.time) {
            Ok(t) => match crate::patch_day::due(t) {
                Ok(()) => Triage::Schedule {
                    month: format!("{:04}-{:02}", t.year(), u8::from(t.month())),
                },
                Err(reason) => Triage::Ignore(reason),
            },
            // parse() already rejected such events; keep this total anyway.
            Err(e) => Triage::Ignore(e),
        },
        EventKind::RefChange(change) => {
            if let Some(repo) = &settings.repository {
                if &change.repository_name != repo {
                    return Triage::Ignore(format!(
                        "repository `{}` is not the images repository `{repo}`",
                        change.repository_name
                    ));
                }
            }
            if change.event == "unreferencedMergeCommitCreated" {
                return Triage::Ignore(format!(
                    "unreferencedMergeCommitCreated: merge commit {} is on no branch yet; \
                     only pushes to the branch `{}` build images",
                    change.commit_id.as_deref().unwrap_or("?"),
                    settings.tracked_branch
                ));
            }
            if change.reference_type != "branch" {
                return Triage::Ignore(format!(
                    "{} `{}` ignored: only pushes to the branch `{}` build images",
                    change.reference_type, change.reference_name, settings.tracked_branch
                ));
            }
            if change.reference_name != settings.tracked_branch {
                return Triage::Ignore(format!(
                    "branch `{}` is not the tracked branch `{}`",
                    change.reference_name, settings.tracked_branch
                ));
            }
            let commit = match (change.event.as_str(), &change.commit_id) {
                ("referenceDeleted", _) => {
                    return Triage::Ignore(format!(
                        "branch `{}` was deleted: nothing to build",
                        change.reference_name
                    ))
                }
                ("referenceCreated" | "referenceUpdated", Some(commit)) => commit.clone(),
                ("referenceCreated" | "referenceUpdated", None) => {
                    return Triage::Ignore(format!(
                        "`{}` of `{}` carries no commitId",
                        change.event, change.reference_name
                    ))
                }
                (other, _) => {
                    return Triage::Ignore(format!(
                        "repository event `{other}` does not change a branch"
                    ))
                }
            };
            let base = match (&change.old_commit_id, change.event.as_str()) {
                (Some(old), "referenceUpdated") => DiffBase::Commit(old.clone()),
                _ => DiffBase::EmptyTree,
            };
            Triage::Push {
                branch: change.reference_name.clone(),
                commit,
                base,
            }
        }
        EventKind::BuildRequested(request) => Triage::Manual {
            request_id: event.envelope.id.clone(),
            request: request.clone(),
        },
        EventKind::PullRequest(change) => match pull_request::triage_codecommit(
            change,
            &settings.tracked_branch,
            settings.repository.as_deref(),
        ) {
            Ok(triage) => Triage::PullRequest(triage),
            Err(reason) => Triage::Ignore(reason),
        },
        EventKind::BuildStateChange(change) => match classify(change, &settings.projects) {
            Ok(finished) if finished.family.is_some() => Triage::Completion(finished),
            Ok(finished) => Triage::Ignore(format!(
                "build {} has no {ENV_FAMILY}: not a gild bake",
                finished.build_id
            )),
            Err(reason) => Triage::Ignore(reason),
        },
    }
}

/// What the trigger read (or `gild plan` was given) for a triaged event.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub catalog: Catalog,
    /// The catalog before the push; `None` when it could not be read, which
    /// makes a change to `gild.toml` count for every family.
    pub previous_catalog: Option<Catalog>,
    /// Paths the push or pull request changed (both sides of a rename).
    pub changed: Vec<String>,
    /// The commit schedule and manual bakes build (the tracked branch's tip).
    pub commit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("unknown family `{family}`; known families: {}", known.join(", "))]
    UnknownFamily { family: String, known: Vec<String> },
    #[error("the catalog declares no family")]
    EmptyCatalog,
}

/// Decides the actions for a triaged event.
pub fn plan(event: &Event, triage: &Triage, inputs: &Inputs) -> Result<Plan, PlanError> {
    plan_triaged(&event.envelope.detail_type, triage, inputs)
}

/// [`plan`] for a triage made from something other than an EventBridge
/// event (a GitHub push); `detail_type` names the event in the plan.
pub fn plan_triaged(
    detail_type: &str,
    triage: &Triage,
    inputs: &Inputs,
) -> Result<Plan, PlanError> {
    let detail_type = detail_type.to_owned();
    let ignore = |reason: String| Plan {
        event: detail_type.clone(),
        actions: Vec::new(),
        reason,
    };
    let catalog = &inputs.catalog;
    // Each family of a run, waiting for its parent when the parent bakes
    // in the same run (`layers`).
    let run = |families: &[&str], trigger: Trigger, dedupe_key: &str, commit: &Option<String>| {
        let planned = families.iter().map(|f| (*f).to_owned()).collect();
        layers::layer(catalog, &planned)
            .into_iter()
            .map(|(family, waits_for)| {
                let children = layers::descendants(catalog, &family);
                match waits_for {
                    Some(parent) => Action::WaitForParent {
                        family,
                        parent,
                        trigger,
                        dedupe_key: dedupe_key.to_owned(),
                        commit: commit.clone(),
                        children,
                    },
                    None => Action::StartBake {
                        parent: catalog.get(&family).and_then(|f| f.parent.clone()),
                        family,
                        trigger,
                        dedupe_key: dedupe_key.to_owned(),
                        commit: commit.clone(),
                        promote: true,
                        children,
                    },
                }
            })
            .collect::<Vec<Action>>()
    };
    match triage {
        Triage::Ignore(reason) => Ok(ignore(reason.clone())),
        Triage::PullRequest(triage) => Ok(plan_pull_request(detail_type, triage, inputs)),
        Triage::Completion(finished) => {
            let family = finished.family.clone().unwrap_or_default();
            let lane = finished
                .trigger
                .map_or(crate::state::Lane::Production, crate::ledger::lane_of);
            let mut actions: Vec<Action> = work_chain(lane, finished.completion)
                .into_iter()
                .flat_map(|work| Action::of_work(work, &family, &finished.image))
                .collect();
            // A promotion rebuilds the family's children from its new image
            // (a child waiting in the same run starts instead, under its
            // run's dedupe key).
            if finished.completion == Completion::TestPassed
                && lane == crate::state::Lane::Production
            {
                let image = finished.image.as_deref().unwrap_or("<image>");
                let below = layers::descendants(catalog, &family);
                for child in layers::direct_children(&below) {
                    actions.push(Action::StartBake {
                        family: child.to_owned(),
                        trigger: Trigger::Parent,
                        dedupe_key: layers::parent_dedupe_key(image),
                        commit: finished.commit.clone(),
                        promote: true,
                        parent: Some(family.clone()),
                        children: layers::subtree(&below, child),
                    });
                }
            }
            let what = match finished.completion {
                Completion::BakeSucceeded => "bake succeeded: tag the image, then test it",
                Completion::BakeFailed => "bake failed: remove what it left, announce it",
                Completion::TestPassed => "tests passed: promote the image, announce it",
                Completion::TestFailed => {
                    "tests failed: remove the image, keep the previous one, announce it"
                }
                Completion::NeverStarted => {
                    "never started: announce it (the reconciler's verdict; no event says this)"
                }
            };
            Ok(Plan {
                event: detail_type,
                actions,
                reason: format!(
                    "build {} of {family} {}; {what} (if the ledger's bake is in state {})",
                    finished.build_id,
                    finished.status,
                    finished.completion.expected_state()
                ),
            })
        }
        Triage::Schedule { month } => {
            let names = inputs.catalog.names();
            if names.is_empty() {
                return Err(PlanError::EmptyCatalog);
            }
            Ok(Plan {
                event: detail_type,
                reason: format!(
                    "monthly patch rebuild for {month}: all {} famil{}",
                    names.len(),
                    if names.len() == 1 { "y" } else { "ies" }
                ),
                actions: run(
                    &names,
                    Trigger::Schedule,
                    &format!("schedule:{month}"),
                    &inputs.commit,
                ),
            })
        }
        Triage::Push { branch, commit, .. } => {
            let affected = affected_families(
                &inputs.catalog,
                inputs.previous_catalog.as_ref(),
                &inputs.changed,
            );
            let short = commit.get(..7).unwrap_or(commit);
            let reason = if affected.is_empty() {
                format!(
                    "push to {branch} at {short} touches no family ({} path{} changed, none under a family's folder, its roles, its gild.toml entry, buildspecs/ or ansible/)",
                    inputs.changed.len(),
                    if inputs.changed.len() == 1 { "" } else { "s" }
                )
            } else {
                let why: Vec<String> = affected
                    .iter()
                    .map(|(family, why)| format!("{family} ({why})"))
                    .collect();
                format!(
                    "push to {branch} at {short} affects {} of {} families: {}",
                    affected.len(),
                    inputs.catalog.families.len(),
                    why.join("; ")
                )
            };
            Ok(Plan {
                event: detail_type,
                actions: run(
                    &affected.keys().map(String::as_str).collect::<Vec<_>>(),
                    Trigger::Push,
                    &format!("push:{commit}"),
                    &Some(commit.clone()),
                ),
                reason,
            })
        }
        Triage::Manual {
            request_id,
            request,
        } => {
            let families: Vec<&str> = match &request.target {
                BuildTarget::All => inputs.catalog.names(),
                BuildTarget::Family(family) => {
                    if inputs.catalog.get(family).is_none() {
                        return Err(PlanError::UnknownFamily {
                            family: family.clone(),
                            known: inputs
                                .catalog
                                .names()
                                .into_iter()
                                .map(str::to_owned)
                                .collect(),
                        });
                    }
                    vec![family.as_str()]
                }
            };
            if families.is_empty() {
                return Err(PlanError::EmptyCatalog);
            }
            let by = request.requested_by.as_deref().unwrap_or("someone");
            Ok(Plan {
                event: detail_type,
                reason: format!("build requested by {by}: {}", families.join(", ")),
                actions: run(
                    &families,
                    Trigger::Manual,
                    &format!("manual:{request_id}"),
                    &inputs.commit,
                ),
            })
        }
    }
}

/// What a pull request's head calls for: supersede its older heads, then
/// one candidate per family its changes affect, and a test-only run for
/// each family whose consumers' tests alone changed.
fn plan_pull_request(detail_type: String, triage: &PullRequestTriage, inputs: &Inputs) -> Plan {
    let name = |pr: &PullRequest| format!("{}#{}", pr.repository, pr.number);
    match triage {
        PullRequestTriage::Refuse {
            pull_request,
            reason,
        } => Plan {
            event: detail_type,
            actions: vec![Action::Refuse {
                pull_request: name(pull_request),
                commit: pull_request.head.clone(),
                reason: reason.clone(),
            }],
            reason: format!("pull request {pull_request} is not validated: {reason}"),
        },
        PullRequestTriage::Close(pull_request) => Plan {
            event: detail_type,
            actions: vec![Action::RemoveCandidates {
                pull_request: name(pull_request),
            }],
            reason: format!(
                "pull request {pull_request} was closed: its open candidates are stopped and its images removed"
            ),
        },
        PullRequestTriage::Validate(pull_request) => {
            let affected = affected_families(
                &inputs.catalog,
                inputs.previous_catalog.as_ref(),
                &inputs.changed,
            );
            let tested = consumer_changes(&inputs.catalog, inputs.previous_catalog.as_ref(), &inputs.changed);
            let dedupe_key = pull_request.dedupe_key();
            let mut actions = vec![Action::Supersede {
                pull_request: name(pull_request),
                keep: pull_request.head.clone(),
            }];
            let mut why = Vec::new();
            for (family, reason) in &affected {
                why.push(format!("{family} ({reason})"));
                // A candidate of a layered family bakes from its parent's
                // promoted image, even when the pull request changes the
                // parent too: the parent's candidate validates that change.
                actions.push(Action::StartBake {
                    family: family.clone(),
                    trigger: Trigger::PullRequest,
                    dedupe_key: dedupe_key.clone(),
                    commit: Some(pull_request.head.clone()),
                    promote: false,
                    parent: inputs.catalog.get(family).and_then(|f| f.parent.clone()),
                    children: Vec::new(),
                });
            }
            for (family, consumers) in &tested {
                if affected.contains_key(family) {
                    // Its candidate's test build runs every consumer anyway.
                    continue;
                }
                why.push(format!(
                    "{family} (tests of {} changed: test-only run on the promoted image)",
                    consumers.join(", ")
                ));
                actions.push(Action::StartValidation {
                    family: family.clone(),
                    trigger: Trigger::PullRequest,
                    dedupe_key: dedupe_key.clone(),
                    commit: Some(pull_request.head.clone()),
                    consumers: consumers.clone(),
                    promote: false,
                });
            }
            let reason = if why.is_empty() {
                format!(
                    "pull request {pull_request} touches no family and no consumer's tests ({} path{} changed): nothing to validate",
                    inputs.changed.len(),
                    if inputs.changed.len() == 1 { "" } else { "s" }
                )
            } else {
                format!(
                    "pull request {pull_request}: candidates, never promoted: {}",
                    why.join("; ")
                )
            };
            Plan {
                event: detail_type,
                actions,
                reason,
            }
        }
    }
}

/// Families whose consumers' tests a change touched, with those consumers:
/// a path under a consumer's tests, or its catalog entry changed.
pub fn consumer_changes(
    catalog: &Catalog,
    previous: Option<&Catalog>,
    changed: &[String],
) -> BTreeMap<String, Vec<String>> {
    let mut touched: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for consumer in catalog.consumers.values() {
        let entry_changed = changed
            .iter()
            .any(|p| p.trim_start_matches('/') == CATALOG_FILE)
            && previous.is_none_or(|p| p.consumers.get(&consumer.name) != Some(consumer));
        let tests_changed = changed
            .iter()
            .any(|p| consumer.owns_path(p.trim_start_matches('/')));
        if entry_changed || tests_changed {
            for family in &consumer.families {
                touched
                    .entry(family.clone())
                    .or_default()
                    .push(consumer.name.clone());
            }
        }
    }
    touched
}

/// Families a push affects, each with the first reason found.
pub fn affected_families(
    catalog: &Catalog,
    previous: Option<&Catalog>,
    changed: &[String],
) -> BTreeMap<String, String> {
    let mut affected = BTreeMap::new();
    let mut mark = |family: &str, why: String| {
        affected.entry(family.to_owned()).or_insert(why);
    };
    for path in changed {
        let path = path.trim_start_matches('/');
        if path == CATALOG_FILE {
            for (name, family) in &catalog.families {
                match previous.and_then(|p| p.get(name)) {
                    Some(before) if before == family => {}
                    Some(_) => mark(name, format!("its {CATALOG_FILE} entry changed")),
                    None if previous.is_some() => mark(name, format!("added to {CATALOG_FILE}")),
                    None => mark(
                        name,
                        format!("{CATALOG_FILE} changed and its previous version is unknown"),
                    ),
                }
            }
        } else if path.starts_with("buildspecs/")
            || (path.starts_with("ansible/") && !path.starts_with("ansible/roles/"))
        {
            for name in catalog.families.keys() {
                mark(name, format!("{path} is shared by every family"));
            }
        } else if let Some(rest) = path.strip_prefix("ansible/roles/") {
            let role = rest.split('/').next().unwrap_or_default();
            for (name, family) in &catalog.families {
                if family.roles.iter().any(|r| r == role) {
                    mark(name, format!("role {role} changed: {path}"));
                }
            }
        } else {
            for (name, family) in &catalog.families {
                if family.owns_path(path) {
                    mark(name, format!("{path} changed (the family's folder)"));
                } else if family.shares_template_path(path) {
                    mark(
                        name,
                        format!("{path} changed (the shared template {})", family.template),
                    );
                }
            }
        }
    }
    affected
}

#[cfg(test)]
mod tests;
