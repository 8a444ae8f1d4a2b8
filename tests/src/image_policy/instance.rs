//! The builder instance: an encrypted volume, IMDSv2 only, findable by its
//! tags, the stack's security group (no inbound rule) and instance profile,
//! no public address, and reached only through Session Manager (Linux) or
//! WinRM over HTTPS (Windows).

use gild_core::catalog::Os;

use super::body::{all_attributes, attr, blocks, Family, Source};
use super::{rule, Finding};

/// Attributes that would open the builder to addresses outside the stack.
const TEMPORARY_SECURITY_GROUP: [&str; 2] = [
    "temporary_security_group_source_cidrs",
    "temporary_security_group_source_public_ip",
];

/// The builder rules of one source: [`rule::ENCRYPTED_BUILDER_VOLUME`],
/// [`rule::IMDSV2_BUILDER`], [`rule::BUILDER_TAGS`], [`rule::NO_INBOUND`],
/// [`rule::INSTANCE_PROFILE`], [`rule::COMMUNICATOR`].
pub(super) fn check_source(family: &Family<'_>, source: &Source<'_>, out: &mut Vec<Finding>) {
    let name = &source.name;
    let body = source.body;
    let text = |key: &str| family.text_at(body, key);
    let mut found = |rule: &'static str, message: String| {
        out.push(Finding::new(source.file, rule, message));
    };

    // An encrypted volume.
    let mappings: Vec<_> = blocks(body, "launch_block_device_mappings").collect();
    if mappings.is_empty() {
        found(
            rule::ENCRYPTED_BUILDER_VOLUME,
            format!(
                "source {name}: `launch_block_device_mappings` must encrypt the builder's volume"
            ),
        );
    }
    for mapping in mappings {
        let encrypted = family.boolean_at(mapping.body(), "encrypted") == Some(true);
        let keyed = family.is_set_at(mapping.body(), "kms_key_id");
        if !encrypted || !keyed {
            found(
                rule::ENCRYPTED_BUILDER_VOLUME,
                format!("source {name}: every `launch_block_device_mappings` needs `encrypted = true` and a `kms_key_id`"),
            );
        }
    }

    // IMDSv2 only.
    let tokens = blocks(body, "metadata_options")
        .next()
        .and_then(|options| family.text_at(options.body(), "http_tokens"));
    if tokens.as_deref() != Some("required") {
        found(
            rule::IMDSV2_BUILDER,
            format!(
                "source {name}: `metadata_options {{ http_tokens = \"required\" }}` is required"
            ),
        );
    }

    // Findable by build.
    match family.entries_at(body, "run_tags") {
        Some(run_tags)
            if run_tags.contains_key("gild:managed") && run_tags.contains_key("gild:build-id") => {}
        _ => found(
            rule::BUILDER_TAGS,
            format!("source {name}: `run_tags` must carry gild:managed and gild:build-id (the builder is findable)"),
        ),
    }

    // Network: the given security group, an instance profile.
    if !family.is_set_at(body, "security_group_id") && !family.is_set_at(body, "security_group_ids")
    {
        found(
            rule::NO_INBOUND,
            format!("source {name}: use the stack's security group (`security_group_id`), not a temporary one"),
        );
    }
    for key in TEMPORARY_SECURITY_GROUP {
        if attr(body, key).is_some() {
            found(
                rule::NO_INBOUND,
                format!("source {name}: `{key}` must not be used"),
            );
        }
    }
    if !family.is_set_at(body, "iam_instance_profile") {
        found(
            rule::INSTANCE_PROFILE,
            format!("source {name}: `iam_instance_profile` is required (SSM-managed builder)"),
        );
    }

    // How Packer reaches the builder.
    let mut communicator = |message: String| found(rule::COMMUNICATOR, message);
    match family.os {
        Os::Linux => {
            if text("communicator").as_deref() != Some("ssh") {
                communicator(format!(
                    "source {name}: Linux builders use `communicator = \"ssh\"`"
                ));
            }
            if text("ssh_interface").as_deref() != Some("session_manager") {
                communicator(format!(
                    "source {name}: Linux builders are reached through Session Manager (`ssh_interface = \"session_manager\"`)"
                ));
            }
        }
        Os::Windows => {
            if text("communicator").as_deref() != Some("winrm") {
                communicator(format!(
                    "source {name}: Windows builders use `communicator = \"winrm\"`"
                ));
            }
            if family.boolean_at(body, "winrm_use_ssl") != Some(true) {
                communicator(format!(
                    "source {name}: WinRM must use HTTPS (`winrm_use_ssl = true`)"
                ));
            }
            if !family.is_set_at(body, "user_data_file") {
                communicator(format!(
                    "source {name}: a `user_data_file` must set up the WinRM HTTPS listener"
                ));
            }
        }
    }
}

