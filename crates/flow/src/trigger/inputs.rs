//! What a triaged event needs read from the images repository before it
//! can be planned: the catalog at the commit, the one before it, the diff.

use gild_core::catalog::{self, Catalog, CATALOG_FILE};
use gild_core::plan::{DiffBase, Inputs, Triage};
use gild_core::ports::{Builds, Ledger, PortError, Repository};
use gild_lambda::retry::{seed, with_backoff};
use tracing::warn;

use super::{Handler, TriggerError};

impl<R: Repository, L: Ledger, B: Builds, X> Handler<R, L, B, X> {
    pub(super) async fn read_inputs(
        &self,
        triage: &Triage,
        changed: Option<Vec<String>>,
    ) -> Result<Inputs, TriggerError> {
        match triage {
            Triage::Ignore(_) | Triage::Completion(_) | Triage::PullRequest(_) => {
                Ok(Inputs::default())
            }
            Triage::Push { commit, base, .. } => {
                let catalog = self.catalog_at(commit).await?;
                let changed = match changed {
                    Some(changed) => changed,
                    None => self
                        .retrying(commit, || self.repo.changed_paths(base, commit))
                        .await
                        .map_err(TriggerError::Repository)?,
                };
                let previous_catalog = match base {
                    DiffBase::Commit(before) if changed.iter().any(|p| p == CATALOG_FILE) => {
                        self.previous_catalog(before).await?
                    }
                    _ => None,
                };
                Ok(Inputs {
                    catalog,
                    previous_catalog,
                    changed,
                    commit: Some(commit.clone()),
                })
            }
            Triage::Schedule { .. } | Triage::Manual { .. } => {
                let branch = &self.settings.tracked_branch;
                let tip = self
                    .retrying(branch, || self.repo.branch_tip(branch))
                    .await
                    .map_err(TriggerError::Repository)?;
                Ok(Inputs {
                    catalog: self.catalog_at(&tip).await?,
                    commit: Some(tip),
                    ..Inputs::default()
                })
            }
        }
    }

    pub(super) async fn catalog_at(&self, commit: &str) -> Result<Catalog, TriggerError> {
        let text = self
            .retrying(commit, || self.repo.read_file(commit, CATALOG_FILE))
            .await
            .map_err(TriggerError::Repository)?
            .ok_or_else(|| TriggerError::CatalogMissing {
                commit: commit.to_owned(),
            })?;
        Ok(catalog::parse(CATALOG_FILE, &text)?)
    }

    /// The catalog before a push. When it is missing or invalid, every family
    /// counts as changed by the push's edit of the catalog.
    pub(super) async fn previous_catalog(
        &self,
        commit: &str,
    ) -> Result<Option<Catalog>, TriggerError> {
        let text = self
            .retrying(commit, || self.repo.read_file(commit, CATALOG_FILE))
            .await
            .map_err(TriggerError::Repository)?;
        Ok(text.and_then(|text| match catalog::parse(CATALOG_FILE, &text) {
            Ok(catalog) => Some(catalog),
            Err(err) => {
                warn!(%err, commit, "previous catalog unreadable; every family counts as changed");
                None
            }
        }))
    }

    pub(super) async fn retrying<T, F, Fut>(&self, what: &str, call: F) -> Result<T, PortError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, PortError>>,
    {
        with_backoff(&self.launcher.backoff, seed(what), call).await
    }
}
