//! The diff for people: one line for the top of an email or a Slack
//! message ([`summarize`]), and the whole diff as table rows ([`rows`],
//! [`lines`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{BomDiff, Kind, Package, VersionChange};

/// What happened to one package, in the order tables list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Upgraded,
    Downgraded,
    Added,
    Removed,
    Respelled,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Upgraded => "upgraded",
            Change::Downgraded => "downgraded",
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Respelled => "respelled",
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One changed package: `old` is absent for an addition, `new` for a
/// removal, both for hotfixes and features (they have no version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub change: Change,
    pub kind: Kind,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    pub old: Option<String>,
    pub new: Option<String>,
}

impl Row {
    fn of_change(change: Change, c: &VersionChange) -> Row {
        Row {
            change,
            kind: c.kind,
            name: c.name.clone(),
            arch: c.arch.clone(),
            old: Some(c.old.clone()),
            new: Some(c.new.clone()),
        }
    }

    fn of_package(change: Change, p: &Package) -> Row {
        let version = p.version().map(str::to_owned);
        let (old, new) = match change {
            Change::Removed => (version, None),
            _ => (None, version),
        };
        Row {
            change,
            kind: p.kind(),
            name: p.name().to_owned(),
            arch: p.arch().map(str::to_owned),
            old,
            new,
        }
    }

    fn key(&self) -> (Kind, &str, Option<&str>) {
        (self.kind, &self.name, self.arch.as_deref())
    }

    /// `name:arch` for dpkg packages, as dpkg writes them.
    pub fn package(&self) -> String {
        match &self.arch {
            Some(arch) => format!("{}:{arch}", self.name),
            None => self.name.clone(),
        }
    }

    /// `old → new`, or the one version there is, or nothing.
    pub fn versions(&self) -> String {
        match (&self.old, &self.new) {
            (Some(old), Some(new)) => format!("{old} → {new}"),
            (Some(one), None) | (None, Some(one)) => one.clone(),
            (None, None) => String::new(),
        }
    }

    /// How the summary names it: no architecture (people read `openssl`,
    /// not `openssl:amd64`), the change spelled out unless it is an
    /// upgrade, the common case.
    fn short(&self) -> String {
        let versions = self.versions();
        let head = if versions.is_empty() {
            self.name.clone()
        } else {
            format!("{} {versions}", self.name)
        };
        match self.change {
            Change::Upgraded => head,
            change => format!("{head} ({change})"),
        }
    }
}

/// Every change, grouped as [`Change`] orders them, each group in identity
/// order.
pub fn rows(diff: &BomDiff) -> Vec<Row> {
    let mut rows: Vec<Row> = diff
        .upgraded
        .iter()
        .map(|c| Row::of_change(Change::Upgraded, c))
        .chain(
            diff.downgraded
                .iter()
                .map(|c| Row::of_change(Change::Downgraded, c)),
        )
        .chain(diff.added.iter().map(|p| Row::of_package(Change::Added, p)))
        .chain(
            diff.removed
                .iter()
                .map(|p| Row::of_package(Change::Removed, p)),
        )
        .chain(
            diff.respelled
                .iter()
                .map(|c| Row::of_change(Change::Respelled, c)),
        )
        .collect();
    // A diff from `diff` is already in this order; one read back from JSON
    // may not be.
    rows.sort_by(|a, b| (a.change, a.key()).cmp(&(b.change, b.key())));
    rows
}

/// The rows as aligned plain-text lines (change, kind, package, versions),
/// for an email's table; `no package changes` alone for an empty diff.
pub fn lines(diff: &BomDiff) -> Vec<String> {
    let rows = rows(diff);
    if rows.is_empty() {
        return vec![NO_CHANGES.to_owned()];
    }
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.change.to_string(),
                r.kind.to_string(),
                r.package(),
                r.versions(),
            ]
        })
        .collect();
    let width = |column: usize| {
        cells
            .iter()
            .map(|c| c[column].chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths = [width(0), width(1), width(2)];
    cells
        .iter()
        .map(|[change, kind, package, versions]| {
            let line = format!(
                "{change:<w0$}  {kind:<w1$}  {package:<w2$}  {versions}",
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
            );
            line.trim_end().to_owned()
        })
        .collect()
}

const NO_CHANGES: &str = "no package changes";

/// Why a package's change is named before the others, in the order they
/// are named (`docs/bom.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Concern {
    Kernel,
    OpenSsl,
    OpenSsh,
    Libc,
    DotNet,
    Iis,
    Hotfix,
}

