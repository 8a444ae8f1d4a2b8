"""test.yml, run as CodeBuild runs it, against the twin (issue 11, item c).

Real here: the buildspec's commands (launch, wait, send, junit, terminate),
the pinned AWS CLI, moto's EC2. Stand-in: SSM Run Command's far end
(tools/codebuild_ssm_proxy.py): the family script is decoded from the
command the buildspec sent, but not run.
"""

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cbtwin import REPO, REPORT_GROUP
from codebuild_ssm_proxy import check_names

BASE_AMI = {
    "debian13-base": "ami-0d3b1a0c0000de13a",
    "win2022-iis": "ami-0a2022c0000b45e01",
}
SCRIPT = {
    "debian13-base": "images/debian13-base/tests/run.sh",
    "win2022-iis": "images/win2022-iis/tests/run.ps1",
}


def baked_image(twin, family):
    """An image as a bake leaves it (the bake itself is test_bake's job)."""
    ec2 = twin.client("ec2", direct=True)
    builder = ec2.run_instances(
        ImageId=BASE_AMI[family], MinCount=1, MaxCount=1, InstanceType="t3.small"
    )["Instances"][0]["InstanceId"]
    image = ec2.create_image(InstanceId=builder, Name=f"gild-{family}-twin")["ImageId"]
    ec2.terminate_instances(InstanceIds=[builder])
    return image


def junit(result):
    """The report group's JUnit file as CodeBuild collected it."""
    report = result["reports"][REPORT_GROUP]
    (path,) = report["files"]
    return report, ET.parse(path).getroot()


def assert_all_terminated(twin, result):
    """Every instance this build launched is terminated (at least one was)."""
    instances = twin.instances(result["id"])
    assert instances, "the build launched no instance"
    states = {i: v["State"]["Name"] for i, v in instances.items()}
    assert set(states.values()) == {"terminated"}, states


def test_linux_image_passes(twin):
    """All checks pass: SUCCEEDED, one JUnit case per check of run.sh in the
    stack's report group (CodeBuild expands the variable in the group's
    name), nothing exported, and the instance launched as test.yml says
    (IMDSv2, no public address, tagged) is terminated."""
    ami = baked_image(twin, "debian13-base")
    result = twin.run(
        "buildspecs/test.yml",
        "debian13-base",
        env={"GILD_AMI_ID": ami},
        expect="SUCCEEDED",
    )
    assert result["reportArns"] == [REPORT_GROUP]
    assert result["exportedEnvironmentVariables"] == []
    report, _ = junit(result)
    assert Path(report["files"][0]).name == "junit.xml"
    names = [c["name"] for c in report["testCases"]]
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
    """A real check name of win2022-iis's run.ps1, told to fail."""
    names = check_names((REPO / SCRIPT["win2022-iis"]).read_bytes())
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
    fails with a JUnit case saying so, and the instance, found by its
    gild:build-id tag, is terminated anyway."""
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
    (case,) = report["testCases"]
    assert case["status"] == "FAILED"
    assert "no test instance was launched" in case["message"]
    assert_all_terminated(twin, result)
