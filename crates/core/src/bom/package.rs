//! One installed package: its kind, its identity, and the rules its
//! fields are held to.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{version, MAX_ARCH_CHARS, MAX_NAME_CHARS, MAX_VERSION_CHARS};
use crate::catalog::Os;

/// What kind of thing is installed, which fixes its fields and its OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A Debian package: name, version, architecture.
    Dpkg,
    /// A Windows update (`KB5044281`): installed or not, no version.
    Hotfix,
    /// A Windows feature (`Web-Server`): installed or not, no version.
    Feature,
    /// A Windows installed program, with its version.
    Program,
}

impl Kind {
    /// The OS whose images list this kind.
    pub fn os(self) -> Os {
        match self {
            Kind::Dpkg => Os::Linux,
            Kind::Hotfix | Kind::Feature | Kind::Program => Os::Windows,
        }
    }

    /// Whether packages of this kind may carry a version (dpkg packages
    /// always do, programs when Windows records one).
    pub fn has_version(self) -> bool {
        matches!(self, Kind::Dpkg | Kind::Program)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dpkg => "dpkg",
            Kind::Hotfix => "hotfix",
            Kind::Feature => "feature",
            Kind::Program => "program",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which package a line is about, whatever its version: two BOMs' packages
/// with the same identity are the same package, maybe at another version.
/// The architecture is part of it because dpkg installs one package for
/// several architectures side by side (`libc6:amd64`, `libc6:i386`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Identity {
    pub kind: Kind,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
}

impl fmt::Display for Identity {
    /// dpkg's own `name:arch` for Debian packages, the name for the rest.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.arch {
            Some(arch) => write!(f, "{}:{arch}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// One installed package, its fields checked for its kind ([`Package::new`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawPackage")]
pub struct Package {
    kind: Kind,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arch: Option<String>,
}

/// A package line as written, before its fields are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPackage {
    pub(super) kind: Kind,
    pub(super) name: String,
    #[serde(default)]
    pub(super) version: Option<String>,
    #[serde(default)]
    pub(super) arch: Option<String>,
}

impl TryFrom<RawPackage> for Package {
    type Error = PackageProblem;

    fn try_from(raw: RawPackage) -> Result<Self, Self::Error> {
        Package::new(raw.kind, raw.name, raw.version, raw.arch)
    }
}

impl Package {
    /// A package of `kind`: dpkg needs a Debian version and an
    /// architecture; a program has no architecture, and a version when
    /// Windows records one (many installers leave `DisplayVersion` out, and
    /// such a program is still installed); hotfixes and features have
    /// neither. Every string is bounded and free of control
    /// characters and of surrounding whitespace, since each may end up in
    /// an email, a Slack message or a table.
    pub fn new(
        kind: Kind,
        name: String,
        version: Option<String>,
        arch: Option<String>,
    ) -> Result<Package, PackageProblem> {
        text("name", &name, MAX_NAME_CHARS)?;
        if kind == Kind::Dpkg && !dpkg_name(&name) {
            return Err(PackageProblem::BadDpkgName);
        }
        match (&version, kind.has_version()) {
            (None, true) if kind == Kind::Dpkg => return Err(PackageProblem::MissingVersion),
            (Some(_), false) => return Err(PackageProblem::UnexpectedVersion),
            (Some(version), true) => {
                text("version", version, MAX_VERSION_CHARS)?;
                if kind == Kind::Dpkg {
                    if let Some(reason) = version::debian_problem(version) {
                        return Err(PackageProblem::BadDebianVersion { reason });
                    }
                }
            }
            (None, _) => {}
        }
        match (&arch, kind == Kind::Dpkg) {
            (None, true) => return Err(PackageProblem::MissingArch),
            (Some(_), false) => return Err(PackageProblem::UnexpectedArch),
            (Some(arch), true) if !dpkg_arch(arch) => return Err(PackageProblem::BadArch),
            _ => {}
        }
        Ok(Package {
            kind,
            name,
            version,
            arch,
        })
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Always for dpkg, for a program when Windows records one, never for
    /// hotfixes and features.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// Present exactly for dpkg packages.
    pub fn arch(&self) -> Option<&str> {
        self.arch.as_deref()
    }

    pub fn identity(&self) -> Identity {
        Identity {
            kind: self.kind,
            name: self.name.clone(),
            arch: self.arch.clone(),
        }
    }

    /// The identity, borrowed: what packages are ordered and matched by.
    pub(crate) fn key(&self) -> (Kind, &str, Option<&str>) {
        (self.kind, &self.name, self.arch.as_deref())
    }
}

/// `value` is 1 to `max` characters, no control characters (a newline would
/// forge a line in an email), no leading or trailing whitespace (two
/// spellings of one package would be two identities).
fn text(field: &'static str, value: &str, max: usize) -> Result<(), PackageProblem> {
    let chars = value.chars().count();
    if chars == 0 {
        return Err(PackageProblem::Empty { field });
    }
    if chars > max {
        return Err(PackageProblem::TooLong { field, chars, max });
    }
    if value.chars().any(char::is_control) {
        return Err(PackageProblem::ControlCharacter { field });
    }
    if value.trim() != value {
        return Err(PackageProblem::Whitespace { field });
    }
    Ok(())
}

/// Debian Policy §5.6.1: lower-case letters, digits, `+`, `-` and `.`, at
/// least two characters, starting with a letter or digit. dpkg enforces it,
/// so a name outside it did not come from dpkg.
fn dpkg_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() >= 2
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
        })
}

/// dpkg's architecture names: lower-case letters, digits and `-`.
fn dpkg_arch(arch: &str) -> bool {
    !arch.is_empty()
        && arch.len() <= MAX_ARCH_CHARS
        && arch
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// What is wrong with one package line. The variant names are stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageProblem {
    #[error("{field} is empty")]
    Empty { field: &'static str },
    #[error("{field} is {chars} characters, more than {max}")]
    TooLong {
        field: &'static str,
        chars: usize,
        max: usize,
    },
    #[error("{field} has a control character")]
    ControlCharacter { field: &'static str },
    #[error("{field} has leading or trailing whitespace")]
    Whitespace { field: &'static str },
    #[error("name is not a Debian package name (Policy 5.6.1: a-z, 0-9, `+`, `-`, `.`, at least two, starting with a letter or digit)")]
    BadDpkgName,
    #[error("version is missing: dpkg packages have one")]
    MissingVersion,
    #[error("version is given, but hotfixes and features have none")]
    UnexpectedVersion,
    #[error("version is not a Debian version: {reason}")]
    BadDebianVersion { reason: String },
    #[error("arch is missing: dpkg packages have one")]
    MissingArch,
    #[error("arch is given, but only dpkg packages have one")]
    UnexpectedArch,
    #[error("arch is not a dpkg architecture (a-z, 0-9, `-`, at most {MAX_ARCH_CHARS})")]
    BadArch,
    #[error("a {kind} package in a {os} image")]
    WrongOs { kind: Kind, os: Os },
}
