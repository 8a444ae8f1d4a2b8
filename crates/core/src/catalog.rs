//! The image catalog: `gild.toml` at the root of the images repository.
//!
//! One file holds every family so a Lambda reads the whole catalog with a
//! single `GetFile` at the pushed commit. Parsing is strict: an unknown key or
//! a bad value is an error that names the file, the line and the problem,
//! because a typo silently ignored would mean an image silently not rebuilt.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use toml::Spanned;

mod graph;

pub use graph::MAX_DEPTH;

/// The catalog's file name at the repository root.
pub const CATALOG_FILE: &str = "gild.toml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    Linux,
    Windows,
}

impl fmt::Display for Os {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Os::Linux => "linux",
            Os::Windows => "windows",
        })
    }
}

/// One image family: a Packer template folder plus the shared roles it
/// applies, baked from a public base image or from its parent's promoted
/// image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Family {
    pub name: String,
    /// The family's own folder (its own tests and files), repository-
    /// relative, normalised without a trailing slash.
    pub path: String,
    /// The Packer template folder: a shared one several families use, or
    /// `path` itself.
    pub template: String,
    pub os: Os,
    pub roles: Vec<String>,
    /// The family whose promoted image this one bakes from.
    pub parent: Option<String>,
    /// Passed to Packer as variables (a var-file, never through a shell).
    pub variables: BTreeMap<String, String>,
}

impl Family {
    /// Whether a repository path lies inside this family's folder.
    pub fn owns_path(&self, path: &str) -> bool {
        under(&self.path, path)
    }

    /// Whether a repository path lies in a template folder this family
    /// shares with others (a template that is its own folder is `path`).
    pub fn shares_template_path(&self, path: &str) -> bool {
        self.template != self.path && under(&self.template, path)
    }
}

/// Variable names the bake sets itself (buildspecs/bake.yml): a family
/// cannot override them (tests/fixtures/family-graphs.json, `reserved`).
pub const RESERVED_VARIABLES: &[&str] = &[
    "family",
    "trigger",
    "source_commit",
    "source_ami",
    "parent_family",
    "kms_key_id",
    "subnet_id",
    "security_group_id",
    "winrm_security_group_id",
    "instance_profile",
    "output_dir",
    "region",
    "family_dir",
    "build_id",
];
/// The longest variable value: a variable names an edition, a feature, a
/// version, never a document.
pub const MAX_VARIABLE_LEN: usize = 1024;

/// An application that relies on some families: its tests run on every
/// new image of them, after the family's own, and a failure blocks the
/// image like the family's own tests do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Consumer {
    pub name: String,
    pub families: Vec<String>,
    /// Repository-relative folder of its tests (`run.sh` or `run.ps1`).
    pub tests: String,
    /// Who to name when its tests fail.
    pub owner: String,
}

