//! The bill of materials (BOM): what is installed in one image, as the bake
//! collects it (`docs/bom.md` is the schema), and what changed between two
//! images ([`diff`], [`summarize`]), and a bake's changes against its
//! family's promoted image ([`compare`]).
//!
//! Parsing is strict and bounded: a BOM comes from a build the pipeline
//! does not control line by line, and its diff goes into emails, Slack and
//! pull-request comments, so anything odd is refused with an error naming
//! the field and the package rather than carried into a message. A parsed
//! [`Bom`] holds its packages in identity order, so everything derived from
//! it is deterministic whatever order the collector wrote.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::catalog::{self, Os};

mod compare;
mod diff;
mod package;
mod summary;
mod version;

pub use compare::{
    bom_key, compare, diff_key, DiffDocument, Lists, PackageChanges, DIFF_SCHEMA,
    INLINE_DIFF_MAX_BYTES, LINK_SECS, MAX_NAMED,
};
pub use diff::{apply, diff, json_len, ApplyError, BomDiff, VersionChange};
use package::RawPackage;
pub use package::{Identity, Kind, Package, PackageProblem};
pub use summary::{lines, rows, summarize, Change, Row, Summary};
pub use version::compare_versions;

/// The one schema this version of gild reads and writes.
pub const SCHEMA: &str = "gild.bom/1";
/// Largest document accepted, checked before parsing: 20 000 packages of
/// typical size are under 2 MiB, so this leaves room without letting a
/// runaway collector make a function parse hundreds of megabytes.
pub const MAX_BYTES: usize = 8 * 1024 * 1024;
/// Most packages in one image: server images hold hundreds to a few
/// thousand, so this is room to grow, not a size anyone reaches.
pub const MAX_PACKAGES: usize = 20_000;
/// Longest name, in characters (Windows programs' display names are long).
pub const MAX_NAME_CHARS: usize = 256;
/// Longest version, in characters.
pub const MAX_VERSION_CHARS: usize = 128;
/// Longest dpkg architecture, in characters (`amd64`, `all`, `x32`...).
pub const MAX_ARCH_CHARS: usize = 32;

/// Why a document is not a bill of materials. The variant names are stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BomError {
    #[error("bill of materials is {bytes} bytes, more than {MAX_BYTES}")]
    TooLarge { bytes: usize },
    #[error("not a bill of materials: {0}")]
    Json(String),
    #[error("schema `{found}` is not `{SCHEMA}`")]
    UnknownSchema { found: String },
    #[error("family `{family}` is not a family name")]
    BadFamily { family: String },
    #[error("image `{image}` is not an AMI id (`ami-` and 8 to 17 hex digits); leave it out while it is not known")]
    BadImage { image: String },
    #[error("collected_at cannot be written as RFC 3339")]
    BadTime,
    #[error("{count} packages, more than {MAX_PACKAGES}")]
    TooManyPackages { count: usize },
    #[error("packages[{index}] {name:?}: {problem}")]
    Package {
        index: usize,
        name: String,
        problem: PackageProblem,
    },
    #[error("packages[{index}] is {identity} ({kind}) again, first at packages[{first}]")]
    Duplicate {
        index: usize,
        first: usize,
        kind: Kind,
        identity: String,
    },
}

/// At most 64 characters of an input string, for an error message.
fn clip(s: &str) -> String {
    const KEEP: usize = 64;
    match s.char_indices().nth(KEEP) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

/// An image's bill of materials: which family and image it describes, when
/// it was collected, and its packages in identity order without repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bom {
    family: String,
    image: Option<String>,
    os: Os,
    collected_at: OffsetDateTime,
    packages: Vec<Package>,
}

/// The document as written, before its rules are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBom {
    #[allow(dead_code)] // checked by the first pass, kept so it is not an unknown field
    schema: String,
    family: String,
    #[serde(default)]
    image: Option<String>,
    os: Os,
    #[serde(with = "time::serde::rfc3339")]
    collected_at: OffsetDateTime,
    packages: Vec<RawPackage>,
}

/// The first pass: only the schema, every other field ignored, so a BOM of
/// a later schema is refused for its schema rather than for its fields.
#[derive(Deserialize)]
struct SchemaOnly {
    schema: String,
}

