"""infra/template.yaml as CloudFormation sees it, without an AWS account.

Three steps, each what AWS does at deploy time:

* `load(path)`: the YAML, with CloudFormation's short-form tags (`!Ref`,
  `!Sub`, `!GetAtt`, ...) turned into their long forms (`{"Ref": ...}`,
  `{"Fn::Sub": ...}`), as CloudFormation's own parser does.
* `translate(raw, parameters, region, account)`: the `AWS::Serverless-2016-10-31`
  transform, run by the pinned aws-sam-translator (the version aws-sam-cli
  1.170.0 pins: 1.115.0), with the parameters' defaults applied.
* `resolve(value, ctx)`: the intrinsic functions evaluated under one set of
  parameter values, with a deterministic physical id for every resource, so
  tests can ask "what would this property be in the account?".

Sources checked: the intrinsic function reference
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/intrinsic-function-reference.html),
the pseudo parameters page (.../pseudo-parameter-reference.html) and each
resource type's "Return values" section (Ref and Fn::GetAtt) in the
CloudFormation resource reference, e.g. AWS::SQS::Queue: Ref is the queue
URL; AWS::SNS::Topic and AWS::SecretsManager::Secret: Ref is the ARN;
AWS::KMS::Key: Ref is the key id; AWS::CodeCommit::Repository: Ref is the
repository id.
"""

from __future__ import annotations

import copy
import hashlib
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# --------------------------------------------------------------------- load

# Short-form tags whose long form is not simply "Fn::<Tag>".
_SPECIAL_TAGS = {"Ref": "Ref", "Condition": "Condition"}


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that knows CloudFormation's tags and keeps dates as text.

    CloudFormation reads `AWSTemplateFormatVersion: 2010-09-09` (unquoted) as
    a string; PyYAML's timestamp resolver would make it a date, so that
    resolver is dropped.
    """


_CfnLoader.yaml_implicit_resolvers = {
    key: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag != "tag:yaml.org,2002:timestamp"
    ]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_tag(
    loader: yaml.SafeLoader, suffix: str, node: yaml.Node
) -> dict[str, Any]:
    name = _SPECIAL_TAGS.get(suffix, f"Fn::{suffix}")
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            # `!GetAtt Res.Attr.With.Dots`: the logical id ends at the first dot.
            res, _, attr = str(value).partition(".")
            value = [res, attr]
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def loads(text: str) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template given as YAML (or JSON) text."""
    doc = yaml.load(text, Loader=_CfnLoader)
    if not isinstance(doc, dict):
        raise TypeError("a template is a YAML mapping")
    return doc


def load(path: str | Path) -> dict[str, Any]:
    """Read a template file: short-form tags become long-form intrinsics."""
    return loads(Path(path).read_text(encoding="utf-8"))


# ---------------------------------------------------------------- translate


def _stringify(value: Any) -> Any:
    """A parameter value as CloudFormation hands it to the template.

    Parameters are strings on the wire (a Number parameter's Ref is a
    string too, per the Parameters page of the user guide); YAML defaults
    such as `0` or `true` are turned into "0" and "true".
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return ",".join(str(_stringify(v)) for v in value)
    return value


def parameter_values(
    template: dict[str, Any], parameters: dict[str, Any] | None = None
) -> dict[str, str]:
    """The parameters' defaults overlaid with `parameters`, all as strings."""
    values: dict[str, str] = {}
    for name, spec in (template.get("Parameters") or {}).items():
        if isinstance(spec, dict) and "Default" in spec:
            values[name] = _stringify(spec["Default"])
    for name, value in (parameters or {}).items():
        values[name] = _stringify(value)
    return values


# Where `package()` pretends `sam package` uploaded the functions' code.
ARTIFACT_BUCKET = "gild-twin-artifacts"


def package(raw: dict[str, Any], bucket: str = ARTIFACT_BUCKET) -> dict[str, Any]:
    """What `sam deploy` (its `sam package` step) sends AWS: local CodeUri as S3.

    AWS's transform refuses a local path (`'CodeUri' is not a valid S3 Uri`);
    sam uploads the built directory and rewrites the property to
    `s3://<bucket>/<hash>`. The key here is a hash of the path: nothing is
    uploaded, the twin runs the real binaries elsewhere.
    """
    template = copy.deepcopy(raw)
    functions = [
        res.get("Properties") or {}
        for res in (template.get("Resources") or {}).values()
        if isinstance(res, dict) and res.get("Type") == "AWS::Serverless::Function"
    ]
    functions.append((template.get("Globals") or {}).get("Function") or {})
    for props in functions:
        uri = props.get("CodeUri")
        if isinstance(uri, str) and not uri.startswith("s3://"):
            props["CodeUri"] = f"s3://{bucket}/{_digest(uri, length=32)}"
    return template


