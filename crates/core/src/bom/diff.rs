//! What changed between two bills of materials, and the way back: applying
//! a diff to the old list gives the new one, which is what makes the diff
//! a faithful account of the new image rather than a lossy summary.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::io;

use serde::{Deserialize, Serialize};

use super::{compare_versions, Bom, Kind, Package, PackageProblem};

/// One package whose version string changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionChange {
    pub kind: Kind,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    pub old: String,
    pub new: String,
}

impl VersionChange {
    pub(crate) fn key(&self) -> (Kind, &str, Option<&str>) {
        (self.kind, &self.name, self.arch.as_deref())
    }
}

/// The changes from an old package list to a new one, each list in identity
/// order. A package whose version string changed but compares equal
/// (`1.0` and `1.0-0`, `8.0` and `8.0.0.0`) is neither upgraded nor
/// downgraded: nothing newer is installed, so no summary names it; it is
/// kept in `respelled` so that [`apply`] still gives back the new list
/// exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BomDiff {
    pub upgraded: Vec<VersionChange>,
    pub downgraded: Vec<VersionChange>,
    pub added: Vec<Package>,
    pub removed: Vec<Package>,
    pub respelled: Vec<VersionChange>,
}

impl BomDiff {
    /// Nothing at all changed, not even a version's spelling.
    pub fn is_empty(&self) -> bool {
        self.changes() == 0 && self.respelled.is_empty()
    }

    /// Packages added, removed, upgraded or downgraded: what the summary
    /// counts as changes (respellings are not).
    pub fn changes(&self) -> usize {
        self.upgraded.len() + self.downgraded.len() + self.added.len() + self.removed.len()
    }
}

/// `old` to `new`: a merge of the two identity-ordered lists, so the diff
/// is in identity order and takes linear time.
pub fn diff(old: &Bom, new: &Bom) -> BomDiff {
    let mut out = BomDiff::default();
    let mut before = old.packages().iter().peekable();
    let mut after = new.packages().iter().peekable();
    loop {
        let order = match (before.peek(), after.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => a.key().cmp(&b.key()),
        };
        match order {
            Ordering::Less => out.removed.extend(before.next().cloned()),
            Ordering::Greater => out.added.extend(after.next().cloned()),
            Ordering::Equal => {
                if let (Some(a), Some(b)) = (before.next(), after.next()) {
                    classify(a, b, &mut out);
                }
            }
        }
    }
    out
}

/// One identity in both lists. Without versions there is nothing to
/// change. A program that gained or lost its version cannot be ordered, so
/// it is told as what it is: the old entry removed, the new one added.
fn classify(old: &Package, new: &Package, out: &mut BomDiff) {
    let (from, to) = match (old.version(), new.version()) {
        (Some(from), Some(to)) => (from, to),
        (None, None) => return,
        _ => {
            out.removed.push(old.clone());
            out.added.push(new.clone());
            return;
        }
    };
    if from == to {
        return;
    }
    let change = VersionChange {
        kind: new.kind(),
        name: new.name().to_owned(),
        arch: new.arch().map(str::to_owned),
        old: from.to_owned(),
        new: to.to_owned(),
    };
    match compare_versions(new.kind(), from, to) {
        Ordering::Less => out.upgraded.push(change),
        Ordering::Greater => out.downgraded.push(change),
        Ordering::Equal => out.respelled.push(change),
    }
}

/// Why a diff does not fit the list it is applied to. Variant names are
/// stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("{identity} is not installed, but the diff changes or removes it")]
    NotInstalled { identity: String },
    #[error("{identity} is already installed, but the diff adds it")]
    AlreadyInstalled { identity: String },
    #[error("{identity} is at {found:?}, but the diff changes it from {expected:?}")]
    VersionMismatch {
        identity: String,
        expected: String,
        found: Option<String>,
    },
    #[error("{identity}: {problem}")]
    BadPackage {
        identity: String,
        problem: PackageProblem,
    },
}

type Key = (Kind, String, Option<String>);

fn owned((kind, name, arch): (Kind, &str, Option<&str>)) -> Key {
    (kind, name.to_owned(), arch.map(str::to_owned))
}

/// The package list `diff` describes, from `old`'s: removals, then version
/// changes, then additions, each checked against what is there (the right
/// package at the right version), in identity order like
/// [`Bom::packages`]. `apply(old, &diff(old, new))` is `new.packages()`.
/// It does not judge whether an upgrade is really newer: that is the
/// diff's classification, not the list's content.
pub fn apply(old: &Bom, diff: &BomDiff) -> Result<Vec<Package>, ApplyError> {
    let mut list: BTreeMap<Key, Package> = old
        .packages()
        .iter()
        .map(|p| (owned(p.key()), p.clone()))
        .collect();
    for gone in &diff.removed {
        match list.remove(&owned(gone.key())) {
            Some(found) if found == *gone => {}
            Some(found) => {
                return Err(ApplyError::VersionMismatch {
                    identity: gone.identity().to_string(),
                    expected: gone.version().unwrap_or_default().to_owned(),
                    found: found.version().map(str::to_owned),
                })
            }
            None => {
                return Err(ApplyError::NotInstalled {
                    identity: gone.identity().to_string(),
                })
            }
        }
    }
    let changes = diff
        .upgraded
        .iter()
        .chain(&diff.downgraded)
        .chain(&diff.respelled);
    for change in changes {
        let identity = || super::Identity {
            kind: change.kind,
            name: change.name.clone(),
            arch: change.arch.clone(),
        };
        let Some(slot) = list.get_mut(&owned(change.key())) else {
            return Err(ApplyError::NotInstalled {
                identity: identity().to_string(),
            });
        };
        if slot.version() != Some(change.old.as_str()) {
            return Err(ApplyError::VersionMismatch {
                identity: identity().to_string(),
                expected: change.old.clone(),
                found: slot.version().map(str::to_owned),
            });
        }
        *slot = Package::new(
            change.kind,
            change.name.clone(),
            Some(change.new.clone()),
            change.arch.clone(),
        )
        .map_err(|problem| ApplyError::BadPackage {
            identity: identity().to_string(),
            problem,
        })?;
    }
    for new in &diff.added {
        if list.insert(owned(new.key()), new.clone()).is_some() {
            return Err(ApplyError::AlreadyInstalled {
                identity: new.identity().to_string(),
            });
        }
    }
    Ok(list.into_values().collect())
}

/// The length in bytes of `diff` as JSON (`serde_json::to_vec`), counted
/// without building it, so a caller can choose between putting the diff in
/// a message and linking to it. Serialising these types cannot fail; if it
/// ever did, the answer is `usize::MAX`, which sends the caller to the link.
pub fn json_len(diff: &BomDiff) -> usize {
    struct Count(usize);
    impl io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 = self.0.saturating_add(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, diff) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}
