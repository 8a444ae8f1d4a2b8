//! The real buildspecs, for every build the functions started.
//!
//! moto records `StartBuild` and runs nothing. For each build the CodeBuild
//! proxy saw start, `BuildRunner` runs the project's buildspec
//! (`buildspecs/bake.yml` or `test.yml`) as CodeBuild would, through
//! `tools/twin_run_build.py`: `tools/codebuild_run.py`'s phases, the pinned
//! AWS CLI, under the project's service role's keys through the IAM gate,
//! on the commit the build asked for. Then it reports the build's end as
//! AWS does, a `CodeBuild Build State Change` with the build's exported
//! variables.
//!
//! Still stand-ins, behind the buildspecs (tests/twin/codebuild/README.md):
//! Packer (its EC2 work only: `tests/twin/codebuild/standins/bin/packer`),
//! the three install scripts that download, and SSM Run Command's far end
//! (`tools/codebuild_ssm_proxy.py`, which answers each check a family's
//! test script declares, `ok` unless told to fail it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::codebuild::StartedBuild;
use crate::pipeline::Pipeline;
use crate::process::ChildGuard;
use crate::standin::{completion_event, Builds, Completed, RunOnce};
use crate::{workspace_root, HarnessError};

fn runner_error(message: impl Into<String>) -> HarnessError {
    HarnessError::InvalidInput {
        message: message.into(),
    }
}

/// The pinned interpreter that runs the buildspec twin (AWS CLI v1).
fn awscli_python() -> Result<PathBuf, HarnessError> {
    let path = workspace_root().join(".venv/awscli/bin/python");
    if path.is_file() {
        Ok(path)
    } else {
        Err(runner_error(format!(
            "{} is missing: run `make demo` or `make unit`, which install the buildspec twin",
            path.display()
        )))
    }
}

/// SSM Run Command's far end (`tools/codebuild_ssm_proxy.py`), in front of
/// moto: the IAM gate sends it the SSM calls it has allowed.
pub struct SsmProxy {
    _child: ChildGuard,
    port: u16,
    /// `NAME=CHECK` lines the proxy reads again for every answer.
    fail_file: PathBuf,
}

