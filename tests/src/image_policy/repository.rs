//! The repository around the templates: the catalog (`gild.toml`) and what
//! each family needs from the other parts (its template folder, roles,
//! playbook and test script), plugin pins agreeing across families, the
//! bake's tool pins, and no credential anywhere under images/, ansible/ or
//! buildspecs/. [`check_repository`] runs every rule over a checkout.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use gild_core::catalog::{self, Catalog, Os};

use super::{body, check_templates, credentials, plugins, rule, Finding, Template};
use crate::HarnessError;

/// The bake's buildspec, which installs Packer and Ansible.
const BAKE: &str = "buildspecs/bake.yml";
/// The Ansible the playbooks are linted with.
const TOOLS_REQUIREMENTS: &str = "tools/requirements-ansible.txt";
/// Folders that must hold no credential.
const SCANNED: [&str; 3] = ["images", "ansible", "buildspecs"];

/// Every rule over the checkout at `root`: each catalog family's templates
/// ([`check_family`]) and the repository rules. An unreadable or invalid
/// catalog, an unreadable template or a missing bake buildspec is an error.
pub fn check_repository(root: &Path) -> Result<Vec<Finding>, HarnessError> {
    let catalog = load_catalog(root)?;
    let mut findings = templates_in_families(root, &catalog)?;
    let mut pins: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for family in catalog.families.values() {
        findings.extend(check_family(root, family)?);
        let templates = read_templates(root, &root.join(&family.template))?;
        let parsed = body::Family::parse(family, &templates, &mut Vec::new());
        for (plugin, version) in plugins::pins(&parsed) {
            pins.entry(plugin)
                .or_default()
                .entry(version)
                .or_default()
                .push(family.name.clone());
        }
        family_parts(root, family, &mut findings);
    }
    for (plugin, versions) in pins.iter().filter(|(_, versions)| versions.len() > 1) {
        findings.push(Finding::new(
            catalog::CATALOG_FILE,
            rule::PLUGIN_PINS_AGREE,
            format!("plugin `{plugin}` is pinned differently: {versions:?}"),
        ));
    }
    findings.extend(bake_pins(root)?);
    for dir in SCANNED {
        for path in files_under(&root.join(dir), "") {
            // Binary files cannot hold a pasted credential we could read.
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            findings.extend(credentials::scan(&relative(root, &path), &text));
        }
    }
    Ok(findings)
}

/// One family's templates, read from its template folder (shared, or its
/// own) under `root`, held to the template rules; [`rule::FAMILY_TEMPLATES`]
/// when it has none.
pub fn check_family(root: &Path, family: &catalog::Family) -> Result<Vec<Finding>, HarnessError> {
    let folder = root.join(&family.template);
    let missing = |what: &str| {
        Ok(vec![Finding::new(
            &family.template,
            rule::FAMILY_TEMPLATES,
            format!("family `{}`: {what}", family.name),
        )])
    };
    if !folder.is_dir() {
        return missing("its folder is missing");
    }
    let templates = read_templates(root, &folder)?;
    if templates.is_empty() {
        return missing("its folder holds no *.pkr.hcl");
    }
    Ok(check_templates(family, &templates))
}

/// Every `*.pkr.hcl` under `folder` (recursively, sorted), named relative
/// to `root`.
pub fn read_templates(root: &Path, folder: &Path) -> Result<Vec<Template>, HarnessError> {
    files_under(folder, ".pkr.hcl")
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path)
                .map_err(|e| HarnessError::io(format!("cannot read {}", path.display()), e))?;
            Ok(Template {
                file: relative(root, &path),
                text,
            })
        })
        .collect()
}

fn load_catalog(root: &Path) -> Result<Catalog, HarnessError> {
    let path = root.join(catalog::CATALOG_FILE);
    let text = fs::read_to_string(&path)
        .map_err(|e| HarnessError::io(format!("cannot read {}", path.display()), e))?;
    catalog::parse(catalog::CATALOG_FILE, &text).map_err(|e| HarnessError::InvalidInput {
        message: e.to_string(),
    })
}

/// [`rule::TEMPLATE_IN_FAMILY`]: every `images/**/*.pkr.hcl` is in a family
/// (else it would never be built). A family's own templates are parsed by
/// [`check_family`]; the others are parsed here, so every template is.
fn templates_in_families(root: &Path, catalog: &Catalog) -> Result<Vec<Finding>, HarnessError> {
    let mut findings = Vec::new();
    let templates = read_templates(root, &root.join("images"))?;
    if templates.is_empty() {
        findings.push(Finding::new(
            "images",
            rule::FAMILY_TEMPLATES,
            "no images/**/*.pkr.hcl at all",
        ));
    }
    for template in templates {
        let name = &template.file;
        let owned = catalog
            .families
            .values()
            .any(|f| f.owns_path(name) || f.shares_template_path(name));
        if owned {
            continue;
        }
        if let Err(err) = hcl::parse(&template.text) {
            findings.push(Finding::new(
                name,
                rule::HCL_SYNTAX,
                format!("not valid HCL: {err}"),
            ));
        }
        findings.push(Finding::new(
            name,
            rule::TEMPLATE_IN_FAMILY,
            format!(
                "in no family of {}, so it would never be built",
                catalog::CATALOG_FILE
            ),
        ));
    }
    Ok(findings)
}

