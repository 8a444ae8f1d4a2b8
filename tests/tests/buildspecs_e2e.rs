//! The whole pipeline with the real buildspecs: this project's own images
//! (gild.toml, images/, ansible/, buildspecs/) as the images repository,
//! infra/template.yaml deployed, the functions and every build under their
//! own roles through the IAM gate, and each build the functions started run
//! by `BuildRunner` (bake.yml and test.yml with CodeBuild's semantics and the
//! pinned AWS CLI). Still stand-ins: Packer's provisioning and SSM Run
//! Command's far end (`gild_tests::runner`).

use gild_tests::git::TestRepo;
use gild_tests::moto::MotoServer;
use gild_tests::pipeline::{Options, Pipeline};
use gild_tests::runner::BuildRunner;
use gild_tests::scenario::Functions;
use gild_tests::stack::template_without;

const FAILING_FAMILY: &str = "win2022-iis";
const FAILING_CHECK: &str = "health page answers 200 ok";

async fn pipeline(
    repo: TestRepo,
    template: Option<&std::path::Path>,
    failing: &[(&str, &str)],
) -> Pipeline {
    let mut options = Options {
        buildspecs: Some(
            failing
                .iter()
                .map(|(f, c)| ((*f).to_owned(), (*c).to_owned()))
                .collect(),
        ),
        ..Options::default()
    };
    if let Some(template) = template {
        options.template = template.to_path_buf();
    }
    Pipeline::start_with(MotoServer::start().await.expect("moto"), repo, options)
        .await
        .expect("pipeline")
}

#[tokio::test]
async fn schedule_runs_the_buildspecs_and_promotes_exactly_what_passed_its_tests() {
    if gild_tests::moto::skip_requested() {
        return;
    }
    let (repo, _) = TestRepo::of_this_project().expect("images repository");
    let pipeline = pipeline(repo, None, &[(FAILING_FAMILY, FAILING_CHECK)]).await;
    let functions = Functions::spawn(&pipeline).await.expect("functions");
    let runner = BuildRunner::new(&pipeline).expect("runner");
    functions
        .fire_schedule(&pipeline, "2026-11-11T03:00:00Z")
        .await
        .expect("schedule handled");
    let settled = functions
        .settle(&pipeline, &runner, 2, 5)
        .await
        .expect("settle");

    let mut ends: Vec<(String, String, &str)> = settled
        .iter()
        .map(|(c, _)| (c.project.clone(), c.family.clone(), c.status))
        .collect();
    ends.sort();
    let (bake, test) = (pipeline.bake_project(), pipeline.test_project());
    let expected: Vec<(String, String, &str)> = [
        (bake, "debian13-base", "SUCCEEDED"),
        (bake, "win2022-core-dotnet", "SUCCEEDED"),
        (bake, "win2022-iis", "SUCCEEDED"),
        (test, "debian13-base", "SUCCEEDED"),
        (test, "win2022-core-dotnet", "SUCCEEDED"),
        (test, "win2022-iis", "FAILED"),
    ]
    .into_iter()
    .map(|(p, f, s)| (p.to_owned(), f.to_owned(), s))
    .collect();
    assert_eq!(ends, expected);
    for (completed, deliveries) in &settled {
        for d in deliveries {
            assert!(
                d.invocation.outcome.is_ok(),
                "{} on {} {}: {:?}",
                d.function,
                completed.family,
                completed.status,
                d.invocation.outcome
            );
        }
    }

    // The image each bake exported is the one promoted, once; the failed
    // family's parameter was never written.
    for family in ["debian13-base", "win2022-core-dotnet"] {
        let baked = settled
            .iter()
            .find(|(c, _)| c.project == bake && c.family == family)
            .and_then(|(c, _)| c.image.clone())
            .expect("exported GILD_AMI_ID");
        assert_eq!(
            pipeline.parameter_history(family).await.expect("history"),
            [baked],
            "{family}"
        );
    }
    assert!(pipeline
        .parameter_history(FAILING_FAMILY)
        .await
        .expect("history")
        .is_empty());
    let announced: Vec<String> = pipeline
        .announcements()
        .await
        .expect("announcements")
        .into_iter()
        .map(|r| r.subject)
        .collect();
    assert_eq!(announced.len(), 3, "{announced:?}");
    // Every call of the functions and of the six builds (bake and test
    // roles) was allowed by its own role.
    pipeline.assert_every_call_allowed();
}

/// Issue 11's proof: take `ec2:CreateTags` on the temporary key pair out of
/// the bake role, and the bake fails where Packer's CreateKeyPair (with its
/// TagSpecifications) is refused, the gate names the refused call, and
/// nothing is promoted.
#[tokio::test]
async fn a_bake_role_that_cannot_tag_its_key_pair_fails_the_bake() {
    if gild_tests::moto::skip_requested() {
        return;
    }
    let copy = template_without(
        "BakeRole",
        "              - Sid: TagTheTemporaryKeyPairAtCreation
                Effect: Allow
                Action: ec2:CreateTags
                Resource: !Sub arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:key-pair/packer_*
                Condition:
                  StringEquals: {\"ec2:CreateAction\": CreateKeyPair}
",
        "",
    );
    let (repo, _) = TestRepo::of_this_project().expect("images repository");
    // One Linux family is enough to meet the key pair.
    repo.write(
        "gild.toml",
        "[families.debian13-base]\npath = \"images/debian13-base\"\nos = \"linux\"\nroles = [\"baseline\", \"cloudwatch-agent\", \"ssm-agent\"]\n",
    )
    .expect("catalog");
    repo.commit("only debian13-base").expect("commit");
    let pipeline = pipeline(repo, Some(copy.path()), &[]).await;
    let functions = Functions::spawn(&pipeline).await.expect("functions");
    let runner = BuildRunner::new(&pipeline).expect("runner");
    functions
        .fire_schedule(&pipeline, "2026-11-11T03:00:00Z")
        .await
        .expect("schedule handled");
    let settled = functions
        .settle(&pipeline, &runner, 1, 3)
        .await
        .expect("settle");
    let ends: Vec<(&str, &str)> = settled
        .iter()
        .map(|(c, _)| (c.family.as_str(), c.status))
        .collect();
    assert_eq!(ends, [("debian13-base", "FAILED")], "only the bake, failed");
    let refused = pipeline.refused_calls().expect("decisions");
    assert!(
        refused
            .iter()
            .any(|r| r.starts_with("ec2:CreateKeyPair by BakeRole")
                && r.contains("key-pair/packer_")),
        "{refused:?}"
    );
    assert!(pipeline
        .parameter_history("debian13-base")
        .await
        .expect("history")
        .is_empty());
}
