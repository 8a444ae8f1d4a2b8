//! What the wire tests share: the stack deployed into a fresh moto around
//! an images repository, and witnesses of what EventBridge delivers.

use aws_config::SdkConfig;
use aws_sdk_eventbridge::types::Target;
use gild_tests::aws::{ACCOUNT_ID, REGION};
use gild_tests::git::TestRepo;
use gild_tests::pipeline::{Options, Pipeline};
use serde_json::{json, Value};

pub const CATALOG: &str = r#"
[families.debian12-base]
path = "images/debian12-base"
os = "linux"

[families.al2023-base]
path = "images/al2023-base"
os = "linux"

[families.win2022-core]
path = "images/win2022-core"
os = "windows"
"#;
pub const FAMILIES: [&str; 3] = ["al2023-base", "debian12-base", "win2022-core"];

/// The stack deployed into a fresh moto, or `None` when the run asked to
/// skip moto. Without the gate the harness's clients are moto's only callers.
pub async fn deployed(gate: bool) -> Option<Pipeline> {
    deployed_with(Options {
        gate,
        ..Options::default()
    })
    .await
}

/// As [`deployed`], with any options (another template, say).
pub async fn deployed_with(options: Options) -> Option<Pipeline> {
    if gild_tests::moto::skip_requested() {
        return None;
    }
    let (repo, _) = TestRepo::images(CATALOG, &FAMILIES, &[]).expect("images repository");
    let moto = gild_tests::moto::MotoServer::start().await.expect("moto");
    Some(
        Pipeline::start_with(moto, repo, options)
            .await
            .expect("pipeline"),
    )
}

/// An SQS queue as a target of a rule: moto delivers there, within the
/// PutEvents call, each event the rule matches, as EventBridge delivers to
/// any target.
pub struct Witness {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

impl Witness {
    /// Next to the existing targets of the rule named `rule` on `bus`.
    async fn on_rule(config: &SdkConfig, bus: &str, rule: &str, queue: &str) -> Witness {
        let sqs = aws_sdk_sqs::Client::new(config);
        let queue_url = sqs
            .create_queue()
            .queue_name(queue)
            .send()
            .await
            .expect("CreateQueue")
            .queue_url
            .expect("queue URL");
        let target = Target::builder()
            .id("witness")
            .arn(format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{queue}"))
            .build()
            .expect("target");
        let answer = aws_sdk_eventbridge::Client::new(config)
            .put_targets()
            .rule(rule)
            .event_bus_name(bus)
            .targets(target)
            .send()
            .await
            .expect("PutTargets");
        assert_eq!(answer.failed_entry_count(), 0, "{answer:?}");
        Witness { sqs, queue_url }
    }

    /// A rule of the test's own on `bus` matching every event.
    pub async fn everything(config: &SdkConfig, bus: &str, queue: &str) -> Witness {
        aws_sdk_eventbridge::Client::new(config)
            .put_rule()
            .name(queue)
            .event_bus_name(bus)
            .event_pattern(json!({"source": [{"exists": true}]}).to_string())
            .send()
            .await
            .expect("PutRule");
        Witness::on_rule(config, bus, queue, queue).await
    }

    /// The events delivered since the last call, as their targets get them.
    pub async fn drain(&self) -> Vec<Value> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("ReceiveMessage");
        let mut events = Vec::new();
        for message in received.messages() {
            events.push(serde_json::from_str(message.body().unwrap_or_default()).expect("JSON"));
            self.sqs
                .delete_message()
                .queue_url(&self.queue_url)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("DeleteMessage");
        }
        events
    }
}

/// Removes every function target of the rules on the default bus, and
/// returns them as (rule name, function ARN). moto 5.2.5 answers PutEvents
/// with a 500 (NotImplementedError) when a rule it matches targets a Lambda
/// function, and takes a rule without a pattern (the stack's schedules) to
/// match every event, so nothing put on the default bus of the deployed
/// stack would be accepted. The harness runs the functions itself
/// (`Functions::deliver`).
pub async fn unplug_functions(config: &SdkConfig) -> Vec<(String, String)> {
    let events = aws_sdk_eventbridge::Client::new(config);
    let rules = events
        .list_rules()
        .event_bus_name("default")
        .send()
        .await
        .expect("ListRules");
    let mut unplugged = Vec::new();
    for rule in rules.rules() {
        let name = rule.name().unwrap_or_default();
        let targets = events
            .list_targets_by_rule()
            .rule(name)
            .event_bus_name("default")
            .send()
            .await
            .expect("ListTargetsByRule");
        for target in targets.targets() {
            if target.arn().starts_with("arn:aws:lambda:") {
                events
                    .remove_targets()
                    .rule(name)
                    .event_bus_name("default")
                    .ids(target.id())
                    .send()
                    .await
                    .expect("RemoveTargets");
                unplugged.push((name.to_owned(), target.arn().to_owned()));
            }
        }
    }
    unplugged
}

/// The deployed `gild build` rule on the default bus, with an SQS witness
/// where its function (the trigger) was.
pub async fn manual_witness(pipeline: &Pipeline) -> Witness {
    let rule = pipeline.deployment.rules["ManualRule"].name.clone();
    let trigger = format!(
        "arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{}",
        pipeline.deployed("trigger").expect("trigger").function_name
    );
    let unplugged = unplug_functions(&pipeline.aws).await;
    assert!(
        unplugged.contains(&(rule.clone(), trigger)),
        "the deployed rule {rule} does not target the trigger in moto: {unplugged:?}"
    );
    Witness::on_rule(&pipeline.aws, "default", &rule, "manual").await
}

/// Asserts `event` is the `gild build` request with this id and detail, as
/// the deployed rule delivers it.
pub fn assert_build_requested(event: &Value, id: &str, detail: &Value, context: &str) {
    assert_eq!(
        (
            &event["id"],
            &event["source"],
            &event["detail-type"],
            &event["detail"]
        ),
        (
            &json!(id),
            &json!("gild"),
            &json!("Build Requested"),
            detail
        ),
        "{context}"
    );
}
