//! gild-aws's DynamoDB ledger and EventBridge bus over the wire against
//! moto holding the stack as deployed (`Pipeline`): the stack's own ledger
//! table with its `active` index, and its own `gild build` rule on the
//! default bus. (`gild build` itself, the CLI binary: `gild_build_e2e.rs`.)
//!
//! `state_properties.rs` already drives the ledger adapter through the
//! completion driver and the reconciler: one first claim per bake, the
//! driver's lock/advance/release along the table's rows, `get` and `active`
//! as the reconciler reads them, every change it made checked to be a row.
//! It never asserts what the adapter refuses or what it stores. Here,
//! directly, each write read back by a second reader (plain `GetItem`):
//! - `claim`: a live claim of the same key is refused and the holder's
//!   record returned; the holder's own retried claim succeeds; an expired
//!   claim with no build recorded is taken over; a bake whose build started
//!   is never taken, however old its lease;
//! - `lock`: refused while another owner holds it and in another state,
//!   renewed by its owner, free to the next owner after `release`;
//!   `release` in another state changes nothing;
//! - `advance`: writes the row's state and the change's fields and frees the
//!   lease; a stale transition (from a state the record has left) is refused
//!   and writes nothing; a step with no row gives no `Transition` at all;
//! - the sparse `active` index: queued and baking bakes in `active()`, a
//!   failed one gone from it (its `active` attribute removed) and still in
//!   `list()`;
//! - an item the adapter cannot read is a typed `InvalidResponse`.
//!
//! The bus: what `put` sends arrives on the bus it names with the source,
//! detail-type and detail it was given, in the shape the deployed rule
//! matches (moto delivers it to an SQS witness on that very rule; the
//! harness's router, by the template's patterns, agrees) and the trigger's
//! parser reads; an entry PutEvents refuses inside a 200 answer
//! (`FailedEntryCount` 1) is an error. moto produces that answer itself (an
//! empty source, as EventBridge refuses it), so no fake is needed.

mod support;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use gild_aws::dynamodb::DynamoLedger;
use gild_aws::eventbridge::EventBridgeBus;
use gild_core::event::{self, BuildTarget, EventKind, BUILD_REQUESTED, GILD_SOURCE};
use gild_core::ledger::{BakeKey, BakeRecord, Change, Claim};
use gild_core::plan::Trigger;
use gild_core::ports::{Bus, Ledger, PortError};
use gild_core::state::{BakeState, IllegalStep, Lane, Stage, Step, Transition};
use gild_tests::aws::REGION;
use gild_tests::pipeline::Pipeline;
use serde_json::{json, Value};
use support::{assert_build_requested, deployed, manual_witness, Witness};

// ------------------------------------------------------------------ ledger

