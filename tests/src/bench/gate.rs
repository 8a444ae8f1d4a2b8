//! The patch-day gate: what each family's bake must have come to, after
//! the trigger and after the drain. A violation names the family or record
//! and fails the bench (a figure that misses its goal does not).

use std::collections::BTreeMap;

use gild_core::state::BakeState;

use super::family_name;
use crate::codebuild::StartedBuild;

/// How a family's bake ends in the drain. The share is the bench's choice,
/// not a measurement: one family in ten fails at bake and one in ten at
/// test, so every path runs under the same load and is timed.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(super) enum Fate {
    Promoted,
    FailsAtBake,
    FailsAtTest,
}

impl Fate {
    pub(super) fn of(i: usize) -> Fate {
        match i % 10 {
            3 => Fate::FailsAtBake,
            7 => Fate::FailsAtTest,
            _ => Fate::Promoted,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Fate::Promoted => "promoted",
            Fate::FailsAtBake => "failed at bake",
            Fate::FailsAtTest => "failed at test",
        }
    }

    /// The ledger's state and failed stage at the end.
    pub(super) fn end(self) -> (&'static str, Option<&'static str>) {
        match self {
            Fate::Promoted => ("promoted", None),
            Fate::FailsAtBake => ("failed", Some("bake")),
            Fate::FailsAtTest => ("failed", Some("test")),
        }
    }

    pub(super) fn tested(self) -> bool {
        self != Fate::FailsAtBake
    }
}

/// The catalog's families, by name, with the fate the stand-in gives each.
pub(super) fn fates(n: usize) -> BTreeMap<String, Fate> {
    (0..n).map(|i| (family_name(i), Fate::of(i))).collect()
}

/// Ledger records by their `family`, whether the catalog holds it or not.
type Records<'a> = BTreeMap<&'a str, Vec<&'a BTreeMap<String, String>>>;

fn by_family(ledger: &[BTreeMap<String, String>]) -> Records<'_> {
    let mut records: Records<'_> = BTreeMap::new();
    for record in ledger {
        let family = record.get("family").map(String::as_str).unwrap_or("");
        records.entry(family).or_default().push(record);
    }
    records
}

/// Builds of `project` per family (`GILD_FAMILY`).
fn builds_per_family<'a>(started: &'a [StartedBuild], project: &str) -> BTreeMap<&'a str, usize> {
    let mut counts = BTreeMap::new();
    for build in started.iter().filter(|b| b.project_name == project) {
        *counts
            .entry(build.env_value("GILD_FAMILY").unwrap_or(""))
            .or_insert(0) += 1;
    }
    counts
}

fn state_of(record: &BTreeMap<String, String>) -> &str {
    record.get("state").map(String::as_str).unwrap_or("(none)")
}

