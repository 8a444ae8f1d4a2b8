//! The bake ledger in DynamoDB: partition key `family`, sort key `dedupe_key`.
//!
//! Records not yet in a terminal state carry `active = "yes"`, the partition
//! key of the sparse global secondary index [`ACTIVE_INDEX`] (sort key
//! `requested_at`): the queue reads what holds and waits for CodeBuild slots
//! with one Query instead of scanning every bake ever made.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use gild_core::ledger::{BakeKey, BakeRecord, Change, Claim};
use gild_core::plan::Trigger;
use gild_core::ports::{Ledger, PortError, PortResult};
use gild_core::state::{BakeState, Lane, Stage, Transition};

use crate::classify;

const SERVICE: &str = "DynamoDB";

type Item = HashMap<String, AttributeValue>;

/// The sparse index of records not in a terminal state (infra/template.yaml).
pub const ACTIVE_INDEX: &str = "active";
const ACTIVE: &str = "active";
const ACTIVE_VALUE: &str = "yes";
/// The sparse index of candidates by pull request: only a candidate's item
/// carries `pr` (`<repository>#<number>`), so one Query finds every head's.
pub const PULL_REQUEST_INDEX: &str = "pull_request";
const PULL_REQUEST: &str = "pr";

pub struct DynamoLedger {
    client: Client,
    table: String,
}

impl DynamoLedger {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoLedger {
            client,
            table: table.into(),
        }
    }

    fn key(key: &BakeKey) -> Item {
        HashMap::from([
            ("family".to_owned(), s(&key.family)),
            ("dedupe_key".to_owned(), s(&key.dedupe_key)),
        ])
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn to_item(record: &BakeRecord) -> Item {
    let mut item = DynamoLedger::key(&record.key);
    item.insert("trigger".into(), s(record.trigger.as_str()));
    item.insert("state".into(), s(record.state.as_str()));
    item.insert("requested_at".into(), n(record.requested_at));
    item.insert("updated_at".into(), n(record.updated_at));
    item.insert("lease_until".into(), n(record.lease_until));
    if !record.state.is_terminal() {
        item.insert(ACTIVE.into(), s(ACTIVE_VALUE));
    }
    let optional = [
        ("commit", record.commit.as_deref()),
        ("build_id", record.build_id.as_deref()),
        ("image", record.image.as_deref()),
        ("test_build_id", record.test_build_id.as_deref()),
        ("failed_stage", record.failed_stage.map(Stage::as_str)),
        ("reason", record.reason.as_deref()),
        ("owner", record.owner.as_deref()),
        ("suites", record.suites.as_deref()),
        ("parent", record.parent.as_deref()),
        ("parent_image", record.parent_image.as_deref()),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            item.insert(name.into(), s(value));
        }
    }
    // A string set cannot be empty: no children, no attribute.
    if !record.children.is_empty() {
        item.insert(
            "children".into(),
            AttributeValue::Ss(record.children.clone()),
        );
    }
    // The package changes, as JSON: information for messages, never queried.
    if let Some(json) = record
        .packages
        .as_ref()
        .and_then(|p| serde_json::to_string(p).ok())
    {
        item.insert("packages".into(), s(&json));
    }
    // The pull request a candidate reports to, as JSON: read back whole by
    // the handlers that report, never queried on.
    if let Some(pr) = record.pull_request.as_ref() {
        item.insert(PULL_REQUEST.into(), s(&pr.id()));
        if let Ok(json) = serde_json::to_string(pr) {
            item.insert("pull_request".into(), s(&json));
        }
    }
    item
}

fn from_item(item: &Item) -> PortResult<BakeRecord> {
    let bad = |what: String| PortError::InvalidResponse {
        service: SERVICE,
        operation: "read ledger item",
        message: what,
    };
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or_default()
    };
    let need = |name: &str| text(name).ok_or_else(|| bad(format!("missing `{name}`")));
    let state = need("state")?;
    let trigger = need("trigger")?;
    Ok(BakeRecord {
        key: BakeKey::new(need("family")?, need("dedupe_key")?),
        trigger: Trigger::parse(&trigger)
            .ok_or_else(|| bad(format!("unknown trigger `{trigger}`")))?,
        commit: text("commit"),
        state: BakeState::parse(&state).ok_or_else(|| bad(format!("unknown state `{state}`")))?,
        build_id: text("build_id"),
        image: text("image"),
        test_build_id: text("test_build_id"),
        failed_stage: text("failed_stage").and_then(|s| Stage::parse(&s)),
        reason: text("reason"),
        requested_at: number("requested_at"),
        updated_at: number("updated_at"),
        lease_until: number("lease_until"),
        owner: text("owner"),
        pull_request: text("pull_request")
            .map(|json| serde_json::from_str(&json))
            .transpose()
            .map_err(|e| bad(format!("`pull_request` is not a pull request: {e}")))?,
        suites: text("suites"),
        parent: text("parent"),
        parent_image: text("parent_image"),
        children: item
            .get("children")
            .and_then(|v| v.as_ss().ok())
            .map(|set| {
                let mut names = set.clone();
                names.sort();
                names
            })
            .unwrap_or_default(),
        // Unlike the pull request, a record whose changes cannot be read is
        // still the bake's record: the changes only inform its messages,
        // so they are dropped rather than making the bake unreadable.
        packages: text("packages").and_then(|json| serde_json::from_str(&json).ok()),
    })
}

