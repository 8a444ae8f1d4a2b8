"""Deploy infra/template.yaml into moto's CloudFormation, as `sam deploy` would.

The steps: the SAM transform (twin.cfn.translate, the pinned translator);
the template's conditions evaluated for the given parameters (cfn), so moto
sees only the resources CloudFormation would create; the resource types moto
cannot create stripped, each named in `UNSUPPORTED` with why (a reference to
one becomes the value cfn computes for it); CreateStack; and a `stack.json`
of what the stack is: outputs, physical ids, rules and their targets.

Lambda: moto's CreateFunction only stores the function (it runs docker on
Invoke, not on create; moto/awslambda/models.py), but it reads the code
from S3, so each function's S3 key gets a placeholder zip first. The real
binaries run elsewhere, under the Rust harness's Lambda Runtime API.

Reserved concurrency: CloudFormation sets it with PutFunctionConcurrency
after creating a function; moto's CloudFormation only stores the number,
so `deploy` calls PutFunctionConcurrency itself. A moto server started with
MOTO_LAMBDA_CONCURRENCY_QUOTA then refuses a reservation that leaves fewer
than 100 unreserved, as Lambda does.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import string
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from twin import cfn

# Types in gild's translated template that moto 5.2.5's CloudFormation has no
# CloudFormationModel for (moto/cloudformation/parsing.py would warn "not
# supported" and skip them silently). test_deploy.py checks this list against
# moto's own resource_class_from_type, so it cannot drift.
UNSUPPORTED: dict[str, str] = {
    "AWS::CodeBuild::Project": (
        "no CloudFormation model in moto; created with CodeBuild's CreateProject "
        "after the stack instead (source, artifacts, environment, role, timeouts, "
        "logs and VPC config kept; moto reports alias/aws/s3 as its encryption key)"
    ),
    "AWS::CodeBuild::ReportGroup": "moto has no CodeBuild report groups (no model, no API)",
    "AWS::CodeCommit::Repository": (
        "no CloudFormation model in moto; created with CodeCommit's CreateRepository "
        "beside the stack instead (name collisions and DeletionPolicy Retain kept)"
    ),
    "AWS::CloudWatch::Alarm": "moto's CloudFormation models only CloudWatch dashboards",
    "AWS::EC2::SecurityGroupEgress": "moto models SecurityGroupIngress, not Egress",
    "AWS::Lambda::EventInvokeConfig": "no CloudFormation model (retries/destinations unchecked)",
    "AWS::Lambda::Url": "no CloudFormation model (the webhook URL is not served by moto)",
    "AWS::S3::BucketPolicy": "no CloudFormation model (the policy is not evaluated by moto)",
    "AWS::SecretsManager::Secret": (
        "no CloudFormation model in moto; created with CreateSecret before the "
        "stack instead (value or generated value kept; KmsKeyId not: moto does not encrypt)"
    ),
    "AWS::SNS::Subscription": "no CloudFormation model (email and Lambda subscriptions unchecked)",
    "AWS::SNS::TopicPolicy": "no CloudFormation model (topic policies are not evaluated)",
    "AWS::SQS::QueuePolicy": "no CloudFormation model (queue policies are not evaluated)",
}

# Custom resources: moto's CustomModel would invoke the function through
# moto's Lambda (a docker container), which the twin does not run. They are
# stripped like the types above, and stack.json's `CustomResources` keeps
# each one's resolved properties and function, so the Rust harness plays
# CloudFormation's part: it sends the real binary the Create request and
# reads the answer it PUTs back (tests/src/custom_resource.rs).
PLAYED_BY_HARNESS = (
    "custom resource: played by the harness (its function gets CloudFormation's "
    "request and answers on the response URL); moto would run the function in docker"
)


def strip_reason(resource_type: str) -> str | None:
    """Why a resource of this type is not given to moto, or None."""
    if resource_type.startswith("Custom::") or resource_type == (
        "AWS::CloudFormation::CustomResource"
    ):
        return PLAYED_BY_HARNESS
    return UNSUPPORTED.get(resource_type)


# Of the stripped types, those `deploy` creates through their own API, so
# what matters about them is still seen: a repository's fixed name that
# collides, the secrets the functions read, and the CodeBuild projects the
# functions start builds in (moto's StartBuild refuses an unknown project).
# The repository and the secrets before the stack (a taken name is met as
# CloudFormation would meet it; the functions' environment names the
# secrets' ARNs), the projects after it (they name its roles).
BEFORE_STACK = {"AWS::CodeCommit::Repository", "AWS::SecretsManager::Secret"}
AFTER_STACK = {"AWS::CodeBuild::Project"}


@dataclass
class Deployment:
    """What `deploy` did: everything stack.json holds, and what delete needs."""

    stack_name: str
    status: str
    outputs: dict[str, str] = field(default_factory=dict)
    resources: dict[str, dict[str, str]] = field(default_factory=dict)
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    stripped: list[dict[str, str]] = field(default_factory=list)
    side_created: list[dict[str, str]] = field(default_factory=list)
    reason: str = ""
    # The uuid in the StackId cfn.Context named stripped resources with, and
    # the parameter values: what the IAM gate resolves the policies with.
    stack_uuid: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    # Each function as Lambda holds it: name, role, environment.
    functions: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Each custom resource: its type, function (logical id) and properties
    # resolved as CloudFormation sends them (every value a string).
    custom_resources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "StackName": self.stack_name,
            "Status": self.status,
            "Reason": self.reason,
            "Outputs": self.outputs,
            "Resources": self.resources,
            "Rules": self.rules,
            "Stripped": self.stripped,
            "SideCreated": self.side_created,
            "StackUuid": self.stack_uuid,
            "Parameters": self.parameters,
            "Functions": self.functions,
            "CustomResources": self.custom_resources,
        }


class DeployError(RuntimeError):
    """CloudFormation (moto) refused the stack; the message says why."""


def clients(endpoint: str, region: str) -> dict[str, Any]:
    """boto3 clients against the moto server, with dummy credentials."""
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
    )
    conf = Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=60)
    names = (
        "cloudformation",
        "s3",
        "codecommit",
        "codebuild",
        "lambda",
        "events",
        "dynamodb",
        "secretsmanager",
    )
    return {n: session.client(n, endpoint_url=endpoint, config=conf) for n in names}


def _pick(value: Any, ctx: cfn.Context, stripped: set[str]) -> Any:
    """`value` with conditions decided and references to stripped resources made literal.

    What moto can resolve itself (Ref to a parameter or a resource it
    creates) is left for moto, so its own physical ids are used.
    """
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Fn::If":
            return _pick(arg[1] if ctx.condition(arg[0]) else arg[2], ctx, stripped)
        if key == "Ref" and arg == "AWS::NoValue":
            return cfn.NO_VALUE
        if key == "Ref" and arg in stripped:
            return cfn.physical_id(ctx, arg)
        if key == "Fn::GetAtt" and cfn.target_logical_id(value) in stripped:
            return cfn.resolve(value, ctx)
        if key == "Fn::Sub":
            return {key: _pick_sub(arg, ctx, stripped)}
    if isinstance(value, dict):
        out = {k: _pick(v, ctx, stripped) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not cfn.NO_VALUE}
    if isinstance(value, list):
        return [
            p for p in (_pick(v, ctx, stripped) for v in value) if p is not cfn.NO_VALUE
        ]
    return value


def _pick_sub(arg: Any, ctx: cfn.Context, stripped: set[str]) -> Any:
    text, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, None)

    def literal(match: re.Match[str]) -> str:
        var = match.group(1)
        head = var.split(".", 1)[0]
        if head in stripped and (variables is None or var not in variables):
            return str(cfn.resolve({"Fn::Sub": match.group(0)}, ctx))
        return match.group(0)

    text = re.sub(r"\$\{([^!}][^}]*)\}", literal, text)
    if variables is None:
        return text
    return [text, _pick(variables, ctx, stripped)]


def moto_template(
    translated: dict[str, Any], ctx: cfn.Context
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The template moto is given, and the resources stripped from it (with why)."""
    resources = translated.get("Resources") or {}
    present = {lid for lid in resources if ctx.exists(lid)}
    stripped = {lid for lid in present if strip_reason(resources[lid]["Type"])}
    kept: dict[str, Any] = {}
    for lid in sorted(present - stripped):
        res = {k: v for k, v in resources[lid].items() if k != "Condition"}
        res = _pick(res, ctx, stripped)
        depends = res.get("DependsOn")
        if depends is not None:
            depends = [depends] if isinstance(depends, str) else depends
            res["DependsOn"] = [d for d in depends if d in present - stripped]
        kept[lid] = res
    outputs = {}
    for name, spec in (translated.get("Outputs") or {}).items():
        if spec.get("Condition") is None or ctx.condition(spec["Condition"]):
            outputs[name] = _pick({"Value": spec["Value"]}, ctx, stripped)
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": translated.get("Parameters") or {},
        "Mappings": translated.get("Mappings") or {},
        "Resources": kept,
        "Outputs": outputs,
    }
    listing = [
        {
            "LogicalId": lid,
            "Type": resources[lid]["Type"],
            "Reason": strip_reason(resources[lid]["Type"]),
        }
        for lid in sorted(stripped)
    ]
    return template, listing


