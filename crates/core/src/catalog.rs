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

/// One image family: a Packer template folder plus the shared roles it applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Family {
    pub name: String,
    /// Repository-relative folder, normalised without a trailing slash.
    pub path: String,
    pub os: Os,
    pub roles: Vec<String>,
}

impl Family {
    /// Whether a repository path lies inside this family's folder.
    pub fn owns_path(&self, path: &str) -> bool {
        under(&self.path, path)
    }
}

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
    os: Spanned<Os>,
    #[serde(default)]
    roles: Vec<Spanned<String>>,
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
        families.insert(
            name.clone(),
            Family {
                name,
                path,
                os: *family.os.get_ref(),
                roles,
            },
        );
    }
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
mod tests {
    use super::*;

    const GOOD: &str = r#"
[families.debian12-base]
path = "images/debian12-base/"
os = "linux"
roles = ["baseline", "cw-agent"]

[families.win2022-core]
path = "images/win2022-core"
os = "windows"
"#;

    #[test]
    fn parses_families_and_normalises_paths() {
        let catalog = parse(CATALOG_FILE, GOOD).expect("valid catalog");
        assert_eq!(catalog.names(), vec!["debian12-base", "win2022-core"]);
        let debian = catalog.get("debian12-base").expect("family present");
        assert_eq!(debian.path, "images/debian12-base");
        assert_eq!(debian.roles, vec!["baseline", "cw-agent"]);
        assert_eq!(catalog.get("win2022-core").map(|f| f.os), Some(Os::Windows));
        assert!(catalog
            .get("win2022-core")
            .is_some_and(|f| f.roles.is_empty()));
    }

    fn with_consumer(entry: &str) -> String {
        format!("{GOOD}\n[consumers.payments-api]\n{entry}")
    }

    #[test]
    fn consumers_name_their_families_tests_and_owner() {
        let text = with_consumer(
            "families = [\"win2022-core\"]\ntests = \"consumers/payments-api/\"\nowner = \"team-payments\"\n",
        );
        let catalog = parse(CATALOG_FILE, &text).expect("valid catalog");
        let users: Vec<&str> = catalog
            .consumers_of("win2022-core")
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(users, vec!["payments-api"]);
        assert_eq!(catalog.consumers_of("debian12-base").count(), 0);
        let consumer = &catalog.consumers["payments-api"];
        assert_eq!(consumer.tests, "consumers/payments-api");
        assert!(consumer.owns_path("consumers/payments-api/run.ps1"));
        assert!(!consumer.owns_path("consumers/payments-api2/run.ps1"));
    }

    #[test]
    fn a_bad_consumer_is_refused_at_its_line() {
        let cases = [
            ("families = [\"nope\"]\ntests = \"consumers/p\"\nowner = \"t\"\n", "`nope` is not declared"),
            ("families = []\ntests = \"consumers/p\"\nowner = \"t\"\n", "names no family"),
            ("families = [\"win2022-core\", \"win2022-core\"]\ntests = \"consumers/p\"\nowner = \"t\"\n", "listed twice"),
            ("families = [\"win2022-core\"]\ntests = \"consumers/$(touch /tmp/p)\"\nowner = \"t\"\n", "relative folder"),
            ("families = [\"win2022-core\"]\ntests = \"images/win2022-core/tests\"\nowner = \"t\"\n", "overlap"),
            ("families = [\"win2022-core\"]\ntests = \"consumers/p\"\nowner = \"<b>x</b>\"\n", "owner"),
            ("families = [\"win2022-core\"]\ntests = \"consumers/p\"\n", "owner"),
            ("families = [\"win2022-core\"]\ntests = \"consumers/p\"\nowner = \"   \"\n", "owner"),
            ("families = [\"win2022-core\"]\ntests = \"consumers/p\"\nowner = \"t\"\nteam = \"x\"\n", "team"),
        ];
        for (entry, why) in cases {
            let text = with_consumer(entry);
            let err = parse(CATALOG_FILE, &text).expect_err(entry);
            assert!(err.problem.contains(why), "{entry}: {err}");
            assert!(err.line >= 11, "{entry}: {err} names a line of the entry");
        }
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = "[families.a]\npath = \"images/a\"\nos = \"linux\"\nparent = \"b\"\n";
        let err = parse("gild.toml", text).expect_err("unknown key");
        assert_eq!(err.line, 4, "{err}");
        assert!(err.problem.contains("parent"), "{err}");
        assert!(err.to_string().starts_with("gild.toml:4:"), "{err}");
    }