def translate(
    raw: dict[str, Any],
    parameters: dict[str, Any] | None = None,
    region: str = "us-east-1",
    account: str = "123456789012",
) -> dict[str, Any]:
    """Run the SAM transform on `raw` (a loaded template), as AWS would.

    Local CodeUri paths are first rewritten as `sam package` does (see
    `package`). Without a Transform the template is returned unchanged. The
    translator asks IAM for AWS managed policies only when a function lists
    one by name under `Policies`; gild's functions use their own roles, so
    such a lookup is an error here rather than a silent guess at an ARN.
    """
    template = package(raw)
    transform = template.get("Transform")
    transforms = transform if isinstance(transform, list) else [transform]
    if "AWS::Serverless-2016-10-31" not in transforms:
        return template

    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    def no_managed_policies() -> dict[str, str]:
        raise RuntimeError(
            "the template names an AWS managed policy; the offline translate has no IAM to look it up"
        )

    values: dict[str, Any] = parameter_values(template, parameters)
    values["AWS::Region"] = region
    values["AWS::AccountId"] = account
    values["AWS::Partition"] = _partition(region)
    # A session only for its region name: the translator reads no credentials.
    session = boto3.session.Session(region_name=region)
    translator = Translator(None, Parser(), boto_session=session)
    return translator.translate(
        template, parameter_values=values, get_managed_policy_map=no_managed_policies
    )


# ------------------------------------------------------------------ resolve


class _NoValue:
    """`AWS::NoValue`: removes the property or list item that holds it."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


@dataclass
class Context:
    """One deployment: the (translated) template and the values it is resolved with.

    `parameters` overrides the template's defaults; physical ids derive from
    `stack_name` and the logical id (CloudFormation's generated names are
    `<stack>-<logical>-<random>`; here the random part is a hash, so the
    same stack always gets the same names).
    """

    template: dict[str, Any]
    parameters: dict[str, Any] = field(default_factory=dict)
    region: str = "us-east-1"
    account: str = "123456789012"
    stack_name: str = "gild"
    # CloudFormation gives every CreateStack a new UUID in its StackId; a
    # deploy passes a fresh one (so names derived from the stack id differ
    # between a stack and its redeploy), other callers get a stable one.
    stack_uuid: str | None = None
    # Physical ids of a stack already deployed into moto (stack.json's
    # Resources and SideCreated), by logical id. Ref and GetAtt then answer
    # with moto's names, so a policy resolved here (the IAM gate) names what
    # the functions really call; resources moto did not create keep the
    # names computed here, which are the ones the deploy gave them.
    deployed: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(init=False)
    _conditions: dict[str, bool] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.values = parameter_values(self.template, self.parameters)
        for name, spec in (self.template.get("Parameters") or {}).items():
            kind = str(spec.get("Type", "")) if isinstance(spec, dict) else ""
            if name in self.values and (
                kind == "CommaDelimitedList" or kind.startswith("List<")
            ):
                self.values[name] = (
                    [] if self.values[name] == "" else self.values[name].split(",")
                )

    @property
    def partition(self) -> str:
        return _partition(self.region)

    @property
    def url_suffix(self) -> str:
        return "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"

    @property
    def stack_id(self) -> str:
        stack_uuid = self.stack_uuid or uuid.uuid5(
            uuid.NAMESPACE_URL, f"{self.account}/{self.region}/{self.stack_name}"
        )
        return f"arn:{self.partition}:cloudformation:{self.region}:{self.account}:stack/{self.stack_name}/{stack_uuid}"

    def resources(self) -> dict[str, Any]:
        return self.template.get("Resources") or {}

    def condition(self, name: str) -> bool:
        """The value of the template's condition `name` (memoised)."""
        if name not in self._conditions:
            conditions = self.template.get("Conditions") or {}
            if name not in conditions:
                raise KeyError(f"no condition {name!r} in the template")
            self._conditions[name] = _truth(resolve(conditions[name], self))
        return self._conditions[name]

    def exists(self, logical_id: str) -> bool:
        """Whether CloudFormation creates resource `logical_id` under these values."""
        resource = self.resources().get(logical_id)
        if resource is None:
            return False
        cond = resource.get("Condition")
        return cond is None or self.condition(cond)


