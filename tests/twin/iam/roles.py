"""The IAM roles of infra/template.yaml, with their policies resolved.

The roles are read from the template itself, so a grant removed there is
missing here too. Resolution follows CloudFormation's rules for what the
role policies use (Ref, Fn::Sub, Fn::GetAtt, Fn::If with the template's
Conditions, Fn::Join/Select/Split/FindInMap, AWS::NoValue); physical ids and
ARNs of the stack's own resources are made up deterministically, in the
formats CloudFormation documents for each type's Ref and GetAtt, so the
fixture of calls can name them the same way (``Stack.sub``).

When tests/twin/cfn.py (issue 11 item d: the stack as CloudFormation
deploys it into moto) is importable, ``Stack`` delegates conditions, Ref,
GetAtt and every intrinsic to it, so the ARNs in the resolved policies are
those of the stack the end-to-end tests deploy; the resolver below is the
fallback when this package is used on its own. Either way the template's
functions all name an explicit ``Role``, so SAM's transform adds no role and
no policy here; a function without ``Role`` would get SAM's generated role,
and that case is refused below rather than guessed.

Managed policies attached by ARN are taken from
tests/fixtures/aws-managed-policies.json, which names the source of each
document; an ARN not in it is an error, not an empty policy.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import yaml

try:  # the twin's CloudFormation resolver, when this is tests.twin.iam
    from .. import cfn as _cfn
except ImportError:  # imported as a top-level package
    _cfn = None

REPO = Path(__file__).resolve().parents[3]
# GILD_IAM_TEMPLATE points the checks at another copy (e.g. a proposed fix).
TEMPLATE = Path(os.environ.get("GILD_IAM_TEMPLATE", REPO / "infra" / "template.yaml"))
MANAGED_POLICIES = REPO / "tests" / "fixtures" / "aws-managed-policies.json"

NO_VALUE = object()


class _Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsic tags."""


