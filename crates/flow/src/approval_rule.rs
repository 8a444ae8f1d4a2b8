//! The stack's approval-rule template, carried out: the steps
//! `gild_core::approval_rule` decides, through the
//! [`ApprovalRuleTemplates`] port. Every step is idempotent, so a request
//! that Lambda delivers again (asynchronous invocations are retried) ends
//! the same, and a template this stack does not own is never changed.

use gild_core::approval_rule::{
    description, owned_by, same_content, steps, ApprovalRule, Request, Step,
};
use gild_core::ports::{ApprovalRuleTemplates, PortError};

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("an approval-rule template named `{name}` exists and is not this stack's (its description: {description:?}); give the stack another ApprovalRuleTemplateName")]
    NotOurs { name: String, description: String },
    #[error(transparent)]
    Port(#[from] PortError),
}

impl TemplateError {
    /// Stable names for the response's reason and the logs.
    pub fn name(&self) -> &'static str {
        match self {
            TemplateError::NotOurs { .. } => "TemplateNotOurs",
            TemplateError::Port(_) => "CodeCommitFailed",
        }
    }
}

/// Carries out `request` for the stack `stack_id`.
pub async fn carry_out<T: ApprovalRuleTemplates>(
    templates: &T,
    stack_id: &str,
    request: &Request,
) -> Result<(), TemplateError> {
    for step in steps(request) {
        match step {
            Step::Ensure(rule) => ensure(templates, stack_id, &rule).await?,
            Step::Associate { name, repository } => templates.associate(&name, &repository).await?,
            Step::Disassociate { name, repository } => {
                match templates.disassociate(&name, &repository).await {
                    Ok(()) | Err(PortError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Step::Remove { name } => remove(templates, stack_id, &name).await?,
        }
    }
    Ok(())
}

/// Creates the template, or brings this stack's up to date.
async fn ensure<T: ApprovalRuleTemplates>(
    templates: &T,
    stack_id: &str,
    rule: &ApprovalRule,
) -> Result<(), TemplateError> {
    let content = rule.content();
    // Twice at most: a template made between the read and the create (the
    // same request delivered twice at once) is read again.
    for _ in 0..2 {
        match templates.get(&rule.name).await? {
            None => match templates
                .create(&rule.name, &content, &description(stack_id))
                .await
            {
                Ok(()) => return Ok(()),
                Err(PortError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            },
            Some(found) if owned_by(found.description.as_deref(), stack_id) => {
                if !same_content(&found.content, &content) {
                    templates.update_content(&rule.name, &content).await?;
                }
                return Ok(());
            }
            Some(found) => {
                return Err(TemplateError::NotOurs {
                    name: rule.name.clone(),
                    description: found.description.unwrap_or_default(),
                })
            }
        }
    }
    Err(PortError::ConditionFailed {
        service: "CodeCommit",
        operation: "CreateApprovalRuleTemplate",
        message: format!(
            "`{}` was created and removed again while gild looked",
            rule.name
        ),
    }
    .into())
}

/// Deletes this stack's template, after taking it off every repository. A
/// template that is gone is done; one someone else owns is left alone
/// (a failed Create under a taken name reports that name as its physical
/// id, and the rollback's Delete must not remove the other owner's rule).
async fn remove<T: ApprovalRuleTemplates>(
    templates: &T,
    stack_id: &str,
    name: &str,
) -> Result<(), TemplateError> {
    let Some(found) = templates.get(name).await? else {
        return Ok(());
    };
    if !owned_by(found.description.as_deref(), stack_id) {
        tracing::warn!(
            template = name,
            "not this stack's approval-rule template: left in place"
        );
        return Ok(());
    }
    for repository in templates.repositories(name).await? {
        match templates.disassociate(name, &repository).await {
            Ok(()) | Err(PortError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(templates.delete(name).await?)
}

#[cfg(test)]
mod tests;
