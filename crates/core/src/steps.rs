//! What the completion steps decide, with no I/O: whether a completion is
//! the bake's own, whether an image is gild's to touch, what a failed stage
//! removes, and what is announced. `gild-flow` does the calls these name.

use crate::announce::{AnnouncedPackages, Announcement, Outcome};
use crate::completion::{build_console_link, parameter_name, tags, Completion, Finished};
use crate::ledger::BakeRecord;
use crate::ports::{ImageInfo, SnapshotInfo};
use crate::review;
use crate::state::Stage;
use crate::vocabulary::BuildId;

/// Where a completion came from, for the identity check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A CodeBuild event: it must name the bake's own build.
    Event,
    /// The reconciler, which built the completion from the ledger record.
    Reconciler,
}

/// Only the bake's own build moves it. An event naming another build (an
/// older bake of the same key, a build started by hand) does nothing; only
/// the reconciler says a bake never started, and only of one with no build.
pub fn same_build(record: &BakeRecord, finished: &Finished, origin: Origin) -> Result<(), String> {
    let is_bake = finished.completion.is_bake();
    let known = if is_bake {
        record.build_id.as_deref()
    } else {
        record.test_build_id.as_deref()
    };
    let same = match (finished.completion, origin) {
        (Completion::NeverStarted, Origin::Reconciler) => known.is_none(),
        (Completion::NeverStarted, Origin::Event) => false,
        _ => known.is_some_and(|known| BuildId::new(known).is(&finished.build_id)),
    };
    if same {
        return Ok(());
    }
    Err(format!(
        "build {} is not the bake's {} build ({})",
        finished.build_id,
        if is_bake { "bake" } else { "test" },
        known.unwrap_or("none yet")
    ))
}

/// Whether gild made this image in this build: Packer tags it so at
/// creation. An image without the build's id is not known to be this
/// build's, so it is never tagged, tested or deleted (ARCHITECTURE.md,
/// invariants).
pub fn made_by(image: &ImageInfo, build: &str) -> bool {
    image.tags.get(tags::MANAGED).map(String::as_str) == Some("true")
        && image
            .tags
            .get(tags::BUILD_ID)
            .is_some_and(|tagged| BuildId::new(tagged).is(build))
}

/// The bake build whose images a failure may remove.
pub fn bake_build(record: &BakeRecord, finished: &Finished) -> String {
    BuildId::new(record.build_id.as_deref().unwrap_or(&finished.build_id))
        .as_str()
        .to_owned()
}

/// Whether the bake made images of its own to remove. A candidate that
/// only ran consumers' tests on the promoted image has none: the image it
/// tested is production's and is never removed on its account.
pub fn owns_images(record: &BakeRecord) -> bool {
    !(record.lane() == crate::state::Lane::Candidate && record.build_id.is_none())
}

/// Whether `current` (the image the family's parameter names) is gild's
/// image of the same family from a bake asked for after `record`'s: then
/// `record`'s image, validated late (a lost event the reconciler
/// finished, a slow test), must not take its place.
pub fn newer_promoted(current: &ImageInfo, record: &BakeRecord) -> bool {
    let tag = |key: &str| current.tags.get(key).map(String::as_str);
    tag(tags::MANAGED) == Some("true")
        && tag(tags::FAMILY) == Some(record.key.family.as_str())
        && tag(tags::REQUESTED_AT)
            .and_then(|t| t.parse::<i64>().ok())
            .is_some_and(|requested| requested > record.requested_at)
}

/// Kept candidate images whose time ran out at `now` (`gild:expires-at`,
/// RFC 3339), with the build that made them: only gild's, only
/// candidates'. An unreadable expiry is left for a person, never guessed.
pub fn expired_candidates(images: &[ImageInfo], now: i64) -> Vec<(String, String)> {
    images
        .iter()
        .filter(|i| i.tags.get(tags::MANAGED).map(String::as_str) == Some("true"))
        .filter(|i| i.tags.contains_key(tags::CANDIDATE))
        .filter_map(|i| {
            let until = i.tags.get(tags::EXPIRES_AT)?;
            let until = crate::event::parse_time(until).ok()?.unix_timestamp();
            let build = i.tags.get(tags::BUILD_ID)?;
            (until <= now).then(|| (i.id.clone(), build.clone()))
        })
        .collect()
}

/// Whether a failure at `stage` must also look for images the bake build
/// registered before failing (it exported none, or never got to).
pub fn looks_for_leftovers(stage: Stage) -> bool {
    stage == Stage::Bake
}

