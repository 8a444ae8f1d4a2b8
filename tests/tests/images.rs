//! Static checks of the images as code: the Packer templates, the catalog
//! they belong to, and what they reference.
//!
//! Packer itself cannot run here (its releases are not reachable offline),
//! so every `images/**/*.pkr.hcl` is parsed with hcl-rs and held to gild's
//! invariants: encrypted with the stack's key, IMDSv2 only, private, no
//! public address, reached through Session Manager (Linux) or WinRM over
//! HTTPS (Windows), both plugins pinned exactly, provenance tags on the AMI
//! and its snapshots at creation, a manifest for the buildspec to read. No
//! file under images/, ansible/ or buildspecs/ may hold a credential.
//!
//! Each invariant is a check in [`check_family`]; `broken_templates_are_rejected`
//! feeds broken copies of the real templates to the same function and
//! expects each to be caught, so no check can silently pass everything.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use gild_core::catalog::{self, Catalog, Os};
use gild_tests::workspace_root;
use hcl::expr::{Expression, ObjectKey, TraversalOperator};
use hcl::{Block, Body, Structure};

// ---------------------------------------------------------------------------
// Reading HCL
// ---------------------------------------------------------------------------

/// One family's templates: every `*.pkr.hcl` of its folder, as Packer loads
/// them (one configuration from all the files of a folder).
struct Family<'a> {
    name: &'a str,
    os: Os,
    bodies: Vec<Body>,
    locals: BTreeMap<String, Expression>,
}

impl<'a> Family<'a> {
    /// Parses the files; a file that does not parse is a violation.
    fn parse(name: &'a str, os: Os, files: &[(String, String)], out: &mut Vec<String>) -> Self {
        let mut bodies = Vec::new();
        for (file, text) in files {
            match hcl::parse(text) {
                Ok(body) => bodies.push(body),
                Err(err) => out.push(format!("{file}: not valid HCL: {err}")),
            }
        }
        let mut locals = BTreeMap::new();
        for body in &bodies {
            for block in blocks(body, "locals") {
                for attribute in block.body().attributes() {
                    locals.insert(attribute.key().to_owned(), attribute.expr().clone());
                }
            }
        }
        Family {
            name,
            os,
            bodies,
            locals,
        }
    }

    /// Top-level blocks named `ident` across all files.
    fn blocks(&self, ident: &'a str) -> impl Iterator<Item = &Block> + '_ {
        self.bodies.iter().flat_map(move |body| blocks(body, ident))
    }

    /// Follows `local.<name>` references (a few levels deep).
    fn resolve<'e>(&'e self, mut expr: &'e Expression) -> &'e Expression {
        for _ in 0..8 {
            expr = match expr {
                Expression::Parenthesis(inner) => inner,
                Expression::Traversal(traversal) => {
                    let target = match (&traversal.expr, traversal.operators.as_slice()) {
                        (Expression::Variable(root), [TraversalOperator::GetAttr(name)])
                            if root.as_str() == "local" =>
                        {
                            self.locals.get(name.as_str())
                        }
                        _ => None,
                    };
                    match target {
                        Some(target) => target,
                        None => return expr,
                    }
                }
                _ => return expr,
            };
        }
        expr
    }

    /// The value as text: a literal, or the raw source of a template.
    fn text(&self, expr: &Expression) -> Option<String> {
        match self.resolve(expr) {
            Expression::String(s) => Some(s.clone()),
            Expression::TemplateExpr(template) => Some(template.to_string()),
            _ => None,
        }
    }

    fn boolean(&self, expr: &Expression) -> Option<bool> {
        match self.resolve(expr) {
            Expression::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// An object's entries by key, through `local.*` references and
    /// `merge(...)` calls.
    fn entries(&self, expr: &Expression) -> Option<BTreeMap<String, Expression>> {
        match self.resolve(expr) {
            Expression::Object(object) => {
                let mut entries = BTreeMap::new();
                for (key, value) in object.iter() {
                    let key = match key {
                        ObjectKey::Identifier(ident) => ident.as_str().to_owned(),
                        ObjectKey::Expression(key) => self.text(key)?,
                        _ => return None,
                    };
                    entries.insert(key, value.clone());
                }
                Some(entries)
            }
            Expression::FuncCall(call) if call.name.name.as_str() == "merge" => {
                let mut entries = BTreeMap::new();
                for arg in &call.args {
                    entries.extend(self.entries(arg)?);
                }
                Some(entries)
            }
            _ => None,
        }
    }

    /// Whether the value is something other than an empty or null literal.
    fn is_set(&self, expr: &Expression) -> bool {
        match self.resolve(expr) {
            Expression::Null => false,
            Expression::String(s) => !s.trim().is_empty(),
            _ => true,
        }
    }
}

fn blocks<'b>(body: &'b Body, ident: &'b str) -> impl Iterator<Item = &'b Block> + 'b {
    body.blocks()
        .filter(move |block| block.identifier() == ident)
}

fn attr<'b>(body: &'b Body, key: &str) -> Option<&'b Expression> {
    body.attributes()
        .find(|attribute| attribute.key() == key)
        .map(|attribute| attribute.expr())
}

