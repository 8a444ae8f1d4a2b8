//! EventBridge's routing, by the deployed stack's own rules.
//!
//! Which functions an event reaches is decided by the rules of
//! `infra/template.yaml` as deployed (`stack.json`), never by the harness:
//! a rule whose pattern would not match the real event leaves the event
//! undelivered, and the test that needed it fails.
//!
//! The matcher is moto's, over the wire (as `tests/twin/stack/routing.py`
//! does it; moto 5.2.5's `TestEventPattern` is a stub): each pattern is
//! copied onto a probe rule on a bus of the harness's own (so the stack's
//! rules, whose Lambda targets moto would try to run in docker, never fire),
//! each probe targets an SQS queue, and the event matched a rule when it
//! arrives on that rule's queue; moto delivers within the `PutEvents` call.
//! A schedule rule has no pattern: its `Scheduled Event`s name the rule in
//! `resources` and go to its targets only, as EventBridge sends them.

use aws_config::SdkConfig;
use aws_sdk_eventbridge::types::{PutEventsRequestEntry, Target};
use serde_json::Value;

use crate::stack::Deployment;
use crate::{aws, HarnessError};

/// The bus the probe rules live on.
const BUS: &str = "harness-routing";

/// The harness's process name of a function, by the template's logical id.
pub fn function_of(logical_id: &str) -> Option<&'static str> {
    Some(match logical_id {
        "Trigger" => "trigger",
        "BakeFinished" => "bake-finished",
        "TestFinished" => "test-finished",
        "Reconcile" => "reconcile",
        "GitHubWebhook" => "github-webhook",
        "SlackNotify" => "slack-notify",
        "ApprovalTemplate" => "approval-template",
        _ => return None,
    })
}

struct Probe {
    rule: String,
    queue_url: String,
    targets: Vec<&'static str>,
}

pub struct Router {
    events: aws_sdk_eventbridge::Client,
    sqs: aws_sdk_sqs::Client,
    probes: Vec<Probe>,
    /// (the rule's ARN, its targets) for each schedule rule.
    schedules: Vec<(String, Vec<&'static str>)>,
}

fn routing(what: &str, err: impl std::fmt::Display) -> HarnessError {
    HarnessError::InvalidInput {
        message: format!("routing by the stack's rules ({what}): {err}"),
    }
}

fn targets_of(rule: &str, logical_ids: &[String]) -> Result<Vec<&'static str>, HarnessError> {
    logical_ids
        .iter()
        .map(|lid| function_of(lid).ok_or_else(|| routing(rule, format!("unknown target {lid}"))))
        .collect()
}

impl Router {
    /// Probe rules for every enabled rule of `deployment`, on the moto
    /// `config` talks to (directly: routing is not a function's call).
    pub async fn new(config: &SdkConfig, deployment: &Deployment) -> Result<Router, HarnessError> {
        let events = aws_sdk_eventbridge::Client::new(config);
        let sqs = aws_sdk_sqs::Client::new(config);
        events
            .create_event_bus()
            .name(BUS)
            .send()
            .await
            .map_err(|e| {
                routing(
                    "CreateEventBus",
                    aws_sdk_eventbridge::error::DisplayErrorContext(e),
                )
            })?;
        let mut probes = Vec::new();
        let mut schedules = Vec::new();
        for (logical_id, rule) in &deployment.rules {
            if rule.state != "ENABLED" {
                continue;
            }
            let targets = targets_of(logical_id, &rule.targets)?;
            let Some(pattern) = &rule.event_pattern else {
                if rule.schedule_expression.is_some() {
                    let arn = format!(
                        "arn:aws:events:{}:{}:rule/{}",
                        aws::REGION,
                        aws::ACCOUNT_ID,
                        rule.name
                    );
                    schedules.push((arn, targets));
                }
                continue;
            };
            let queue_name = format!("harness-probe-{}", probes.len());
            let queue_url = sqs
                .create_queue()
                .queue_name(&queue_name)
                .send()
                .await
                .map_err(|e| routing("CreateQueue", aws_sdk_sqs::error::DisplayErrorContext(e)))?
                .queue_url
                .ok_or_else(|| routing("CreateQueue", "no URL"))?;
            events
                .put_rule()
                .name(&queue_name)
                .event_bus_name(BUS)
                .event_pattern(pattern.to_string())
                .send()
                .await
                .map_err(|e| {
                    routing(
                        "PutRule",
                        aws_sdk_eventbridge::error::DisplayErrorContext(e),
                    )
                })?;
            let target = Target::builder()
                .id("probe")
                .arn(format!(
                    "arn:aws:sqs:{}:{}:{queue_name}",
                    aws::REGION,
                    aws::ACCOUNT_ID
                ))
                .build()
                .map_err(|e| routing("Target", e))?;
            events
                .put_targets()
                .rule(&queue_name)
                .event_bus_name(BUS)
                .targets(target)
                .send()
                .await
                .map_err(|e| {
                    routing(
                        "PutTargets",
                        aws_sdk_eventbridge::error::DisplayErrorContext(e),
                    )
                })?;
            probes.push(Probe {
                rule: logical_id.clone(),
                queue_url,
                targets,
            });
        }
        Ok(Router {
            events,
            sqs,
            probes,
            schedules,
        })
    }

