//! The stack's approval-rule template (`Custom::ApprovalRuleTemplate`),
//! with the harness in CloudFormation's place: the real approval-template
//! binary gets each request CloudFormation would send, under its own role
//! through the IAM gate, against the CodeCommit stub's templates, and its
//! answer is read from the PUT to the response URL.

use gild_tests::codecommit::CodeCommitStub;
use gild_tests::custom_resource::{play, Played, Request, ResponseBucket};
use gild_tests::pipeline::Options;
use gild_tests::stack::template_without;
use serde_json::{json, Value};

// Only the deploy is used here; the wire tests use the rest.
#[allow(dead_code)]
mod support;

const RESOURCE: &str = "ApprovalRuleTemplate";

/// The one answer a request got; the function itself succeeded (it
/// answered CloudFormation, whatever the outcome).
fn answer(played: &Played) -> &Value {
    assert!(
        played.invocation.outcome.is_ok(),
        "{:?}",
        played.invocation.outcome
    );
    assert_eq!(played.answers.len(), 1, "{:?}", played.answers);
    &played.answers[0]
}

fn codecommit(stub: &CodeCommitStub) -> aws_sdk_codecommit::Client {
    aws_sdk_codecommit::Client::new(&gild_tests::aws::sdk_config(&stub.endpoint()))
}

#[tokio::test]
async fn the_template_is_created_kept_current_and_removed_through_its_function() {
    let Some(pipeline) = support::deployed_with(Options::default()).await else {
        return;
    };
    let bucket = ResponseBucket::start().await.expect("bucket");
    let create = Request::of(&pipeline, "Create", RESOURCE).expect("request");
    let name = create.properties["TemplateName"]
        .as_str()
        .expect("name")
        .to_owned();

    let created = play(&pipeline, &bucket, &create).await.expect("create");
    let answer_to_create = answer(&created);
    assert_eq!(answer_to_create["Status"], "SUCCESS", "{answer_to_create}");
    assert_eq!(answer_to_create["PhysicalResourceId"], name.as_str());
    assert_eq!(answer_to_create["StackId"], pipeline.deployment.stack_id());
    let templates = pipeline.codecommit.approval_rule_templates();
    let (content, description, repositories) = &templates[&name];
    let content: Value = serde_json::from_str(content).expect("content");
    let reviewer = create.properties["ReviewerRoleArn"]
        .as_str()
        .expect("role")
        .rsplit('/')
        .next()
        .expect("name");
    assert_eq!(
        content["Statements"][0]["ApprovalPoolMembers"],
        json!([format!(
            "arn:aws:sts::123456789012:assumed-role/{reviewer}/*"
        )])
    );
    assert_eq!(content["DestinationReferences"], json!(["refs/heads/main"]));
    assert_eq!(repositories, &[pipeline.repository().to_owned()]);
    assert!(
        description.ends_with(&pipeline.deployment.stack_id()),
        "{description}"
    );

    // Lambda retries an asynchronous invocation: the same request again
    // answers the same and changes nothing.
    let again = play(&pipeline, &bucket, &create).await.expect("again");
    assert_eq!(answer(&again)["Status"], "SUCCESS");
    assert_eq!(pipeline.codecommit.approval_rule_templates(), templates);

    // The tracked branch changes: the content follows, same template.
    let mut update = Request::of(&pipeline, "Update", RESOURCE).expect("request");
    update.old_properties = Some(update.properties.clone());
    update.physical_id = Some(name.clone());
    update.properties["Branch"] = json!("release");
    let updated = play(&pipeline, &bucket, &update).await.expect("update");
    assert_eq!(answer(&updated)["PhysicalResourceId"], name.as_str());
    let templates = pipeline.codecommit.approval_rule_templates();
    let content: Value = serde_json::from_str(&templates[&name].0).expect("content");
    assert_eq!(
        content["DestinationReferences"],
        json!(["refs/heads/release"])
    );

    // A new name is a replacement: the new template now, the old one on
    // CloudFormation's Delete of the old physical id.
    let mut rename = Request::of(&pipeline, "Update", RESOURCE).expect("request");
    rename.old_properties = Some(update.properties.clone());
    rename.physical_id = Some(name.clone());
    rename.properties["TemplateName"] = json!(format!("{name}-2"));
    let renamed = play(&pipeline, &bucket, &rename).await.expect("rename");
    assert_eq!(
        answer(&renamed)["PhysicalResourceId"],
        format!("{name}-2").as_str()
    );
    assert_eq!(pipeline.codecommit.approval_rule_templates().len(), 2);
    for physical in [name.clone(), format!("{name}-2")] {
        let mut delete = Request::of(&pipeline, "Delete", RESOURCE).expect("request");
        delete.physical_id = Some(physical);
        let deleted = play(&pipeline, &bucket, &delete).await.expect("delete");
        assert_eq!(answer(&deleted)["Status"], "SUCCESS");
    }
    assert!(pipeline.codecommit.approval_rule_templates().is_empty());
    // Deleting what is gone (a retried Delete) is done.
    let mut delete = Request::of(&pipeline, "Delete", RESOURCE).expect("request");
    delete.physical_id = Some(name);
    let deleted = play(&pipeline, &bucket, &delete).await.expect("delete");
    assert_eq!(answer(&deleted)["Status"], "SUCCESS");
    // Every CodeCommit call above went through the gate under the
    // function's role: the creates, reads, updates, associations, listings
    // and deletes, each allowed.
    assert!(pipeline.assert_every_call_allowed() >= 15);
}