fn label(block: &Block, index: usize) -> &str {
    block.labels().get(index).map_or("", |label| label.as_str())
}

/// Every attribute in a body, in nested blocks too.
fn all_attributes<'b>(body: &'b Body, out: &mut Vec<(&'b str, &'b Expression)>) {
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attribute) => out.push((attribute.key(), attribute.expr())),
            Structure::Block(block) => all_attributes(block.body(), out),
        }
    }
}

// ---------------------------------------------------------------------------
// The invariants
// ---------------------------------------------------------------------------

/// Tags gild's Lambdas rely on, on the AMI and its snapshots at creation.
const REQUIRED_TAGS: [&str; 5] = [
    "gild:managed",
    "gild:family",
    "gild:build-id",
    "gild:source-commit",
    "gild:base-ami",
];

/// Attributes that would share the image or its snapshots.
const SHARING: [&str; 6] = [
    "ami_groups",
    "ami_users",
    "ami_org_arns",
    "ami_ou_arns",
    "snapshot_groups",
    "snapshot_users",
];

const PLUGINS: [(&str, &str); 2] = [
    ("amazon", "github.com/hashicorp/amazon"),
    ("ansible", "github.com/hashicorp/ansible"),
];

/// `= x.y.z`: an exact pin (not `>=`, `~>` or a range).
fn is_exact_pin(version: &str) -> bool {
    let Some(rest) = version.trim().strip_prefix('=') else {
        return false;
    };
    let parts: Vec<&str> = rest.trim().split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()))
}

/// Checks one family's templates; returns what is wrong (empty: nothing).
/// `files` are (file name, text) pairs, all `*.pkr.hcl` of the family folder.
fn check_family(name: &str, os: Os, files: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    let family = Family::parse(name, os, files, &mut problems);
    check_plugins(&family, &mut problems);
    check_sources(&family, &mut problems);
    check_builds(&family, &mut problems);
    check_everywhere(&family, &mut problems);
    problems
        .into_iter()
        .map(|problem| format!("{name}: {problem}"))
        .collect()
}

/// Plugin versions pinned by a family, by plugin name.
fn plugin_pins(family: &Family<'_>) -> BTreeMap<String, String> {
    let mut pins = BTreeMap::new();
    for packer in family.blocks("packer") {
        for required in blocks(packer.body(), "required_plugins") {
            for attribute in required.body().attributes() {
                let version = family
                    .entries(attribute.expr())
                    .and_then(|entries| entries.get("version").and_then(|v| family.text(v)));
                if let Some(version) = version {
                    pins.insert(attribute.key().to_owned(), version);
                }
            }
        }
    }
    pins
}

fn check_plugins(family: &Family<'_>, problems: &mut Vec<String>) {
    let mut declared = BTreeMap::new();
    for packer in family.blocks("packer") {
        for required in blocks(packer.body(), "required_plugins") {
            for attribute in required.body().attributes() {
                declared.insert(attribute.key().to_owned(), attribute.expr().clone());
            }
        }
    }
    for (plugin, source) in PLUGINS {
        let Some(spec) = declared.get(plugin).and_then(|expr| family.entries(expr)) else {
            problems.push(format!(
                "packer.required_plugins has no `{plugin}` entry (source {source})"
            ));
            continue;
        };
        let text = |key: &str| spec.get(key).and_then(|v| family.text(v));
        if text("source").as_deref() != Some(source) {
            problems.push(format!(
                "plugin `{plugin}` must come from {source}, not {:?}",
                text("source")
            ));
        }
        match text("version") {
            Some(version) if is_exact_pin(&version) => {}
            other => problems.push(format!(
                "plugin `{plugin}` must be pinned exactly (`= x.y.z`), not {other:?}"
            )),
        }
    }
}

