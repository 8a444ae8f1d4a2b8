"""bake.yml and test.yml under the bake and test roles' own credentials,
against the deployed stack, through the IAM gate (issue 11, items a and c).

One world per module (gated.py): moto, infra/template.yaml deployed into
it, the SSM proxy and the gate. Every build is one tools/twin_run_build.py
call, as the Rust harness makes it; every AWS call of the build (the
buildspec's CLI, the packer stand-in, the artifact upload, the build log) is
judged by the gate against the role the project names. A grant removed from
a copy of the template must fail the build, and the gate's log must name
the refused action.
"""

import json
import re

import pytest
from cbtwin import stop, suites_exported
from codebuild_ssm_proxy import check_names
from gated import (
    BOM_GRANT,
    REPO,
    World,
    assert_all_allowed,
    exported,
    refused,
)

LINUX_CHECKS = check_names((REPO / "images/debian13-base/tests/run.sh").read_bytes())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    procs = []
    try:
        yield World(tmp_path_factory.mktemp("gated"), procs)
    finally:
        stop(procs)


@pytest.fixture(scope="module")
def baked(world):
    """debian13-base baked under BakeRole (shared by the tests that need an
    image gild made)."""
    return world.run("gild-bake", "debian13-base", expect="SUCCEEDED")


def actions(result) -> list[str]:
    return [d["action"] for d in result["decisions"]]


def authorized(result, action) -> list[str]:
    """The actions AWS authorizes for each call of ``action`` (from the log)."""
    return [
        a["action"]
        for d in result["decisions"]
        if d["action"] == action
        for a in d["authorizations"]
    ]


def without(text: str, old: str, new: str = "") -> str:
    """The template with ``old`` (which must be there, once) replaced."""
    assert text.count(old) == 1, old
    return text.replace(old, new)


def test_bake_succeeds_under_the_bake_role(world, baked):
    """bake.yml under BakeRole against the deployed stack: SUCCEEDED, the
    AMI exported, the artifacts where the project says (bake/<build id>/,
    name "/"), every call allowed and none unmapped: the packer stand-in's
    temporary key pair tagged at creation, the launch (with iam:PassRole for
    the instance profile's role and KMS through EC2), the encrypted copy,
    the upload (with the bucket key), the build log."""
    assert_all_allowed(baked, "BakeRole")
    ami = exported(baked, "GILD_AMI_ID")
    assert re.fullmatch(r"ami-[0-9a-f]{8,17}", ami or ""), baked["log"][-3000:]
    assert authorized(baked, "ec2:CreateKeyPair") == [
        "ec2:CreateKeyPair",
        "ec2:CreateTags",
    ]
    launch = authorized(baked, "ec2:RunInstances")
    assert {"ec2:CreateTags", "iam:PassRole", "kms:CreateGrant"} <= set(launch)
    assert "kms:ReEncryptTo" in authorized(baked, "ec2:CopyImage")
    assert "kms:GenerateDataKey" in authorized(baked, "s3:PutObject")
    assert actions(baked)[-2:] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert "ec2:DeleteKeyPair" in actions(baked)
    bucket = world.output("ArtifactBucketName")
    uuid = baked["id"].split(":", 1)[1]
    assert sorted(baked["artifactObjects"]) == [
        f"s3://{bucket}/bake/{uuid}/bom.json",
        f"s3://{bucket}/bake/{uuid}/manifest.json",
    ]
    # The bill of materials, keyed by the AMI, put by the buildspec itself
    # under BakeRole (the grant handed over for the template: gated.py).
    puts = [
        d
        for d in baked["decisions"]
        if d["action"] == "s3:PutObject" and "/bom/" in str(d)
    ]
    assert len(puts) == 1, puts
    body = world.client("s3").get_object(Bucket=bucket, Key=f"bom/{ami}.json")["Body"]
    bom = json.loads(body.read())
    assert (bom["schema"], bom["image"], bom["family"]) == (
        "gild.bom/1",
        ami,
        "debian13-base",
    )
    (image,) = world.client("ec2").describe_images(ImageIds=[ami])["Images"]
    tags = {t["Key"]: t["Value"] for t in image["Tags"]}
    assert tags["gild:build-id"] == baked["id"] and tags["gild:managed"] == "true"
    assert world.client("ec2").describe_key_pairs()["KeyPairs"] == []