impl DynamoLedger {
    /// Every item of a sparse index whose hash key is `value`, all pages.
    async fn query_index(
        &self,
        index: &str,
        attribute: &str,
        value: &str,
    ) -> PortResult<Vec<BakeRecord>> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#key = :value")
            .expression_attribute_names("#key", attribute)
            .expression_attribute_values(":value", s(value))
            .into_paginator()
            .send();
        let mut records = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(SERVICE, "Query", e))?;
            for item in page.items() {
                records.push(from_item(item)?);
            }
        }
        Ok(records)
    }
}

impl Ledger for DynamoLedger {
    async fn claim(&self, record: &BakeRecord, now: i64) -> PortResult<Claim> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)))
            // New, or a claim whose holder died before recording a build.
            .condition_expression(
                "attribute_not_exists(#family) OR (#state = :requested AND #lease < :now AND attribute_not_exists(#build)) OR #owner = :owner",
            )
            .expression_attribute_names("#family", "family")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(record.owner.as_deref().unwrap_or("-")))
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#lease", "lease_until")
            .expression_attribute_names("#build", "build_id")
            .expression_attribute_values(":requested", s(BakeState::Requested.as_str()))
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Claimed),
            Err(err) => {
                let existing = match err.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(e)) => {
                        Some(e.item().cloned())
                    }
                    _ => None,
                };
                match existing {
                    Some(Some(item)) => Ok(Claim::Taken(Box::new(from_item(&item)?))),
                    // Lost the race but the old item did not come back: read it.
                    Some(None) => match self.get(&record.key).await? {
                        Some(found) => Ok(Claim::Taken(Box::new(found))),
                        None => Err(PortError::ConditionFailed {
                            service: SERVICE,
                            operation: "PutItem",
                            message: "claim refused but no item found".into(),
                        }),
                    },
                    None => Err(classify(SERVICE, "PutItem", err)),
                }
            }
        }
    }

    async fn lock(
        &self,
        key: &BakeKey,
        state: BakeState,
        now: i64,
        lease_secs: i64,
        owner: &str,
    ) -> PortResult<bool> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression("SET #lease = :until, #owner = :owner")
            // The owner clause lets the SDK's retry of this very write succeed.
            .condition_expression("#state = :state AND (#lease < :now OR #owner = :owner)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#lease", "lease_until")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":state", s(state.as_str()))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":until", n(now + lease_secs))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(err) => Err(classify(SERVICE, "UpdateItem", err)),
        }
    }

    async fn advance(
        &self,
        key: &BakeKey,
        transition: Transition,
        change: &Change,
        now: i64,
    ) -> PortResult<bool> {
        let (from, to) = (transition.from(), transition.to());
        let packages = change
            .packages
            .as_ref()
            .and_then(|p| serde_json::to_string(p).ok());
        // Every name goes through a placeholder: several are DynamoDB reserved words.
        let mut sets = vec![
            "#state = :to".to_owned(),
            "#updated_at = :now".to_owned(),
            "#lease = :zero".to_owned(),
        ];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            // The row's lane is part of the condition: a candidate's record
            // can take only candidate rows, so no write can promote one.
            .condition_expression(match transition.lane() {
                Lane::Candidate => "#state = :from AND #trigger = :candidate",
                Lane::Production => "#state = :from AND #trigger <> :candidate",
            })
            .expression_attribute_names("#trigger", "trigger")
            .expression_attribute_values(":candidate", s(Trigger::PullRequest.as_str()))
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_names("#lease", "lease_until")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":from", s(from.as_str()))
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":now", n(now));
        let fields = [
            ("build_id", change.build_id.as_deref()),
            ("image", change.image.as_deref()),
            ("test_build_id", change.test_build_id.as_deref()),
            ("failed_stage", change.failed_stage.map(Stage::as_str)),
            ("reason", change.reason.as_deref()),
            ("suites", change.suites.as_deref()),
            ("parent_image", change.parent_image.as_deref()),
            ("packages", packages.as_deref()),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                sets.push(format!("#{name} = :{name}"));
                request = request
                    .expression_attribute_names(format!("#{name}"), name)
                    .expression_attribute_values(format!(":{name}"), s(value));
            }
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if to.is_terminal() {
            // Leaves the active index: the bake holds and waits for nothing.
            expression.push_str(" REMOVE #active");
            request = request.expression_attribute_names("#active", ACTIVE);
        }
        match request.update_expression(expression).send().await {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(err) => Err(classify(SERVICE, "UpdateItem", err)),
        }
    }

    async fn release(&self, key: &BakeKey, state: BakeState) -> PortResult<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression("SET #lease = :zero")
            .condition_expression("#state = :state")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#lease", "lease_until")
            .expression_attribute_values(":state", s(state.as_str()))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Already moved on: nothing to release.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(classify(SERVICE, "UpdateItem", err)),
        }
    }

    async fn get(&self, key: &BakeKey) -> PortResult<Option<BakeRecord>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(SERVICE, "GetItem", e))?;
        out.item.as_ref().map(from_item).transpose()
    }

    async fn active(&self) -> PortResult<Vec<BakeRecord>> {
        self.query_index(ACTIVE_INDEX, ACTIVE, ACTIVE_VALUE).await
    }

    async fn list(&self) -> PortResult<Vec<BakeRecord>> {
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .into_paginator()
            .send();
        let mut records = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(SERVICE, "Scan", e))?;
            for item in page.items() {
                records.push(from_item(item)?);
            }
        }
        Ok(records)
    }

    async fn pull_request(&self, pull_request: &str) -> PortResult<Vec<BakeRecord>> {
        self.query_index(PULL_REQUEST_INDEX, PULL_REQUEST, pull_request)
            .await
    }
}
