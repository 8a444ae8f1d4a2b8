//! CodeCommit's approval-rule templates, for the stack's custom resource.
//! One attempt per call, as everywhere in the functions: the flow retries
//! with gild's backoff (`gild_flow::approval_rule`).

use aws_sdk_codecommit::Client;
use gild_core::ports::{ApprovalRuleTemplates, PortError, PortResult, TemplateInfo};

use crate::classify;

const SERVICE: &str = "CodeCommit";

pub struct CodeCommitTemplates {
    client: Client,
}

impl CodeCommitTemplates {
    pub fn new(client: Client) -> Self {
        CodeCommitTemplates { client }
    }
}

impl ApprovalRuleTemplates for CodeCommitTemplates {
    async fn get(&self, name: &str) -> PortResult<Option<TemplateInfo>> {
        match self
            .client
            .get_approval_rule_template()
            .approval_rule_template_name(name)
            .send()
            .await
        {
            Ok(out) => {
                let template =
                    out.approval_rule_template()
                        .ok_or_else(|| PortError::InvalidResponse {
                            service: SERVICE,
                            operation: "GetApprovalRuleTemplate",
                            message: format!("no template in the answer for {name}"),
                        })?;
                Ok(Some(TemplateInfo {
                    content: template
                        .approval_rule_template_content()
                        .unwrap_or_default()
                        .to_owned(),
                    description: template
                        .approval_rule_template_description()
                        .map(str::to_owned),
                }))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_approval_rule_template_does_not_exist_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(classify(SERVICE, "GetApprovalRuleTemplate", e)),
        }
    }

    async fn create(&self, name: &str, content: &str, description: &str) -> PortResult<()> {
        match self
            .client
            .create_approval_rule_template()
            .approval_rule_template_name(name)
            .approval_rule_template_content(content)
            .approval_rule_template_description(description)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error().is_some_and(|e| {
                    e.is_approval_rule_template_name_already_exists_exception()
                }) =>
            {
                Err(PortError::ConditionFailed {
                    service: SERVICE,
                    operation: "CreateApprovalRuleTemplate",
                    message: format!("an approval-rule template named {name} exists"),
                })
            }
            Err(e) => Err(classify(SERVICE, "CreateApprovalRuleTemplate", e)),
        }
    }

    async fn update_content(&self, name: &str, content: &str) -> PortResult<()> {
        self.client
            .update_approval_rule_template_content()
            .approval_rule_template_name(name)
            .new_rule_content(content)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(SERVICE, "UpdateApprovalRuleTemplateContent", e))
    }

    async fn associate(&self, name: &str, repository: &str) -> PortResult<()> {
        self.client
            .associate_approval_rule_template_with_repository()
            .approval_rule_template_name(name)
            .repository_name(repository)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(SERVICE, "AssociateApprovalRuleTemplateWithRepository", e))
    }

    async fn disassociate(&self, name: &str, repository: &str) -> PortResult<()> {
        self.client
            .disassociate_approval_rule_template_from_repository()
            .approval_rule_template_name(name)
            .repository_name(repository)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(SERVICE, "DisassociateApprovalRuleTemplateFromRepository", e))
    }

    async fn repositories(&self, name: &str) -> PortResult<Vec<String>> {
        let mut pages = self
            .client
            .list_repositories_for_approval_rule_template()
            .approval_rule_template_name(name)
            .into_paginator()
            .send();
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| classify(SERVICE, "ListRepositoriesForApprovalRuleTemplate", e))?;
            names.extend(page.repository_names().iter().cloned());
        }
        Ok(names)
    }

    async fn delete(&self, name: &str) -> PortResult<()> {
        self.client
            .delete_approval_rule_template()
            .approval_rule_template_name(name)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(SERVICE, "DeleteApprovalRuleTemplate", e))
    }
}
