//! Retrying transient port errors with backoff.

use std::future::Future;

use gild_core::ports::{PortError, PortResult};
use gild_core::retry::Backoff;

/// Calls `call` until it succeeds, fails for good, or `backoff.attempts` run
/// out. `seed` spreads the jitter of calls made together (use a hash of the
/// family, say).
pub async fn with_backoff<T, F, Fut>(backoff: &Backoff, seed: u64, call: F) -> PortResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = PortResult<T>>,
{
    with_backoff_if(backoff, seed, PortError::is_transient, call).await
}

/// [`with_backoff`] retrying only the errors `retry_on` picks, for callers
/// that handle some transient errors themselves (a full CodeBuild quota
/// queues the bake rather than waiting seconds for a slot that takes hours).
pub async fn with_backoff_if<T, F, Fut>(
    backoff: &Backoff,
    seed: u64,
    retry_on: impl Fn(&PortError) -> bool,
    mut call: F,
) -> PortResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = PortResult<T>>,
{
    let mut retry = 0;
    loop {
        match call().await {
            Err(err) if retry_on(&err) && retry + 1 < backoff.attempts => {
                let delay = backoff.delay(retry, seed);
                tracing::warn!(error = %err, retry, delay_ms = delay.as_millis() as u64, "transient failure, retrying");
                tokio::time::sleep(delay).await;
                retry += 1;
            }
            result => return result,
        }
    }
}

/// A seed from text, so each family retries on its own schedule.
pub fn seed(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gild_core::ports::PortError;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    fn fast() -> Backoff {
        Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
            attempts: 3,
        }
    }

    #[tokio::test]
    async fn retries_transient_then_gives_up() {
        let calls = AtomicU32::new(0);
        let result: PortResult<()> = with_backoff(&fast(), 1, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(PortError::Timeout {
                service: "S",
                operation: "Op",
            })
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let result: PortResult<()> = with_backoff(&fast(), 1, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(PortError::NotFound {
                service: "S",
                operation: "Op",
                code: "X".into(),
                message: String::new(),
            })
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
