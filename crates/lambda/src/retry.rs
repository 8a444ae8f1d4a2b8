//! Retrying transient failures with backoff: one loop, [`with_backoff_until`],
//! for port errors ([`with_backoff`], [`with_backoff_if`]) and for callers
//! whose errors say when to try again (Slack's `Retry-After`) or that must
//! stop before a deadline.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

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
    call: F,
) -> PortResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = PortResult<T>>,
{
    let classify = |err: &PortError| {
        if retry_on(err) {
            Retry::Backoff
        } else {
            Retry::Never
        }
    };
    with_backoff_until(backoff, seed, None, classify, call)
        .await
        .map(|(value, _)| value)
        .map_err(|gave_up| gave_up.error)
}

/// Whether, and when, a failed try is made again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The failure is final.
    Never,
    /// Transient: again after the backoff's next delay.
    Backoff,
    /// Transient, and the other side said when (HTTP `Retry-After`).
    After(Duration),
}

/// Why [`with_backoff_until`] stopped without a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The error was [`Retry::Never`].
    Final,
    /// `backoff.attempts` ran out.
    Exhausted,
    /// The next try, `wait` from now, would start at or past the cutoff.
    Deadline { wait: Duration },
}

/// The last error, the tries made (the first included), and why it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GaveUp<E> {
    pub error: E,
    pub attempts: u32,
    pub stop: Stop,
}

/// The retry loop: calls `call` until it succeeds, `classify` calls its
/// error final, `backoff.attempts` run out, or (given a `cutoff`) the wait
/// before the next try would reach the cutoff; no wait ever runs into it.
/// Waits are the backoff's delays (`seed` spreads them) unless `classify`
/// names one. Returns the value and the tries it took. Whether there is
/// time for the first try is the caller's call.
pub async fn with_backoff_until<T, E, F, Fut>(
    backoff: &Backoff,
    seed: u64,
    cutoff: Option<Instant>,
    classify: impl Fn(&E) -> Retry,
    mut call: F,
) -> Result<(T, u32), GaveUp<E>>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let error = match call().await {
            Ok(value) => return Ok((value, attempts)),
            Err(error) => error,
        };
        let wait = match classify(&error) {
            Retry::Never => Err(Stop::Final),
            _ if attempts >= backoff.attempts => Err(Stop::Exhausted),
            Retry::Backoff => Ok(backoff.delay(attempts - 1, seed)),
            Retry::After(wait) => Ok(wait),
        }
        .and_then(|wait| match cutoff {
            // `checked_add`: a `Retry-After` of u64::MAX seconds must not panic.
            Some(cutoff)
                if Instant::now()
                    .checked_add(wait)
                    .is_none_or(|at| at >= cutoff) =>
            {
                Err(Stop::Deadline { wait })
            }
            _ => Ok(wait),
        });
        let wait = match wait {
            Ok(wait) => wait,
            Err(stop) => {
                return Err(GaveUp {
                    error,
                    attempts,
                    stop,
                })
            }
        };
        tracing::warn!(error = %error, retry = attempts - 1, delay_ms = wait.as_millis() as u64, "transient failure, retrying");
        tokio::time::sleep(wait).await;
    }
}

/// A seed from text, so each family retries on its own schedule.
pub fn seed(text: &str) -> u64 {
    gild_core::retry::fnv1a(text.as_bytes())
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

    /// Fails with `errors` in turn, then succeeds.
    fn script(
        errors: Vec<&'static str>,
    ) -> impl FnMut() -> std::future::Ready<Result<(), &'static str>> {
        let mut errors = errors.into_iter();
        move || std::future::ready(errors.next().map_or(Ok(()), Err))
    }

    fn classify(err: &&str) -> Retry {
        match *err {
            "final" => Retry::Never,
            "later" => Retry::After(Duration::from_millis(50)),
            "much later" => Retry::After(Duration::from_secs(30)),
            "never again" => Retry::After(Duration::MAX),
            _ => Retry::Backoff,
        }
    }

    #[tokio::test]
    async fn a_named_wait_is_honoured_and_tries_are_counted() {
        let started = Instant::now();
        let result =
            with_backoff_until(&fast(), 1, None, classify, script(vec!["busy", "later"])).await;
        assert_eq!(result, Ok(((), 3)));
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn final_errors_and_spent_attempts_say_why() {
        let result =
            with_backoff_until(&fast(), 1, None, classify, script(vec!["busy", "final"])).await;
        assert_eq!(
            result,
            Err(GaveUp {
                error: "final",
                attempts: 2,
                stop: Stop::Final
            })
        );
        let result = with_backoff_until(&fast(), 1, None, classify, script(vec!["busy"; 5])).await;
        assert_eq!(
            result,
            Err(GaveUp {
                error: "busy",
                attempts: 3,
                stop: Stop::Exhausted
            })
        );
    }

    #[tokio::test]
    async fn no_wait_runs_into_the_cutoff() {
        let cutoff = Some(Instant::now() + Duration::from_secs(5));
        let started = Instant::now();
        let result =
            with_backoff_until(&fast(), 1, cutoff, classify, script(vec!["much later"])).await;
        assert_eq!(
            result,
            Err(GaveUp {
                error: "much later",
                attempts: 1,
                stop: Stop::Deadline {
                    wait: Duration::from_secs(30)
                }
            })
        );
        // An absurd wait gives up too, without overflowing.
        let result =
            with_backoff_until(&fast(), 1, cutoff, classify, script(vec!["never again"])).await;
        assert_eq!(
            result.map_err(|g| g.stop),
            Err(Stop::Deadline {
                wait: Duration::MAX
            })
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
