//! The image itself: built by amazon-ebs sources, encrypted with the
//! stack's key, IMDSv2 only for every instance launched from it, named by
//! family and time, tagged with its provenance at creation, never shared.

use super::body::{all_attributes, label, Family, Source};
use super::{rule, Finding};

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

/// The family's amazon-ebs sources; [`rule::AMAZON_EBS_SOURCE`] for any
/// other kind, or for none at all.
pub(super) fn sources<'f>(family: &'f Family<'_>, out: &mut Vec<Finding>) -> Vec<Source<'f>> {
    let mut sources = Vec::new();
    for (file, block) in family.blocks("source") {
        let kind = label(block, 0);
        let name = format!("{kind}.{}", label(block, 1));
        if kind != "amazon-ebs" {
            out.push(Finding::new(
                file,
                rule::AMAZON_EBS_SOURCE,
                format!("source {name}: gild builds with amazon-ebs sources only"),
            ));
            continue;
        }
        sources.push(Source {
            file,
            name,
            body: block.body(),
        });
    }
    if sources.is_empty() {
        out.push(Finding::new(
            family.path,
            rule::AMAZON_EBS_SOURCE,
            "no `source \"amazon-ebs\"` block",
        ));
    }
    sources
}

/// The image rules of one source: [`rule::ENCRYPTED_AMI`],
/// [`rule::IMDSV2_IMAGE`], [`rule::AMI_NAME`], [`rule::PROVENANCE_TAGS`].
pub(super) fn check_source(family: &Family<'_>, source: &Source<'_>, out: &mut Vec<Finding>) {
    let name = &source.name;
    let body = source.body;
    let mut found = |rule: &'static str, message: String| {
        out.push(Finding::new(source.file, rule, message));
    };

    // Encrypted with the stack's key.
    if family.boolean_at(body, "encrypt_boot") != Some(true) {
        found(
            rule::ENCRYPTED_AMI,
            format!("source {name}: `encrypt_boot = true` is required"),
        );
    }
    if !family.is_set_at(body, "kms_key_id") {
        found(
            rule::ENCRYPTED_AMI,
            format!("source {name}: `kms_key_id` is required (the stack's key)"),
        );
    }

    // Instances of the image: IMDSv2 only.
    if family.text_at(body, "imds_support").as_deref() != Some("v2.0") {
        found(
            rule::IMDSV2_IMAGE,
            format!("source {name}: `imds_support = \"v2.0\"` is required"),
        );
    }

    // Named by family and time.
    match family.text_at(body, "ami_name") {
        Some(ami_name)
            if (ami_name.contains(family.name) || ami_name.contains("local.family"))
                && ami_name.contains("timestamp") => {}
        other => found(
            rule::AMI_NAME,
            format!(
                "source {name}: `ami_name` must name the family and a timestamp, not {other:?}"
            ),
        ),
    }

    // Provenance at creation.
    for key in ["tags", "snapshot_tags"] {
        for message in tag_map_problems(family, source, key) {
            found(rule::PROVENANCE_TAGS, message);
        }
    }
}

/// What is wrong with the tag map `key` of a source.
fn tag_map_problems(family: &Family<'_>, source: &Source<'_>, key: &str) -> Vec<String> {
    let name = &source.name;
    let Some(entries) = family.entries_at(source.body, key) else {
        return vec![format!(
            "source {name}: `{key}` must be a map of tags (with {})",
            REQUIRED_TAGS.join(", ")
        )];
    };
    let mut problems = Vec::new();
    for tag in REQUIRED_TAGS {
        match entries.get(tag) {
            Some(value) if family.is_set(value) => {}
            _ => problems.push(format!("source {name}: `{key}` lacks the `{tag}` tag")),
        }
    }
    let value = |tag: &str| entries.get(tag).and_then(|v| family.text(v));
    if let Some(managed) = value("gild:managed") {
        if managed != "true" {
            problems.push(format!(
                "source {name}: `{key}` sets gild:managed to {managed:?}, not \"true\""
            ));
        }
    }
    if let Some(tagged) = entries.get("gild:family") {
        if !family.names_family(tagged) {
            problems.push(format!(
                "source {name}: `{key}` tags gild:family {:?}, but the family is {:?} (or var.family, which bake.yml sets to it)",
                family.text(tagged),
                family.name
            ));
        }
    }
    if let Some(base) = value("gild:base-ami") {
        if !base.contains("SourceAMI") {
            problems.push(format!(
                "source {name}: `{key}` must tag gild:base-ami with the source AMI ({{{{ .SourceAMI }}}}), not {base:?}"
            ));
        }
    }
    problems
}

