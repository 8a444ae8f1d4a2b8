//! The crate's invariant, checked: presentation only. No `aws-sdk-*`, no
//! HTTP client or runtime among its dependencies, and no file, network,
//! process or environment access in its code.

use std::path::Path;

#[test]
fn no_aws_sdk_and_no_io() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    for crate_name in ["aws-sdk", "aws-config", "reqwest", "hyper", "tokio"] {
        assert!(
            !manifest.contains(crate_name),
            "gild-slack depends on {crate_name}"
        );
    }
    let mut dirs = vec![root.join("src")];
    let mut files = 0;
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let code = std::fs::read_to_string(&path).expect("source");
            for io in [
                "aws_sdk_",
                "std::fs",
                "std::net",
                "std::env",
                "std::process",
                "tokio",
            ] {
                assert!(!code.contains(io), "{} uses {io}", path.display());
            }
            files += 1;
        }
    }
    assert!(files >= 6, "read {files} files");
}
