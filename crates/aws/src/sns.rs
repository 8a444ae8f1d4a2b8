//! Announcing promoted images on an SNS topic.

use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;
use gild_core::ports::{Notifier, PortError, PortResult, Publication};

use crate::classify;

const SERVICE: &str = "SNS";

/// SNS rejects longer subjects.
const MAX_SUBJECT_CHARS: usize = 100;

pub struct SnsNotifier {
    client: Client,
    topic_arn: String,
}

impl SnsNotifier {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        SnsNotifier {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

/// SNS refuses the whole publication over a subject that is not printable
/// ASCII, starts with whitespace or runs past 100 characters; an image name
/// must not be able to silence the announcement, so the subject is mended.
fn subject(raw: &str) -> String {
    raw.trim_start()
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .take(MAX_SUBJECT_CHARS)
        .collect()
}

fn invalid(message: String) -> PortError {
    PortError::InvalidResponse {
        service: SERVICE,
        operation: "Publish",
        message,
    }
}

impl Notifier for SnsNotifier {
    async fn publish(&self, publication: &Publication) -> PortResult<String> {
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .message_structure("json")
            .message(&publication.message);
        let subject = subject(&publication.subject);
        // SNS rejects an empty subject but accepts none.
        if !subject.is_empty() {
            request = request.subject(subject);
        }
        for (name, value) in &publication.attributes {
            // SNS rejects empty attribute values; a filter policy cannot
            // match on one anyway.
            if value.is_empty() {
                continue;
            }
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| invalid(e.to_string()))?;
            request = request.message_attributes(name, attribute);
        }
        let out = request
            .send()
            .await
            .map_err(|e| classify(SERVICE, "Publish", e))?;
        out.message_id()
            .map(str::to_owned)
            .ok_or_else(|| invalid("no message id in the response".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_made_acceptable_to_sns() {
        assert_eq!(subject("gild: al2023 ami-1"), "gild: al2023 ami-1");
        assert_eq!(subject("  héllo\nworld"), "h?llo?world");
        assert_eq!(subject(&"x".repeat(150)).len(), MAX_SUBJECT_CHARS);
        assert_eq!(subject("☃".repeat(120).as_str()), "?".repeat(100));
        assert_eq!(subject(" \t"), "");
    }
}