def test_test_succeeds_under_the_test_role(world, baked):
    """test.yml under TestRole on the bake's AMI: SUCCEEDED, one passing
    JUnit case per check, SendCommand and the invocation answered by the SSM
    proxy behind the gate, every call allowed and none unmapped."""
    ami = exported(baked, "GILD_AMI_ID")
    result = world.run(
        "gild-test", "debian13-base", env={"GILD_AMI_ID": ami}, expect="SUCCEEDED"
    )
    assert_all_allowed(result, "TestRole")
    (report,) = result["reports"].values()
    family = [
        c["name"] for c in report["testCases"] if c["prefix"] == "gild.debian13-base"
    ]
    assert family == LINUX_CHECKS
    # billing-worker's suite ran too, on the same instance, under the same role.
    assert {c["prefix"] for c in report["testCases"]} == {
        "gild.debian13-base",
        "consumer.billing-worker",
    }
    assert {c["status"] for c in report["testCases"]} == {"SUCCEEDED"}
    assert result["reportArns"] == [world.output("TestReportGroupArn")]
    for action in (
        "ssm:DescribeInstanceInformation",
        "ssm:SendCommand",
        "ec2:TerminateInstances",
    ):
        assert action in actions(result), action
    assert "iam:PassRole" in authorized(result, "ec2:RunInstances")


def test_windows_bake_succeeds_under_the_bake_role(world):
    """win2022-core-dotnet, then its child win2022-iis from its AMI: two
    security groups (the given one and the stack's WinRM group), an RSA key
    pair, the password fetched, no stop (sysprep stops it); the child's
    builder is launched from the parent's (encrypted, self-owned) image."""
    parent = world.run("gild-bake", "win2022-core-dotnet", expect="SUCCEEDED")
    parent_ami = exported(parent, "GILD_AMI_ID")
    result = world.run(
        "gild-bake",
        "win2022-iis",
        env={
            "GILD_SOURCE_AMI": parent_ami,
            "GILD_PARENT_FAMILY": "win2022-core-dotnet",
        },
        expect="SUCCEEDED",
    )
    for build in (parent, result):
        assert_all_allowed(build, "BakeRole")
        assert "ec2:GetPasswordData" in actions(build)
        assert "ec2:StopInstances" not in actions(build)
        launch = next(
            d for d in build["decisions"] if d["action"] == "ec2:RunInstances"
        )
        groups = [r for r in launch["resources"] if ":security-group/" in r]
        assert any(r.endswith(world.output("WinRmSecurityGroupId")) for r in groups), (
            groups
        )
    launch = next(d for d in result["decisions"] if d["action"] == "ec2:RunInstances")
    assert any(r.endswith(f":image/{parent_ami}") for r in launch["resources"]), launch
    assert exported(result, "GILD_BASE_AMI") == parent_ami


def gild_image(world, family="debian13-base"):
    """An image as a bake leaves it (tagged gild:managed at creation), made
    straight in moto: the tests below are about the test build."""
    ec2 = world.client("ec2")
    base = {"debian13-base": "ami-0d3b1a0c0000de13a"}[family]
    builder = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1)["Instances"][0]
    tags = [
        {"Key": "gild:managed", "Value": "true"},
        {"Key": "gild:family", "Value": family},
    ]
    image = ec2.create_image(
        InstanceId=builder["InstanceId"],
        Name=f"gild-{family}-{builder['InstanceId']}",
        TagSpecifications=[{"ResourceType": "image", "Tags": tags}],
    )["ImageId"]
    ec2.terminate_instances(InstanceIds=[builder["InstanceId"]])
    return image


