//! The image policy: static checks of the images as code (the Packer HCL2
//! templates of each catalog family, the catalog itself and what it
//! references) against gild's security invariants.
//!
//! Packer itself cannot run here (its releases are not reachable offline),
//! so every `*.pkr.hcl` is parsed with hcl-rs and held to gild's invariants:
//! encrypted with the stack's key, IMDSv2 only, private, no public address,
//! no inbound path (Session Manager on Linux, WinRM over HTTPS on Windows),
//! both plugins pinned exactly, provenance tags on the AMI and its snapshots
//! at creation, a manifest for the buildspec to read. No file under images/,
//! ansible/ or buildspecs/ may hold a credential.
//!
//! Where each concern lives:
//! - `body`: a family's templates parsed as one configuration (as Packer
//!   loads a folder), values read through `local.*` and `merge(...)`;
//! - `plugins`: `required_plugins`, pinned exactly;
//! - `ami`: the image: amazon-ebs sources, encryption, IMDSv2 for its
//!   instances, its name, its provenance tags, never shared;
//! - `instance`: the builder instance: encrypted volume, IMDSv2, tags, no
//!   inbound path, no public address, how Packer reaches it;
//! - `build`: the `build` block: the Ansible provisioner, the package
//!   list, the manifest;
//! - `credentials`: credential-looking literals in any text;
//! - `repository`: the catalog and the repository around the templates,
//!   and [`check_repository`], which runs every rule over a checkout.
//!
//! Every finding names its rule by a stable name from [`rule`].

use std::fmt;

use gild_core::catalog;

mod ami;
mod body;
mod build;
mod credentials;
mod instance;
mod plugins;
mod repository;

#[cfg(test)]
mod fixtures;

pub use repository::{check_family, check_repository, read_templates};

/// The stable name of every rule, as [`Finding::rule`] carries it.
pub mod rule {
    /// Every template parses as HCL2.
    pub const HCL_SYNTAX: &str = "hcl-syntax";
    /// `required_plugins` declares the amazon and ansible plugins from
    /// HashiCorp, each pinned exactly (`= x.y.z`).
    pub const PLUGINS_PINNED: &str = "plugins-pinned";
    /// A family has at least one source, and every source is `amazon-ebs`.
    pub const AMAZON_EBS_SOURCE: &str = "amazon-ebs-source";
    /// `encrypt_boot = true` with the stack's `kms_key_id`.
    pub const ENCRYPTED_AMI: &str = "encrypted-ami";
    /// `imds_support = "v2.0"`: instances of the image are IMDSv2 only.
    pub const IMDSV2_IMAGE: &str = "imdsv2-image";
    /// `ami_name` names the family and a timestamp.
    pub const AMI_NAME: &str = "ami-name";
    /// `tags` and `snapshot_tags` carry gild's provenance tags, right.
    pub const PROVENANCE_TAGS: &str = "provenance-tags";
    /// No attribute anywhere shares the image or its snapshots.
    pub const PRIVATE_AMI: &str = "private-ami";
    /// Every `launch_block_device_mappings` is encrypted with a key.
    pub const ENCRYPTED_BUILDER_VOLUME: &str = "encrypted-builder-volume";
    /// `metadata_options { http_tokens = "required" }` on the builder.
    pub const IMDSV2_BUILDER: &str = "imdsv2-builder";
    /// `run_tags` make a leftover builder findable by build.
    pub const BUILDER_TAGS: &str = "builder-tags";
    /// The stack's security group (no inbound rule), never a temporary one.
    pub const NO_INBOUND: &str = "no-inbound";
    /// `iam_instance_profile` (the builder is SSM-managed).
    pub const INSTANCE_PROFILE: &str = "instance-profile";
    /// Linux: SSH through Session Manager; Windows: WinRM over HTTPS with a
    /// bootstrap `user_data_file`.
    pub const COMMUNICATOR: &str = "communicator";
    /// No attribute anywhere gives the builder a public address.
    pub const NO_PUBLIC_IP: &str = "no-public-ip";
    /// A family has a `build` block.
    pub const BUILD_BLOCK: &str = "build-block";
    /// An Ansible provisioner runs the family's playbook, directly (no
    /// proxy; on Windows over WinRM with the self-signed certificate).
    pub const ANSIBLE_PROVISIONER: &str = "ansible-provisioner";
    /// A `file` provisioner downloads the image's bill of materials (bom.tsv).
    pub const PACKAGE_LIST: &str = "package-list";
    /// A `manifest` post-processor with `strip_path` and gild's custom data.
    pub const MANIFEST: &str = "manifest";
    /// Every `images/**/*.pkr.hcl` belongs to a catalog family.
    pub const TEMPLATE_IN_FAMILY: &str = "template-in-family";
    /// Every catalog family's folder exists and holds templates.
    pub const FAMILY_TEMPLATES: &str = "family-templates";
    /// Every catalog family's roles have `tasks/main.yml`.
    pub const FAMILY_ROLES: &str = "family-roles";
    /// Every catalog family has `ansible/playbooks/<family>.yml`.
    pub const FAMILY_PLAYBOOK: &str = "family-playbook";
    /// Every catalog family has the test script of its OS, and only that.
    pub const FAMILY_TEST_SCRIPT: &str = "family-test-script";
    /// All families pin each plugin to the same version.
    pub const PLUGIN_PINS_AGREE: &str = "plugin-pins-agree";
    /// The bake pins its tools, as the tools the playbooks are checked with.
    pub const BAKE_PINS: &str = "bake-pins";
    /// No credential-looking literal under images/, ansible/, buildspecs/.
    pub const NO_CREDENTIALS: &str = "no-credentials";
}