fn concern(kind: Kind, name: &str) -> Option<Concern> {
    let starts = |prefix: &str| name.starts_with(prefix);
    match kind {
        Kind::Dpkg if starts("linux-image") => Some(Concern::Kernel),
        Kind::Dpkg if name == "openssl" || starts("libssl") => Some(Concern::OpenSsl),
        Kind::Dpkg if starts("openssh") => Some(Concern::OpenSsh),
        Kind::Dpkg if starts("libc6") || name == "libc-bin" || starts("glibc") => {
            Some(Concern::Libc)
        }
        Kind::Feature if starts("IIS-") || starts("Web-") => Some(Concern::Iis),
        Kind::Feature if starts("NET-") => Some(Concern::DotNet),
        Kind::Hotfix => Some(Concern::Hotfix),
        _ if starts("dotnet") || name.contains(".NET") => Some(Concern::DotNet),
        _ => None,
    }
}

/// The one-line summary: some changes by name, then the counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// At most the number asked for, security-relevant first.
    pub named: Vec<String>,
    pub upgraded: usize,
    pub downgraded: usize,
    pub added: usize,
    pub removed: usize,
    pub respelled: usize,
}

impl Summary {
    /// Nothing added, removed, upgraded or downgraded.
    pub fn no_changes(&self) -> bool {
        self.upgraded + self.downgraded + self.added + self.removed == 0
    }
}

/// Names at most `max_named` changes: security-relevant packages first
/// (kernel, OpenSSL, OpenSSH, libc, .NET, IIS, KB hotfixes, in that order),
/// then the rest; within each, upgrades, downgrades, additions, removals,
/// each in identity order. Respellings are counted, never named. Changes
/// that read the same (`libc6` for two architectures) are named once.
pub fn summarize(diff: &BomDiff, max_named: usize) -> Summary {
    let mut candidates: Vec<(Option<Concern>, Row)> = rows(diff)
        .into_iter()
        .filter(|r| r.change != Change::Respelled)
        .map(|r| (concern(r.kind, &r.name), r))
        .collect();
    // `None` sorts first in `Option`'s order; the concerned go first here.
    candidates.sort_by(|(a, x), (b, y)| {
        (a.is_none(), a, x.change, x.key()).cmp(&(b.is_none(), b, y.change, y.key()))
    });
    let mut named: Vec<String> = Vec::new();
    for (_, row) in &candidates {
        if named.len() >= max_named {
            break;
        }
        let short = row.short();
        if !named.contains(&short) {
            named.push(short);
        }
    }
    Summary {
        named,
        upgraded: diff.upgraded.len(),
        downgraded: diff.downgraded.len(),
        added: diff.added.len(),
        removed: diff.removed.len(),
        respelled: diff.respelled.len(),
    }
}

impl fmt::Display for Summary {
    /// `openssl 3.0.15-1 → 3.0.16-1, linux-image-amd64 6.12.9 → 6.12.12;
    /// 14 upgraded, 1 added, 0 removed`; downgrades and respellings are
    /// counted only when there are some.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.no_changes() {
            f.write_str(NO_CHANGES)?;
            if self.respelled > 0 {
                write!(f, " ({} respelled)", self.respelled)?;
            }
            return Ok(());
        }
        if !self.named.is_empty() {
            write!(f, "{}; ", self.named.join(", "))?;
        }
        write!(f, "{} upgraded", self.upgraded)?;
        if self.downgraded > 0 {
            write!(f, ", {} downgraded", self.downgraded)?;
        }
        write!(f, ", {} added, {} removed", self.added, self.removed)?;
        if self.respelled > 0 {
            write!(f, ", {} respelled", self.respelled)?;
        }
        Ok(())
    }
}
