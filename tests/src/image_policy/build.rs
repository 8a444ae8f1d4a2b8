//! The `build` block: the family's playbook run by the Ansible provisioner
//! straight to the builder, the installed-package list downloaded, and the
//! manifest the buildspec reads the AMI id from.

use gild_core::catalog::Os;
use hcl::expr::Expression;
use hcl::Body;

use super::body::{attr, blocks, label, Family};
use super::{rule, Finding};

/// Keys the manifest's `custom_data` must carry.
const MANIFEST_DATA: [&str; 4] = ["family", "source_commit", "build_id", "source_ami"];

/// `extra_arguments` the Windows Ansible run needs: WinRM, and no
/// validation of the builder's self-signed certificate.
const WINDOWS_ANSIBLE: [&str; 2] = [
    "ansible_connection=winrm",
    "ansible_winrm_server_cert_validation=ignore",
];

/// [`rule::BUILD_BLOCK`], [`rule::ANSIBLE_PROVISIONER`],
/// [`rule::PACKAGE_LIST`] and [`rule::MANIFEST`].
pub(super) fn check(family: &Family<'_>, out: &mut Vec<Finding>) {
    let builds: Vec<_> = family.blocks("build").collect();
    if builds.is_empty() {
        out.push(Finding::new(
            family.path,
            rule::BUILD_BLOCK,
            "no `build` block",
        ));
        return;
    }
    let playbook = format!("ansible/playbooks/{}.yml", family.name);
    let mut ansible = 0;
    let mut download = false;
    let mut manifest = 0;
    for (file, build) in builds {
        for provisioner in blocks(build.body(), "provisioner") {
            let body = provisioner.body();
            match label(provisioner, 0) {
                "ansible" => {
                    ansible += 1;
                    for message in ansible_problems(family, body, &playbook) {
                        out.push(Finding::new(file, rule::ANSIBLE_PROVISIONER, message));
                    }
                }
                "file" => {
                    let direction = family.text_at(body, "direction");
                    let source = family.text_at(body, "source");
                    if direction.as_deref() == Some("download")
                        && source.is_some_and(|s| s.ends_with("bom.tsv"))
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
            if family.boolean_at(body, "strip_path") != Some(true) {
                out.push(Finding::new(
                    file,
                    rule::MANIFEST,
                    "the manifest post-processor needs `strip_path = true`",
                ));
            }
            let custom = family.entries_at(body, "custom_data");
            for key in MANIFEST_DATA {
                if !custom.as_ref().is_some_and(|c| c.contains_key(key)) {
                    out.push(Finding::new(
                        file,
                        rule::MANIFEST,
                        format!("the manifest post-processor's `custom_data` lacks `{key}`"),
                    ));
                }
            }
        }
    }
    if ansible == 0 {
        out.push(Finding::new(
            family.path,
            rule::ANSIBLE_PROVISIONER,
            format!("no ansible provisioner running {playbook}"),
        ));
    }
    if !download {
        out.push(Finding::new(
            family.path,
            rule::PACKAGE_LIST,
            "no `file` provisioner downloading the image's bill of materials, bom.tsv (`direction = \"download\"`)",
        ));
    }
    if manifest == 0 {
        out.push(Finding::new(
            family.path,
            rule::MANIFEST,
            "no `post-processor \"manifest\"`: the buildspec reads the AMI id from it",
        ));
    }
}

/// What is wrong with one `provisioner "ansible"`.
fn ansible_problems(family: &Family<'_>, body: &Body, playbook: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let file = family.text_at(body, "playbook_file");
    // A shared template runs the family's playbook through the family
    // variable bake.yml sets: `.../playbooks/${local.family}.yml` with
    // `local.family = var.family`, or `${var.family}` itself.
    let by_variable = |f: &str| {
        f.ends_with("ansible/playbooks/${var.family}.yml")
            || (f.ends_with("ansible/playbooks/${local.family}.yml")
                && family
                    .local("family")
                    .is_some_and(|e| family.is_family_variable(e)))
    };
    if !file
        .as_deref()
        .is_some_and(|f| f.ends_with(playbook) || by_variable(f))
    {
        problems.push(format!(
            "the ansible provisioner must run {playbook}, not {file:?}"
        ));
    }
    if family.boolean_at(body, "use_proxy") != Some(false) {
        problems.push("the ansible provisioner must connect directly (`use_proxy = false`)".into());
    }
    if family.os == Os::Windows {
        let arguments =
            attr(body, "extra_arguments").map_or_else(String::new, |v| match family.resolve(v) {
                Expression::Array(items) => items
                    .iter()
                    .filter_map(|item| family.text(item))
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => String::new(),
            });
        for needed in WINDOWS_ANSIBLE {
            if !arguments.contains(needed) {
                problems.push(format!(
                    "the ansible provisioner's `extra_arguments` must set {needed}"
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{assert_only, broken, check, LINUX, WINDOWS};
    use super::*;

    #[test]
    fn build_block_rejects_no_build() {
        let start = LINUX.find("build {").expect("a build");
        assert_only(rule::BUILD_BLOCK, &check(Os::Linux, &LINUX[..start]));
    }

    #[test]
    fn ansible_provisioner_accepts_windows_arguments_through_a_local() {
        let start = WINDOWS.find("    extra_arguments = [").expect("arguments");
        let end = start + WINDOWS[start..].find("]\n").expect("their end") + 2;
        let arguments = WINDOWS[start..end].replacen("extra_arguments", "args", 1);
        let text = format!(
            "{}    extra_arguments = local.args\n{}",
            &WINDOWS[..start],
            &WINDOWS[end..]
        );
        let text = broken(&text, "locals {\n", &format!("locals {{\n{arguments}"));
        assert_eq!(check(Os::Windows, &text), vec![]);
    }

    #[test]
    fn ansible_provisioner_rejects_another_playbook() {
        let text = broken(LINUX, "playbooks/demo-linux.yml", "playbooks/other.yml");
        assert_only(rule::ANSIBLE_PROVISIONER, &check(Os::Linux, &text));
    }

    #[test]
    fn ansible_provisioner_rejects_the_proxy() {
        let text = broken(LINUX, "use_proxy     = false", "use_proxy = true");
        assert_only(rule::ANSIBLE_PROVISIONER, &check(Os::Linux, &text));
    }

    #[test]
    fn ansible_provisioner_rejects_no_ansible() {
        let text = broken(LINUX, "provisioner \"ansible\"", "provisioner \"shell\"");
        assert_only(rule::ANSIBLE_PROVISIONER, &check(Os::Linux, &text));
    }

    #[test]
    fn ansible_provisioner_rejects_windows_validating_the_certificate() {
        let text = broken(
            WINDOWS,
            "ansible_winrm_server_cert_validation=ignore",
            "ansible_winrm_server_cert_validation=validate",
        );
        assert_only(rule::ANSIBLE_PROVISIONER, &check(Os::Windows, &text));
    }

    #[test]
    fn package_list_rejects_an_upload() {
        let text = broken(LINUX, "direction = \"download\"", "direction = \"upload\"");
        assert_only(rule::PACKAGE_LIST, &check(Os::Linux, &text));
    }

    #[test]
    fn manifest_rejects_kept_paths() {
        let text = broken(LINUX, "strip_path = true", "strip_path = false");
        assert_only(rule::MANIFEST, &check(Os::Linux, &text));
    }

    #[test]
    fn manifest_rejects_missing_custom_data() {
        let text = broken(LINUX, "      build_id      = var.build_id\n", "");
        assert_only(rule::MANIFEST, &check(Os::Linux, &text));
    }

    #[test]
    fn manifest_rejects_no_manifest() {
        let text = broken(
            LINUX,
            "post-processor \"manifest\"",
            "post-processor \"checksum\"",
        );
        assert_only(rule::MANIFEST, &check(Os::Linux, &text));
    }
}
