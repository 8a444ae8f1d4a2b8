use super::*;
use gild_core::ledger::BakeKey;
use gild_core::plan::Trigger;
use gild_core::state::BakeState;

const PROMOTED: &str = "ami-0aaaaaaaaaaaaaaaa";
const LATEST: &str = "ami-0bbbbbbbbbbbbbbbb";
const BEFORE: &str = "ami-09999999999999999";

fn bake(key: &str, at: i64, image: &str) -> BakeRecord {
    let mut r = BakeRecord::requested(
        BakeKey::new("debian13-base", key),
        Trigger::Push,
        None,
        at,
        60,
        "t",
    );
    r.state = BakeState::Testing;
    r.image = Some(image.into());
    r
}

#[test]
fn two_images_are_compared_as_given() {
    let pair = pick("debian13-base", Some(BEFORE), Some(LATEST), None, &[]).expect("pair");
    assert_eq!((pair.old.as_str(), pair.new.as_str()), (BEFORE, LATEST));
}

#[test]
fn one_image_is_compared_with_the_promoted_one() {
    let pair = pick("debian13-base", Some(LATEST), None, Some(PROMOTED), &[]).expect("pair");
    assert_eq!((pair.old.as_str(), pair.new.as_str()), (PROMOTED, LATEST));
    let err = pick("debian13-base", Some(LATEST), None, None, &[]).expect_err("none promoted");
    assert!(err.to_string().contains("no promoted image"), "{err}");
}

#[test]
fn by_default_the_latest_bake_is_compared_with_the_promoted_image() {
    let mut other = bake("push:x", 900, "ami-0cccccccccccccccc");
    other.key.family = "debian13-web".into();
    let records = vec![
        bake("push:1", 100, PROMOTED),
        bake("push:2", 200, LATEST),
        other,
    ];
    let pair = pick("debian13-base", None, None, Some(PROMOTED), &records).expect("pair");
    assert_eq!((pair.old.as_str(), pair.new.as_str()), (PROMOTED, LATEST));
    assert!(pair.why.contains("push:2"), "{}", pair.why);
}

#[test]
fn a_promoted_latest_bake_is_compared_with_what_it_replaced() {
    let mut latest = bake("push:2", 200, PROMOTED);
    let records_without = vec![latest.clone()];
    latest.packages = Some(PackageChanges::Unavailable {
        reason: "no list".into(),
        against: Some(BEFORE.into()),
    });
    let pair = pick("debian13-base", None, None, Some(PROMOTED), &[latest]).expect("pair");
    assert_eq!((pair.old.as_str(), pair.new.as_str()), (BEFORE, PROMOTED));
    let err = pick(
        "debian13-base",
        None,
        None,
        Some(PROMOTED),
        &records_without,
    )
    .expect_err("nothing recorded");
    assert!(err.to_string().contains("name two AMIs"), "{err}");
    let err = pick("debian13-base", None, None, Some(PROMOTED), &[]).expect_err("no bakes");
    assert!(
        err.to_string().contains("no bake of debian13-base"),
        "{err}"
    );
}

#[test]
fn the_table_lists_every_change_under_the_summary() {
    let list = |image: &str, openssl: &str| {
        format!(
            r#"{{"schema": "gild.bom/1", "family": "debian13-base", "image": "{image}", "os": "linux",
            "collected_at": "2026-12-06T21:00:00Z",
            "packages": [{{"kind": "dpkg", "name": "openssl", "version": "{openssl}", "arch": "amd64"}}]}}"#
        )
    };
    let (old, new) = (list(PROMOTED, "3.5.1-1"), list(LATEST, "3.5.2-1"));
    let (changes, document) = bom::compare(Lists {
        family: "debian13-base",
        image: LATEST,
        new: Some(new.as_bytes()),
        promoted: Some((PROMOTED, Some(old.as_bytes()))),
    });
    let pair = Pair {
        old: PROMOTED.into(),
        new: LATEST.into(),
        why: "as asked".into(),
    };
    let text = render(&pair, &changes, &document.expect("diff"));
    assert!(
        text.starts_with(&format!(
            "debian13-base: {PROMOTED} → {LATEST} (as asked)\nopenssl 3.5.1-1 → 3.5.2-1; 1 upgraded, 0 added, 0 removed\n"
        )),
        "{text}"
    );
    assert!(
        text.contains("openssl:amd64") && text.contains("upgraded"),
        "{text}"
    );
}
