//! The CodeCommit approval-rule template that makes gild's approval required
//! before a pull request into the tracked branch can merge.
//!
//! CloudFormation has no resource for approval-rule templates, so the stack
//! declares a custom resource (`Custom::ApprovalRuleTemplate`) and the
//! `approval-template` function does its Create, Update and Delete. What
//! the template says, which calls each request takes and whose template
//! gild may change are decided here; the calls are `gild-flow`'s.
//!
//! The approvers are sessions of the stack's `ReviewerRole`, the one
//! identity every gild function reports as on CodeCommit. CodeCommit's
//! docs (CreateApprovalRuleTemplate, `approvalRuleTemplateContent`): an
//! approval pool member is a fully qualified ARN, and an assumed role is
//! matched by `arn:<partition>:sts::<account>:assumed-role/<role name>/*`;
//! IAM's identifiers page: an assumed-role ARN carries the role's name
//! without its path.

use serde::Deserialize;
use serde_json::{json, Value};

/// The only content version CodeCommit defines.
pub const CONTENT_VERSION: &str = "2018-11-08";
/// CodeCommit's limit on a template name.
pub const MAX_NAME_LEN: usize = 100;
/// gild's approval is the one needed: people add their own rules beside it.
pub const APPROVALS_NEEDED: u32 = 1;
/// The description marks a template as one stack's, so a stack never takes
/// over or deletes a template someone else made under the same name.
const OWNER_PREFIX: &str = "Managed by the gild stack ";

/// Why a custom resource request cannot be carried out as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalRuleError {
    #[error("the resource properties are not what Custom::ApprovalRuleTemplate takes: {0}")]
    Properties(String),
    #[error("TemplateName `{0}` is not 1 to {MAX_NAME_LEN} characters")]
    Name(String),
    #[error("Branch `{0}` is not a branch name")]
    Branch(String),
    #[error("RepositoryName `{0}` is not a CodeCommit repository name")]
    Repository(String),
    #[error("ReviewerRoleArn `{0}` is not an IAM role ARN")]
    Role(String),
}

/// The properties the template gives the custom resource. CloudFormation
/// passes every property value as a string.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Properties {
    template_name: String,
    repository_name: String,
    branch: String,
    reviewer_role_arn: String,
}

/// One approval-rule template, as one stack wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRule {
    pub name: String,
    pub repository: String,
    /// The destination branch the rule applies to, e.g. `main`.
    pub branch: String,
    /// Who may approve: every session of the reviewer role.
    pub approver: String,
}

impl ApprovalRule {
    /// Reads a request's `ResourceProperties`, refusing what CodeCommit
    /// would refuse later with a vaguer message.
    pub fn from_properties(properties: &Value) -> Result<ApprovalRule, ApprovalRuleError> {
        let p: Properties = serde_json::from_value(properties.clone())
            .map_err(|e| ApprovalRuleError::Properties(e.to_string()))?;
        let name = p.template_name.trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
            return Err(ApprovalRuleError::Name(p.template_name));
        }
        if !valid_repository(&p.repository_name) {
            return Err(ApprovalRuleError::Repository(p.repository_name));
        }
        let branch = p
            .branch
            .strip_prefix("refs/heads/")
            .unwrap_or(&p.branch)
            .to_owned();
        if !valid_branch(&branch) {
            return Err(ApprovalRuleError::Branch(p.branch));
        }
        Ok(ApprovalRule {
            name,
            repository: p.repository_name,
            branch,
            approver: approver_of(&p.reviewer_role_arn)?,
        })
    }

    /// The template's content, as CodeCommit reads it.
    pub fn content(&self) -> String {
        json!({
            "Version": CONTENT_VERSION,
            "DestinationReferences": [format!("refs/heads/{}", self.branch)],
            "Statements": [{
                "Type": "Approvers",
                "NumberOfApprovalsNeeded": APPROVALS_NEEDED,
                "ApprovalPoolMembers": [self.approver],
            }],
        })
        .to_string()
    }
}

/// The description gild writes on a template it owns.
pub fn description(stack_id: &str) -> String {
    format!("gild's approval: the images pass their tests before a merge. {OWNER_PREFIX}{stack_id}")
}

/// Whether a template with this description is this stack's to change or
/// delete.
pub fn owned_by(description: Option<&str>, stack_id: &str) -> bool {
    description.is_some_and(|d| d.ends_with(&format!("{OWNER_PREFIX}{stack_id}")))
}

