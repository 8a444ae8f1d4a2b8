use std::sync::Mutex;
use std::time::{Duration, Instant};

use gild_core::fakes::{MemoryTemplates, StoredTemplate};
use gild_core::ports::{ApprovalRuleTemplates, PortResult, TemplateInfo};
use gild_lambda::retry::{GaveUp, Stop};
use serde_json::{json, Value};

use super::Handler;
use crate::response::{Respond, ResponseError, ResponseUrl};
use crate::TemplateFnError;

const STACK: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/gild/0f1e";
const URL: &str =
    "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/a?X-Amz-Signature=s";

#[derive(Default)]
struct Recorded {
    answers: Mutex<Vec<Value>>,
    refuse: bool,
}

impl Respond for Recorded {
    async fn put(
        &self,
        _url: &ResponseUrl,
        body: Vec<u8>,
        _cutoff: Instant,
    ) -> Result<(), GaveUp<ResponseError>> {
        if self.refuse {
            return Err(GaveUp {
                error: ResponseError::Status {
                    url: "s3".into(),
                    status: 403,
                },
                attempts: 1,
                stop: Stop::Final,
            });
        }
        let answer = serde_json::from_slice(&body).expect("answers are JSON");
        self.answers.lock().expect("lock").push(answer);
        Ok(())
    }
}

impl Recorded {
    fn last(&self) -> Value {
        self.answers
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("an answer")
    }
}

fn properties(repository: &str) -> Value {
    json!({
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:gild-approval-template",
        "ServiceTimeout": "300",
        "TemplateName": "gild-approval",
        "RepositoryName": repository,
        "Branch": "main",
        "ReviewerRoleArn": "arn:aws:iam::123456789012:role/gild-ReviewerRole-X",
    })
}

fn request(kind: &str, properties: Value) -> Value {
    let mut event = json!({
        "RequestType": kind,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:gild-approval-template",
        "ResponseURL": URL,
        "StackId": STACK,
        "RequestId": "req-1",
        "ResourceType": "Custom::ApprovalRuleTemplate",
        "LogicalResourceId": "ApprovalRuleTemplate",
        "ResourceProperties": properties,
    });
    if kind != "Create" {
        event["PhysicalResourceId"] = json!("gild-approval");
    }
    if kind == "Update" {
        event["OldResourceProperties"] = properties_of(&event);
    }
    event
}

fn properties_of(event: &Value) -> Value {
    event["ResourceProperties"].clone()
}

