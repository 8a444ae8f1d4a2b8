//! Parsing, limits, the diff's classification and the summary, over
//! literal documents.

use super::*;

const LINUX: &str = r#"{
  "schema": "gild.bom/1",
  "family": "debian13-base",
  "image": "ami-0123456789abcdef0",
  "os": "linux",
  "collected_at": "2026-12-06T21:00:00Z",
  "packages": [
    {"kind": "dpkg", "name": "openssl", "version": "3.0.15-1~deb12u1", "arch": "amd64"},
    {"kind": "dpkg", "name": "libc6", "version": "2.36-9+deb12u9", "arch": "amd64"},
    {"kind": "dpkg", "name": "libc6", "version": "2.36-9+deb12u9", "arch": "i386"}
  ]
}"#;

const WINDOWS: &str = r#"{
  "schema": "gild.bom/1",
  "family": "win2022-iis",
  "os": "windows",
  "collected_at": "2026-12-06T21:00:00Z",
  "packages": [
    {"kind": "hotfix", "name": "KB5044281"},
    {"kind": "feature", "name": "Web-Server"},
    {"kind": "program", "name": "Microsoft .NET Runtime - 8.0.11 (x64)", "version": "8.0.11.34221"}
  ]
}"#;

fn parse(text: &str) -> Result<Bom, BomError> {
    Bom::parse(text.as_bytes())
}

fn bom(text: &str) -> Bom {
    parse(text).expect("a valid BOM")
}

/// LINUX with its package list replaced.
fn linux(packages: &str) -> String {
    format!(
        r#"{{"schema": "gild.bom/1", "family": "debian13-base", "os": "linux",
            "collected_at": "2026-12-06T21:00:00Z", "packages": [{packages}]}}"#
    )
}

