//! What `gild plan` shows: the actions of a plan, of a completion's work,
//! and of a reconciler run over a ledger snapshot. The mappings are `match`es
//! over the decision types, so a new kind of work or verdict does not
//! compile until it says what it shows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::completion::{self, Completion, Projects, Work};
use crate::event::{BuildStateChange, BuildStatus};
use crate::ledger::BakeRecord;
use crate::reconcile::{self, Deadlines, Look, Verdict};
use crate::state::{BakeState, Transition};
use crate::vocabulary::{BuildId, Trigger};

/// One thing the pipeline would do. Serialised as `{"action": "start_bake", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    StartBake {
        family: String,
        trigger: Trigger,
        /// Together with the family, the ledger key that makes the bake happen once.
        dedupe_key: String,
        /// The commit to bake; unknown to `gild plan` for schedule and manual
        /// events, which bake the tracked branch's tip.
        #[serde(skip_serializing_if = "Option::is_none")]
        commit: Option<String>,
        /// `false` for a pull request's candidate: tested and reported,
        /// never promoted.
        promote: bool,
        /// A layered family: it bakes from this family's promoted image.
        #[serde(skip_serializing_if = "Option::is_none")]
        parent: Option<String>,
        /// Its descendants (`child`, `child/grandchild`): rebuilt from its
        /// image once it is promoted (`layers`).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        children: Vec<String>,
    },
    /// A layered family whose parent bakes in the same run: claimed now,
    /// started from the parent's new image once that is promoted, failed
    /// with the parent if it fails. Holds no CodeBuild slot meanwhile.
    WaitForParent {
        family: String,
        parent: String,
        trigger: Trigger,
        dedupe_key: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        commit: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        children: Vec<String>,
    },
    /// A pull request changed only consumers' tests: run them on the
    /// family's promoted image, bake nothing.
    StartValidation {
        family: String,
        trigger: Trigger,
        dedupe_key: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        commit: Option<String>,
        consumers: Vec<String>,
        promote: bool,
    },
    /// Stop the pull request's older heads' builds, remove their images,
    /// mark their statuses superseded.
    Supersede { pull_request: String, keep: String },
    /// The pull request was closed: the same for every head.
    RemoveCandidates { pull_request: String },
    /// Build nothing; say why on the head.
    Refuse {
        pull_request: String,
        commit: String,
        reason: String,
    },
    /// Post a candidate's results on its pull request.
    Report {
        family: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        image: Option<String>,
    },
    TagImage {
        family: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        image: Option<String>,
    },
    StartTest {
        family: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        image: Option<String>,
    },
    Promote {
        family: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        image: Option<String>,
    },
    AnnounceSuccess {
        family: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        image: Option<String>,
    },
    Cleanup {
        family: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        image: Option<String>,
    },
    AnnounceFailure {
        family: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        image: Option<String>,
    },
}

impl Action {
    /// The family acted on; empty for what concerns a whole pull request.
    pub fn family(&self) -> &str {
        match self {
            Action::Supersede { .. } | Action::RemoveCandidates { .. } | Action::Refuse { .. } => {
                ""
            }
            Action::StartBake { family, .. }
            | Action::WaitForParent { family, .. }
            | Action::StartValidation { family, .. }
            | Action::Report { family, .. }
            | Action::TagImage { family, .. }
            | Action::StartTest { family, .. }
            | Action::Promote { family, .. }
            | Action::AnnounceSuccess { family, .. }
            | Action::Cleanup { family, .. }
            | Action::AnnounceFailure { family, .. } => family,
        }
    }