impl SsmProxy {
    /// Reads the family test scripts from `source` (the images repository);
    /// `failing` names (family, check) pairs whose check reports `not ok`.
    pub async fn start(
        moto: &str,
        source: &Path,
        failing: &[(String, String)],
        dir: &Path,
    ) -> Result<SsmProxy, HarnessError> {
        let port_file = dir.join("ssm-proxy.port");
        let fail_file = dir.join("ssm-proxy.failing");
        let mut command = Command::new(awscli_python()?);
        command
            .arg(workspace_root().join("tools/codebuild_ssm_proxy.py"))
            .args(["--moto", moto])
            .arg("--source")
            .arg(source)
            .arg("--port-file")
            .arg(&port_file)
            .arg("--fail-file")
            .arg(&fail_file)
            .stdin(Stdio::null());
        for (family, check) in failing {
            command.arg("--fail").arg(format!("{family}={check}"));
        }
        let child = ChildGuard::spawn(&mut command, "the SSM proxy")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|p| p.trim().parse::<u16>().ok())
            {
                return Ok(SsmProxy {
                    _child: child,
                    port,
                    fail_file,
                });
            }
            if let Some(status) = child.try_exit() {
                return Err(runner_error(format!("the SSM proxy exited: {status}")));
            }
            if Instant::now() > deadline {
                return Err(runner_error("the SSM proxy did not start within 20 s"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// From now on, these (family or consumer, check) pairs fail as well as
    /// those the proxy started with.
    pub fn also_failing(&self, failing: &[(&str, &str)]) -> Result<(), HarnessError> {
        let text: String = failing
            .iter()
            .map(|(name, check)| format!("{name}={check}\n"))
            .collect();
        std::fs::write(&self.fail_file, text)
            .map_err(|e| HarnessError::io("writing the SSM proxy's failing checks", e))
    }
}

pub struct BuildRunner {
    moto: String,
    gate: String,
    stack_json: PathBuf,
    credentials: PathBuf,
    /// The images repository (a git work tree): each build gets the commit
    /// it asked for, exported from here.
    repository: PathBuf,
    bake_project: String,
    work: tempfile::TempDir,
    done: RunOnce,
    sequence: Mutex<u32>,
}

impl BuildRunner {
    /// Runs `pipeline`'s builds; the pipeline must have been started with
    /// the gate and the SSM proxy (`Options::buildspecs`).
    pub fn new(pipeline: &Pipeline) -> Result<BuildRunner, HarnessError> {
        let gate = pipeline.gate.as_ref().ok_or_else(|| {
            runner_error("the buildspecs run under their roles: start the pipeline with the gate")
        })?;
        if pipeline.ssm.is_none() {
            return Err(runner_error(
                "the buildspecs need SSM's far end: start the pipeline with Options::buildspecs",
            ));
        }
        let work = tempfile::Builder::new()
            .prefix("gild-builds-")
            .tempdir()
            .map_err(|e| HarnessError::io("creating the builds' folder", e))?;
        Ok(BuildRunner {
            moto: pipeline.moto.endpoint(),
            gate: gate.endpoint(),
            stack_json: pipeline.deployment.path.clone(),
            credentials: gate.credentials_path().to_path_buf(),
            repository: pipeline.repo.path().to_path_buf(),
            bake_project: pipeline.bake_project().to_owned(),
            work,
            done: RunOnce::default(),
            sequence: Mutex::new(0),
        })
    }

    /// The commit `build` asked for, as CodeBuild's DOWNLOAD_SOURCE gets it.
    async fn checkout(&self, build: &StartedBuild, dir: &Path) -> Result<(), HarnessError> {
        let commit = build.source_version.as_deref().unwrap_or("HEAD");
        std::fs::create_dir_all(dir)
            .map_err(|e| HarnessError::io(format!("creating {}", dir.display()), e))?;
        let archive = tokio::process::Command::new("git")
            .current_dir(&self.repository)
            .args(["archive", "--format=tar", commit])
            .output()
            .await
            .map_err(|e| HarnessError::io("git archive", e))?;
        if !archive.status.success() {
            return Err(runner_error(format!(
                "git archive {commit}: {}",
                String::from_utf8_lossy(&archive.stderr)
            )));
        }
        let mut tar = tokio::process::Command::new("tar")
            .current_dir(dir)
            .args(["-xf", "-"])
            .stdin(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| HarnessError::io("tar", e))?;
        if let Some(mut stdin) = tar.stdin.take() {
            use tokio::io::AsyncWriteExt;
            stdin
                .write_all(&archive.stdout)
                .await
                .map_err(|e| HarnessError::io("tar's input", e))?;
        }
        let status = tar.wait().await.map_err(|e| HarnessError::io("tar", e))?;
        if status.success() {
            Ok(())
        } else {
            Err(runner_error(format!("extracting {commit}: tar {status}")))
        }
    }

    async fn run_build(&self, build: &StartedBuild) -> Result<Completed, HarnessError> {
        let n = self.sequence.lock().map_or(0, |mut n| {
            *n += 1;
            *n
        });
        let dir = self.work.path().join(format!("build-{n}"));
        let source = dir.join("source");
        self.checkout(build, &source).await?;
        let result_path = dir.join("result.json");
        let mut command = tokio::process::Command::new(awscli_python()?);
        command
            .current_dir(workspace_root())
            .arg(workspace_root().join("tools/twin_run_build.py"))
            .args(["--moto", &self.moto, "--gate", &self.gate])
            .arg("--stack-json")
            .arg(&self.stack_json)
            .arg("--credentials")
            .arg(&self.credentials)
            .args(["--project", &build.project_name])
            .args(["--build-id", &build.build_id])
            .arg("--source")
            .arg(&source)
            .arg("--work")
            .arg(dir.join("work"))
            .arg("--result")
            .arg(&result_path)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(commit) = &build.source_version {
            command.args(["--source-version", commit]);
        }
        for (name, value) in &build.env {
            command.arg("--env").arg(format!("{name}={value}"));
        }
        let output = command
            .output()
            .await
            .map_err(|e| HarnessError::io("running tools/twin_run_build.py", e))?;
        if !output.status.success() {
            // The build's folder goes with the runner: say what its log said.
            let log = std::fs::read_to_string(dir.join("work/build.log")).unwrap_or_default();
            let tail = &log[log.len().saturating_sub(4000)..];
            return Err(runner_error(format!(
                "build {} could not be run ({}):\n{}{}\n--- build.log (end) ---\n{tail}",
                build.build_id,
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        let text = std::fs::read_to_string(&result_path)
            .map_err(|e| HarnessError::io(format!("reading {}", result_path.display()), e))?;
        let result: Value = serde_json::from_str(&text).map_err(|source| HarnessError::Json {
            context: format!("the result of build {}", build.build_id),
            source,
        })?;
        let status = match result["buildStatus"].as_str() {
            Some("SUCCEEDED") => "SUCCEEDED",
            Some("FAILED") => "FAILED",
            Some("FAULT") => "FAULT",
            Some("STOPPED") => "STOPPED",
            Some("TIMED_OUT") => "TIMED_OUT",
            other => {
                return Err(runner_error(format!(
                    "build {} ended with an unknown status {other:?}",
                    build.build_id
                )))
            }
        };
        let exported: Vec<(String, String)> = result["exportedEnvironmentVariables"]
            .as_array()
            .map(|vars| {
                vars.iter()
                    .filter_map(|v| {
                        Some((
                            v["name"].as_str()?.to_owned(),
                            v["value"].as_str().unwrap_or_default().to_owned(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let exported_refs: Vec<(&str, String)> = exported
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let buildspec = if build.project_name == self.bake_project {
            "buildspecs/bake.yml"
        } else {
            "buildspecs/test.yml"
        };
        let image = exported
            .iter()
            .find(|(k, v)| k == "GILD_AMI_ID" && !v.is_empty())
            .map(|(_, v)| v.clone())
            .or_else(|| build.env_value("GILD_AMI_ID").map(str::to_owned));
        Ok(Completed {
            event: completion_event(build, status, &exported_refs, n, buildspec)?,
            project: build.project_name.clone(),
            family: build
                .env_value("GILD_FAMILY")
                .unwrap_or_default()
                .to_owned(),
            status,
            image,
        })
    }
}

impl Builds for BuildRunner {
    fn done(&self) -> &RunOnce {
        &self.done
    }

    async fn run(&self, build: &StartedBuild) -> Result<Completed, HarnessError> {
        self.run_build(build).await
    }
}
