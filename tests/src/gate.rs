//! The IAM gate between the functions and moto: every call a function makes
//! is evaluated against its own role, as `infra/template.yaml` defines it and
//! as the deployed stack names its resources, before moto sees it.
//!
//! The gate is the IAM twin's (`tests/twin/iam/gate.py`, principalmapper's
//! evaluator in `.venv/iam`); this module starts it as a process next to the
//! harness's moto, hands each function its role's keys, and reads the
//! decision log, so a test can fail on the call a role does not allow.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use serde_json::Value;

use crate::process::ChildGuard;
use crate::stack::Deployment;
use crate::{workspace_root, HarnessError};

/// A role's keys, as the gate made them up.
#[derive(Debug, Clone, Deserialize)]
pub struct RoleKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// One decision, as the gate logged it.
#[derive(Debug, Clone, Deserialize)]
pub struct Decision {
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub action: String,
    pub allowed: bool,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub unmapped: bool,
    #[serde(default)]
    pub resources: Vec<String>,
    /// Of a call AWS authorizes more than once (RunInstances, CreateKeyPair
    /// with tags...), the authorization that failed.
    #[serde(default)]
    pub refused_action: Option<String>,
    #[serde(default)]
    pub refused_resource: Option<String>,
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} by {} on [{}]",
            self.action,
            self.role.as_deref().unwrap_or("?"),
            self.resources.join(", "),
        )?;
        if let Some(action) = &self.refused_action {
            let on = self.refused_resource.as_deref().unwrap_or("*");
            write!(f, ", refused {action} on {on}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

pub struct IamGate {
    child: ChildGuard,
    port: u16,
    keys: BTreeMap<String, RoleKeys>,
    credentials: PathBuf,
    decisions: PathBuf,
}

fn gate_python() -> Result<PathBuf, HarnessError> {
    let path = workspace_root().join(".venv/iam/bin/python");
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::InvalidInput {
            message: format!(
                "{} is missing: run `make unit` (or `make iam-check`), which installs the IAM twin",
                path.display()
            ),
        })
    }
}

impl IamGate {
    /// Starts the gate in front of `upstream` (moto), judging with the roles
    /// of `deployment` (its template, its names); `routes` sends a service's allowed calls elsewhere
    /// (`codecommit` → the CodeCommit stub). Files go into `dir`.
    pub fn start(
        upstream: &str,
        deployment: &Deployment,
        routes: &[(&str, String)],
        dir: &Path,
    ) -> Result<IamGate, HarnessError> {
        let root = workspace_root();
        let credentials = dir.join("role-keys.json");
        let decisions = dir.join("iam-decisions.jsonl");
        let mut command = Command::new(gate_python()?);
        command
            .current_dir(&root)
            .args(["-m", "tests.twin.iam.gate", "--upstream", upstream])
            .arg("--template")
            .arg(&deployment.template)
            .args(["--port", "0"])
            .arg("--credentials-out")
            .arg(&credentials)
            .arg("--decisions-out")
            .arg(&decisions)
            .arg("--stack-json")
            .arg(&deployment.path)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (service, url) in routes {
            command.arg("--route").arg(format!("{service}={url}"));
        }
        let child = ChildGuard::spawn(&mut command, "the IAM gate")?;
        // The gate prints `listening <port>` once it accepts connections.
        let stdout = child
            .take_stdout()
            .ok_or_else(|| HarnessError::InvalidInput {
                message: "the IAM gate's stdout was not piped".into(),
            })?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| HarnessError::io("reading the IAM gate's first line", e))?;
        let port = line
            .strip_prefix("listening ")
            .and_then(|p| p.trim().parse::<u16>().ok())
            .ok_or_else(|| HarnessError::InvalidInput {
                message: format!("the IAM gate did not start (it said {line:?})"),
            })?;
        let text = std::fs::read_to_string(&credentials)
            .map_err(|e| HarnessError::io(format!("reading {}", credentials.display()), e))?;
        let keys = serde_json::from_str(&text).map_err(|source| HarnessError::Json {
            context: "the IAM gate's role keys".into(),
            source,
        })?;
        Ok(IamGate {
            child,
            port,
            keys,
            credentials,
            decisions,
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// The role keys file (role logical id → keys), for the build runner.
    pub fn credentials_path(&self) -> &Path {
        &self.credentials
    }

    /// The keys a process running as `role` (a logical id) signs with.
    pub fn keys(&self, role: &str) -> Result<&RoleKeys, HarnessError> {
        self.keys
            .get(role)
            .ok_or_else(|| HarnessError::InvalidInput {
                message: format!("the IAM gate knows no role {role}"),
            })
    }

    /// Every decision so far, oldest first.
    pub fn decisions(&self) -> Result<Vec<Decision>, HarnessError> {
        let text = match std::fs::read_to_string(&self.decisions) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(HarnessError::io("reading the IAM decisions", e)),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str::<Value>(l)
                    .and_then(serde_json::from_value)
                    .map_err(|source| HarnessError::Json {
                        context: "an IAM decision".into(),
                        source,
                    })
            })
            .collect()
    }

    /// The calls the gate refused, each described: what a test asserts is
    /// empty, and prints when it is not.
    pub fn refusals(&self) -> Result<Vec<String>, HarnessError> {
        Ok(self
            .decisions()?
            .into_iter()
            .filter(|d| !d.allowed)
            .map(|d| d.to_string())
            .collect())
    }
}