def conditions_true(ctx: Context) -> set[str]:
    """The names of the template's conditions that hold under ctx's values."""
    return {
        name for name in (ctx.template.get("Conditions") or {}) if ctx.condition(name)
    }


def _truth(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValueError(f"a condition evaluated to {value!r}, not a boolean")


def _cmp_text(value: Any) -> Any:
    """Fn::Equals compares values as CloudFormation does: as strings."""
    if isinstance(value, list):
        return [_cmp_text(v) for v in value]
    return _stringify(value)


def _digest(*parts: str, length: int = 12) -> str:
    raw = hashlib.sha256("/".join(parts).encode()).hexdigest()
    return raw[:length]


def generated_name(ctx: Context, logical_id: str, limit: int = 64) -> str:
    """CloudFormation's `<stack>-<logical>-<suffix>` name, cut to `limit`.

    The suffix is upper case and 12 characters, as CloudFormation's are;
    here it is a hash of the stack and logical id, not random.
    """
    suffix = _digest(ctx.stack_name, logical_id).upper()
    head = f"{ctx.stack_name}-{logical_id}"[: max(1, limit - len(suffix) - 1)]
    return f"{head}-{suffix}"


# Per type: the property holding the name the template may fix and the
# name's length limit (a generated name is cut to it; S3's is lower case).
# A type not listed gets `<stack>-<logical>-<suffix>` as its Ref.
_NAME_PROPERTY: dict[str, tuple[str, int]] = {
    "AWS::IAM::Role": ("RoleName", 64),
    "AWS::IAM::InstanceProfile": ("InstanceProfileName", 128),
    "AWS::IAM::ManagedPolicy": ("ManagedPolicyName", 128),
    "AWS::SQS::Queue": ("QueueName", 80),
    "AWS::SNS::Topic": ("TopicName", 256),
    "AWS::Lambda::Function": ("FunctionName", 64),
    "AWS::DynamoDB::Table": ("TableName", 255),
    "AWS::Events::Rule": ("Name", 64),
    "AWS::SecretsManager::Secret": ("Name", 512),
    "AWS::Logs::LogGroup": ("LogGroupName", 512),
    "AWS::CodeBuild::Project": ("Name", 150),
    "AWS::CodeBuild::ReportGroup": ("Name", 128),
    "AWS::CodeCommit::Repository": ("RepositoryName", 100),
    "AWS::CloudWatch::Alarm": ("AlarmName", 255),
    "AWS::KMS::Alias": ("AliasName", 256),
    "AWS::S3::Bucket": ("BucketName", 63),
    "AWS::EC2::SecurityGroup": ("GroupName", 255),
}

# Fixed-name properties of the types above, for the DeletionPolicy checks.
NAME_PROPERTIES = {kind: prop for kind, (prop, _limit) in _NAME_PROPERTY.items()}


def _name_in(physical: str) -> str:
    """The name inside a physical id: an ARN's last part, a URL's last segment."""
    if physical.startswith("arn:"):
        return physical.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
    if physical.startswith(("http://", "https://")):
        return physical.rstrip("/").rsplit("/", 1)[-1]
    return physical


def resource_name(ctx: Context, logical_id: str) -> str:
    """The resource's name: the template's (resolved) or a generated one."""
    if logical_id in ctx.deployed:
        return _name_in(ctx.deployed[logical_id])
    resource = ctx.resources()[logical_id]
    kind = resource.get("Type", "")
    prop, limit = _NAME_PROPERTY.get(kind, ("", 64))
    props = resource.get("Properties") or {}
    if prop and prop in props:
        name = resolve(props[prop], ctx)
        if name is not NO_VALUE:
            return str(name)
    name = generated_name(ctx, logical_id, limit)
    return name.lower() if kind == "AWS::S3::Bucket" else name


def _key_id(ctx: Context, logical_id: str) -> str:
    if logical_id in ctx.deployed:  # a KMS key's physical id is its key id
        return ctx.deployed[logical_id]
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ctx.stack_id}/{logical_id}"))


# Types whose Ref is what one of their attributes is.
_REF_IS = {
    "AWS::SNS::Topic": "TopicArn",
    "AWS::SecretsManager::Secret": "Id",
    "AWS::CodeBuild::ReportGroup": "Arn",
    "AWS::SQS::Queue": "QueueUrl",
    "AWS::KMS::Key": "KeyId",
    "AWS::EC2::SecurityGroup": "GroupId",
}


