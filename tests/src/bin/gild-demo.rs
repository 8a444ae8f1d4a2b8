//! `make demo`: the whole pipeline on this machine, no AWS account.
//!
//! Real: `infra/template.yaml` deployed into moto (the pinned SAM
//! translator, moto's CloudFormation), the three Lambda binaries (run
//! through the Lambda Runtime API, each under its own role's keys, every
//! call judged by the IAM gate against that role), `buildspecs/bake.yml` and
//! `test.yml` (run with CodeBuild's semantics by `tools/codebuild_run.py`,
//! the pinned AWS CLI, under the bake and test roles), EventBridge's routing
//! by the stack's own rules (moto's matcher), the git repository the images
//! live in (read through a CodeCommit-protocol stub), the `gild` CLI.
//! Stand-ins: Packer (its EC2 work only), the tool downloads, SSM Run
//! Command's far end (it answers each check a family's test script
//! declares); see `gild_tests::runner`.

use std::process::{Command, ExitCode};
use std::time::Instant;

use gild_tests::custom_resource::{self, ResponseBucket};
use gild_tests::git::TestRepo;
use gild_tests::moto::MotoServer;
use gild_tests::pipeline::{Options, Pipeline};
use gild_tests::runner::BuildRunner;
use gild_tests::scenario::Functions;
use gild_tests::{aws, bin_path, HarnessError};
use serde_json::Value;

/// The family whose tests the demo makes fail, and the check that fails
/// (one its test script declares), so both endings show.
const FAILING_TESTS: &str = "win2022-iis";
const FAILING_CHECK: &str = "health page answers 200 ok";
/// The consumer check the demo's pull request breaks (orders-service's
/// script declares it), on its first head only.
const CONSUMER_CHECK: &str = "dotnet on the machine PATH";

fn section(title: &str) {
    println!(
        "\n== {title} {}",
        "=".repeat(70usize.saturating_sub(title.len()))
    );
}

fn summary(value: &Value) -> String {
    let started: Vec<&str> = value["started"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["family"].as_str()).collect())
        .unwrap_or_default();
    let reached: Vec<&str> = value["reached"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !started.is_empty() {
        format!("started bakes: {}", started.join(", "))
    } else if !reached.is_empty() {
        format!("state -> {}", reached.join(" -> "))
    } else {
        let why = value["noop"]
            .as_str()
            .or(value["reason"].as_str())
            .unwrap_or("");
        format!("nothing to do ({why})")
    }
}

