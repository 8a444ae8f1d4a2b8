use super::*;

const GOOD: &str = r#"
[families.debian12-base]
path = "images/debian12-base/"
os = "linux"
roles = ["baseline", "cw-agent"]

[families.win2022-core]
path = "images/win2022-core"
os = "windows"
"#;

#[test]
fn parses_families_and_normalises_paths() {
    let catalog = parse(CATALOG_FILE, GOOD).expect("valid catalog");
    assert_eq!(catalog.names(), vec!["debian12-base", "win2022-core"]);
    let debian = catalog.get("debian12-base").expect("family present");
    assert_eq!(debian.path, "images/debian12-base");
    assert_eq!(debian.roles, vec!["baseline", "cw-agent"]);
    assert_eq!(catalog.get("win2022-core").map(|f| f.os), Some(Os::Windows));
    assert!(catalog
        .get("win2022-core")
        .is_some_and(|f| f.roles.is_empty()));
}

fn with_consumer(entry: &str) -> String {
    format!("{GOOD}\n[consumers.payments-api]\n{entry}")
}

#[test]
fn consumers_name_their_families_tests_and_owner() {
    let text = with_consumer(
        "families = [\"win2022-core\"]\ntests = \"consumers/payments-api/\"\nowner = \"team-payments\"\n",
    );
    let catalog = parse(CATALOG_FILE, &text).expect("valid catalog");
    let users: Vec<&str> = catalog
        .consumers_of("win2022-core")
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(users, vec!["payments-api"]);
    assert_eq!(catalog.consumers_of("debian12-base").count(), 0);
    let consumer = &catalog.consumers["payments-api"];
    assert_eq!(consumer.tests, "consumers/payments-api");
    assert!(consumer.owns_path("consumers/payments-api/run.ps1"));
    assert!(!consumer.owns_path("consumers/payments-api2/run.ps1"));
}

#[test]
fn a_bad_consumer_is_refused_at_its_line() {
    let cases = [
        ("families = [\"nope\"]\ntests = \"consumers/p\"\nowner = \"t\"\n", "`nope` is not declared"),
        ("families = []\ntests = \"consumers/p\"\nowner = \"t\"\n", "names no family"),
        ("families = [\"win2022-core\", \"win2022-core\"]\ntests = \"consumers/p\"\nowner = \"t\"\n", "listed twice"),
        ("families = [\"win2022-core\"]\ntests = \"consumers/$(touch /tmp/p)\"\nowner = \"t\"\n", "relative folder"),
        ("families = [\"win2022-core\"]\ntests = \"images/win2022-core/tests\"\nowner = \"t\"\n", "overlap"),
        ("families = [\"win2022-core\"]\ntests = \"consumers/p\"\nowner = \"<b>x</b>\"\n", "owner"),
        ("families = [\"win2022-core\"]\ntests = \"consumers/p\"\n", "owner"),
        ("families = [\"win2022-core\"]\ntests = \"consumers/p\"\nowner = \"   \"\n", "owner"),
        ("families = [\"win2022-core\"]\ntests = \"consumers/p\"\nowner = \"t\"\nteam = \"x\"\n", "team"),
    ];
    for (entry, why) in cases {
        let text = with_consumer(entry);
        let err = parse(CATALOG_FILE, &text).expect_err(entry);
        assert!(err.problem.contains(why), "{entry}: {err}");
        assert!(err.line >= 11, "{entry}: {err} names a line of the entry");
    }
}

#[test]
fn unknown_key_names_key_and_line() {
    let text = "[families.a]\npath = \"images/a\"\nos = \"linux\"\nparents = \"b\"\n";
    let err = parse("gild.toml", text).expect_err("unknown key");
    assert_eq!(err.line, 4, "{err}");
    assert!(err.problem.contains("parents"), "{err}");
    assert!(err.to_string().starts_with("gild.toml:4:"), "{err}");
}

#[test]
fn bad_os_names_line() {
    let text = "[families.a]\npath = \"images/a\"\nos = \"plan9\"\n";
    let err = parse("gild.toml", text).expect_err("bad os");
    assert_eq!(err.line, 3, "{err}");
    assert!(err.problem.contains("plan9"), "{err}");
}

#[test]
fn missing_path_is_an_error() {
    let err = parse("gild.toml", "[families.a]\nos = \"linux\"\n").expect_err("no path");
    assert!(err.problem.contains("path"), "{err}");
}

#[test]
fn escaping_path_is_refused() {
    let text = "[families.a]\npath = \"../etc\"\nos = \"linux\"\n";
    let err = parse("gild.toml", text).expect_err("escaping path");
    assert_eq!(err.line, 2);
    assert!(err.problem.contains("relative"), "{err}");
}

#[test]
fn bad_family_name_and_duplicate_role() {
    let err = parse(
        "g",
        "[families.\"Bad Name\"]\npath = \"a\"\nos = \"linux\"\n",
    )
    .expect_err("bad name");
    assert_eq!(err.line, 1);
    let err = parse(
        "g",
        "[families.a]\npath = \"a\"\nos = \"linux\"\nroles = [\"x\", \"x\"]\n",
    )
    .expect_err("dup role");
    assert_eq!(err.line, 4);
    assert!(err.problem.contains("twice"));
}

#[test]
fn underscore_in_a_family_name_is_refused_as_the_buildspecs_do() {
    let err = parse("g", "[families.web_base]\npath = \"a\"\nos = \"linux\"\n")
        .expect_err("`_` is not in the family-name rule");
    assert_eq!(err.line, 1);
    assert!(err.problem.contains("a-z, 0-9 and `-`"), "{err}");
}

#[test]
fn shell_in_a_path_is_refused() {
    for path in [
        "images/x$(touch /tmp/p)",
        "images/x`id`",
        "images/a b",
        "images/x\\nid",
        "images/x'y",
        "images/x\\\"y",
        "images/x;id",
    ] {
        let text = format!("[families.a]\npath = \"{path}\"\nos = \"linux\"\n");
        let err = parse("g", &text).expect_err(path);
        assert_eq!(err.line, 2, "{path}: {err}");
    }
    assert!(parse(
        "g",
        "[families.a]\npath = \"images/A_b-1.x\"\nos = \"linux\"\n"
    )
    .is_ok());
}

#[test]
fn syntax_error_names_line() {
    let err = parse("gild.toml", "[families.a]\npath = \"a\nos = \"linux\"\n").expect_err("syntax");
    assert_eq!(err.line, 2, "{err}");
}

#[test]
fn empty_catalog_is_refused_and_unknown_top_level_key_too() {
    assert!(parse("g", "").is_err());
    let err = parse(
        "g",
        "version = 2\n[families.a]\npath = \"a\"\nos = \"linux\"\n",
    )
    .expect_err("top-level key");
    assert_eq!(err.line, 1);
}

#[test]
fn owns_path_is_folder_aware() {
    let catalog = parse("g", GOOD).expect("valid");
    let debian = catalog.get("debian12-base").expect("present");
    assert!(debian.owns_path("images/debian12-base/template.pkr.hcl"));
    assert!(debian.owns_path("images/debian12-base"));
    assert!(!debian.owns_path("images/debian12-base-extra/x"));
    assert!(!debian.owns_path("images/debian12"));
}
