//! The SNS event Lambda receives for a topic subscription (protocol
//! `lambda`), as AWS documents it:
//! `{"Records": [{"EventSource": "aws:sns", "Sns": {"Message": …}}]}`,
//! read with `aws_lambda_events`' [`SnsEvent`]. The payload arrives as any
//! JSON (`gild_lambda::run`), so a payload of another shape is a
//! [`SnsError`] naming what is wrong, never a panic or the runtime's own
//! deserialization error.

use std::collections::BTreeMap;

use aws_lambda_events::event::sns::SnsEvent;
use serde_json::Value;

/// One SNS notification: the announcement body and what identifies it in logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub message_id: String,
    /// The `lambda` body of the publication: the announcement JSON.
    pub message: String,
    pub subject: Option<String>,
    pub topic_arn: Option<String>,
    /// String message attributes (`family`, `outcome`, `trigger`, `stage`).
    pub attributes: BTreeMap<String, String>,
}

/// Why an invocation payload is not an SNS event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnsError {
    #[error("not an SNS event: {0}")]
    Shape(String),
    #[error("the SNS event has no records")]
    NoRecords,
    #[error("record {index} comes from `{source_name}`, not aws:sns")]
    NotSns { index: usize, source_name: String },
}

pub fn parse(event: Value) -> Result<Vec<Record>, SnsError> {
    // A record from another source (SQS, S3, …) is named by its source
    // before its missing SNS fields are.
    let sources = event.get("Records").and_then(Value::as_array);
    for (index, record) in sources.into_iter().flatten().enumerate() {
        match record.get("EventSource").and_then(Value::as_str) {
            Some(source) if source != "aws:sns" => {
                return Err(SnsError::NotSns {
                    index,
                    source_name: source.to_owned(),
                })
            }
            _ => {}
        }
    }
    let event: SnsEvent =
        serde_json::from_value(event).map_err(|e| SnsError::Shape(e.to_string()))?;
    if event.records.is_empty() {
        return Err(SnsError::NoRecords);
    }
    let records = event.records.into_iter().map(|record| {
        let sns = record.sns;
        let attributes = sns
            .message_attributes
            .into_iter()
            .filter(|(_, a)| a.data_type == "String")
            .map(|(name, a)| (name, a.value))
            .collect();
        Record {
            message_id: sns.message_id,
            message: sns.message,
            subject: sns.subject,
            topic_arn: Some(sns.topic_arn),
            attributes,
        }
    });
    Ok(records.collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(text: &str) -> Value {
        serde_json::from_str(text).expect("fixture is JSON")
    }

    #[test]
    fn reads_the_documented_event() {
        let records = parse(fixture(include_str!(
            "../../../tests/fixtures/slack/sns-test-failed.json"
        )))
        .expect("parses");
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(r.message_id, "1c0e4a7b-3f2d-5e6a-8b9c-0d1e2f3a4b5c");
        assert_eq!(
            r.subject.as_deref(),
            Some("gild: debian13-base ami-0123456789abcdef0 FAILED at test")
        );
        assert_eq!(r.attributes.get("stage").map(String::as_str), Some("test"));
        assert!(r.message.contains("\"schema\":\"gild.announcement/1\""));
    }

    #[test]
    fn null_subject_and_binary_attributes_are_fine() {
        // A documented event (every field SNS sends) with no subject and
        // only a binary attribute.
        let mut event = fixture(include_str!(
            "../../../tests/fixtures/slack/sns-promoted.json"
        ));
        let sns = &mut event["Records"][0]["Sns"];
        sns["Message"] = json!("{}");
        sns["Subject"] = Value::Null;
        sns["MessageAttributes"] = json!({"Blob": {"Type": "Binary", "Value": "AAEC"}});
        let records = parse(event).expect("parses");
        assert_eq!(records[0].subject, None);
        assert!(records[0].attributes.is_empty());
    }

    #[test]
    fn other_payloads_are_refused_clearly() {
        let malformed = parse(fixture(include_str!(
            "../../../tests/fixtures/slack/sns-malformed.json"
        )))
        .expect_err("no Message");
        assert!(malformed.to_string().contains("Message"), "{malformed}");
        assert_eq!(parse(json!({"Records": []})), Err(SnsError::NoRecords));
        assert!(matches!(parse(json!({})), Err(SnsError::Shape(_))));
        assert!(matches!(parse(json!("hello")), Err(SnsError::Shape(_))));
        let sqs = json!({"Records": [{"EventSource": "aws:sqs", "Sns": {"MessageId": "m", "Message": "x"}}]});
        assert_eq!(
            parse(sqs),
            Err(SnsError::NotSns {
                index: 0,
                source_name: "aws:sqs".into()
            })
        );
        // An EventBridge event sent here by mistake.
        let eb = json!({"version": "0", "detail-type": "Scheduled Event", "detail": {}});
        assert!(matches!(parse(eb), Err(SnsError::Shape(_))));
    }
}