fn check_tag_map(
    family: &Family<'_>,
    source: &str,
    body: &Body,
    key: &str,
    problems: &mut Vec<String>,
) {
    let Some(entries) = attr(body, key).and_then(|expr| family.entries(expr)) else {
        problems.push(format!(
            "source {source}: `{key}` must be a map of tags (with {})",
            REQUIRED_TAGS.join(", ")
        ));
        return;
    };
    for tag in REQUIRED_TAGS {
        match entries.get(tag) {
            Some(value) if family.is_set(value) => {}
            _ => problems.push(format!("source {source}: `{key}` lacks the `{tag}` tag")),
        }
    }
    let value = |tag: &str| entries.get(tag).and_then(|v| family.text(v));
    if let Some(managed) = value("gild:managed") {
        if managed != "true" {
            problems.push(format!(
                "source {source}: `{key}` sets gild:managed to {managed:?}, not \"true\""
            ));
        }
    }
    if let Some(tagged) = value("gild:family") {
        if tagged != family.name {
            problems.push(format!(
                "source {source}: `{key}` tags gild:family {tagged:?}, but the family is {:?}",
                family.name
            ));
        }
    }
    if let Some(base) = value("gild:base-ami") {
        if !base.contains("SourceAMI") {
            problems.push(format!(
                "source {source}: `{key}` must tag gild:base-ami with the source AMI ({{{{ .SourceAMI }}}}), not {base:?}"
            ));
        }
    }
}

fn check_sources(family: &Family<'_>, problems: &mut Vec<String>) {
    let mut count = 0;
    for block in family.blocks("source") {
        let kind = label(block, 0);
        let source = format!("{kind}.{}", label(block, 1));
        if kind != "amazon-ebs" {
            problems.push(format!(
                "source {source}: gild builds with amazon-ebs sources only"
            ));
            continue;
        }
        count += 1;
        let body = block.body();
        let get = |key: &str| attr(body, key);
        let text = |key: &str| get(key).and_then(|v| family.text(v));
        let boolean = |key: &str| get(key).and_then(|v| family.boolean(v));
        let set = |key: &str| get(key).is_some_and(|v| family.is_set(v));

        // Encrypted with the stack's key.
        if boolean("encrypt_boot") != Some(true) {
            problems.push(format!(
                "source {source}: `encrypt_boot = true` is required"
            ));
        }
        if !set("kms_key_id") {
            problems.push(format!(
                "source {source}: `kms_key_id` is required (the stack's key)"
            ));
        }
        let mappings: Vec<&Block> = blocks(body, "launch_block_device_mappings").collect();
        if mappings.is_empty() {
            problems.push(format!(
                "source {source}: `launch_block_device_mappings` must encrypt the builder's volume"
            ));
        }
        for mapping in mappings {
            let encrypted =
                attr(mapping.body(), "encrypted").and_then(|v| family.boolean(v)) == Some(true);
            let keyed = attr(mapping.body(), "kms_key_id").is_some_and(|v| family.is_set(v));
            if !encrypted || !keyed {
                problems.push(format!(
                    "source {source}: every `launch_block_device_mappings` needs `encrypted = true` and a `kms_key_id`"
                ));
            }
        }

        // IMDSv2 only, for the builder and for every instance of the image.
        if text("imds_support").as_deref() != Some("v2.0") {
            problems.push(format!(
                "source {source}: `imds_support = \"v2.0\"` is required"
            ));
        }
        let tokens = blocks(body, "metadata_options")
            .next()
            .and_then(|options| attr(options.body(), "http_tokens"))
            .and_then(|v| family.text(v));
        if tokens.as_deref() != Some("required") {
            problems.push(format!(
                "source {source}: `metadata_options {{ http_tokens = \"required\" }}` is required"
            ));
        }

        // Named by family and time.
        match text("ami_name") {
            Some(ami_name)
                if (ami_name.contains(family.name) || ami_name.contains("local.family"))
                    && ami_name.contains("timestamp") => {}
            other => problems.push(format!(
                "source {source}: `ami_name` must name the family and a timestamp, not {other:?}"
            )),
        }

        // Provenance at creation.
        check_tag_map(family, &source, body, "tags", problems);
        check_tag_map(family, &source, body, "snapshot_tags", problems);
        match get("run_tags").and_then(|v| family.entries(v)) {
            Some(run_tags)
                if run_tags.contains_key("gild:managed") && run_tags.contains_key("gild:build-id") => {}
            _ => problems.push(format!(
                "source {source}: `run_tags` must carry gild:managed and gild:build-id (the builder is findable)"
            )),
        }

        // Network: the given security group, an instance profile.
        if !set("security_group_id") && !set("security_group_ids") {
            problems.push(format!(
                "source {source}: use the stack's security group (`security_group_id`), not a temporary one"
            ));
        }
        for key in [
            "temporary_security_group_source_cidrs",
            "temporary_security_group_source_public_ip",
        ] {
            if get(key).is_some() {
                problems.push(format!("source {source}: `{key}` must not be used"));
            }
        }
        if !set("iam_instance_profile") {
            problems.push(format!(
                "source {source}: `iam_instance_profile` is required (SSM-managed builder)"
            ));
        }

        // How Packer reaches the builder.
        match family.os {
            Os::Linux => {
                if text("communicator").as_deref() != Some("ssh") {
                    problems.push(format!(
                        "source {source}: Linux builders use `communicator = \"ssh\"`"
                    ));
                }
                if text("ssh_interface").as_deref() != Some("session_manager") {
                    problems.push(format!(
                        "source {source}: Linux builders are reached through Session Manager (`ssh_interface = \"session_manager\"`)"
                    ));
                }
            }
            Os::Windows => {
                if text("communicator").as_deref() != Some("winrm") {
                    problems.push(format!(
                        "source {source}: Windows builders use `communicator = \"winrm\"`"
                    ));
                }
                if boolean("winrm_use_ssl") != Some(true) {
                    problems.push(format!(
                        "source {source}: WinRM must use HTTPS (`winrm_use_ssl = true`)"
                    ));
                }
                if !set("user_data_file") {
                    problems.push(format!(
                        "source {source}: a `user_data_file` must set up the WinRM HTTPS listener"
                    ));
                }
            }
        }
    }
    if count == 0 {
        problems.push("no `source \"amazon-ebs\"` block".into());
    }
}