    /// What `gild plan` shows for one piece of completion work: the
    /// mapping is a `match` over [`Work`], so a new kind of work does not
    /// compile until it says what it shows.
    pub fn of_work(work: Work, family: &str, image: &Option<String>) -> Vec<Self> {
        let (family, image) = (family.to_owned(), image.clone());
        match work {
            Work::TagBaked => vec![Action::TagImage { family, image }],
            Work::StartTest => vec![Action::StartTest { family, image }],
            // Recording that the tests passed is a ledger write, no action.
            Work::Validate => Vec::new(),
            Work::Promote => vec![
                Action::Promote {
                    family: family.clone(),
                    image: image.clone(),
                },
                Action::AnnounceSuccess { family, image },
            ],
            Work::Report => vec![Action::Report { family, image }],
            Work::Cleanup(_) => vec![
                Action::Cleanup {
                    family: family.clone(),
                    image: image.clone(),
                },
                Action::AnnounceFailure { family, image },
            ],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The event's `detail-type`.
    pub event: String,
    pub actions: Vec<Action>,
    pub reason: String,
}

/// A ledger snapshot for `gild plan --ledger`: the open bakes, and how
/// each build CodeBuild knows of ended (`SUCCEEDED`, `FAILED`, …, or
/// `IN_PROGRESS`) by `project:uuid`; a build not listed is one CodeBuild
/// does not know.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Snapshot {
    pub bakes: Vec<BakeRecord>,
    #[serde(default)]
    pub builds: BTreeMap<String, BuildSeen>,
}

/// A build as the snapshot gives it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BuildSeen {
    pub status: String,
    /// Variables it exported (`GILD_AMI_ID`).
    #[serde(default)]
    pub exported: BTreeMap<String, String>,
}

/// What the reconciler would do with one overdue bake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reconciled {
    pub family: String,
    pub dedupe_key: String,
    pub state: BakeState,
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The states the bake would pass through, and the actions on the way.
    pub reaches: Vec<BakeState>,
    pub actions: Vec<Action>,
}

/// What a reconciler run at `now` would do with `snapshot`.
pub fn reconcile(
    snapshot: &Snapshot,
    now: i64,
    deadlines: &Deadlines,
    projects: &Projects,
) -> Vec<Reconciled> {
    reconcile::overdue(&snapshot.bakes, now, deadlines)
        .into_iter()
        .map(|record| {
            let verdict = match reconcile::look(record) {
                Look::Decided(verdict) => verdict,
                Look::Build(build_id) => {
                    let seen = snapshot.builds.get(BuildId::short(&build_id));
                    let build = seen.map(|seen| as_build(record, &build_id, seen, projects));
                    reconcile::judge(record, &build_id, build.as_ref(), projects)
                }
            };
            let (reaches, actions) = match &verdict {
                Verdict::Resume { completion, .. } => walk(record, *completion),
                Verdict::Wait { .. } => (Vec::new(), Vec::new()),
            };
            Reconciled {
                family: record.key.family.clone(),
                dedupe_key: record.key.dedupe_key.clone(),
                state: record.state,
                verdict,
                reaches,
                actions,
            }
        })
        .collect()
}

/// The happy path of `completion`'s work from the bake's state: each
/// work's success step, through the table.
fn walk(record: &BakeRecord, completion: Completion) -> (Vec<BakeState>, Vec<Action>) {
    let (mut state, mut reaches, mut actions) = (record.state, Vec::new(), Vec::new());
    let lane = record.lane();
    while let Some((work, step)) = completion::work(lane, state, completion) {
        actions.extend(Action::of_work(work, &record.key.family, &record.image));
        let Some(transition) = Transition::of(lane, state, step) else {
            break;
        };
        state = transition.to();
        reaches.push(state);
    }
    (reaches, actions)
}

fn as_build(
    record: &BakeRecord,
    build_id: &str,
    seen: &BuildSeen,
    projects: &Projects,
) -> BuildStateChange {
    let project = if BuildId::new(build_id).project() == projects.test {
        projects.test.clone()
    } else {
        projects.bake.clone()
    };
    BuildStateChange {
        project_name: project,
        build_id: build_id.to_owned(),
        status: BuildStatus::parse(&seen.status),
        status_text: seen.status.clone(),
        env: BTreeMap::from([
            (
                crate::vocabulary::env::FAMILY.to_owned(),
                record.key.family.clone(),
            ),
            (
                crate::vocabulary::env::DEDUPE_KEY.to_owned(),
                record.key.dedupe_key.clone(),
            ),
        ]),
        exported: seen.exported.clone(),
        source_version: record.commit.clone(),
        log_link: None,
    }
}
