//! One custom resource request: read it, carry it out within the time
//! left, and answer CloudFormation whatever happened. An answer that does
//! not arrive leaves the stack waiting until the resource's ServiceTimeout,
//! so the work stops `DEADLINE_MARGIN` before the invocation's end to keep
//! time for the PUT.

use std::time::{Duration, Instant};

use gild_core::approval_rule::{physical_id, Request};
use gild_core::ports::ApprovalRuleTemplates;
use gild_core::retry::Backoff;
use gild_flow::approval_rule::carry_out;
use serde_json::{json, Value};

use crate::request::{self, Envelope};
use crate::response::{self, Outcome, Respond};
use crate::TemplateFnError;

/// Time kept for the answer after the work.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(10);
/// The answer's own margin before Lambda stops the invocation.
const RESPONSE_MARGIN: Duration = Duration::from_secs(1);

pub struct Handler<T, P> {
    templates: T,
    respond: P,
    allow_insecure_loopback: bool,
}

impl<T: ApprovalRuleTemplates, P: Respond> Handler<T, P> {
    pub fn new(templates: T, respond: P, allow_insecure_loopback: bool) -> Self {
        Handler {
            templates,
            respond,
            allow_insecure_loopback,
        }
    }

    pub fn templates(&self) -> &T {
        &self.templates
    }

    pub fn respond(&self) -> &P {
        &self.respond
    }

    /// Handles `event`; `log_stream` is named in a FAILED answer's reason,
    /// since CloudFormation's console shows the reason and not the log.
    pub async fn handle(
        &self,
        event: Value,
        deadline: Instant,
        log_stream: &str,
    ) -> Result<Value, TemplateFnError> {
        let (envelope, url) = request::envelope(&event, self.allow_insecure_loopback)?;
        let (physical_id, outcome) = self.work(&envelope, event, deadline).await;
        let outcome = outcome.map_err(|reason| {
            tracing::error!(request_id = %envelope.request_id, %reason, "answering FAILED");
            format!("{reason} (log stream {log_stream})")
        });
        let body = response::body(&envelope, &physical_id, &outcome);
        let cutoff = deadline.checked_sub(RESPONSE_MARGIN).unwrap_or(deadline);
        self.respond
            .put(&url, body, cutoff)
            .await
            .map_err(|gave_up| TemplateFnError::ResponseNotSent {
                request_id: envelope.request_id.clone(),
                error: gave_up.error,
            })?;
        let status = if outcome.is_ok() { "SUCCESS" } else { "FAILED" };
        tracing::info!(request_id = %envelope.request_id, status, physical_id, "answered CloudFormation");
        Ok(json!({"status": status, "physical_resource_id": physical_id}))
    }

    /// The physical id to answer with, and the outcome.
    async fn work(
        &self,
        envelope: &Envelope,
        event: Value,
        deadline: Instant,
    ) -> (String, Outcome) {
        // A Create refused before any template existed: an id naming
        // none, which the rollback's Delete finds gone.
        let fallback = format!("{}-{}", envelope.logical_resource_id, envelope.request_id);
        let request = match request::read(event) {
            Ok(request) => request,
            Err(refusal) => {
                let id = envelope.physical_resource_id.clone().unwrap_or(fallback);
                return (id, Err(refusal.to_string()));
            }
        };
        let cutoff = deadline.checked_sub(DEADLINE_MARGIN).unwrap_or(deadline);
        let backoff = Backoff::default();
        let work = carry_out(&self.templates, &envelope.stack_id, &request, &backoff);
        let outcome = match tokio::time::timeout_at(cutoff.into(), work).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("{}: {e}", e.name())),
            Err(_) => Err("CodeCommit did not answer before the function's time ran out".into()),
        };
        let id = match (&request, &outcome, &envelope.physical_resource_id) {
            // A failed Update keeps the resource CloudFormation knows; its
            // rollback sends the old properties back.
            (Request::Update { .. }, Err(_), Some(old)) => old.clone(),
            _ => physical_id(&request),
        };
        (id, outcome)
    }
}

#[cfg(test)]
mod tests;
