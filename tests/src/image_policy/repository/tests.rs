//! [`check_repository`] over a small repository written by each test: two
//! compliant families (one per OS) and everything they need; each test
//! breaks one thing.

use std::fs;
use std::path::Path;

use tempfile::TempDir;

use super::super::fixtures::{assert_only, rules, LINUX, WINDOWS};
use super::*;

const CATALOG: &str = r#"
[families.demo-linux]
path = "images/demo-linux"
os = "linux"
roles = ["base"]

[families.demo-windows]
path = "images/demo-windows"
os = "windows"
roles = ["base"]
"#;

const BAKE_YML: &str = r#"version: 0.2
env:
  variables:
    PACKER_VERSION: "1.16.1"
    ANSIBLE_VERSION: "11.1.0"
    ANSIBLE_CORE_VERSION: "2.18.1"
    PYWINRM_VERSION: "0.5.0"
"#;

const REQUIREMENTS: &str = "ansible==11.1.0  # the bake's\npywinrm==0.5.0\n";

fn write(root: &Path, file: &str, text: &str) {
    let path = root.join(file);
    fs::create_dir_all(path.parent().expect("a parent")).expect("create the folder");
    fs::write(path, text).expect("write the file");
}

/// A compliant repository.
fn repository() -> TempDir {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let root = dir.path();
    for (file, text) in [
        ("gild.toml", CATALOG),
        ("images/demo-linux/demo-linux.pkr.hcl", LINUX),
        ("images/demo-linux/tests/run.sh", "#!/bin/sh\n"),
        ("images/demo-windows/demo-windows.pkr.hcl", WINDOWS),
        ("images/demo-windows/tests/run.ps1", "exit 0\n"),
        ("ansible/playbooks/demo-linux.yml", "- hosts: all\n"),
        ("ansible/playbooks/demo-windows.yml", "- hosts: all\n"),
        ("ansible/roles/base/tasks/main.yml", "- debug: {}\n"),
        ("buildspecs/bake.yml", BAKE_YML),
        ("tools/requirements-ansible.txt", REQUIREMENTS),
    ] {
        write(root, file, text);
    }
    dir
}

fn findings(dir: &TempDir) -> Vec<Finding> {
    check_repository(dir.path()).expect("the repository is readable")
}

#[test]
fn a_compliant_repository_has_no_findings() {
    assert_eq!(findings(&repository()), vec![]);
}

#[test]
fn template_rules_run_on_every_family() {
    let dir = repository();
    let broken = WINDOWS.replacen("winrm_use_ssl  = true", "winrm_use_ssl = false", 1);
    write(
        dir.path(),
        "images/demo-windows/demo-windows.pkr.hcl",
        &broken,
    );
    let found = findings(&dir);
    assert_only(rule::COMMUNICATOR, &found);
    assert_eq!(found[0].file, "images/demo-windows/demo-windows.pkr.hcl");
}

#[test]
fn template_in_family_rejects_a_stray_template() {
    let dir = repository();
    write(dir.path(), "images/stray/stray.pkr.hcl", LINUX);
    assert_only(rule::TEMPLATE_IN_FAMILY, &findings(&dir));
}

#[test]
fn a_stray_template_is_parsed_too() {
    let dir = repository();
    write(dir.path(), "images/stray/stray.pkr.hcl", "build {{{ =");
    let found = rules(&findings(&dir));
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        [rule::HCL_SYNTAX, rule::TEMPLATE_IN_FAMILY]
    );
}

#[test]
fn hcl_syntax_rejects_a_family_file_that_does_not_parse() {
    let dir = repository();
    write(dir.path(), "images/demo-linux/extra.pkr.hcl", "build {{{ =");
    let found = findings(&dir);
    assert_only(rule::HCL_SYNTAX, &found);
    assert_eq!(found[0].file, "images/demo-linux/extra.pkr.hcl");
}

#[test]
fn family_templates_rejects_a_folder_without_templates() {
    let dir = repository();
    fs::remove_file(dir.path().join("images/demo-linux/demo-linux.pkr.hcl")).expect("remove");
    assert_only(rule::FAMILY_TEMPLATES, &findings(&dir));
}

