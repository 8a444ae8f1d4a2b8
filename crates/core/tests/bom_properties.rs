//! The bill of materials' diff, over random package lists: it is a faithful
//! account of the new list (apply gives it back), it has nothing to say
//! about a list and itself, it mirrors when the lists swap, and the
//! summary counts what it holds. Also: no bytes and no mutation of a real
//! BOM make the parser panic, and what it accepts it writes back.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use gild_core::bom::{self, Bom, BomDiff, Kind, Package, VersionChange};
use gild_core::catalog::Os;
use proptest::prelude::*;
use time::macros::datetime;

const LINUX: &str = include_str!("../../../fuzz/corpus/bom/debian13-base.json");
const WINDOWS: &str = include_str!("../../../fuzz/corpus/bom/win2022-iis.json");

/// Few names, so two random lists share many identities.
const DPKG_NAMES: &[&str] = &[
    "openssl",
    "libssl3",
    "linux-image-amd64",
    "openssh-server",
    "libc6",
    "curl",
    "jq",
    "zlib1g",
    "dotnet-runtime-8.0",
    "vim",
];
const ARCHES: &[&str] = &["amd64", "i386", "all"];
const HOTFIXES: &[&str] = &["KB5044281", "KB5046616", "KB5048654"];
const FEATURES: &[&str] = &["Web-Server", "IIS-WebServerRole", "NET-Framework-45-Core"];
const PROGRAMS: &[&str] = &[
    "Microsoft .NET Runtime - 8.0.11 (x64)",
    "Amazon SSM Agent",
    "7-Zip 24.08 (x64)",
];

/// Debian versions with epochs, `~`, revisions and stable updates, small
/// enough that equal, `~`-lower and respelled versions all come up.
fn debian_version() -> impl Strategy<Value = String> {
    "(1:|0:)?[0-9]{1,2}(\\.[0-9]{1,2}){0,2}(~rc[0-9])?(-[0-9](\\+deb12u[0-9])?)?"
}

fn windows_version() -> impl Strategy<Value = String> {
    "[0-9]{1,2}(\\.0?[0-9]{1,3}){0,3}"
}

fn linux_packages() -> impl Strategy<Value = Vec<Package>> {
    prop::collection::btree_map(
        (
            prop::sample::select(DPKG_NAMES),
            prop::sample::select(ARCHES),
        ),
        debian_version(),
        0..20,
    )
    .prop_map(|map| {
        map.into_iter()
            .filter_map(|((name, arch), version)| {
                Package::new(Kind::Dpkg, name.into(), Some(version), Some(arch.into())).ok()
            })
            .collect()
    })
}

fn windows_packages() -> impl Strategy<Value = Vec<Package>> {
    (
        prop::sample::subsequence(HOTFIXES, 0..=HOTFIXES.len()),
        prop::sample::subsequence(FEATURES, 0..=FEATURES.len()),
        prop::collection::btree_map(
            prop::sample::select(PROGRAMS),
            prop::option::weighted(0.8, windows_version()),
            0..3,
        ),
    )
        .prop_map(|(hotfixes, features, programs)| {
            let plain = |kind: Kind, names: Vec<&'static str>| -> Vec<Package> {
                names
                    .into_iter()
                    .filter_map(|n| Package::new(kind, n.into(), None, None).ok())
                    .collect()
            };
            plain(Kind::Hotfix, hotfixes)
                .into_iter()
                .chain(plain(Kind::Feature, features))
                .chain(programs.into_iter().filter_map(|(name, version)| {
                    Package::new(Kind::Program, name.into(), version, None).ok()
                }))
                .collect()
        })
}

fn make(os: Os, mut packages: Vec<Package>, reverse: bool) -> Bom {
    // The order written must not matter.
    if reverse {
        packages.reverse();
    }
    let family = match os {
        Os::Linux => "debian13-base",
        Os::Windows => "win2022-iis",
    };
    Bom::new(
        family.into(),
        None,
        os,
        datetime!(2026-12-06 21:00 UTC),
        packages,
    )
    .expect("generated packages make a BOM")
}

