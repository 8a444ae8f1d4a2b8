//! reconcile: every few minutes (a schedule rule), finish the bakes whose
//! events were lost for good and start queued bakes into free slots. The
//! work is `gild_flow::reconcile`; this file reads the config and wires the
//! clients, once per cold start.

mod config;

use std::sync::Arc;

use gild_flow::reconcile::Reconciler;
use gild_flow::trigger::Launcher;
use gild_flow::{Completions, Ports};
use gild_github::GitHubReviews;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

/// StartBuild calls in flight at once when the queue is drained.
const START_CONCURRENCY: usize = 4;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, aws) = gild_aws::prologue(config::Config::from_env).await?;
    let projects = &config.flow.projects;
    let reviews = gild_aws::host_reviews(
        &aws,
        config.host.reviewer_role(),
        config.host.github(),
        GitHubReviews::new,
    )
    .await?;
    let ports = gild_aws::completion_ports(
        &aws,
        &config.ledger_table,
        &config.topic_arn,
        &config.artifact_bucket,
        projects,
        reviews,
    );
    // The completion steps and the queue share one ledger client.
    let ledger = Arc::new(ports.ledger);
    let bake_builds = gild_aws::bake_builds(&aws, &projects.bake);
    let completions = Completions::new(
        Ports {
            ledger: Arc::clone(&ledger),
            images: ports.images,
            build_info: ports.build_info,
            tests: ports.tests,
            parameters: ports.parameters,
            notifier: ports.notifier,
            reviews: ports.reviews,
            artifacts: ports.artifacts,
        },
        config.flow.clone(),
    );
    let launcher = Launcher::new(
        ledger,
        bake_builds,
        START_CONCURRENCY,
        config.flow.lease_secs,
    )
    .with_max_parallel(config.max_parallel);
    let reconciler = Reconciler::new(completions, launcher, config.deadlines, &config.region);
    let reconciler = &reconciler;
    // Boxed: the run's future is deep enough to overflow rustc's layout depth.
    gild_lambda::run(move |event: LambdaEvent<Value>| {
        tracing::info!(detail_type = %event.payload["detail-type"], "reconcile run");
        Box::pin(reconciler.run(gild_lambda::now()))
    })
    .await
}