/// The images a failure at a stage removes: the bake's image, the one the
/// completion names, and the build's leftovers, once each. Each is still
/// checked with [`made_by`] before anything is deleted.
pub fn cleanup_candidates(
    record: &BakeRecord,
    finished: &Finished,
    leftovers: &[ImageInfo],
) -> Vec<String> {
    let mut candidates: Vec<String> = [record.image.clone(), finished.image.clone()]
        .into_iter()
        .flatten()
        .chain(leftovers.iter().map(|image| image.id.clone()))
        .collect();
    candidates.sort();
    candidates.dedup();
    candidates
}

/// Snapshots of a failed bake's build to delete once its images are gone:
/// those an earlier try left when it deregistered the image and died before
/// deleting them (the image that listed them is gone, so only their
/// `gild:build-id` tag finds them). None while any image of the build is
/// still registered (it may use them), and only snapshots gild made.
pub fn orphan_snapshots(images_left: &[ImageInfo], snapshots: &[SnapshotInfo]) -> Vec<String> {
    if !images_left.is_empty() {
        return Vec::new();
    }
    snapshots
        .iter()
        .filter(|s| s.tags.get(tags::MANAGED).map(String::as_str) == Some("true"))
        .map(|s| s.id.clone())
        .collect()
}

/// The announcement of a bake's outcome, with links to the builds that
/// decided it.
pub fn announcement(
    record: &BakeRecord,
    finished: &Finished,
    outcome: Outcome,
    parameter_prefix: &str,
    region: &str,
    at: &str,
) -> Announcement {
    let test_build = record.test_build_id.as_deref();
    let is_test = !finished.completion.is_bake();
    let bake_log = if is_test {
        record
            .build_id
            .as_deref()
            .map(|b| build_console_link(region, b, false))
    } else {
        finished
            .log_link
            .clone()
            .or_else(|| Some(build_console_link(region, &finished.build_id, false)))
    };
    Announcement {
        family: record.key.family.clone(),
        image: record.image.clone().or_else(|| finished.image.clone()),
        region: region.to_owned(),
        trigger: record.trigger,
        dedupe_key: record.key.dedupe_key.clone(),
        commit: record.commit.clone(),
        outcome,
        tested: test_build.map(|b| {
            format!(
                "the family's tests on a fresh instance (test build {})",
                BuildId::new(b)
            )
        }),
        parameter: parameter_name(parameter_prefix, &record.key.family),
        bake_log,
        test_log: if is_test {
            finished.log_link.clone()
        } else {
            None
        },
        test_report: test_build.map(|b| build_console_link(region, b, true)),
        at: at.to_owned(),
        children: Vec::new(),
        // The flow adds the diff or its link (it reads the bucket).
        packages: record.packages.clone().map(AnnouncedPackages::of),
    }
}

