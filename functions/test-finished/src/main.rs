//! test-finished: a test build completed. Passed: point the family's SSM
//! parameter at the AMI, tag it promoted, announce it. Failed: deregister the
//! AMI, delete its snapshots, announce the failure; the parameter keeps the
//! previous image. The work itself lives in `gild-flow`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    gild_flow::lambda::run(gild_flow::Accept::Test).await
}
