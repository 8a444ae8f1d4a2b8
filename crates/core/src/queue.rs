//! The bake queue.
//!
//! CodeBuild runs a limited number of builds at once per account (the
//! concurrent-build quota), and patch day asks for one bake per family. A bake
//! that finds no free slot is not an error: it waits in the ledger as
//! `queued` and starts, oldest first, when a build ends. gild keeps its own
//! builds under a configured limit (below the account's quota, so test builds
//! and other teams' builds still find room); `AccountLimitExceededException`
//! from CodeBuild is the backstop when the account is busier than gild knows.

use crate::event::{BuildStateChange, BuildStatus};
use crate::ledger::BakeRecord;
use crate::state::BakeState;
use crate::vocabulary::{BakeKey, BuildId};

/// gild's builds at once unless configured (`GILD_MAX_PARALLEL_BUILDS`):
/// under CodeBuild's smallest default concurrent-build quotas.
pub const DEFAULT_MAX_PARALLEL_BUILDS: usize = 20;

/// Whether a bake holds (or is about to take) a CodeBuild slot.
///
/// `baked` counts: its test build starts next. `validated` does not: its test
/// build has ended and promotion runs no build. A `requested` claim counts
/// while its holder may still be starting the build.
pub fn holds_slot(record: &BakeRecord, now: i64) -> bool {
    match record.state {
        BakeState::Requested => record.build_id.is_some() || record.lease_until >= now,
        BakeState::Baking | BakeState::Baked | BakeState::Testing | BakeState::Validating => true,
        // A waiting child takes its slot only when its parent is promoted.
        BakeState::Queued
        | BakeState::Waiting
        | BakeState::Validated
        | BakeState::Promoted
        | BakeState::Failed
        | BakeState::Reported
        | BakeState::Superseded => false,
    }
}

/// The build whose end frees a CodeBuild slot, if the event reports one: any
/// build in the account that ended, except a bake that succeeded, which
/// hands its slot to its test build.
pub fn freed_slot<'a>(change: &'a BuildStateChange, bake_project: &str) -> Option<&'a str> {
    let freed = match change.status {
        BuildStatus::InProgress | BuildStatus::Other => false,
        BuildStatus::Succeeded => change.project_name != bake_project,
        BuildStatus::Failed | BuildStatus::Fault | BuildStatus::Stopped | BuildStatus::TimedOut => {
            true
        }
    };
    freed.then_some(short_id(&change.build_id))
}

/// `project:uuid` from a build ARN (events carry ARNs, StartBuild returns ids).
fn short_id(build: &str) -> &str {
    BuildId::short(build)
}

/// How many of gild's builds may start now.
///
/// `ended` names a build whose completion event is being handled: its record
/// may not have moved on yet (bake-finished and test-finished see the same
/// event at the same time), and counting it as busy could leave the queue
/// waiting for an event that never comes.
pub fn free_slots(active: &[BakeRecord], limit: usize, now: i64, ended: Option<&str>) -> usize {
    let busy = active
        .iter()
        .filter(|record| holds_slot(record, now))
        .filter(|record| {
            ended.is_none_or(|ended| {
                let own = |id: &Option<String>| id.as_deref().map(short_id) == Some(ended);
                let finished_test =
                    record.state == BakeState::Testing && own(&record.test_build_id);
                let failed_bake = record.state == BakeState::Baking && own(&record.build_id);
                !(finished_test || failed_bake)
            })
        })
        .count();
    limit.saturating_sub(busy)
}

