"""bake.yml, run as CodeBuild runs it, against the twin (issue 11, item c).

What is real here: the buildspec's own commands, the pinned AWS CLI, moto's
EC2/S3, the Ansible collection check. Stand-ins: Packer (its EC2 work only,
standins/bin/packer) and the three install scripts that download.
"""

import json
import re

import pytest
from cbtwin import BUCKET, exported

BASE_AMI = {
    "debian13-base": "ami-0d3b1a0c0000de13a",
    "win2022-iis": "ami-0a2022c0000b45e01",
}


def tags(resource):
    """EC2 Tags as a dict."""
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


@pytest.mark.parametrize("family", ["debian13-base", "win2022-iis"])
def test_bake_exports_the_image_packer_made(twin, family):
    """GILD_AMI_ID is the image made from the template's source AMI, tagged
    and encrypted as the template says; the builder is gone; the manifest
    and the package list are in the artifact bucket (defect 9)."""
    result = twin.run("buildspecs/bake.yml", family, expect="SUCCEEDED")
    ami = exported(result, "GILD_AMI_ID")
    assert re.fullmatch(r"ami-[0-9a-f]{8,17}", ami or ""), result["log"][-3000:]
    assert exported(result, "GILD_BASE_AMI") == BASE_AMI[family]
    assert [p["phaseType"] for p in result["phases"]] == [
        "INSTALL", "PRE_BUILD", "BUILD", "POST_BUILD", "UPLOAD_ARTIFACTS",
    ]  # fmt: skip

    ec2 = twin.client("ec2")
    (image,) = ec2.describe_images(ImageIds=[ami])["Images"]
    image_tags = tags(image)
    assert image_tags["gild:build-id"] == result["id"]
    assert image_tags["gild:family"] == family
    assert image_tags["gild:base-ami"] == BASE_AMI[family]
    assert image["Name"].startswith(f"gild-{family}-")
    snapshot = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    (snap,) = ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"]
    assert tags(snap)["gild:build-id"] == result["id"]
    # moto cannot encrypt an AMI's snapshot (each AMI gets a fresh plain
    # volume), so the encryption is checked in the calls Packer made: the
    # encrypted copy with the stack's key (encrypt_boot + kms_key_id).
    calls = [c for c in twin.standin_calls() if "call" in c]
    (copy,) = [c["params"] for c in calls if c["call"] == "copy_image"]
    assert copy["Encrypted"] is True
    assert copy["KmsKeyId"] == twin.kms
    (launch,) = [c["params"] for c in calls if c["call"] == "run_instances"]
    (volume,) = launch["BlockDeviceMappings"]
    assert volume["Ebs"]["Encrypted"] is True
    assert volume["Ebs"]["KmsKeyId"] == twin.kms
    # The templates leave associate_public_ip_address unset: the plugin then
    # passes the subnet, whose own setting decides about a public address.
    assert launch["SubnetId"] == twin.subnet
    assert twin.sg in launch["SecurityGroupIds"]
    assert launch["IamInstanceProfile"] == {"Name": twin.profile}

    # The builder: launched from the base image with IMDSv2 required, and
    # terminated. Exactly one, so nothing leaked.
    (builder,) = twin.instances(result["id"]).values()
    assert builder["ImageId"] == BASE_AMI[family]
    assert builder["MetadataOptions"]["HttpTokens"] == "required"
    assert builder["State"]["Name"] == "terminated"

    keys = sorted(o.split(f"s3://{BUCKET}/", 1)[1] for o in result["artifactObjects"])
    uuid = result["id"].split(":", 1)[1]
    assert keys == [
        f"bake/{uuid}/gild-bake/manifest.json",
        f"bake/{uuid}/gild-bake/packages.txt",
    ]
    body = twin.client("s3").get_object(Bucket=BUCKET, Key=keys[0])["Body"]
    manifest = json.loads(body.read())
    (build,) = manifest["builds"]
    assert build["artifact_id"] == f"us-east-1:{ami}"
    assert build["packer_run_uuid"] == manifest["last_run_uuid"]
    assert build["custom_data"]["source_ami"] == BASE_AMI[family]
    assert build["custom_data"]["build_id"] == result["id"]


def test_failed_packer_run_exports_nothing(twin):
    """Packer fails after launching: the builder is cleaned up, no image,
    GILD_AMI_ID empty (as CodeBuild reports an unset exported variable), the
    build FAILED, post_build still ran, and no artifact matched."""
    result = twin.run(
        "buildspecs/bake.yml",
        "debian13-base",
        env={"GILD_PACKER_STANDIN_FAIL": "provision"},
        expect="FAILED",
    )
    assert not exported(result, "GILD_AMI_ID")
    phases = {p["phaseType"]: p["phaseStatus"] for p in result["phases"]}
    assert phases["BUILD"] == "FAILED"
    assert phases["POST_BUILD"] == "SUCCEEDED"
    assert phases["UPLOAD_ARTIFACTS"] == "FAILED"
    assert result["artifactObjects"] == []
    assert "succeeding=0" in result["log"]
    for instance in twin.instances(result["id"]).values():
        assert instance["State"]["Name"] == "terminated"
    images = twin.client("ec2").describe_images(
        Owners=["self"],
        Filters=[{"Name": "tag:gild:build-id", "Values": [result["id"]]}],
    )["Images"]
    assert images == []
