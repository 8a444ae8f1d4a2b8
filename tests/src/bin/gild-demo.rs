//! `make demo`: the whole pipeline on this machine, no AWS account.
//!
//! Real: the three Lambda binaries (run through the Lambda Runtime API),
//! the AWS calls they make (over HTTP to moto), the git repository the
//! images live in (read through a CodeCommit-protocol stub), the `gild` CLI.
//! Stand-ins: CodeBuild's runs (Packer's EC2 edges and the test verdicts, see
//! `gild_tests::standin`) and EventBridge's routing (the demo delivers each
//! event to the functions its rules target, every completion twice, since
//! EventBridge delivers at least once).

use std::process::{Command, ExitCode};
use std::time::Instant;

use gild_tests::git::TestRepo;
use gild_tests::pipeline::Pipeline;
use gild_tests::scenario::Functions;
use gild_tests::standin::{register_base_image, BuildStandIn};
use gild_tests::{aws, bin_path, workspace_root, HarnessError};
use serde_json::Value;

/// The family whose tests the demo makes fail, so both endings show.
const FAILING_TESTS: &str = "win2022-iis";

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

/// The images repository as a real git repo: the project's own catalog and
/// image folders.
fn images_repo() -> Result<(TestRepo, String), HarnessError> {
    let repo = TestRepo::new()?;
    let root = workspace_root();
    let catalog =
        std::fs::read_to_string(root.join("gild.toml")).map_err(|source| HarnessError::Io {
            context: "reading gild.toml".into(),
            source,
        })?;
    repo.write("gild.toml", &catalog)?;
    for dir in ["images", "ansible", "buildspecs"] {
        if root.join(dir).is_dir() {
            repo.git(&["--work-tree", &root.display().to_string(), "add", dir])?;
        }
    }
    repo.write("README.md", "# platform images\n")?;
    let first = repo.commit("images as code")?;
    Ok((repo, first))
}

async fn run() -> Result<(), HarnessError> {
    let clock = Instant::now();
    section("gild demo: the whole pipeline, offline");
    println!("Real:        trigger, bake-finished, test-finished (the built binaries, behind the Lambda Runtime API),");
    println!(
        "             their AWS calls over HTTP to moto (DynamoDB, CodeBuild, EC2, SSM, SNS, SQS),"
    );
    println!(
        "             a git repository read through a CodeCommit-protocol stub, the gild CLI."
    );
    println!("Stand-ins:   CodeBuild's runs: a bake does in EC2 what Packer does (instance from the base image,");
    println!("             image tagged at creation, snapshot tagged) and reports GILD_AMI_ID; a test reports");
    println!("             pass, or fail for {FAILING_TESTS}. EventBridge routing: the demo delivers each event");
    println!("             to the functions its rules target (a build's end also reaches the trigger, which");
    println!(
        "             starts queued bakes), every build completion twice (at-least-once delivery)."
    );
    println!(
        "Not here:    bake.yml and test.yml themselves: `make codebuild-check` runs them through"
    );
    println!("             tools/codebuild_run.py (CodeBuild's semantics, the real AWS CLI, moto); the demo");
    println!("             does not drive its builds through that runner yet (README, what is verified).");

    let (repo, first) = images_repo()?;
    let pipeline = Pipeline::start(repo).await?;
    println!(
        "\nmoto on {}; stack created (ledger, bake/test projects, topic + subscriber queue)",
        pipeline.moto.endpoint()
    );
    let functions = Functions::spawn(&pipeline).await?;
    let base = register_base_image(&pipeline.aws, "debian-13-amd64-20261110").await?;
    println!("base image registered: {base}");
    let standin = BuildStandIn::new(&pipeline, &base).fail_test(FAILING_TESTS);

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
    settle(&functions, &pipeline, &standin, 11).await?;

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
    settle(&functions, &pipeline, &standin, 12).await?;

    section("3. announcements, as the subscriber queue received them, and their Slack messages");
    let received = pipeline.announcements().await?;
    let link = gild_core::slack::RepositoryLink::codecommit(pipeline.repository())
        .map_err(|message| HarnessError::InvalidInput { message })?;
    for r in &received {
        println!("Subject: {}", r.subject);
        println!("Attributes: {:?}", r.attributes);
        println!("{}", r.body["text"].as_str().unwrap_or("(no text)"));
        // What slack-notify posts for this announcement: the same renderer
        // the function runs, on the same JSON body.
        match gild_core::slack::render_body(&r.body.to_string(), &link) {
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

    section("4. promoted SSM parameters (/gild/<family>/ami)");
    for family in ["debian13-base", "win2022-core-dotnet", "win2022-iis"] {
        let history = pipeline.parameter_history(family).await?;
        match history.last() {
            Some(current) => println!(
                "/gild/{family}/ami = {current}   (versions: {})",
                history.join(", ")
            ),
            None => println!("/gild/{family}/ami   not set: nothing passed its tests"),
        }
    }

    section("5. gild status (the real CLI against the emulator)");
    let gild = bin_path("gild")?;
    let output = Command::new(gild)
        .arg("status")
        .envs(aws::lambda_env(&pipeline.moto.endpoint()))
        .env("GILD_LEDGER_TABLE", pipeline.ledger_table())
        .output()
        .map_err(|source| HarnessError::Io {
            context: "running gild status".into(),
            source,
        })?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));

    section("done");
    println!(
        "{} builds started, {} announcements, in {:.1}s. Every process the demo started stops with it.",
        pipeline.codebuild.started().len(),
        received.len(),
        clock.elapsed().as_secs_f64()
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
    standin: &BuildStandIn,
    seed: u64,
) -> Result<(), HarnessError> {
    for (completed, deliveries) in functions.settle(pipeline, standin, 2, seed).await? {
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
