//! Putting gild's own events on the bus.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use gild_core::ports::{Bus, PortError, PortResult};

use crate::classify;

const SERVICE: &str = "EventBridge";

pub struct EventBridgeBus {
    client: Client,
    bus_name: String,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus_name: impl Into<String>) -> Self {
        EventBridgeBus {
            client,
            bus_name: bus_name.into(),
        }
    }
}

impl Bus for EventBridgeBus {
    async fn put(
        &self,
        source: &str,
        detail_type: &str,
        detail: &serde_json::Value,
    ) -> PortResult<String> {
        let out = self
            .client
            .put_events()
            .entries(
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus_name)
                    .source(source)
                    .detail_type(detail_type)
                    .detail(detail.to_string())
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(SERVICE, "PutEvents", e))?;
        // PutEvents reports per-entry failures in a 200 response.
        let entry = out.entries().first();
        match entry {
            Some(entry) if entry.error_code().is_none() => entry
                .event_id()
                .map(str::to_owned)
                .ok_or_else(|| PortError::InvalidResponse {
                    service: SERVICE,
                    operation: "PutEvents",
                    message: "no event id in the response".into(),
                }),
            Some(entry) => Err(PortError::Service {
                service: SERVICE,
                operation: "PutEvents",
                code: entry.error_code().unwrap_or("Unknown").to_owned(),
                message: entry.error_message().unwrap_or_default().to_owned(),
                server_side: false,
            }),
            None => Err(PortError::InvalidResponse {
                service: SERVICE,
                operation: "PutEvents",
                message: "no entry in the response".into(),
            }),
        }
    }
}