/// The second reader: the item as stored, attribute by attribute.
async fn stored(pipeline: &Pipeline, key: &BakeKey) -> Option<Value> {
    let out = aws_sdk_dynamodb::Client::new(&pipeline.aws)
        .get_item()
        .table_name(pipeline.ledger_table())
        .key("family", AttributeValue::S(key.family.clone()))
        .key("dedupe_key", AttributeValue::S(key.dedupe_key.clone()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
    let item = out.item?;
    let mut fields = serde_json::Map::new();
    for (name, value) in item {
        let value = match value {
            AttributeValue::S(s) => json!(s),
            AttributeValue::N(n) => json!(n.parse::<i64>().expect("a whole number")),
            other => panic!("`{name}` stored as {other:?}"),
        };
        fields.insert(name, value);
    }
    Some(Value::Object(fields))
}

fn requested(family: &str, owner: &str, now: i64) -> BakeRecord {
    BakeRecord::requested(
        BakeKey::new(family, "manual:req-1"),
        Trigger::Manual,
        Some("9f2c1e7".into()),
        now,
        90,
        owner,
    )
}

fn row(from: BakeState, step: Step) -> Transition {
    Transition::of(Lane::Production, from, step).expect("a row of the state table")
}

fn keys(records: &[BakeRecord]) -> Vec<(String, BakeState)> {
    let mut keys: Vec<_> = records
        .iter()
        .map(|r| (r.key.family.clone(), r.state))
        .collect();
    keys.sort_by(|x, y| x.0.cmp(&y.0));
    keys
}

#[tokio::test]
async fn ledger_refuses_what_its_conditions_forbid_on_the_deployed_table() {
    let Some(pipeline) = deployed(false).await else {
        return;
    };
    let ledger = DynamoLedger::new(
        aws_sdk_dynamodb::Client::new(&pipeline.aws),
        pipeline.ledger_table(),
    );
    let (a, b) = ("invocation-a", "invocation-b");

    // A claim, and a second claim of the same key while the first is live.
    let first = requested("debian12-base", a, 1_000);
    let key = first.key.clone();
    assert_eq!(ledger.claim(&first, 1_000).await, Ok(Claim::Claimed));
    let stored_first = stored(&pipeline, &key).await.expect("claimed item");
    assert_eq!(
        stored_first,
        json!({
            "family": "debian12-base", "dedupe_key": "manual:req-1", "trigger": "manual",
            "commit": "9f2c1e7", "state": "requested", "requested_at": 1_000,
            "updated_at": 1_000, "lease_until": 1_090, "owner": a, "active": "yes",
        })
    );
    let second = requested("debian12-base", b, 1_010);
    match ledger.claim(&second, 1_010).await {
        Ok(Claim::Taken(holder)) => assert_eq!(*holder, first),
        other => panic!("a live claim was not refused: {other:?}"),
    }
    assert_eq!(stored(&pipeline, &key).await, Some(stored_first.clone()));
    // The SDK's retry of the holder's own write finds its owner token.
    assert_eq!(ledger.claim(&first, 1_010).await, Ok(Claim::Claimed));

    // A claim whose holder died before recording a build is taken over.
    let orphan = requested("al2023-base", a, 1_000);
    assert_eq!(ledger.claim(&orphan, 1_000).await, Ok(Claim::Claimed));
    let takeover = requested("al2023-base", b, 2_000);
    assert_eq!(ledger.claim(&takeover, 2_000).await, Ok(Claim::Claimed));
    let orphan_key = orphan.key.clone();
    assert_eq!(
        stored(&pipeline, &orphan_key).await.expect("item")["owner"],
        b
    );

    // The lock: renewed by its owner, refused to another and in another state.
    assert_eq!(
        ledger.lock(&key, BakeState::Requested, 1_020, 60, a).await,
        Ok(true)
    );
    assert_eq!(
        ledger.lock(&key, BakeState::Requested, 1_030, 60, b).await,
        Ok(false)
    );
    assert_eq!(
        ledger.lock(&key, BakeState::Baking, 1_030, 60, a).await,
        Ok(false)
    );
    let locked = stored(&pipeline, &key).await.expect("item");
    assert_eq!(
        (&locked["owner"], &locked["lease_until"]),
        (&json!(a), &json!(1_080))
    );
    // Released, it is free to the next owner at once.
    assert_eq!(ledger.release(&key, BakeState::Requested).await, Ok(()));
    assert_eq!(
        stored(&pipeline, &key).await.expect("item")["lease_until"],
        0
    );
    assert_eq!(
        ledger.lock(&key, BakeState::Requested, 1_031, 60, b).await,
        Ok(true)
    );
    // A release for a state the record is not in changes nothing.
    let locked = stored(&pipeline, &key).await.expect("item");
    assert_eq!(ledger.release(&key, BakeState::Baking).await, Ok(()));
    assert_eq!(stored(&pipeline, &key).await, Some(locked.clone()));
    assert_eq!(
        (&locked["owner"], &locked["lease_until"]),
        (&json!(b), &json!(1_091))
    );

    // Advance along a row: state, the change's fields, lease freed.
    let started = Change {
        build_id: Some("gild-bake:4d1b".into()),
        ..Change::default()
    };
    let to_baking = row(BakeState::Requested, Step::BakeStarted);
    assert_eq!(
        ledger.advance(&key, to_baking, &started, 1_040).await,
        Ok(true)
    );
    let baking = stored(&pipeline, &key).await.expect("item");
    assert_eq!(
        (&baking["state"], &baking["build_id"], &baking["updated_at"]),
        (&json!("baking"), &json!("gild-bake:4d1b"), &json!(1_040))
    );
    assert_eq!(
        (&baking["lease_until"], &baking["active"]),
        (&json!(0), &json!("yes"))
    );
    // The same transition again (a duplicate delivery) is stale: refused,
    // nothing written.
    let other = Change {
        build_id: Some("gild-bake:ffff".into()),
        ..Change::default()
    };
    assert_eq!(
        ledger.advance(&key, to_baking, &other, 1_050).await,
        Ok(false)
    );
    assert_eq!(stored(&pipeline, &key).await, Some(baking.clone()));
    // A step the table has no row for cannot even be handed to the ledger.
    assert_eq!(
        Transition::require(Lane::Production, BakeState::Baking, Step::Promoted),
        Err(IllegalStep {
            lane: Lane::Production,
            from: BakeState::Baking,
            step: Step::Promoted
        })
    );
    // A bake whose build started is never claimed again, however old.
    let late = requested("debian12-base", "invocation-c", 99_000);
    match ledger.claim(&late, 99_000).await {
        Ok(Claim::Taken(holder)) => assert_eq!(holder.state, BakeState::Baking),
        other => panic!("a started bake was claimed again: {other:?}"),
    }
    assert_eq!(stored(&pipeline, &key).await, Some(baking));

    // The queue's reads: what holds and waits for a slot, and everything.
    let waiting = requested("win2022-core", a, 1_100);
    assert_eq!(ledger.claim(&waiting, 1_100).await, Ok(Claim::Claimed));
    let to_queued = row(BakeState::Requested, Step::Queued);
    assert_eq!(
        ledger
            .advance(&waiting.key, to_queued, &Change::default(), 1_100)
            .await,
        Ok(true)
    );
    let failed = Change {
        failed_stage: Some(Stage::Bake),
        reason: Some("no build was recorded".into()),
        ..Change::default()
    };
    let to_failed = row(BakeState::Requested, Step::Failed(Stage::Bake));
    assert_eq!(
        ledger.advance(&orphan_key, to_failed, &failed, 2_100).await,
        Ok(true)
    );
    let ended = stored(&pipeline, &orphan_key).await.expect("item");
    assert_eq!(
        (&ended["state"], &ended["failed_stage"], &ended["reason"]),
        (
            &json!("failed"),
            &json!("bake"),
            &json!("no build was recorded")
        )
    );
    assert!(ended.get("active").is_none(), "left the index: {ended}");
    assert_eq!(
        keys(&ledger.active().await.expect("active")),
        [
            ("debian12-base".to_owned(), BakeState::Baking),
            ("win2022-core".to_owned(), BakeState::Queued),
        ]
    );
    assert_eq!(
        keys(&ledger.list().await.expect("list")),
        [
            ("al2023-base".to_owned(), BakeState::Failed),
            ("debian12-base".to_owned(), BakeState::Baking),
            ("win2022-core".to_owned(), BakeState::Queued),
        ]
    );

    // An item another writer left in a state this version does not know.
    aws_sdk_dynamodb::Client::new(&pipeline.aws)
        .put_item()
        .table_name(pipeline.ledger_table())
        .item("family", AttributeValue::S("debian12-base".into()))
        .item("dedupe_key", AttributeValue::S("manual:req-9".into()))
        .item("trigger", AttributeValue::S("manual".into()))
        .item("state", AttributeValue::S("paused".into()))
        .item("requested_at", AttributeValue::N("3000".into()))
        .item("active", AttributeValue::S("yes".into()))
        .send()
        .await
        .expect("PutItem");
    let foreign = BakeKey::new("debian12-base", "manual:req-9");
    for (what, result) in [
        ("get", ledger.get(&foreign).await.map(|_| ())),
        ("active", ledger.active().await.map(|_| ())),
    ] {
        match result {
            Err(PortError::InvalidResponse { message, .. }) => {
                assert!(message.contains("paused"), "{what}: {message}")
            }
            other => panic!("{what} read an unknown state as {other:?}"),
        }
    }
}

/// A candidate's record takes only candidate rows, on the deployed table
/// (the lane is in `advance`'s condition), and the sparse `pull_request`
/// index finds every head's candidates of one pull request and nothing else.
#[tokio::test]
async fn a_candidate_takes_only_candidate_rows_and_its_pull_request_finds_it() {
    let Some(pipeline) = deployed(false).await else {
        return;
    };
    let ledger = DynamoLedger::new(
        aws_sdk_dynamodb::Client::new(&pipeline.aws),
        pipeline.ledger_table(),
    );
    let pr = gild_core::pull_request::sample();
    let key = BakeKey::new("win2022-iis", pr.dedupe_key());
    let mut record = BakeRecord::requested(
        key.clone(),
        Trigger::PullRequest,
        Some(pr.head.clone()),
        1_000,
        90,
        "invocation-a",
    );
    record.pull_request = Some(pr.clone());
    assert_eq!(ledger.claim(&record, 1_000).await, Ok(Claim::Claimed));
    ledger
        .claim(&requested("debian12-base", "invocation-b", 1_000), 1_000)
        .await
        .expect("a production claim");
    // A production row is refused for the candidate, and writes nothing.
    let production = row(BakeState::Requested, Step::BakeStarted);
    assert_eq!(
        ledger
            .advance(&key, production, &Change::default(), 1_001)
            .await,
        Ok(false)
    );
    assert_eq!(
        ledger.get(&key).await.expect("get").map(|r| r.state),
        Some(BakeState::Requested)
    );
    let candidate = Transition::of(Lane::Candidate, BakeState::Requested, Step::Superseded)
        .expect("a candidate row");
    assert_eq!(
        ledger
            .advance(&key, candidate, &Change::default(), 1_002)
            .await,
        Ok(true)
    );
    let found = ledger.pull_request(&pr.id()).await.expect("Query");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].pull_request.as_ref(), Some(&pr));
    assert_eq!(found[0].state, BakeState::Superseded);
    assert!(ledger
        .pull_request("acme/images#18")
        .await
        .expect("Query")
        .is_empty());
}