/// [`rule::NO_PUBLIC_IP`]: no attribute of any block gives the builder a
/// public address.
pub(super) fn check_everywhere(family: &Family<'_>, out: &mut Vec<Finding>) {
    for (file, body) in family.files() {
        let mut attributes = Vec::new();
        all_attributes(body, &mut attributes);
        for (key, expr) in attributes {
            if key == "associate_public_ip_address" && family.boolean(expr) != Some(false) {
                out.push(Finding::new(
                    file,
                    rule::NO_PUBLIC_IP,
                    "`associate_public_ip_address` must not be set: builders get no public address",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{assert_only, broken, check, LINUX, WINDOWS};
    use super::*;

    #[test]
    fn encrypted_builder_volume_rejects_an_unencrypted_volume() {
        let text = broken(LINUX, "    encrypted  = true", "    encrypted  = false");
        assert_only(rule::ENCRYPTED_BUILDER_VOLUME, &check(Os::Linux, &text));
    }

    #[test]
    fn encrypted_builder_volume_rejects_no_mapping() {
        let text = broken(LINUX, "launch_block_device_mappings {", "other_block {");
        assert_only(rule::ENCRYPTED_BUILDER_VOLUME, &check(Os::Linux, &text));
    }

    #[test]
    fn imdsv2_builder_rejects_optional_tokens() {
        let text = broken(
            LINUX,
            "http_tokens = \"required\"",
            "http_tokens = \"optional\"",
        );
        assert_only(rule::IMDSV2_BUILDER, &check(Os::Linux, &text));
    }

    #[test]
    fn builder_tags_reject_no_run_tags() {
        let text = broken(LINUX, "  run_tags      = local.tags\n", "");
        assert_only(rule::BUILDER_TAGS, &check(Os::Linux, &text));
    }

    #[test]
    fn no_inbound_accepts_a_list_of_groups() {
        let text = broken(
            LINUX,
            "security_group_id    = var.security_group_id",
            "security_group_ids = [var.security_group_id]",
        );
        assert_eq!(check(Os::Linux, &text), vec![]);
    }

    #[test]
    fn no_inbound_rejects_a_temporary_group() {
        for (from, to) in [
            ("  security_group_id    = var.security_group_id\n", ""),
            (
                "  iam_instance_profile",
                "  temporary_security_group_source_cidrs = [\"10.0.0.0/8\"]\n  iam_instance_profile",
            ),
            (
                "  iam_instance_profile",
                "  temporary_security_group_source_public_ip = true\n  iam_instance_profile",
            ),
        ] {
            let text = broken(LINUX, from, to);
            assert_only(rule::NO_INBOUND, &check(Os::Linux, &text));
        }
    }

    #[test]
    fn instance_profile_rejects_an_empty_profile() {
        let text = broken(
            LINUX,
            "iam_instance_profile = var.instance_profile",
            "iam_instance_profile = \"\"",
        );
        assert_only(rule::INSTANCE_PROFILE, &check(Os::Linux, &text));
    }

    #[test]
    fn communicator_rejects_linux_without_session_manager() {
        for (from, to) in [
            (
                "ssh_interface        = \"session_manager\"",
                "ssh_interface = \"private_ip\"",
            ),
            ("communicator         = \"ssh\"", "communicator = \"winrm\""),
        ] {
            let text = broken(LINUX, from, to);
            assert_only(rule::COMMUNICATOR, &check(Os::Linux, &text));
        }
    }

    #[test]
    fn communicator_rejects_windows_without_https() {
        for (from, to) in [
            ("winrm_use_ssl  = true", "winrm_use_ssl = false"),
            ("communicator   = \"winrm\"", "communicator = \"ssh\""),
            ("  user_data_file = ", "  user_data_file_gone = "),
        ] {
            let text = broken(WINDOWS, from, to);
            assert_only(rule::COMMUNICATOR, &check(Os::Windows, &text));
        }
    }

    #[test]
    fn no_public_ip_accepts_an_explicit_false() {
        let text = broken(
            LINUX,
            "  iam_instance_profile",
            "  associate_public_ip_address = false\n  iam_instance_profile",
        );
        assert_eq!(check(Os::Linux, &text), vec![]);
    }

    #[test]
    fn no_public_ip_rejects_a_public_address() {
        let text = broken(
            LINUX,
            "  iam_instance_profile",
            "  associate_public_ip_address = true\n  iam_instance_profile",
        );
        assert_only(rule::NO_PUBLIC_IP, &check(Os::Linux, &text));
    }
}