impl Bom {
    /// A BOM from its parts, checked as [`Bom::parse`] checks a document:
    /// family name, AMI id, package count, each package's OS, no identity
    /// twice. Packages are put in identity order.
    pub fn new(
        family: String,
        image: Option<String>,
        os: Os,
        collected_at: OffsetDateTime,
        packages: Vec<Package>,
    ) -> Result<Bom, BomError> {
        if !catalog::valid_name(&family) {
            return Err(BomError::BadFamily {
                family: clip(&family),
            });
        }
        if let Some(image) = &image {
            check_image(image)?;
        }
        // Formatting fails only for years past 9999 or offsets with seconds;
        // refusing them here keeps every Bom serialisable.
        if collected_at.format(&Rfc3339).is_err() {
            return Err(BomError::BadTime);
        }
        if packages.len() > MAX_PACKAGES {
            return Err(BomError::TooManyPackages {
                count: packages.len(),
            });
        }
        let mut first: BTreeMap<(Kind, &str, Option<&str>), usize> = BTreeMap::new();
        for (index, package) in packages.iter().enumerate() {
            if package.kind().os() != os {
                return Err(BomError::Package {
                    index,
                    name: clip(package.name()),
                    problem: PackageProblem::WrongOs {
                        kind: package.kind(),
                        os,
                    },
                });
            }
            if let Some(&earlier) = first.get(&package.key()) {
                return Err(BomError::Duplicate {
                    index,
                    first: earlier,
                    kind: package.kind(),
                    identity: clip(&package.identity().to_string()),
                });
            }
            first.insert(package.key(), index);
        }
        let mut packages = packages;
        packages.sort_by(|a, b| a.key().cmp(&b.key()));
        Ok(Bom {
            family,
            image,
            os,
            collected_at,
            packages,
        })
    }

    /// A `gild.bom/1` document (`docs/bom.md`). Unknown fields are refused:
    /// a field this version does not know is a field it would drop.
    pub fn parse(data: &[u8]) -> Result<Bom, BomError> {
        if data.len() > MAX_BYTES {
            return Err(BomError::TooLarge { bytes: data.len() });
        }
        let head: SchemaOnly =
            serde_json::from_slice(data).map_err(|e| BomError::Json(e.to_string()))?;
        if head.schema != SCHEMA {
            return Err(BomError::UnknownSchema {
                found: clip(&head.schema),
            });
        }
        let raw: RawBom =
            serde_json::from_slice(data).map_err(|e| BomError::Json(e.to_string()))?;
        if raw.packages.len() > MAX_PACKAGES {
            return Err(BomError::TooManyPackages {
                count: raw.packages.len(),
            });
        }
        let packages = raw
            .packages
            .into_iter()
            .enumerate()
            .map(|(index, p)| {
                let name = clip(&p.name);
                Package::new(p.kind, p.name, p.version, p.arch).map_err(|problem| {
                    BomError::Package {
                        index,
                        name,
                        problem,
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Bom::new(raw.family, raw.image, raw.os, raw.collected_at, packages)
    }

    /// The document, in the shape [`Bom::parse`] reads, packages in
    /// identity order.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// The same BOM naming its image: the bake collects the list before
    /// Packer has registered the AMI, and fills the id in afterwards.
    pub fn with_image(mut self, image: &str) -> Result<Bom, BomError> {
        check_image(image)?;
        self.image = Some(image.to_owned());
        Ok(self)
    }

    pub fn family(&self) -> &str {
        &self.family
    }

    /// The AMI id; `None` while the bake has not registered it yet.
    pub fn image(&self) -> Option<&str> {
        self.image.as_deref()
    }

    pub fn os(&self) -> Os {
        self.os
    }

    pub fn collected_at(&self) -> OffsetDateTime {
        self.collected_at
    }

    /// In identity order (kind, name, arch), each identity once.
    pub fn packages(&self) -> &[Package] {
        &self.packages
    }

    /// The package with this identity, if installed.
    pub fn get(&self, identity: &Identity) -> Option<&Package> {
        let key = (
            identity.kind,
            identity.name.as_str(),
            identity.arch.as_deref(),
        );
        self.packages
            .binary_search_by(|p| p.key().cmp(&key))
            .ok()
            .and_then(|at| self.packages.get(at))
    }
}

impl Serialize for Bom {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Out<'a> {
            schema: &'static str,
            family: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            image: Option<&'a str>,
            os: Os,
            #[serde(with = "time::serde::rfc3339")]
            collected_at: OffsetDateTime,
            packages: &'a [Package],
        }
        Out {
            schema: SCHEMA,
            family: &self.family,
            image: self.image.as_deref(),
            os: self.os,
            collected_at: self.collected_at,
            packages: &self.packages,
        }
        .serialize(serializer)
    }
}

/// `ami-` and 8 to 17 lower-case hex digits: EC2 issues 8 (older ids) or
/// 17, and the bake's writer (`buildspecs/bootstrap/bom.py`) accepts the
/// range between, which costs nothing to accept here too.
fn check_image(image: &str) -> Result<(), BomError> {
    let ok = image.strip_prefix("ami-").is_some_and(|hex| {
        (8..=17).contains(&hex.len()) && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    });
    if ok {
        Ok(())
    } else {
        Err(BomError::BadImage { image: clip(image) })
    }
}

#[cfg(test)]
mod tests;