def _placeholder_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(
            "bootstrap",
            "#!/bin/sh\n# placeholder: the twin runs the real binary\nexit 1\n",
        )
    return buf.getvalue()


def _upload_code(api: dict[str, Any], template: dict[str, Any]) -> None:
    """What `sam package` uploads: one object per function's S3 key."""
    body = _placeholder_zip()
    made: set[str] = set()
    for res in template["Resources"].values():
        code = (res.get("Properties") or {}).get("Code") or {}
        if res["Type"] == "AWS::Lambda::Function" and "S3Bucket" in code:
            if code["S3Bucket"] not in made:
                try:
                    api["s3"].create_bucket(Bucket=code["S3Bucket"])
                except ClientError as err:
                    if err.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
                        raise
                made.add(code["S3Bucket"])
            api["s3"].put_object(Bucket=code["S3Bucket"], Key=code["S3Key"], Body=body)


def _create_side(
    api: dict[str, Any], translated: dict[str, Any], ctx: cfn.Context, kinds: set[str]
) -> list[dict[str, str]]:
    made = []
    for lid, res in (translated.get("Resources") or {}).items():
        if res["Type"] in kinds and ctx.exists(lid):
            props = cfn.resolve(res.get("Properties") or {}, ctx)
            try:
                if res["Type"] == "AWS::CodeCommit::Repository":
                    name = props["RepositoryName"]
                    api["codecommit"].create_repository(
                        repositoryName=name,
                        repositoryDescription=props.get("RepositoryDescription", ""),
                    )
                elif res["Type"] == "AWS::SecretsManager::Secret":
                    name = _create_secret(api, cfn.resource_name(ctx, lid), props)
                else:
                    name = props["Name"]
                    api["codebuild"].create_project(**_codebuild_project(props))
            except ClientError as err:
                raise DeployError(f"{lid} ({res['Type']}): {err}") from err
            made.append(
                {
                    "LogicalId": lid,
                    "Type": res["Type"],
                    "PhysicalId": name,
                    "DeletionPolicy": res.get("DeletionPolicy", "Delete"),
                }
            )
    return made


