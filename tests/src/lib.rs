//! Offline end-to-end test harness for gild.
//!
//! Everything here runs on the developer machine without AWS credentials:
//! moto emulates most services, and the harness fills the gaps moto has
//! (CodeCommit file/diff/branch reads, CodeBuild environment overrides) and
//! runs real Lambda binaries against a local implementation of the Lambda
//! Runtime API.

use std::path::{Path, PathBuf};

pub mod aws;
pub mod bench;
pub mod codebuild;
pub mod codecommit;
pub mod custom_resource;
pub mod events;
pub mod faults;
pub mod gate;
pub mod git;
pub mod github;
pub mod image_policy;
pub mod moto;
pub mod pipeline;
pub mod routing;
pub mod runner;
pub mod runtime_api;
pub mod scenario;
pub mod stack;
pub mod standin;
pub mod standin_bom;
pub mod suites;
pub mod webhook;

mod http_client;
mod process;

/// Every failure the harness can report. Messages are written for the person
/// reading a failed test's output, so they say what to do where possible.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("moto_server not found at {}: run `make tools` (installs the pinned moto into .venv)", path.display())]
    MotoNotFound { path: PathBuf },

    #[error("moto_server did not come up after {attempts} attempt(s): {reason} (log: {})", log.display())]
    MotoStartFailed {
        attempts: u32,
        reason: String,
        log: PathBuf,
    },

    #[error(
        "binary `{name}` not built: run `cargo build --workspace --bins` (looked in: {})",
        display_paths(searched)
    )]
    BinaryNotBuilt {
        name: String,
        searched: Vec<PathBuf>,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("HTTP request to {url} failed: {message}")]
    Http { url: String, message: String },

    #[error("HTTP request to {url} answered {status}: {body}")]
    HttpStatus {
        url: String,
        status: u16,
        body: String,
    },

    #[error("`git {args}` failed in {}: {stderr}", dir.display())]
    Git {
        args: String,
        dir: PathBuf,
        stderr: String,
    },

    #[error("{context}: {source}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("the function process died (or reported an init error) before answering; its output:\n{logs}")]
    FunctionDied { logs: String },

    #[error("invocation {request_id} of `{function}` got no answer within {timeout:?}; function output:\n{logs}")]
    InvokeTimeout {
        function: String,
        request_id: String,
        timeout: std::time::Duration,
        logs: String,
    },

    #[error("`{function}` posted a response that is not JSON ({source}): {body}")]
    InvalidFunctionResponse {
        function: String,
        body: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("the runtime API server of `{function}` stopped while an invocation was pending")]
    RuntimeApiStopped { function: String },

    #[error("invalid harness input: {message}")]
    InvalidInput { message: String },
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl HarnessError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        HarnessError::Io {
            context: context.into(),
            source,
        }
    }
}

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    // This package lives at `<root>/tests`, so the parent always exists; the
    // fallback only guards against the crate being moved to a filesystem root.
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest_dir.to_path_buf())
}

/// Locates a workspace binary built by cargo in the same target directory and
/// profile as the running test executable.
pub fn bin_path(name: &str) -> Result<PathBuf, HarnessError> {
    let file_name = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let searched: Vec<PathBuf> = binary_dirs()
        .into_iter()
        .map(|dir| dir.join(&file_name))
        .collect();
    searched
        .iter()
        .find(|candidate| candidate.is_file())
        .cloned()
        .ok_or_else(|| HarnessError::BinaryNotBuilt {
            name: name.to_string(),
            searched,
        })
}

/// Directories that may hold cargo-built binaries, most specific first.
fn binary_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut profile = String::from("debug");
    if let Ok(exe) = std::env::current_exe() {
        if let Some(exe_dir) = exe.parent() {
            // Test executables live in `<target>/<profile>/deps/`, while
            // binaries (and e.g. a benchmark runner built as a bin) live in
            // `<target>/<profile>/`.
            let profile_dir = if exe_dir.file_name().is_some_and(|n| n == "deps") {
                exe_dir.parent()
            } else {
                Some(exe_dir)
            };
            if let Some(profile_dir) = profile_dir {
                if let Some(p) = profile_dir.file_name().and_then(|n| n.to_str()) {
                    profile = p.to_string();
                }
                dirs.push(profile_dir.to_path_buf());
            }
        }
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        let target = PathBuf::from(target);
        let target = if target.is_relative() {
            workspace_root().join(target)
        } else {
            target
        };
        dirs.push(target.join(&profile));
    }
    dirs.push(workspace_root().join("target").join(&profile));
    dirs.dedup();
    dirs
}

/// Non-cryptographic randomness for request ids and the like; std's hasher
/// keys are randomly seeded, which is all the uniqueness tests need.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish()
}

/// A random id in the UUID v4 text format AWS uses for request ids.
pub(crate) fn new_uuid() -> String {
    let hi = random_u64();
    let lo = random_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0x0fff,
        ((lo >> 48) & 0x3fff) | 0x8000,
        lo & 0xffff_ffff_ffff
    )
}

/// Whether harness log files should be kept after a successful run: always
/// when a test is failing (so the path printed in the failure stays valid),
/// and on request via `GILD_KEEP_LOGS=1`.
pub(crate) fn keep_logs() -> bool {
    std::thread::panicking() || std::env::var("GILD_KEEP_LOGS").is_ok_and(|v| v == "1")
}