fn check_builds(family: &Family<'_>, problems: &mut Vec<String>) {
    let builds: Vec<&Block> = family.blocks("build").collect();
    if builds.is_empty() {
        problems.push("no `build` block".into());
        return;
    }
    let playbook = format!("ansible/playbooks/{}.yml", family.name);
    let mut ansible = 0;
    let mut download = false;
    let mut manifest = 0;
    for build in builds {
        for provisioner in blocks(build.body(), "provisioner") {
            let body = provisioner.body();
            match label(provisioner, 0) {
                "ansible" => {
                    ansible += 1;
                    let file = attr(body, "playbook_file").and_then(|v| family.text(v));
                    if !file.as_deref().is_some_and(|f| f.ends_with(&playbook)) {
                        problems.push(format!(
                            "the ansible provisioner must run {playbook}, not {file:?}"
                        ));
                    }
                    if attr(body, "use_proxy").and_then(|v| family.boolean(v)) != Some(false) {
                        problems.push(
                            "the ansible provisioner must connect directly (`use_proxy = false`)"
                                .into(),
                        );
                    }
                    if family.os == Os::Windows {
                        let arguments = attr(body, "extra_arguments").map_or_else(
                            String::new,
                            |v| match family.resolve(v) {
                                Expression::Array(items) => items
                                    .iter()
                                    .filter_map(|item| family.text(item))
                                    .collect::<Vec<_>>()
                                    .join(" "),
                                _ => String::new(),
                            },
                        );
                        for needed in [
                            "ansible_connection=winrm",
                            "ansible_winrm_server_cert_validation=ignore",
                        ] {
                            if !arguments.contains(needed) {
                                problems.push(format!(
                                    "the ansible provisioner's `extra_arguments` must set {needed}"
                                ));
                            }
                        }
                    }
                }
                "file" => {
                    let direction = attr(body, "direction").and_then(|v| family.text(v));
                    let source = attr(body, "source").and_then(|v| family.text(v));
                    if direction.as_deref() == Some("download")
                        && source.is_some_and(|s| s.ends_with("packages.txt"))
                    {
                        download = true;
                    }
                }
                _ => {}
            }
        }
        for post in blocks(build.body(), "post-processor") {
            if label(post, 0) != "manifest" {
                continue;
            }
            manifest += 1;
            let body = post.body();
            if attr(body, "strip_path").and_then(|v| family.boolean(v)) != Some(true) {
                problems.push("the manifest post-processor needs `strip_path = true`".into());
            }
            let custom = attr(body, "custom_data").and_then(|v| family.entries(v));
            for key in ["family", "source_commit", "build_id", "source_ami"] {
                if !custom.as_ref().is_some_and(|c| c.contains_key(key)) {
                    problems.push(format!(
                        "the manifest post-processor's `custom_data` lacks `{key}`"
                    ));
                }
            }
        }
    }
    if ansible == 0 {
        problems.push(format!("no ansible provisioner running {playbook}"));
    }
    if !download {
        problems.push(
            "no `file` provisioner downloading the image's packages.txt (`direction = \"download\"`)"
                .into(),
        );
    }
    if manifest == 0 {
        problems.push(
            "no `post-processor \"manifest\"`: the buildspec reads the AMI id from it".into(),
        );
    }
}

