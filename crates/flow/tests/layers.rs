//! gild-flow is the application layer: it acts through the core's ports and
//! never builds an AWS client itself (the functions' `main.rs` do, through
//! gild-aws).

#[test]
fn gild_flow_depends_on_no_aws_sdk_and_no_adapter() {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).expect("toml");
    for forbidden in ["aws-sdk-", "aws-config", "gild-aws", "lambda_runtime"] {
        assert!(
            !manifest.contains(forbidden),
            "crates/flow/Cargo.toml names {forbidden}"
        );
    }
}
