//! A finished bake's packages against the family's promoted image: what the
//! ledger keeps ([`PackageChanges`]), the stored diff ([`DiffDocument`]),
//! and where both live in the artifact bucket.
//!
//! The comparison is information, never a gate: a list that is missing or
//! refused makes the changes `unavailable`, with the reason, and the bake
//! goes on. What decides an image's fate is its test.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{diff, json_len, summarize, Bom, BomDiff, Summary};

/// Where the bake keeps an image's list (`buildspecs/bake.yml` writes it).
pub fn bom_key(image: &str) -> String {
    format!("bom/{image}.json")
}

/// Where gild keeps a bake's diff against the promoted image. Not under
/// `bom/`: the bake role may write there, and the diff is gild's account
/// of the bake, not the bake's of itself.
pub fn diff_key(image: &str) -> String {
    format!("diff/{image}.json")
}

/// Changes named in the one-line summary (email, Slack, pull request).
pub const MAX_NAMED: usize = 5;

/// The largest diff an announcement carries in its JSON; above it, a link.
/// SNS takes 256 KiB per message, and gild's message holds the JSON body
/// four times (`default`, `sqs`, `lambda`, `email-json`) beside the email,
/// so 32 KiB each leaves room for everything else.
pub const INLINE_DIFF_MAX_BYTES: usize = 32 * 1024;

/// How long a link to a diff is signed for (SigV4's longest is 7 days).
/// A link signed with a role's temporary credentials stops working when
/// they expire, sooner; the announcement also gives the object's S3 URI.
pub const LINK_SECS: u64 = 7 * 24 * 3600;

/// The schema of a stored diff.
pub const DIFF_SCHEMA: &str = "gild.bom-diff/1";

/// What a bake's packages changed, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PackageChanges {
    /// Compared with `against`, the family's promoted image when the bake
    /// finished; the whole diff is at [`diff_key`] of the new image.
    Compared {
        against: String,
        summary: Summary,
        /// The diff's length as JSON, to choose inline or link unread.
        diff_bytes: usize,
    },
    /// The family had no promoted image: nothing to compare with.
    First { packages: usize },
    /// Not compared, and why (no list for the new image, none kept for the
    /// promoted one, a list gild refused).
    Unavailable {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        against: Option<String>,
    },
}

impl PackageChanges {
    /// The image compared with, if there was one.
    pub fn against(&self) -> Option<&str> {
        match self {
            PackageChanges::Compared { against, .. } => Some(against),
            PackageChanges::Unavailable { against, .. } => against.as_deref(),
            PackageChanges::First { .. } => None,
        }
    }

    pub fn status(&self) -> &'static str {
        match self {
            PackageChanges::Compared { .. } => "compared",
            PackageChanges::First { .. } => "first",
            PackageChanges::Unavailable { .. } => "unavailable",
        }
    }

    /// The diff is small enough to go in an announcement's JSON.
    pub fn inline(&self) -> bool {
        matches!(self, PackageChanges::Compared { diff_bytes, .. } if *diff_bytes <= INLINE_DIFF_MAX_BYTES)
    }
}

impl fmt::Display for PackageChanges {
    /// One line: the summary, or why there is none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackageChanges::Compared { summary, .. } => summary.fmt(f),
            PackageChanges::First { packages } => {
                write!(f, "first image of the family ({packages} packages)")
            }
            PackageChanges::Unavailable { reason, .. } => write!(f, "not compared: {reason}"),
        }
    }
}

/// The diff as gild stores it at [`diff_key`] (`docs/bom.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffDocument {
    pub schema: String,
    pub family: String,
    pub image: String,
    pub against: String,
    pub diff: BomDiff,
}

impl DiffDocument {
    /// A stored diff, refused when it is not this schema or not about
    /// `image` (an object someone else put under the key).
    pub fn parse(data: &[u8], image: &str) -> Result<DiffDocument, String> {
        if data.len() > super::MAX_BYTES {
            return Err(format!(
                "{} bytes, more than {}",
                data.len(),
                super::MAX_BYTES
            ));
        }
        let document: DiffDocument =
            serde_json::from_slice(data).map_err(|e| format!("not a gild diff: {e}"))?;
        if document.schema != DIFF_SCHEMA {
            return Err(format!("schema is not {DIFF_SCHEMA}"));
        }
        if document.image != image {
            return Err(format!(
                "it is the diff of {}, not {image}",
                super::clip(&document.image)
            ));
        }
        Ok(document)
    }
}

/// What was read for the comparison: each list's bytes, `None` when the
/// bucket has no object under its key.
#[derive(Debug, Clone, Copy)]
pub struct Lists<'a> {
    pub family: &'a str,
    pub image: &'a str,
    pub new: Option<&'a [u8]>,
    /// The family's promoted image, if any, and its list.
    pub promoted: Option<(&'a str, Option<&'a [u8]>)>,
}

/// The changes, and the document to store when there is a diff.
pub fn compare(lists: Lists<'_>) -> (PackageChanges, Option<DiffDocument>) {
    let Lists {
        family,
        image,
        new,
        promoted,
    } = lists;
    let against = promoted.map(|(id, _)| id.to_owned());
    let unavailable = |reason: String| {
        (
            PackageChanges::Unavailable {
                reason,
                against: against.clone(),
            },
            None,
        )
    };
    let Some(new) = new else {
        return unavailable(format!("the bake kept no list at {}", bom_key(image)));
    };
    let new = match read(new, family, image) {
        Ok(bom) => bom,
        Err(reason) => return unavailable(reason),
    };
    let Some((promoted, old)) = promoted else {
        let packages = new.packages().len();
        return (PackageChanges::First { packages }, None);
    };
    if promoted == image {
        return unavailable(format!("{image} is the promoted image itself"));
    }
    let Some(old) = old else {
        return unavailable(format!(
            "no list is kept for {promoted} at {} (baked before gild kept them, or expired)",
            bom_key(promoted)
        ));
    };
    let old = match read(old, family, promoted) {
        Ok(bom) => bom,
        Err(reason) => return unavailable(reason),
    };
    let diff = diff(&old, &new);
    let changes = PackageChanges::Compared {
        against: promoted.to_owned(),
        summary: summarize(&diff, MAX_NAMED),
        diff_bytes: json_len(&diff),
    };
    let document = DiffDocument {
        schema: DIFF_SCHEMA.to_owned(),
        family: family.to_owned(),
        image: image.to_owned(),
        against: promoted.to_owned(),
        diff,
    };
    (changes, Some(document))
}

/// A list, refused unless it is about this family's image: a list under
/// another image's key would make the diff a lie.
fn read(data: &[u8], family: &str, image: &str) -> Result<Bom, String> {
    let key = bom_key(image);
    let bom = Bom::parse(data).map_err(|e| format!("{key} is refused: {e}"))?;
    if bom.family() != family {
        return Err(format!(
            "{key} is a list of {}, not of {family}",
            bom.family()
        ));
    }
    if bom.image() != Some(image) {
        let named = bom.image().unwrap_or("no image");
        return Err(format!("{key} names {named}, not {image}"));
    }
    Ok(bom)
}
