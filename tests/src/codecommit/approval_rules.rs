//! The CodeCommit stand-in's approval-rule templates and the rules they
//! put on pull requests: CreateApprovalRuleTemplate, GetApprovalRuleTemplate,
//! UpdateApprovalRuleTemplateContent, DeleteApprovalRuleTemplate,
//! Associate/DisassociateApprovalRuleTemplate(With|From)Repository,
//! ListRepositoriesForApprovalRuleTemplate and EvaluatePullRequestApprovalRules,
//! with the inputs, answers and errors of the CodeCommit API reference.
//!
//! As in CodeCommit, a template's rule is put on a pull request when the
//! pull request is created (a template associated later does not reach it),
//! and only if its `DestinationReferences` name the pull request's
//! destination. A rule is satisfied by that many APPROVE states on the
//! current revision from callers an approval pool member matches (fully
//! qualified ARNs, `*` matching any run of characters; the
//! `CodeCommitApprovers:` form is not modelled). The caller is who the IAM
//! gate says made the call (`X-Gild-Principal`), else the request's key.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{parse_input, ApiError, StubState};
use crate::new_uuid;

const CONTENT_VERSION: &str = "2018-11-08";
const NAME_LIMIT: usize = 100;

#[derive(Debug, Clone)]
struct Template {
    id: String,
    content: String,
    description: String,
    repositories: BTreeSet<String>,
}

/// One rule on a pull request: the template it came from and its content.
#[derive(Debug, Clone)]
struct Rule {
    name: String,
    content: String,
}

#[derive(Default)]
pub(super) struct Templates(Mutex<Inner>);

#[derive(Default)]
struct Inner {
    templates: BTreeMap<String, Template>,
    /// Pull request id → the rules put on it when it was created.
    rules: BTreeMap<String, Vec<Rule>>,
}

impl Templates {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts the rules of the associated templates on a pull request being
    /// created (once: a pull request moved to a new tip keeps its rules).
    pub(super) fn on_created(&self, pull_request_id: &str, repository: &str, destination: &str) {
        let mut inner = self.lock();
        if inner.rules.contains_key(pull_request_id) {
            return;
        }
        let rules = inner
            .templates
            .iter()
            .filter(|(_, t)| t.repositories.contains(repository))
            .filter(|(_, t)| applies_to(&t.content, destination))
            .map(|(name, t)| Rule {
                name: name.clone(),
                content: t.content.clone(),
            })
            .collect();
        inner.rules.insert(pull_request_id.to_owned(), rules);
    }

    /// The templates, by name: (content, description, repositories).
    pub(super) fn snapshot(&self) -> BTreeMap<String, (String, String, Vec<String>)> {
        self.lock()
            .templates
            .iter()
            .map(|(name, t)| {
                (
                    name.clone(),
                    (
                        t.content.clone(),
                        t.description.clone(),
                        t.repositories.iter().cloned().collect(),
                    ),
                )
            })
            .collect()
    }
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Whether a rule's `DestinationReferences` (none: every branch) name
/// `destination`.
fn applies_to(content: &str, destination: &str) -> bool {
    let content: Value = serde_json::from_str(content).unwrap_or_default();
    match content["DestinationReferences"].as_array() {
        None => true,
        Some(refs) => refs.iter().any(|r| r.as_str() == Some(destination)),
    }
}

/// CodeCommit's checks on rule content, as far as gild's rules go.
fn check_content(content: &str) -> Result<(), ApiError> {
    let invalid = |why: &str| {
        ApiError::client(
            "InvalidApprovalRuleTemplateContentException",
            format!("The content of the approval rule template is not valid: {why}"),
        )
    };
    let value: Value = serde_json::from_str(content).map_err(|e| invalid(&e.to_string()))?;
    if value["Version"] != CONTENT_VERSION {
        return Err(invalid("Version must be 2018-11-08"));
    }
    if let Some(refs) = value.get("DestinationReferences") {
        let refs = refs
            .as_array()
            .ok_or_else(|| invalid("DestinationReferences"))?;
        if !refs
            .iter()
            .all(|r| r.as_str().is_some_and(|r| r.starts_with("refs/heads/")))
        {
            return Err(invalid(
                "a destination reference is not refs/heads/<branch>",
            ));
        }
    }
    let statements = value["Statements"]
        .as_array()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("Statements"))?;
    for statement in statements {
        let needed = statement["NumberOfApprovalsNeeded"].as_u64().unwrap_or(0);
        let pool = statement["ApprovalPoolMembers"].as_array();
        if statement["Type"] != "Approvers"
            || needed == 0
            || pool.is_some_and(|p| !p.iter().all(Value::is_string))
        {
            return Err(invalid("a statement is not an Approvers statement"));
        }
    }
    Ok(())
}

