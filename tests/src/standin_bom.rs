//! The bill of materials the stand-in's bakes keep, as `buildspecs/bake.yml`
//! keeps a real one at `bom/<ami>.json` in the artifact bucket.
//!
//! The list is made up but real-shaped (`gild.bom/1`, checked by
//! `gild_core::bom::Bom::parse` before it is stored), and it changes from
//! one bake of a family to the next the way a month of patches does: the
//! kernel, OpenSSL and curl move up, a package comes and goes, a Windows image
//! gains a hotfix. So the demo's announcements and `gild diff` show a real
//! diff, and the tests can check the exact one.

use gild_core::bom::{bom_key, Bom};
use gild_core::catalog::{self, Os, CATALOG_FILE};
use serde_json::{json, Value};

use crate::HarnessError;

/// The list of the `nth` bake (0, 1, ...) of `family`. It depends on
/// nothing else (not the commit, whose id changes from run to run), so the
/// fault suite's recorded end states stay the same.
pub fn bill_of_materials(
    family: &str,
    os: Os,
    image: &str,
    nth: u32,
) -> Result<Vec<u8>, HarnessError> {
    let packages = match os {
        Os::Linux => linux(nth),
        Os::Windows => windows(nth),
    };
    let document = json!({
        "schema": gild_core::bom::SCHEMA,
        "family": family,
        "image": image,
        "os": os,
        "collected_at": "2026-12-08T21:00:00Z",
        "packages": packages,
    });
    let bytes = serde_json::to_vec(&document).map_err(|e| HarnessError::InvalidInput {
        message: format!("stand-in bill of materials: {e}"),
    })?;
    // What bake.yml stores passes bom.py's checks; what the stand-in
    // stores passes gild's own, or the demo would show a refusal.
    Bom::parse(&bytes).map_err(|e| HarnessError::InvalidInput {
        message: format!("stand-in bill of materials for {family}: {e}"),
    })?;
    Ok(bytes)
}

fn dpkg(name: &str, version: String) -> Value {
    json!({"kind": "dpkg", "name": name, "version": version, "arch": "amd64"})
}

/// Debian 13-like: each bake a kernel, an OpenSSL and a curl point release
/// later; `jq` is installed in every other bake.
fn linux(nth: u32) -> Vec<Value> {
    let mut packages = vec![
        dpkg("linux-image-amd64", format!("6.12.{}-1", 9 + nth)),
        dpkg("openssl", format!("3.5.{}-1~deb13u1", 1 + nth)),
        dpkg("openssh-server", "1:10.0p1-7".into()),
        dpkg("libc6", "2.41-12".into()),
        dpkg("curl", format!("8.14.{}-2", 1 + nth)),
        dpkg("ca-certificates", "20250419".into()),
    ];
    if nth % 2 == 1 {
        packages.push(dpkg("jq", "1.7.1-6".into()));
    }
    packages
}

/// Windows Server 2022-like: a cumulative update per bake (the newest KB
/// replaces the previous one), IIS features, the .NET runtime moving up.
fn windows(nth: u32) -> Vec<Value> {
    vec![
        json!({"kind": "hotfix", "name": format!("KB50{}", 44281 + nth)}),
        json!({"kind": "hotfix", "name": "KB5041948"}),
        json!({"kind": "feature", "name": "NET-Framework-45-Core"}),
        json!({"kind": "feature", "name": "Web-Server"}),
        json!({"kind": "program", "name": "Microsoft .NET Runtime - 8.0 (x64)", "version": format!("8.0.{}.0", 11 + nth)}),
        json!({"kind": "program", "name": "Amazon SSM Agent", "version": "3.3.1957.0"}),
    ]
}

/// The family's OS, from the catalog at the bake's commit (Linux when the
/// family or the catalog cannot be read: the list is then only less apt).
pub fn os_of(repo: &std::path::Path, commit: &str, family: &str) -> Os {
    crate::suites::catalog_at(repo, commit)
        .ok()
        .and_then(|text| catalog::parse(CATALOG_FILE, &text).ok())
        .and_then(|c| c.get(family).map(|f| f.os))
        .unwrap_or(Os::Linux)
}

/// Stores the list where bake.yml does.
pub async fn keep(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    image: &str,
    body: Vec<u8>,
) -> Result<(), HarnessError> {
    s3.put_object()
        .bucket(bucket)
        .key(bom_key(image))
        .content_type("application/json")
        .body(body.into())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| HarnessError::InvalidInput {
            message: format!(
                "stand-in PutObject {}: {}",
                bom_key(image),
                aws_sdk_s3::error::DisplayErrorContext(e)
            ),
        })
}
