//! Which calls the proxy faults, and how: the kinds of [`Fault`], faults on
//! chosen calls ([`Scripted`]), and the seeded choice of the rest
//! ([`FaultConfig`]); [`Rng`] for the tests' own choices.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use super::protocol::CallId;
use crate::HarnessError;

/// What the proxy does to a call instead of (or besides) forwarding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// The service's throttling error in its protocol (HTTP 400, or 503
    /// `RequestLimitExceeded` for EC2). Not forwarded.
    Throttle,
    /// HTTP 500 `InternalFailure`/`InternalError`/`InternalServerError` in
    /// the service's protocol. Not forwarded.
    ServerError,
    /// Forwarded after [`FaultConfig::slow`] and answered normally; the delay
    /// stays under the SDK's attempt timeout.
    Slow,
    /// The request is read, nothing happens for [`FaultConfig::hang`], then
    /// the connection closes without an answer. Not forwarded.
    Hang,
    /// The request is read and the connection closes at once without an
    /// answer. Not forwarded.
    Drop,
    /// Forwarded, so its side effect happens, then the connection closes
    /// without the answer.
    LostAnswer,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::Throttle,
        Fault::ServerError,
        Fault::Slow,
        Fault::Hang,
        Fault::Drop,
        Fault::LostAnswer,
    ];

    /// Faults decided on the request alone: the upstream never sees it.
    pub const REQUEST_ONLY: [Fault; 5] = [
        Fault::Throttle,
        Fault::ServerError,
        Fault::Slow,
        Fault::Hang,
        Fault::Drop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Throttle => "throttle",
            Fault::ServerError => "server-error",
            Fault::Slow => "slow",
            Fault::Hang => "hang",
            Fault::Drop => "drop",
            Fault::LostAnswer => "lost-answer",
        }
    }

    /// Whether the upstream receives the request (and so applies it).
    pub fn reaches_upstream(self) -> bool {
        matches!(self, Fault::Slow | Fault::LostAnswer)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault on a chosen call, whatever the rate: the `call`-th request
/// (1-based) to `service`'s `operation` whose body contains `body_contains`
/// (when set) gets `fault`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scripted {
    /// The SigV4 signing name: `dynamodb`, `codebuild`, `ec2`, `ssm`, …
    pub service: String,
    /// `PutItem`, `StartBuild`, `Publish`, …
    pub operation: String,
    pub body_contains: Option<String>,
    pub call: usize,
    pub fault: Fault,
}

impl Scripted {
    pub fn new(service: &str, operation: &str, call: usize, fault: Fault) -> Self {
        Scripted {
            service: service.to_owned(),
            operation: operation.to_owned(),
            body_contains: None,
            call,
            fault,
        }
    }

    /// Only requests whose body contains `text` count (and match).
    pub fn body_contains(mut self, text: &str) -> Self {
        self.body_contains = Some(text.to_owned());
        self
    }

