"""bake.yml, run as CodeBuild runs it, against the twin (issue 11, item c).

What is real here: the buildspec's own commands, the pinned AWS CLI, moto's
EC2/S3, the Ansible collection check. Stand-ins: Packer (its EC2 work only,
standins/bin/packer, which also makes up the builder's bill of materials
from the source commit) and the three install scripts that download.

Issue 14: a layered family (win2022-iis, child of win2022-core-dotnet) is
baked from the AMI in GILD_SOURCE_AMI, held by the template's filter to an
image of this account named for its parent; without one it stops in
install, and a root family refuses one. Every bake keeps its bill of
materials at bom/<ami>.json, which differs between two commits.
"""

import json
import re

import pytest
from cbtwin import BUCKET, exported

BASE_AMI = {
    "debian13-base": "ami-0d3b1a0c0000de13a",
    "win2022-core-dotnet": "ami-0a2022c0000b45e01",
}
OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def tags(resource):
    """EC2 Tags as a dict."""
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


@pytest.mark.parametrize("family", ["debian13-base", "win2022-core-dotnet"])
def test_bake_exports_the_image_packer_made(twin, family):
    """GILD_AMI_ID is the image made from the template's source AMI, tagged
    and encrypted as the template says; the builder is gone; the manifest
    and the bill of materials are in the artifact bucket (defect 9), the
    latter also at bom/<ami>.json."""
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
        f"bake/{uuid}/gild-bake/bom.json",
        f"bake/{uuid}/gild-bake/manifest.json",
    ]
    body = twin.client("s3").get_object(Bucket=BUCKET, Key=keys[1])["Body"]
    manifest = json.loads(body.read())
    (build,) = manifest["builds"]
    assert build["artifact_id"] == f"us-east-1:{ami}"
    assert build["packer_run_uuid"] == manifest["last_run_uuid"]
    assert build["custom_data"]["source_ami"] == BASE_AMI[family]
    assert build["custom_data"]["build_id"] == result["id"]

    bom = stored_bom(twin, ami)
    assert bom == json.loads(
        twin.client("s3").get_object(Bucket=BUCKET, Key=keys[0])["Body"].read()
    )
    assert (bom["schema"], bom["family"], bom["image"]) == ("gild.bom/1", family, ami)
    kinds = {p["kind"] for p in bom["packages"]}
    if family == "debian13-base":
        assert bom["os"] == "linux" and kinds == {"dpkg"}
        assert all(
            p.keys() == {"kind", "name", "version", "arch"} for p in bom["packages"]
        )
    else:
        assert bom["os"] == "windows" and kinds == {"hotfix", "feature", "program"}


def stored_bom(twin, ami):
    """The bill of materials bake.yml kept for an image."""
    body = twin.client("s3").get_object(Bucket=BUCKET, Key=f"bom/{ami}.json")["Body"]
    return json.loads(body.read())


def test_bills_of_materials_differ_between_commits_and_not_within_one(twin):
    """Two bakes of one commit list the same packages; a bake of another
    commit lists other versions (the stand-in draws them from the commit),
    so the diff of two images has something to show."""
    bakes = [
        twin.run("buildspecs/bake.yml", "debian13-base", env=env, expect="SUCCEEDED")
        for env in ({}, {}, {"GILD_SOURCE_COMMIT": OTHER_COMMIT})
    ]
    boms = [stored_bom(twin, exported(b, "GILD_AMI_ID")) for b in bakes]
    assert len({b["image"] for b in boms}) == 3
    assert boms[0]["packages"] == boms[1]["packages"]
    assert boms[0]["packages"] != boms[2]["packages"]
    names = [{p["name"] for p in b["packages"]} for b in boms]
    assert names[0] & names[2], "the same image family: mostly the same packages"