/// What a family needs besides its templates: [`rule::FAMILY_ROLES`],
/// [`rule::FAMILY_PLAYBOOK`] and [`rule::FAMILY_TEST_SCRIPT`].
fn family_parts(root: &Path, family: &catalog::Family, out: &mut Vec<Finding>) {
    let name = &family.name;
    let mut found = |file: &str, rule: &'static str, message: String| {
        out.push(Finding::new(file, rule, message));
    };
    for role in &family.roles {
        let tasks = format!("ansible/roles/{role}/tasks/main.yml");
        if !root.join(&tasks).is_file() {
            found(
                catalog::CATALOG_FILE,
                rule::FAMILY_ROLES,
                format!("family `{name}`: role `{role}` has no {tasks}"),
            );
        }
    }
    let playbook = format!("ansible/playbooks/{name}.yml");
    if !root.join(&playbook).is_file() {
        found(
            catalog::CATALOG_FILE,
            rule::FAMILY_PLAYBOOK,
            format!("family `{name}`: {playbook} is missing"),
        );
    }
    let (wanted, other) = match family.os {
        Os::Linux => ("run.sh", "run.ps1"),
        Os::Windows => ("run.ps1", "run.sh"),
    };
    // The family's test script: its own, or its shared template's (which
    // then runs the family's own checks too; test.yml picks it).
    let own = format!("{}/tests", family.path);
    let shared = format!("{}/tests", family.template);
    let tests = if root.join(&own).join(wanted).is_file() {
        own
    } else {
        shared
    };
    if !root.join(&tests).join(wanted).is_file() {
        found(
            catalog::CATALOG_FILE,
            rule::FAMILY_TEST_SCRIPT,
            format!(
                "family `{name}` ({}): {tests}/{wanted} is missing",
                family.os
            ),
        );
    }
    if root.join(&tests).join(other).is_file() {
        found(
            &format!("{tests}/{other}"),
            rule::FAMILY_TEST_SCRIPT,
            format!(
                "family `{name}` ({}): {tests}/{other} would never run (test.yml picks the script by os)",
                family.os
            ),
        );
    }
}

/// [`rule::BAKE_PINS`]: the bake installs the Ansible the playbooks are
/// linted with; without the tools pin, the bake's own pins must be there.
fn bake_pins(root: &Path) -> Result<Vec<Finding>, HarnessError> {
    let path = root.join(BAKE);
    let bake = fs::read_to_string(&path)
        .map_err(|e| HarnessError::io(format!("cannot read {}", path.display()), e))?;
    let pinned_in_bake = |name: &str| {
        bake.lines().find_map(|line| {
            line.trim()
                .strip_prefix(&format!("{name}:"))
                .map(|value| value.trim().trim_matches('"').to_owned())
        })
    };
    let mut findings = Vec::new();
    let Ok(text) = fs::read_to_string(root.join(TOOLS_REQUIREMENTS)) else {
        // Without the tools pin there is nothing to agree with; the bake's
        // own pins must still be exact.
        for name in [
            "ANSIBLE_VERSION",
            "ANSIBLE_CORE_VERSION",
            "PYWINRM_VERSION",
            "PACKER_VERSION",
        ] {
            if pinned_in_bake(name).is_none_or(|v| v.is_empty()) {
                findings.push(Finding::new(
                    BAKE,
                    rule::BAKE_PINS,
                    format!("{BAKE} does not pin {name}"),
                ));
            }
        }
        return Ok(findings);
    };
    for (package, variable) in [
        ("ansible", "ANSIBLE_VERSION"),
        ("pywinrm", "PYWINRM_VERSION"),
    ] {
        let tools = text.lines().find_map(|line| {
            line.split('#')
                .next()
                .and_then(|l| l.trim().strip_prefix(&format!("{package}==")))
                .map(|v| v.trim().to_owned())
        });
        let bake = pinned_in_bake(variable);
        if tools.is_some() && tools != bake {
            findings.push(Finding::new(
                BAKE,
                rule::BAKE_PINS,
                format!(
                    "{TOOLS_REQUIREMENTS} pins {package}=={tools:?}, {BAKE} {variable}={bake:?}"
                ),
            ));
        }
    }
    Ok(findings)
}

/// Files under `dir` (recursively, sorted) whose name ends with `suffix`;
/// an unreadable folder holds none.
fn files_under(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(suffix))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests;
