"""The gate's wire mapping (wire.py) agrees with the fixture of build calls.

Each build call of tests/fixtures/packer-amazon-calls.json is made here the
way the packer stand-in, the AWS CLI in the buildspecs or CodeBuild makes
it: serialized by botocore (the request bytes the gate sees, captured before
sending), then decided by the gate against infra/template.yaml's roles with
a made-up emulator (tags, images, key pairs) holding the fixture's example
resources. Each must be allowed, and map to exactly the fixture's
authorizations: the same actions on the same kinds of resource, with at
least the condition keys the fixture says AWS sets. A fixture call not made
here must be listed in NOT_ON_THE_WIRE with the reason.
"""

import json

import botocore.session
import pytest

from . import calls, roles
from .gate import Gate, credentials_for

FIXTURE = calls.load()
EX = FIXTURE["examples"]
REGION, ACCOUNT = "us-east-1", "123456789012"

NOT_ON_THE_WIRE = {
    "plugin.open-data-channel.port-forwarding": "ssmmessages is a WebSocket: no gate in front of it",
    "ansible.proxycommand.data-channel": "ssmmessages is a WebSocket: no gate in front of it",
    "plugin.resume-session": "session ids and tags come from Session Manager, which moto lacks",
    "packer.ssm.terminate-session": "session ids and tags come from Session Manager, which moto lacks",
    "codebuild.test.report": "CodeBuild's own report API, which moto lacks",
}


class Captured(Exception):
    def __init__(self, request):
        self.request = request


def wire(role: str, service: str, operation: str, **params) -> dict:
    """The request botocore sends for this call, as the gate reads it."""
    keys = credentials_for(role)
    client = botocore.session.get_session().create_client(
        service,
        region_name=REGION,
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id=keys["access_key_id"],
        aws_secret_access_key=keys["secret_access_key"],
    )

    def capture(request, **_):
        raise Captured(request)

    client.meta.events.register("before-send", capture)
    with pytest.raises(Captured) as sent:
        getattr(client, operation)(**params)
    request = sent.value.request
    headers = {
        k.lower(): v.decode() if isinstance(v, bytes) else v
        for k, v in request.headers.items()
    }
    body = request.body or b""
    body = body.encode() if isinstance(body, str) else body
    path = request.url.split("127.0.0.1:9", 1)[1] or "/"
    return {
        "headers": headers,
        "body_bytes": body,
        "method": request.method,
        "path": path,
    }


class FakeWorld:
    """The fixture's example resources, as the emulator would hold them."""

    def __init__(self, stack):
        run = {t["Key"]: t["Value"] for t in _tags("packer_run_tags", stack)}
        test = {t["Key"]: t["Value"] for t in _tags("test_tags", stack)}
        self.key = stack.getatt("Key", "Arn")
        self.tags = {
            EX["InstanceId"]: run,
            EX["TestInstanceId"]: test,
            EX["IntermediaryImage"]: run,
            EX["IntermediarySnapshot"]: run,
            EX["Image"]: run,
            EX["ImageSnapshot"]: run,
        }
        self.images = {
            EX["BaseImageLinux"]: ("136693071363", True, {}, EX["BaseSnapshot"], None),
            EX["BaseImageWindows"]: (
                "801119661308",
                True,
                {},
                EX["BaseSnapshot"],
                None,
            ),
            EX["Image"]: (ACCOUNT, False, run, EX["ImageSnapshot"], self.key),
            EX["IntermediaryImage"]: (
                ACCOUNT,
                False,
                run,
                EX["IntermediarySnapshot"],
                None,
            ),
        }
        self.pairs = {EX["KeyPairName"]: run}
        self.profile = {
            "Arn": stack.getatt("InstanceProfile", "Arn"),
            "Roles": [stack.getatt("InstanceRole", "Arn")],
        }

    def ec2_tags(self, resource_id):
        return self.tags.get(resource_id, {})

    def image(self, image_id):
        if image_id not in self.images:
            return None
        owner, public, tags, snapshot, key = self.images[image_id]
        snap = {
            "SnapshotId": snapshot,
            "KmsKeyId": key,
            "Tags": self.ec2_tags(snapshot),
        }
        return {"OwnerId": owner, "Public": public, "Tags": tags, "Snapshots": [snap]}

    def key_pair(self, name):
        return (
            {"KeyPairId": "key-0123", "Tags": self.pairs[name]}
            if name in self.pairs
            else None
        )

    def instance_profile(self, name):
        return self.profile if self.profile["Arn"].endswith("/" + name) else None

    def bucket_kms_key(self, bucket):
        return self.key

    def object_exists(self, bucket, key):
        # The objects the examples read: one list of materials, one diff.
        return key in (
            "bom/ami-0aaaaaaaaaaaaaaaa.json",
            "diff/ami-0bbbbbbbbbbbbbbbb.json",
        )