def test_layered_family_bakes_from_its_parents_image(twin):
    """win2022-iis from win2022-core-dotnet's image: the builder is launched
    from GILD_SOURCE_AMI, found with one DescribeImages holding the AMI and
    the filter (this account, named for the parent), tagged gild:base-ami
    with it, GILD_BASE_AMI is the parent's AMI."""
    parent = twin.run("buildspecs/bake.yml", "win2022-core-dotnet", expect="SUCCEEDED")
    parent_ami = exported(parent, "GILD_AMI_ID")
    result = twin.run(
        "buildspecs/bake.yml",
        "win2022-iis",
        env={
            "GILD_SOURCE_AMI": parent_ami,
            "GILD_PARENT_FAMILY": "win2022-core-dotnet",
        },
        expect="SUCCEEDED",
    )
    ami = exported(result, "GILD_AMI_ID")
    assert exported(result, "GILD_BASE_AMI") == parent_ami
    (builder,) = twin.instances(result["id"]).values()
    assert builder["ImageId"] == parent_ami
    (image,) = twin.client("ec2").describe_images(ImageIds=[ami])["Images"]
    image_tags = tags(image)
    assert image_tags["gild:family"] == "win2022-iis"
    # The source, at creation; bake-finished adds gild:parent-family and
    # gild:parent-ami from the ledger.
    assert image_tags["gild:base-ami"] == parent_ami
    calls = [c for c in twin.standin_calls() if "call" in c]
    lookups = [c["params"] for c in calls if c["call"] == "describe_images"]
    (source,) = [
        p for p in lookups if p.get("ImageIds") == [parent_ami] and "Filters" in p
    ]
    assert source["Owners"] == ["self"]
    assert {"Name": "name", "Values": ["gild-win2022-core-dotnet-*"]} in source[
        "Filters"
    ]
    assert stored_bom(twin, ami)["family"] == "win2022-iis"
    packer = [
        c["argv"] for c in twin.standin_calls() if c.get("argv", [""])[0] == "build"
    ]
    assert "family_dir=images/win2022-iis" in packer[-1]
    assert packer[-1][-1] == "images/windows-server"


def test_a_layered_family_baked_alone_reads_its_parents_promoted_image(twin):
    """No GILD_SOURCE_AMI (a push to the child alone): the bake reads the
    parent's promoted image from its parameter when it starts and bakes
    from it."""
    parent = twin.run("buildspecs/bake.yml", "win2022-core-dotnet", expect="SUCCEEDED")
    parent_ami = exported(parent, "GILD_AMI_ID")
    twin.client("ssm").put_parameter(
        Name="/gild/win2022-core-dotnet/ami",
        Value=parent_ami,
        Type="String",
        Overwrite=True,
    )
    result = twin.run(
        "buildspecs/bake.yml",
        "win2022-iis",
        env={"GILD_PARENT_FAMILY": "win2022-core-dotnet"},
        expect="SUCCEEDED",
    )
    assert exported(result, "GILD_BASE_AMI") == parent_ami
    (builder,) = twin.instances(result["id"]).values()
    assert builder["ImageId"] == parent_ami


def test_layered_family_refuses_an_image_not_its_parents(twin):
    """GILD_SOURCE_AMI naming the base image (not one of this account's
    images of the parent): the template's filter finds nothing, the bake
    fails and nothing is left running."""
    result = twin.run(
        "buildspecs/bake.yml",
        "win2022-iis",
        env={"GILD_SOURCE_AMI": BASE_AMI["win2022-core-dotnet"]},
        expect="FAILED",
    )
    assert "No AMI was found matching filters" in result["log"]
    assert twin.instances(result["id"]) == {}


@pytest.mark.parametrize(
    ("family", "env", "says"),
    [
        # No GILD_SOURCE_AMI and no promoted parent to read it from.
        ("win2022-iis", {}, "names none (is win2022-core-dotnet promoted?)"),
        (
            "win2022-iis",
            {
                "GILD_SOURCE_AMI": "ami-0123456789abcdef0",
                "GILD_PARENT_FAMILY": "debian13-base",
            },
            "gild.toml says win2022-iis's parent is win2022-core-dotnet",
        ),
        ("win2022-iis", {"GILD_SOURCE_AMI": "ami-$(touch /tmp/x)"}, "not an AMI id"),
        (
            "debian13-base",
            {"GILD_SOURCE_AMI": "ami-0123456789abcdef0"},
            "layered families only",
        ),
    ],
    ids=["child-without-source", "wrong-parent", "bad-ami", "root-with-source"],
)
def test_source_ami_is_checked_before_anything_runs(module_twin, family, env, says):
    """A child without GILD_SOURCE_AMI whose parent has no promoted image,
    a parent the catalog does not name,
    a malformed AMI id, a root family given one: the bake fails in install
    with a clear message, before Packer is downloaded or anything launched."""
    result = module_twin.run("buildspecs/bake.yml", family, env=env, expect="FAILED")
    phases = {p["phaseType"]: p["phaseStatus"] for p in result["phases"]}
    assert phases["INSTALL"] == "FAILED", result["log"][-3000:]
    assert says in result["log"], result["log"][-3000:]
    assert "PRE_BUILD" not in phases
    assert module_twin.instances(result["id"]) == {}


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
