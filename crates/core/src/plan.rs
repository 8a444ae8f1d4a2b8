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
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tracked_branch: "main".into(),
            repository: None,
            projects: Projects::default(),
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
    /// Paths the push changed (both sides of a rename).
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
    let start = |family: &str, trigger: Trigger, dedupe_key: String, commit: Option<String>| {
        Action::StartBake {
            family: family.to_owned(),
            trigger,
            dedupe_key,
            commit,
        }
    };
    match triage {
        Triage::Ignore(reason) => Ok(ignore(reason.clone())),
        Triage::Completion(finished) => {
            let family = finished.family.clone().unwrap_or_default();
            let actions: Vec<Action> = work_chain(finished.completion)
                .into_iter()
                .flat_map(|work| Action::of_work(work, &family, &finished.image))
                .collect();
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
                actions: names
                    .iter()
                    .map(|f| {
                        start(
                            f,
                            Trigger::Schedule,
                            format!("schedule:{month}"),
                            inputs.commit.clone(),
                        )
                    })
                    .collect(),
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
                actions: affected
                    .keys()
                    .map(|f| {
                        start(
                            f,
                            Trigger::Push,
                            format!("push:{commit}"),
                            Some(commit.clone()),
                        )
                    })
                    .collect(),
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
                actions: families
                    .iter()
                    .map(|f| {
                        start(
                            f,
                            Trigger::Manual,
                            format!("manual:{request_id}"),
                            inputs.commit.clone(),
                        )
                    })
                    .collect(),
            })
        }
    }
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
                    mark(name, format!("{path} changed"));
                }
            }
        }
    }
    affected
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;
    use crate::event;
    use serde_json::json;

    const CATALOG: &str = r#"
[families.debian12-base]
path = "images/debian12-base"
os = "linux"
roles = ["baseline", "cw-agent"]

[families.win2022-core]
path = "images/win2022-core"
os = "windows"
roles = ["cw-agent"]

