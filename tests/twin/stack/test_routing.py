"""Events routed by the template's own rules, matched by EventBridge's matcher.

The stack is deployed into moto; each rule's EventPattern (as the template
defines it, resolved for this deployment) is tried against every sample
event through moto over the wire (routing.py: PutEvents on probe rules with the
same patterns, since moto's TestEventPattern is a stub). Which functions receive which
event is written here from README.md/ARCHITECTURE.md and what each
function reads (crates/core/src/event.rs): pushes to the tracked branch of
the images repository and `gild build` requests go to the trigger; a bake's
or a test's end to bake-finished or test-finished; every build's end in the
account (a freed CodeBuild slot) to the trigger as well; everything else
nowhere. A rule that would miss (or catch) a real event fails here.

moto's matcher is itself checked against EventBridge's documented semantics
(test_matcher_agrees_with_the_docs) before its answers are trusted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from twin.stack import deploy
from twin.stack.conftest import NETWORK, REPO
from twin.stack.moto_server import moto_server
from twin.stack.routing import Router

ACCOUNT = "111122223333"  # the sample events' account
REGION = "us-east-1"
PARAMS = {**NETWORK, "RepositoryName": "platform-images"}

EVENT_DIRS = [
    REPO / "tests" / "events",
    REPO.parent / "shared" / "events",
    Path(__file__).parent / "events",
]

BOTH_BAKE = {"BakeFinished", "Trigger"}
BOTH_TEST = {"TestFinished", "Trigger"}
EXPECTED: dict[str, set[str]] = {
    "codecommit-push.json": {"Trigger"},
    "codecommit-branch-created.json": {"Trigger"},
    "codecommit-branch-deleted.json": {"Trigger"},
    "codecommit-other-branch.json": set(),
    "codecommit-tag.json": set(),
    "codecommit-malformed.json": set(),
    "codecommit-unreferenced-merge-commit.json": set(),
    "codecommit-other-repository.json": set(),
    # Pull requests, told by source and detail.event whatever the
    # detail-type's spelling (PullRequestRule).
    "codecommit-pull-request-opened.json": {"Trigger"},
    # The shared sample is from another account: no rule of this stack's.
    "codecommit-pull-request-created.json": set(),
    "codecommit-pull-request-source-updated.json": {"Trigger"},
    "codecommit-pull-request-closed.json": {"Trigger"},
    "codecommit-pull-request-reopened.json": {"Trigger"},
    "codecommit-pull-request-merged.json": {"Trigger"},
    "codecommit-pull-request-detail-type-variant.json": {"Trigger"},
    "manual-build.json": {"Trigger"},
    "manual-build-all.json": {"Trigger"},
    "manual-build-unknown.json": {"Trigger"},
    "codebuild-bake-succeeded.json": BOTH_BAKE,
    "codebuild-bake-succeeded-no-export.json": BOTH_BAKE,
    "codebuild-bake-failed.json": BOTH_BAKE,
    "codebuild-bake-stopped.json": BOTH_BAKE,
    "codebuild-bake-timed-out.json": BOTH_BAKE,
    "codebuild-bake-fault.json": BOTH_BAKE,
    "codebuild-bake-in-progress.json": set(),
    "codebuild-test-succeeded.json": BOTH_TEST,
    "codebuild-test-failed.json": BOTH_TEST,
    "codebuild-test-stopped.json": BOTH_TEST,
    "codebuild-test-in-progress.json": set(),
    "codebuild-other-succeeded.json": {"Trigger"},
    "codebuild-other-in-progress.json": set(),
    # A scheduled event reaches its rule's target without a pattern; no
    # pattern rule may catch it as well (test_schedule_reaches_the_trigger).
    "schedule.json": set(),
}


def sample_events() -> list[Path]:
    found = []
    for folder in EVENT_DIRS:
        for path in sorted(folder.glob("*.json")):
            if "detail-type" in json.loads(path.read_text()):
                found.append(path)
    return found


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server({"MOTO_ACCOUNT_ID": ACCOUNT}) as url:
        yield url


@pytest.fixture(scope="module")
def stack(endpoint: str, template_path: Path) -> deploy.Deployment:
    return deploy.deploy(
        endpoint, template_path, PARAMS, region=REGION, account=ACCOUNT
    )


@pytest.fixture(scope="module")
def router(endpoint: str, stack: deploy.Deployment) -> Router:
    patterns = {
        lid: r["EventPattern"] for lid, r in stack.rules.items() if r["EventPattern"]
    }
    return Router(endpoint, REGION, patterns)


@pytest.fixture(scope="module")
def doc_router(endpoint: str) -> Router:
    return Router(endpoint, REGION, {case: pattern for case, pattern, _ in DOCUMENTED})


def routed_to(router: Router, result: deploy.Deployment, event: dict) -> set[str]:
    out: set[str] = set()
    for lid in router.matched(event):
        if result.rules[lid]["State"] == "ENABLED":
            out.update(result.rules[lid]["Targets"])
    return out


def test_every_sample_has_an_expectation() -> None:
    names = {p.name for p in sample_events()}
    assert names <= set(EXPECTED), names - set(EXPECTED)
    assert set(EXPECTED) <= names, set(EXPECTED) - names


@pytest.mark.parametrize(
    "path", sample_events(), ids=lambda p: f"{p.parent.parent.name}/{p.name}"
)
def test_event_reaches_the_right_functions(
    router: Router, stack: deploy.Deployment, path: Path
) -> None:
    event = json.loads(path.read_text())
    assert routed_to(router, stack, event) == EXPECTED[path.name]


def test_moto_stored_the_template_patterns(
    endpoint: str, stack: deploy.Deployment
) -> None:
    result = stack
    events = deploy.clients(endpoint, REGION)["events"]
    for lid, rule in result.rules.items():
        stored = events.describe_rule(Name=rule["Name"])
        if rule["EventPattern"] is not None:
            assert json.loads(stored["EventPattern"]) == rule["EventPattern"], lid
        targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        assert len(targets) == len(rule["Targets"]), lid


def test_schedule_reaches_the_trigger(stack: deploy.Deployment) -> None:
    """The sample scheduled event names the rule the stack creates."""
    result = stack
    event = json.loads((REPO / "tests" / "events" / "schedule.json").read_text())
    schedules = {lid: r for lid, r in result.rules.items() if r["ScheduleExpression"]}
    arns = {
        f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{r['Name']}": r
        for r in schedules.values()
    }
    assert event["resources"][0] in arns
    assert arns[event["resources"][0]]["Targets"] == ["Trigger"]


# EventBridge's content filtering, as its user guide documents it ("Content
# filtering in Amazon EventBridge event patterns", "Event patterns" and
# "Comparison operators"): the answer each case must give.
EVENT = {
    "id": "1",
    "account": ACCOUNT,
    "source": "aws.codebuild",
    "detail-type": "CodeBuild Build State Change",
    "time": "2026-11-10T04:00:00Z",
    "region": REGION,
    "resources": [
        "arn:aws:codebuild:us-east-1:111122223333:build/gild-bake:1",
        "other",
    ],
    "detail": {
        "project-name": "gild-bake",
        "build-status": "FAILED",
        "n": 42,
        "empty": None,
    },
}
DOCUMENTED = [
    ("exact value", {"detail": {"project-name": ["gild-bake"]}}, True),
    ("values are case-sensitive", {"detail": {"project-name": ["GILD-BAKE"]}}, False),
    ("array field: any element matches", {"resources": ["other"]}, True),
    ("prefix", {"detail": {"project-name": [{"prefix": "gild-"}]}}, True),
    ("prefix miss", {"detail": {"project-name": [{"prefix": "web-"}]}}, False),
    ("suffix", {"detail": {"project-name": [{"suffix": "-bake"}]}}, True),
    (
        "anything-but",
        {"detail": {"build-status": [{"anything-but": ["SUCCEEDED"]}]}},
        True,
    ),
    (
        "anything-but miss",
        {"detail": {"build-status": [{"anything-but": ["FAILED"]}]}},
        False,
    ),
    ("numeric range", {"detail": {"n": [{"numeric": [">", 0, "<=", 42]}]}}, True),
    ("numeric miss", {"detail": {"n": [{"numeric": [">", 42]}]}}, False),
    ("exists", {"detail": {"project-name": [{"exists": True}]}}, True),
    (
        "exists false on a present field",
        {"detail": {"project-name": [{"exists": False}]}},
        False,
    ),
    (
        "anything-but prefix",
        {"detail": {"project-name": [{"anything-but": {"prefix": "gild-"}}]}},
        False,
    ),
    (
        "exists false on a missing field",
        {"detail": {"missing": [{"exists": False}]}},
        True,
    ),
    ("missing field never matches a value", {"detail": {"missing": ["x"]}}, False),
    ("null value", {"detail": {"empty": [None]}}, True),
    ("wildcard", {"detail": {"project-name": [{"wildcard": "gild-*"}]}}, True),
    (
        "equals-ignore-case",
        {"detail": {"project-name": [{"equals-ignore-case": "GILD-BAKE"}]}},
        True,
    ),
    (
        "all fields must match",
        {"source": ["aws.codebuild"], "detail": {"build-status": ["SUCCEEDED"]}},
        False,
    ),
    (
        "$or",
        {"$or": [{"detail": {"build-status": ["SUCCEEDED"]}}, {"detail": {"n": [42]}}]},
        True,
    ),
]


@pytest.mark.parametrize(
    ("case", "pattern", "expected"), DOCUMENTED, ids=[c[0] for c in DOCUMENTED]
)
def test_matcher_agrees_with_the_docs(
    doc_router: Router, case: str, pattern: dict, expected: bool
) -> None:
    assert (case in doc_router.matched(EVENT)) is expected, case


@pytest.mark.xfail(
    strict=True, reason="moto 5.2.5: TestEventPattern is a stub (no Result)"
)
def test_moto_test_event_pattern(endpoint: str) -> None:
    """When moto implements TestEventPattern, this turns XPASS: use it then."""
    events = deploy.clients(endpoint, REGION)["events"]
    answer = events.test_event_pattern(
        EventPattern=json.dumps({"source": ["aws.codebuild"]}), Event=json.dumps(EVENT)
    )
    assert answer["Result"] is True
