use gild_core::approval_rule::{description, ApprovalRule, Request};
use gild_core::fakes::MemoryTemplates;
use gild_core::ports::PortError;
use serde_json::json;

use gild_core::retry::Backoff;

use super::TemplateError;

/// Fast retries: the tests count calls, not wait.
async fn carry_out(
    templates: &MemoryTemplates,
    stack: &str,
    request: &Request,
) -> Result<(), TemplateError> {
    let backoff = Backoff {
        base: std::time::Duration::from_millis(1),
        cap: std::time::Duration::from_millis(2),
        attempts: 3,
    };
    super::carry_out(templates, stack, request, &backoff).await
}

const STACK: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/gild/0f1e";

fn rule(repository: &str, branch: &str) -> ApprovalRule {
    ApprovalRule::from_properties(&json!({
        "TemplateName": "gild-approval",
        "RepositoryName": repository,
        "Branch": branch,
        "ReviewerRoleArn": "arn:aws:iam::123456789012:role/gild-ReviewerRole-X",
    }))
    .expect("rule")
}

fn templates() -> MemoryTemplates {
    MemoryTemplates::with_repositories(&["images", "images-2"])
}

fn ops(templates: &MemoryTemplates, op: &str) -> usize {
    templates
        .calls()
        .iter()
        .filter(|c| c.starts_with(op))
        .count()
}

#[tokio::test]
async fn create_makes_the_template_and_associates_it() {
    let t = templates();
    let r = rule("images", "main");
    carry_out(&t, STACK, &Request::Create(r.clone()))
        .await
        .expect("create");
    let stored = &t.snapshot()["gild-approval"];
    assert_eq!(stored.content, r.content());
    assert_eq!(stored.description, description(STACK));
    assert_eq!(stored.repositories.iter().collect::<Vec<_>>(), ["images"]);
}

#[tokio::test]
async fn a_create_delivered_twice_ends_the_same_without_a_second_create() {
    let t = templates();
    let request = Request::Create(rule("images", "main"));
    carry_out(&t, STACK, &request).await.expect("first");
    let after_first = t.snapshot();
    carry_out(&t, STACK, &request).await.expect("again");
    assert_eq!(t.snapshot(), after_first);
    assert_eq!(ops(&t, "CreateApprovalRuleTemplate"), 1);
    assert_eq!(ops(&t, "UpdateApprovalRuleTemplateContent"), 0);
}

#[tokio::test]
async fn a_name_someone_else_holds_is_refused_and_their_template_kept() {
    let t = templates();
    t.templates.lock().expect("lock").insert(
        "gild-approval".into(),
        gild_core::fakes::StoredTemplate {
            content: "{\"security\": true}".into(),
            description: "the security team's rule".into(),
            repositories: ["images".to_owned()].into(),
        },
    );
    let before = t.snapshot();
    let err = carry_out(&t, STACK, &Request::Create(rule("images", "main")))
        .await
        .expect_err("taken");
    assert!(matches!(err, TemplateError::NotOurs { .. }), "{err}");
    assert!(err.to_string().contains("security team"), "{err}");
    // Nor does the rollback's Delete of that name remove it.
    carry_out(
        &t,
        STACK,
        &Request::Delete {
            physical_id: "gild-approval".into(),
        },
    )
    .await
    .expect("delete leaves it");
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn a_create_that_loses_a_race_reads_again() {
    let t = templates();
    t.fail(
        "CreateApprovalRuleTemplate",
        PortError::ConditionFailed {
            service: "CodeCommit",
            operation: "CreateApprovalRuleTemplate",
            message: "exists".into(),
        },
    );
    carry_out(&t, STACK, &Request::Create(rule("images", "main")))
        .await
        .expect("create");
    assert_eq!(ops(&t, "GetApprovalRuleTemplate"), 2);
    assert!(t.snapshot().contains_key("gild-approval"));
}

#[tokio::test]
async fn an_update_rewrites_only_a_changed_content_and_moves_the_association() {
    let t = templates();
    let (old, same) = (rule("images", "main"), rule("images", "main"));
    carry_out(&t, STACK, &Request::Create(old.clone()))
        .await
        .expect("create");
    carry_out(
        &t,
        STACK,
        &Request::Update {
            old: Some(old.clone()),
            new: same,
        },
    )
    .await
    .expect("same");
    assert_eq!(ops(&t, "UpdateApprovalRuleTemplateContent"), 0);

    let moved = rule("images-2", "release");
    carry_out(
        &t,
        STACK,
        &Request::Update {
            old: Some(old),
            new: moved.clone(),
        },
    )
    .await
    .expect("moved");
    let stored = &t.snapshot()["gild-approval"];
    assert_eq!(stored.content, moved.content());
    assert_eq!(stored.repositories.iter().collect::<Vec<_>>(), ["images-2"]);
    assert_eq!(ops(&t, "UpdateApprovalRuleTemplateContent"), 1);
}

#[tokio::test]
async fn delete_takes_it_off_every_repository_then_deletes_and_repeats_as_done() {
    let t = templates();
    carry_out(&t, STACK, &Request::Create(rule("images", "main")))
        .await
        .expect("create");
    // Someone associated it with a second repository by hand.
    gild_core::ports::ApprovalRuleTemplates::associate(&t, "gild-approval", "images-2")
        .await
        .expect("associate");
    let delete = Request::Delete {
        physical_id: "gild-approval".into(),
    };
    carry_out(&t, STACK, &delete).await.expect("delete");
    assert!(t.snapshot().is_empty());
    carry_out(&t, STACK, &delete).await.expect("again");
    assert_eq!(ops(&t, "DeleteApprovalRuleTemplate"), 1);
}

#[tokio::test]
async fn an_unknown_repository_fails_at_once_and_throttling_is_retried_then_given_up() {
    let t = templates();
    let err = carry_out(&t, STACK, &Request::Create(rule("no-such-repo", "main")))
        .await
        .expect_err("unknown repository");
    assert_eq!(err.name(), "CodeCommitFailed");
    assert!(err.to_string().contains("no-such-repo"), "{err}");

    let throttled = || PortError::Throttled {
        service: "CodeCommit",
        operation: "GetApprovalRuleTemplate",
        code: "ThrottlingException".into(),
        message: "slow down".into(),
    };
    // Throttled once: retried, and done.
    let t = templates();
    t.fail("GetApprovalRuleTemplate", throttled());
    carry_out(&t, STACK, &Request::Create(rule("images", "main")))
        .await
        .expect("retried");
    assert!(t.snapshot().contains_key("gild-approval"));
    // Throttled on every try: given up after the backoff's attempts.
    let t = templates();
    for _ in 0..3 {
        t.fail("GetApprovalRuleTemplate", throttled());
    }
    let err = carry_out(&t, STACK, &Request::Create(rule("images", "main")))
        .await
        .expect_err("throttled");
    assert!(err.to_string().contains("throttled"), "{err}");
    assert_eq!(ops(&t, "GetApprovalRuleTemplate"), 3);
    assert!(t.snapshot().is_empty());
}