/// An ARN pattern with `*` wildcards against an ARN.
fn matches(pattern: &str, arn: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = parts.split_first().expect("split yields one part");
    let Some(mut left) = arn.strip_prefix(first) else {
        return false;
    };
    for (i, part) in rest.iter().enumerate() {
        if i == rest.len() - 1 {
            return left.ends_with(part);
        }
        match left.find(part) {
            Some(at) => left = &left[at + part.len()..],
            None => return false,
        }
    }
    left.is_empty()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TemplateInput {
    approval_rule_template_name: Option<String>,
    approval_rule_template_content: Option<String>,
    approval_rule_template_description: Option<String>,
    new_rule_content: Option<String>,
    existing_rule_content_sha256: Option<String>,
    repository_name: Option<String>,
}

fn name_of(input: &TemplateInput) -> Result<&str, ApiError> {
    let name = input
        .approval_rule_template_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::client(
                "ApprovalRuleTemplateNameRequiredException",
                "An approval rule template name is required, but was not specified.",
            )
        })?;
    if name.chars().count() > NAME_LIMIT {
        return Err(ApiError::client(
            "InvalidApprovalRuleTemplateNameException",
            format!("The name of the approval rule template is not valid: {name}"),
        ));
    }
    Ok(name)
}

fn missing(name: &str) -> ApiError {
    ApiError::client(
        "ApprovalRuleTemplateDoesNotExistException",
        format!("The approval rule template {name} does not exist."),
    )
}

fn answer(name: &str, t: &Template) -> Value {
    json!({"approvalRuleTemplate": {
        "approvalRuleTemplateId": t.id,
        "approvalRuleTemplateName": name,
        "approvalRuleTemplateDescription": t.description,
        "approvalRuleTemplateContent": t.content,
        "ruleContentSha256": sha256(&t.content),
        "lastModifiedDate": 1_768_305_600.0,
        "creationDate": 1_768_305_600.0,
        "lastModifiedUser": "arn:aws:iam::123456789012:user/stub",
    }})
}

/// Every template operation, by name; `None` for another operation.
pub(super) fn handle(
    state: &StubState,
    operation: &str,
    body: &[u8],
) -> Option<Result<Value, ApiError>> {
    let result = match operation {
        "CreateApprovalRuleTemplate" => create(state, body),
        "GetApprovalRuleTemplate" => get(state, body),
        "UpdateApprovalRuleTemplateContent" => update_content(state, body),
        "DeleteApprovalRuleTemplate" => delete(state, body),
        "AssociateApprovalRuleTemplateWithRepository" => associate(state, body, true),
        "DisassociateApprovalRuleTemplateFromRepository" => associate(state, body, false),
        "ListRepositoriesForApprovalRuleTemplate" => list_repositories(state, body),
        "EvaluatePullRequestApprovalRules" => evaluate(state, body),
        _ => return None,
    };
    Some(result)
}

fn create(state: &StubState, body: &[u8]) -> Result<Value, ApiError> {
    let input: TemplateInput = parse_input(body)?;
    let name = name_of(&input)?;
    let content = input
        .approval_rule_template_content
        .clone()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            ApiError::client(
                "ApprovalRuleTemplateContentRequiredException",
                "The content for the approval rule template is empty.",
            )
        })?;
    check_content(&content)?;
    let mut inner = state.templates.lock();
    if inner.templates.contains_key(name) {
        return Err(ApiError::client(
            "ApprovalRuleTemplateNameAlreadyExistsException",
            format!("You cannot create an approval rule template with that name because a template with that name already exists in this AWS Region for your AWS account: {name}"),
        ));
    }
    let template = Template {
        id: new_uuid(),
        content,
        description: input
            .approval_rule_template_description
            .clone()
            .unwrap_or_default(),
        repositories: BTreeSet::new(),
    };
    let out = answer(name, &template);
    inner.templates.insert(name.to_owned(), template);
    Ok(out)
}

fn get(state: &StubState, body: &[u8]) -> Result<Value, ApiError> {
    let input: TemplateInput = parse_input(body)?;
    let name = name_of(&input)?;
    let inner = state.templates.lock();
    let t = inner.templates.get(name).ok_or_else(|| missing(name))?;
    Ok(answer(name, t))
}

fn update_content(state: &StubState, body: &[u8]) -> Result<Value, ApiError> {
    let input: TemplateInput = parse_input(body)?;
    let name = name_of(&input)?;
    let content = input.new_rule_content.clone().unwrap_or_default();
    check_content(&content)?;
    let mut inner = state.templates.lock();
    let t = inner.templates.get_mut(name).ok_or_else(|| missing(name))?;
    if let Some(expected) = &input.existing_rule_content_sha256 {
        if *expected != sha256(&t.content) {
            return Err(ApiError::client(
                "InvalidRuleContentSha256Exception",
                "The SHA-256 hash signature for the rule content does not match the current content.",
            ));
        }
    }
    t.content = content;
    Ok(answer(name, t))
}