/// The queued bakes to start now, oldest request first (then by family, so
/// the order is stable), at most `free` of them. Queued bakes another
/// invocation has locked are left to it.
pub fn next_to_start(active: &[BakeRecord], free: usize, now: i64) -> Vec<BakeKey> {
    let mut waiting: Vec<&BakeRecord> = active
        .iter()
        .filter(|record| record.state == BakeState::Queued && record.lease_until < now)
        .collect();
    waiting.sort_by(|a, b| (a.requested_at, &a.key).cmp(&(b.requested_at, &b.key)));
    waiting
        .into_iter()
        .take(free)
        .map(|record| record.key.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Trigger;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn record(family: &str, state: BakeState, requested_at: i64) -> BakeRecord {
        let mut record = BakeRecord::requested(
            BakeKey::new(family, "schedule:2026-11"),
            Trigger::Schedule,
            Some("c1".into()),
            requested_at,
            60,
            "owner",
        );
        record.state = state;
        if state != BakeState::Requested {
            record.lease_until = 0;
        }
        if matches!(
            state,
            BakeState::Baking | BakeState::Baked | BakeState::Testing
        ) {
            record.build_id = Some(format!("gild-bake:{family}"));
        }
        if state == BakeState::Testing {
            record.test_build_id = Some(format!("gild-test:{family}"));
        }
        record
    }

    fn change(project: &str, build_id: &str, status: BuildStatus) -> BuildStateChange {
        BuildStateChange {
            project_name: project.into(),
            build_id: build_id.into(),
            status,
            status_text: String::new(),
            env: BTreeMap::new(),
            exported: BTreeMap::new(),
            source_version: None,
            log_link: None,
        }
    }

    #[test]
    fn slots_count_building_and_testing_bakes_only() {
        let active = vec![
            record("a", BakeState::Baking, 1),
            record("b", BakeState::Baked, 1),
            record("c", BakeState::Testing, 1),
            record("d", BakeState::Validated, 1),
            record("e", BakeState::Queued, 1),
            record("f", BakeState::Requested, 100),
        ];
        // f's claim is live at 100, so it is being started: 4 busy.
        assert_eq!(free_slots(&active, 6, 100, None), 2);
        // Once its lease ran out without a build, it holds nothing.
        assert_eq!(free_slots(&active, 6, 200, None), 3);
        assert_eq!(free_slots(&active, 2, 100, None), 0);
    }

    #[test]
    fn the_ended_build_frees_its_slot_before_its_record_moves_on() {
        let active = vec![
            record("a", BakeState::Baking, 1),
            record("c", BakeState::Testing, 1),
        ];
        assert_eq!(free_slots(&active, 2, 5, Some("gild-test:c")), 1);
        assert_eq!(free_slots(&active, 2, 5, Some("gild-bake:a")), 1);
        assert_eq!(free_slots(&active, 2, 5, Some("someone-else:1")), 0);
        // A bake build id names a testing record's bake, not its test.
        assert_eq!(free_slots(&active, 2, 5, Some("gild-bake:c")), 0);
    }

    #[test]
    fn which_events_free_a_slot() {
        let bake = "gild-bake";
        let cases = [
            ("gild-bake", BuildStatus::Succeeded, false),
            ("gild-bake", BuildStatus::Failed, true),
            ("gild-bake", BuildStatus::InProgress, false),
            ("gild-test", BuildStatus::Succeeded, true),
            ("gild-test", BuildStatus::TimedOut, true),
            ("other-team", BuildStatus::Stopped, true),
        ];
        let arn = change(
            "gild-test",
            "arn:aws:codebuild:us-east-1:123456789012:build/gild-test:u-1",
            BuildStatus::Succeeded,
        );
        assert_eq!(freed_slot(&arn, bake), Some("gild-test:u-1"));
        for (project, status, frees) in cases {
            let c = change(project, "b:1", status);
            assert_eq!(
                freed_slot(&c, bake).is_some(),
                frees,
                "{project} {status:?}"
            );
        }
    }

    #[test]
    fn oldest_queued_first_and_locked_ones_left_alone() {
        let mut locked = record("a", BakeState::Queued, 1);
        locked.lease_until = 50;
        let active = vec![
            locked,
            record("z", BakeState::Queued, 2),
            record("b", BakeState::Queued, 3),
            record("c", BakeState::Queued, 2),
            record("d", BakeState::Baking, 0),
        ];
        let keys = |free| {
            next_to_start(&active, free, 10)
                .into_iter()
                .map(|k| k.family)
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(2), vec!["c", "z"]);
        assert_eq!(keys(9), vec!["c", "z", "b"]);
        assert!(keys(0).is_empty());
    }

    proptest! {
        #[test]
        fn never_more_starts_than_free_slots(states in proptest::collection::vec(0usize..8, 0..40), limit in 0usize..30, now in 0i64..200) {
            let active: Vec<BakeRecord> = states
                .iter()
                .enumerate()
                .map(|(i, s)| record(&format!("f{i:02}"), BakeState::ALL[*s], i as i64))
                .collect();
            let free = free_slots(&active, limit, now, None);
            let busy = active.iter().filter(|r| holds_slot(r, now)).count();
            prop_assert!(busy + free <= limit.max(busy));
            let picked = next_to_start(&active, free, now);
            let waiting = active.iter().filter(|r| r.state == BakeState::Queued && r.lease_until < now).count();
            prop_assert_eq!(picked.len(), free.min(waiting));
            for key in &picked {
                let queued = active.iter().any(|r| &r.key == key && r.state == BakeState::Queued);
                prop_assert!(queued);
            }
        }
    }
}