/// [`rule::PRIVATE_AMI`]: no attribute of any block shares the image.
pub(super) fn check_everywhere(family: &Family<'_>, out: &mut Vec<Finding>) {
    for (file, body) in family.files() {
        let mut attributes = Vec::new();
        all_attributes(body, &mut attributes);
        for (key, _) in attributes {
            if SHARING.contains(&key) {
                out.push(Finding::new(
                    file,
                    rule::PRIVATE_AMI,
                    format!("`{key}` must not be set: gild's images stay private"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{assert_only, broken, check, LINUX, WINDOWS};
    use super::*;
    use gild_core::catalog::Os;

    #[test]
    fn amazon_ebs_source_accepts_two_sources() {
        let start = LINUX.find("source \"amazon-ebs\"").expect("a source");
        let end = LINUX.find("build {").expect("a build");
        let second = LINUX[start..end].replacen("\"demo\"", "\"other\"", 1);
        let text = format!("{}{second}{}", &LINUX[..end], &LINUX[end..]);
        assert_eq!(check(Os::Linux, &text), vec![]);
    }

    #[test]
    fn amazon_ebs_source_rejects_another_builder() {
        let text = broken(LINUX, "build {", "source \"docker\" \"x\" {\n}\n\nbuild {");
        assert_only(rule::AMAZON_EBS_SOURCE, &check(Os::Linux, &text));
    }

    #[test]
    fn amazon_ebs_source_rejects_no_source() {
        let text = broken(
            LINUX,
            "source \"amazon-ebs\" \"demo\"",
            "source \"amazon-ec2\" \"demo\"",
        );
        let findings = check(Os::Linux, &text);
        assert_only(rule::AMAZON_EBS_SOURCE, &findings);
        assert!(findings.iter().any(|f| f.message.contains("no `source")));
    }

    #[test]
    fn encrypted_ami_rejects_an_unencrypted_boot() {
        let text = broken(LINUX, "encrypt_boot = true", "encrypt_boot = false");
        assert_only(rule::ENCRYPTED_AMI, &check(Os::Linux, &text));
    }

    #[test]
    fn encrypted_ami_rejects_no_key() {
        let text = broken(LINUX, "  kms_key_id   = var.kms_key_id\n", "");
        assert_only(rule::ENCRYPTED_AMI, &check(Os::Linux, &text));
    }

    #[test]
    fn encrypted_ami_accepts_a_key_through_a_local() {
        let text = broken(
            LINUX,
            "kms_key_id   = var.kms_key_id",
            "kms_key_id = local.key",
        );
        let text = broken(&text, "locals {", "locals {\n  key = var.kms_key_id");
        assert_eq!(check(Os::Linux, &text), vec![]);
    }

    #[test]
    fn imdsv2_image_rejects_a_missing_imds_support() {
        let text = broken(LINUX, "  imds_support = \"v2.0\"\n", "");
        assert_only(rule::IMDSV2_IMAGE, &check(Os::Linux, &text));
    }

    #[test]
    fn imdsv2_image_rejects_v1() {
        let text = broken(LINUX, "imds_support = \"v2.0\"", "imds_support = \"v1.0\"");
        assert_only(rule::IMDSV2_IMAGE, &check(Os::Linux, &text));
    }

    #[test]
    fn ami_name_accepts_the_family_by_name() {
        let text = broken(LINUX, "gild-${local.family}-", "gild-demo-linux-");
        assert_eq!(check(Os::Linux, &text), vec![]);
    }

    #[test]
    fn ami_name_rejects_a_name_without_a_timestamp() {
        let text = broken(LINUX, "-${local.timestamp}\"", "\"");
        assert_only(rule::AMI_NAME, &check(Os::Linux, &text));
    }

    #[test]
    fn provenance_tags_accept_merged_maps() {
        let text = broken(
            LINUX,
            "snapshot_tags = local.tags",
            "snapshot_tags = merge(local.tags, { Name = \"x\" })",
        );
        assert_eq!(check(Os::Linux, &text), vec![]);
    }

    #[test]
    fn provenance_tags_reject_untagged_snapshots() {
        let text = broken(
            LINUX,
            "snapshot_tags = local.tags",
            "snapshot_tags = { Name = \"x\" }",
        );
        assert_only(rule::PROVENANCE_TAGS, &check(Os::Linux, &text));
    }

    #[test]
    fn provenance_tags_reject_a_missing_commit() {
        let text = broken(
            LINUX,
            "    \"gild:source-commit\" = var.source_commit\n",
            "",
        );
        assert_only(rule::PROVENANCE_TAGS, &check(Os::Linux, &text));
    }

    #[test]
    fn provenance_tags_reject_wrong_values() {
        for (from, to) in [
            (
                "\"gild:managed\"       = \"true\"",
                "\"gild:managed\" = \"false\"",
            ),
            (
                "\"gild:family\"        = local.family",
                "\"gild:family\" = \"other\"",
            ),
            ("\"{{ .SourceAMI }}\"", "\"unknown\""),
        ] {
            let text = broken(WINDOWS, from, to);
            assert_only(rule::PROVENANCE_TAGS, &check(Os::Windows, &text));
        }
    }

    #[test]
    fn private_ami_accepts_no_sharing() {
        // The baseline shares nothing; a comment naming the attributes is
        // not an attribute.
        let text = broken(LINUX, "locals {", "# no ami_users, no ami_groups\nlocals {");
        assert_eq!(check(Os::Linux, &text), vec![]);
    }

    #[test]
    fn private_ami_rejects_sharing() {
        for attribute in ["ami_users = [\"123456789012\"]", "ami_groups = [\"all\"]"] {
            let text = broken(
                LINUX,
                "  imds_support",
                &format!("  {attribute}\n  imds_support"),
            );
            assert_only(rule::PRIVATE_AMI, &check(Os::Linux, &text));
        }
    }
}
