//! A bake's list against the promoted image's: every way the comparison can
//! go, and the shapes the ledger and the bucket keep.

use gild_core::bom::{
    self, compare, diff_key, DiffDocument, Lists, PackageChanges, DIFF_SCHEMA,
    INLINE_DIFF_MAX_BYTES,
};

const OLD: &str = "ami-0aaaaaaaaaaaaaaaa";
const NEW: &str = "ami-0bbbbbbbbbbbbbbbb";

fn list(family: &str, image: &str, openssl: &str, extra: bool) -> Vec<u8> {
    let jq = if extra {
        r#",{"kind": "dpkg", "name": "jq", "version": "1.7.1-3", "arch": "amd64"}"#
    } else {
        ""
    };
    format!(
        r#"{{"schema": "gild.bom/1", "family": "{family}", "image": "{image}", "os": "linux",
  "collected_at": "2026-12-06T21:00:00Z",
  "packages": [
    {{"kind": "dpkg", "name": "openssl", "version": "{openssl}", "arch": "amd64"}},
    {{"kind": "dpkg", "name": "curl", "version": "8.14.1-2", "arch": "amd64"}}{jq}
  ]}}"#
    )
    .into_bytes()
}

fn lists<'a>(new: Option<&'a [u8]>, promoted: Option<(&'a str, Option<&'a [u8]>)>) -> Lists<'a> {
    Lists {
        family: "debian13-base",
        image: NEW,
        new,
        promoted,
    }
}

#[test]
fn a_bake_is_compared_with_the_promoted_image() {
    let old = list("debian13-base", OLD, "3.0.15-1", false);
    let new = list("debian13-base", NEW, "3.0.16-1", true);
    let (changes, document) = compare(lists(Some(&new), Some((OLD, Some(&old)))));
    let document = document.expect("a diff to store");
    assert_eq!(document.schema, DIFF_SCHEMA);
    assert_eq!(
        (document.image.as_str(), document.against.as_str()),
        (NEW, OLD)
    );
    assert_eq!(document.diff.upgraded.len(), 1);
    assert_eq!(document.diff.added.len(), 1);
    let PackageChanges::Compared {
        against,
        summary,
        diff_bytes,
    } = &changes
    else {
        panic!("compared: {changes:?}");
    };
    assert_eq!(against, OLD);
    assert_eq!(*diff_bytes, bom::json_len(&document.diff));
    assert_eq!(
        changes.to_string(),
        "openssl 3.0.15-1 → 3.0.16-1, jq 1.7.1-3 (added); 1 upgraded, 1 added, 0 removed"
    );
    assert_eq!(summary.upgraded, 1);
    assert!(changes.inline());
    assert_eq!(changes.against(), Some(OLD));
    assert_eq!(diff_key(NEW), format!("diff/{NEW}.json"));
}

#[test]
fn the_same_list_is_no_change() {
    let old = list("debian13-base", OLD, "3.0.16-1", false);
    let new = list("debian13-base", NEW, "3.0.16-1", false);
    let (changes, document) = compare(lists(Some(&new), Some((OLD, Some(&old)))));
    assert!(document.expect("stored").diff.is_empty());
    assert_eq!(changes.to_string(), "no package changes");
}

#[test]
fn a_first_image_has_nothing_to_compare_with() {
    let new = list("debian13-base", NEW, "3.0.16-1", true);
    let (changes, document) = compare(lists(Some(&new), None));
    assert_eq!(changes, PackageChanges::First { packages: 3 });
    assert!(document.is_none());
    assert_eq!(
        changes.to_string(),
        "first image of the family (3 packages)"
    );
    assert_eq!(changes.against(), None);
}