def _tag(name: str):
    def construct(loader, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if name == "Ref":
                return {"Ref": value}
            if name == "Condition":
                return {"Condition": value}
            if name == "GetAtt":
                return {"Fn::GetAtt": value.split(".", 1)}
            return {f"Fn::{name}": value}
        if isinstance(node, yaml.SequenceNode):
            return {f"Fn::{name}": loader.construct_sequence(node, deep=True)}
        return {f"Fn::{name}": loader.construct_mapping(node, deep=True)}

    return construct


for _name in (
    "Ref",
    "Condition",
    "GetAtt",
    "Sub",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "Join",
    "Select",
    "Split",
    "FindInMap",
    "Base64",
    "GetAZs",
    "ImportValue",
    "Cidr",
):
    _Loader.add_constructor(f"!{_name}", _tag(_name))


def load(path: Path | str = TEMPLATE) -> dict:
    """The template as CloudFormation reads it (JSON or YAML)."""
    if _cfn is not None:
        return _cfn.load(path)
    text = Path(path).read_text(encoding="utf-8")
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass


# Example values for the parameters without a default (a VPC, subnet and
# security group must be chosen at deploy time) and for GITHUB.
EXAMPLE_PARAMETERS = {
    "VpcId": "vpc-0a1b2c3d4e5f60710",
    "SubnetId": "subnet-0a1b2c3d4e5f60718",
    "SecurityGroupId": "sg-0a1b2c3d4e5f60719",
}
GITHUB_PARAMETERS = {
    "SourceType": "GITHUB",
    "GitHubConnectionArn": "arn:aws:codeconnections:us-east-1:123456789012:connection/0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",
    "GitHubRepository": "acme/gild-images",
}


def _digits(seed: str, n: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


class Stack:
    """A template with parameter values: evaluates conditions and resolves
    intrinsic functions, with made-up physical ids for its resources."""

    def __init__(
        self,
        template: dict,
        parameters: dict | None = None,
        *,
        region: str = "us-east-1",
        account: str = "123456789012",
        name: str = "gild",
        deployed: dict | None = None,
        stack_uuid: str | None = None,
    ):
        self.template = template
        self.region, self.account, self.name = region, account, name
        self.partition = "aws"
        self.parameters = {}
        for key, spec in template.get("Parameters", {}).items():
            if parameters and key in parameters:
                value = parameters[key]
            elif key in EXAMPLE_PARAMETERS:
                value = EXAMPLE_PARAMETERS[key]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise ValueError(f"parameter {key} has no default: pass a value")
            self.parameters[key] = str(value) if not isinstance(value, list) else value
        unknown = set(parameters or {}) - set(self.parameters)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}")
        self._conditions: dict[str, bool] = {}
        self._ctx = None
        if _cfn is not None:
            self._ctx = _cfn.Context(
                template,
                dict(self.parameters),
                region=region,
                account=account,
                stack_name=name,
                stack_uuid=stack_uuid,
                deployed=dict(deployed or {}),
            )
        elif deployed:
            raise ValueError("a deployed stack's names need tests/twin/cfn.py")

    def _delegated(self, value):
        out = _cfn.resolve(value, self._ctx)
        return NO_VALUE if out is _cfn.NO_VALUE else out

    # ------------------------------------------------------------ conditions
    def condition(self, name: str) -> bool:
        if self._ctx is not None:
            return self._ctx.condition(name)
        if name not in self._conditions:
            self._conditions[name] = bool(
                self.resolve(self.template["Conditions"][name])
            )
        return self._conditions[name]

    def resource_exists(self, logical_id: str) -> bool:
        if self._ctx is not None:
            return self._ctx.exists(logical_id)
        cond = self.template["Resources"][logical_id].get("Condition")
        return cond is None or self.condition(cond)

    # ----------------------------------------------------------- physical ids
    def _resource(self, logical_id: str) -> dict:
        try:
            resource = self.template["Resources"][logical_id]
        except KeyError:
            raise KeyError(f"no resource {logical_id} in the template") from None
        if not self.resource_exists(logical_id):
            raise ValueError(f"{logical_id} is not created under these parameters")
        return resource

    def _name_of(self, logical_id: str, prop: str | None) -> str:
        props = self._resource(logical_id).get("Properties", {})
        if prop and prop in props:
            value = self.resolve(props[prop])
            if value is not NO_VALUE:
                return value
        return f"{self.name}-{logical_id}-{_digits(logical_id, 12).upper()}"

    def ref(self, logical_id: str):
        if self._ctx is not None:
            if logical_id in self.template.get("Resources", {}):
                self._resource(logical_id)  # refuses one not created
            return self._delegated({"Ref": logical_id})
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": self.partition,
            "AWS::StackName": self.name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account}:stack/{self.name}/{_digits(self.name, 8)}",
            "AWS::NoValue": NO_VALUE,
        }
        if logical_id in pseudo:
            return pseudo[logical_id]
        if logical_id in self.parameters:
            return self.parameters[logical_id]
        kind = self._resource(logical_id)["Type"]
        # What Ref returns, per type (CloudFormation's resource reference).
        if kind == "AWS::EC2::SecurityGroup":
            return f"sg-{_digits(logical_id, 17)}"
        if kind in (
            "AWS::SNS::Topic",
            "AWS::SecretsManager::Secret",
            "AWS::CodeBuild::ReportGroup",
        ):
            return self.getatt(logical_id, "Arn")
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{self._name_of(logical_id, 'QueueName')}"
        if kind == "AWS::KMS::Key":
            return f"{_digits(logical_id, 8)}-{_digits(logical_id + '1', 4)}-4{_digits(logical_id + '2', 3)}-a{_digits(logical_id + '3', 3)}-{_digits(logical_id + '4', 12)}"
        props = {
            "AWS::IAM::Role": "RoleName",
            "AWS::IAM::InstanceProfile": "InstanceProfileName",
            "AWS::Logs::LogGroup": "LogGroupName",
            "AWS::DynamoDB::Table": "TableName",
            "AWS::CodeBuild::Project": "Name",
            "AWS::CodeCommit::Repository": "RepositoryName",
            "AWS::Lambda::Function": "FunctionName",
            "AWS::Serverless::Function": "FunctionName",
            "AWS::Events::EventBus": "Name",
            "AWS::Events::Rule": "Name",
            "AWS::S3::Bucket": "BucketName",
        }
        return self._name_of(logical_id, props.get(kind))

    def getatt(self, logical_id: str, attribute: str):
        kind = self._resource(logical_id)["Type"]
        if self._ctx is not None:
            return self._delegated({"Fn::GetAtt": [logical_id, attribute]})
        p, r, a = self.partition, self.region, self.account
        if attribute == "GroupId" and kind == "AWS::EC2::SecurityGroup":
            return self.ref(logical_id)
        if attribute == "Name" and kind == "AWS::CodeCommit::Repository":
            # Ref of a repository is its id; Name is the name it was given.
            return self._name_of(logical_id, "RepositoryName")
        if attribute != "Arn":
            raise NotImplementedError(f"GetAtt {logical_id}.{attribute} ({kind})")
        own = {
            "AWS::SQS::Queue": lambda: (
                f"arn:{p}:sqs:{r}:{a}:{self._name_of(logical_id, 'QueueName')}"
            ),
            "AWS::SNS::Topic": lambda: (
                f"arn:{p}:sns:{r}:{a}:{self._name_of(logical_id, 'TopicName')}"
            ),
            "AWS::SecretsManager::Secret": lambda: (
                f"arn:{p}:secretsmanager:{r}:{a}:secret:{self._name_of(logical_id, 'Name')}-{_digits(logical_id, 6)}"
            ),
            "AWS::CodeBuild::ReportGroup": lambda: (
                f"arn:{p}:codebuild:{r}:{a}:report-group/{self._name_of(logical_id, 'Name')}"
            ),
        }
        if kind in own:
            return own[kind]()
        name = self.ref(logical_id)
        arns = {
            "AWS::IAM::Role": f"arn:{p}:iam::{a}:role/{name}",
            "AWS::IAM::InstanceProfile": f"arn:{p}:iam::{a}:instance-profile/{name}",
            "AWS::KMS::Key": f"arn:{p}:kms:{r}:{a}:key/{name}",
            "AWS::Logs::LogGroup": f"arn:{p}:logs:{r}:{a}:log-group:{name}:*",
            "AWS::DynamoDB::Table": f"arn:{p}:dynamodb:{r}:{a}:table/{name}",
            "AWS::CodeBuild::Project": f"arn:{p}:codebuild:{r}:{a}:project/{name}",
            "AWS::CodeCommit::Repository": f"arn:{p}:codecommit:{r}:{a}:{name}",
            "AWS::Lambda::Function": f"arn:{p}:lambda:{r}:{a}:function:{name}",
            "AWS::Serverless::Function": f"arn:{p}:lambda:{r}:{a}:function:{name}",
            "AWS::Events::EventBus": f"arn:{p}:events:{r}:{a}:event-bus/{name}",
            "AWS::Events::Rule": f"arn:{p}:events:{r}:{a}:rule/{name}",
            "AWS::S3::Bucket": f"arn:{p}:s3:::{name}",
        }
        if kind in arns:
            return arns[kind]
        raise NotImplementedError(f"GetAtt {logical_id}.Arn ({kind})")

    # ------------------------------------------------------------- intrinsics
    def sub(self, text: str, variables: dict | None = None) -> str:
        """Fn::Sub: ${Param}, ${Resource}, ${Resource.Attr}, ${AWS::...}; ${!x}
        stays as the literal ${x}."""
        variables = variables or {}
        if self._ctx is not None:
            return self._delegated({"Fn::Sub": [text, variables]})

        def repl(m: re.Match) -> str:
            inner = m.group(1)
            if inner.startswith("!"):
                return "${" + inner[1:] + "}"
            if inner in variables:
                return str(self.resolve(variables[inner]))
            if "." in inner and not inner.startswith("AWS::"):
                logical_id, attribute = inner.split(".", 1)
                return str(self.getatt(logical_id, attribute))
            value = self.ref(inner)
            if value is NO_VALUE:
                raise ValueError("AWS::NoValue inside Fn::Sub")
            return str(value)

        return re.sub(r"\$\{([^}]+)\}", repl, text)

    def resolve(self, value):
        """Resolves every intrinsic in ``value``; AWS::NoValue drops the key
        or list item it stands for, as CloudFormation does."""
        if self._ctx is not None:
            return self._delegated(value)
        if isinstance(value, list):
            out = [self.resolve(v) for v in value]
            return [v for v in out if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Sub":
                if isinstance(arg, list):
                    return self.sub(arg[0], arg[1])
                return self.sub(arg)
            if key == "Fn::GetAtt":
                logical_id, attribute = (
                    arg if isinstance(arg, list) else arg.split(".", 1)
                )
                return self.getatt(logical_id, self.resolve(attribute))
            if key == "Fn::If":
                name, then, otherwise = arg
                return self.resolve(then if self.condition(name) else otherwise)
            if key == "Fn::Equals":
                a, b = (self.resolve(x) for x in arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(x) for x in arg)
            if key == "Fn::Or":
                return any(self.resolve(x) for x in arg)
            if key == "Fn::Join":
                sep, items = arg
                return str(sep).join(str(x) for x in self.resolve(items))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(sep)
            if key == "Fn::FindInMap":
                m, k1, k2 = (self.resolve(x) for x in arg)
                return self.template["Mappings"][m][k1][k2]
            if key.startswith("Fn::"):
                raise NotImplementedError(f"{key} in a role policy")
        out = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}