def physical_id(ctx: Context, logical_id: str) -> Any:
    """What `Ref` to the resource returns (its "Return values" section)."""
    resources = ctx.resources()
    if logical_id not in resources:
        raise KeyError(f"Ref to unknown resource {logical_id!r}")
    if not ctx.exists(logical_id):
        raise ValueError(
            f"Ref to {logical_id!r}, whose condition is false: CloudFormation refuses the template"
        )
    if logical_id in ctx.deployed:
        # CloudFormation's PhysicalResourceId is what Ref returns.
        return ctx.deployed[logical_id]
    kind = resources[logical_id].get("Type", "")
    if kind in _REF_IS:
        return attribute(ctx, logical_id, _REF_IS[kind])
    if kind in ("AWS::CodeCommit::Repository", "AWS::Lambda::EventInvokeConfig"):
        return _key_id(ctx, logical_id)  # an id (a UUID), not the name
    if kind in _NAME_PROPERTY:
        return resource_name(ctx, logical_id)
    # Policies, permissions, egress rules...: an opaque id, stable per stack.
    return generated_name(ctx, logical_id)


# Fn::GetAtt per (type, attribute), from each type's "Return values":
# {p} partition, {r} region, {a} account, {n} name, {path} IAM path, {key}
# the KMS key id (or another opaque UUID), {u} URL suffix, {h} a stable hash.
_ATTRIBUTES: dict[tuple[str, str], str] = {
    ("AWS::IAM::Role", "Arn"): "arn:{p}:iam::{a}:role{path}{n}",
    ("AWS::IAM::Role", "RoleId"): "AROA{H}",
    ("AWS::IAM::InstanceProfile", "Arn"): "arn:{p}:iam::{a}:instance-profile{path}{n}",
    ("AWS::DynamoDB::Table", "Arn"): "arn:{p}:dynamodb:{r}:{a}:table/{n}",
    ("AWS::DynamoDB::Table", "StreamArn"): (
        "arn:{p}:dynamodb:{r}:{a}:table/{n}/stream/1970-01-01T00:00:00.000"
    ),
    ("AWS::SNS::Topic", "TopicArn"): "arn:{p}:sns:{r}:{a}:{n}",
    ("AWS::SNS::Topic", "TopicName"): "{n}",
    ("AWS::SQS::Queue", "Arn"): "arn:{p}:sqs:{r}:{a}:{n}",
    ("AWS::SQS::Queue", "QueueName"): "{n}",
    ("AWS::SQS::Queue", "QueueUrl"): "https://sqs.{r}.{u}/{a}/{n}",
    ("AWS::Lambda::Function", "Arn"): "arn:{p}:lambda:{r}:{a}:function:{n}",
    ("AWS::KMS::Key", "Arn"): "arn:{p}:kms:{r}:{a}:key/{key}",
    ("AWS::KMS::Key", "KeyId"): "{key}",
    ("AWS::S3::Bucket", "Arn"): "arn:{p}:s3:::{n}",
    ("AWS::S3::Bucket", "DomainName"): "{n}.s3.{u}",
    ("AWS::CodeBuild::Project", "Arn"): "arn:{p}:codebuild:{r}:{a}:project/{n}",
    (
        "AWS::CodeBuild::ReportGroup",
        "Arn",
    ): "arn:{p}:codebuild:{r}:{a}:report-group/{n}",
    ("AWS::CodeCommit::Repository", "Arn"): "arn:{p}:codecommit:{r}:{a}:{n}",
    ("AWS::CodeCommit::Repository", "Name"): "{n}",
    ("AWS::CodeCommit::Repository", "CloneUrlHttp"): (
        "https://git-codecommit.{r}.{u}/v1/repos/{n}"
    ),
    (
        "AWS::CodeCommit::Repository",
        "CloneUrlSsh",
    ): "ssh://git-codecommit.{r}.{u}/v1/repos/{n}",
    ("AWS::Events::Rule", "Arn"): "arn:{p}:events:{r}:{a}:rule/{n}",
    (
        "AWS::SecretsManager::Secret",
        "Id",
    ): "arn:{p}:secretsmanager:{r}:{a}:secret:{n}-{h6}",
    ("AWS::Logs::LogGroup", "Arn"): "arn:{p}:logs:{r}:{a}:log-group:{n}:*",
    ("AWS::EC2::SecurityGroup", "GroupId"): "sg-{h17}",
    ("AWS::Lambda::Url", "FunctionUrl"): "https://{h32}.lambda-url.{r}.on.aws/",
    ("AWS::CloudWatch::Alarm", "Arn"): "arn:{p}:cloudwatch:{r}:{a}:alarm:{n}",
}


