//! [`rule::NO_CREDENTIALS`]: credential-looking literals in a text: AWS
//! access key ids, secret key settings, literal passwords and private keys.
//! References (`var.x`, `${...}`) and empty strings are fine.

use super::{rule, Finding};

/// What in `text` looks like a credential; `file` names it in the findings.
pub(super) fn scan(file: &str, text: &str) -> Vec<Finding> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let mut finding = |what: &str| {
            found.push(Finding::new(
                file,
                rule::NO_CREDENTIALS,
                format!("line {}: {what}", number + 1),
            ));
        };
        let lower = line.to_ascii_lowercase();
        // AKIA[0-9A-Z]{16}
        let bytes = line.as_bytes();
        for start in line.match_indices("AKIA").map(|(i, _)| i) {
            let id = bytes.get(start + 4..start + 20);
            if id.is_some_and(|id| {
                id.iter()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
            }) {
                finding("an AWS access key id");
            }
        }
        if lower.contains("aws_secret_access_key") {
            finding("aws_secret_access_key");
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
                finding("a literal password");
            }
        }
        if line.contains("-----BEGIN") && line.contains("PRIVATE KEY-----") {
            finding("a private key");
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::assert_only;
    use super::*;

    #[test]
    fn no_credentials_catches_literals() {
        // Built at run time, so this file holds no credential-looking text.
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
            assert_only(rule::NO_CREDENTIALS, &scan("sample", text));
        }
    }

    #[test]
    fn no_credentials_spares_references() {
        let fine = [
            "winrm_password = var.winrm_password",
            "password = \"${var.password}\"",
            "password = \"\"",
            "AKIA is a prefix, AKIAshort is not a key",
            "# the plugin passes ansible_password itself",
        ];
        for text in fine {
            assert_eq!(scan("sample", text), vec![], "false alarm: {text}");
        }
    }

    #[test]
    fn findings_name_the_line() {
        let found = scan("ansible/x.yml", "a: 1\naws_secret_access_key: x\n");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].file, "ansible/x.yml");
        assert_eq!(found[0].message, "line 2: aws_secret_access_key");
    }
}
