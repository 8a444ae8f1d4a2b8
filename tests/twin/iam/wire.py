"""What AWS authorizes for one request as it arrives on the wire.

gate.py reads a request (SigV4 scope, X-Amz-Target, query form, S3's REST
path) into (service, operation, parameters); ``Mapper.authorizations`` turns
that into every authorization AWS makes for it: the action, the resource
ARNs, the request context and the per-resource context (tags of existing
resources, read from the emulator through a ``World``). A call AWS
authorizes several times (RunInstances: the launch itself, ec2:CreateTags
for each tagged resource type, iam:PassRole for the instance profile's
role, kms:* through EC2 for encrypted volumes) gives several; the call is
allowed only if every one is. An operation missing here is unmapped (None),
and the gate refuses it.

Sources, per service (Service Authorization Reference, "Actions, resources,
and condition keys", https://docs.aws.amazon.com/service-authorization/
latest/reference/): list_amazonec2.html, list_awssystemsmanager.html,
list_amazons3.html, list_awsidentityandaccessmanagementiam.html,
list_amazoncloudwatchlogs.html; and tests/fixtures/packer-amazon-calls.json,
which lists per build call what AWS authorizes (its ``authorization_
reference`` names the EC2 tag-on-create and EBS-encryption pages). Where the
fixture already says which KMS actions EC2 authorizes on the caller's behalf,
that list is read from the fixture (``Mapper.via_ec2``) rather than
repeated here; tests/twin/iam/test_wire.py checks every build call the
fixture lists against this mapping.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from . import calls


@dataclass
class Authorization:
    """One authorization: ``action`` on every ARN of ``resources``."""

    action: str
    resources: list[str]
    context: dict = field(default_factory=dict)
    per_resource: dict = field(default_factory=dict)


class World(Protocol):
    """What the mapping reads from the emulator (the gate's boto3 lookups)."""

    def ec2_tags(self, resource_id: str) -> dict: ...

    def image(self, image_id: str) -> dict | None: ...

    def key_pair(self, name: str) -> dict | None: ...

    def instance_profile(self, name: str) -> dict | None: ...

    def bucket_kms_key(self, bucket: str) -> str | None: ...

    def object_exists(self, bucket: str, key: str) -> bool: ...

    def codecommit_repository(self) -> str | None: ...


# --------------------------------------------------------------- query form
# CodeCommit's pull-request calls the functions make (gild_aws's
# CodeCommitReviews).
PULL_REQUEST_ACTIONS = (
    "GetPullRequest",
    "GetCommentsForPullRequest",
    "PostCommentForPullRequest",
    "UpdateComment",
    "UpdatePullRequestApprovalState",
)

# Approval-rule templates have no ARN: the Service Authorization Reference
# lists no resource type for these, so a policy grants them on "*".
TEMPLATE_ACTIONS = (
    "CreateApprovalRuleTemplate",
    "DeleteApprovalRuleTemplate",
    "GetApprovalRuleTemplate",
    "ListRepositoriesForApprovalRuleTemplate",
    "UpdateApprovalRuleTemplateContent",
)
# Authorized on the repository they name.
ASSOCIATION_ACTIONS = (
    "AssociateApprovalRuleTemplateWithRepository",
    "DisassociateApprovalRuleTemplateFromRepository",
)


def members(params: dict, prefix: str) -> list[dict]:
    """Query-protocol list members: Prefix.1.X=a, Prefix.2.X=b -> [{X: a},
    {X: b}]; a scalar list (InstanceId.1=i-..) gives {"": value}."""
    found: dict[int, dict] = {}
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)(?:\.(.+))?$")
    for key, value in params.items():
        m = pattern.match(key)
        if m:
            found.setdefault(int(m.group(1)), {})[m.group(2) or ""] = value
    return [found[i] for i in sorted(found)]


def values(params: dict, prefix: str) -> list[str]:
    return [m[""] for m in members(params, prefix) if "" in m]


def tag_specifications(params: dict) -> dict[str, dict]:
    """TagSpecification.N: {resource type: {key: value}}."""
    out: dict[str, dict] = {}
    for spec in members(params, "TagSpecification"):
        tags = out.setdefault(spec.get("ResourceType", ""), {})
        for tag in members(spec, "Tag"):
            tags[tag.get("Key", "")] = tag.get("Value", "")
    return out