/// Rules for every attribute of every block.
fn check_everywhere(family: &Family<'_>, problems: &mut Vec<String>) {
    let mut attributes = Vec::new();
    for body in &family.bodies {
        all_attributes(body, &mut attributes);
    }
    for (key, expr) in attributes {
        if key == "associate_public_ip_address" && family.boolean(expr) != Some(false) {
            problems.push(
                "`associate_public_ip_address` must not be set: builders get no public address"
                    .into(),
            );
        }
        if SHARING.contains(&key) {
            problems.push(format!(
                "`{key}` must not be set: gild's images stay private"
            ));
        }
    }
}

// ---------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------

/// Credential-looking literals in a text: AWS access key ids, secret key
/// settings, literal passwords and private keys.
fn credential_findings(file: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let at = format!("{file}:{}", number + 1);
        let lower = line.to_ascii_lowercase();
        // AKIA[0-9A-Z]{16}
        let bytes = line.as_bytes();
        for start in line.match_indices("AKIA").map(|(i, _)| i) {
            let id = bytes.get(start + 4..start + 20);
            if id.is_some_and(|id| {
                id.iter()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
            }) {
                found.push(format!("{at}: an AWS access key id"));
            }
        }
        if lower.contains("aws_secret_access_key") {
            found.push(format!("{at}: aws_secret_access_key"));
        }
        // password\s*=\s*"[^"$]
        for (start, _) in lower.match_indices("password") {
            let rest = lower[start + "password".len()..].trim_start();
            let Some(rest) = rest.strip_prefix('=') else {
                continue;
            };
            let Some(rest) = rest.trim_start().strip_prefix('"') else {
                continue;
            };
            if rest.chars().next().is_some_and(|c| c != '"' && c != '$') {
                found.push(format!("{at}: a literal password"));
            }
        }
        if line.contains("-----BEGIN") && line.contains("PRIVATE KEY-----") {
            found.push(format!("{at}: a private key"));
        }
    }
    found
}

// ---------------------------------------------------------------------------
// The repository
// ---------------------------------------------------------------------------

fn root() -> PathBuf {
    workspace_root()
}

fn load_catalog() -> Catalog {
    let path = root().join(catalog::CATALOG_FILE);
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    catalog::parse(catalog::CATALOG_FILE, &text).unwrap_or_else(|e| panic!("{e}"))
}

/// Files under `dir` (recursively) whose name ends with `suffix`.
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

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn read_templates(folder: &Path) -> Vec<(String, String)> {
    files_under(folder, ".pkr.hcl")
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            (relative(&path), text)
        })
        .collect()
}

fn report(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

#[test]
fn every_template_parses_and_belongs_to_a_family() {
    let catalog = load_catalog();
    let mut problems = Vec::new();
    let templates = files_under(&root().join("images"), ".pkr.hcl");
    if templates.is_empty() {
        problems.push("no images/**/*.pkr.hcl at all".into());
    }
    for path in templates {
        let name = relative(&path);
        match fs::read_to_string(&path).map(|text| hcl::parse(&text)) {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => problems.push(format!("{name}: not valid HCL: {err}")),
            Err(err) => problems.push(format!("{name}: unreadable: {err}")),
        }
        if !catalog
            .families
            .values()
            .any(|family| family.owns_path(&name))
        {
            problems.push(format!(
                "{name}: in no family of gild.toml, so it would never be built"
            ));
        }
    }
    report("templates", &problems);
}

#[test]
fn templates_hold_gilds_invariants() {
    let catalog = load_catalog();
    let mut problems = Vec::new();
    for family in catalog.families.values() {
        let files = read_templates(&root().join(&family.path));
        if files.is_empty() {
            problems.push(format!("{}: no *.pkr.hcl in {}", family.name, family.path));
            continue;
        }
        problems.extend(check_family(&family.name, family.os, &files));
    }
    report("template invariants", &problems);
}

#[test]
fn plugin_pins_agree_across_families() {
    let catalog = load_catalog();
    let mut seen: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for family in catalog.families.values() {
        let files = read_templates(&root().join(&family.path));
        let mut ignored = Vec::new();
        let parsed = Family::parse(&family.name, family.os, &files, &mut ignored);
        for (plugin, version) in plugin_pins(&parsed) {
            seen.entry(plugin)
                .or_default()
                .entry(version)
                .or_default()
                .push(family.name.clone());
        }
    }
    let problems: Vec<String> = seen
        .iter()
        .filter(|(_, versions)| versions.len() > 1)
        .map(|(plugin, versions)| format!("plugin `{plugin}` is pinned differently: {versions:?}"))
        .collect();
    report("plugin pins", &problems);
}

/// The bake installs the Ansible the playbooks are linted with.
#[test]
fn bake_uses_the_ansible_the_playbooks_are_checked_with() {
    let bake = fs::read_to_string(root().join("buildspecs/bake.yml")).expect("buildspecs/bake.yml");
    let pinned_in_bake = |name: &str| {
        bake.lines().find_map(|line| {
            line.trim()
                .strip_prefix(&format!("{name}:"))
                .map(|value| value.trim().trim_matches('"').to_owned())
        })
    };
    let mut problems = Vec::new();
    let requirements = root().join("tools/requirements-ansible.txt");
    let Ok(text) = fs::read_to_string(&requirements) else {
        // Without the tools pin there is nothing to agree with; the bake's
        // own pins must still be exact.
        for name in [
            "ANSIBLE_VERSION",
            "ANSIBLE_CORE_VERSION",
            "PYWINRM_VERSION",
            "PACKER_VERSION",
        ] {
            if pinned_in_bake(name).is_none_or(|v| v.is_empty()) {
                problems.push(format!("buildspecs/bake.yml does not pin {name}"));
            }
        }
        report("bake pins", &problems);
        return;
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
            problems.push(format!(
                "tools/requirements-ansible.txt pins {package}=={tools:?}, buildspecs/bake.yml {variable}={bake:?}"
            ));
        }
    }
    report("bake pins", &problems);
}