def test_failing_check_fails_the_test_build(world):
    """The SSM proxy fails one check: FAILED, that check (only) is the
    failing JUnit case, every call was still allowed, and the instance is
    terminated under TestRole."""
    check = LINUX_CHECKS[1]
    gate = world.gate("fail", proxy=("--fail", f"debian13-base={check}"))
    ami = gild_image(world)
    result = world.run(
        "gild-test",
        "debian13-base",
        gate=gate,
        env={"GILD_AMI_ID": ami},
        expect="FAILED",
    )
    assert_all_allowed(result, "TestRole")
    (report,) = result["reports"].values()
    assert [c["name"] for c in report["testCases"] if c["status"] == "FAILED"] == [
        check
    ]
    instances = world.client("ec2").describe_instances(
        Filters=[{"Name": "tag:gild:build-id", "Values": [result["id"]]}]
    )["Reservations"]
    states = {i["State"]["Name"] for r in instances for i in r["Instances"]}
    assert states == {"terminated"}


REMOVED = {
    # The tags Packer puts on its temporary key pair at creation are
    # authorized as ec2:CreateTags with ec2:CreateAction=CreateKeyPair
    # (issue 11, defect 4): without that grant CreateKeyPair is refused.
    "bake-key-pair-tags": (
        "gild-bake",
        lambda t: without(
            t,
            t[
                t.index(
                    "              # CreateKeyPair sends TagSpecifications"
                ) : t.index("              # EBS encryption with the stack key")
            ],
        ),
        "ec2:CreateKeyPair",
        "ec2:CreateTags",
        ":key-pair/packer_",
    ),
    # CreateImage authorizes the new image too: the instance alone is not enough.
    "bake-create-image": (
        "gild-bake",
        lambda t: without(
            t,
            "Action: [ec2:CopyImage, ec2:CreateImage, ec2:CreateSnapshot, ec2:RegisterImage]",
            "Action: [ec2:CopyImage, ec2:CreateSnapshot, ec2:RegisterImage]",
        ),
        "ec2:CreateImage",
        "ec2:CreateImage",
        "::image/*",
    ),
    # The bake role's PutObject of the bill of materials (bom/*): without
    # it the bake fails, though the image was made (bake-finished removes it).
    "bake-bill-of-materials": (
        "gild-bake",
        lambda t: without(t, BOM_GRANT),
        "s3:PutObject",
        "s3:PutObject",
        "/bom/ami-",
    ),
    # The test role's SendCommand on gild instances.
    "test-send-command": (
        "gild-test",
        lambda t: without(
            t,
            t[
                t.index("              - Sid: CommandsOnGildInstances") : t.index(
                    "              - Sid: CommandDocuments"
                )
            ],
        ),
        "ssm:SendCommand",
        "ssm:SendCommand",
        ":instance/i-",
    ),
}


@pytest.mark.parametrize("case", sorted(REMOVED))
def test_a_missing_permission_fails_the_build_and_the_gate_names_it(
    world, case, tmp_path
):
    project, edit, action, refused_action, resource = REMOVED[case]
    copy = tmp_path / "template.yaml"
    copy.write_text(edit(world.template.read_text(encoding="utf-8")), encoding="utf-8")
    gate = world.gate(case, template=copy)
    env = {}
    if project == "gild-test":
        env["GILD_AMI_ID"] = gild_image(world)
    result = world.run(project, "debian13-base", gate=gate, env=env, expect="FAILED")
    (denied,) = refused(result)
    assert denied["action"] == action and denied["refused_action"] == refused_action
    assert resource in denied["refused_resource"], denied
    assert f"is not authorized to perform: {refused_action}" in result["log"], result[
        "log"
    ][-3000:]
    assert not [d for d in result["decisions"] if d.get("unmapped")]
    # Whatever was launched before the refusal is cleaned up under the role.
    instances = world.client("ec2").describe_instances(
        Filters=[{"Name": "tag:gild:build-id", "Values": [result["id"]]}]
    )["Reservations"]
    assert {i["State"]["Name"] for r in instances for i in r["Instances"]} <= {
        "terminated"
    }
    if case == "test-send-command":
        # The family's script could not be sent: billing-worker's is not
        # tried (one refusal, above) and its suite is skipped, not failed.
        family, consumer = suites_exported(result)
        assert (family["failures"], family["failed"]) == (1, ["test run"])
        assert (consumer["name"], consumer["skipped"], consumer["failures"]) == (
            "billing-worker",
            1,
            0,
        )