def _create_secret(api: dict[str, Any], name: str, props: dict[str, Any]) -> str:
    """The secret as CloudFormation creates it (a fixed SecretString, or one
    generated of letters and digits); its ARN. KmsKeyId is left out: the key
    is the stack's own and does not exist yet, and moto does not encrypt."""
    value = props.get("SecretString")
    if value is None:
        spec = props.get("GenerateSecretString") or {}
        alphabet = string.ascii_letters + string.digits
        value = "".join(
            secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32)))
        )
    answer = api["secretsmanager"].create_secret(
        Name=name, Description=props.get("Description", ""), SecretString=value
    )
    return answer["ARN"]


def _codebuild_project(props: dict[str, Any]) -> dict[str, Any]:
    """AWS::CodeBuild::Project properties as CreateProject's input: what a
    build needs (tools/twin_run_build.py reads it back with
    BatchGetProjects): source and buildspec, artifacts, the environment
    and its variables, the service role, the timeouts, the log group and
    the VPC. moto keeps all of these; it replaces encryptionKey with
    alias/aws/s3 whatever is sent (moto/codebuild/models.py)."""
    source, artifacts = props["Source"], props["Artifacts"]
    env = props["Environment"]
    out = {
        "name": props["Name"],
        "description": props.get("Description", ""),
        "source": {
            "type": source["Type"],
            "location": source.get("Location", ""),
            "buildspec": source.get("BuildSpec", ""),
        },
        "artifacts": {
            k: artifacts[p]
            for k, p in (
                ("type", "Type"),
                ("location", "Location"),
                ("path", "Path"),
                ("namespaceType", "NamespaceType"),
                ("name", "Name"),
                ("packaging", "Packaging"),
                ("encryptionDisabled", "EncryptionDisabled"),
            )
            if p in artifacts
        },
        "environment": {
            "type": env["Type"],
            "image": env["Image"],
            "computeType": env["ComputeType"],
            "environmentVariables": [
                {"name": v["Name"], "value": str(v["Value"]), "type": "PLAINTEXT"}
                for v in env.get("EnvironmentVariables", [])
            ],
        },
        "serviceRole": props["ServiceRole"],
    }
    for key, prop in (
        ("timeoutInMinutes", "TimeoutInMinutes"),
        ("queuedTimeoutInMinutes", "QueuedTimeoutInMinutes"),
    ):
        if prop in props:
            out[key] = int(props[prop])
    logs = props.get("LogsConfig") or {}
    if logs:
        out["logsConfig"] = {}
        cw, s3 = logs.get("CloudWatchLogs"), logs.get("S3Logs")
        if cw:
            out["logsConfig"]["cloudWatchLogs"] = {
                k: cw[p]
                for k, p in (
                    ("status", "Status"),
                    ("groupName", "GroupName"),
                    ("streamName", "StreamName"),
                )
                if p in cw
            }
        if s3:
            out["logsConfig"]["s3Logs"] = {
                k: s3[p]
                for k, p in (("status", "Status"), ("location", "Location"))
                if p in s3
            }
    vpc = props.get("VpcConfig")
    if vpc:
        out["vpcConfig"] = {
            "vpcId": vpc["VpcId"],
            "subnets": list(vpc.get("Subnets", [])),
            "securityGroupIds": list(vpc.get("SecurityGroupIds", [])),
        }
    if "SourceVersion" in props:
        out["sourceVersion"] = props["SourceVersion"]
    if "EncryptionKey" in props:
        out["encryptionKey"] = props["EncryptionKey"]
    return out