    #[test]
    fn bad_os_names_line() {
        let text = "[families.a]\npath = \"images/a\"\nos = \"plan9\"\n";
        let err = parse("gild.toml", text).expect_err("bad os");
        assert_eq!(err.line, 3, "{err}");
        assert!(err.problem.contains("plan9"), "{err}");
    }

    #[test]
    fn missing_path_is_an_error() {
        let err = parse("gild.toml", "[families.a]\nos = \"linux\"\n").expect_err("no path");
        assert!(err.problem.contains("path"), "{err}");
    }

    #[test]
    fn escaping_path_is_refused() {
        let text = "[families.a]\npath = \"../etc\"\nos = \"linux\"\n";
        let err = parse("gild.toml", text).expect_err("escaping path");
        assert_eq!(err.line, 2);
        assert!(err.problem.contains("relative"), "{err}");
    }

    #[test]
    fn bad_family_name_and_duplicate_role() {
        let err = parse(
            "g",
            "[families.\"Bad Name\"]\npath = \"a\"\nos = \"linux\"\n",
        )
        .expect_err("bad name");
        assert_eq!(err.line, 1);
        let err = parse(
            "g",
            "[families.a]\npath = \"a\"\nos = \"linux\"\nroles = [\"x\", \"x\"]\n",
        )
        .expect_err("dup role");
        assert_eq!(err.line, 4);
        assert!(err.problem.contains("twice"));
    }

    #[test]
    fn underscore_in_a_family_name_is_refused_as_the_buildspecs_do() {
        let err = parse("g", "[families.web_base]\npath = \"a\"\nos = \"linux\"\n")
            .expect_err("`_` is not in the family-name rule");
        assert_eq!(err.line, 1);
        assert!(err.problem.contains("a-z, 0-9 and `-`"), "{err}");
    }

    #[test]
    fn shell_in_a_path_is_refused() {
        for path in [
            "images/x$(touch /tmp/p)",
            "images/x`id`",
            "images/a b",
            "images/x\\nid",
            "images/x'y",
            "images/x\\\"y",
            "images/x;id",
        ] {
            let text = format!("[families.a]\npath = \"{path}\"\nos = \"linux\"\n");
            let err = parse("g", &text).expect_err(path);
            assert_eq!(err.line, 2, "{path}: {err}");
        }
        assert!(parse(
            "g",
            "[families.a]\npath = \"images/A_b-1.x\"\nos = \"linux\"\n"
        )
        .is_ok());
    }

    #[test]
    fn syntax_error_names_line() {
        let err =
            parse("gild.toml", "[families.a]\npath = \"a\nos = \"linux\"\n").expect_err("syntax");
        assert_eq!(err.line, 2, "{err}");
    }

    #[test]
    fn empty_catalog_is_refused_and_unknown_top_level_key_too() {
        assert!(parse("g", "").is_err());
        let err = parse(
            "g",
            "version = 2\n[families.a]\npath = \"a\"\nos = \"linux\"\n",
        )
        .expect_err("top-level key");
        assert_eq!(err.line, 1);
    }

    #[test]
    fn owns_path_is_folder_aware() {
        let catalog = parse("g", GOOD).expect("valid");
        let debian = catalog.get("debian12-base").expect("present");
        assert!(debian.owns_path("images/debian12-base/template.pkr.hcl"));
        assert!(debian.owns_path("images/debian12-base"));
        assert!(!debian.owns_path("images/debian12-base-extra/x"));
        assert!(!debian.owns_path("images/debian12"));
    }
}
