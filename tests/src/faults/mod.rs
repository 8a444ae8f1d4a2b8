//! Faults, on the wire: a fault-injecting HTTP proxy of our own between the
//! function binaries and the emulators (moto, the CodeBuild recording proxy,
//! the CodeCommit stub).
//!
//! The proxy forwards every request unchanged (method, path, query, headers
//! with `Host` rewritten to the upstream's, body) except a chosen share of
//! them, picked by a deterministic generator from a seed, which it answers
//! with a [`Fault`] instead:
//!
//! - [`Fault::Throttle`] and [`Fault::ServerError`]: the service's own error
//!   in the service's own protocol (AWS JSON's `__type` and
//!   `x-amzn-ErrorType`, EC2's `<Response><Errors>`, the Query protocol's
//!   `<ErrorResponse>`), so the SDK parses and classifies it as it would
//!   AWS's;
//! - [`Fault::Slow`]: the answer comes late, but within the SDK's timeouts;
//! - [`Fault::Hang`] and [`Fault::Drop`]: the request is read, then the
//!   connection closes without an answer (after a stall, or at once);
//! - [`Fault::LostAnswer`]: the request **is** forwarded (its side effect
//!   happens) and then the answer is lost: the connection closes. This is
//!   the case exactly-once has to survive: a `StartBuild` that started a
//!   build, a `PutItem` that claimed, and a caller that cannot know.
//!
//! Every other fault is decided on the request alone and never reaches the
//! upstream, so it has no side effect.
//!
//! The service is read from the SigV4 credential scope
//! (`Credential=…/<date>/<region>/<service>/aws4_request`), the protocol from
//! `X-Amz-Target` (AWS JSON) or a form body with `Action=` (Query; EC2 has
//! its own dialect), the operation from the target or the action.
//!
//! [`FaultyRoutes`] puts one proxy in front of each of a [`Pipeline`]'s
//! endpoints and spawns the pipeline's functions behind them; the harness's
//! own calls (stand-in, readers) keep going straight to the emulators.
//!
//! The suite's machinery, one file per part: [`config`] (which calls fail,
//! and how), [`proxy`] (the proxy itself), [`routes`] (a proxy in front of
//! each of a pipeline's endpoints), [`fleet`] (the functions as Lambda runs
//! them: several execution environments, deadlines, crashes) and
//! [`delivery`] (events delivered at least once, concurrently, failures
//! delivered again).

pub mod config;
pub mod delivery;
pub mod fleet;
pub mod protocol;
pub mod proxy;
pub mod routes;

pub use config::{Fault, FaultConfig, Rng, Scripted};
pub use delivery::{DeliveryLog, FailedInvocation, Redelivery};
pub use fleet::{Fleet, FleetConfig, FleetCounts, Fleets};
pub use protocol::{error_response, identify, CallId, Protocol};
pub use proxy::{FaultProxy, Injected, Injection};
pub use routes::FaultyRoutes;