#[tokio::test]
async fn a_name_someone_else_holds_is_answered_failed_and_their_template_kept() {
    let Some(pipeline) = support::deployed_with(Options::default()).await else {
        return;
    };
    let bucket = ResponseBucket::start().await.expect("bucket");
    let create = Request::of(&pipeline, "Create", RESOURCE).expect("request");
    let name = create.properties["TemplateName"].as_str().expect("name");
    codecommit(&pipeline.codecommit)
        .create_approval_rule_template()
        .approval_rule_template_name(name)
        .approval_rule_template_content(
            r#"{"Version": "2018-11-08", "Statements": [{"Type": "Approvers", "NumberOfApprovalsNeeded": 2}]}"#,
        )
        .approval_rule_template_description("the security team's two reviewers")
        .send()
        .await
        .expect("theirs");
    let theirs = pipeline.codecommit.approval_rule_templates();

    let refused = play(&pipeline, &bucket, &create).await.expect("create");
    let answer_to_create = answer(&refused);
    assert_eq!(answer_to_create["Status"], "FAILED");
    let reason = answer_to_create["Reason"].as_str().unwrap_or_default();
    assert!(reason.contains("is not this stack's"), "{reason}");
    assert!(reason.contains("security team"), "{reason}");

    // CloudFormation's rollback deletes the physical id the Create named.
    let mut rollback = Request::of(&pipeline, "Delete", RESOURCE).expect("request");
    rollback.physical_id = answer_to_create["PhysicalResourceId"]
        .as_str()
        .map(str::to_owned);
    let rolled_back = play(&pipeline, &bucket, &rollback).await.expect("delete");
    assert_eq!(answer(&rolled_back)["Status"], "SUCCESS");
    assert_eq!(pipeline.codecommit.approval_rule_templates(), theirs);
}

#[tokio::test]
async fn a_role_without_the_association_grant_is_refused_and_the_answer_says_so() {
    let copy = template_without(
        "ApprovalTemplateRole",
        "- codecommit:AssociateApprovalRuleTemplateWithRepository",
        "- codecommit:DisassociateApprovalRuleTemplateFromRepository",
    );
    let Some(pipeline) = support::deployed_with(Options {
        template: copy.path().to_path_buf(),
        ..Options::default()
    })
    .await
    else {
        return;
    };
    let bucket = ResponseBucket::start().await.expect("bucket");
    let create = Request::of(&pipeline, "Create", RESOURCE).expect("request");
    let played = play(&pipeline, &bucket, &create).await.expect("create");
    let answer_to_create = answer(&played);
    assert_eq!(answer_to_create["Status"], "FAILED");
    let reason = answer_to_create["Reason"].as_str().unwrap_or_default();
    assert!(reason.contains("AccessDenied"), "{reason}");
    let refused = pipeline.refused_calls().expect("refusals");
    assert!(
        refused
            .iter()
            .any(|r| r.contains("codecommit:AssociateApprovalRuleTemplateWithRepository")),
        "{refused:?}"
    );
}