// -------------------------------------------------------------- EventBridge

#[tokio::test]
async fn bus_put_arrives_in_the_shape_the_deployed_manual_rule_matches() {
    let Some(pipeline) = deployed(false).await else {
        return;
    };
    let config = &pipeline.aws;
    let manual = manual_witness(&pipeline).await;
    let everything = Witness::everything(config, "default", "everything").await;
    let bus = EventBridgeBus::new(aws_sdk_eventbridge::Client::new(config), "default");

    let detail = json!({"family": "debian12-base", "requested_by": "alice"});
    let id = bus
        .put(GILD_SOURCE, BUILD_REQUESTED, &detail)
        .await
        .expect("put");
    let delivered = manual.drain().await;
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let event = &delivered[0];
    assert_build_requested(event, &id, &detail, "the adapter's put");
    // What EventBridge adds (moto's delivery template has no `account`).
    assert_eq!(
        (&event["region"], &event["resources"]),
        (&json!(REGION), &json!([]))
    );
    assert_eq!(everything.drain().await.len(), 1);
    // The stack's patterns, matched apart from the stack (the harness's
    // router), agree, and the trigger's own parser reads the event.
    assert_eq!(
        pipeline.router.matched_rules(event).await.expect("routing"),
        ["ManualRule"]
    );
    match event::parse(event.clone())
        .expect("the trigger reads it")
        .kind
    {
        EventKind::BuildRequested(request) => {
            assert_eq!(request.target, BuildTarget::Family("debian12-base".into()));
            assert_eq!(request.requested_by.as_deref(), Some("alice"));
        }
        other => panic!("read as {other:?}"),
    }

    // The detail-type is passed as given: another one is on the bus, but
    // not the rule's.
    bus.put(GILD_SOURCE, "Build Cancelled", &detail)
        .await
        .expect("put");
    assert_eq!(manual.drain().await, Vec::<Value>::new());
    assert_eq!(everything.drain().await.len(), 1);

    // The bus name is passed as given: another bus's rules get it, the
    // default bus's do not.
    aws_sdk_eventbridge::Client::new(config)
        .create_event_bus()
        .name("gild-other")
        .send()
        .await
        .expect("CreateEventBus");
    let other = Witness::everything(config, "gild-other", "other-bus").await;
    EventBridgeBus::new(aws_sdk_eventbridge::Client::new(config), "gild-other")
        .put(GILD_SOURCE, BUILD_REQUESTED, &detail)
        .await
        .expect("put");
    assert_eq!(other.drain().await.len(), 1);
    assert_eq!(manual.drain().await, Vec::<Value>::new());
    assert_eq!(everything.drain().await, Vec::<Value>::new());

    // An entry PutEvents refuses inside a 200 answer (FailedEntryCount 1,
    // as moto and EventBridge answer an empty source) is an error.
    let raw = aws_sdk_eventbridge::Client::new(config)
        .put_events()
        .entries(
            PutEventsRequestEntry::builder()
                .source("")
                .detail_type(BUILD_REQUESTED)
                .detail(detail.to_string())
                .build(),
        )
        .send()
        .await
        .expect("a 200 answer");
    assert_eq!(raw.failed_entry_count(), 1, "{raw:?}");
    match bus.put("", BUILD_REQUESTED, &detail).await {
        Err(PortError::Service {
            service: "EventBridge",
            operation: "PutEvents",
            code,
            server_side: false,
            ..
        }) => assert_eq!(code, "InvalidArgument"),
        other => panic!("a refused entry came back as {other:?}"),
    }
    assert_eq!(everything.drain().await, Vec::<Value>::new());
}

