//! Block Kit as far as these messages use it (header, section, actions,
//! context): its limits, and [`block_kit_problems`], the check that a
//! payload keeps to them.

use std::collections::BTreeSet;

use serde_json::Value;

/// Block Kit's limits, from Slack's reference pages for blocks, block
/// elements and composition objects (lengths in characters).
pub mod limits {
    pub const BLOCKS: usize = 50;
    pub const HEADER_TEXT: usize = 150;
    pub const SECTION_TEXT: usize = 3000;
    pub const SECTION_FIELDS: usize = 10;
    pub const FIELD_TEXT: usize = 2000;
    pub const ACTIONS_ELEMENTS: usize = 25;
    pub const BUTTON_TEXT: usize = 75;
    pub const BUTTON_URL: usize = 3000;
    pub const ACTION_ID: usize = 255;
    pub const CONTEXT_ELEMENTS: usize = 10;
    pub const CONTEXT_TEXT: usize = 3000;
    /// Slack truncates longer messages; the fallback stays under it.
    pub const FALLBACK_TEXT: usize = 4000;
}

/// A URL a link button can carry: http(s), short enough, no spaces or
/// non-ASCII.
pub(crate) fn is_link(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= limits::BUTTON_URL
        && url.len() > "https://".len()
        && url.bytes().all(|b| b.is_ascii_graphic())
}

/// Every way `payload` breaks Block Kit's structure or limits, as far as
/// these messages use it (header, section, actions, context); empty when
/// Slack would take it.
pub fn block_kit_problems(payload: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut action_ids = BTreeSet::new();
    let chars = |v: &Value| v.as_str().map(|s| s.chars().count());
    match chars(&payload["text"]) {
        Some(n) if (1..=limits::FALLBACK_TEXT).contains(&n) => {}
        other => problems.push(format!("text: length {other:?}")),
    }
    let Some(blocks) = payload["blocks"].as_array() else {
        problems.push("blocks: not an array".into());
        return problems;
    };
    if blocks.is_empty() || blocks.len() > limits::BLOCKS {
        problems.push(format!("blocks: {} blocks", blocks.len()));
    }
    let text_object = |path: &str, v: &Value, types: &[&str], max: usize, out: &mut Vec<String>| {
        let kind = v["type"].as_str().unwrap_or("");
        if !types.contains(&kind) {
            out.push(format!("{path}: type `{kind}` not one of {types:?}"));
        }
        match chars(&v["text"]) {
            Some(n) if (1..=max).contains(&n) => {}
            other => out.push(format!("{path}: text length {other:?} (max {max})")),
        }
    };
    for (i, block) in blocks.iter().enumerate() {
        let path = format!("blocks[{i}]");
        match block["type"].as_str() {
            Some("header") => text_object(
                &path,
                &block["text"],
                &["plain_text"],
                limits::HEADER_TEXT,
                &mut problems,
            ),
            Some("section") => {
                let fields = block["fields"].as_array();
                if block.get("text").is_none() && fields.is_none() {
                    problems.push(format!("{path}: neither text nor fields"));
                }
                if let Some(text) = block.get("text") {
                    text_object(
                        &format!("{path}.text"),
                        text,
                        &["mrkdwn", "plain_text"],
                        limits::SECTION_TEXT,
                        &mut problems,
                    );
                }
                if let Some(fields) = fields {
                    if fields.is_empty() || fields.len() > limits::SECTION_FIELDS {
                        problems.push(format!("{path}: {} fields", fields.len()));
                    }
                    for (j, f) in fields.iter().enumerate() {
                        text_object(
                            &format!("{path}.fields[{j}]"),
                            f,
                            &["mrkdwn", "plain_text"],
                            limits::FIELD_TEXT,
                            &mut problems,
                        );
                    }
                }
            }
            Some("actions") => {
                let elements = block["elements"].as_array().cloned().unwrap_or_default();
                if elements.is_empty() || elements.len() > limits::ACTIONS_ELEMENTS {
                    problems.push(format!("{path}: {} elements", elements.len()));
                }
                for (j, e) in elements.iter().enumerate() {
                    let epath = format!("{path}.elements[{j}]");
                    if e["type"] != "button" {
                        problems.push(format!("{epath}: not a button"));
                    }
                    text_object(
                        &format!("{epath}.text"),
                        &e["text"],
                        &["plain_text"],
                        limits::BUTTON_TEXT,
                        &mut problems,
                    );
                    match e["url"].as_str() {
                        Some(url) if is_link(url) => {}
                        other => problems.push(format!("{epath}: url {other:?}")),
                    }
                    match e["action_id"].as_str() {
                        Some(id) if (1..=limits::ACTION_ID).contains(&id.len()) => {
                            if !action_ids.insert(id.to_owned()) {
                                problems.push(format!("{epath}: action_id `{id}` repeated"));
                            }
                        }
                        other => problems.push(format!("{epath}: action_id {other:?}")),
                    }
                }
            }
            Some("context") => {
                let elements = block["elements"].as_array().cloned().unwrap_or_default();
                if elements.is_empty() || elements.len() > limits::CONTEXT_ELEMENTS {
                    problems.push(format!("{path}: {} elements", elements.len()));
                }
                for (j, e) in elements.iter().enumerate() {
                    text_object(
                        &format!("{path}.elements[{j}]"),
                        e,
                        &["mrkdwn", "plain_text"],
                        limits::CONTEXT_TEXT,
                        &mut problems,
                    );
                }
            }
            other => problems.push(format!("{path}: unexpected block type {other:?}")),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{codecommit, promoted, rendered};
    use serde_json::json;

    #[test]
    fn the_validator_notices_broken_payloads() {
        let mut payload = rendered(&promoted(), &codecommit());
        payload["blocks"][0]["text"]["type"] = json!("mrkdwn");
        payload["blocks"][1]["fields"][0]["text"] = json!("x".repeat(2001));
        payload["blocks"][2]["elements"][1]["action_id"] = json!("bake_log");
        payload["blocks"][2]["elements"][0]["url"] = json!("ftp://x");
        payload["text"] = json!("");
        assert_eq!(
            block_kit_problems(&payload).len(),
            5,
            "{:?}",
            block_kit_problems(&payload)
        );
    }
}