def make_gate(template=roles.TEMPLATE) -> Gate:
    gate = Gate("http://127.0.0.1:9", template, {}, ACCOUNT, REGION)
    gate.mapper.world = FakeWorld(gate.stack)
    return gate


@pytest.fixture(scope="module")
def gate():
    return make_gate()


def _tags(name, stack):
    spec = FIXTURE["tag_sets"][name]["tags"]
    return [{"Key": k, "Value": stack.sub(v, dict(EX))} for k, v in spec.items()]


def build_calls(stack):
    """{fixture call id: (role, [(service, operation, params), ...])}, each
    call as the stand-in, the CLI or CodeBuild sends it."""
    run = _tags("packer_run_tags", stack)
    test = _tags("test_tags", stack)
    profile = stack.ref("InstanceProfile")
    key = stack.getatt("Key", "Arn")
    subnet, sg = stack.ref("SubnetId"), stack.ref("SecurityGroupId")
    winrm = stack.getatt("WinRmSecurityGroup", "GroupId")
    i, ti = EX["InstanceId"], EX["TestInstanceId"]
    meta = {
        "HttpEndpoint": "enabled",
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": 1,
    }
    spec = [
        {"ResourceType": kind, "Tags": run}
        for kind in ("instance", "network-interface", "volume")
    ]

    def launch(base, groups, kind, device):
        ebs = {
            "VolumeSize": 30,
            "VolumeType": "gp3",
            "Encrypted": True,
            "KmsKeyId": key,
        }
        return {
            "ImageId": base,
            "MinCount": 1,
            "MaxCount": 1,
            "InstanceType": kind,
            "KeyName": EX["KeyPairName"],
            "SubnetId": subnet,
            "SecurityGroupIds": groups,
            "IamInstanceProfile": {"Name": profile},
            "MetadataOptions": meta,
            "BlockDeviceMappings": [{"DeviceName": device, "Ebs": ebs}],
            "TagSpecifications": spec,
        }

    def logs(group):
        return [
            (
                "logs",
                "create_log_stream",
                {"logGroupName": group, "logStreamName": EX["BuildUuid"]},
            ),
            (
                "logs",
                "put_log_events",
                {
                    "logGroupName": group,
                    "logStreamName": EX["BuildUuid"],
                    "logEvents": [{"timestamp": 1, "message": "x"}],
                },
            ),
        ]

    def describe(op, **kw):
        return ("ec2", op, kw)

    bake = {
        "packer.prevalidate.regions": [describe("describe_regions")],
        "packer.prevalidate.ami-name": [
            describe(
                "describe_images",
                Owners=["self"],
                Filters=[{"Name": "name", "Values": ["x"]}],
            )
        ],
        "packer.source-ami": [describe("describe_images", Owners=["136693071363"])],
        "packer.network.subnet": [describe("describe_subnets", SubnetIds=[subnet])],
        "packer.key-pair.create": [
            describe(
                "create_key_pair",
                KeyName=EX["KeyPairName"],
                KeyType="ed25519",
                TagSpecifications=[{"ResourceType": "key-pair", "Tags": run}],
            )
        ],
        "packer.security-groups": [describe("describe_security_groups", GroupIds=[sg])],
        "packer.instance-profile": [
            ("iam", "get_instance_profile", {"InstanceProfileName": profile})
        ],
        "packer.run-instances.linux": [
            (
                "ec2",
                "run_instances",
                launch(EX["BaseImageLinux"], [sg], "t3.medium", "/dev/xvda"),
            )
        ],
        "packer.run-instances.windows": [
            (
                "ec2",
                "run_instances",
                launch(EX["BaseImageWindows"], [sg, winrm], "t3.large", "/dev/sda1"),
            )
        ],
        "packer.wait-running": [describe("describe_instances", InstanceIds=[i])],
        "packer.windows-password": [describe("get_password_data", InstanceId=i)],
        "packer.ssm.start-port-forwarding": [
            (
                "ssm",
                "start_session",
                {"Target": i, "DocumentName": "AWS-StartPortForwardingSession"},
            )
        ],
        "packer.ssm.instance-status": [
            describe("describe_instance_status", InstanceIds=[i])
        ],
        "packer.connect.private-ip": [describe("describe_instances", InstanceIds=[i])],
        "ansible.proxycommand.start-ssh-session": [
            (
                "ssm",
                "start_session",
                {"Target": i, "DocumentName": "AWS-StartSSHSession"},
            )
        ],
        "packer.stop-instance": [describe("stop_instances", InstanceIds=[i])],
        "packer.wait-stopped": [describe("describe_instances", InstanceIds=[i])],
        "packer.modify-instance.sriov-ena": [
            describe(
                "modify_instance_attribute", InstanceId=i, EnaSupport={"Value": True}
            ),
            describe(
                "modify_instance_attribute",
                InstanceId=i,
                SriovNetSupport={"Value": "simple"},
            ),
        ],
        "packer.create-image": [
            describe(
                "create_image",
                InstanceId=i,
                Name="gild-x",
                TagSpecifications=[
                    {"ResourceType": "image", "Tags": run},
                    {"ResourceType": "snapshot", "Tags": run},
                ],
            )
        ],
        "packer.wait-image": [
            describe("describe_images", ImageIds=[EX["IntermediaryImage"]])
        ],
        "packer.copy-image.encrypt": [
            describe(
                "copy_image",
                SourceImageId=EX["IntermediaryImage"],
                SourceRegion=REGION,
                Name="gild-x",
                Encrypted=True,
                KmsKeyId=key,
            )
        ],
        "packer.image-attributes": [
            describe(
                "modify_image_attribute",
                ImageId=EX["Image"],
                Description={"Value": "d"},
            ),
            describe(
                "modify_image_attribute",
                ImageId=EX["Image"],
                ImdsSupport={"Value": "v2.0"},
            ),
        ],
        "packer.tag-image-and-snapshots": [
            describe(
                "create_tags", Resources=[EX["Image"], EX["ImageSnapshot"]], Tags=run
            )
        ],
        "packer.cleanup.intermediary-image": [
            describe("deregister_image", ImageId=EX["IntermediaryImage"]),
            describe("delete_snapshot", SnapshotId=EX["IntermediarySnapshot"]),
        ],
        "packer.cleanup.terminate": [
            describe("terminate_instances", InstanceIds=[i]),
            describe("describe_instances", InstanceIds=[i]),
        ],
        "packer.cleanup.volumes": [describe("describe_volumes")],
        "packer.cleanup.key-pair": [
            describe("delete_key_pair", KeyName=EX["KeyPairName"])
        ],
        "bake.yml.describe-images": [
            describe("describe_images", ImageIds=[EX["Image"]])
        ],
        "bake.yml.parent-ami": [
            (
                "ssm",
                "get_parameter",
                {"Name": f"{stack.ref('ParameterPrefix')}/win2022-core-dotnet/ami"},
            )
        ],
        "bake.yml.put-bom": [
            (
                "s3",
                "put_object",
                {
                    "Bucket": stack.ref("ArtifactBucket"),
                    "Key": f"bom/{EX['Image']}.json",
                    "Body": b"{}",
                },
            )
        ],
        "codebuild.bake.logs": logs(stack.ref("BakeLogGroup")),
    }
    tested = {
        "test.yml.find-instances": [describe("describe_instances")],
        "test.yml.run-instances": [
            (
                "ec2",
                "run_instances",
                {
                    "ImageId": EX["Image"],
                    "InstanceType": "t3.small",
                    "MinCount": 1,
                    "MaxCount": 1,
                    "IamInstanceProfile": {"Name": profile},
                    "MetadataOptions": meta,
                    "NetworkInterfaces": [
                        {
                            "DeviceIndex": 0,
                            "SubnetId": subnet,
                            "Groups": [sg],
                            "AssociatePublicIpAddress": False,
                            "DeleteOnTermination": True,
                        }
                    ],
                    "InstanceInitiatedShutdownBehavior": "terminate",
                    "TagSpecifications": [
                        {"ResourceType": kind, "Tags": test}
                        for kind in ("instance", "volume", "network-interface")
                    ],
                    "UserData": "#!/bin/sh\n",
                    "ClientToken": "gild-x",
                },
            )
        ],
        "test.yml.ssm-online": [
            (
                "ssm",
                "describe_instance_information",
                {"Filters": [{"Key": "InstanceIds", "Values": [ti]}]},
            )
        ],
        "test.yml.send-command": [
            (
                "ssm",
                "send_command",
                {
                    "InstanceIds": [ti],
                    "DocumentName": doc,
                    "Parameters": {"commands": ["x"]},
                },
            )
            for doc in ("AWS-RunShellScript", "AWS-RunPowerShellScript")
        ],
        "test.yml.command-invocation": [
            (
                "ssm",
                "get_command_invocation",
                {"CommandId": EX["CommandId"], "InstanceId": ti},
            )
        ],
        "test.yml.terminate": [describe("terminate_instances", InstanceIds=[ti])],
        "codebuild.test.logs": logs(stack.ref("TestLogGroup")),
    }
    out = {k: ("BakeRole", v) for k, v in bake.items()}
    out.update({k: ("TestRole", v) for k, v in tested.items()})
    return out