def _wait(cf: Any, stack_name: str, busy: str) -> dict[str, Any]:
    for _ in range(300):
        stack = cf.describe_stacks(StackName=stack_name)["Stacks"][0]
        if stack["StackStatus"] != busy:
            return stack
        time.sleep(0.2)
    raise DeployError(f"{stack_name} still {busy} after 60 s")


def deploy(
    endpoint: str,
    template_path: str | Path,
    parameters: dict[str, str],
    stack_name: str = "gild",
    region: str = "us-east-1",
    account: str = "123456789012",
) -> Deployment:
    """Create the stack in moto; raise DeployError with the reason if refused."""
    api = clients(endpoint, region)
    raw = cfn.load(template_path)
    unknown = sorted(set(parameters) - set(raw.get("Parameters") or {}))
    if unknown:
        # CloudFormation's own answer to an undeclared parameter.
        raise DeployError(f"Parameters: {unknown} do not exist in the template")
    translated = cfn.translate(raw, parameters, region, account)
    stack_uuid = str(uuid.uuid4())
    ctx = cfn.Context(translated, parameters, region, account, stack_name, stack_uuid)
    side = _create_side(api, translated, ctx, BEFORE_STACK)
    ctx.deployed.update(
        {
            made["LogicalId"]: made["PhysicalId"]
            for made in side
            if made["Type"] == "AWS::SecretsManager::Secret"
        }
    )
    template, stripped = moto_template(translated, ctx)
    _upload_code(api, template)
    declared = set(template["Parameters"])
    cf_params = [
        {"ParameterKey": k, "ParameterValue": str(v)}
        for k, v in ctx.values.items()
        if k in declared
    ]
    cf = api["cloudformation"]
    try:
        cf.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(template),
            Parameters=cf_params,
            Capabilities=[
                "CAPABILITY_IAM",
                "CAPABILITY_NAMED_IAM",
                "CAPABILITY_AUTO_EXPAND",
            ],
        )
    except ClientError as err:
        raise DeployError(f"CreateStack refused: {err}") from err
    except ResponseParserError as err:
        # moto 5.2.5 answers CreateStack with the failing service's own error
        # body (DynamoDB's JSON ResourceInUseException) where CloudFormation
        # would report CREATE_FAILED and roll back: the stack failed either way.
        raise DeployError(f"CreateStack failed: {str(err).splitlines()[-1]}") from err
    stack = _wait(cf, stack_name, "CREATE_IN_PROGRESS")
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise DeployError(
            f"{stack_name}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}"
        )
    result = Deployment(
        stack_name=stack_name,
        status=stack["StackStatus"],
        stripped=stripped,
        side_created=side,
        stack_uuid=stack_uuid,
        parameters={k: v for k, v in ctx.values.items() if k in declared},
    )
    result.outputs = {
        o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])
    }
    for page in cf.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        for res in page["StackResourceSummaries"]:
            result.resources[res["LogicalResourceId"]] = {
                "Type": res["ResourceType"],
                "PhysicalId": res.get("PhysicalResourceId", ""),
            }
    ctx.deployed = {lid: r["PhysicalId"] for lid, r in result.resources.items()}
    result.side_created += _create_side(api, translated, ctx, AFTER_STACK)
    _reserve_concurrency(api, template, ctx, result)
    result.functions = functions(api, template, result)
    result.rules = rules(translated, ctx, result)
    result.custom_resources = custom_resources(translated, ctx)
    return result