    pub(super) fn matches(&self, call: &CallId, body: &[u8]) -> bool {
        self.service == call.service
            && self.operation == call.operation
            && self
                .body_contains
                .as_ref()
                .is_none_or(|text| contains(body, text.as_bytes()))
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Which calls fail, and how.
#[derive(Debug, Clone)]
pub struct FaultConfig {
    /// Seeds the generator that picks the faulted calls and their faults.
    pub seed: u64,
    /// Share of calls faulted at random, `0.0..=1.0`: one call in each
    /// window of `round(1 / rate)` consecutive calls (see [`Self::window`]),
    /// so 10% is exactly every tenth call on average, never a lucky run of none.
    pub rate: f64,
    /// The faults picked from at random, with their relative weights; the
    /// first faults injected cover every kind once (see [`Self::kind`]).
    pub mix: Vec<(Fault, u32)>,
    /// How late a [`Fault::Slow`] answer comes.
    pub slow: Duration,
    /// How long a [`Fault::Hang`] holds the connection before closing it.
    pub hang: Duration,
    /// When set, random faults only hit these services (signing names).
    pub services: Option<BTreeSet<String>>,
    /// Faults on chosen calls, applied whatever the rate.
    pub scripted: Vec<Scripted>,
}

impl FaultConfig {
    /// No fault at all: the proxy only forwards (and counts calls).
    pub fn none() -> Self {
        FaultConfig {
            seed: 0,
            rate: 0.0,
            mix: Vec::new(),
            slow: Duration::from_millis(300),
            hang: Duration::from_secs(1),
            services: None,
            scripted: Vec::new(),
        }
    }

    /// 10% of calls, every request-only fault, hangs and drops rarer than
    /// errors; slow answers 300 ms late, hangs 1 s long.
    pub fn new(seed: u64) -> Self {
        FaultConfig {
            seed,
            rate: 0.1,
            mix: vec![
                (Fault::Throttle, 3),
                (Fault::ServerError, 2),
                (Fault::Slow, 2),
                (Fault::Drop, 2),
                (Fault::Hang, 1),
            ],
            ..FaultConfig::none()
        }
    }

    pub fn rate(mut self, rate: f64) -> Self {
        self.rate = rate;
        self
    }

    /// Replaces the mix.
    pub fn mix(mut self, mix: &[(Fault, u32)]) -> Self {
        self.mix = mix.to_vec();
        self
    }

    /// Adds (or reweighs) one fault in the mix.
    pub fn with(mut self, fault: Fault, weight: u32) -> Self {
        self.mix.retain(|(f, _)| *f != fault);
        self.mix.push((fault, weight));
        self
    }

    pub fn slow(mut self, delay: Duration) -> Self {
        self.slow = delay;
        self
    }

    pub fn hang(mut self, stall: Duration) -> Self {
        self.hang = stall;
        self
    }

    pub fn services(mut self, services: &[&str]) -> Self {
        self.services = Some(services.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    pub fn script(mut self, scripted: Scripted) -> Self {
        self.scripted.push(scripted);
        self
    }

    /// The faults this config can inject at random.
    pub fn random_kinds(&self) -> BTreeSet<Fault> {
        if self.rate <= 0.0 {
            return BTreeSet::new();
        }
        self.mix
            .iter()
            .filter(|(_, weight)| *weight > 0)
            .map(|(fault, _)| *fault)
            .collect()
    }

    pub(super) fn validate(&self) -> Result<(), HarnessError> {
        if !(0.0..=1.0).contains(&self.rate) {
            return Err(HarnessError::InvalidInput {
                message: format!("fault rate {} is not within 0..=1", self.rate),
            });
        }
        if self.rate > 0.0 && self.mix.iter().all(|(_, w)| *w == 0) {
            return Err(HarnessError::InvalidInput {
                message: "a fault rate above 0 needs at least one fault with a weight".into(),
            });
        }
        if let Some(bad) = self.scripted.iter().find(|s| s.call == 0) {
            return Err(HarnessError::InvalidInput {
                message: format!("scripted fault {bad:?}: calls are counted from 1"),
            });
        }
        Ok(())
    }

    /// Calls per fault window: exactly one call in each window of this many
    /// consecutive calls is faulted, so the share is `1 / window`.
    pub fn window(&self) -> u64 {
        if self.rate <= 0.0 {
            return 0;
        }
        (1.0 / self.rate).round().max(1.0) as u64
    }

    /// Whether the `seq`-th call through the proxy (from 0) is faulted at
    /// random: one call per window, at a position the seed picks.
    pub(super) fn faulted(&self, seq: u64, service: &str) -> bool {
        let window = self.window();
        if window == 0
            || self
                .services
                .as_ref()
                .is_some_and(|only| !only.contains(service))
        {
            return false;
        }
        let position = splitmix(self.seed ^ splitmix(seq / window)) % window;
        seq % window == position
    }

    /// The kind of the `index`-th random fault (from 0). Kinds come in bags
    /// holding each kind as often as its weight, shuffled by the seed, with
    /// one of every kind first: the first `kinds` faults cover every kind.
    pub(super) fn kind(&self, index: u64) -> Option<Fault> {
        let weighted: Vec<(Fault, u32)> =
            self.mix.iter().copied().filter(|(_, w)| *w > 0).collect();
        let size: u64 = weighted.iter().map(|(_, w)| u64::from(*w)).sum();
        if size == 0 {
            return None;
        }
        let round = index / size;
        let mut rng = Rng::new(self.seed ^ splitmix(round ^ 0x6a09_e667));
        let mut first: Vec<Fault> = weighted.iter().map(|(f, _)| *f).collect();
        let mut rest: Vec<Fault> = weighted
            .iter()
            .flat_map(|(f, w)| std::iter::repeat_n(*f, (*w as usize).saturating_sub(1)))
            .collect();
        rng.shuffle(&mut first);
        rng.shuffle(&mut rest);
        first.extend(rest);
        first.get((index % size) as usize).copied()
    }
}

/// A deterministic generator for the tests' own choices (copies, order).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(splitmix(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix(self.0)
    }

    /// Uniform in `low..=high`.
    pub fn between(&mut self, low: usize, high: usize) -> usize {
        if high <= low {
            return low;
        }
        low + (self.next_u64() % (high - low + 1) as u64) as usize
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// Every decision is a pure function of the seed and the call's number.
use gild_core::retry::splitmix;

#[cfg(test)]
mod tests {
    use super::*;

    fn random_faults(config: &FaultConfig, calls: u64, service: &str) -> Vec<Option<Fault>> {
        let mut index = 0;
        (0..calls)
            .map(|seq| {
                config.faulted(seq, service).then(|| {
                    index += 1;
                    config.kind(index - 1).expect("a kind")
                })
            })
            .collect()
    }

    #[test]
    fn decisions_depend_on_seed_and_call_only_and_follow_the_rate() {
        let config = FaultConfig::new(7);
        let picks = random_faults(&config, 2000, "ec2");
        assert_eq!(picks, random_faults(&config, 2000, "ec2"));
        assert_ne!(picks, random_faults(&FaultConfig::new(8), 2000, "ec2"));
        // Exactly one in every ten calls.
        for window in picks.chunks(10) {
            assert_eq!(window.iter().flatten().count(), 1, "{window:?}");
        }
        // The first five faults are the five kinds; then by weight.
        let kinds: BTreeSet<_> = picks.iter().flatten().take(5).copied().collect();
        assert_eq!(kinds, Fault::REQUEST_ONLY.into_iter().collect());
        let all: Vec<Fault> = picks.iter().flatten().copied().collect();
        let share = |f: Fault| all.iter().filter(|k| **k == f).count();
        assert_eq!(share(Fault::Throttle), 60);
        assert_eq!(share(Fault::Hang), 20);
        assert!(random_faults(&FaultConfig::none(), 50, "ec2")
            .iter()
            .all(Option::is_none));
        let only = FaultConfig::new(1).rate(1.0).services(&["sns"]);
        assert!(!only.faulted(1, "ec2"));
        assert!(only.faulted(1, "sns"));
        assert_eq!(FaultConfig::new(1).rate(0.25).window(), 4);
        assert!(FaultConfig::new(1).rate(1.5).validate().is_err());
    }

    #[test]
    fn rng_shuffles_reproducibly() {
        let mut a: Vec<u32> = (0..30).collect();
        let mut b = a.clone();
        Rng::new(3).shuffle(&mut a);
        Rng::new(3).shuffle(&mut b);
        assert_eq!(a, b);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..30).collect::<Vec<_>>());
        let mut rng = Rng::new(9);
        assert!((0..100).all(|_| (1..=3).contains(&rng.between(1, 3))));
    }
}