[families.win2022-iis]
path = "images/win2022-iis"
os = "windows"
"#;

    fn cat(text: &str) -> Catalog {
        catalog::parse("gild.toml", text).expect("valid catalog")
    }

    fn push(event_name: &str, ref_type: &str, name: &str) -> Event {
        event::parse(json!({
            "version": "0", "id": "ev-1", "detail-type": "CodeCommit Repository State Change",
            "source": "aws.codecommit", "account": "1", "time": "2026-11-12T14:05:09Z",
            "region": "us-east-1", "resources": [],
            "detail": {"event": event_name, "referenceType": ref_type, "referenceName": name,
                       "repositoryName": "platform-images", "commitId": "c0ffee1234567",
                       "oldCommitId": "0ld"}
        }))
        .expect("valid event")
    }

    #[test]
    fn unreferenced_merge_commit_is_ignored_with_a_reason() {
        // The documented shape (CodeCommit User Guide, "Monitoring CodeCommit
        // events": unreferencedMergeCommitCreated): no referenceType/Name.
        let event = event::parse(json!({
            "version": "0", "id": "01234567-0123-0123-0123-012345678901",
            "detail-type": "CodeCommit Repository State Change", "source": "aws.codecommit",
            "account": "123456789012", "time": "2026-11-12T14:05:09Z", "region": "us-east-1",
            "resources": ["arn:aws:codecommit:us-east-1:123456789012:platform-images"],
            "detail": {"callerUserArn": "arn:aws:iam::123456789012:user/Mary_Major",
                       "commitId": "0123456789abcdef0123456789abcdef01234567",
                       "event": "unreferencedMergeCommitCreated",
                       "repositoryId": "12345678-1234-5678-abcd-12345678abcd",
                       "repositoryName": "platform-images"}
        }))
        .expect("a documented CodeCommit event parses");
        let settings = Settings {
            repository: Some("platform-images".into()),
            ..Settings::default()
        };
        match triage(&event, &settings) {
            Triage::Ignore(reason) => {
                assert!(
                    reason.contains("unreferencedMergeCommitCreated"),
                    "{reason}"
                )
            }
            other => panic!("not ignored: {other:?}"),
        }
    }

    fn changed(paths: &[&str]) -> BTreeMap<String, String> {
        let paths: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
        affected_families(&cat(CATALOG), Some(&cat(CATALOG)), &paths)
    }

    #[test]
    fn family_folder_role_and_shared_paths() {
        assert_eq!(
            changed(&["images/debian12-base/debian.pkr.hcl"])
                .keys()
                .collect::<Vec<_>>(),
            vec!["debian12-base"]
        );
        assert_eq!(
            changed(&["ansible/roles/cw-agent/tasks/main.yml"])
                .keys()
                .collect::<Vec<_>>(),
            vec!["debian12-base", "win2022-core"]
        );
        assert_eq!(changed(&["buildspecs/bake.yml"]).len(), 3);
        assert_eq!(changed(&["ansible/ansible.cfg"]).len(), 3);
        assert!(changed(&["README.md", "functions/trigger/src/main.rs"]).is_empty());
        assert!(changed(&["ansible/roles/unused/tasks/main.yml"]).is_empty());
        assert!(changed(&["images/debian12-base-old/x"]).is_empty());
    }

    #[test]
    fn catalog_change_builds_only_changed_entries() {
        let after = cat(&CATALOG.replace(
            "path = \"images/win2022-iis\"\nos = \"windows\"",
            "path = \"images/win2022-iis\"\nos = \"windows\"\nroles = [\"iis\"]",
        ));
        let got = affected_families(&after, Some(&cat(CATALOG)), &["gild.toml".into()]);
        assert_eq!(got.keys().collect::<Vec<_>>(), vec!["win2022-iis"]);
        // Unknown previous version: every family counts as changed.
        assert_eq!(
            affected_families(&after, None, &["gild.toml".into()]).len(),
            3
        );
        // A family removed from the catalog builds nothing.
        let fewer = cat(CATALOG.split("[families.win2022-iis]").next().unwrap_or(""));
        assert!(affected_families(&fewer, Some(&cat(CATALOG)), &["gild.toml".into()]).is_empty());
    }

    #[test]
    fn push_triage_ignores_tags_other_branches_deletions_and_repos() {
        let settings = Settings {
            repository: Some("platform-images".into()),
            ..Settings::default()
        };
        for (event, why) in [
            (push("referenceCreated", "tag", "v1.0"), "tag `v1.0`"),
            (
                push("referenceUpdated", "branch", "feature/x"),
                "not the tracked",
            ),
            (push("referenceDeleted", "branch", "main"), "deleted"),
        ] {
            let Triage::Ignore(reason) = triage(&event, &settings) else {
                panic!("{why} should be ignored")
            };
            assert!(reason.contains(why), "{reason}");
        }
        let other_repo = Settings {
            repository: Some("elsewhere".into()),
            ..settings.clone()
        };
        assert!(matches!(
            triage(&push("referenceUpdated", "branch", "main"), &other_repo),
            Triage::Ignore(_)
        ));
        assert_eq!(
            triage(&push("referenceUpdated", "branch", "main"), &settings),
            Triage::Push {
                branch: "main".into(),
                commit: "c0ffee1234567".into(),
                base: DiffBase::Commit("0ld".into())
            }
        );
        assert!(matches!(
            triage(&push("referenceCreated", "branch", "main"), &settings),
            Triage::Push {
                base: DiffBase::EmptyTree,
                ..
            }
        ));
    }

    #[test]
    fn push_plan_dedupes_on_commit() {
        let event = push("referenceUpdated", "branch", "main");
        let t = triage(&event, &Settings::default());
        let inputs = Inputs {
            catalog: cat(CATALOG),
            previous_catalog: Some(cat(CATALOG)),
            changed: vec!["images/win2022-iis/iis.pkr.hcl".into()],
            commit: None,
        };
        let plan = plan(&event, &t, &inputs).expect("plan");
        assert_eq!(
            plan.actions,
            vec![Action::StartBake {
                family: "win2022-iis".into(),
                trigger: Trigger::Push,
                dedupe_key: "push:c0ffee1234567".into(),
                commit: Some("c0ffee1234567".into())
            }]
        );
        assert!(plan.reason.contains("1 of 3"), "{}", plan.reason);
    }

    #[test]
    fn schedule_builds_every_family_once_per_month() {
        let event = event::parse(json!({
            "version": "0", "id": "s1", "detail-type": "Scheduled Event", "source": "aws.events",
            "time": "2026-11-11T03:00:00Z", "detail": {}
        }))
        .expect("valid");
        let t = triage(&event, &Settings::default());
        assert_eq!(
            t,
            Triage::Schedule {
                month: "2026-11".into()
            }
        );
        let inputs = Inputs {
            catalog: cat(CATALOG),
            ..Inputs::default()
        };
        let plan = plan(&event, &t, &inputs).expect("plan");
        assert_eq!(plan.actions.len(), 3);
        assert!(plan.actions.iter().all(|a| matches!(a,
            Action::StartBake { trigger: Trigger::Schedule, dedupe_key, .. } if dedupe_key == "schedule:2026-11")));
    }

    #[test]
    fn manual_unknown_family_lists_known_ones() {
        let event = event::parse(json!({
            "version": "0", "id": "m1", "detail-type": "Build Requested", "source": "gild",
            "time": "2026-11-11T03:00:00Z", "detail": {"family": "nope", "requested_by": "carol"}
        }))
        .expect("valid");
        let t = triage(&event, &Settings::default());
        let inputs = Inputs {
            catalog: cat(CATALOG),
            ..Inputs::default()
        };
        let err = plan(&event, &t, &inputs).expect_err("unknown family");
        assert_eq!(
            err.to_string(),
            "unknown family `nope`; known families: debian12-base, win2022-core, win2022-iis"
        );
    }
}