def kind(arn: str) -> str:
    """service:resource-type of an ARN ("*" stays "*")."""
    if arn == "*":
        return "*"
    parts = arn.split(":", 5)
    service, rest = parts[2], parts[5]
    if service == "s3":
        return "s3:object" if "/" in rest else "s3:bucket"
    return f"{service}:{rest.split('/')[0].split(':')[0]}"


def fixture_view(stack, call_id):
    """{(action, kind): context keys} of one fixture call."""
    out: dict = {}
    principal = set(FIXTURE["principal"]["context"]) | {"aws:RequestedRegion"}
    for request in calls.requests(stack, FIXTURE_ROLES[call_id], FIXTURE):
        if request.call_id == call_id:
            keys = set(request.context) - principal
            out.setdefault((request.action, kind(request.resource)), set()).update(keys)
    return out


FIXTURE_ROLES = {c["id"]: c["role"] for c in FIXTURE["calls"]}


def test_every_fixture_call_is_made_here_or_said_why_not(gate):
    made = set(build_calls(gate.stack))
    listed = set(FIXTURE_ROLES)
    assert made | set(NOT_ON_THE_WIRE) == listed, (
        f"not made here: {sorted(listed - made - set(NOT_ON_THE_WIRE))}; "
        f"not in the fixture: {sorted(made - listed)}"
    )
    assert not made & set(NOT_ON_THE_WIRE)


