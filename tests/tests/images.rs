//! The image policy over this repository: the Packer templates of every
//! family in gild.toml, the catalog and what it references, and no
//! credential under images/, ansible/ or buildspecs/. The rules and their
//! unit tests are in `gild_tests::image_policy`.
//!
//! `broken_templates_are_rejected` feeds broken copies of the real
//! templates to the same rules and expects each to be caught, so no rule
//! can silently pass the real templates whatever they hold.

use gild_core::catalog::{Family, Os};
use gild_tests::image_policy::{
    check_family, check_repository, check_templates, read_templates, Finding, Template,
};
use gild_tests::workspace_root;

fn report(what: &str, findings: &[Finding]) {
    let lines: Vec<String> = findings.iter().map(Finding::to_string).collect();
    assert!(
        findings.is_empty(),
        "{what}: {} problem(s):\n  {}",
        findings.len(),
        lines.join("\n  ")
    );
}

/// A catalog family as gild.toml declares it: the Windows families share
/// images/windows-server.
fn family(name: &str, os: Os) -> Family {
    let template = match os {
        Os::Windows => "images/windows-server".to_owned(),
        Os::Linux => format!("images/{name}"),
    };
    Family {
        name: name.to_owned(),
        path: format!("images/{name}"),
        template,
        os,
        roles: Vec::new(),
        parent: None,
        variables: Default::default(),
    }
}

#[test]
fn the_repository_holds_the_image_policy() {
    let findings = check_repository(&workspace_root()).unwrap_or_else(|e| panic!("{e}"));
    report("image policy", &findings);
}

#[test]
fn real_templates_are_accepted() {
    for (name, os) in [
        ("debian13-base", Os::Linux),
        ("win2022-core-dotnet", Os::Windows),
        ("win2022-iis", Os::Windows),
    ] {
        let findings =
            check_family(&workspace_root(), &family(name, os)).unwrap_or_else(|e| panic!("{e}"));
        report(name, &findings);
    }
}

fn real_templates(name: &str) -> Vec<Template> {
    let root = workspace_root();
    read_templates(&root, &root.join("images").join(name)).unwrap_or_else(|e| panic!("{e}"))
}

/// Applies `from -> to` to the first template holding `from`.
fn mutate(templates: &[Template], from: &str, to: &str) -> Vec<Template> {
    let mut templates = templates.to_vec();
    let holder = templates
        .iter_mut()
        .find(|template| template.text.contains(from))
        .unwrap_or_else(|| {
            panic!("no template holds {from:?}: update this test with the template")
        });
    holder.text = holder.text.replacen(from, to, 1);
    templates
}

/// A broken copy of a real template: `from` replaced by `to` in the family
/// of that OS, which must draw a finding whose message mentions `expected`.
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
    let debian = real_templates("debian13-base");
    let windows = real_templates("windows-server");
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
            "  family = var.family",
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
            "playbook_file = \"${local.repo_root}/ansible/playbooks/${local.family}.yml\"",
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
            "bom.tsv",
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
        let (name, templates) = match case.os {
            Os::Linux => ("debian13-base", &debian),
            Os::Windows => ("win2022-iis", &windows),
        };
        let broken = mutate(templates, case.from, &case.to);
        let findings = check_templates(&family(name, case.os), &broken);
        if !findings.iter().any(|f| f.message.contains(case.expected)) {
            missed.push(format!(
                "{}: expected a finding mentioning {:?}, got {findings:?}",
                case.what, case.expected
            ));
        }
    }
    assert!(
        missed.is_empty(),
        "rules that let a broken template through:\n  {}",
        missed.join("\n  ")
    );
}
