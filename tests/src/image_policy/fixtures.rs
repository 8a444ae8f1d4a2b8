//! Compliant templates for the unit tests, one per OS, small but holding
//! every template rule; each rule's tests break one of them in one place.

use std::collections::BTreeSet;

use gild_core::catalog::{self, Os};

use super::{check_templates, Finding, Template};

/// A compliant Linux family `demo-linux` in one file.
pub(super) const LINUX: &str = r#"
packer {
  required_plugins {
    amazon = {
      version = "= 1.8.0"
      source  = "github.com/hashicorp/amazon"
    }
    ansible = {
      version = "= 1.1.4"
      source  = "github.com/hashicorp/ansible"
    }
  }
}

locals {
  family = "demo-linux"
  tags = {
    "gild:managed"       = "true"
    "gild:family"        = local.family
    "gild:build-id"      = var.build_id
    "gild:source-commit" = var.source_commit
    "gild:base-ami"      = "{{ .SourceAMI }}"
  }
}

source "amazon-ebs" "demo" {
  ami_name     = "gild-${local.family}-${local.timestamp}"
  encrypt_boot = true
  kms_key_id   = var.kms_key_id
  imds_support = "v2.0"

  metadata_options {
    http_tokens = "required"
  }
  launch_block_device_mappings {
    encrypted  = true
    kms_key_id = var.kms_key_id
  }

  security_group_id    = var.security_group_id
  iam_instance_profile = var.instance_profile
  communicator         = "ssh"
  ssh_interface        = "session_manager"

  tags          = local.tags
  snapshot_tags = local.tags
  run_tags      = local.tags
}

build {
  sources = ["source.amazon-ebs.demo"]

  provisioner "ansible" {
    playbook_file = "${path.root}/../../ansible/playbooks/demo-linux.yml"
    use_proxy     = false
  }

  provisioner "file" {
    direction = "download"
    source    = "/var/log/gild/bom.tsv"
  }

  post-processor "manifest" {
    strip_path = true
    custom_data = {
      family        = local.family
      source_commit = var.source_commit
      build_id      = var.build_id
      source_ami    = "${build.SourceAMI}"
    }
  }
}
"#;

/// A compliant Windows family `demo-windows` in one file.
pub(super) const WINDOWS: &str = r#"
packer {
  required_plugins {
    amazon = {
      version = "= 1.8.0"
      source  = "github.com/hashicorp/amazon"
    }
    ansible = {
      version = "= 1.1.4"
      source  = "github.com/hashicorp/ansible"
    }
  }
}

locals {
  family = "demo-windows"
  tags = {
    "gild:managed"       = "true"
    "gild:family"        = local.family
    "gild:build-id"      = var.build_id
    "gild:source-commit" = var.source_commit
    "gild:base-ami"      = "{{ .SourceAMI }}"
  }
}

source "amazon-ebs" "demo" {
  ami_name     = "gild-${local.family}-${local.timestamp}"
  encrypt_boot = true
  kms_key_id   = var.kms_key_id
  imds_support = "v2.0"

  metadata_options {
    http_tokens = "required"
  }
  launch_block_device_mappings {
    encrypted  = true
    kms_key_id = var.kms_key_id
  }

  security_group_ids   = [var.security_group_id, var.winrm_security_group_id]
  iam_instance_profile = var.instance_profile
  user_data_file = "${path.root}/bootstrap.ps1"
  communicator   = "winrm"
  winrm_use_ssl  = true

  tags          = local.tags
  snapshot_tags = local.tags
  run_tags      = local.tags
}

build {
  sources = ["source.amazon-ebs.demo"]

  provisioner "ansible" {
    playbook_file = "${path.root}/../../ansible/playbooks/demo-windows.yml"
    use_proxy     = false
    extra_arguments = [
      "--extra-vars", "ansible_connection=winrm ansible_port=5986",
      "--extra-vars", "ansible_winrm_server_cert_validation=ignore",
    ]
  }

  provisioner "file" {
    direction = "download"
    source    = "C:\\gild\\bom.tsv"
  }

  post-processor "manifest" {
    strip_path = true
    custom_data = {
      family        = local.family
      source_commit = var.source_commit
      build_id      = var.build_id
      source_ami    = "${build.SourceAMI}"
    }
  }
}
"#;

/// A catalog family `name` in `images/<name>`.
pub(super) fn family(name: &str, os: Os) -> catalog::Family {
    catalog::Family {
        name: name.to_owned(),
        path: format!("images/{name}"),
        template: format!("images/{name}"),
        os,
        roles: Vec::new(),
        parent: None,
        variables: Default::default(),
    }
}

/// The template rules' findings on `text`, as the one file of the demo
/// family of `os`.
pub(super) fn check(os: Os, text: &str) -> Vec<Finding> {
    let name = match os {
        Os::Linux => "demo-linux",
        Os::Windows => "demo-windows",
    };
    let family = family(name, os);
    let templates = [Template {
        file: format!("{}/{name}.pkr.hcl", family.path),
        text: text.to_owned(),
    }];
    check_templates(&family, &templates)
}

/// `text` with its first `from` replaced by `to`; `from` must be there.
pub(super) fn broken(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the fixture holds no {from:?}");
    text.replacen(from, to, 1)
}

/// The rules the findings name.
pub(super) fn rules(findings: &[Finding]) -> BTreeSet<&'static str> {
    findings.iter().map(|finding| finding.rule).collect()
}

/// There are findings, and all of them are of `rule`.
pub(super) fn assert_only(rule: &str, findings: &[Finding]) {
    assert!(
        !findings.is_empty() && findings.iter().all(|finding| finding.rule == rule),
        "expected only `{rule}` findings, got {findings:#?}"
    );
}