/// One violation of the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file (or folder) at fault, relative to the repository root.
    pub file: String,
    /// The rule broken: one of [`rule`]'s names.
    pub rule: &'static str,
    /// What is wrong, written for the person who fixes it.
    pub message: String,
}

impl Finding {
    pub(crate) fn new(file: &str, rule: &'static str, message: impl Into<String>) -> Self {
        Finding {
            file: file.to_owned(),
            rule,
            message: message.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} [{}]", self.file, self.message, self.rule)
    }
}

/// One template's text, with its repository-relative file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub file: String,
    pub text: String,
}

/// Holds one family's templates (every `*.pkr.hcl` of its folder, already
/// read) to the template rules; returns what is wrong (empty: nothing).
pub fn check_templates(family: &catalog::Family, templates: &[Template]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let parsed = body::Family::parse(family, templates, &mut findings);
    plugins::check(&parsed, &mut findings);
    for source in ami::sources(&parsed, &mut findings) {
        ami::check_source(&parsed, &source, &mut findings);
        instance::check_source(&parsed, &source, &mut findings);
    }
    build::check(&parsed, &mut findings);
    ami::check_everywhere(&parsed, &mut findings);
    instance::check_everywhere(&parsed, &mut findings);
    findings
}

#[cfg(test)]
mod tests {
    use super::fixtures::{check, rules, LINUX, WINDOWS};
    use super::*;
    use gild_core::catalog::Os;

    #[test]
    fn compliant_templates_have_no_findings() {
        assert_eq!(check(Os::Linux, LINUX), vec![]);
        assert_eq!(check(Os::Windows, WINDOWS), vec![]);
    }

    #[test]
    fn an_empty_template_fails_on_every_count() {
        let found = rules(&check(Os::Linux, ""));
        for expected in [
            rule::PLUGINS_PINNED,
            rule::AMAZON_EBS_SOURCE,
            rule::BUILD_BLOCK,
        ] {
            assert!(found.contains(expected), "{expected} not in {found:?}");
        }
    }

    #[test]
    fn a_finding_reads_file_message_rule() {
        let finding = Finding::new("images/x/x.pkr.hcl", rule::MANIFEST, "no manifest");
        assert_eq!(
            finding.to_string(),
            "images/x/x.pkr.hcl: no manifest [manifest]"
        );
    }
}