def request_tags(tags: dict) -> dict:
    """aws:RequestTag/<key> and aws:TagKeys for tags sent in the request."""
    context = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
    context["aws:TagKeys"] = sorted(tags)
    return context


def resource_tags(service: str, tags: dict) -> dict:
    """aws:ResourceTag/<key> and the service's own prefix (ec2:ResourceTag/,
    ssm:resourceTag/), as calls.py gives them for the fixture."""
    out = {}
    for prefix in calls.RESOURCE_TAG_PREFIXES.get(service, ("aws:ResourceTag/",)):
        out.update({f"{prefix}{k}": v for k, v in tags.items()})
    return out


# --------------------------------------------------------------------- S3
def s3_operation(
    method: str, path: str, headers: dict
) -> tuple[str, dict] | tuple[None, None]:
    """S3's REST protocol: (operation, {Bucket, Key, query, headers}), bucket
    and key from the path (path style, what SDKs use against an IP
    endpoint) or the Host header (virtual-hosted style)."""
    url = urllib.parse.urlsplit(path)
    query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
    # The Rust SDK names the operation in the query (`?x-id=GetObject`);
    # S3 ignores it, and so does the classification below.
    query.pop("x-id", None)
    parts = urllib.parse.unquote(url.path).lstrip("/")
    host = headers.get("host", "").split(":")[0]
    virtual = re.match(r"(.+)\.s3[.-]", host)
    if virtual:
        bucket, key = virtual.group(1), parts
    else:
        bucket, _, key = parts.partition("/")
    params = {"Bucket": bucket, "Key": key, "query": query, "headers": headers}
    if not bucket:
        return ("ListBuckets", params) if method == "GET" else (None, None)
    if key:
        if method == "PUT" and "partNumber" in query:
            return "UploadPart", params
        if method == "PUT" and not query:
            copy = "x-amz-copy-source" in headers
            return ("CopyObject" if copy else "PutObject"), params
        if method == "POST" and "uploads" in query:
            return "CreateMultipartUpload", params
        if method == "POST" and "uploadId" in query:
            return "CompleteMultipartUpload", params
        if method in ("GET", "HEAD") and not query:
            return ("GetObject" if method == "GET" else "HeadObject"), params
        if method == "DELETE" and not query:
            return "DeleteObject", params
        return None, None
    if method == "GET" and "location" in query:
        return "GetBucketLocation", params
    if method == "GET" and "acl" in query:
        return "GetBucketAcl", params
    if method in ("GET", "HEAD") and not ({"location", "acl"} & set(query)):
        return ("ListObjects" if method == "GET" else "HeadBucket"), params
    return None, None


# The IAM action each S3 operation is authorized as (list_amazons3.html:
# HeadObject is s3:GetObject, the multipart steps are s3:PutObject,
# ListObjects/HeadBucket are s3:ListBucket).
_S3_ACTIONS = {
    "PutObject": "PutObject",
    "CopyObject": "PutObject",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "GetObject": "GetObject",
    "HeadObject": "GetObject",
    "DeleteObject": "DeleteObject",
    "ListObjects": "ListBucket",
    "HeadBucket": "ListBucket",
    "GetBucketLocation": "GetBucketLocation",
    "GetBucketAcl": "GetBucketAcl",
    "ListBuckets": "ListAllMyBuckets",
}

