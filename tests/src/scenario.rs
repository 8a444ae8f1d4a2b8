//! The pipeline's three functions running together as real processes, with
//! EventBridge's routing and the build stand-in between them, and readers
//! for what ends up in the emulator. `make demo` and the end-to-end tests
//! both drive the pipeline through this.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::pipeline::Pipeline;
use crate::routing::Router;
use crate::runtime_api::{Invocation, LambdaProcess};
use crate::standin::{Builds, Completed};
use crate::HarnessError;

pub struct Functions {
    pub trigger: LambdaProcess,
    pub bake_finished: LambdaProcess,
    pub test_finished: LambdaProcess,
    pub reconcile: LambdaProcess,
    /// EventBridge, by the deployed stack's rules.
    pub router: Arc<Router>,
}

/// One event handed to one function, and what came of it.
#[derive(Debug)]
pub struct Delivery {
    pub function: &'static str,
    pub event: Value,
    pub invocation: Invocation,
}

impl Functions {
    pub async fn spawn(pipeline: &Pipeline) -> Result<Functions, HarnessError> {
        Functions::spawn_with(pipeline, &[]).await
    }

    /// The functions with `extra` added to each one's environment (a
    /// GitHub API stub's URL, say).
    pub async fn spawn_with(
        pipeline: &Pipeline,
        extra: &[(String, String)],
    ) -> Result<Functions, HarnessError> {
        Ok(Functions {
            trigger: pipeline.spawn_with("trigger", extra).await?,
            bake_finished: pipeline.spawn_with("bake-finished", extra).await?,
            test_finished: pipeline.spawn_with("test-finished", extra).await?,
            reconcile: pipeline.spawn_with("reconcile", extra).await?,
            router: Arc::clone(&pipeline.router),
        })
    }

    /// The functions the deployed stack's EventBridge rules send `event`
    /// to, the one that does its work first (see [`Router::targets`]).
    pub async fn targets(&self, event: &Value) -> Result<Vec<&'static str>, HarnessError> {
        self.router.targets(event).await
    }

    /// Invokes `function` with `event` through the Runtime API.
    pub async fn deliver_to(
        &self,
        function: &'static str,
        event: &Value,
    ) -> Result<Delivery, HarnessError> {
        let process = match function {
            "bake-finished" => &self.bake_finished,
            "test-finished" => &self.test_finished,
            "reconcile" => &self.reconcile,
            _ => &self.trigger,
        };
        Ok(Delivery {
            function,
            event: event.clone(),
            invocation: process.invoke(event).await?,
        })
    }

    /// Delivers an event to the function that does its work: the first of
    /// its [`Functions::targets`]. An event no rule of the stack matches is
    /// an error: EventBridge would deliver it nowhere.
    pub async fn deliver(&self, event: &Value) -> Result<Delivery, HarnessError> {
        let targets = self.targets(event).await?;
        let first = targets.first().ok_or_else(|| HarnessError::InvalidInput {
            message: format!(
                "no rule of the deployed stack matches this event, so EventBridge would deliver it nowhere: {event}"
            ),
        })?;
        self.deliver_to(first, event).await
    }

    /// Delivers `event` by the stack's rules and returns what the function
    /// answered; a function error (with the function's log) is an error.
    pub async fn deliver_ok(&self, event: &Value) -> Result<Value, HarnessError> {
        let delivery = self.deliver(event).await?;
        delivery
            .invocation
            .outcome
            .map_err(|e| HarnessError::InvalidInput {
                message: format!(
                    "{} failed on {}: {}: {}",
                    delivery.function, event["detail-type"], e.error_type, e.error_message
                ),
            })
    }

    /// The deployed schedule firing at `time`, delivered by the stack's
    /// rules; what the function answered.
    pub async fn fire_schedule(
        &self,
        pipeline: &Pipeline,
        time: &str,
    ) -> Result<Value, HarnessError> {
        self.deliver_ok(&pipeline.schedule_event(time)?).await
    }

    /// Runs the stand-in's pending builds and delivers their completions,
    /// each `copies` times, in an order shuffled by `seed`, until no build is
    /// pending. Returns every delivery made.
    pub async fn settle(
        &self,
        pipeline: &Pipeline,
        standin: &impl Builds,
        copies: usize,
        seed: u64,
    ) -> Result<Vec<(Completed, Vec<Delivery>)>, HarnessError> {
        let mut all = Vec::new();
        let mut round = 0u64;
        loop {
            let completed = pipeline.run_builds(standin).await?;
            if completed.is_empty() {
                return Ok(all);
            }
            let mut queue: Vec<(usize, &Completed)> = completed
                .iter()
                .enumerate()
                .flat_map(|(i, c)| std::iter::repeat_n((i, c), copies.max(1)))
                .collect();
            shuffle(&mut queue, seed.wrapping_add(round));
            round += 1;
            let mut deliveries: Vec<Vec<Delivery>> = completed.iter().map(|_| Vec::new()).collect();
            for (i, c) in queue {
                for target in self.targets(&c.event).await? {
                    deliveries[i].push(self.deliver_to(target, &c.event).await?);
                }
            }
            all.extend(completed.into_iter().zip(deliveries));
        }
    }
}

/// Fisher-Yates with a fixed generator, so a failing order can be replayed.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
}

/// An announcement as the subscriber queue received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub subject: String,
    /// The `sqs` body: the machine-readable JSON.
    pub body: Value,
    pub attributes: BTreeMap<String, String>,
}

