//! Secrets from Secrets Manager, read at run time and cached briefly: a
//! warm Lambda must not call Secrets Manager per request, yet must see a
//! rotation within minutes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use gild_core::ports::{PortResult, SecretStage, Secrets};
use tokio::sync::Mutex;

use crate::classify;

const SERVICE: &str = "SecretsManager";

/// (name, stage) → (when read, value).
type Cache = HashMap<(String, SecretStage), (Instant, Option<String>)>;

pub struct SecretsManager {
    client: Client,
    ttl: Duration,
    cache: Mutex<Cache>,
}

impl SecretsManager {
    pub fn new(client: Client, ttl: Duration) -> Self {
        SecretsManager {
            client,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }
}

impl Secrets for SecretsManager {
    async fn get(&self, name: &str, stage: SecretStage) -> PortResult<Option<String>> {
        let key = (name.to_owned(), stage);
        if let Some((at, value)) = self.cache.lock().await.get(&key) {
            if at.elapsed() < self.ttl {
                return Ok(value.clone());
            }
        }
        let label = match stage {
            SecretStage::Current => "AWSCURRENT",
            SecretStage::Previous => "AWSPREVIOUS",
        };
        let result = self
            .client
            .get_secret_value()
            .secret_id(name)
            .version_stage(label)
            .send()
            .await;
        let value = match result {
            Ok(out) => out.secret_string,
            // A secret never rotated has no AWSPREVIOUS version.
            Err(err)
                if stage == SecretStage::Previous
                    && err
                        .as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                None
            }
            Err(err) => return Err(classify(SERVICE, "GetSecretValue", err)),
        };
        self.cache
            .lock()
            .await
            .insert(key, (Instant::now(), value.clone()));
        Ok(value)
    }
}