#[test]
fn no_credentials_in_images_ansible_or_buildspecs() {
    let mut problems = Vec::new();
    for dir in ["images", "ansible", "buildspecs"] {
        for path in files_under(&root().join(dir), "") {
            // Binary files cannot hold a pasted credential we could read.
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            problems.extend(credential_findings(&relative(&path), &text));
        }
    }
    report("credential-looking literals", &problems);
}

/// The catalog and what each family needs from the other parts: its
/// template folder, its roles, its playbook and its test script.
#[test]
fn catalog_families_have_templates() {
    let catalog = load_catalog();
    let mut problems = Vec::new();
    for family in catalog.families.values() {
        let folder = root().join(&family.path);
        if !folder.is_dir() {
            problems.push(format!(
                "{}: folder {} is missing",
                family.name, family.path
            ));
        } else if files_under(&folder, ".pkr.hcl").is_empty() {
            problems.push(format!(
                "{}: {} holds no *.pkr.hcl",
                family.name, family.path
            ));
        }
    }
    report("catalog templates", &problems);
}

#[test]
fn catalog_roles_exist() {
    let catalog = load_catalog();
    let mut problems = Vec::new();
    for family in catalog.families.values() {
        for role in &family.roles {
            let tasks = format!("ansible/roles/{role}/tasks/main.yml");
            if !root().join(&tasks).is_file() {
                problems.push(format!("{}: role `{role}` has no {tasks}", family.name));
            }
        }
    }
    report("roles", &problems);
}

#[test]
fn catalog_families_have_playbooks() {
    let catalog = load_catalog();
    let mut problems = Vec::new();
    for family in catalog.families.values() {
        let playbook = format!("ansible/playbooks/{}.yml", family.name);
        if !root().join(&playbook).is_file() {
            problems.push(format!("{}: {playbook} is missing", family.name));
        }
    }
    report("playbooks", &problems);
}

#[test]
fn catalog_families_have_test_scripts_for_their_os() {
    let catalog = load_catalog();
    let mut problems = Vec::new();
    for family in catalog.families.values() {
        let (wanted, other) = match family.os {
            Os::Linux => ("run.sh", "run.ps1"),
            Os::Windows => ("run.ps1", "run.sh"),
        };
        let tests = format!("{}/tests", family.path);
        if !root().join(&tests).join(wanted).is_file() {
            problems.push(format!(
                "{} ({}): {tests}/{wanted} is missing",
                family.name, family.os
            ));
        }
        if root().join(&tests).join(other).is_file() {
            problems.push(format!(
                "{} ({}): {tests}/{other} would never run (test.yml picks the script by os)",
                family.name, family.os
            ));
        }
    }
    report("test scripts", &problems);
}

// ---------------------------------------------------------------------------
// Each check can fail
// ---------------------------------------------------------------------------

fn real_family(name: &str) -> Vec<(String, String)> {
    read_templates(&root().join("images").join(name))
}

