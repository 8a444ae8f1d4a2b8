//! gild-aws's EC2, SSM, SNS and CodeBuild adapters over the wire against moto:
//! real SDK requests, real error codes, read back with plain SDK calls.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
use gild_aws::codebuild::{CodeBuildBuilds, TestBuilds};
use gild_aws::ec2::Ec2Images;
use gild_aws::sns::SnsNotifier;
use gild_aws::ssm::SsmParameters;
use gild_core::announce::{Announcement, Outcome};
use gild_core::ledger::BakeKey;
use gild_core::plan::Trigger;
use gild_core::ports::{
    BuildInfo, Images, Notifier, Parameters, PortError, Publication, TestRequest, Tests,
};
use gild_core::state::Stage;
use gild_tests::codebuild::CodeBuildProxy;
use gild_tests::moto::MotoServer;
use gild_tests::pipeline::{create_stack, TEST_PROJECT};
use serde_json::{json, Value};

/// A fresh moto with the stack's resources, or `None` when the run asked to
/// skip moto. The server must outlive every client of the config.
async fn emulator() -> Option<(MotoServer, SdkConfig)> {
    if gild_tests::moto::skip_requested() {
        return None;
    }
    let moto = MotoServer::start().await.expect("moto");
    let config = gild_tests::aws::sdk_config(&moto.endpoint());
    create_stack(&config).await.expect("stack");
    Some((moto, config))
}

/// Makes an AMI the way Packer does: launch from a base image, image the
/// instance (tags on the image only: moto raises NotImplemented for
/// `snapshot` tag specifications), terminate.
async fn bake_image(config: &SdkConfig, name: &str, tags: &[(&str, &str)]) -> String {
    let ec2 = aws_sdk_ec2::Client::new(config);
    let base = ec2
        .describe_images()
        .owners("amazon")
        .send()
        .await
        .expect("moto's images")
        .images()
        .iter()
        .find_map(|i| i.image_id().map(str::to_owned))
        .expect("moto lists a base image");
    let run = ec2
        .run_instances()
        .image_id(base)
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .expect("run instance");
    let instance = run
        .instances()
        .first()
        .and_then(|i| i.instance_id())
        .expect("instance id")
        .to_owned();
    let mut request = ec2.create_image().instance_id(&instance).name(name);
    // moto answers 500 (KeyError 'Tags') to a tag specification without tags.
    if !tags.is_empty() {
        let mut spec = TagSpecification::builder().resource_type(ResourceType::Image);
        for (key, value) in tags {
            spec = spec.tags(Tag::builder().key(*key).value(*value).build());
        }
        request = request.tag_specifications(spec.build());
    }
    let image = request
        .send()
        .await
        .expect("create image")
        .image_id()
        .expect("image id")
        .to_owned();
    ec2.terminate_instances()
        .instance_ids(instance)
        .send()
        .await
        .expect("terminate");
    image
}

