//! CodeCommit's approval-rule templates in memory, with its refusals: a
//! taken name, an unknown template or repository, a template still
//! associated.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;

use super::lock;
use crate::ports::{ApprovalRuleTemplates, PortError, PortResult, TemplateInfo};

const SERVICE: &str = "CodeCommit";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTemplate {
    pub content: String,
    pub description: String,
    pub repositories: BTreeSet<String>,
}

pub struct MemoryTemplates {
    pub templates: Mutex<BTreeMap<String, StoredTemplate>>,
    /// The repositories that exist.
    pub known_repositories: BTreeSet<String>,
    /// Every call, as `Operation name[ repository]`, in order.
    pub calls: Mutex<Vec<String>>,
    /// Errors the next calls of an operation return, in order.
    pub faults: Mutex<VecDeque<(&'static str, PortError)>>,
}

impl MemoryTemplates {
    pub fn with_repositories(names: &[&str]) -> Self {
        MemoryTemplates {
            templates: Mutex::new(BTreeMap::new()),
            known_repositories: names.iter().map(|n| (*n).to_owned()).collect(),
            calls: Mutex::new(Vec::new()),
            faults: Mutex::new(VecDeque::new()),
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, StoredTemplate> {
        lock(&self.templates).clone()
    }

    pub fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }

    /// The next call of `operation` fails with `error`.
    pub fn fail(&self, operation: &'static str, error: PortError) {
        lock(&self.faults).push_back((operation, error));
    }

    fn call(&self, call: String) -> PortResult<()> {
        let operation = call.split(' ').next().unwrap_or_default().to_owned();
        lock(&self.calls).push(call);
        let mut faults = lock(&self.faults);
        match faults.iter().position(|(op, _)| *op == operation) {
            Some(at) => Err(faults
                .remove(at)
                .map(|(_, e)| e)
                .expect("position is in range")),
            None => Ok(()),
        }
    }

    fn missing(operation: &'static str, code: &str, what: &str) -> PortError {
        PortError::NotFound {
            service: SERVICE,
            operation,
            code: code.to_owned(),
            message: format!("{what} does not exist"),
        }
    }

    fn repository(&self, operation: &'static str, name: &str) -> PortResult<()> {
        if self.known_repositories.contains(name) {
            Ok(())
        } else {
            Err(Self::missing(
                operation,
                "RepositoryDoesNotExistException",
                name,
            ))
        }
    }
}

impl ApprovalRuleTemplates for MemoryTemplates {
    async fn get(&self, name: &str) -> PortResult<Option<TemplateInfo>> {
        self.call(format!("GetApprovalRuleTemplate {name}"))?;
        Ok(lock(&self.templates).get(name).map(|t| TemplateInfo {
            content: t.content.clone(),
            description: Some(t.description.clone()),
        }))
    }

    async fn create(&self, name: &str, content: &str, description: &str) -> PortResult<()> {
        self.call(format!("CreateApprovalRuleTemplate {name}"))?;
        let mut templates = lock(&self.templates);
        if templates.contains_key(name) {
            return Err(PortError::ConditionFailed {
                service: SERVICE,
                operation: "CreateApprovalRuleTemplate",
                message: format!("{name} already exists"),
            });
        }
        templates.insert(
            name.to_owned(),
            StoredTemplate {
                content: content.to_owned(),
                description: description.to_owned(),
                repositories: BTreeSet::new(),
            },
        );
        Ok(())
    }

    async fn update_content(&self, name: &str, content: &str) -> PortResult<()> {
        self.call(format!("UpdateApprovalRuleTemplateContent {name}"))?;
        let mut templates = lock(&self.templates);
        let t = templates.get_mut(name).ok_or_else(|| {
            Self::missing(
                "UpdateApprovalRuleTemplateContent",
                "ApprovalRuleTemplateDoesNotExistException",
                name,
            )
        })?;
        t.content = content.to_owned();
        Ok(())
    }

    async fn associate(&self, name: &str, repository: &str) -> PortResult<()> {
        self.call(format!(
            "AssociateApprovalRuleTemplateWithRepository {name} {repository}"
        ))?;
        const OP: &str = "AssociateApprovalRuleTemplateWithRepository";
        self.repository(OP, repository)?;
        let mut templates = lock(&self.templates);
        let t = templates
            .get_mut(name)
            .ok_or_else(|| Self::missing(OP, "ApprovalRuleTemplateDoesNotExistException", name))?;
        t.repositories.insert(repository.to_owned());
        Ok(())
    }

    async fn disassociate(&self, name: &str, repository: &str) -> PortResult<()> {
        self.call(format!(
            "DisassociateApprovalRuleTemplateFromRepository {name} {repository}"
        ))?;
        const OP: &str = "DisassociateApprovalRuleTemplateFromRepository";
        self.repository(OP, repository)?;
        let mut templates = lock(&self.templates);
        let t = templates
            .get_mut(name)
            .ok_or_else(|| Self::missing(OP, "ApprovalRuleTemplateDoesNotExistException", name))?;
        t.repositories.remove(repository);
        Ok(())
    }

    async fn repositories(&self, name: &str) -> PortResult<Vec<String>> {
        self.call(format!("ListRepositoriesForApprovalRuleTemplate {name}"))?;
        lock(&self.templates)
            .get(name)
            .map(|t| t.repositories.iter().cloned().collect())
            .ok_or_else(|| {
                Self::missing(
                    "ListRepositoriesForApprovalRuleTemplate",
                    "ApprovalRuleTemplateDoesNotExistException",
                    name,
                )
            })
    }

    async fn delete(&self, name: &str) -> PortResult<()> {
        self.call(format!("DeleteApprovalRuleTemplate {name}"))?;
        let mut templates = lock(&self.templates);
        if templates
            .get(name)
            .is_some_and(|t| !t.repositories.is_empty())
        {
            return Err(PortError::Service {
                service: SERVICE,
                operation: "DeleteApprovalRuleTemplate",
                code: "ApprovalRuleTemplateInUseException".to_owned(),
                message: format!("{name} is associated with a repository"),
                server_side: false,
            });
        }
        templates.remove(name);
        Ok(())
    }
}