# EC2 actions with no resource-level permissions: authorized on "*"
# (list_amazonec2.html lists no resource type for them).
_EC2_DESCRIBE = {
    "DescribeImageAttribute",
    "DescribeImages",
    "DescribeInstanceStatus",
    "DescribeInstanceTypeOfferings",
    "DescribeInstanceTypes",
    "DescribeInstances",
    "DescribeKeyPairs",
    "DescribeRegions",
    "DescribeSecurityGroups",
    "DescribeSnapshots",
    "DescribeSubnets",
    "DescribeTags",
    "DescribeVolumes",
    "DescribeVpcs",
}
# Actions on existing EC2 resources named in the request: the resource and
# its tags (aws:ResourceTag/, ec2:ResourceTag/).
_EC2_ON_INSTANCES = {
    "GetPasswordData",
    "ModifyInstanceAttribute",
    "RebootInstances",
    "StartInstances",
    "StopInstances",
    "TerminateInstances",
}
_EC2_ON_IMAGES = {"DeregisterImage", "ModifyImageAttribute"}
_EC2_ON_SNAPSHOTS = {"DeleteSnapshot", "ModifySnapshotAttribute"}
_EC2_TYPES = {
    "ami": "image",
    "snap": "snapshot",
    "i": "instance",
    "vol": "volume",
    "sg": "security-group",
    "subnet": "subnet",
    "eni": "network-interface",
}
_SSM_STAR = {
    "DescribeInstanceInformation",
    "GetCommandInvocation",
    "ListCommandInvocations",
    "ListCommands",
}