/// Why a stage failed, in the words the ledger and the announcement use.
pub fn failure_reason(stage: Stage, finished: &Finished) -> String {
    // Which suite failed, from the test build's own summary: a consumer is
    // named with its owner, in the announcement and Slack as on a pull
    // request.
    let which = (stage == Stage::Test)
        .then(|| {
            let family = finished.family.as_deref().unwrap_or("the family");
            review::test_failure(family, &review::parse_suites(finished.suites.as_deref()))
        })
        .flatten()
        .map(|why| format!(": {why}"))
        .unwrap_or_default();
    match &finished.found {
        Some(found) => format!("{stage} build {}{which} ({found})", finished.status),
        None => format!("{stage} build {}{which}", finished.status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::BakeKey;
    use crate::vocabulary::Trigger;
    use std::collections::BTreeMap;

    fn record() -> BakeRecord {
        let mut r = BakeRecord::requested(
            BakeKey::new("debian", "push:abc"),
            Trigger::Push,
            Some("abc".into()),
            0,
            60,
            "t",
        );
        r.build_id = Some("gild-bake:1".into());
        r
    }

    fn finished(completion: Completion, build: &str) -> Finished {
        Finished {
            completion,
            build_id: format!("arn:aws:codebuild:us-east-1:1:build/{build}"),
            status: "FAILED".into(),
            family: Some("debian".into()),
            trigger: None,
            key: Some(BakeKey::new("debian", "push:abc")),
            image: Some("ami-2".into()),
            base_image: None,
            commit: None,
            log_link: None,
            suites: None,
            found: None,
        }
    }

    #[test]
    fn only_gilds_candidates_past_their_time_expire() {
        let image = |id: &str, tags: &[(&str, &str)]| ImageInfo {
            id: id.into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..ImageInfo::default()
        };
        let kept = [
            (tags::MANAGED, "true"),
            (tags::CANDIDATE, "pr-7"),
            (tags::BUILD_ID, "gild-bake:1"),
        ];
        let with = |until: &'static str| {
            let mut t = kept.to_vec();
            t.push((tags::EXPIRES_AT, until));
            t
        };
        let images = [
            image("ami-past", &with("2026-12-06T10:00:00Z")),
            image("ami-future", &with("2026-12-07T10:00:00Z")),
            image("ami-garbled", &with("tomorrow")),
            image("ami-no-expiry", &kept),
            image(
                "ami-production",
                &[
                    (tags::MANAGED, "true"),
                    (tags::EXPIRES_AT, "2026-01-01T00:00:00Z"),
                ],
            ),
        ];
        let now = crate::event::parse_time("2026-12-06T12:00:00Z")
            .expect("time")
            .unix_timestamp();
        assert_eq!(
            expired_candidates(&images, now),
            vec![("ami-past".to_owned(), "gild-bake:1".to_owned())]
        );
    }

    #[test]
    fn a_failing_consumer_is_named_with_its_owner_in_the_failure_reason() {
        let mut f = finished(Completion::TestFailed, "gild-test:1");
        f.suites = Some(r#"[{"suite":"family","name":"debian","tests":3,"failures":0},{"suite":"consumer","name":"billing-worker","owner":"team-billing","tests":4,"failures":1,"failed":["CA bundle present"]}]"#.into());
        assert_eq!(
            failure_reason(Stage::Test, &f),
            "test build FAILED: billing-worker (team-billing) failed: CA bundle present"
        );
        f.suites = None;
        assert_eq!(failure_reason(Stage::Test, &f), "test build FAILED");
    }

    #[test]
    fn only_gilds_snapshots_are_orphans_and_only_once_no_image_is_left() {
        let snapshot = |id: &str, managed: Option<&str>| SnapshotInfo {
            id: id.into(),
            tags: managed
                .map(|v| BTreeMap::from([(tags::MANAGED.to_owned(), v.to_owned())]))
                .unwrap_or_default(),
        };
        let found = [
            snapshot("snap-1", Some("true")),
            snapshot("snap-2", None),
            snapshot("snap-3", Some("false")),
        ];
        assert_eq!(orphan_snapshots(&[], &found), ["snap-1"]);
        let live = image("ami-1", &[(tags::MANAGED, "true")]);
        assert!(orphan_snapshots(&[live], &found).is_empty());
        assert!(orphan_snapshots(&[], &[]).is_empty());
    }

    fn image(id: &str, tags: &[(&str, &str)]) -> ImageInfo {
        ImageInfo {
            id: id.into(),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect::<BTreeMap<_, _>>(),
            ..ImageInfo::default()
        }
    }

    #[test]
    fn only_the_bakes_own_build_moves_it() {
        let r = record();
        assert!(same_build(
            &r,
            &finished(Completion::BakeFailed, "gild-bake:1"),
            Origin::Event
        )
        .is_ok());
        assert!(same_build(
            &r,
            &finished(Completion::BakeFailed, "gild-bake:2"),
            Origin::Event
        )
        .is_err());
        assert!(same_build(
            &r,
            &finished(Completion::TestPassed, "gild-bake:1"),
            Origin::Event
        )
        .is_err());
        let mut claimed = record();
        claimed.build_id = None;
        let never = finished(Completion::NeverStarted, "");
        assert!(same_build(&claimed, &never, Origin::Reconciler).is_ok());
        assert!(same_build(&claimed, &never, Origin::Event).is_err());
        assert!(same_build(&r, &never, Origin::Reconciler).is_err());
    }

    #[test]
    fn only_images_tagged_with_the_build_are_gilds() {
        let ours = image(
            "ami-1",
            &[(tags::MANAGED, "true"), (tags::BUILD_ID, "gild-bake:1")],
        );
        assert!(made_by(&ours, "gild-bake:1"));
        assert!(made_by(
            &ours,
            "arn:aws:codebuild:us-east-1:1:build/gild-bake:1"
        ));
        assert!(!made_by(&ours, "gild-bake:2"));
        assert!(!made_by(
            &image("ami-1", &[(tags::BUILD_ID, "gild-bake:1")]),
            "gild-bake:1"
        ));
    }

    #[test]
    fn cleanup_takes_each_candidate_once() {
        let mut r = record();
        r.image = Some("ami-2".into());
        let left = [image("ami-3", &[]), image("ami-2", &[])];
        assert_eq!(
            cleanup_candidates(&r, &finished(Completion::BakeFailed, "gild-bake:1"), &left),
            vec!["ami-2", "ami-3"]
        );
        assert!(looks_for_leftovers(Stage::Bake) && !looks_for_leftovers(Stage::Test));
    }
}
