//! `packer { required_plugins { ... } }`: the amazon and ansible plugins,
//! from HashiCorp, each pinned to one exact version.

use std::collections::BTreeMap;

use hcl::expr::Expression;

use super::body::{blocks, Family};
use super::{rule, Finding};

/// The plugins every family needs, by name, with their source.
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

/// Every `required_plugins` entry, by plugin name, with the file it is in
/// (a later declaration replaces an earlier one).
fn declared<'f>(family: &'f Family<'_>) -> BTreeMap<String, (&'f str, &'f Expression)> {
    let mut declared = BTreeMap::new();
    for (file, packer) in family.blocks("packer") {
        for required in blocks(packer.body(), "required_plugins") {
            for attribute in required.body().attributes() {
                declared.insert(attribute.key().to_owned(), (file, attribute.expr()));
            }
        }
    }
    declared
}

/// Plugin versions pinned by a family, by plugin name.
pub(super) fn pins(family: &Family<'_>) -> BTreeMap<String, String> {
    let mut pins = BTreeMap::new();
    for (_, packer) in family.blocks("packer") {
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

/// [`rule::PLUGINS_PINNED`].
pub(super) fn check(family: &Family<'_>, out: &mut Vec<Finding>) {
    let declared = declared(family);
    for (plugin, source) in PLUGINS {
        let found = declared
            .get(plugin)
            .and_then(|(file, expr)| Some((*file, family.entries(expr)?)));
        let Some((file, spec)) = found else {
            out.push(Finding::new(
                family.path,
                rule::PLUGINS_PINNED,
                format!("packer.required_plugins has no `{plugin}` entry (source {source})"),
            ));
            continue;
        };
        let text = |key: &str| spec.get(key).and_then(|v| family.text(v));
        if text("source").as_deref() != Some(source) {
            out.push(Finding::new(
                file,
                rule::PLUGINS_PINNED,
                format!(
                    "plugin `{plugin}` must come from {source}, not {:?}",
                    text("source")
                ),
            ));
        }
        match text("version") {
            Some(version) if is_exact_pin(&version) => {}
            other => out.push(Finding::new(
                file,
                rule::PLUGINS_PINNED,
                format!("plugin `{plugin}` must be pinned exactly (`= x.y.z`), not {other:?}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{assert_only, broken, check, family, LINUX};
    use super::super::Template;
    use super::*;
    use gild_core::catalog::Os;

    #[test]
    fn exact_pins_only() {
        for pin in ["= 1.8.0", "=1.8.0", " = 10.20.30 "] {
            assert!(is_exact_pin(pin), "{pin}");
        }
        for pin in [
            ">= 1.8.0", "~> 1.8", "1.8.0", "= 1.8", "= 1.8.x", "= 1..0", "",
        ] {
            assert!(!is_exact_pin(pin), "{pin}");
        }
    }

    #[test]
    fn plugins_pinned_accepts_pins_through_locals() {
        let text = broken(
            LINUX,
            "version = \"= 1.8.0\"",
            "version = local.amazon_version",
        );
        let text = broken(
            &text,
            "locals {",
            "locals {\n  amazon_version = \"= 1.8.0\"",
        );
        assert_eq!(check(Os::Linux, &text), vec![]);
    }

    #[test]
    fn plugins_pinned_rejects_a_floating_version() {
        let text = broken(LINUX, "version = \"= 1.8.0\"", "version = \">= 1.8.0\"");
        assert_only(rule::PLUGINS_PINNED, &check(Os::Linux, &text));
    }

    #[test]
    fn plugins_pinned_rejects_a_missing_plugin() {
        let text = broken(LINUX, "    ansible = {", "    ansible_gone = {");
        assert_only(rule::PLUGINS_PINNED, &check(Os::Linux, &text));
    }

    #[test]
    fn plugins_pinned_rejects_another_source() {
        let text = broken(
            LINUX,
            "github.com/hashicorp/amazon",
            "github.com/someone/amazon",
        );
        assert_only(rule::PLUGINS_PINNED, &check(Os::Linux, &text));
    }

    #[test]
    fn pins_are_read_by_plugin() {
        let family = family("demo-linux", Os::Linux);
        let templates = [Template {
            file: "t.pkr.hcl".into(),
            text: LINUX.into(),
        }];
        let parsed = Family::parse(&family, &templates, &mut Vec::new());
        let pins = pins(&parsed);
        assert_eq!(pins.get("amazon").map(String::as_str), Some("= 1.8.0"));
        assert_eq!(pins.get("ansible").map(String::as_str), Some("= 1.1.4"));
    }
}
