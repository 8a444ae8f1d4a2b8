//! bake-finished: a bake build completed. Succeeded: verify and tag the AMI
//! and its snapshots, start its test build. Failed, stopped or timed out:
//! remove what the bake left, announce the failure. The work itself lives in
//! `gild-flow`, shared with test-finished.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    gild_flow::lambda::run(gild_flow::Accept::Bake).await
}