/// Families and records the catalog does not name: nothing should start
/// or claim a bake for them.
fn strangers(
    fates: &BTreeMap<String, Fate>,
    records: &Records<'_>,
    bakes: &BTreeMap<&str, usize>,
) -> Vec<String> {
    let mut found = Vec::new();
    for (family, list) in records {
        if !fates.contains_key(*family) {
            found.push(format!(
                "ledger record(s) for `{family}`, not in the catalog: {} in state {}",
                list.len(),
                list.iter()
                    .map(|r| state_of(r))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    for (family, n) in bakes {
        if !fates.contains_key(*family) {
            found.push(format!(
                "{n} bake(s) started for `{family}`, not in the catalog"
            ));
        }
    }
    found
}

/// After the trigger: every family has exactly one claim, and either one
/// bake started with the claim `baking`, or none with the claim `queued`.
/// Returns the violations and how many started and queued.
pub(super) fn check_after_trigger(
    fates: &BTreeMap<String, Fate>,
    started: &[StartedBuild],
    bake_project: &str,
    ledger: &[BTreeMap<String, String>],
) -> (Vec<String>, usize, usize) {
    let records = by_family(ledger);
    let bakes = builds_per_family(started, bake_project);
    let mut violations = strangers(fates, &records, &bakes);
    let (mut running, mut waiting) = (0, 0);
    for family in fates.keys() {
        let list = records.get(family.as_str()).map(Vec::as_slice);
        let n = bakes.get(family.as_str()).copied().unwrap_or(0);
        match (list, n) {
            (Some([record]), 1) if state_of(record) == "baking" => running += 1,
            (Some([record]), 0) if state_of(record) == "queued" => waiting += 1,
            (Some([record]), n) => violations.push(format!(
                "{family}: {n} bake(s) started with its record `{}` (expected 1 and `baking`, or 0 and `queued`)",
                state_of(record)
            )),
            (None | Some([]), n) => {
                violations.push(format!("{family}: no ledger record, {n} bake(s) started"))
            }
            (Some(list), n) => violations.push(format!(
                "{family}: {} ledger records ({}), {n} bake(s) started",
                list.len(),
                list.iter().map(|r| state_of(r)).collect::<Vec<_>>().join(", ")
            )),
        }
    }
    (violations, running, waiting)
}

/// What the world holds after the drain, as the gate reads it.
pub(super) struct AfterDrain<'a> {
    pub(super) started: &'a [StartedBuild],
    pub(super) bake_project: &'a str,
    pub(super) test_project: &'a str,
    pub(super) ledger: &'a [BTreeMap<String, String>],
    /// The image each family's bake made (the stand-in's record).
    pub(super) baked: &'a BTreeMap<String, String>,
    /// Every version of each family's SSM parameter, oldest first.
    pub(super) parameters: &'a BTreeMap<String, Vec<String>>,
    /// Announcements per family: (outcome, stage).
    pub(super) announced: &'a BTreeMap<String, Vec<(String, String)>>,
}

/// After the drain: every family's bake started exactly once, tested once
/// if it baked, its one record in the terminal state its fate says (no
/// record left `queued`, `requested`, `baking`, `baked`, `testing` or
/// `validated`), its parameter set once to the image it baked if promoted
/// and never otherwise, and one announcement of that end.
pub(super) fn check_after_drain(
    fates: &BTreeMap<String, Fate>,
    seen: &AfterDrain<'_>,
) -> Vec<String> {
    let records = by_family(seen.ledger);
    let bakes = builds_per_family(seen.started, seen.bake_project);
    let tests = builds_per_family(seen.started, seen.test_project);
    let mut violations = strangers(fates, &records, &bakes);
    // Whatever the family, a record that is not terminal is stuck: the
    // drain ended, so nothing would move it but the reconciler.
    for record in seen.ledger {
        let state = state_of(record);
        if !BakeState::parse(state).is_some_and(BakeState::is_terminal) {
            violations.push(format!(
                "{} {}: left in `{state}`",
                record.get("family").map(String::as_str).unwrap_or("?"),
                record.get("dedupe_key").map(String::as_str).unwrap_or("?"),
            ));
        }
    }
    for (family, fate) in fates {
        let f = family.as_str();
        let n = bakes.get(f).copied().unwrap_or(0);
        if n != 1 {
            violations.push(format!("{family}: bake started {n} times (expected once)"));
        }
        let t = tests.get(f).copied().unwrap_or(0);
        if t != usize::from(fate.tested()) {
            violations.push(format!(
                "{family} ({}): test started {t} times (expected {})",
                fate.name(),
                usize::from(fate.tested())
            ));
        }
        let (state, stage) = fate.end();
        match records.get(f).map(Vec::as_slice) {
            Some([record]) => {
                let got = (
                    state_of(record),
                    record.get("failed_stage").map(String::as_str),
                );
                if got != (state, stage) {
                    violations.push(format!(
                        "{family}: ended `{}`{} (expected {})",
                        got.0,
                        got.1.map(|s| format!(" at {s}")).unwrap_or_default(),
                        fate.name()
                    ));
                }
            }
            other => violations.push(format!(
                "{family}: {} ledger records at the end (expected one, {})",
                other.map(<[_]>::len).unwrap_or(0),
                fate.name()
            )),
        }
        let versions = seen.parameters.get(f).map(Vec::as_slice).unwrap_or(&[]);
        let expected: Vec<&str> = match fate {
            Fate::Promoted => seen.baked.get(f).map(String::as_str).into_iter().collect(),
            _ => Vec::new(),
        };
        if *fate == Fate::Promoted && expected.is_empty() {
            violations.push(format!("{family}: promoted by fate but baked no image"));
        }
        if versions.iter().map(String::as_str).collect::<Vec<_>>() != expected {
            violations.push(format!(
                "{family} ({}): SSM parameter versions {versions:?} (expected {expected:?})",
                fate.name()
            ));
        }
        let announced = seen.announced.get(f).map(Vec::as_slice).unwrap_or(&[]);
        let outcome = (
            if *fate == Fate::Promoted {
                "promoted"
            } else {
                "failed"
            },
            stage.unwrap_or(""),
        );
        let matches = |(o, s): &(String, String)| (o.as_str(), s.as_str()) == outcome;
        if announced.len() != 1 || !announced.iter().all(matches) {
            violations.push(format!(
                "{family}: announced {announced:?} (expected one, {})",
                fate.name()
            ));
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(family: &str, state: &str, stage: Option<&str>) -> BTreeMap<String, String> {
        let mut r = BTreeMap::from([
            ("family".to_owned(), family.to_owned()),
            ("dedupe_key".to_owned(), "schedule#2026-11".to_owned()),
            ("state".to_owned(), state.to_owned()),
        ]);
        if let Some(stage) = stage {
            r.insert("failed_stage".to_owned(), stage.to_owned());
        }
        r
    }

    fn build(project: &str, family: &str, n: usize) -> StartedBuild {
        StartedBuild {
            project_name: project.to_owned(),
            source_version: None,
            env: vec![("GILD_FAMILY".to_owned(), family.to_owned())],
            idempotency_token: None,
            build_id: format!("{project}:{family}-{n}"),
            arn: String::new(),
        }
    }

    #[test]
    fn the_trigger_gate_names_a_dropped_a_doubled_and_a_stranger() {
        let fates = fates(4);
        let started = [
            build("bake", "fam-000", 0),
            build("bake", "fam-001", 0),
            build("bake", "fam-001", 1),
            build("bake", "other", 0),
        ];
        let ledger = [
            record("fam-000", "baking", None),
            record("fam-001", "baking", None),
            record("fam-002", "queued", None),
        ];
        let (violations, running, waiting) = check_after_trigger(&fates, &started, "bake", &ledger);
        assert_eq!((running, waiting), (1, 1));
        let text = violations.join("\n");
        assert_eq!(violations.len(), 3, "{text}");
        assert!(text.contains("fam-001: 2 bake(s) started"), "{text}");
        assert!(text.contains("fam-003: no ledger record"), "{text}");
        assert!(text.contains("`other`"), "{text}");
    }

    #[test]
    fn the_drain_gate_passes_every_fate_and_names_a_stuck_record() {
        // fam-003 fails at bake, fam-007 at test, the rest are promoted.
        let fates = fates(8);
        let mut started = Vec::new();
        let mut ledger = Vec::new();
        let mut baked = BTreeMap::new();
        let mut parameters = BTreeMap::new();
        let mut announced = BTreeMap::new();
        for (family, fate) in &fates {
            started.push(build("bake", family, 0));
            if fate.tested() {
                started.push(build("test", family, 0));
            }
            let (state, stage) = fate.end();
            ledger.push(record(family, state, stage));
            baked.insert(family.clone(), format!("ami-{family}"));
            let outcome = if *fate == Fate::Promoted {
                parameters.insert(family.clone(), vec![format!("ami-{family}")]);
                "promoted"
            } else {
                "failed"
            };
            announced.insert(
                family.clone(),
                vec![(outcome.to_owned(), stage.unwrap_or("").to_owned())],
            );
        }
        let check = |ledger: &[BTreeMap<String, String>], parameters: &BTreeMap<_, _>| {
            check_after_drain(
                &fates,
                &AfterDrain {
                    started: &started,
                    bake_project: "bake",
                    test_project: "test",
                    ledger,
                    baked: &baked,
                    parameters,
                    announced: &announced,
                },
            )
        };
        assert_eq!(check(&ledger, &parameters), Vec::<String>::new());

        ledger[5] = record("fam-005", "validated", None);
        let mut twice = parameters.clone();
        twice.insert(
            "fam-000".to_owned(),
            vec!["ami-a".into(), "ami-fam-000".into()],
        );
        let violations = check(&ledger, &twice);
        let text = violations.join("\n");
        assert!(
            text.contains("fam-005 schedule#2026-11: left in `validated`"),
            "{text}"
        );
        assert!(text.contains("fam-005: ended `validated`"), "{text}");
        assert!(
            text.contains("fam-000 (promoted): SSM parameter versions"),
            "{text}"
        );
        assert_eq!(violations.len(), 3, "{text}");
    }
}