#[test]
fn family_templates_rejects_a_missing_folder() {
    let dir = repository();
    fs::remove_dir_all(dir.path().join("images/demo-windows")).expect("remove");
    let found = findings(&dir);
    assert!(
        found
            .iter()
            .any(|f| f.rule == rule::FAMILY_TEMPLATES && f.message.contains("missing")),
        "{found:#?}"
    );
}

#[test]
fn family_roles_rejects_a_role_without_tasks() {
    let dir = repository();
    let catalog = CATALOG.replacen("[\"base\"]", "[\"base\", \"gone\"]", 1);
    write(dir.path(), "gild.toml", &catalog);
    assert_only(rule::FAMILY_ROLES, &findings(&dir));
}

#[test]
fn family_playbook_rejects_a_missing_playbook() {
    let dir = repository();
    fs::remove_file(dir.path().join("ansible/playbooks/demo-windows.yml")).expect("remove");
    assert_only(rule::FAMILY_PLAYBOOK, &findings(&dir));
}

#[test]
fn family_test_script_rejects_a_missing_script() {
    let dir = repository();
    fs::remove_file(dir.path().join("images/demo-linux/tests/run.sh")).expect("remove");
    assert_only(rule::FAMILY_TEST_SCRIPT, &findings(&dir));
}

#[test]
fn family_test_script_rejects_the_other_os_script() {
    let dir = repository();
    write(
        dir.path(),
        "images/demo-windows/tests/run.sh",
        "#!/bin/sh\n",
    );
    let found = findings(&dir);
    assert_only(rule::FAMILY_TEST_SCRIPT, &found);
    assert_eq!(found[0].file, "images/demo-windows/tests/run.sh");
}

#[test]
fn plugin_pins_agree_rejects_two_versions() {
    let dir = repository();
    let other = WINDOWS.replacen("= 1.8.0", "= 1.8.1", 1);
    write(
        dir.path(),
        "images/demo-windows/demo-windows.pkr.hcl",
        &other,
    );
    assert_only(rule::PLUGIN_PINS_AGREE, &findings(&dir));
}

#[test]
fn bake_pins_accepts_no_tools_pin_when_the_bake_pins_everything() {
    let dir = repository();
    fs::remove_file(dir.path().join("tools/requirements-ansible.txt")).expect("remove");
    assert_eq!(findings(&dir), vec![]);
}

#[test]
fn bake_pins_rejects_another_ansible() {
    let dir = repository();
    write(
        dir.path(),
        "tools/requirements-ansible.txt",
        &REQUIREMENTS.replacen("11.1.0", "11.2.0", 1),
    );
    assert_only(rule::BAKE_PINS, &findings(&dir));
}

#[test]
fn bake_pins_rejects_an_unpinned_bake() {
    let dir = repository();
    fs::remove_file(dir.path().join("tools/requirements-ansible.txt")).expect("remove");
    let bake = BAKE_YML.replacen("    PACKER_VERSION: \"1.16.1\"\n", "", 1);
    write(dir.path(), "buildspecs/bake.yml", &bake);
    assert_only(rule::BAKE_PINS, &findings(&dir));
}

#[test]
fn no_credentials_scans_images_ansible_and_buildspecs() {
    for file in [
        "images/demo-linux/notes.txt",
        "ansible/group_vars/all.yml",
        "buildspecs/test.yml",
    ] {
        let dir = repository();
        write(dir.path(), file, "ok: 1\nwinrm_password = \"hunter2\"\n");
        let found = findings(&dir);
        assert_only(rule::NO_CREDENTIALS, &found);
        assert_eq!(found[0].file, file);
    }
}

#[test]
fn no_credentials_ignores_other_folders() {
    let dir = repository();
    write(dir.path(), "docs/x.md", "winrm_password = \"hunter2\"\n");
    assert_eq!(findings(&dir), vec![]);
}

#[test]
fn an_unusable_catalog_or_bake_is_an_error() {
    let dir = repository();
    fs::remove_file(dir.path().join("buildspecs/bake.yml")).expect("remove");
    assert!(matches!(
        check_repository(dir.path()),
        Err(HarnessError::Io { .. })
    ));
    write(dir.path(), "gild.toml", "[families.x]\n");
    assert!(matches!(
        check_repository(dir.path()),
        Err(HarnessError::InvalidInput { .. })
    ));
    fs::remove_file(dir.path().join("gild.toml")).expect("remove");
    assert!(matches!(
        check_repository(dir.path()),
        Err(HarnessError::Io { .. })
    ));
}
