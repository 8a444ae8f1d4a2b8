//! The stack's approval-rule template, carried out: the steps
//! `gild_core::approval_rule` decides, through the
//! [`ApprovalRuleTemplates`] port. Every step is idempotent, so a request
//! that Lambda delivers again (asynchronous invocations are retried) ends
//! the same, and a template this stack does not own is never changed.
//! Each call is retried on a transient error with gild's backoff, the one
//! retry policy on this path (the SDK makes one attempt).

use gild_core::approval_rule::{
    description, owned_by, same_content, steps, ApprovalRule, Request, Step,
};
use gild_core::ports::{ApprovalRuleTemplates, PortError};
use gild_core::retry::Backoff;
use gild_lambda::retry::{seed, with_backoff};

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
    backoff: &Backoff,
) -> Result<(), TemplateError> {
    let calls = Calls { templates, backoff };
    for step in steps(request) {
        match step {
            Step::Ensure(rule) => ensure(&calls, stack_id, &rule).await?,
            Step::Associate { name, repository } => {
                calls
                    .retried(&name, || templates.associate(&name, &repository))
                    .await?
            }
            Step::Disassociate { name, repository } => {
                match calls
                    .retried(&name, || templates.disassociate(&name, &repository))
                    .await
                {
                    Ok(()) | Err(PortError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Step::Remove { name } => remove(&calls, stack_id, &name).await?,
        }
    }
    Ok(())
}

/// The port, and the backoff every call of it takes.
struct Calls<'a, T> {
    templates: &'a T,
    backoff: &'a Backoff,
}

impl<T: ApprovalRuleTemplates> Calls<'_, T> {
    async fn retried<R, F, Fut>(&self, name: &str, call: F) -> Result<R, PortError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<R, PortError>>,
    {
        with_backoff(self.backoff, seed(name), call).await
    }
}

/// Creates the template, or brings this stack's up to date.
async fn ensure<T: ApprovalRuleTemplates>(
    calls: &Calls<'_, T>,
    stack_id: &str,
    rule: &ApprovalRule,
) -> Result<(), TemplateError> {
    let templates = calls.templates;
    let name = rule.name.as_str();
    let content = rule.content();
    let description = description(stack_id);
    // Twice at most: a template made between the read and the create (the
    // same request delivered twice at once) is read again.
    for _ in 0..2 {
        match calls.retried(name, || templates.get(name)).await? {
            None => match calls
                .retried(name, || templates.create(name, &content, &description))
                .await
            {
                Ok(()) => return Ok(()),
                Err(PortError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            },
            Some(found) if owned_by(found.description.as_deref(), stack_id) => {
                if !same_content(&found.content, &content) {
                    calls
                        .retried(name, || templates.update_content(name, &content))
                        .await?;
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
    calls: &Calls<'_, T>,
    stack_id: &str,
    name: &str,
) -> Result<(), TemplateError> {
    let templates = calls.templates;
    let Some(found) = calls.retried(name, || templates.get(name)).await? else {
        return Ok(());
    };
    if !owned_by(found.description.as_deref(), stack_id) {
        tracing::warn!(
            template = name,
            "not this stack's approval-rule template: left in place"
        );
        return Ok(());
    }
    for repository in calls.retried(name, || templates.repositories(name)).await? {
        match calls
            .retried(name, || templates.disassociate(name, &repository))
            .await
        {
            Ok(()) | Err(PortError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(calls.retried(name, || templates.delete(name)).await?)
}

#[cfg(test)]
mod tests;