def attribute(ctx: Context, logical_id: str, attr: str) -> Any:
    """What `Fn::GetAtt [logical_id, attr]` returns."""
    resources = ctx.resources()
    if logical_id not in resources:
        raise KeyError(f"Fn::GetAtt of unknown resource {logical_id!r}")
    if not ctx.exists(logical_id):
        raise ValueError(f"Fn::GetAtt of {logical_id!r}, whose condition is false")
    kind = resources[logical_id].get("Type", "")
    props = resources[logical_id].get("Properties") or {}
    if (kind, attr) == ("AWS::EC2::SecurityGroup", "VpcId"):
        return resolve(props.get("VpcId", NO_VALUE), ctx)
    if (kind, attr) == ("AWS::Lambda::Url", "FunctionArn"):
        return resolve(props["TargetFunctionArn"], ctx)
    if logical_id in ctx.deployed and _REF_IS.get(kind) == attr:
        return ctx.deployed[logical_id]
    if (kind, attr) not in _ATTRIBUTES:
        raise KeyError(
            f"Fn::GetAtt {logical_id}.{attr}: the twin does not model {kind}.{attr}"
        )
    return _ATTRIBUTES[(kind, attr)].format(**_fields(ctx, logical_id))


def _fields(ctx: Context, logical_id: str) -> dict[str, str]:
    """The placeholders of `_ATTRIBUTES` for one resource."""
    props = ctx.resources()[logical_id].get("Properties") or {}
    digest = _digest(ctx.stack_id, logical_id, length=32)
    return {
        "p": ctx.partition,
        "r": ctx.region,
        "a": ctx.account,
        "u": ctx.url_suffix,
        "n": resource_name(ctx, logical_id),
        "path": _path(ctx, props),
        "key": _key_id(ctx, logical_id),
        "h6": digest[:6],
        "h17": digest[:17],
        "h32": digest,
        "H": digest[:17].upper(),
    }


def _path(ctx: Context, props: dict[str, Any]) -> str:
    path = resolve(props.get("Path", "/"), ctx)
    return "/" if path is NO_VALUE else str(path)


def _target_logical_id(value: Any) -> str:
    """The logical id behind `{"Ref": X}` or `{"Fn::GetAtt": [X, ...]}`."""
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return str(target[0] if isinstance(target, list) else str(target).split(".")[0])
    raise ValueError(f"not a reference to a resource: {value!r}")


def target_logical_id(value: Any) -> str:
    """Public form of `_target_logical_id`, for rule targets and the like."""
    return _target_logical_id(value)


_PSEUDO = {
    "AWS::Region": lambda ctx: ctx.region,
    "AWS::AccountId": lambda ctx: ctx.account,
    "AWS::Partition": lambda ctx: ctx.partition,
    "AWS::StackName": lambda ctx: ctx.stack_name,
    "AWS::StackId": lambda ctx: ctx.stack_id,
    "AWS::URLSuffix": lambda ctx: ctx.url_suffix,
    "AWS::NotificationARNs": lambda ctx: [],
    "AWS::NoValue": lambda ctx: NO_VALUE,
}


def _ref(name: str, ctx: Context) -> Any:
    if name in _PSEUDO:
        return _PSEUDO[name](ctx)
    if name in ctx.values:
        return ctx.values[name]
    if name in (ctx.template.get("Parameters") or {}):
        raise ValueError(f"parameter {name!r} has no default and no value")
    return physical_id(ctx, name)


_SUB_VAR = re.compile(r"\$\{([^}]*)\}")


def _sub(arg: Any, ctx: Context) -> str:
    if isinstance(arg, list):
        text, variables = arg[0], resolve(arg[1] if len(arg) > 1 else {}, ctx)
    else:
        text, variables = arg, {}
    if not isinstance(text, str):
        raise TypeError(f"Fn::Sub needs a string, got {text!r}")

    def one(match: re.Match[str]) -> str:
        var = match.group(1)
        if var.startswith("!"):
            return "${" + var[1:] + "}"  # ${!Literal} is the text ${Literal}
        if var in variables:
            value = variables[var]
        elif "." in var and var not in ctx.values and not var.startswith("AWS::"):
            res, _, att = var.partition(".")
            value = attribute(ctx, res, att)
        else:
            value = _ref(var, ctx)
        if isinstance(value, list):
            raise TypeError(f"Fn::Sub variable {var} is a list")
        return str(_stringify(value))

    return _SUB_VAR.sub(one, text)