/// Two BOMs of one OS.
fn two_boms() -> impl Strategy<Value = (Bom, Bom)> {
    prop_oneof![
        (linux_packages(), linux_packages(), any::<bool>())
            .prop_map(|(a, b, r)| (make(Os::Linux, a, r), make(Os::Linux, b, !r))),
        (windows_packages(), windows_packages(), any::<bool>())
            .prop_map(|(a, b, r)| (make(Os::Windows, a, r), make(Os::Windows, b, !r))),
    ]
}

fn swapped(changes: &[VersionChange]) -> Vec<VersionChange> {
    changes
        .iter()
        .map(|c| VersionChange {
            old: c.new.clone(),
            new: c.old.clone(),
            ..c.clone()
        })
        .collect()
}

/// The counts the summary's text ends with.
fn counts_text(d: &BomDiff) -> String {
    let mut text = format!("{} upgraded", d.upgraded.len());
    if !d.downgraded.is_empty() {
        text += &format!(", {} downgraded", d.downgraded.len());
    }
    text += &format!(", {} added, {} removed", d.added.len(), d.removed.len());
    if !d.respelled.is_empty() {
        text += &format!(", {} respelled", d.respelled.len());
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn applying_the_diff_gives_back_the_new_list((old, new) in two_boms()) {
        let d = bom::diff(&old, &new);
        prop_assert_eq!(bom::apply(&old, &d), Ok(new.packages().to_vec()));
        // And the diff survives JSON: what the announcement carries is enough.
        let json = serde_json::to_string(&d).expect("serialisable");
        prop_assert_eq!(json.len(), bom::json_len(&d));
        let read: BomDiff = serde_json::from_str(&json).expect("reads back");
        prop_assert_eq!(bom::apply(&old, &read), Ok(new.packages().to_vec()));
    }

    #[test]
    fn a_list_against_itself_is_no_change((old, _) in two_boms()) {
        let d = bom::diff(&old, &old);
        prop_assert!(d.is_empty());
        prop_assert_eq!(bom::summarize(&d, 5).to_string(), "no package changes");
    }

    #[test]
    fn swapping_the_lists_swaps_the_diff((old, new) in two_boms()) {
        let forward = bom::diff(&old, &new);
        let back = bom::diff(&new, &old);
        prop_assert_eq!(&forward.added, &back.removed);
        prop_assert_eq!(&forward.removed, &back.added);
        prop_assert_eq!(swapped(&forward.upgraded), back.downgraded.clone());
        prop_assert_eq!(swapped(&forward.downgraded), back.upgraded.clone());
        prop_assert_eq!(swapped(&forward.respelled), back.respelled.clone());
        // Each list holds what its name says, by the kind's version order.
        let lists = [
            (&forward.upgraded, Ordering::Less),
            (&forward.downgraded, Ordering::Greater),
            (&forward.respelled, Ordering::Equal),
        ];
        for (changes, order) in lists {
            for c in changes {
                prop_assert_ne!(&c.old, &c.new);
                prop_assert_eq!(bom::compare_versions(c.kind, &c.old, &c.new), order);
            }
        }
    }

    #[test]
    fn the_summary_counts_what_the_diff_holds((old, new) in two_boms(), max in 0usize..6) {
        let d = bom::diff(&old, &new);
        let summary = bom::summarize(&d, max);
        prop_assert_eq!(summary.upgraded, d.upgraded.len());
        prop_assert_eq!(summary.downgraded, d.downgraded.len());
        prop_assert_eq!(summary.added, d.added.len());
        prop_assert_eq!(summary.removed, d.removed.len());
        prop_assert_eq!(summary.respelled, d.respelled.len());
        prop_assert!(summary.named.len() <= max);
        prop_assert!(summary.named.len() <= d.changes());
        let text = summary.to_string();
        if d.changes() == 0 {
            prop_assert!(text.starts_with("no package changes"), "{}", text);
        } else {
            prop_assert!(text.ends_with(&counts_text(&d)), "{}", text);
        }
        // One table line per change, or the one saying there is none.
        prop_assert_eq!(bom::lines(&d).len(), (d.changes() + d.respelled.len()).max(1));
    }

    #[test]
    fn a_bom_writes_back_to_itself((old, _) in two_boms()) {
        let json = old.to_json().expect("serialisable");
        prop_assert_eq!(Bom::parse(json.as_bytes()), Ok(old));
    }

    #[test]
    fn version_order_is_antisymmetric_and_transitive(
        a in debian_version(), b in debian_version(), c in debian_version(),
        x in windows_version(), y in windows_version(), z in windows_version(),
    ) {
        for (kind, a, b, c) in [(Kind::Dpkg, &a, &b, &c), (Kind::Program, &x, &y, &z)] {
            let cmp = |p: &str, q: &str| bom::compare_versions(kind, p, q);
            prop_assert_eq!(cmp(a, b), cmp(b, a).reverse());
            let mut sorted = [a.as_str(), b.as_str(), c.as_str()];
            sorted.sort_by(|p, q| cmp(p, q));
            prop_assert_ne!(cmp(sorted[0], sorted[1]), Ordering::Greater);
            prop_assert_ne!(cmp(sorted[1], sorted[2]), Ordering::Greater);
            prop_assert_ne!(cmp(sorted[0], sorted[2]), Ordering::Greater);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Bom::parse(&data);
    }

    #[test]
    fn a_mutated_bom_never_panics_and_what_parses_writes_back(
        which in any::<bool>(),
        path in prop::collection::vec(any::<usize>(), 1..4),
        leaf in prop_oneof![
            Just(serde_json::Value::Null),
            any::<i64>().prop_map(serde_json::Value::from),
            ".{0,300}".prop_map(serde_json::Value::String),
            Just(serde_json::Value::String("ami-0123456789abcdef0".into())),
            Just(serde_json::Value::String("dpkg".into())),
            Just(serde_json::Value::String("1:2.0~rc1-1".into())),
            Just(serde_json::json!([])),
        ],
    ) {
        let text = if which { LINUX } else { WINDOWS };
        let mut value: serde_json::Value = serde_json::from_str(text).expect("seed is JSON");
        mutate(&mut value, &path, leaf);
        let bytes = serde_json::to_vec(&value).expect("JSON");
        if let Ok(parsed) = Bom::parse(&bytes) {
            let json = parsed.to_json().expect("serialisable");
            prop_assert_eq!(Bom::parse(json.as_bytes()), Ok(parsed));
        }
    }
}

/// Replaces the value at a path of child indexes (each taken modulo the
/// children there).
fn mutate(value: &mut serde_json::Value, path: &[usize], leaf: serde_json::Value) {
    let Some((step, rest)) = path.split_first() else {
        *value = leaf;
        return;
    };
    let child = match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            let n = map.len();
            map.values_mut().nth(step % n)
        }
        serde_json::Value::Array(items) if !items.is_empty() => {
            let n = items.len();
            items.get_mut(step % n)
        }
        _ => None,
    };
    match child {
        Some(child) => mutate(child, rest, leaf),
        None => *value = leaf,
    }
}

#[test]
fn the_seed_boms_parse() {
    for text in [LINUX, WINDOWS] {
        let parsed = Bom::parse(text.as_bytes()).expect("seed parses");
        let by_identity: BTreeMap<_, _> = parsed
            .packages()
            .iter()
            .map(|p| (p.identity(), p.version()))
            .collect();
        assert_eq!(by_identity.len(), parsed.packages().len());
    }
}