def _reserve_concurrency(
    api: dict[str, Any], template: dict[str, Any], ctx: cfn.Context, result: Deployment
) -> None:
    for lid, res in template["Resources"].items():
        reserved = (res.get("Properties") or {}).get("ReservedConcurrentExecutions")
        if res["Type"] == "AWS::Lambda::Function" and reserved is not None:
            name = result.resources[lid]["PhysicalId"]
            try:
                api["lambda"].put_function_concurrency(
                    FunctionName=name,
                    ReservedConcurrentExecutions=int(cfn.resolve(reserved, ctx)),
                )
            except ClientError as err:
                raise DeployError(
                    f"{lid}: PutFunctionConcurrency refused: {err}"
                ) from err


def functions(
    api: dict[str, Any], template: dict[str, Any], result: Deployment
) -> dict[str, dict[str, Any]]:
    """Each function's name, role (logical id) and environment, read back
    from moto's Lambda: what the stack gives the function, resolved."""
    roles = {
        res["PhysicalId"]: lid
        for lid, res in result.resources.items()
        if res["Type"] == "AWS::IAM::Role"
    }
    out = {}
    for lid, res in template["Resources"].items():
        if res["Type"] != "AWS::Lambda::Function":
            continue
        name = result.resources[lid]["PhysicalId"]
        conf = api["lambda"].get_function_configuration(FunctionName=name)
        role_name = conf.get("Role", "").rsplit("/", 1)[-1]
        out[lid] = {
            "FunctionName": name,
            "Role": roles.get(role_name, ""),
            "Environment": (conf.get("Environment") or {}).get("Variables", {}),
        }
    return out


def _as_sent(value: Any) -> Any:
    """A property value as CloudFormation sends it to a custom resource:
    numbers and booleans as strings, lists and objects kept."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return [_as_sent(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_sent(v) for k, v in value.items()}
    return value


def custom_resources(
    translated: dict[str, Any], ctx: cfn.Context
) -> dict[str, dict[str, Any]]:
    """Every custom resource the stack declares, as the harness sends it."""
    out = {}
    for lid, res in cfn.resolved_resources(ctx).items():
        if strip_reason(res["Type"]) != PLAYED_BY_HARNESS:
            continue
        token = translated["Resources"][lid]["Properties"]["ServiceToken"]
        out[lid] = {
            "Type": res["Type"],
            "Function": cfn.target_logical_id(token),
            "Properties": _as_sent(res["Properties"]),
        }
    return out


def rules(
    translated: dict[str, Any], ctx: cfn.Context, result: Deployment
) -> dict[str, dict[str, Any]]:
    """Every EventBridge rule: its pattern as the template defines it, and targets."""
    out = {}
    for lid, res in cfn.resolved_resources(ctx).items():
        if res["Type"] != "AWS::Events::Rule":
            continue
        raw_targets = translated["Resources"][lid]["Properties"].get("Targets", [])
        out[lid] = {
            "Name": result.resources.get(lid, {}).get("PhysicalId", ""),
            "EventPattern": res["Properties"].get("EventPattern"),
            "ScheduleExpression": res["Properties"].get("ScheduleExpression"),
            "State": res["Properties"].get("State", "ENABLED"),
            "Targets": [cfn.target_logical_id(t["Arn"]) for t in raw_targets],
        }
    return out


def delete(
    endpoint: str, deployment: Deployment, region: str = "us-east-1"
) -> list[str]:
    """`sam delete`: delete the stack; return what DeletionPolicy Retain kept.

    moto's delete keeps Retain resources (moto/cloudformation/parsing.py,
    ResourceMap.delete); side-created ones are deleted here unless Retain.
    """
    api = clients(endpoint, region)
    cf = api["cloudformation"]
    cf.delete_stack(StackName=deployment.stack_name)
    for _ in range(300):
        try:
            stacks = cf.describe_stacks(StackName=deployment.stack_name)["Stacks"]
        except ClientError:  # "Stack with id ... does not exist": deleted
            break
        if not stacks or stacks[0]["StackStatus"] != "DELETE_IN_PROGRESS":
            break
        time.sleep(0.2)
    kept = []
    for side in deployment.side_created:
        if side["DeletionPolicy"] == "Retain":
            kept.append(side["LogicalId"])
        elif side["Type"] == "AWS::SecretsManager::Secret":
            api["secretsmanager"].delete_secret(
                SecretId=side["PhysicalId"], ForceDeleteWithoutRecovery=True
            )
        elif side["Type"] == "AWS::CodeBuild::Project":
            api["codebuild"].delete_project(name=side["PhysicalId"])
        else:
            api["codecommit"].delete_repository(repositoryName=side["PhysicalId"])
    return kept