fn dpkg(name: &str, version: &str) -> String {
    format!(r#"{{"kind": "dpkg", "name": "{name}", "version": "{version}", "arch": "amd64"}}"#)
}

fn package_problem(text: &str) -> (usize, PackageProblem) {
    match parse(text) {
        Err(BomError::Package { index, problem, .. }) => (index, problem),
        other => panic!("expected a package problem, got {other:?}"),
    }
}

#[test]
fn a_linux_bom_parses_in_identity_order() {
    let parsed = bom(LINUX);
    assert_eq!(parsed.family(), "debian13-base");
    assert_eq!(parsed.image(), Some("ami-0123456789abcdef0"));
    assert_eq!(parsed.os(), Os::Linux);
    let names: Vec<String> = parsed
        .packages()
        .iter()
        .map(|p| p.identity().to_string())
        .collect();
    assert_eq!(names, ["libc6:amd64", "libc6:i386", "openssl:amd64"]);
}

#[test]
fn a_windows_bom_parses_without_an_image_yet() {
    let parsed = bom(WINDOWS);
    assert_eq!(parsed.image(), None);
    let kinds: Vec<Kind> = parsed.packages().iter().map(Package::kind).collect();
    assert_eq!(kinds, [Kind::Hotfix, Kind::Feature, Kind::Program]);
    let filled = parsed.with_image("ami-0abc1234").expect("an AMI id");
    assert_eq!(filled.image(), Some("ami-0abc1234"));
}

#[test]
fn a_bom_writes_what_it_reads() {
    for text in [LINUX, WINDOWS] {
        let parsed = bom(text);
        let json = parsed.to_json().expect("serialisable");
        assert_eq!(bom(&json), parsed);
        // The same shape: the fields the schema names, packages in order.
        let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(value["schema"], "gild.bom/1");
        assert_eq!(value["collected_at"], "2026-12-06T21:00:00Z");
    }
    let windows: serde_json::Value =
        serde_json::from_str(&bom(WINDOWS).to_json().expect("json")).expect("JSON");
    assert!(
        windows.get("image").is_none(),
        "an unknown image is left out"
    );
    assert_eq!(
        windows["packages"][0],
        serde_json::json!({"kind": "hotfix", "name": "KB5044281"})
    );
}

#[test]
fn the_document_level_rules_name_what_is_wrong() {
    let schema2 = LINUX.replace("gild.bom/1", "gild.bom/2");
    assert_eq!(
        parse(&schema2),
        Err(BomError::UnknownSchema {
            found: "gild.bom/2".into()
        })
    );
    // A later schema's new field is refused for the schema, not the field.
    let later = schema2.replace("\"os\"", "\"kernel\": \"6.12\", \"os\"");
    assert!(matches!(parse(&later), Err(BomError::UnknownSchema { .. })));
    let extra = LINUX.replace("\"os\"", "\"kernel\": \"6.12\", \"os\"");
    assert!(matches!(parse(&extra), Err(BomError::Json(m)) if m.contains("kernel")));
    assert!(matches!(parse("{"), Err(BomError::Json(_))));
    assert!(matches!(parse("[]"), Err(BomError::Json(_))));
    assert!(matches!(
        parse(&LINUX.replace("debian13-base", "Debian 13")),
        Err(BomError::BadFamily { .. })
    ));
    for image in [
        "",
        "ami-123",
        "ami-0123456789ABCDEF0",
        "i-0123456789abcdef0",
    ] {
        let text = LINUX.replace("ami-0123456789abcdef0", image);
        assert!(
            matches!(parse(&text), Err(BomError::BadImage { .. })),
            "{image:?}"
        );
    }
    assert!(matches!(
        parse(&LINUX.replace("\"linux\"", "\"macos\"")),
        Err(BomError::Json(m)) if m.contains("macos")
    ));
    assert!(matches!(
        parse(&LINUX.replace("2026-12-06T21:00:00Z", "yesterday")),
        Err(BomError::Json(_))
    ));
    let big = vec![b' '; MAX_BYTES + 1];
    assert_eq!(
        Bom::parse(&big),
        Err(BomError::TooLarge {
            bytes: MAX_BYTES + 1
        })
    );
}

#[test]
fn at_most_max_packages() {
    let at_limit: Vec<String> = (0..MAX_PACKAGES)
        .map(|i| dpkg(&format!("p{i}"), "1"))
        .collect();
    assert_eq!(
        bom(&linux(&at_limit.join(","))).packages().len(),
        MAX_PACKAGES
    );
    let over = format!("{},{}", at_limit.join(","), dpkg("one-more", "1"));
    assert_eq!(
        parse(&linux(&over)),
        Err(BomError::TooManyPackages {
            count: MAX_PACKAGES + 1
        })
    );
}

#[test]
fn each_package_rule_names_the_package_and_the_problem() {
    let long = "a".repeat(MAX_NAME_CHARS + 1);
    let cases: Vec<(String, PackageProblem)> = vec![
        (
            dpkg(&long, "1"),
            PackageProblem::TooLong {
                field: "name",
                chars: MAX_NAME_CHARS + 1,
                max: MAX_NAME_CHARS,
            },
        ),
        (
            dpkg("openssl", &"1".repeat(MAX_VERSION_CHARS + 1)),
            PackageProblem::TooLong {
                field: "version",
                chars: MAX_VERSION_CHARS + 1,
                max: MAX_VERSION_CHARS,
            },
        ),
        (dpkg("", "1"), PackageProblem::Empty { field: "name" }),
        (dpkg("OpenSSL", "1"), PackageProblem::BadDpkgName),
        (dpkg("x", "1"), PackageProblem::BadDpkgName),
        (
            dpkg("openssl", "1 2"),
            PackageProblem::BadDebianVersion {
                reason: "Invalid version string: 1 2".into(),
            },
        ),
        (
            dpkg("openssl", "1\\n2"),
            PackageProblem::ControlCharacter { field: "version" },
        ),
        (
            dpkg("openssl", " 1"),
            PackageProblem::Whitespace { field: "version" },
        ),
        (
            r#"{"kind": "dpkg", "name": "openssl", "arch": "amd64"}"#.into(),
            PackageProblem::MissingVersion,
        ),
        (
            r#"{"kind": "dpkg", "name": "openssl", "version": "1"}"#.into(),
            PackageProblem::MissingArch,
        ),
        (
            r#"{"kind": "dpkg", "name": "openssl", "version": "1", "arch": "AMD64"}"#.into(),
            PackageProblem::BadArch,
        ),
        (
            r#"{"kind": "hotfix", "name": "KB1"}"#.into(),
            PackageProblem::WrongOs {
                kind: Kind::Hotfix,
                os: Os::Linux,
            },
        ),
    ];
    for (package, expected) in cases {
        let text = linux(&format!("{},{package}", dpkg("zlib1g", "1")));
        assert_eq!(package_problem(&text), (1, expected), "{package}");
    }
    let windows = |package: &str| {
        WINDOWS.replace(
            r#"{"kind": "hotfix", "name": "KB5044281"}"#,
            &format!(r#"{{"kind": "hotfix", "name": "KB5044281"}}, {package}"#),
        )
    };
    let cases = [
        (
            r#"{"kind": "hotfix", "name": "KB1", "version": "1"}"#,
            PackageProblem::UnexpectedVersion,
        ),
        (
            r#"{"kind": "feature", "name": "Web-Ftp", "arch": "amd64"}"#,
            PackageProblem::UnexpectedArch,
        ),
        (
            r#"{"kind": "program", "name": "7-Zip", "version": ""}"#,
            PackageProblem::Empty { field: "version" },
        ),
        (
            r#"{"kind": "program", "name": "Evil\u001b[31m", "version": "1"}"#,
            PackageProblem::ControlCharacter { field: "name" },
        ),
        (
            r#"{"kind": "dpkg", "name": "openssl", "version": "1", "arch": "amd64"}"#,
            PackageProblem::WrongOs {
                kind: Kind::Dpkg,
                os: Os::Windows,
            },
        ),
    ];
    for (package, expected) in cases {
        assert_eq!(
            package_problem(&windows(package)),
            (1, expected),
            "{package}"
        );
    }
    let unknown_kind = windows(r#"{"kind": "msi", "name": "x"}"#);
    assert!(matches!(parse(&unknown_kind), Err(BomError::Json(m)) if m.contains("msi")));
    let unknown_field = windows(r#"{"kind": "hotfix", "name": "KB2", "installed": true}"#);
    assert!(matches!(parse(&unknown_field), Err(BomError::Json(m)) if m.contains("installed")));
}

#[test]
fn an_error_clips_what_it_quotes() {
    let long = "b".repeat(10_000);
    let message = parse(&linux(&dpkg(&long, "1")))
        .expect_err("too long")
        .to_string();
    assert!(message.len() < 300, "{message}");
    assert!(message.starts_with("packages[0] \"bbbb"), "{message}");
}

#[test]
fn one_identity_twice_is_refused_naming_both() {
    let text = linux(&[dpkg("curl", "1"), dpkg("zlib1g", "1"), dpkg("curl", "2")].join(","));
    assert_eq!(
        parse(&text),
        Err(BomError::Duplicate {
            index: 2,
            first: 0,
            kind: Kind::Dpkg,
            identity: "curl:amd64".into(),
        })
    );
    // Another architecture is another identity.
    let text = linux(&format!(
        "{},{}",
        dpkg("curl", "1"),
        dpkg("curl", "1").replace("amd64", "i386")
    ));
    assert_eq!(bom(&text).packages().len(), 2);
}

fn changes(old: &[(&str, &str)], new: &[(&str, &str)]) -> BomDiff {
    let list = |pkgs: &[(&str, &str)]| {
        linux(
            &pkgs
                .iter()
                .map(|(n, v)| dpkg(n, v))
                .collect::<Vec<_>>()
                .join(","),
        )
    };
    diff(&bom(&list(old)), &bom(&list(new)))
}

#[test]
fn the_diff_classifies_by_version_order() {
    let d = changes(
        &[
            ("openssl", "3.0.15-1"),
            ("curl", "8.1-1"),
            ("telnet", "0.17-1"),
            ("zlib1g", "1:1.2.13-1"),
            ("bash", "5.2-1"),
            ("sed", "4.9-1"),
        ],
        &[
            ("openssl", "3.0.16-1"),
            ("curl", "8.0-1"),
            ("jq", "1.7-1"),
            ("zlib1g", "1:1.2.13-1"),
            ("bash", "5.2-1~rc1"),
            ("sed", "0:4.9-1"),
        ],
    );
    let names = |cs: &[VersionChange]| cs.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&d.upgraded), ["openssl"]);
    assert_eq!(names(&d.downgraded), ["bash", "curl"]);
    assert_eq!(names(&d.respelled), ["sed"]);
    assert_eq!(d.added.len(), 1);
    assert_eq!(d.added[0].name(), "jq");
    assert_eq!(d.removed[0].name(), "telnet");
    assert_eq!(d.upgraded[0].old, "3.0.15-1");
    assert_eq!(d.upgraded[0].new, "3.0.16-1");
    assert_eq!(d.changes(), 5);
}

#[test]
fn apply_refuses_a_diff_that_does_not_fit() {
    let old = bom(&linux(&dpkg("curl", "1")));
    let mut d = changes(&[("curl", "1")], &[("curl", "2")]);
    d.upgraded[0].old = "0".into();
    assert!(matches!(
        apply(&old, &d),
        Err(ApplyError::VersionMismatch { .. })
    ));
    let d = changes(&[], &[("curl", "1")]);
    assert!(matches!(
        apply(&old, &d),
        Err(ApplyError::AlreadyInstalled { .. })
    ));
    let d = changes(&[("jq", "1")], &[]);
    assert!(matches!(
        apply(&old, &d),
        Err(ApplyError::NotInstalled { .. })
    ));
}

#[test]
fn the_diff_is_json_and_its_length_is_counted_exactly() {
    let d = changes(&[("openssl", "3.0.15-1")], &[("openssl", "3.0.16-1")]);
    let json = serde_json::to_string(&d).expect("json");
    assert_eq!(
        json,
        r#"{"upgraded":[{"kind":"dpkg","name":"openssl","arch":"amd64","old":"3.0.15-1","new":"3.0.16-1"}],"downgraded":[],"added":[],"removed":[],"respelled":[]}"#
    );
    assert_eq!(json_len(&d), json.len());
    let back: BomDiff = serde_json::from_str(&json).expect("reads back");
    assert_eq!(back, d);
}

#[test]
fn the_summary_names_security_changes_first() {
    let old = [
        ("aaa-tool", "1.0-1"),
        ("linux-image-amd64", "6.12.9-1"),
        ("openssl", "3.0.15-1"),
        ("libssl3", "3.0.15-1"),
        ("vim", "9.0-1"),
        ("telnet", "0.17-1"),
    ];
    let new = [
        ("aaa-tool", "1.1-1"),
        ("linux-image-amd64", "6.12.12-1"),
        ("openssl", "3.0.16-1"),
        ("libssl3", "3.0.16-1"),
        ("vim", "9.1-1"),
        ("jq", "1.7-1"),
    ];
    let d = changes(&old, &new);
    let summary = summarize(&d, 3);
    assert_eq!(
        summary.to_string(),
        "linux-image-amd64 6.12.9-1 → 6.12.12-1, libssl3 3.0.15-1 → 3.0.16-1, \
         openssl 3.0.15-1 → 3.0.16-1; 5 upgraded, 1 added, 1 removed"
    );
    let all = summarize(&d, 100).to_string();
    assert!(
        all.starts_with("linux-image-amd64 6.12.9-1 → 6.12.12-1, libssl3 3.0.15-1 → 3.0.16-1, openssl 3.0.15-1 → 3.0.16-1, aaa-tool 1.0-1 → 1.1-1, vim 9.0-1 → 9.1-1, jq 1.7-1 (added), telnet 0.17-1 (removed);"),
        "{all}"
    );
    assert_eq!(
        summarize(&d, 0).to_string(),
        "5 upgraded, 1 added, 1 removed"
    );
}

#[test]
fn the_summary_orders_windows_concerns_and_counts_downgrades() {
    let old = bom(WINDOWS);
    let new = bom(&WINDOWS
        .replace("KB5044281", "KB5046616")
        .replace("8.0.11.34221", "8.0.10.1")
        .replace(
            r#"{"kind": "feature", "name": "Web-Server"}"#,
            r#"{"kind": "feature", "name": "Web-Server"}, {"kind": "feature", "name": "Telnet-Client"}"#,
        ));
    let summary = summarize(&diff(&old, &new), 10);
    assert_eq!(
        summary.to_string(),
        "Microsoft .NET Runtime - 8.0.11 (x64) 8.0.11.34221 → 8.0.10.1 (downgraded), \
         KB5046616 (added), KB5044281 (removed), Telnet-Client (added); \
         0 upgraded, 1 downgraded, 2 added, 1 removed"
    );
}

#[test]
fn an_empty_diff_says_so() {
    let same = bom(LINUX);
    let d = diff(&same, &same);
    assert!(d.is_empty());
    assert_eq!(summarize(&d, 5).to_string(), "no package changes");
    assert_eq!(lines(&d), ["no package changes"]);
    let respelled = changes(&[("sed", "4.9")], &[("sed", "4.9-0")]);
    assert!(!respelled.is_empty());
    assert_eq!(
        summarize(&respelled, 5).to_string(),
        "no package changes (1 respelled)"
    );
}

#[test]
fn two_architectures_changed_alike_are_named_once() {
    let old = bom(LINUX);
    let new = bom(&LINUX.replace("2.36-9+deb12u9", "2.36-9+deb12u10"));
    let summary = summarize(&diff(&old, &new), 5);
    assert_eq!(
        summary.to_string(),
        "libc6 2.36-9+deb12u9 → 2.36-9+deb12u10; 2 upgraded, 0 added, 0 removed"
    );
}

#[test]
fn lines_are_an_aligned_table() {
    let d = changes(
        &[("openssl", "3.0.15-1"), ("telnet", "0.17-1")],
        &[("openssl", "3.0.16-1"), ("jq", "1.7-1")],
    );
    assert_eq!(
        lines(&d),
        [
            "upgraded  dpkg  openssl:amd64  3.0.15-1 → 3.0.16-1",
            "added     dpkg  jq:amd64       1.7-1",
            "removed   dpkg  telnet:amd64   0.17-1",
        ]
    );
}

#[test]
fn a_program_without_a_version_is_installed_and_gaining_one_is_a_replacement() {
    let without = WINDOWS.replace(r#", "version": "8.0.11.34221""#, "");
    let old = bom(&without);
    let program = old
        .packages()
        .iter()
        .find(|p| p.kind() == Kind::Program)
        .expect("the program");
    assert_eq!(program.version(), None);
    let new = bom(WINDOWS);
    let d = diff(&old, &new);
    assert_eq!(d.removed.len(), 1);
    assert_eq!(d.added.len(), 1);
    assert_eq!(d.added[0].version(), Some("8.0.11.34221"));
    assert_eq!(apply(&old, &d).as_deref(), Ok(new.packages()));
}