async fn run() -> Result<(), HarnessError> {
    let clock = Instant::now();
    section("gild demo: the whole pipeline, offline");
    for line in [
        "Real:        infra/template.yaml deployed into moto (aws-sam-translator, moto's CloudFormation);",
        "             trigger, bake-finished, test-finished (the built binaries, behind the Lambda Runtime API),",
        "             each with the stack's environment and its own role's keys: every AWS call goes through",
        "             the IAM gate, which evaluates it against that role (principalmapper) before moto sees it;",
        "             buildspecs/bake.yml and test.yml, run with CodeBuild's semantics (tools/codebuild_run.py)",
        "             with the pinned AWS CLI under the bake and test roles, on the commit each build asked for;",
        "             EventBridge routing by the stack's own rules (moto's matcher), every build completion",
        "             delivered twice (at-least-once); the images repository through a CodeCommit stub; the gild CLI.",
        "Stand-ins:   Packer does its EC2 work only (instance, key pair, image, encrypted copy, tags; Ansible does",
        "             not run); the tool downloads; SSM Run Command's far end answers each check a family's",
        &format!("             test script declares, `ok` except \"{FAILING_CHECK}\" for {FAILING_TESTS}."),
    ] {
        println!("{line}");
    }

    let (repo, first) = TestRepo::of_this_project()?;
    let options = Options {
        buildspecs: Some(vec![(FAILING_TESTS.to_owned(), FAILING_CHECK.to_owned())]),
        ..Options::default()
    };
    let pipeline = Pipeline::start_with(MotoServer::start().await?, repo, options).await?;
    println!(
        "\nmoto on {}; stack {} deployed: ledger {}, projects {} and {}, repository {}",
        pipeline.moto.endpoint(),
        pipeline.deployment.stack_name,
        pipeline.ledger_table(),
        pipeline.bake_project(),
        pipeline.test_project(),
        pipeline.repository(),
    );
    let functions = Functions::spawn(&pipeline).await?;
    let runner = BuildRunner::new(&pipeline)?;

    section("1. the monthly patch schedule fires (twice: EventBridge may repeat it)");
    let schedule = pipeline.schedule_event("2026-11-11T03:00:00Z")?;
    for _ in 0..2 {
        let delivery = functions.deliver(&schedule).await?;
        report(
            delivery.function,
            "Scheduled Event",
            &delivery.invocation.outcome,
        );
    }
    settle(&functions, &pipeline, &runner, 11).await?;

    section("2. a push changes one family's template");
    pipeline.repo.write(
        "images/debian13-base/NOTES.md",
        "Hardening: disable unused filesystems (cramfs, udf).\n",
    )?;
    let second = pipeline
        .repo
        .commit("debian13-base: disable unused filesystems")?;
    let push = pipeline.push_event("main", Some(&first), &second)?;
    let delivery = functions.deliver(&push).await?;
    report(delivery.function, "push", &delivery.invocation.outcome);
    settle(&functions, &pipeline, &runner, 12).await?;

    pull_request(&functions, &pipeline, &runner, &second).await?;

    section("4. announcements, as the subscriber queue received them, and their Slack messages");
    let received = pipeline.announcements().await?;
    let link = gild_slack::RepositoryLink::codecommit(pipeline.repository())
        .map_err(|message| HarnessError::InvalidInput { message })?;
    for r in &received {
        println!("Subject: {}", r.subject);
        println!("Attributes: {:?}", r.attributes);
        println!("{}", r.body["text"].as_str().unwrap_or("(no text)"));
        // What slack-notify posts for this announcement: the same renderer
        // the function runs, on the same JSON body.
        match gild_slack::render_body(&r.body.to_string(), &link) {
            Ok(message) => println!(
                "Slack message slack-notify would post:\n{}",
                serde_json::to_string_pretty(&message.to_json()).unwrap_or_default()
            ),
            Err(err) => println!("Slack message: cannot render: {err}"),
        }
        println!("{}", "-".repeat(72));
    }
    println!(
        "({} announcements; the same facts arrive as JSON in the message body)",
        received.len()
    );

    section("5. promoted SSM parameters (<prefix>/<family>/ami)");
    for family in ["debian13-base", "win2022-core-dotnet", "win2022-iis"] {
        let name = pipeline.parameter_name(family);
        let history = pipeline.parameter_history(family).await?;
        match history.last() {
            Some(current) => println!("{name} = {current}   (versions: {})", history.join(", ")),
            None => println!("{name}   not set: nothing passed its tests"),
        }
    }

    section("6. gild status and gild diff (the real CLI against the emulator)");
    let gild = bin_path("gild")?;
    for args in [&["status"][..], &["diff", "debian13-base"][..]] {
        println!("$ gild {}", args.join(" "));
        let output = Command::new(&gild)
            .args(args)
            .envs(aws::lambda_env(&pipeline.moto.endpoint()))
            .env("GILD_LEDGER_TABLE", pipeline.ledger_table())
            .env("GILD_ARTIFACT_BUCKET", pipeline.artifact_bucket())
            .output()
            .map_err(|source| HarnessError::Io {
                context: format!("running gild {}", args.join(" ")),
                source,
            })?;
        print!("{}", String::from_utf8_lossy(&output.stdout));
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
    }

    section("7. IAM: every call, judged against the caller's own role");
    if let Some(gate) = &pipeline.gate {
        let decisions = gate.decisions()?;
        let mut by_role = std::collections::BTreeMap::<String, (usize, usize)>::new();
        for d in &decisions {
            let entry = by_role
                .entry(d.role.clone().unwrap_or_else(|| "?".into()))
                .or_default();
            if d.allowed {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
        for (role, (allowed, refused)) in &by_role {
            println!("  {role:<18} {allowed:>4} allowed, {refused} refused");
        }
        for refusal in gate.refusals()? {
            println!("  REFUSED: {refusal}");
        }
    }

    section("done");
    println!(
        "{} builds started, {} announcements, in {:.1}s. Every process the demo started stops with it.",
        pipeline.codebuild.started().len(),
        received.len(),
        clock.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A pull request breaks the consumer orders-service's test, is fixed,
/// turns green and is merged: gild's comment and approval on it, and the
/// one production bake the merge starts.
async fn pull_request(
    functions: &Functions,
    pipeline: &Pipeline,
    runner: &BuildRunner,
    main: &str,
) -> Result<(), HarnessError> {
    section("3. a pull request: it breaks a consumer's test, is fixed, passes and is merged");
    let repo = &pipeline.repo;
    repo.create_branch("dotnet-8-0-11")?;
    repo.write(
        "images/win2022-core-dotnet/NOTES.md",
        "Move to the .NET 8.0.11 Hosting Bundle.\n",
    )?;
    let broken = repo.commit("win2022-core-dotnet: .NET 8.0.11")?;
    // The stand-in's SSM far end fails this check of the consumer's
    // script for the first head: the twin cannot run Windows.
    let ssm = pipeline
        .ssm
        .as_ref()
        .ok_or_else(|| HarnessError::InvalidInput {
            message: "the demo runs the real buildspecs".into(),
        })?;
    ssm.also_failing(&[("orders-service", CONSUMER_CHECK)])?;
    let open = |head: &str, revision: &str| {
        pipeline
            .codecommit
            .open_pull_request(gild_tests::codecommit::StubPullRequest {
                id: "1".into(),
                source_reference: "refs/heads/dotnet-8-0-11".into(),
                destination_reference: "refs/heads/main".into(),
                source_commit: head.into(),
                destination_commit: main.into(),
                revision_id: revision.into(),
            })
    };
    let event = |kind: &str, head: &str, revision: &str| {
        gild_tests::events::pull_request(pipeline.repository(), kind, 1, head, main, revision)
    };
    // The stack's approval-rule template, made by its custom resource's
    // function as CloudFormation would have it made at deploy time.
    let bucket = ResponseBucket::start().await?;
    let create = custom_resource::Request::of(pipeline, "Create", "ApprovalRuleTemplate")?;
    let made = custom_resource::play(pipeline, &bucket, &create).await?;
    let status = made
        .answers
        .first()
        .map_or("no answer".to_owned(), |a| a["Status"].to_string());
    println!(
        "approval-rule template {} (the approval-template function answered CloudFormation {status}): gild's approval is required to merge",
        create.properties["TemplateName"]
    );
    open(&broken, "rev-1");
    let delivery = functions
        .deliver(&event("pullRequestCreated", &broken, "rev-1")?)
        .await?;
    report(
        delivery.function,
        "pull request #1 opened",
        &delivery.invocation.outcome,
    );
    settle(functions, pipeline, runner, 21).await?;
    show_review(pipeline, &broken, "rev-1").await?;

    ssm.also_failing(&[])?;
    repo.write(
        "images/win2022-core-dotnet/NOTES.md",
        "Move to the .NET 8.0.11 Hosting Bundle; keep dotnet on the machine PATH.\n",
    )?;
    let fixed = repo.commit("win2022-core-dotnet: keep dotnet on PATH")?;
    open(&fixed, "rev-2");
    let delivery = functions
        .deliver(&event("pullRequestSourceBranchUpdated", &fixed, "rev-2")?)
        .await?;
    report(
        delivery.function,
        "pull request #1 updated",
        &delivery.invocation.outcome,
    );
    settle(functions, pipeline, runner, 22).await?;
    show_review(pipeline, &fixed, "rev-2").await?;

    repo.checkout("main")?;
    repo.git(&["merge", "--ff-only", "dotnet-8-0-11"])?;
    for event in [
        event("pullRequestMergeStatusUpdated", &fixed, "rev-2")?,
        pipeline.push_event("main", Some(main), &fixed)?,
    ] {
        let delivery = functions.deliver(&event).await?;
        let what = event["detail"]["event"]
            .as_str()
            .unwrap_or("push")
            .to_owned();
        report(delivery.function, &what, &delivery.invocation.outcome);
    }
    settle(functions, pipeline, runner, 23).await?;
    Ok(())
}

/// gild's comment on the head, the approvals so far, and whether the
/// revision may merge (CodeCommit's own evaluation of its approval rules).
async fn show_review(pipeline: &Pipeline, head: &str, revision: &str) -> Result<(), HarnessError> {
    for comment in pipeline.codecommit.comments("1") {
        if comment["afterCommitId"] == head {
            println!(
                "gild's comment on {}:\n{}",
                &head[..7],
                comment["content"].as_str().unwrap_or_default()
            );
        }
    }
    let approvals: Vec<String> = pipeline
        .codecommit
        .approvals("1")
        .into_iter()
        .map(|(revision, state)| format!("{state} {revision}"))
        .collect();
    println!("gild's approvals: {}", approvals.join(", "));
    let console = aws_sdk_codecommit::Client::new(&gild_tests::aws::sdk_config(
        &pipeline.codecommit.endpoint(),
    ));
    let evaluation = console
        .evaluate_pull_request_approval_rules()
        .pull_request_id("1")
        .revision_id(revision)
        .send()
        .await
        .map_err(|e| HarnessError::InvalidInput {
            message: format!(
                "EvaluatePullRequestApprovalRules: {}",
                aws_sdk_codecommit::error::DisplayErrorContext(e)
            ),
        })?;
    let approved = evaluation.evaluation().is_some_and(|e| e.approved());
    println!(
        "may {revision} merge? {}",
        if approved {
            "yes"
        } else {
            "no: gild's approval rule is not satisfied"
        }
    );
    Ok(())
}

fn report(
    function: &str,
    what: &str,
    outcome: &Result<Value, gild_tests::runtime_api::FunctionError>,
) {
    match outcome {
        Ok(value) => println!("  {function:<14} <- {what:<28} {}", summary(value)),
        Err(err) => println!(
            "  {function:<14} <- {what:<28} ERROR {}: {}",
            err.error_type, err.error_message
        ),
    }
}

async fn settle(
    functions: &Functions,
    pipeline: &Pipeline,
    builds: &impl gild_tests::standin::Builds,
    seed: u64,
) -> Result<(), HarnessError> {
    for (completed, deliveries) in functions.settle(pipeline, builds, 2, seed).await? {
        let what = format!(
            "{} {} {}",
            if completed.project == pipeline.bake_project() {
                "bake"
            } else {
                "test"
            },
            completed.family,
            completed.status
        );
        for delivery in deliveries {
            report(delivery.function, &what, &delivery.invocation.outcome);
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gild demo failed: {err}");
            ExitCode::FAILURE
        }
    }
}