#[test]
fn what_cannot_be_compared_says_why_and_stores_nothing() {
    let good_old = list("debian13-base", OLD, "3.0.15-1", false);
    let good_new = list("debian13-base", NEW, "3.0.16-1", false);
    let other_image = list("debian13-base", OLD, "3.0.16-1", false);
    let other_family = list("debian13-web", NEW, "3.0.16-1", false);
    let garbage = b"{\"schema\": \"gild.bom/9\"}".to_vec();
    let cases: Vec<(Lists<'_>, &str)> = vec![
        (
            lists(None, Some((OLD, Some(&good_old)))),
            "the bake kept no list at bom/ami-0bbbbbbbbbbbbbbbb.json",
        ),
        (
            lists(Some(&good_new), Some((OLD, None))),
            "no list is kept for ami-0aaaaaaaaaaaaaaaa at bom/ami-0aaaaaaaaaaaaaaaa.json",
        ),
        (
            lists(Some(&other_image), Some((OLD, Some(&good_old)))),
            "names ami-0aaaaaaaaaaaaaaaa, not ami-0bbbbbbbbbbbbbbbb",
        ),
        (
            lists(Some(&other_family), Some((OLD, Some(&good_old)))),
            "is a list of debian13-web, not of debian13-base",
        ),
        (
            lists(Some(&garbage), Some((OLD, Some(&good_old)))),
            "is refused: schema `gild.bom/9`",
        ),
        (
            lists(Some(&good_new), Some((OLD, Some(&garbage)))),
            "bom/ami-0aaaaaaaaaaaaaaaa.json is refused",
        ),
        (
            lists(Some(&good_new), Some((NEW, Some(&good_new)))),
            "is the promoted image itself",
        ),
    ];
    for (input, why) in cases {
        let (changes, document) = compare(input);
        assert!(document.is_none(), "{why}");
        let PackageChanges::Unavailable { reason, against } = &changes else {
            panic!("{why}: {changes:?}");
        };
        assert!(reason.contains(why), "{reason:?} lacks {why:?}");
        assert_eq!(against.as_deref(), input.promoted.map(|(id, _)| id));
        assert!(changes.to_string().starts_with("not compared: "));
        assert!(!changes.inline());
    }
}

#[test]
fn the_ledger_keeps_the_changes_as_json() {
    let old = list("debian13-base", OLD, "3.0.15-1", false);
    let new = list("debian13-base", NEW, "3.0.16-1", true);
    for changes in [
        compare(lists(Some(&new), Some((OLD, Some(&old))))).0,
        compare(lists(Some(&new), None)).0,
        compare(lists(None, Some((OLD, None)))).0,
    ] {
        let json = serde_json::to_string(&changes).expect("json");
        assert!(json.contains(&format!("\"status\":\"{}\"", changes.status())));
        let back: PackageChanges = serde_json::from_str(&json).expect("read back");
        assert_eq!(back, changes);
    }
}

#[test]
fn a_large_diff_is_linked_not_inlined() {
    let summary = bom::summarize(&bom::BomDiff::default(), bom::MAX_NAMED);
    let at = |diff_bytes| PackageChanges::Compared {
        against: OLD.into(),
        summary: summary.clone(),
        diff_bytes,
    };
    assert!(at(INLINE_DIFF_MAX_BYTES).inline());
    assert!(!at(INLINE_DIFF_MAX_BYTES + 1).inline());
}

#[test]
fn a_stored_diff_is_read_back_only_for_its_image() {
    let old = list("debian13-base", OLD, "3.0.15-1", false);
    let new = list("debian13-base", NEW, "3.0.16-1", true);
    let (_, document) = compare(lists(Some(&new), Some((OLD, Some(&old)))));
    let document = document.expect("stored");
    let bytes = serde_json::to_vec(&document).expect("json");
    assert_eq!(DiffDocument::parse(&bytes, NEW), Ok(document.clone()));
    let err = DiffDocument::parse(&bytes, OLD).expect_err("another image's");
    assert!(err.contains("not ami-0aaaaaaaaaaaaaaaa"), "{err}");
    let other = String::from_utf8(bytes)
        .expect("utf-8")
        .replace(DIFF_SCHEMA, "gild.bom-diff/2");
    assert!(DiffDocument::parse(other.as_bytes(), NEW).is_err());
    assert!(DiffDocument::parse(b"[]", NEW).is_err());
}