/// A layered family's bake keeps its parent, children and parent image on
/// the deployed table: waiting, then queued from the parent's image.
#[tokio::test]
async fn a_waiting_child_keeps_its_lineage_and_is_queued_from_its_parents_image() {
    let Some(pipeline) = deployed(false).await else {
        return;
    };
    let ledger = DynamoLedger::new(
        aws_sdk_dynamodb::Client::new(&pipeline.aws),
        pipeline.ledger_table(),
    );
    let key = BakeKey::new("win2022-iis", "schedule:2026-11");
    let mut record = BakeRecord::requested(
        key.clone(),
        Trigger::Schedule,
        Some("c0ffee".into()),
        1_000,
        90,
        "invocation-a",
    );
    record.parent = Some("win2022-core-dotnet".into());
    record.children = vec!["iis-app".into(), "iis-app/iis-app-2".into()];
    assert_eq!(ledger.claim(&record, 1_000).await, Ok(Claim::Claimed));
    let wait = row(BakeState::Requested, Step::WaitForParent);
    assert_eq!(
        ledger.advance(&key, wait, &Change::default(), 1_001).await,
        Ok(true)
    );
    // Waiting holds no lock and stays in the active index.
    let waiting = ledger.get(&key).await.expect("get").expect("record");
    assert_eq!(waiting.state, BakeState::Waiting);
    assert_eq!(waiting.parent.as_deref(), Some("win2022-core-dotnet"));
    assert_eq!(waiting.children, record.children);
    assert!(ledger
        .active()
        .await
        .expect("active")
        .iter()
        .any(|r| r.key == key));
    let queue = row(BakeState::Waiting, Step::Queued);
    let released = Change {
        parent_image: Some("ami-0parent".into()),
        ..Change::default()
    };
    assert_eq!(
        ledger.advance(&key, queue, &released, 1_002).await,
        Ok(true)
    );
    let queued = ledger.get(&key).await.expect("get").expect("record");
    assert_eq!(queued.state, BakeState::Queued);
    assert_eq!(queued.parent_image.as_deref(), Some("ami-0parent"));
    // A candidate row from waiting does not exist, so nothing else moves it.
    assert!(Transition::of(Lane::Candidate, BakeState::Waiting, Step::Queued).is_none());
}