impl Consumer {
    /// Whether a repository path lies inside this consumer's tests.
    pub fn owns_path(&self, path: &str) -> bool {
        under(&self.tests, path)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Catalog {
    pub families: BTreeMap<String, Family>,
    pub consumers: BTreeMap<String, Consumer>,
}

impl Catalog {
    pub fn names(&self) -> Vec<&str> {
        self.families.keys().map(String::as_str).collect()
    }

    pub fn get(&self, name: &str) -> Option<&Family> {
        self.families.get(name)
    }

    /// The families baked from `name`'s image, by name.
    pub fn children_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Family> {
        self.families
            .values()
            .filter(move |f| f.parent.as_deref() == Some(name))
    }

    /// `name`'s ancestors, its parent first (the parse refused cycles, so
    /// the walk ends; the bound keeps it finite for a hand-built catalog).
    pub fn ancestors(&self, name: &str) -> Vec<&Family> {
        let mut found = Vec::new();
        let mut at = self.get(name).and_then(|f| f.parent.as_deref());
        while let Some(parent) = at.and_then(|p| self.get(p)) {
            if found.len() >= self.families.len() {
                break;
            }
            found.push(parent);
            at = parent.parent.as_deref();
        }
        found
    }

    /// The consumers whose tests run on `family`'s images, by name.
    pub fn consumers_of<'a>(&'a self, family: &'a str) -> impl Iterator<Item = &'a Consumer> {
        self.consumers
            .values()
            .filter(move |c| c.families.iter().any(|f| f == family))
    }
}

fn under(folder: &str, path: &str) -> bool {
    path == folder
        || path
            .strip_prefix(folder)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// A catalog that cannot be used. Display reads `gild.toml:3:5: problem`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {problem}")]
pub struct CatalogError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub problem: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    families: Option<BTreeMap<Spanned<String>, Spanned<RawFamily>>>,
    #[serde(default)]
    consumers: BTreeMap<Spanned<String>, Spanned<RawConsumer>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsumer {
    families: Spanned<Vec<Spanned<String>>>,
    tests: Spanned<String>,
    owner: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFamily {
    path: Spanned<String>,
    #[serde(default)]
    template: Option<Spanned<String>>,
    os: Spanned<Os>,
    #[serde(default)]
    roles: Vec<Spanned<String>>,
    #[serde(default)]
    parent: Option<Spanned<String>>,
    #[serde(default)]
    variables: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
}

/// Parses and validates a catalog. `file` is only used in error messages.
pub fn parse(file: &str, text: &str) -> Result<Catalog, CatalogError> {
    let at = |span: std::ops::Range<usize>, problem: String| {
        let (line, column) = line_col(text, span.start);
        CatalogError {
            file: file.to_owned(),
            line,
            column,
            problem,
        }
    };
    let raw: RawCatalog = toml::from_str(text).map_err(|e| {
        let problem = e.message().trim().replace('\n', " ");
        at(e.span().unwrap_or(0..0), problem)
    })?;
    let Some(raw_families) = raw.families else {
        return Err(at(
            0..0,
            "no [families.<name>] table: declare at least one image family".into(),
        ));
    };
    let mut families = BTreeMap::new();
    let mut parents = BTreeMap::new();
    for (name, family) in raw_families {
        let name_span = name.span();
        let name = name.into_inner();
        if !valid_name(&name) {
            return Err(at(
                name_span,
                format!("family name `{name}` must be 1-64 characters of a-z, 0-9 and `-`, starting with a letter or digit"),
            ));
        }
        let family = family.into_inner();
        let path = normalise_path(family.path.get_ref())
            .ok_or_else(|| at(family.path.span(), format!("family `{name}`: path `{}` must be a relative folder inside the repository: segments of A-Z, a-z, 0-9, `.`, `_` and `-`, no `..`, no leading `/`", family.path.get_ref())))?;
        let mut roles = Vec::with_capacity(family.roles.len());
        for role in family.roles {
            if !valid_role(role.get_ref()) {
                return Err(at(
                    role.span(),
                    format!(
                        "family `{name}`: role `{}` is not a role folder name under ansible/roles/",
                        role.get_ref()
                    ),
                ));
            }
            if roles.contains(role.get_ref()) {
                return Err(at(
                    role.span(),
                    format!("family `{name}`: role `{}` is listed twice", role.get_ref()),
                ));
            }
            roles.push(role.into_inner());
        }
        let template = match &family.template {
            None => path.clone(),
            Some(template) => normalise_path(template.get_ref()).ok_or_else(|| {
                at(template.span(), format!("family `{name}`: template `{}` must be a relative folder inside the repository: segments of A-Z, a-z, 0-9, `.`, `_` and `-`, no `..`, no leading `/`", template.get_ref()))
            })?,
        };
        if let Some(parent) = &family.parent {
            if parent.get_ref().is_empty() {
                return Err(at(
                    parent.span(),
                    format!("family `{name}`: parent is empty: name a family, or leave parent out"),
                ));
            }
            parents.insert(
                name.clone(),
                graph::ParentRef {
                    name: parent.get_ref().clone(),
                    span: parent.span(),
                },
            );
        }
        let mut variables = BTreeMap::new();
        for (key, value) in family.variables {
            let problem = variable_problem(key.get_ref(), value.get_ref());
            if let Some(problem) = problem {
                return Err(at(
                    key.span(),
                    format!(
                        "family `{name}`: variable `{}` {problem}",
                        key.get_ref().escape_debug()
                    ),
                ));
            }
            if let toml::Value::String(text) = value.into_inner() {
                variables.insert(key.into_inner(), text);
            }
        }
        families.insert(
            name.clone(),
            Family {
                name,
                path,
                template,
                os: *family.os.get_ref(),
                roles,
                parent: family.parent.map(Spanned::into_inner),
                variables,
            },
        );
    }
    graph::check(&families, &parents).map_err(|(span, problem)| at(span, problem))?;
    let mut consumers = BTreeMap::new();
    for (name, consumer) in raw.consumers {
        let name_span = name.span();
        let name = name.into_inner();
        if !valid_name(&name) {
            return Err(at(
                name_span,
                format!("consumer name `{name}` must be 1-64 characters of a-z, 0-9 and `-`, starting with a letter or digit"),
            ));
        }
        let consumer = consumer.into_inner();
        let list_span = consumer.families.span();
        let mut uses: Vec<String> = Vec::new();
        for family in consumer.families.into_inner() {
            if !families.contains_key(family.get_ref()) {
                return Err(at(
                    family.span(),
                    format!(
                        "consumer `{name}`: family `{}` is not declared under [families]",
                        family.get_ref()
                    ),
                ));
            }
            if uses.contains(family.get_ref()) {
                return Err(at(
                    family.span(),
                    format!(
                        "consumer `{name}`: family `{}` is listed twice",
                        family.get_ref()
                    ),
                ));
            }
            uses.push(family.into_inner());
        }
        if uses.is_empty() {
            return Err(at(
                list_span,
                format!(
                    "consumer `{name}`: `families` names no family, so its tests would never run"
                ),
            ));
        }
        let tests = normalise_path(consumer.tests.get_ref()).ok_or_else(|| {
            at(
                consumer.tests.span(),
                format!("consumer `{name}`: tests `{}` must be a relative folder inside the repository: segments of A-Z, a-z, 0-9, `.`, `_` and `-`, no `..`, no leading `/`", consumer.tests.get_ref()),
            )
        })?;
        if let Some(family) = families
            .values()
            .find(|f| under(&f.path, &tests) || under(&tests, &f.path))
        {
            return Err(at(
                consumer.tests.span(),
                format!("consumer `{name}`: tests `{tests}` overlap family `{}`'s folder `{}`: a consumer's tests live in their own folder", family.name, family.path),
            ));
        }
        if !valid_owner(consumer.owner.get_ref()) {
            return Err(at(
                consumer.owner.span(),
                format!("consumer `{name}`: owner `{}` must be 1-100 characters of A-Z, a-z, 0-9, space, `.`, `_`, `@`, `/` and `-`", consumer.owner.get_ref().escape_debug()),
            ));
        }
        consumers.insert(
            name.clone(),
            Consumer {
                name,
                families: uses,
                tests,
                owner: consumer.owner.into_inner(),
            },
        );
    }
    Ok(Catalog {
        families,
        consumers,
    })
}

/// What is wrong with a family variable, if anything: Packer's variable
/// names, none the bake sets itself, a one-line string of bounded length.
fn variable_problem(key: &str, value: &toml::Value) -> Option<String> {
    let bytes = key.as_bytes();
    let name_ok = !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
    if !name_ok {
        return Some(
            "is not a variable name: 1-64 of a-z, 0-9 and `_`, starting with a letter".into(),
        );
    }
    if RESERVED_VARIABLES.contains(&key) {
        return Some("is reserved: the bake sets it itself".into());
    }
    let toml::Value::String(text) = value else {
        return Some(format!("must be a string (it is a {})", value.type_str()));
    };
    if text.chars().count() > MAX_VARIABLE_LEN {
        return Some(format!("is longer than {MAX_VARIABLE_LEN} characters"));
    }
    if text.chars().any(char::is_control) {
        return Some("holds a control character (a newline, say): one line only".into());
    }
    None
}

/// A team or person to name: it reaches emails, Slack and pull-request
/// comments, so it is kept to plain characters (buildspecs/bootstrap/
/// family.py applies the same rule).
fn valid_owner(owner: &str) -> bool {
    !owner.trim().is_empty()
        && owner.len() <= 100
        && owner.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b' ' | b'.' | b'_' | b'@' | b'/' | b'-')
        })
}

/// The one family-name rule: 1-64 of a-z, 0-9 and `-`, starting with a
/// letter or digit. The name becomes part of AMI names, SSM parameter
/// names, tag values and CodeBuild variables, and bake.yml/test.yml refuse
/// anything else, so the catalog refuses it first (tests/fixtures/
/// family-names.json holds the cases both sides are tested against).
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// A role folder under ansible/roles/: the family-name characters plus `_`,
/// which Ansible's own role names use.
fn valid_role(role: &str) -> bool {
    valid_name(&role.replace('_', "-"))
}

/// A relative folder of segments made of A-Z, a-z, 0-9, `.`, `_` and `-`
/// (not `.` or `..`), normalised without its trailing `/`. The path reaches
/// the buildspecs' shell as data; a narrow character set keeps `$(...)`,
/// quotes, spaces and newlines out even if some script were to evaluate it.
pub fn normalise_path(path: &str) -> Option<String> {
    let trimmed = path.trim_end_matches('/');
    let ok = !trimmed.is_empty()
        && !trimmed.starts_with('/')
        && trimmed.split('/').all(|part| {
            !part.is_empty()
                && part != ".."
                && part != "."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    ok.then(|| trimmed.to_owned())
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests;
