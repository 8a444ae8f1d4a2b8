//! `infra/template.yaml`, deployed into the harness's moto as `sam deploy`
//! would deploy it, and what the deployment says: outputs, each function's
//! role and environment, each EventBridge rule's pattern and targets.
//!
//! The deployment itself is the stack twin's (`tools/twin_stack_deploy.py`,
//! the pinned aws-sam-translator and moto's CloudFormation, in `.venv/stack`);
//! this module only prepares what the template takes as parameters (a VPC,
//! subnet and security group of the deployer's, created in moto first) and
//! reads `stack.json` back. Nothing here names a resource by hand: every
//! name the tests and the functions use comes from the deployment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use aws_config::SdkConfig;
use serde::Deserialize;
use serde_json::Value;

use crate::{workspace_root, HarnessError};

/// One function as Lambda holds it after the deploy.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeployedFunction {
    pub function_name: String,
    /// The logical id of its execution role (e.g. `TriggerRole`).
    pub role: String,
    /// Values as moto's Lambda returns them: strings, or numbers where the
    /// template wrote a number (see [`DeployedFunction::env`]).
    pub environment: BTreeMap<String, Value>,
}

impl DeployedFunction {
    /// The environment as a process gets it: every value a string.
    pub fn env(&self) -> Vec<(String, String)> {
        self.environment
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), value)
            })
            .collect()
    }
}

/// One `AWS::Events::Rule`, resolved.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Rule {
    pub name: String,
    pub event_pattern: Option<Value>,
    pub schedule_expression: Option<String>,
    pub state: String,
    /// Logical ids of the target functions.
    pub targets: Vec<String>,
}

/// One custom resource, as CloudFormation would send it to its function.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomResource {
    pub r#type: String,
    /// The logical id of the function that answers it.
    pub function: String,
    /// Resolved, every scalar a string (as CloudFormation sends them).
    pub properties: Value,
}

/// `stack.json`, as `tools/twin_stack_deploy.py` writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Deployment {
    pub stack_name: String,
    pub outputs: BTreeMap<String, String>,
    pub functions: BTreeMap<String, DeployedFunction>,
    pub rules: BTreeMap<String, Rule>,
    /// The custom resources, which the harness plays CloudFormation for
    /// ([`crate::custom_resource`]).
    #[serde(default)]
    pub custom_resources: BTreeMap<String, CustomResource>,
    /// The uuid part of the stack's id.
    #[serde(default)]
    pub stack_uuid: String,
    /// Where the file is: the IAM gate reads it too.
    #[serde(skip)]
    pub path: PathBuf,
    /// The template it was deployed from.
    #[serde(skip)]
    pub template: PathBuf,
}

impl Deployment {
    /// An output the template declares; an error naming it if absent.
    pub fn output(&self, name: &str) -> Result<&str, HarnessError> {
        self.outputs
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| HarnessError::InvalidInput {
                message: format!("the deployed stack has no output {name}"),
            })
    }

    /// The stack's ARN, as CloudFormation names it in custom resource
    /// requests.
    pub fn stack_id(&self) -> String {
        format!(
            "arn:aws:cloudformation:{}:{}:stack/{}/{}",
            crate::aws::REGION,
            crate::aws::ACCOUNT_ID,
            self.stack_name,
            self.stack_uuid
        )
    }

    /// A function by its logical id (`Trigger`, `BakeFinished`, ...).
    pub fn function(&self, logical_id: &str) -> Result<&DeployedFunction, HarnessError> {
        self.functions
            .get(logical_id)
            .ok_or_else(|| HarnessError::InvalidInput {
                message: format!("the deployed stack has no function {logical_id}"),
            })
    }
}

/// The pinned interpreter of the stack twin's virtualenv.
fn stack_python() -> Result<PathBuf, HarnessError> {
    let path = workspace_root().join(".venv/stack/bin/python");
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::InvalidInput {
            message: format!(
                "{} is missing: run `make unit` (or `make stack-check`), which installs the stack twin",
                path.display()
            ),
        })
    }
}

fn setup(what: &str, err: impl std::fmt::Display) -> HarnessError {
    HarnessError::InvalidInput {
        message: format!("preparing the stack's parameters ({what}): {err}"),
    }
}