/// Whether two contents say the same (CodeCommit may reformat the JSON).
pub fn same_content(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// `arn:<p>:iam::<account>:role/<path/><name>` to the pool member matching
/// every session of that role.
fn approver_of(role_arn: &str) -> Result<String, ApprovalRuleError> {
    let bad = || ApprovalRuleError::Role(role_arn.to_owned());
    let parts: Vec<&str> = role_arn.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts[..] else {
        return Err(bad());
    };
    let name = resource
        .strip_prefix("role/")
        .and_then(|path| path.rsplit('/').next())
        .filter(|n| !n.is_empty() && n.chars().all(is_role_name_char))
        .ok_or_else(bad)?;
    let valid = arn == "arn"
        && partition.starts_with("aws")
        && service == "iam"
        && region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit());
    if !valid {
        return Err(bad());
    }
    Ok(format!(
        "arn:{partition}:sts::{account}:assumed-role/{name}/*"
    ))
}

/// IAM role names: alphanumerics and `+=,.@_-`.
fn is_role_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

/// CodeCommit's repository name pattern, `[\w\.-]+`, 1 to 100 characters.
fn valid_repository(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// A branch name git would accept, as far as a rule's reference needs.
fn valid_branch(branch: &str) -> bool {
    !branch.is_empty()
        && !branch.starts_with('/')
        && !branch.ends_with('/')
        && !branch.ends_with(".lock")
        && !branch.contains("..")
        && !branch.contains("//")
        && !branch
            .chars()
            .any(|c| c.is_ascii_control() || " ~^:?*[\\\"".contains(c))
}

/// What a custom resource request asks of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Create(ApprovalRule),
    Update {
        old: Option<ApprovalRule>,
        new: ApprovalRule,
    },
    /// Delete the template CloudFormation knows by this physical id.
    Delete {
        physical_id: String,
    },
}

/// One call on CodeCommit's approval-rule templates, in the order taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create the template, or bring a template this stack owns up to date;
    /// refused for a template someone else owns.
    Ensure(ApprovalRule),
    Associate {
        name: String,
        repository: String,
    },
    Disassociate {
        name: String,
        repository: String,
    },
    /// Disassociate it from every repository and delete it, if this stack
    /// owns it; a template that is gone already is done.
    Remove {
        name: String,
    },
}

/// The steps of a request. Each is idempotent, so a request delivered
/// twice (Lambda retries an asynchronous invocation) ends the same.
///
/// A new name is a replacement: the new template is made here and
/// CloudFormation then sends a Delete for the old physical id.
pub fn steps(request: &Request) -> Vec<Step> {
    let ensure = |rule: &ApprovalRule| {
        vec![
            Step::Ensure(rule.clone()),
            Step::Associate {
                name: rule.name.clone(),
                repository: rule.repository.clone(),
            },
        ]
    };
    match request {
        Request::Create(rule) => ensure(rule),
        Request::Update { old, new } => {
            let mut steps = ensure(new);
            if let Some(old) = old {
                if old.name == new.name && old.repository != new.repository {
                    steps.push(Step::Disassociate {
                        name: old.name.clone(),
                        repository: old.repository.clone(),
                    });
                }
            }
            steps
        }
        Request::Delete { physical_id } => vec![Step::Remove {
            name: physical_id.clone(),
        }],
    }
}