    /// The rules (logical ids) `event` matches.
    pub async fn matched_rules(&self, event: &Value) -> Result<Vec<String>, HarnessError> {
        Ok(self
            .matches(event)
            .await?
            .into_iter()
            .map(|(rule, _)| rule)
            .collect())
    }

    /// The functions the stack's rules send `event` to: the function that
    /// does the event's work first, the trigger (which also drains the bake
    /// queue when any build ends) last. Empty when no rule matches.
    pub async fn targets(&self, event: &Value) -> Result<Vec<&'static str>, HarnessError> {
        let mut targets: Vec<&'static str> = Vec::new();
        for (_, functions) in self.matches(event).await? {
            for f in functions {
                if !targets.contains(&f) {
                    targets.push(f);
                }
            }
        }
        targets.sort_by_key(|f| *f == "trigger");
        Ok(targets)
    }

    async fn matches(
        &self,
        event: &Value,
    ) -> Result<Vec<(String, Vec<&'static str>)>, HarnessError> {
        let resources: Vec<String> = event["resources"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if event["source"] == "aws.events" && event["detail-type"] == "Scheduled Event" {
            return Ok(self
                .schedules
                .iter()
                .filter(|(arn, _)| resources.contains(arn))
                .map(|(arn, targets)| (arn.clone(), targets.clone()))
                .collect());
        }
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(BUS)
            .source(event["source"].as_str().unwrap_or_default())
            .detail_type(event["detail-type"].as_str().unwrap_or_default())
            .detail(
                event
                    .get("detail")
                    .cloned()
                    .unwrap_or(Value::Null)
                    .to_string(),
            )
            .set_resources(Some(resources))
            .build();
        let answer = self
            .events
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| {
                routing(
                    "PutEvents",
                    aws_sdk_eventbridge::error::DisplayErrorContext(e),
                )
            })?;
        if answer.failed_entry_count() > 0 {
            return Err(routing(
                "PutEvents",
                format!("the event was refused: {:?}", answer.entries()),
            ));
        }
        let mut hits = Vec::new();
        for probe in &self.probes {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&probe.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .map_err(|e| {
                    routing("ReceiveMessage", aws_sdk_sqs::error::DisplayErrorContext(e))
                })?;
            if received.messages().is_empty() {
                continue;
            }
            for message in received.messages() {
                if let Some(handle) = message.receipt_handle() {
                    self.sqs
                        .delete_message()
                        .queue_url(&probe.queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .map_err(|e| {
                            routing("DeleteMessage", aws_sdk_sqs::error::DisplayErrorContext(e))
                        })?;
                }
            }
            hits.push((probe.rule.clone(), probe.targets.clone()));
        }
        Ok(hits)
    }
}
