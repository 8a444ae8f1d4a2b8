//! A layered family's children, moved by their parent's completion: the
//! promotion queues each child from the new image (the one waiting in the
//! same run, or a new `parent:<image>` bake), the failure ends the waiting
//! ones, each announced once, however often the completion is delivered.

mod common;

use common::*;

const RUN_CHILD: &str = "app";
const GRANDCHILD: &str = "web";
const OTHER_CHILD: &str = "tools";

/// The parent (`FAMILY`) in testing, with children `app` (waiting in the
/// same run, itself parent of the waiting `web`) and `tools` (not in the
/// run).
async fn layered() -> Flow {
    let test = in_testing().await;
    let ledger = &test.ports().ledger;
    if let Some(parent) = ledger.records.lock().expect("lock").get_mut(&key()) {
        parent.children = vec![
            RUN_CHILD.into(),
            format!("{RUN_CHILD}/{GRANDCHILD}"),
            OTHER_CHILD.into(),
        ];
    }
    for (family, parent, children) in [
        (RUN_CHILD, FAMILY, vec![GRANDCHILD.to_owned()]),
        (GRANDCHILD, RUN_CHILD, Vec::new()),
    ] {
        let mut record = BakeRecord::requested(
            BakeKey::new(family, DEDUPE),
            Trigger::Schedule,
            Some("9f2c1e7".into()),
            0,
            60,
            "trigger-invocation",
        );
        record.parent = Some(parent.into());
        record.children = children;
        ledger.claim(&record, 0).await.expect("claim");
        let wait = Transition::of(Lane::Production, BakeState::Requested, Step::WaitForParent)
            .expect("a row");
        assert!(ledger
            .advance(&record.key, wait, &Change::default(), 1)
            .await
            .expect("advance"));
    }
    test
}

async fn record_of(f: &Flow, family: &str, dedupe: &str) -> Option<BakeRecord> {
    f.ports()
        .ledger
        .get(&BakeKey::new(family, dedupe))
        .await
        .expect("get")
}

#[tokio::test]
async fn a_promotion_queues_each_child_from_the_new_image_once() {
    let test = layered().await;
    let event = test_event("SUCCEEDED", &test_build(&test));
    for at in [20, 21, 22] {
        test.handle(event.clone(), at).await.expect("test");
    }
    assert_eq!(state(&test).await.state, BakeState::Promoted);
    let waited = record_of(&test, RUN_CHILD, DEDUPE).await.expect("app");
    assert_eq!(waited.state, BakeState::Queued);
    assert_eq!(waited.parent_image.as_deref(), Some(AMI));
    let other_key = format!("parent:{AMI}");
    let other = record_of(&test, OTHER_CHILD, &other_key)
        .await
        .expect("tools");
    assert_eq!(
        (
            other.state,
            other.trigger,
            other.parent.as_deref(),
            other.parent_image.as_deref()
        ),
        (BakeState::Queued, Trigger::Parent, Some(FAMILY), Some(AMI))
    );
    assert_eq!(other.commit.as_deref(), Some("9f2c1e7"));
    // The grandchild waits for its own parent's image.
    let grandchild = record_of(&test, GRANDCHILD, DEDUPE).await.expect("web");
    assert_eq!(grandchild.state, BakeState::Waiting);
    // One record per child, however often the promotion was delivered.
    assert_eq!(test.ports().ledger.snapshot().len(), 4);
    let published = test
        .ports()
        .notifier
        .published
        .lock()
        .expect("lock")
        .clone();
    assert_eq!(published.len(), 1, "{published:?}");
    assert!(
        published[0]
            .message
            .contains("app, tools (queued to rebuild from this image)"),
        "{}",
        published[0].message
    );
}

#[tokio::test]
async fn a_failed_parent_fails_the_waiting_children_each_announced_once() {
    let test = layered().await;
    let event = test_event("FAILED", &test_build(&test));
    for at in [20, 21] {
        test.handle(event.clone(), at).await.expect("test");
    }
    assert_eq!(state(&test).await.state, BakeState::Failed);
    for family in [RUN_CHILD, GRANDCHILD] {
        let child = record_of(&test, family, DEDUPE).await.expect("child");
        assert_eq!(
            (child.state, child.failed_stage),
            (BakeState::Failed, Some(Stage::Parent)),
            "{family}"
        );
        assert!(child
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("parent")));
    }
    // The child not in the run has no bake to fail, and none is made.
    assert!(record_of(&test, OTHER_CHILD, &format!("parent:{AMI}"))
        .await
        .is_none());
    let subjects = subjects(&test);
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    assert!(
        subjects
            .iter()
            .any(|s| s.contains(RUN_CHILD) && s.contains("FAILED at parent")),
        "{subjects:?}"
    );
    assert!(
        subjects
            .iter()
            .any(|s| s.contains(GRANDCHILD) && s.contains("FAILED at parent")),
        "{subjects:?}"
    );
}