async fn image_tags(config: &SdkConfig, image: &str) -> BTreeMap<String, String> {
    let out = aws_sdk_ec2::Client::new(config)
        .describe_images()
        .image_ids(image)
        .send()
        .await
        .expect("describe image");
    let image = out.images().first().expect("the image");
    image
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_owned(),
                t.value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn snapshot_tags(config: &SdkConfig, snapshot: &str) -> BTreeMap<String, String> {
    let out = aws_sdk_ec2::Client::new(config)
        .describe_snapshots()
        .snapshot_ids(snapshot)
        .send()
        .await
        .expect("describe snapshot");
    let snapshot = out.snapshots().first().expect("the snapshot");
    snapshot
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_owned(),
                t.value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn owned(tags: &[(&str, &str)]) -> Vec<(String, String)> {
    tags.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn describe_reports_snapshots_and_tags_and_none_for_unknown_images() {
    let Some((_moto, config)) = emulator().await else {
        return;
    };
    let image = bake_image(
        &config,
        "al2023-base-2026-11-11",
        &[("gild:family", "al2023-base"), ("Name", "al2023 base")],
    )
    .await;
    let images = Ec2Images::new(aws_sdk_ec2::Client::new(&config));

    let info = images
        .describe(&image)
        .await
        .expect("describe")
        .expect("the image exists");
    assert_eq!(info.id, image);
    assert_eq!(info.name.as_deref(), Some("al2023-base-2026-11-11"));
    assert_eq!(info.state, "available");
    assert_eq!(
        info.tags.get("gild:family").map(String::as_str),
        Some("al2023-base")
    );
    assert_eq!(
        info.tags.get("Name").map(String::as_str),
        Some("al2023 base")
    );
    assert!(!info.snapshots.is_empty(), "{info:?}");
    for snapshot in &info.snapshots {
        assert!(snapshot.starts_with("snap-"), "{info:?}");
        // The snapshot really exists: DescribeSnapshots fails on unknown ids.
        snapshot_tags(&config, snapshot).await;
    }

    assert_eq!(
        images.describe("ami-0000000000000000f").await.expect("ok"),
        None
    );
    // moto answers InvalidAMIID.Malformed here.
    assert_eq!(images.describe("not-an-image").await.expect("ok"), None);
}

#[tokio::test]
async fn tag_sets_tags_on_image_and_snapshot_and_cuts_long_values() {
    let Some((_moto, config)) = emulator().await else {
        return;
    };
    let image = bake_image(&config, "debian12-base-1", &[("gild:state", "baked")]).await;
    let images = Ec2Images::new(aws_sdk_ec2::Client::new(&config));
    let info = images.describe(&image).await.expect("ok").expect("image");
    let snapshot = info.snapshots.first().expect("a snapshot").clone();

    let long = "r".repeat(300);
    images
        .tag(
            &[image.clone(), snapshot.clone()],
            &owned(&[("gild:state", "promoted"), ("gild:reason", &long)]),
        )
        .await
        .expect("tag");
    // Nothing to tag is not a call EC2 would accept, nor an error.
    images
        .tag(&[], &owned(&[("gild:state", "x")]))
        .await
        .expect("no resources");

    for tags in [
        image_tags(&config, &image).await,
        snapshot_tags(&config, &snapshot).await,
    ] {
        assert_eq!(
            tags.get("gild:state").map(String::as_str),
            Some("promoted"),
            "{tags:?}"
        );
        let reason = tags.get("gild:reason").expect("reason tag");
        assert_eq!(reason.len(), 256);
        assert!(long.starts_with(reason.as_str()));
    }
    // And the port sees them too.
    let info = images.describe(&image).await.expect("ok").expect("image");
    assert_eq!(
        info.tags.get("gild:state").map(String::as_str),
        Some("promoted")
    );
}

#[tokio::test]
async fn find_by_tag_finds_exactly_the_tagged_image() {
    let Some((_moto, config)) = emulator().await else {
        return;
    };
    let wanted = bake_image(&config, "a", &[("gild:dedupe", "push:abc")]).await;
    let other_value = bake_image(&config, "b", &[("gild:dedupe", "push:def")]).await;
    let untagged = bake_image(&config, "c", &[("Name", "c")]).await;
    let images = Ec2Images::new(aws_sdk_ec2::Client::new(&config));

    let found = images
        .find_by_tag("gild:dedupe", "push:abc")
        .await
        .expect("find");
    let ids: Vec<&str> = found.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        ids,
        vec![wanted.as_str()],
        "not {other_value} nor {untagged}"
    );
    assert_eq!(
        found[0].tags.get("gild:dedupe").map(String::as_str),
        Some("push:abc")
    );
    assert!(images
        .find_by_tag("gild:dedupe", "push:nothing")
        .await
        .expect("find")
        .is_empty());
}

#[tokio::test]
async fn deregister_and_delete_snapshot_tolerate_repeats() {
    let Some((_moto, config)) = emulator().await else {
        return;
    };
    let image = bake_image(&config, "win2022-core-1", &[]).await;
    let images = Ec2Images::new(aws_sdk_ec2::Client::new(&config));
    let snapshots = images
        .describe(&image)
        .await
        .expect("ok")
        .expect("image")
        .snapshots;
    assert!(!snapshots.is_empty());

    // A snapshot behind a registered image is in use: that error is not
    // swallowed as "already gone".
    let in_use = images
        .delete_snapshot(&snapshots[0])
        .await
        .expect_err("in use");
    assert!(
        matches!(&in_use, PortError::Service { code, .. } if code == "InvalidSnapshot.InUse"),
        "{in_use:?}"
    );

    images.deregister(&image).await.expect("deregister");
    // moto answers InvalidAMIID.Unavailable for an image it deregistered.
    images.deregister(&image).await.expect("deregister again");
    assert_eq!(images.describe(&image).await.expect("ok"), None);
    assert!(images
        .find_by_tag("Name", "win2022-core-1")
        .await
        .expect("find")
        .is_empty());

    for snapshot in &snapshots {
        images.delete_snapshot(snapshot).await.expect("delete");
        images
            .delete_snapshot(snapshot)
            .await
            .expect("delete again");
        let gone = aws_sdk_ec2::Client::new(&config)
            .describe_snapshots()
            .snapshot_ids(snapshot)
            .send()
            .await;
        let code = gone
            .as_ref()
            .err()
            .and_then(|e| e.as_service_error())
            .and_then(aws_sdk_ec2::error::ProvideErrorMetadata::code);
        assert_eq!(code, Some("InvalidSnapshot.NotFound"), "{gone:?}");
    }
}

#[tokio::test]
async fn promote_keeps_history_and_current_follows() {
    let Some((_moto, config)) = emulator().await else {
        return;
    };
    let first = bake_image(&config, "al2023-base-1", &[]).await;
    let second = bake_image(&config, "al2023-base-2", &[]).await;
    let parameters = SsmParameters::new(aws_sdk_ssm::Client::new(&config));
    let name = "/gild/al2023-base/latest";

    assert_eq!(parameters.promote(name, &first).await.expect("promote"), 1);
    assert_eq!(
        parameters.current(name).await.expect("current"),
        Some(first.clone())
    );
    assert_eq!(parameters.promote(name, &second).await.expect("promote"), 2);
    assert_eq!(
        parameters.current(name).await.expect("current"),
        Some(second.clone())
    );

    let history = aws_sdk_ssm::Client::new(&config)
        .get_parameter_history()
        .name(name)
        .send()
        .await
        .expect("history");
    let entries: Vec<(i64, Option<&str>, Option<&str>)> = history
        .parameters()
        .iter()
        .map(|p| (p.version(), p.value(), p.data_type()))
        .collect();
    assert_eq!(
        entries,
        vec![
            (1, Some(first.as_str()), Some("aws:ec2:image")),
            (2, Some(second.as_str()), Some("aws:ec2:image")),
        ]
    );

    assert_eq!(
        parameters
            .current("/gild/never-promoted")
            .await
            .expect("ok"),
        None
    );
}

#[tokio::test]
async fn publish_delivers_the_sqs_message_subject_and_attributes() {
    let Some((_moto, config)) = emulator().await else {
        return;
    };
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let topic = sns
        .create_topic()
        .name("gild-images")
        .send()
        .await
        .expect("topic")
        .topic_arn()
        .expect("topic arn")
        .to_owned();
    let queue_url = sqs
        .create_queue()
        .queue_name("gild-images-sub")
        .send()
        .await
        .expect("queue")
        .queue_url()
        .expect("queue url")
        .to_owned();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .expect("queue arn")
        .to_owned();
    // RawMessageDelivery stays at its default (false), so the queue gets
    // SNS's JSON envelope rather than the bare message.
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .send()
        .await
        .expect("subscribe");

    let for_sqs = json!({"family": "al2023-base", "image": "ami-0123456789abcdef0"}).to_string();
    let message = json!({
        "default": "al2023-base: ami-0123456789abcdef0 promoted",
        "email": "The image ami-0123456789abcdef0 of al2023-base was promoted.",
        "sqs": for_sqs,
        "lambda": for_sqs,
    })
    .to_string();
    let notifier = SnsNotifier::new(sns.clone(), &topic);
    let publication = Publication {
        subject: "gild: al2023-base promoted ami-0123456789abcdef0".into(),
        message,
        attributes: vec![
            ("family".into(), "al2023-base".into()),
            ("trigger".into(), "push".into()),
        ],
    };
    let message_id = notifier.publish(&publication).await.expect("publish");
    assert!(!message_id.is_empty());

    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(2)
        .send()
        .await
        .expect("receive");
    assert_eq!(received.messages().len(), 1, "{received:?}");
    let body = received.messages()[0].body().expect("body");
    let envelope: Value = serde_json::from_str(body).expect("SNS envelope is JSON");
    assert_eq!(envelope["Type"], "Notification", "{envelope}");
    assert_eq!(envelope["MessageId"], message_id.as_str());
    assert_eq!(envelope["TopicArn"], topic.as_str());
    assert_eq!(envelope["Subject"], publication.subject.as_str());
    // The `sqs` key of the structure, not `default`: moto follows AWS here.
    assert_eq!(envelope["Message"], for_sqs.as_str(), "{envelope}");
    assert_eq!(
        envelope["MessageAttributes"],
        json!({
            "family": {"Type": "String", "Value": "al2023-base"},
            "trigger": {"Type": "String", "Value": "push"},
        }),
        "{envelope}"
    );

    // A subject SNS would refuse (too long, not ASCII, a newline) is mended,
    // not fatal.
    let unruly = Publication {
        subject: format!("gild: ☃ broke\n{}", "x".repeat(120)),
        ..publication.clone()
    };
    notifier
        .publish(&unruly)
        .await
        .expect("publish mended subject");
    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .wait_time_seconds(2)
        .send()
        .await
        .expect("receive");
    let body = received
        .messages()
        .first()
        .and_then(|m| m.body())
        .expect("body");
    let envelope: Value = serde_json::from_str(body).expect("JSON");
    let subject = envelope["Subject"].as_str().expect("subject");
    assert_eq!(subject.len(), 100, "{subject}");
    assert!(subject.starts_with("gild: ? broke?xxx"), "{subject}");

    // What the pipeline really publishes goes through SNS's validation too.
    let announcement = Announcement {
        family: "al2023-base".into(),
        image: Some("ami-0123456789abcdef0".into()),
        region: gild_tests::aws::REGION.into(),
        trigger: Trigger::Push,
        dedupe_key: "push:0123abcd".into(),
        commit: Some("0123abcd".into()),
        outcome: Outcome::Failed {
            stage: Stage::Test,
            reason: "goss: 2 of 40 checks failed".into(),
        },
        tested: None,
        parameter: "/gild/al2023-base/latest".into(),
        bake_log: None,
        test_log: None,
        test_report: None,
        at: "2026-11-11T03:00:00Z".into(),
        children: Vec::new(),
        packages: None,
    };
    let id = notifier
        .publish(&announcement.publication())
        .await
        .expect("publish announcement");
    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .wait_time_seconds(2)
        .send()
        .await
        .expect("receive");
    let body = received
        .messages()
        .first()
        .and_then(|m| m.body())
        .expect("body");
    let envelope: Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(envelope["MessageId"], id.as_str());
    assert_eq!(envelope["Subject"], announcement.subject().as_str());
    let machine: Value =
        serde_json::from_str(envelope["Message"].as_str().expect("message")).expect("JSON body");
    assert_eq!(machine, announcement.json());
    assert_eq!(
        envelope["MessageAttributes"]["stage"],
        json!({"Type": "String", "Value": "test"})
    );
}

fn test_request(image: &str, commit: Option<&str>) -> TestRequest {
    TestRequest {
        key: BakeKey {
            family: "al2023-base".into(),
            dedupe_key: "push:0123abcd".into(),
        },
        image: image.into(),
        commit: commit.map(str::to_owned),
    }
}

#[tokio::test]
async fn test_builds_start_with_overrides_and_report_exports() {
    let Some((moto, config)) = emulator().await else {
        return;
    };
    let proxy = CodeBuildProxy::start(&moto.endpoint())
        .await
        .expect("proxy");
    let via_proxy = gild_tests::aws::sdk_config(&proxy.endpoint());
    let tests = TestBuilds::new(aws_sdk_codebuild::Client::new(&via_proxy), TEST_PROJECT);

    let with_commit = test_request("ami-0123456789abcdef0", Some("0123abcd"));
    let first = tests.start_test(&with_commit).await.expect("start");
    let without_commit = test_request("ami-0fedcba9876543210", None);
    let second = tests.start_test(&without_commit).await.expect("start");
    assert_ne!(first, second);

    let started = proxy.started();
    assert_eq!(started.len(), 2, "{started:?}");
    let (a, b) = (&started[0], &started[1]);
    assert_eq!(a.build_id, first);
    assert_eq!(a.project_name, TEST_PROJECT);
    assert_eq!(a.source_version.as_deref(), Some("0123abcd"));
    assert_eq!(a.env_value("GILD_FAMILY"), Some("al2023-base"));
    assert_eq!(a.env_value("GILD_AMI_ID"), Some("ami-0123456789abcdef0"));
    assert_eq!(a.env_value("GILD_DEDUPE_KEY"), Some("push:0123abcd"));
    assert_eq!(a.env_value("GILD_SOURCE_COMMIT"), Some("0123abcd"));
    let token = a.idempotency_token.as_deref().expect("token");
    assert!(token.len() <= 64, "{token}");
    assert_ne!(token, with_commit.key.idempotency_token(), "not the bake's");

    assert_eq!(b.build_id, second);
    assert_eq!(b.source_version, None);
    assert_eq!(b.env_value("GILD_SOURCE_COMMIT"), None);
    assert_eq!(b.env_value("GILD_AMI_ID"), Some("ami-0fedcba9876543210"));
    assert_ne!(b.idempotency_token, a.idempotency_token, "one per image");

    let listed = aws_sdk_codebuild::Client::new(&config)
        .list_builds_for_project()
        .project_name(TEST_PROJECT)
        .send()
        .await
        .expect("list builds");
    assert_eq!(listed.ids(), [first.clone(), second.clone()]);

    let unknown = "gild-test:00000000-0000-0000-0000-000000000000";
    for err in [
        tests
            .exported_variables(unknown)
            .await
            .expect_err("unknown"),
        CodeBuildBuilds::new(aws_sdk_codebuild::Client::new(&config), "gild-bake")
            .exported_variables(unknown)
            .await
            .expect_err("unknown"),
    ] {
        assert!(
            matches!(
                &err,
                PortError::NotFound { service: "CodeBuild", operation: "BatchGetBuilds", code, .. }
                    if code == "BuildNotFound"
            ),
            "{err:?}"
        );
    }
    // moto's builds never export variables (it runs no buildspec): the map
    // is empty, but the build is found.
    assert_eq!(
        tests.exported_variables(&first).await.expect("known build"),
        BTreeMap::new()
    );
}

/// One retry policy per call path: under throttling, one call of a function
/// is exactly as many requests as gild's backoff allows. The functions' SDK
/// settings (`gild_aws::config::function_loader`) make one attempt per
/// call; left at the SDK's default (3 attempts) under gild's backoff, this
/// call was 12 requests, and with the production backoff (6) up to 18.
#[tokio::test]
async fn one_throttled_call_makes_as_many_requests_as_gilds_backoff_allows() {
    use aws_sdk_codebuild::config::Credentials;
    use gild_core::retry::Backoff;
    use gild_tests::codebuild::Limits;

    let Some((moto, _config)) = emulator().await else {
        return;
    };
    // Less than one request a second allowed: every call is throttled.
    let limits = Limits {
        rate_per_sec: Some(0.001),
        ..Limits::default()
    };
    let proxy = CodeBuildProxy::start_limited(&moto.endpoint(), limits)
        .await
        .expect("proxy");
    let config = gild_aws::config::function_loader()
        .endpoint_url(proxy.endpoint())
        .region(aws_sdk_codebuild::config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await;
    let builds = CodeBuildBuilds::new(aws_sdk_codebuild::Client::new(&config), "gild-bake");
    let backoff = Backoff {
        base: std::time::Duration::from_millis(1),
        cap: std::time::Duration::from_millis(2),
        attempts: 4,
    };
    let result =
        gild_lambda::retry::with_backoff(&backoff, 1, || builds.build("gild-bake:none")).await;
    assert!(
        matches!(result, Err(PortError::Throttled { .. })),
        "{result:?}"
    );
    assert_eq!(
        proxy.calls("BatchGetBuilds"),
        4,
        "one request per attempt of gild's backoff, none added by the SDK"
    );
}