/// Applies `from -> to` to the first file holding `from`.
fn mutate(files: &[(String, String)], from: &str, to: &str) -> Vec<(String, String)> {
    let mut files = files.to_vec();
    let holder = files
        .iter_mut()
        .find(|(_, text)| text.contains(from))
        .unwrap_or_else(|| {
            panic!("no template holds {from:?}: update this test with the template")
        });
    holder.1 = holder.1.replacen(from, to, 1);
    files
}

#[test]
fn real_templates_are_accepted() {
    for (name, os) in [
        ("debian13-base", Os::Linux),
        ("win2022-core-dotnet", Os::Windows),
        ("win2022-iis", Os::Windows),
    ] {
        report(name, &check_family(name, os, &real_family(name)));
    }
}

/// A broken copy of a real template: `from` replaced by `to` in the family
/// of that OS, which must draw a problem mentioning `expected`.
struct Breakage {
    what: &'static str,
    os: Os,
    from: &'static str,
    to: String,
    expected: &'static str,
}

fn breaks(
    what: &'static str,
    os: Os,
    from: &'static str,
    to: impl Into<String>,
    expected: &'static str,
) -> Breakage {
    Breakage {
        what,
        os,
        from,
        to: to.into(),
        expected,
    }
}

#[test]
fn broken_templates_are_rejected() {
    let debian = real_family("debian13-base");
    let windows = real_family("win2022-iis");
    let imds = "  imds_support = \"v2.0\"\n";
    let cases = vec![
        breaks(
            "boot not encrypted",
            Os::Linux,
            "encrypt_boot = true",
            "encrypt_boot = false",
            "encrypt_boot",
        ),
        breaks(
            "no KMS key",
            Os::Linux,
            "  kms_key_id   = var.kms_key_id\n",
            "",
            "`kms_key_id` is required",
        ),
        breaks(
            "builder volume unencrypted",
            Os::Linux,
            "    encrypted             = true",
            "    encrypted             = false",
            "launch_block_device_mappings",
        ),
        breaks("no imds_support", Os::Linux, imds, "", "imds_support"),
        breaks(
            "IMDSv1 allowed",
            Os::Linux,
            "http_tokens                 = \"required\"",
            "http_tokens = \"optional\"",
            "http_tokens",
        ),
        breaks(
            "no manifest",
            Os::Linux,
            "post-processor \"manifest\"",
            "post-processor \"checksum\"",
            "manifest",
        ),
        breaks(
            "manifest keeps paths",
            Os::Linux,
            "strip_path = true",
            "strip_path = false",
            "strip_path",
        ),
        breaks(
            "amazon plugin floating",
            Os::Linux,
            "version = \"= 1.8.0\"",
            "version = \">= 1.8.0\"",
            "plugin `amazon`",
        ),
        breaks(
            "ansible plugin floating",
            Os::Linux,
            "version = \"= 1.1.4\"",
            "version = \"~> 1\"",
            "plugin `ansible`",
        ),
        breaks(
            "ansible plugin missing",
            Os::Linux,
            "    ansible = {",
            "    ansible_gone = {",
            "no `ansible` entry",
        ),
        breaks(
            "Linux without Session Manager",
            Os::Linux,
            "ssh_interface           = \"session_manager\"",
            "ssh_interface = \"private_ip\"",
            "session_manager",
        ),
        breaks(
            "Linux over WinRM",
            Os::Linux,
            "communicator            = \"ssh\"",
            "communicator = \"winrm\"",
            "communicator = \"ssh\"",
        ),
        breaks(
            "public address",
            Os::Linux,
            imds,
            format!("{imds}  associate_public_ip_address = true\n"),
            "associate_public_ip_address",
        ),
        breaks(
            "shared with accounts",
            Os::Linux,
            imds,
            format!("{imds}  ami_users = [\"123456789012\"]\n"),
            "ami_users",
        ),
        breaks(
            "shared with everyone",
            Os::Linux,
            imds,
            format!("{imds}  ami_groups = [\"all\"]\n"),
            "ami_groups",
        ),
        breaks(
            "temporary security group",
            Os::Linux,
            imds,
            format!("{imds}  temporary_security_group_source_cidrs = [\"10.0.0.0/8\"]\n"),
            "temporary_security_group_source_cidrs",
        ),
        breaks(
            "no build id tag",
            Os::Linux,
            "    \"gild:build-id\"      = var.build_id\n",
            "",
            "lacks the `gild:build-id` tag",
        ),
        breaks(
            "no commit tag",
            Os::Linux,
            "    \"gild:source-commit\" = var.source_commit\n",
            "",
            "lacks the `gild:source-commit` tag",
        ),
        breaks(
            "not marked managed",
            Os::Linux,
            "\"gild:managed\"       = \"true\"",
            "\"gild:managed\" = \"false\"",
            "gild:managed",
        ),
        breaks(
            "base AMI unknown",
            Os::Linux,
            "\"gild:base-ami\"      = \"{{ .SourceAMI }}\"",
            "\"gild:base-ami\" = \"unknown\"",
            "gild:base-ami",
        ),
        breaks(
            "wrong family tag",
            Os::Linux,
            "  family = \"debian13-base\"",
            "  family = \"debian12-base\"",
            "gild:family",
        ),
        breaks(
            "snapshots untagged",
            Os::Linux,
            "snapshot_tags = local.image_tags",
            "snapshot_tags = { Name = \"x\" }",
            "`snapshot_tags` lacks the `gild:managed` tag",
        ),
        breaks(
            "builder untagged",
            Os::Linux,
            "  run_tags        = local.image_tags\n",
            "",
            "`run_tags` must carry",
        ),
        breaks(
            "other playbook",
            Os::Linux,
            "playbook_file = \"${local.repo_root}/ansible/playbooks/debian13-base.yml\"",
            "playbook_file = \"${local.repo_root}/ansible/playbooks/other.yml\"",
            "must run ansible/playbooks/debian13-base.yml",
        ),
        breaks(
            "ansible through the proxy",
            Os::Linux,
            "use_proxy     = false",
            "use_proxy = true",
            "use_proxy",
        ),
        breaks(
            "package list not downloaded",
            Os::Linux,
            "direction   = \"download\"",
            "direction = \"upload\"",
            "packages.txt",
        ),
        breaks(
            "not HCL",
            Os::Linux,
            "build {",
            "build {{{ =",
            "not valid HCL",
        ),
        breaks(
            "Windows over plain WinRM",
            Os::Windows,
            "winrm_use_ssl  = true",
            "winrm_use_ssl = false",
            "winrm_use_ssl",
        ),
        breaks(
            "Windows over SSH",
            Os::Windows,
            "communicator   = \"winrm\"",
            "communicator = \"ssh\"",
            "communicator = \"winrm\"",
        ),
        breaks(
            "Windows without bootstrap",
            Os::Windows,
            "  user_data_file = ",
            "  user_data_file_gone = ",
            "user_data_file",
        ),
        breaks(
            "Ansible validates the self-signed cert",
            Os::Windows,
            "ansible_winrm_server_cert_validation=ignore",
            "ansible_winrm_server_cert_validation=validate",
            "ansible_winrm_server_cert_validation=ignore",
        ),
    ];
    let mut missed = Vec::new();
    for case in &cases {
        let (name, files) = match case.os {
            Os::Linux => ("debian13-base", &debian),
            Os::Windows => ("win2022-iis", &windows),
        };
        let problems = check_family(name, case.os, &mutate(files, case.from, &case.to));
        if !problems.iter().any(|p| p.contains(case.expected)) {
            missed.push(format!(
                "{}: expected a problem mentioning {:?}, got {problems:?}",
                case.what, case.expected
            ));
        }
    }
    // A template with nothing in it fails on every count.
    let empty = check_family(
        "debian13-base",
        Os::Linux,
        &[("empty.pkr.hcl".into(), String::new())],
    );
    for expected in [
        "no `amazon` entry",
        "no `source \"amazon-ebs\"` block",
        "no `build` block",
    ] {
        if !empty.iter().any(|p| p.contains(expected)) {
            missed.push(format!(
                "empty template: expected {expected:?}, got {empty:?}"
            ));
        }
    }
    report("checks that let a broken template through", &missed);
}

#[test]
fn credential_scan_catches_literals_and_spares_references() {
    let key_id = format!("AKIA{}", "ABCDEFGHIJ234567");
    let header = format!("-----BEGIN {}PRIVATE KEY-----", "OPENSSH ");
    let bad = [
        format!("access = \"{key_id}\""),
        "aws_secret_access_key = x".to_owned(),
        "winrm_password = \"hunter2\"".to_owned(),
        "  Password= \"s3cret\"".to_owned(),
        header,
    ];
    for text in &bad {
        assert!(
            !credential_findings("sample", text).is_empty(),
            "not caught: {text}"
        );
    }
    let fine = [
        "winrm_password = var.winrm_password",
        "password = \"${var.password}\"",
        "password = \"\"",
        "AKIA is a prefix, AKIAshort is not a key",
        "# the plugin passes ansible_password itself",
    ];
    for text in fine {
        assert!(
            credential_findings("sample", text).is_empty(),
            "false alarm: {text}"
        );
    }
}