fn delete(state: &StubState, body: &[u8]) -> Result<Value, ApiError> {
    let input: TemplateInput = parse_input(body)?;
    let name = name_of(&input)?;
    let mut inner = state.templates.lock();
    match inner.templates.get(name) {
        // "If the template has been previously deleted, the only response
        // is a 200 OK."
        None => Ok(json!({})),
        Some(t) if !t.repositories.is_empty() => Err(ApiError::client(
            "ApprovalRuleTemplateInUseException",
            "The approval rule template is associated with one or more repositories. You cannot delete a template that is associated with a repository.",
        )),
        Some(t) => {
            let id = t.id.clone();
            inner.templates.remove(name);
            Ok(json!({"approvalRuleTemplateId": id}))
        }
    }
}

fn associate(state: &StubState, body: &[u8], associate: bool) -> Result<Value, ApiError> {
    let input: TemplateInput = parse_input(body)?;
    let name = name_of(&input)?;
    state.check_repository(input.repository_name.as_deref())?;
    let repository = state.repository_name.clone();
    let mut inner = state.templates.lock();
    let t = inner.templates.get_mut(name).ok_or_else(|| missing(name))?;
    if associate {
        t.repositories.insert(repository);
    } else {
        t.repositories.remove(&repository);
    }
    Ok(json!({}))
}

fn list_repositories(state: &StubState, body: &[u8]) -> Result<Value, ApiError> {
    let input: TemplateInput = parse_input(body)?;
    let name = name_of(&input)?;
    let inner = state.templates.lock();
    let t = inner.templates.get(name).ok_or_else(|| missing(name))?;
    Ok(json!({"repositoryNames": t.repositories.iter().collect::<Vec<_>>()}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EvaluateInput {
    pull_request_id: Option<String>,
    revision_id: Option<String>,
}

fn evaluate(state: &StubState, body: &[u8]) -> Result<Value, ApiError> {
    let input: EvaluateInput = parse_input(body)?;
    let pull = state.pull(&input.pull_request_id)?;
    let revision = input.revision_id.unwrap_or_default();
    pull.check_current(&revision)?;
    let approvers = state.pulls.approvers(&pull.id, &revision);
    let rules = state
        .templates
        .lock()
        .rules
        .get(&pull.id)
        .cloned()
        .unwrap_or_default();
    let (mut satisfied, mut not_satisfied) = (Vec::new(), Vec::new());
    for rule in rules {
        let content: Value = serde_json::from_str(&rule.content).unwrap_or_default();
        let met = content["Statements"].as_array().is_some_and(|statements| {
            statements.iter().all(|s| {
                let pool: Vec<&str> = s["ApprovalPoolMembers"]
                    .as_array()
                    .map(|p| p.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let counted = approvers
                    .iter()
                    .filter(|caller| pool.iter().any(|p| matches(p, caller)))
                    .count() as u64;
                counted >= s["NumberOfApprovalsNeeded"].as_u64().unwrap_or(1)
            })
        });
        if met {
            satisfied.push(rule.name);
        } else {
            not_satisfied.push(rule.name);
        }
    }
    Ok(json!({"evaluation": {
        "approved": not_satisfied.is_empty(),
        "overridden": false,
        "approvalRulesSatisfied": satisfied,
        "approvalRulesNotSatisfied": not_satisfied,
    }}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_patterns_match_like_iam() {
        let role = "arn:aws:sts::123456789012:assumed-role/gild-Reviewer/*";
        assert!(matches(
            role,
            "arn:aws:sts::123456789012:assumed-role/gild-Reviewer/gild"
        ));
        assert!(!matches(
            role,
            "arn:aws:sts::123456789012:assumed-role/gild-Reviewer2/x"
        ));
        assert!(!matches(
            role,
            "arn:aws:iam::123456789012:user/gild-Reviewer"
        ));
        assert!(matches("arn:aws:iam::1:user/a", "arn:aws:iam::1:user/a"));
        assert!(!matches("arn:aws:iam::1:user/a", "arn:aws:iam::1:user/ab"));
        assert!(matches("*Mary", "arn:aws:sts::1:assumed-role/R/Mary"));
    }

    #[test]
    fn content_is_checked() {
        let good = r#"{"Version":"2018-11-08","DestinationReferences":["refs/heads/main"],"Statements":[{"Type":"Approvers","NumberOfApprovalsNeeded":1,"ApprovalPoolMembers":["arn:aws:sts::1:assumed-role/R/*"]}]}"#;
        assert!(check_content(good).is_ok());
        assert!(check_content(&good.replace("2018-11-08", "2020-01-01")).is_err());
        assert!(check_content(&good.replace("refs/heads/main", "main")).is_err());
        assert!(check_content(&good.replace(
            "\"NumberOfApprovalsNeeded\":1",
            "\"NumberOfApprovalsNeeded\":0"
        ))
        .is_err());
        assert!(check_content("not json").is_err());
        assert!(applies_to(good, "refs/heads/main"));
        assert!(!applies_to(good, "refs/heads/dev"));
    }
}
