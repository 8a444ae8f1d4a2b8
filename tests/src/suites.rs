//! What test.yml exports as `GILD_TEST_SUITES`, for the build stand-in:
//! the family's suite, then one per consumer of the family in the catalog
//! at the build's commit, as the real buildspec runs them. The scripts do
//! not run here; a check fails only when the test names it
//! ([`Failing`]), at one commit or all.

use std::collections::BTreeSet;
use std::path::Path;

use gild_core::catalog::{self, CATALOG_FILE};
use serde_json::{json, Value};

use crate::git::GIT_ENV;
use crate::HarnessError;

/// Checks that fail: (commit or `None` for any, suite name, check name).
pub type Failing = BTreeSet<(Option<String>, String, String)>;

/// The suites of `family`'s test build at `commit`, and whether one failed.
pub fn suites(
    repo: &Path,
    commit: &str,
    family: &str,
    failing: &Failing,
) -> Result<(String, bool), HarnessError> {
    let text = catalog_at(repo, commit)?;
    let catalog = catalog::parse(CATALOG_FILE, &text).map_err(|e| HarnessError::InvalidInput {
        message: format!("stand-in: the catalog at {commit}: {e}"),
    })?;
    let fails = |suite: &str| -> Vec<String> {
        failing
            .iter()
            .filter(|(at, name, _)| name == suite && at.as_deref().is_none_or(|c| c == commit))
            .map(|(_, _, check)| check.clone())
            .collect()
    };
    let mut all = vec![suite("family", family, None, &fails(family))];
    for consumer in catalog.consumers_of(family) {
        all.push(suite(
            "consumer",
            &consumer.name,
            Some(&consumer.owner),
            &fails(&consumer.name),
        ));
    }
    let failed = all.iter().any(|s| s["failures"].as_u64() != Some(0));
    Ok((Value::Array(all).to_string(), failed))
}

/// One suite as test.yml reports it: five checks, the named ones failing.
fn suite(kind: &str, name: &str, owner: Option<&str>, failed: &[String]) -> Value {
    json!({
        "suite": kind,
        "name": name,
        "owner": owner,
        "tests": 5 + failed.len(),
        "failures": failed.len(),
        "skipped": 0,
        "seconds": 12,
        "failed": failed.iter().take(3).collect::<Vec<_>>(),
    })
}

pub(crate) fn catalog_at(repo: &Path, commit: &str) -> Result<String, HarnessError> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["show", &format!("{commit}:{CATALOG_FILE}")])
        .envs(GIT_ENV)
        .output()
        .map_err(|e| HarnessError::InvalidInput {
            message: format!("stand-in: git show: {e}"),
        })?;
    if !out.status.success() {
        return Err(HarnessError::InvalidInput {
            message: format!(
                "stand-in: no {CATALOG_FILE} at {commit}: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