/// What a deployer brings to the stack (VpcId, SubnetId, SecurityGroupId):
/// created in moto, so the ids the bake project hands Packer exist.
async fn network(config: &SdkConfig) -> Result<Vec<(String, String)>, HarnessError> {
    let ec2 = aws_sdk_ec2::Client::new(config);
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.80.0.0/16")
        .send()
        .await
        .map_err(|e| setup("CreateVpc", aws_sdk_ec2::error::DisplayErrorContext(e)))?
        .vpc
        .and_then(|v| v.vpc_id)
        .ok_or_else(|| setup("CreateVpc", "no id"))?;
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.80.1.0/24")
        .send()
        .await
        .map_err(|e| setup("CreateSubnet", aws_sdk_ec2::error::DisplayErrorContext(e)))?
        .subnet
        .and_then(|s| s.subnet_id)
        .ok_or_else(|| setup("CreateSubnet", "no id"))?;
    let group = ec2
        .create_security_group()
        .group_name("deployer-build")
        .description("the deployer's group for builders: no inbound rule")
        .vpc_id(&vpc)
        .send()
        .await
        .map_err(|e| {
            setup(
                "CreateSecurityGroup",
                aws_sdk_ec2::error::DisplayErrorContext(e),
            )
        })?
        .group_id
        .ok_or_else(|| setup("CreateSecurityGroup", "no id"))?;
    Ok(vec![
        ("VpcId".into(), vpc),
        ("SubnetId".into(), subnet),
        ("SecurityGroupId".into(), group),
    ])
}

/// The template a pipeline deploys unless told otherwise.
pub fn default_template() -> PathBuf {
    workspace_root().join("infra/template.yaml")
}

/// Deploys `template` into the moto at `endpoint` with `parameters`
/// (besides the network, which is created here), writing `stack.json` into
/// `dir`. The deployer's own message is the error when CloudFormation
/// refuses the stack.
pub async fn deploy(
    config: &SdkConfig,
    endpoint: &str,
    template: &Path,
    parameters: &[(String, String)],
    dir: &Path,
) -> Result<Deployment, HarnessError> {
    let mut all = network(config).await?;
    all.extend(parameters.iter().cloned());
    let out = dir.join("stack.json");
    let root = workspace_root();
    let mut command = Command::new(stack_python()?);
    command
        .current_dir(&root)
        .arg(root.join("tools/twin_stack_deploy.py"))
        .args(["--endpoint", endpoint])
        .arg("--template")
        .arg(template)
        .arg("--out")
        .arg(&out);
    for (key, value) in &all {
        command.arg("--param").arg(format!("{key}={value}"));
    }
    // A blocking child on the runtime's thread: the deploy takes a few
    // seconds and nothing else of this harness runs meanwhile.
    let output = command
        .output()
        .map_err(|e| HarnessError::io("running tools/twin_stack_deploy.py", e))?;
    if !output.status.success() {
        return Err(HarnessError::InvalidInput {
            message: format!(
                "deploying infra/template.yaml into moto failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    let text = std::fs::read_to_string(&out)
        .map_err(|e| HarnessError::io(format!("reading {}", out.display()), e))?;
    let mut deployment: Deployment =
        serde_json::from_str(&text).map_err(|source| HarnessError::Json {
            context: format!("parsing {}", out.display()),
            source,
        })?;
    deployment.path = out;
    deployment.template = template.to_path_buf();
    Ok(deployment)
}

/// A copy of the template with the first `grant` in `role`'s definition
/// replaced by `without`; panics when the role no longer holds `grant`, so
/// the test cannot pass vacuously.
pub fn template_without(role: &str, grant: &str, without: &str) -> tempfile::NamedTempFile {
    let path = workspace_root().join("infra/template.yaml");
    let text = std::fs::read_to_string(&path).expect("reading infra/template.yaml");
    let start = text
        .find(&format!("\n  {role}:\n"))
        .unwrap_or_else(|| panic!("infra/template.yaml has no {role}"));
    // The role's definition ends where the next resource begins: the next
    // line indented by exactly two spaces.
    let body = start + role.len() + 5;
    let end = text[body..]
        .split_inclusive('\n')
        .scan(body, |offset, line| {
            let at = *offset;
            *offset += line.len();
            Some((at, line))
        })
        .find(|(_, line)| line.starts_with("  ") && !line[2..].starts_with([' ', '#', '\n']))
        .map_or(text.len(), |(at, _)| at);
    let at = text[start..end]
        .find(grant)
        .unwrap_or_else(|| panic!("{role} in infra/template.yaml no longer grants `{grant}`"));
    let text = format!(
        "{}{without}{}",
        &text[..start + at],
        &text[start + at + grant.len()..]
    );
    let copy = tempfile::Builder::new()
        .suffix(".yaml")
        // Beside the original, so its relative CodeUri paths still hold.
        .tempfile_in(workspace_root().join("infra"))
        .expect("copy");
    std::fs::write(copy.path(), text).expect("write copy");
    copy
}
