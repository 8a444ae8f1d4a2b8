//! One fault proxy in front of each endpoint a pipeline's functions call.

use std::sync::Arc;

use super::config::FaultConfig;
use super::fleet::{Fleet, FleetConfig, Fleets};
use super::proxy::{FaultProxy, Injected, Shared};
use crate::pipeline::Pipeline;
use crate::{bin_path, HarnessError};

/// One fault proxy in front of each endpoint a pipeline's functions use:
/// moto (`AWS_ENDPOINT_URL`), the CodeBuild recording proxy and the
/// CodeCommit stub. The harness's own clients still talk to them directly.
///
/// The three proxies share one call sequence and one record: the rate and
/// the kinds' bags apply to all the functions' calls together, wherever
/// they go, and scripted calls are counted across them.
pub struct FaultyRoutes {
    pub moto: FaultProxy,
    pub codebuild: FaultProxy,
    pub codecommit: FaultProxy,
}

impl FaultyRoutes {
    pub async fn start(
        pipeline: &Pipeline,
        config: &FaultConfig,
    ) -> Result<FaultyRoutes, HarnessError> {
        let shared = Shared::new();
        let start = |endpoint: String| {
            let (config, shared) = (config.clone(), Arc::clone(&shared));
            async move { FaultProxy::start_sharing(&endpoint, config, shared).await }
        };
        // In front of what the functions call: the IAM gate (or moto), the
        // CodeBuild proxy, and the CodeCommit endpoint (the gate again,
        // which routes to the stub), so a fault lands after IAM said yes.
        let env = pipeline.function_env("trigger")?;
        let endpoint = |name: &str| {
            env.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| HarnessError::InvalidInput {
                    message: format!("the functions' environment has no {name}"),
                })
        };
        Ok(FaultyRoutes {
            moto: start(endpoint("AWS_ENDPOINT_URL")?).await?,
            codebuild: start(endpoint("AWS_ENDPOINT_URL_CODEBUILD")?).await?,
            codecommit: start(endpoint("AWS_ENDPOINT_URL_CODECOMMIT")?).await?,
        })
    }

    /// `pipeline.function_env(function)` with every endpoint through a proxy.
    pub fn function_env(
        &self,
        pipeline: &Pipeline,
        function: &str,
    ) -> Result<Vec<(String, String)>, HarnessError> {
        let mut env = pipeline.function_env(function)?;
        for (name, value) in &mut env {
            match name.as_str() {
                "AWS_ENDPOINT_URL" => *value = self.moto.endpoint(),
                "AWS_ENDPOINT_URL_CODEBUILD" => *value = self.codebuild.endpoint(),
                "AWS_ENDPOINT_URL_CODECOMMIT" => *value = self.codecommit.endpoint(),
                _ => {}
            }
        }
        Ok(env)
    }

    /// The pipeline's functions as [`Fleets`] behind the proxies;
    /// `extra(function)` is appended to (and so overrides) that function's
    /// environment, e.g. `GILD_LEASE_SECS`, and `fleet(function)` says how
    /// its environments behave. No process starts before its first event.
    pub fn fleets(
        &self,
        pipeline: &Pipeline,
        extra: &dyn Fn(&str) -> Vec<(String, String)>,
        fleet: &dyn Fn(&str) -> FleetConfig,
    ) -> Result<Fleets, HarnessError> {
        let make = |function: &'static str| -> Result<Fleet, HarnessError> {
            let mut env = self.function_env(pipeline, function)?;
            env.extend(extra(function));
            Ok(Fleet::new(
                function,
                bin_path(function)?,
                pipeline.deployed(function)?.function_name.clone(),
                env,
                fleet(function),
            ))
        };
        Ok(Fleets {
            trigger: make("trigger")?,
            bake_finished: make("bake-finished")?,
            test_finished: make("test-finished")?,
            reconcile: make("reconcile")?,
            router: Arc::clone(&pipeline.router),
        })
    }

    /// What the three proxies saw and did.
    pub fn injected(&self) -> Injected {
        self.moto.injected()
    }
}