def _managed_policy(arn: str) -> dict:
    catalog = json.loads(MANAGED_POLICIES.read_text(encoding="utf-8"))["policies"]
    name = arn.rsplit("/", 1)[-1]
    if (
        not re.fullmatch(
            r"arn:aws[a-z-]*:iam::aws:policy/(.+/)?" + re.escape(name), arn
        )
        or name not in catalog
    ):
        raise KeyError(
            f"managed policy {arn} is not in {MANAGED_POLICIES.name}: add its documented statement"
        )
    return {"PolicyName": name, "PolicyDocument": catalog[name]["document"]}


def named_roles(
    template_path: Path | str = TEMPLATE,
    parameters: dict | None = None,
    stack: Stack | None = None,
) -> dict[str, list[dict]]:
    """{logical role id: [{"PolicyName", "PolicyDocument"}, ...]} for every
    role the stack creates under ``parameters``: inline policies, managed
    policies by ARN, and AWS::IAM::Policy/ManagedPolicy resources attached
    to it. ``stack`` (a deployed one, say) replaces the template and
    parameters."""
    stack = stack or Stack(load(template_path), parameters)
    resources = stack.template["Resources"]
    out: dict[str, list[dict]] = {}
    for logical_id, resource in resources.items():
        serverless = resource["Type"] == "AWS::Serverless::Function"
        if (
            serverless
            and stack.resource_exists(logical_id)
            and "Role" not in resource.get("Properties", {})
        ):
            raise NotImplementedError(
                f"{logical_id} has no Role: SAM would generate one (use tests/twin/cfn.py)"
            )
        if resource["Type"] != "AWS::IAM::Role" or not stack.resource_exists(
            logical_id
        ):
            continue
        props = stack.resolve(resource.get("Properties", {}))
        policies = [
            {"PolicyName": p["PolicyName"], "PolicyDocument": p["PolicyDocument"]}
            for p in props.get("Policies", [])
        ]
        policies += [_managed_policy(arn) for arn in props.get("ManagedPolicyArns", [])]
        out[logical_id] = policies
    for logical_id, resource in resources.items():
        if resource["Type"] not in (
            "AWS::IAM::Policy",
            "AWS::IAM::ManagedPolicy",
        ) or not stack.resource_exists(logical_id):
            continue
        props = stack.resolve(resource["Properties"])
        for role_name in props.get("Roles", []):
            for role_id, attached in out.items():
                if stack.ref(role_id) == role_name:
                    attached.append(
                        {
                            "PolicyName": props.get("PolicyName", logical_id),
                            "PolicyDocument": props["PolicyDocument"],
                        }
                    )
    return out


def roles(
    template_path: Path | str = TEMPLATE, parameters: dict | None = None
) -> dict[str, list[dict]]:
    """{logical role id: [policy documents, resolved]}."""
    return {
        k: [p["PolicyDocument"] for p in v]
        for k, v in named_roles(template_path, parameters).items()
    }


def variants(template_path: Path | str = TEMPLATE) -> dict[str, dict]:
    """Parameter sets whose conditions change what the roles grant: the
    repository host (CodeCommit, GitHub) and the ledger (created, adopted)."""
    params = load(template_path).get("Parameters", {})
    out = {"defaults": {}, "github": dict(GITHUB_PARAMETERS)}
    if "ExistingLedgerTableName" in params:
        out["adopted-ledger"] = {"ExistingLedgerTableName": "gild-ledger"}
    if "SlackEnabled" in params:
        out["github+slack+email"] = {
            **GITHUB_PARAMETERS,
            "SlackEnabled": "true",
            "NotificationEmail": "ops@example.com",
        }
    if "CreateRepository" in params:
        out["existing-repository"] = {"CreateRepository": "false"}
    return out
