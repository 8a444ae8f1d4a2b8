"""test.yml, run as CodeBuild runs it, against the twin (issue 11, item c).

Real here: the buildspec's commands (launch, wait, send, junit, terminate),
the pinned AWS CLI, moto's EC2. Stand-in: SSM Run Command's far end
(tools/codebuild_ssm_proxy.py): the family script is decoded from the
command the buildspec sent, but not run.
"""

from pathlib import Path

import pytest
from cbtwin import (
    REPO,
    REPORT_GROUP,
    assert_all_terminated,
    baked_image,
    family_script,
    junit,
    suites_exported,
)
from codebuild_ssm_proxy import check_names

SCRIPT = {
    "debian13-base": "images/debian13-base/tests/run.sh",
}


def family_cases(report, family):
    """The report's test cases of the family's own suite (consumers' aside)."""
    return [c for c in report["testCases"] if c["prefix"] == f"gild.{family}"]


def test_linux_image_passes(twin):
    """All checks pass: SUCCEEDED, one JUnit case per check of run.sh in the
    family's suite of the stack's report group (CodeBuild expands the
    variable in the group's name), GILD_TEST_SUITES the only export, and
    the instance launched as test.yml says (IMDSv2, no public address,
    tagged) is terminated."""
    ami = baked_image(twin, "debian13-base")
    result = twin.run(
        "buildspecs/test.yml",
        "debian13-base",
        env={"GILD_AMI_ID": ami},
        expect="SUCCEEDED",
    )
    assert result["reportArns"] == [REPORT_GROUP]
    assert [v["name"] for v in result["exportedEnvironmentVariables"]] == [
        "GILD_TEST_SUITES"
    ]
    assert suites_exported(result)[0]["failures"] == 0
    report, _ = junit(result)
    assert Path(report["files"][0]).name == "junit.xml"
    names = [c["name"] for c in family_cases(report, "debian13-base")]
    assert names == check_names((REPO / SCRIPT["debian13-base"]).read_bytes())
    assert {c["status"] for c in report["testCases"]} == {"SUCCEEDED"}
    (instance,) = twin.instances(result["id"]).values()
    assert instance["ImageId"] == ami
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert "PublicIpAddress" not in instance
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags["gild:purpose"] == "test" and tags["gild:ami"] == ami
    assert_all_terminated(twin, result)


@pytest.fixture
def failing_check():
    """A real check name of win2022-iis's tests (its chain's own and the
    shared template's, composed as test.yml sends them), told to fail."""
    names = check_names(family_script("win2022-iis"))
    assert len(names) > 1, names
    return names[1]


def test_windows_image_fails_and_names_the_test(twin_factory, failing_check):
    """One check fails: FAILED, the JUnit failing case is that check (and
    only that one), and the instance is terminated all the same."""
    twin = twin_factory("--fail", f"win2022-iis={failing_check}")
    ami = baked_image(twin, "win2022-iis")
    result = twin.run(
        "buildspecs/test.yml", "win2022-iis", env={"GILD_AMI_ID": ami}, expect="FAILED"
    )
    report, root = junit(result)
    failed = [c["name"] for c in report["testCases"] if c["status"] == "FAILED"]
    assert failed == [failing_check]
    assert root.find(".//failure") is not None
    phases = {p["phaseType"]: p["phaseStatus"] for p in result["phases"]}
    assert phases["BUILD"] == "FAILED" and phases["POST_BUILD"] == "SUCCEEDED"
    assert_all_terminated(twin, result)


def test_lost_launch_is_still_terminated(twin_factory):
    """RunInstances created the instance but its answer was lost: the build
    fails with a JUnit case of the family's suite saying so, and the
    instance, found by its gild:build-id tag, is terminated anyway."""
    twin = twin_factory("--lose", "RunInstances")
    ami = baked_image(twin, "debian13-base")
    result = twin.run(
        "buildspecs/test.yml",
        "debian13-base",
        env={"GILD_AMI_ID": ami, "AWS_MAX_ATTEMPTS": "1"},
        expect="FAILED",
    )
    phases = {p["phaseType"]: p["phaseStatus"] for p in result["phases"]}
    assert phases["PRE_BUILD"] == "FAILED"
    assert phases["BUILD"] == "FAILED"
    report, _ = junit(result)
    (case,) = family_cases(report, "debian13-base")
    assert case["status"] == "FAILED"
    assert "no test instance was launched" in case["message"]
    assert_all_terminated(twin, result)
