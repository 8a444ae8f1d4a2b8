//! The package diff end to end: the stand-in keeps each bake's bill of
//! materials where bake.yml does, the real bake-finished compares it with
//! the promoted image's under its own role behind the IAM gate, and the
//! real test-finished announces it. And the twin's teeth: without
//! s3:ListBucket, S3 answers a missing list 403, so the announcement says
//! the list could not be read instead of that there is none.

use gild_tests::events;
use gild_tests::git::TestRepo;
use gild_tests::pipeline::{Options, Pipeline};
use gild_tests::scenario::Functions;
use gild_tests::stack::template_without;
use gild_tests::standin::{register_base_image, BuildStandIn};
use serde_json::Value;

const FAMILY: &str = "debian13-base";
const CATALOG: &str = r#"
[families.debian13-base]
path = "images/debian13-base"
os = "linux"
"#;

async fn world(options: Options) -> Option<(Pipeline, Functions, BuildStandIn)> {
    if gild_tests::moto::skip_requested() {
        return None;
    }
    let (repo, _) = TestRepo::images(CATALOG, &[FAMILY], &[]).expect("images repository");
    let moto = gild_tests::moto::MotoServer::start().await.expect("moto");
    let pipeline = Pipeline::start_with(moto, repo, options)
        .await
        .expect("pipeline");
    let functions = Functions::spawn(&pipeline).await.expect("functions");
    let base = register_base_image(&pipeline.aws, "debian-13-base")
        .await
        .expect("base image");
    let standin = BuildStandIn::new(&pipeline, &base);
    Some((pipeline, functions, standin))
}

/// A manual build of the family, run to the end (each completion twice).
async fn bake(pipeline: &Pipeline, functions: &Functions, standin: &BuildStandIn, id: &str) {
    let event = events::manual(id, Some(FAMILY)).expect("event");
    functions.deliver_ok(&event).await.expect("trigger");
    functions
        .settle(pipeline, standin, 2, 11)
        .await
        .expect("settle");
}

/// The `packages` of each promotion announced so far, oldest first.
async fn announced_packages(pipeline: &Pipeline) -> Vec<(Value, String)> {
    let mut out = Vec::new();
    for received in pipeline.announcements().await.expect("announcements") {
        if received.body["outcome"] == "promoted" {
            let text = received.body["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            out.push((received.body["packages"].clone(), text));
        }
    }
    out
}

fn s3(pipeline: &Pipeline) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::new(&pipeline.aws)
}

#[tokio::test]
async fn the_second_image_is_announced_with_what_its_packages_changed() {
    let Some((pipeline, functions, standin)) = world(Options::default()).await else {
        return;
    };
    bake(&pipeline, &functions, &standin, "manual-first").await;
    let first_image = pipeline.parameter_history(FAMILY).await.expect("history")[0].clone();
    let first = announced_packages(&pipeline).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0["status"], "first", "{}", first[0].0);
    assert_eq!(first[0].0["packages"], 6);

    bake(&pipeline, &functions, &standin, "manual-second").await;
    let images = pipeline.parameter_history(FAMILY).await.expect("history");
    assert_eq!(images.len(), 2, "{images:?}");
    let second = announced_packages(&pipeline).await;
    assert_eq!(second.len(), 1, "one announcement per promotion");
    let (packages, text) = &second[0];
    assert_eq!(packages["status"], "compared", "{packages}");
    assert_eq!(packages["against"], first_image.as_str());
    let summary = packages["summary"].as_str().unwrap_or_default();
    assert!(
        summary.starts_with(
            "linux-image-amd64 6.12.9-1 → 6.12.10-1, openssl 3.5.1-1~deb13u1 → 3.5.2-1~deb13u1, curl 8.14.1-2 → 8.14.2-2, jq 1.7.1-6 (added)"
        ),
        "security-relevant packages first: {summary}"
    );
    assert!(
        summary.ends_with("jq 1.7.1-6 (added); 3 upgraded, 1 added, 0 removed"),
        "{summary}"
    );
    assert_eq!(
        packages["diff"]["added"][0]["name"], "jq",
        "inline: {packages}"
    );
    assert!(text.contains(&format!("Packages: {summary}")), "{text}");
    // The diff is kept by AMI, where `gild diff` and the link read it.
    let stored = s3(&pipeline)
        .get_object()
        .bucket(pipeline.artifact_bucket())
        .key(format!("diff/{}.json", images[1]))
        .send()
        .await
        .expect("the diff is stored");
    let body = stored.body.collect().await.expect("body").into_bytes();
    let document: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(document["schema"], "gild.bom-diff/1");
    assert_eq!(document["against"], first_image.as_str());
    pipeline.assert_every_call_allowed();
}

/// The first image's list removed, as for an image baked before gild kept
/// them; the second bake then has nothing to compare with.
async fn second_bake_without_the_first_list(options: Options) -> Option<(Pipeline, Value)> {
    let (pipeline, functions, standin) = world(options).await?;
    bake(&pipeline, &functions, &standin, "manual-first").await;
    let first_image = pipeline.parameter_history(FAMILY).await.expect("history")[0].clone();
    s3(&pipeline)
        .delete_object()
        .bucket(pipeline.artifact_bucket())
        .key(format!("bom/{first_image}.json"))
        .send()
        .await
        .expect("delete the list");
    bake(&pipeline, &functions, &standin, "manual-second").await;
    let announced = announced_packages(&pipeline).await;
    let packages = announced.last().expect("the second promotion").0.clone();
    assert_eq!(
        pipeline
            .parameter_history(FAMILY)
            .await
            .expect("history")
            .len(),
        2
    );
    assert_eq!(packages["against"], first_image.as_str());
    Some((pipeline, packages))
}

#[tokio::test]
async fn a_promoted_image_without_a_list_reads_as_missing() {
    let Some((pipeline, packages)) = second_bake_without_the_first_list(Options::default()).await
    else {
        return;
    };
    assert_eq!(packages["status"], "unavailable");
    let reason = packages["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("no list is kept for ami-"), "{reason}");
    pipeline.assert_every_call_allowed();
}

#[tokio::test]
async fn without_list_bucket_s3_answers_403_and_the_reason_says_so() {
    let copy = template_without(
        "BakeFinishedRole",
        "Action: s3:ListBucket",
        "Action: s3:GetBucketLocation",
    );
    let options = Options {
        template: copy.path().to_path_buf(),
        ..Options::default()
    };
    let Some((pipeline, packages)) = second_bake_without_the_first_list(options).await else {
        return;
    };
    assert_eq!(packages["status"], "unavailable");
    let reason = packages["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("could not be read") && reason.contains("AccessDenied"),
        "{reason}"
    );
    let refused = pipeline.refused_calls().expect("refusals");
    assert!(
        refused.iter().any(|r| r.contains("s3:ListBucket")),
        "{refused:?}"
    );
}