class Mapper:
    """The authorizations of one request, for one account and region.
    ``resolve`` resolves a fixture template (``${AWS::Region}`` ...) as
    calls.py does for the same stack."""

    def __init__(
        self,
        account: str,
        region: str,
        world: World,
        resolve: Callable[[str], str],
        fixture: dict | None = None,
    ):
        self.account, self.region, self.world = account, region, world
        self.resolve = resolve
        self.fixture = {c["id"]: c for c in (fixture or calls.load())["calls"]}

    # ---------------------------------------------------------------- ARNs
    def arn(self, service: str, rest: str, *, account: bool = True) -> str:
        owner = self.account if account else ""
        return f"arn:aws:{service}:{self.region}:{owner}:{rest}"

    def ec2_arn(self, kind: str, ident: str) -> str:
        # Images and snapshots have no account in their ARN.
        return self.arn(
            "ec2", f"{kind}/{ident}", account=kind not in ("image", "snapshot")
        )

    def existing(self, resource_id: str) -> tuple[str, dict]:
        """An existing EC2 resource: its ARN and its tags as context."""
        kind = _EC2_TYPES.get(resource_id.split("-", 1)[0])
        if kind is None:
            raise LookupError(f"EC2 id {resource_id}")
        tags = self.world.ec2_tags(resource_id)
        return self.ec2_arn(kind, resource_id), resource_tags("ec2", tags)

    def kms_key(self, ident: str) -> str:
        if ident.startswith("arn:"):
            return ident
        if ident.startswith("alias/"):
            raise LookupError(f"KMS alias {ident}: the key it names is not looked up")
        return self.arn("kms", f"key/{ident}")

    # ------------------------------------------------------------ fixture
    def via_ec2(self, call_id: str, key: str) -> list[Authorization]:
        """The KMS authorizations EC2 makes with the caller's credentials
        for EBS encryption with ``key``: the kms:* entries of the fixture's
        call ``call_id``, their context resolved (kms:ViaService ...)."""
        out = []
        for auth in self.fixture[call_id]["authorizes"]:
            if auth["action"].startswith("kms:"):
                context = {
                    k: self.resolve(str(v)) for k, v in auth.get("context", {}).items()
                }
                out.append(Authorization(auth["action"], [key], context))
        return out

    # ----------------------------------------------------------- dispatch
    def authorizations(
        self, service: str, action: str, params: dict
    ) -> list[Authorization] | None:
        handler = getattr(self, f"_{service.replace('-', '_')}", None)
        return handler(action, params) if handler else None

    # ----------------------------------------------- the functions' calls
    def _dynamodb(self, action, body):
        table = self.arn("dynamodb", f"table/{body['TableName']}")
        if action in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Scan"):
            return [Authorization(f"dynamodb:{action}", [table])]
        if action == "Query":
            index = body.get("IndexName")
            arn = f"{table}/index/{index}" if index else table
            return [Authorization("dynamodb:Query", [arn])]
        return None

    def _codebuild(self, action, body):
        def project(name: str) -> str:
            return (
                name
                if name.startswith("arn:")
                else self.arn("codebuild", f"project/{name}")
            )

        if action == "StartBuild":
            return [
                Authorization("codebuild:StartBuild", [project(body["projectName"])])
            ]
        if action == "StopBuild":
            # The build's id is `project:uuid` or its ARN; the resource is
            # the project (Service Authorization Reference, CodeBuild).
            build = body["id"]
            name = (
                build.split("/")[1].split(":")[0]
                if build.startswith("arn:")
                else build.split(":", 1)[0]
            )
            return [Authorization("codebuild:StopBuild", [project(name)])]
        if action == "BatchGetBuilds":
            names = {
                i.split("/")[1].split(":")[0]
                if i.startswith("arn:")
                else i.split(":", 1)[0]
                for i in body["ids"]
            }
            return [
                Authorization(
                    "codebuild:BatchGetBuilds", [project(p) for p in sorted(names)]
                )
            ]
        return None

    def _codecommit(self, action, body):
        if action in TEMPLATE_ACTIONS:
            return [Authorization(f"codecommit:{action}", ["*"])]
        if action in ("GetFile", "GetDifferences", "GetBranch") + ASSOCIATION_ACTIONS:
            return [
                Authorization(
                    f"codecommit:{action}",
                    [self.arn("codecommit", body["repositoryName"])],
                )
            ]
        if action in PULL_REQUEST_ACTIONS:
            # Authorized on the repository (Service Authorization
            # Reference); GetPullRequest, UpdateComment and
            # UpdatePullRequestApprovalState name only the pull request or
            # comment, which AWS resolves to its repository: the twin has
            # one repository, the deployed stack's.
            repository = (
                body.get("repositoryName") or self.world.codecommit_repository()
            )
            if not repository:
                return None
            return [
                Authorization(
                    f"codecommit:{action}", [self.arn("codecommit", repository)]
                )
            ]
        return None

    def _sts(self, action, body):
        # gild's one identity on pull requests (the ReviewerRole): the
        # caller's policy must allow sts:AssumeRole on it; the gate then
        # checks the role's trust policy names the caller.
        if action != "AssumeRole":
            return None
        return [Authorization("sts:AssumeRole", [body["RoleArn"]])]

    def _secretsmanager(self, action, body):
        if action != "GetSecretValue":
            return None
        secret = body["SecretId"]
        if not secret.startswith("arn:"):
            secret = self.arn("secretsmanager", f"secret:{secret}")
        return [Authorization("secretsmanager:GetSecretValue", [secret])]

    def _events(self, action, body):
        if action != "PutEvents":
            return None
        entries = body.get("Entries", [])
        buses = set()
        for entry in entries:
            bus = entry.get("EventBusName") or "default"
            buses.add(
                bus
                if bus.startswith("arn:")
                else self.arn("events", f"event-bus/{bus}")
            )
        sources = sorted({e.get("Source", "") for e in entries})
        return [
            Authorization("events:PutEvents", sorted(buses), {"events:source": sources})
        ]

    def _sns(self, action, body):
        return (
            [Authorization("sns:Publish", [body["TopicArn"]])]
            if action == "Publish"
            else None
        )

    def _sqs(self, action, body):
        if action != "SendMessage":
            return None
        queue = body["QueueUrl"].rstrip("/").split("/")[-1]
        return [Authorization("sqs:SendMessage", [self.arn("sqs", queue)])]

    # ------------------------------------------------------------------ SSM
    def _ssm(self, action, body):
        if action in ("PutParameter", "GetParameter"):
            name = body["Name"].lstrip("/")
            return [
                Authorization(f"ssm:{action}", [self.arn("ssm", f"parameter/{name}")])
            ]
        if action in _SSM_STAR:
            return [Authorization(f"ssm:{action}", ["*"])]
        if action in ("SendCommand", "StartSession"):
            # The document (AWS's own: no account in the ARN) and each target
            # instance with its tags as ssm:resourceTag/ (list_awssystemsmanager
            # .html; the fixture's test.yml.send-command and
            # packer.ssm.start-port-forwarding say the same).
            if action == "SendCommand":
                if body.get("Targets"):
                    raise LookupError(
                        "SendCommand by Targets: the instances are not resolved"
                    )
                instances = body.get("InstanceIds", [])
                document = body["DocumentName"]
            else:
                instances = [body["Target"]]
                document = body.get("DocumentName", "SSM-SessionManagerRunShell")
            resources, per = [], {}
            for instance in instances:
                arn = self.ec2_arn("instance", instance)
                resources.append(arn)
                per[arn] = resource_tags("ssm", self.world.ec2_tags(instance))
            if document.startswith("arn:"):
                resources.append(document)
            else:
                own = not document.startswith(("AWS-", "AWSEC2-", "AWSSupport-"))
                resources.append(self.arn("ssm", f"document/{document}", account=own))
            return [Authorization(f"ssm:{action}", resources, {}, per)]
        return None

    # ------------------------------------------------------------------ IAM
    def _iam(self, action, body):
        if action == "GetInstanceProfile":
            name = body["InstanceProfileName"]
            return [
                Authorization(
                    "iam:GetInstanceProfile",
                    [f"arn:aws:iam::{self.account}:instance-profile/{name}"],
                )
            ]
        return None

    # ----------------------------------------------------------------- logs
    def _logs(self, action, body):
        if action in ("CreateLogStream", "PutLogEvents"):
            stream = (
                f"log-group:{body['logGroupName']}:log-stream:{body['logStreamName']}"
            )
            return [Authorization(f"logs:{action}", [self.arn("logs", stream)])]
        return None

    # ------------------------------------------------------------------- S3
    def _s3(self, action, params):
        iam_action = _S3_ACTIONS.get(action)
        if iam_action is None:
            return None
        bucket, key = params["Bucket"], params["Key"]
        resource = (
            "*" if not bucket else f"arn:aws:s3:::{bucket}" + (f"/{key}" if key else "")
        )
        out = [Authorization(f"s3:{iam_action}", [resource])]
        headers = params["headers"]
        if action == "CopyObject":
            source = (
                urllib.parse.unquote(headers["x-amz-copy-source"])
                .lstrip("/")
                .split("?")[0]
            )
            out.append(Authorization("s3:GetObject", [f"arn:aws:s3:::{source}"]))
        if action in ("GetObject", "HeadObject"):
            out += self._s3_read(bucket, key)
        if iam_action == "PutObject" and action != "UploadPart":
            # SSE-KMS: S3 asks KMS for a data key with the caller's
            # credentials, with the request's key or the bucket's default
            # (S3 User Guide, UsingKMSEncryption: "Permissions").
            sse = headers.get("x-amz-server-side-encryption")
            key_id = headers.get("x-amz-server-side-encryption-aws-kms-key-id")
            if sse is None:
                key_id = self.world.bucket_kms_key(bucket)
            if key_id or sse == "aws:kms":
                if not key_id:
                    raise LookupError(
                        "SSE-KMS with the AWS managed key is not modelled"
                    )
                context = {
                    "kms:ViaService": f"s3.{self.region}.amazonaws.com",
                    "kms:CallerAccount": self.account,
                }
                out.append(
                    Authorization(
                        "kms:GenerateDataKey", [self.kms_key(key_id)], context
                    )
                )
        return out

    def _s3_read(self, bucket, key):
        """What reading an object takes beyond s3:GetObject. A missing one
        is answered 404 only to a caller allowed s3:ListBucket on the
        bucket, else 403 (GetObject API reference, "Permissions"): the
        refusal is that authorization. An existing one in a bucket whose
        default is SSE-KMS is decrypted with the caller's credentials
        through S3 (S3 User Guide, UsingKMSEncryption: kms:Decrypt)."""
        if not self.world.object_exists(bucket, key):
            return [Authorization("s3:ListBucket", [f"arn:aws:s3:::{bucket}"])]
        key_id = self.world.bucket_kms_key(bucket)
        if not key_id:
            return []
        context = {
            "kms:ViaService": f"s3.{self.region}.amazonaws.com",
            "kms:CallerAccount": self.account,
        }
        return [Authorization("kms:Decrypt", [self.kms_key(key_id)], context)]

    # ------------------------------------------------------------------ EC2
    def _ec2(self, action, p):
        if action in _EC2_DESCRIBE:
            return [Authorization(f"ec2:{action}", ["*"])]
        if action in _EC2_ON_INSTANCES | _EC2_ON_IMAGES | _EC2_ON_SNAPSHOTS:
            ids = values(p, "InstanceId") or [
                p[k] for k in ("InstanceId", "ImageId", "SnapshotId") if k in p
            ]
            return [self._on_existing(f"ec2:{action}", ids)]
        if action == "CreateTags":
            ids = values(p, "ResourceId")
            tags = {t.get("Key", ""): t.get("Value", "") for t in members(p, "Tag")}
            auth = self._on_existing("ec2:CreateTags", ids)
            auth.context = request_tags(tags)
            return [auth]
        handler = {
            "RunInstances": self._run_instances,
            "CreateKeyPair": self._create_key_pair,
            "DeleteKeyPair": self._delete_key_pair,
            "CreateImage": self._create_image,
            "CopyImage": self._copy_image,
        }.get(action)
        return handler(p) if handler else None

    def _on_existing(self, action: str, ids: list[str]) -> Authorization:
        if not ids:
            raise LookupError(f"{action} names no resource")
        auth = Authorization(action, [])
        for resource_id in ids:
            arn, context = self.existing(resource_id)
            auth.resources.append(arn)
            auth.per_resource[arn] = context
        return auth

    def _created(
        self, action: str, created: dict[str, str], tags: dict[str, dict], extra: dict
    ) -> list[Authorization]:
        """The authorization of resources a call creates ({type: ARN}), each
        with the tags its TagSpecification carries, then ec2:CreateTags with
        ec2:CreateAction for every type tagged at creation
        (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/supported-iam-actions-tagging.html)."""
        main = Authorization(f"ec2:{action}", [])
        tagging = Authorization("ec2:CreateTags", [], {"ec2:CreateAction": action})
        for kind, arn in created.items():
            main.resources.append(arn)
            main.per_resource[arn] = {**extra.get(kind, {})}
            if tags.get(kind):
                main.per_resource[arn].update(request_tags(tags[kind]))
                tagging.resources.append(arn)
                tagging.per_resource[arn] = request_tags(tags[kind])
        return [main] + ([tagging] if tagging.resources else [])

    def _run_instances(self, p):
        tags = tag_specifications(p)
        nics = members(p, "NetworkInterface")
        subnets = [p["SubnetId"]] if p.get("SubnetId") else []
        subnets += [n["SubnetId"] for n in nics if n.get("SubnetId")]
        groups = values(p, "SecurityGroupId")
        for nic in nics:
            groups += [v for k, v in nic.items() if k.startswith("SecurityGroupId.")]
        meta = {
            f"ec2:Metadata{k}": p[f"MetadataOptions.{k}"]
            for k in ("HttpTokens", "HttpEndpoint", "HttpPutResponseHopLimit")
            if f"MetadataOptions.{k}" in p
        }
        if "MetadataOptions.InstanceMetadataTags" in p:
            meta["ec2:InstanceMetadataTags"] = p["MetadataOptions.InstanceMetadataTags"]
        profile, roles = None, []
        if p.get("IamInstanceProfile.Arn") or p.get("IamInstanceProfile.Name"):
            name = (
                p.get("IamInstanceProfile.Name")
                or p["IamInstanceProfile.Arn"].rsplit("/", 1)[-1]
            )
            found = self.world.instance_profile(name)
            if found is None:
                raise LookupError(f"instance profile {name}")
            profile, roles = found["Arn"], found["Roles"]
        instance = {
            "ec2:InstanceType": p.get("InstanceType", "m1.small"),
            "ec2:Region": self.region,
            **meta,
        }
        if profile:
            instance["ec2:InstanceProfile"] = profile
        volume = {}
        bdms = members(p, "BlockDeviceMapping")
        for bdm in bdms:
            if "Ebs.Encrypted" in bdm:
                volume["ec2:Encrypted"] = bdm["Ebs.Encrypted"]
            if "Ebs.VolumeType" in bdm:
                volume["ec2:VolumeType"] = bdm["Ebs.VolumeType"]
        created = {
            "instance": self.ec2_arn("instance", "*"),
            "network-interface": self.ec2_arn("network-interface", "*"),
            "volume": self.ec2_arn("volume", "*"),
        }
        subnet_arns = [self.ec2_arn("subnet", s) for s in subnets]
        extra = {
            "instance": instance,
            "volume": volume,
            "network-interface": {"ec2:Subnet": subnet_arns[0]} if subnet_arns else {},
        }
        out = self._created("RunInstances", created, tags, extra)
        main = out[0]
        # Existing resources the launch uses: the image (owner, public, tags)
        # and its snapshots, the subnet, the security groups, the key pair.
        image = self.world.image(p["ImageId"])
        if image is None:
            raise LookupError(f"image {p['ImageId']}")
        arn = self.ec2_arn("image", p["ImageId"])
        main.resources.append(arn)
        main.per_resource[arn] = {
            "ec2:Owner": image["OwnerId"],
            "ec2:Public": "true" if image.get("Public") else "false",
            **resource_tags("ec2", image.get("Tags", {})),
        }
        encrypted_with = set()
        for snapshot in image.get("Snapshots", []):
            arn = self.ec2_arn("snapshot", snapshot["SnapshotId"])
            main.resources.append(arn)
            main.per_resource[arn] = resource_tags("ec2", snapshot.get("Tags", {}))
            if snapshot.get("KmsKeyId"):
                encrypted_with.add(snapshot["KmsKeyId"])
        for resource_id in subnets + groups:
            arn, context = self.existing(resource_id)
            main.resources.append(arn)
            main.per_resource[arn] = context
        if p.get("KeyName"):
            pair = self.world.key_pair(p["KeyName"])
            if pair is None:
                raise LookupError(f"key pair {p['KeyName']}")
            arn = self.ec2_arn("key-pair", p["KeyName"])
            main.resources.append(arn)
            main.per_resource[arn] = resource_tags("ec2", pair.get("Tags", {}))
        for role in roles:
            out.append(
                Authorization(
                    "iam:PassRole", [role], {"iam:PassedToService": "ec2.amazonaws.com"}
                )
            )
        # EBS encryption with a customer managed key: new volumes encrypted
        # with the request's key (the bake's launch_block_device_mappings),
        # or launched from snapshots encrypted with one (the test's AMI;
        # moto never encrypts an AMI's snapshot, so that branch only runs
        # against an emulator that does).
        for key in sorted({b["Ebs.KmsKeyId"] for b in bdms if b.get("Ebs.KmsKeyId")}):
            out += self.via_ec2("packer.run-instances.linux", self.kms_key(key))
        for key in sorted(encrypted_with):
            out += self.via_ec2("test.yml.run-instances", self.kms_key(key))
        return out

    def _create_key_pair(self, p):
        arn = self.ec2_arn("key-pair", p["KeyName"])
        return self._created(
            "CreateKeyPair", {"key-pair": arn}, tag_specifications(p), {}
        )

    def _delete_key_pair(self, p):
        name = p.get("KeyName")
        pair = self.world.key_pair(name) if name else None
        if pair is None:
            raise LookupError(f"key pair {name or p.get('KeyPairId')}")
        arn = self.ec2_arn("key-pair", name)
        return [
            Authorization(
                "ec2:DeleteKeyPair",
                [arn],
                {},
                {arn: resource_tags("ec2", pair.get("Tags", {}))},
            )
        ]

    def _create_image(self, p):
        created = {
            "image": self.ec2_arn("image", "*"),
            "snapshot": self.ec2_arn("snapshot", "*"),
        }
        out = self._created("CreateImage", created, tag_specifications(p), {})
        arn, context = self.existing(p["InstanceId"])
        out[0].resources.insert(0, arn)
        out[0].per_resource[arn] = context
        return out

    def _copy_image(self, p):
        out = self._created(
            "CopyImage",
            {"image": self.ec2_arn("image", "*")},
            tag_specifications(p),
            {},
        )
        # The source image too, since 2024-10-28 (copy-ami-permissions.html:
        # "resource-level permissions for the CopyImage action on the source
        # AMI"), with its tags, when it is in this region.
        if p.get("SourceRegion", self.region) == self.region:
            image = self.world.image(p["SourceImageId"]) or {}
            arn = self.ec2_arn("image", p["SourceImageId"])
            out[0].resources.append(arn)
            out[0].per_resource[arn] = resource_tags("ec2", image.get("Tags", {}))
        if p.get("Encrypted") == "true" and p.get("KmsKeyId"):
            out += self.via_ec2(
                "packer.copy-image.encrypt", self.kms_key(p["KmsKeyId"])
            )
        return out