@pytest.mark.parametrize("call_id", sorted(set(FIXTURE_ROLES) - set(NOT_ON_THE_WIRE)))
def test_wire_mapping_matches_the_fixture_and_is_allowed(gate, call_id):
    role, requests = build_calls(gate.stack)[call_id]
    assert role == FIXTURE_ROLES[call_id]
    seen: dict = {}
    for service, operation, params in requests:
        request = wire(role, service, operation, **params)
        decision = gate.decide(**request)
        assert decision["allowed"], json.dumps(decision, indent=1)
        parsed = gate.parse(**request)
        mapped = gate.authorization(
            parsed["service"], parsed["operation"], parsed["params"]
        )
        for one in mapped:
            for arn in one.resources:
                keys = set(one.context) | set(one.per_resource.get(arn, {}))
                seen.setdefault((one.action, kind(arn)), set()).update(keys)
    expected = fixture_view(gate.stack, call_id)
    assert set(seen) == set(expected), (
        f"wire {sorted(seen)} != fixture {sorted(expected)}"
    )
    for pair, keys in expected.items():
        assert keys <= seen[pair], f"{pair}: the wire lacks {sorted(keys - seen[pair])}"


def test_s3_artifact_upload_needs_the_object_and_the_buckets_key(gate):
    """The runner's `aws s3 cp`: s3:PutObject on the object, and
    kms:GenerateDataKey on the bucket's default key through S3."""
    bucket = gate.stack.ref("ArtifactBucket")
    request = wire(
        "BakeRole",
        "s3",
        "put_object",
        Bucket=bucket,
        Key="bake/u/manifest.json",
        Body=b"{}",
    )
    decision = gate.decide(**request)
    assert decision["allowed"], decision
    assert decision["authorizations"] == [
        {
            "action": "s3:PutObject",
            "resources": [f"arn:aws:s3:::{bucket}/bake/u/manifest.json"],
        },
        {
            "action": "kms:GenerateDataKey",
            "resources": [gate.stack.getatt("Key", "Arn")],
        },
    ]
    outside = wire(
        "BakeRole", "s3", "put_object", Bucket=bucket, Key="elsewhere", Body=b""
    )
    refused = gate.decide(**outside)
    assert not refused["allowed"] and refused["refused_action"] == "s3:PutObject"
    assert not gate.decide(
        **wire("TestRole", "s3", "put_object", Bucket=bucket, Key="bake/x", Body=b"")
    )["allowed"]


