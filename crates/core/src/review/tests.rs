use super::*;
use crate::ledger::BakeKey;
use crate::vocabulary::Trigger;

fn pr() -> PullRequest {
    crate::pull_request::sample()
}

fn candidate(family: &str, state: BakeState) -> BakeRecord {
    let mut record = BakeRecord::requested(
        BakeKey::new(family, pr().dedupe_key()),
        Trigger::PullRequest,
        Some(pr().head),
        0,
        0,
        "t",
    );
    record.state = state;
    record.pull_request = Some(pr());
    record
}

const FAILING_CONSUMER: &str = r#"[{"suite":"family","name":"win2022-iis","owner":null,"tests":12,"failures":0,"skipped":0,"seconds":41,"failed":[]},{"suite":"consumer","name":"payments-api","owner":"team-payments","tests":5,"failures":1,"skipped":0,"seconds":20,"failed":["dotnet framework 4.7.2 or later"]}]"#;

#[test]
fn a_failing_consumer_is_named_with_its_owner_in_the_status_and_comment() {
    let mut record = candidate("win2022-iis", BakeState::Failed);
    record.failed_stage = Some(Stage::Test);
    record.image = Some("ami-0123456789abcdef0".into());
    record.suites = Some(FAILING_CONSUMER.into());
    let status = status(&record, None);
    assert_eq!(status.context, "gild/win2022-iis");
    assert_eq!(status.state, StatusState::Failure);
    assert_eq!(
        status.description,
        "payments-api (team-payments) failed: dotnet framework 4.7.2 or later"
    );
    let text = comment(&pr(), &[record], &|_| None);
    assert!(text.starts_with(COMMENT_MARKER), "{text}");
    assert!(
        text.contains("| win2022-iis | ❌ failed | `ami-0123456789abcdef0` |"),
        "{text}"
    );
    assert!(
        text.contains("❌ payments-api (team-payments): 4/5 passed, 20 s"),
        "{text}"
    );
    assert!(
        text.contains("✅ win2022-iis: 12/12 passed, 41 s"),
        "{text}"
    );
}

#[test]
fn statuses_follow_the_candidate_through_its_states() {
    let cases = [
        (BakeState::Requested, StatusState::Pending),
        (BakeState::Baking, StatusState::Pending),
        (BakeState::Testing, StatusState::Pending),
        (BakeState::Validating, StatusState::Pending),
        (BakeState::Reported, StatusState::Success),
        (BakeState::Superseded, StatusState::Error),
    ];
    for (state, expected) in cases {
        assert_eq!(
            status(&candidate("d", state), None).state,
            expected,
            "{state}"
        );
    }
    let mut never = candidate("d", BakeState::Failed);
    never.failed_stage = Some(Stage::Bake);
    never.reason = Some("packer exited 1".into());
    let s = status(&never, Some("https://example.invalid/log".into()));
    assert_eq!(s.state, StatusState::Failure);
    assert_eq!(s.description, "bake failed: packer exited 1");
    assert_eq!(s.target_url.as_deref(), Some("https://example.invalid/log"));
}

#[test]
fn descriptions_fit_github_and_hostile_text_stays_inert() {
    let mut record = candidate("d", BakeState::Failed);
    record.failed_stage = Some(Stage::Test);
    let hostile = format!(
        r#"[{{"suite":"consumer","name":"x|y<script>","owner":"t","tests":1,"failures":1,"failed":["{}` | <img src=x>\n## h"]}}]"#,
        "a".repeat(300)
    );
    record.suites = Some(hostile);
    let s = status(&record, None);
    assert!(
        s.description.chars().count() <= DESCRIPTION_LIMIT,
        "{}",
        s.description
    );
    let text = comment(&pr(), &[record], &|_| None);
    let row = text
        .lines()
        .find(|l| l.starts_with("| d |"))
        .expect("a row");
    assert!(!row.contains("<script>") && !row.contains("<img"), "{row}");
    assert_eq!(
        row.matches(" | ").count(),
        4,
        "table cells stay five: {row}"
    );
    assert!(!text.contains("\n## h"), "{text}");
}

#[test]
fn unreadable_suites_are_not_shown_rather_than_failing() {
    assert!(parse_suites(Some("not json")).is_empty());
    assert!(parse_suites(Some(r#"{"suite":"family"}"#)).is_empty());
    assert!(parse_suites(None).is_empty());
}

#[test]
fn codecommit_approves_only_when_every_candidate_passed() {
    let passed = candidate("a", BakeState::Reported);
    let running = candidate("b", BakeState::Testing);
    let failed = candidate("c", BakeState::Failed);
    assert_eq!(approval(std::slice::from_ref(&passed)), Some(true));
    assert_eq!(approval(&[passed.clone(), running.clone()]), None);
    assert_eq!(approval(&[passed, running, failed]), Some(false));
    assert_eq!(approval(&[]), None);
}

#[test]
fn a_change_that_touches_nothing_says_so() {
    let text = comment(&pr(), &[], &|_| None);
    assert!(text.contains("nothing to validate"), "{text}");
}

#[test]
fn the_comment_says_what_each_candidates_packages_changed() {
    use crate::bom::{self, BomDiff, PackageChanges};
    let mut changed = candidate("debian13-base", BakeState::Reported);
    changed.image = Some("ami-0123456789abcdef0".into());
    changed.packages = Some(PackageChanges::Compared {
        against: "ami-0aaaaaaaaaaaaaaaa".into(),
        summary: bom::Summary {
            named: vec!["openssl 3.0.15-1 → 3.0.16-1".into()],
            upgraded: 14,
            downgraded: 0,
            added: 1,
            removed: 0,
            respelled: 0,
        },
        diff_bytes: bom::json_len(&BomDiff::default()),
    });
    let mut hostile = candidate("debian13-web", BakeState::Reported);
    hostile.packages = Some(PackageChanges::Unavailable {
        reason: format!("bom/x.json names `a|b`<script>{}", "x".repeat(500)),
        against: None,
    });
    let waiting = candidate("win2022-core", BakeState::Baking);
    let text = comment(&pr(), &[changed, hostile, waiting], &|_| None);
    assert!(text.contains("| packages vs promoted |"), "{text}");
    assert!(
        text.contains("| openssl 3.0.15-1 → 3.0.16-1; 14 upgraded, 1 added, 0 removed |"),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.starts_with("| debian13-web"))
        .expect("row");
    assert!(
        row.contains("not compared: bom/x.json names 'a\\|b'&lt;script&gt;"),
        "{row}"
    );
    assert!(row.chars().count() < 400, "the cell is clipped: {row}");
    assert!(
        text.lines()
            .find(|l| l.starts_with("| win2022-core"))
            .is_some_and(|l| l.ends_with("| — |")),
        "{text}"
    );
}