def _find_in_map(arg: list[Any], ctx: Context) -> Any:
    map_name, top, second = (resolve(a, ctx) for a in arg[:3])
    try:
        return ctx.template["Mappings"][map_name][top][second]
    except KeyError:
        if len(arg) > 3 and isinstance(arg[3], dict) and "DefaultValue" in arg[3]:
            return resolve(arg[3]["DefaultValue"], ctx)
        raise


def _fn(name: str, arg: Any, ctx: Context) -> Any:
    if name == "Ref":
        return _ref(str(arg), ctx)
    if name == "Condition":
        return ctx.condition(str(arg))
    if name == "Fn::If":
        cond, yes, no = arg
        return resolve(yes if ctx.condition(cond) else no, ctx)
    if name == "Fn::Equals":
        left, right = (_cmp_text(resolve(a, ctx)) for a in arg)
        return left == right
    if name == "Fn::Not":
        return not _truth(resolve(arg[0], ctx))
    if name == "Fn::And":
        return all(_truth(resolve(a, ctx)) for a in arg)
    if name == "Fn::Or":
        return any(_truth(resolve(a, ctx)) for a in arg)
    if name == "Fn::Sub":
        return _sub(arg, ctx)
    if name == "Fn::GetAtt":
        res, att = arg if isinstance(arg, list) else str(arg).split(".", 1)
        return attribute(ctx, str(resolve(res, ctx)), str(resolve(att, ctx)))
    if name == "Fn::Join":
        sep, items = arg
        items = resolve(items, ctx)
        return str(sep).join(str(_stringify(i)) for i in items if i is not NO_VALUE)
    if name == "Fn::Select":
        index, items = resolve(arg[0], ctx), resolve(arg[1], ctx)
        return items[int(index)]
    if name == "Fn::Split":
        sep, text = arg[0], resolve(arg[1], ctx)
        return str(text).split(str(sep))
    if name == "Fn::FindInMap":
        return _find_in_map(arg, ctx)
    if name == "Fn::Base64":
        import base64

        return base64.b64encode(str(resolve(arg, ctx)).encode()).decode()
    if name == "Fn::GetAZs":
        return [f"{ctx.region}{zone}" for zone in "abc"]
    raise NotImplementedError(f"the twin does not evaluate {name}")


# A one-key mapping whose key is one of these is an intrinsic function call;
# those not evaluated here raise NotImplementedError rather than pass through.
_FUNCTION_KEY = re.compile(r"^(Ref|Condition|Fn::[A-Za-z0-9]+)$")


def resolve(value: Any, ctx: Context) -> Any:
    """`value` with every intrinsic function evaluated under ctx.

    Only the branch an Fn::If takes is evaluated (the other may name a
    resource that does not exist), and `AWS::NoValue` removes the key or
    list item holding it, as in CloudFormation. A whole value that is
    AWS::NoValue comes back as `NO_VALUE`.
    """
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, arg),) = value.items()
            if _FUNCTION_KEY.match(key):
                return _fn(key, arg, ctx)
        out = {}
        for key, item in value.items():
            resolved = resolve(item, ctx)
            if resolved is not NO_VALUE:
                out[key] = resolved
        return out
    if isinstance(value, list):
        return [r for r in (resolve(v, ctx) for v in value) if r is not NO_VALUE]
    return value


def resolved_resources(ctx: Context) -> dict[str, dict[str, Any]]:
    """Every resource CloudFormation creates under ctx, properties resolved."""
    out = {}
    for logical_id, resource in ctx.resources().items():
        if ctx.exists(logical_id):
            res = dict(resource)
            res["Properties"] = resolve(resource.get("Properties") or {}, ctx)
            out[logical_id] = res
    return out


def outputs(ctx: Context) -> dict[str, Any]:
    """The stack's Outputs (those whose Condition holds), values resolved."""
    out = {}
    for name, spec in (ctx.template.get("Outputs") or {}).items():
        cond = spec.get("Condition")
        if cond is None or ctx.condition(cond):
            out[name] = resolve(spec["Value"], ctx)
    return out