fn handler() -> Handler<MemoryTemplates, Recorded> {
    Handler::new(
        MemoryTemplates::with_repositories(&["images"]),
        Recorded::default(),
        false,
    )
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

#[tokio::test]
async fn create_then_delete_answer_success_with_the_template_name() {
    let h = handler();
    let out = h
        .handle(request("Create", properties("images")), soon(), "stream")
        .await
        .expect("answered");
    assert_eq!(out["status"], "SUCCESS");
    let answer = h.respond().last();
    assert_eq!(answer["Status"], "SUCCESS");
    assert_eq!(answer["PhysicalResourceId"], "gild-approval");
    assert_eq!(answer["RequestId"], "req-1");
    assert!(h.templates().snapshot().contains_key("gild-approval"));

    h.handle(request("Delete", properties("images")), soon(), "stream")
        .await
        .expect("answered");
    assert_eq!(h.respond().last()["Status"], "SUCCESS");
    assert!(h.templates().snapshot().is_empty());
}

#[tokio::test]
async fn bad_properties_are_answered_failed_before_any_call() {
    let h = handler();
    let mut props = properties("images");
    props["ReviewerRoleArn"] = json!("arn:aws:iam::123456789012:user/mallory");
    h.handle(request("Create", props), soon(), "2026/12/06/[$LATEST]abc")
        .await
        .expect("answered");
    let answer = h.respond().last();
    assert_eq!(answer["Status"], "FAILED");
    let reason = answer["Reason"].as_str().unwrap_or_default();
    assert!(reason.contains("ReviewerRoleArn"), "{reason}");
    assert!(reason.contains("[$LATEST]abc"), "{reason}");
    // An id naming no template: the rollback's Delete finds nothing.
    assert_eq!(answer["PhysicalResourceId"], "ApprovalRuleTemplate-req-1");
    assert!(h.templates().calls().is_empty());

    let mut unknown = request("Create", properties("images"));
    unknown["RequestType"] = json!("Replace");
    h.handle(unknown, soon(), "s").await.expect("answered");
    assert_eq!(h.respond().last()["Status"], "FAILED");
}

#[tokio::test]
async fn a_template_someone_else_owns_is_refused_and_kept() {
    let h = handler();
    let theirs = StoredTemplate {
        content: "{}".into(),
        description: "security team".into(),
        repositories: Default::default(),
    };
    h.templates()
        .templates
        .lock()
        .expect("lock")
        .insert("gild-approval".into(), theirs.clone());
    h.handle(request("Create", properties("images")), soon(), "s")
        .await
        .expect("answered");
    let answer = h.respond().last();
    assert_eq!(answer["Status"], "FAILED");
    assert!(answer["Reason"]
        .as_str()
        .is_some_and(|r| r.contains("TemplateNotOurs")));
    assert_eq!(h.templates().snapshot()["gild-approval"], theirs);
}

#[tokio::test]
async fn a_failed_update_keeps_the_physical_id_cloudformation_knows() {
    let h = handler();
    let mut update = request("Update", properties("images"));
    update["PhysicalResourceId"] = json!("gild-approval-v1");
    update["ResourceProperties"] = properties("no-such-repository");
    h.handle(update, soon(), "s").await.expect("answered");
    let answer = h.respond().last();
    assert_eq!(answer["Status"], "FAILED");
    assert_eq!(answer["PhysicalResourceId"], "gild-approval-v1");
}

#[tokio::test]
async fn nowhere_to_answer_is_an_error_and_nothing_is_done() {
    let h = handler();
    let mut no_url = request("Create", properties("images"));
    no_url
        .as_object_mut()
        .expect("object")
        .remove("ResponseURL");
    let err = h.handle(no_url, soon(), "s").await.expect_err("no url");
    assert_eq!(err.name(), "BadEvent");

    let mut elsewhere = request("Create", properties("images"));
    elsewhere["ResponseURL"] = json!("http://169.254.169.254/latest/meta-data");
    let err = h.handle(elsewhere, soon(), "s").await.expect_err("http");
    assert!(matches!(err, TemplateFnError::BadEvent(_)), "{err}");
    assert!(h.templates().calls().is_empty());
    assert!(h.respond().answers.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn an_answer_that_cannot_be_delivered_fails_the_invocation_for_a_retry() {
    let h = Handler::new(
        MemoryTemplates::with_repositories(&["images"]),
        Recorded {
            refuse: true,
            ..Default::default()
        },
        false,
    );
    let err = h
        .handle(request("Create", properties("images")), soon(), "s")
        .await
        .expect_err("not delivered");
    assert_eq!(err.name(), "ResponseNotSent");
    // The retry finds the template made and answers the same.
    assert!(h.templates().snapshot().contains_key("gild-approval"));
}

struct Hanging;

impl ApprovalRuleTemplates for Hanging {
    async fn get(&self, _: &str) -> PortResult<Option<TemplateInfo>> {
        std::future::pending().await
    }
    async fn create(&self, _: &str, _: &str, _: &str) -> PortResult<()> {
        std::future::pending().await
    }
    async fn update_content(&self, _: &str, _: &str) -> PortResult<()> {
        std::future::pending().await
    }
    async fn associate(&self, _: &str, _: &str) -> PortResult<()> {
        std::future::pending().await
    }
    async fn disassociate(&self, _: &str, _: &str) -> PortResult<()> {
        std::future::pending().await
    }
    async fn repositories(&self, _: &str) -> PortResult<Vec<String>> {
        std::future::pending().await
    }
    async fn delete(&self, _: &str) -> PortResult<()> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn codecommit_that_never_answers_is_answered_failed_in_time() {
    let h = Handler::new(Hanging, Recorded::default(), false);
    // The work stops DEADLINE_MARGIN before the deadline: a second from now.
    let deadline = Instant::now() + super::DEADLINE_MARGIN + Duration::from_secs(1);
    h.handle(request("Create", properties("images")), deadline, "s")
        .await
        .expect("answered");
    let answer = h.respond().last();
    assert_eq!(answer["Status"], "FAILED");
    assert!(answer["Reason"]
        .as_str()
        .is_some_and(|r| r.contains("did not answer")));
}