def test_launch_without_imdsv2_is_refused(gate):
    request = wire(
        "TestRole",
        "ec2",
        "run_instances",
        ImageId=EX["Image"],
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.small",
        IamInstanceProfile={"Name": gate.stack.ref("InstanceProfile")},
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": _tags("test_tags", gate.stack)}
        ],
    )
    decision = gate.decide(**request)
    assert not decision["allowed"]
    assert decision["refused_action"] == "ec2:RunInstances"
    assert decision["refused_resource"].endswith(":instance/*")


def test_unmapped_operation_is_refused(gate):
    decision = gate.decide(
        **wire("BakeRole", "ec2", "create_vpc", CidrBlock="10.0.0.0/16")
    )
    assert decision["unmapped"] and not decision["allowed"]


def test_a_removed_grant_refuses_the_authorization_it_gave(tmp_path):
    """Without TagTheTemporaryKeyPairAtCreation, CreateKeyPair with its
    TagSpecifications is refused, naming ec2:CreateTags, as AWS does."""
    text = roles.TEMPLATE.read_text(encoding="utf-8")
    start = text.index("              - Sid: TagTheTemporaryKeyPairAtCreation")
    end = text.index("              # EBS encryption with the stack key", start)
    copy = tmp_path / "template.yaml"
    copy.write_text(text[:start] + text[end:], encoding="utf-8")
    gate = make_gate(copy)
    run = _tags("packer_run_tags", gate.stack)
    decision = gate.decide(
        **wire(
            "BakeRole",
            "ec2",
            "create_key_pair",
            KeyName=EX["KeyPairName"],
            TagSpecifications=[{"ResourceType": "key-pair", "Tags": run}],
        )
    )
    assert not decision["allowed"]
    assert decision["action"] == "ec2:CreateKeyPair"
    assert decision["refused_action"] == "ec2:CreateTags"
    assert decision["refused_resource"].endswith(f":key-pair/{EX['KeyPairName']}")


def test_the_package_diff_reads_lists_and_keeps_diffs_only(gate):
    """bake-finished reads bills of materials (kms:Decrypt through S3 for
    an object that is there; s3:ListBucket for one that is not, or S3
    would answer 403 for 404) and keeps diffs; it writes no list, and
    test-finished reads only diffs."""
    bucket = gate.stack.ref("ArtifactBucket")
    key_arn = gate.stack.getatt("Key", "Arn")

    def decide(role, operation, key, **more):
        return gate.decide(
            **wire(role, "s3", operation, Bucket=bucket, Key=key, **more)
        )

    there = decide("BakeFinishedRole", "get_object", "bom/ami-0aaaaaaaaaaaaaaaa.json")
    assert there["allowed"], there
    assert [a["action"] for a in there["authorizations"]] == [
        "s3:GetObject",
        "kms:Decrypt",
    ]
    assert there["authorizations"][1]["resources"] == [key_arn]
    missing = decide("BakeFinishedRole", "get_object", "bom/ami-0cccccccccccccccc.json")
    assert missing["allowed"], missing
    assert missing["authorizations"][1] == {
        "action": "s3:ListBucket",
        "resources": [f"arn:aws:s3:::{bucket}"],
    }
    stored = decide(
        "BakeFinishedRole", "put_object", "diff/ami-0bbbbbbbbbbbbbbbb.json", Body=b"{}"
    )
    assert stored["allowed"], stored
    forged = decide(
        "BakeFinishedRole", "put_object", "bom/ami-0bbbbbbbbbbbbbbbb.json", Body=b"{}"
    )
    assert not forged["allowed"] and forged["refused_action"] == "s3:PutObject"
    read = decide("TestFinishedRole", "get_object", "diff/ami-0bbbbbbbbbbbbbbbb.json")
    assert read["allowed"], read
    other = decide("TestFinishedRole", "get_object", "bom/ami-0aaaaaaaaaaaaaaaa.json")
    assert not other["allowed"] and other["refused_action"] == "s3:GetObject"