/// The physical id a request's response names: the template's name (a
/// Delete names the one CloudFormation knows).
pub fn physical_id(request: &Request) -> String {
    match request {
        Request::Create(rule) | Request::Update { new: rule, .. } => rule.name.clone(),
        Request::Delete { physical_id } => physical_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:iam::123456789012:role/service/gild-ReviewerRole-ABC";

    fn properties(name: &str, repository: &str, branch: &str) -> Value {
        json!({
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:gild-approval-template",
            "ServiceTimeout": "300",
            "TemplateName": name,
            "RepositoryName": repository,
            "Branch": branch,
            "ReviewerRoleArn": ROLE,
        })
    }

    fn rule(name: &str, repository: &str) -> ApprovalRule {
        ApprovalRule::from_properties(&properties(name, repository, "main")).expect("rule")
    }

    #[test]
    fn content_requires_one_approval_by_any_session_of_the_reviewer_role() {
        let rule = ApprovalRule::from_properties(&properties("gild", "images", "refs/heads/main"))
            .expect("rule");
        let content: Value = serde_json::from_str(&rule.content()).expect("json");
        assert_eq!(
            content,
            json!({
                "Version": "2018-11-08",
                "DestinationReferences": ["refs/heads/main"],
                "Statements": [{
                    "Type": "Approvers",
                    "NumberOfApprovalsNeeded": 1,
                    "ApprovalPoolMembers": [
                        "arn:aws:sts::123456789012:assumed-role/gild-ReviewerRole-ABC/*"
                    ],
                }],
            })
        );
    }

    #[test]
    fn other_partitions_keep_their_partition() {
        let mut p = properties("gild", "images", "main");
        p["ReviewerRoleArn"] = json!("arn:aws-cn:iam::123456789012:role/gild-reviewer");
        let rule = ApprovalRule::from_properties(&p).expect("rule");
        assert_eq!(
            rule.approver,
            "arn:aws-cn:sts::123456789012:assumed-role/gild-reviewer/*"
        );
    }

    #[test]
    fn bad_properties_are_refused_by_name() {
        let cases = [
            ("TemplateName", json!(""), "TemplateName"),
            ("TemplateName", json!("x".repeat(101)), "TemplateName"),
            ("RepositoryName", json!("my repo"), "RepositoryName"),
            ("Branch", json!("a..b"), "Branch"),
            ("Branch", json!("main; rm -rf /"), "Branch"),
            (
                "ReviewerRoleArn",
                json!("arn:aws:iam::123:role/x"),
                "ReviewerRoleArn",
            ),
            (
                "ReviewerRoleArn",
                json!("arn:aws:iam::123456789012:user/x"),
                "ReviewerRoleArn",
            ),
            (
                "ReviewerRoleArn",
                json!("arn:aws:sts::123456789012:role/x"),
                "ReviewerRoleArn",
            ),
            (
                "ReviewerRoleArn",
                json!("arn:aws:iam::123456789012:role/*"),
                "ReviewerRoleArn",
            ),
        ];
        for (key, value, named) in cases {
            let mut p = properties("gild", "images", "main");
            p[key] = value.clone();
            let err = ApprovalRule::from_properties(&p).expect_err(&format!("{key}={value}"));
            assert!(err.to_string().contains(named), "{key}={value}: {err}");
        }
        let err = ApprovalRule::from_properties(&json!({"TemplateName": "gild"}))
            .expect_err("missing properties");
        assert!(matches!(err, ApprovalRuleError::Properties(_)), "{err}");
    }

    #[test]
    fn create_makes_and_associates_the_template() {
        let rule = rule("gild", "images");
        assert_eq!(
            steps(&Request::Create(rule.clone())),
            vec![
                Step::Ensure(rule),
                Step::Associate {
                    name: "gild".into(),
                    repository: "images".into()
                }
            ]
        );
    }

    #[test]
    fn update_to_another_repository_moves_the_association() {
        let (old, new) = (rule("gild", "old-images"), rule("gild", "images"));
        let steps = steps(&Request::Update {
            old: Some(old),
            new: new.clone(),
        });
        assert_eq!(
            steps.last(),
            Some(&Step::Disassociate {
                name: "gild".into(),
                repository: "old-images".into()
            })
        );
        assert_eq!(steps[0], Step::Ensure(new));
    }

    #[test]
    fn a_renamed_template_is_a_replacement_left_to_the_later_delete() {
        let (old, new) = (rule("gild-old", "images"), rule("gild", "images"));
        let steps = steps(&Request::Update {
            old: Some(old),
            new: new.clone(),
        });
        assert!(!steps
            .iter()
            .any(|s| matches!(s, Step::Disassociate { .. } | Step::Remove { .. })));
        assert_eq!(physical_id(&Request::Update { old: None, new }), "gild");
    }

    #[test]
    fn ownership_is_this_stacks_description_only() {
        let stack = "arn:aws:cloudformation:us-east-1:123456789012:stack/gild/1";
        assert!(owned_by(Some(&description(stack)), stack));
        assert!(!owned_by(Some(&description(&format!("{stack}0"))), stack));
        assert!(!owned_by(Some("the security team's rule"), stack));
        assert!(!owned_by(None, stack));
    }

    #[test]
    fn contents_compare_as_json() {
        let rule = rule("gild", "images");
        let pretty = serde_json::to_string_pretty(
            &serde_json::from_str::<Value>(&rule.content()).expect("json"),
        )
        .expect("pretty");
        assert!(same_content(&rule.content(), &pretty));
        assert!(!same_content(
            &rule.content(),
            &rule.content().replace("refs/heads/main", "refs/heads/dev")
        ));
    }
}