impl Pipeline {
    /// Drains the subscriber queue (what an SQS subscriber of the topic got).
    pub async fn announcements(&self) -> Result<Vec<Received>, HarnessError> {
        let sqs = aws_sdk_sqs::Client::new(&self.aws);
        let mut received = Vec::new();
        loop {
            let out = sqs
                .receive_message()
                .queue_url(&self.stack.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .map_err(|e| {
                    read_error("ReceiveMessage", aws_sdk_sqs::error::DisplayErrorContext(e))
                })?;
            let messages = out.messages();
            if messages.is_empty() {
                return Ok(received);
            }
            for message in messages {
                let envelope: Value = serde_json::from_str(message.body().unwrap_or("{}"))
                    .map_err(|source| HarnessError::Json {
                        context: "SNS envelope".into(),
                        source,
                    })?;
                let body = serde_json::from_str(envelope["Message"].as_str().unwrap_or("null"))
                    .unwrap_or(Value::Null);
                let attributes = envelope["MessageAttributes"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    v["Value"].as_str().unwrap_or_default().to_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                received.push(Received {
                    subject: envelope["Subject"].as_str().unwrap_or_default().to_owned(),
                    body,
                    attributes,
                });
                if let Some(handle) = message.receipt_handle() {
                    sqs.delete_message()
                        .queue_url(&self.stack.queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .map_err(|e| {
                            read_error("DeleteMessage", aws_sdk_sqs::error::DisplayErrorContext(e))
                        })?;
                }
            }
        }
    }

    /// Every version of a family's parameter, oldest first.
    pub async fn parameter_history(&self, family: &str) -> Result<Vec<String>, HarnessError> {
        let ssm = aws_sdk_ssm::Client::new(&self.aws);
        let out = ssm
            .get_parameter_history()
            .name(self.parameter_name(family))
            .send()
            .await;
        match out {
            Ok(out) => Ok(out
                .parameters()
                .iter()
                .filter_map(|p| p.value().map(str::to_owned))
                .collect()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_parameter_not_found()) =>
            {
                Ok(Vec::new())
            }
            Err(e) => Err(read_error(
                "GetParameterHistory",
                aws_sdk_ssm::error::DisplayErrorContext(e),
            )),
        }
    }

    /// Images gild manages, id → tags.
    pub async fn gild_images(
        &self,
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, HarnessError> {
        let ec2 = aws_sdk_ec2::Client::new(&self.aws);
        let out = ec2
            .describe_images()
            .owners("self")
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("tag:gild:managed")
                    .values("true")
                    .build(),
            )
            .send()
            .await
            .map_err(|e| {
                read_error("DescribeImages", aws_sdk_ec2::error::DisplayErrorContext(e))
            })?;
        Ok(out
            .images()
            .iter()
            .map(|i| {
                (
                    i.image_id().unwrap_or_default().to_owned(),
                    i.tags()
                        .iter()
                        .map(|t| {
                            (
                                t.key().unwrap_or_default().to_owned(),
                                t.value().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect(),
                )
            })
            .collect())
    }

    /// Snapshots tagged for gild, id → tags.
    pub async fn gild_snapshots(
        &self,
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, HarnessError> {
        let ec2 = aws_sdk_ec2::Client::new(&self.aws);
        let out = ec2
            .describe_snapshots()
            .owner_ids("self")
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("tag:gild:managed")
                    .values("true")
                    .build(),
            )
            .send()
            .await
            .map_err(|e| {
                read_error(
                    "DescribeSnapshots",
                    aws_sdk_ec2::error::DisplayErrorContext(e),
                )
            })?;
        Ok(out
            .snapshots()
            .iter()
            .map(|s| {
                (
                    s.snapshot_id().unwrap_or_default().to_owned(),
                    s.tags()
                        .iter()
                        .map(|t| {
                            (
                                t.key().unwrap_or_default().to_owned(),
                                t.value().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect(),
                )
            })
            .collect())
    }

    /// Ledger items: family → (dedupe key, state, failed stage).
    pub async fn ledger(&self) -> Result<Vec<BTreeMap<String, String>>, HarnessError> {
        let dynamodb = aws_sdk_dynamodb::Client::new(&self.aws);
        let out = dynamodb
            .scan()
            .table_name(self.ledger_table())
            .send()
            .await
            .map_err(|e| read_error("Scan", aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        let mut rows: Vec<BTreeMap<String, String>> = out
            .items()
            .iter()
            .map(|item| {
                item.iter()
                    .filter_map(|(k, v)| {
                        v.as_s()
                            .ok()
                            .cloned()
                            .or_else(|| v.as_n().ok().cloned())
                            .map(|v| (k.clone(), v))
                    })
                    .collect()
            })
            .collect();
        rows.sort_by(|a, b| a.get("family").cmp(&b.get("family")));
        Ok(rows)
    }
}

fn read_error(what: &str, err: impl std::fmt::Display) -> HarnessError {
    HarnessError::InvalidInput {
        message: format!("reading the emulator ({what}): {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::shuffle;

    #[test]
    fn shuffle_is_a_permutation_and_depends_on_the_seed() {
        let mut a: Vec<u32> = (0..20).collect();
        let mut b = a.clone();
        shuffle(&mut a, 1);
        shuffle(&mut b, 2);
        assert_ne!(a, b);
        a.sort();
        assert_eq!(a, (0..20).collect::<Vec<_>>());
    }
}
