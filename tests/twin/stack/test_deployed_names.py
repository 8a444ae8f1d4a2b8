"""The deployed stack is what the functions are configured with and what the
IAM gate judges against: the same names, read from moto, not made up twice.

The gate runs in its own virtualenv (.venv/iam, principalmapper), so it is
started as a process, as the end-to-end harness would start it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from twin.stack import deploy
from twin.stack.conftest import GITHUB, NETWORK, REPO

GATE_PYTHON = REPO / ".venv" / "iam" / "bin" / "python"


def test_functions_get_the_stacks_names(moto: str, template_path: Path) -> None:
    """Each function's environment, as Lambda holds it, names the resources
    moto created: its projects exist in CodeBuild, its ledger in DynamoDB."""
    result = deploy.deploy(moto, template_path, NETWORK)
    trigger = result.functions["Trigger"]
    assert trigger["Role"] == "TriggerRole"
    env = trigger["Environment"]
    assert env["GILD_LEDGER_TABLE"] == result.outputs["LedgerTable"]
    assert env["GILD_REPOSITORY"] == result.outputs["RepositoryName"]
    api = deploy.clients(moto, "us-east-1")
    projects = api["codebuild"].batch_get_projects(
        names=[env["GILD_BAKE_PROJECT"], result.outputs["TestProject"]]
    )["projects"]
    assert {p["name"] for p in projects} == {
        env["GILD_BAKE_PROJECT"],
        result.outputs["TestProject"],
    }
    bake = next(p for p in projects if p["name"] == env["GILD_BAKE_PROJECT"])
    role = result.resources["BakeRole"]["PhysicalId"]
    assert bake["serviceRole"].endswith(f"role/{role}"), bake["serviceRole"]
    api["dynamodb"].describe_table(TableName=env["GILD_LEDGER_TABLE"])


def test_projects_keep_what_a_build_needs(moto: str, template_path: Path) -> None:
    """CodeBuild's copy of each project (BatchGetProjects, what
    tools/twin_run_build.py runs a build from): the buildspec, the stack's
    variables, the artifact location and the log group, as the template
    gives them."""
    result = deploy.deploy(moto, template_path, NETWORK)
    api = deploy.clients(moto, "us-east-1")
    names = [result.outputs["BakeProject"], result.outputs["TestProject"]]
    projects = {
        p["name"]: p
        for p in api["codebuild"].batch_get_projects(names=names)["projects"]
    }
    bake, test = projects[names[0]], projects[names[1]]
    assert bake["source"]["buildspec"] == "buildspecs/bake.yml"
    assert test["source"]["buildspec"] == "buildspecs/test.yml"
    variables = {
        v["name"]: v["value"] for v in bake["environment"]["environmentVariables"]
    }
    assert variables["GILD_KMS_KEY_ID"] == result.outputs["KeyArn"]
    assert variables["GILD_INSTANCE_PROFILE"] == result.outputs["InstanceProfile"]
    assert variables["GILD_SUBNET_ID"] == NETWORK["SubnetId"]
    assert bake["artifacts"] == {
        "type": "S3",
        "location": result.outputs["ArtifactBucketName"],
        "path": "bake",
        "namespaceType": "BUILD_ID",
        "name": "/",
        "packaging": "NONE",
        "encryptionDisabled": False,
    }
    groups = {
        name: p["logsConfig"]["cloudWatchLogs"]["groupName"]
        for name, p in projects.items()
    }
    assert groups == {
        names[0]: result.resources["BakeLogGroup"]["PhysicalId"],
        names[1]: result.resources["TestLogGroup"]["PhysicalId"],
    }
    test_variables = {
        v["name"]: v["value"] for v in test["environment"]["environmentVariables"]
    }
    assert (
        test_variables["GILD_REPORT_GROUP_ARN"] == result.outputs["TestReportGroupArn"]
    )
    assert test["artifacts"] == {"type": "NO_ARTIFACTS"}
    assert bake["timeoutInMinutes"] == 480


def test_github_secrets_are_the_ones_the_functions_name(
    moto: str, template_path: Path
) -> None:
    """Secrets moto's CloudFormation cannot create are created beside the
    stack, and the webhook function's environment names their real ARNs."""
    result = deploy.deploy(moto, template_path, {**NETWORK, **GITHUB})
    hook_env = result.functions["GitHubWebhook"]["Environment"]
    arns = {s["LogicalId"]: s["PhysicalId"] for s in result.side_created}
    assert arns["WebhookSecret"] in hook_env.values(), hook_env
    secrets = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing"
    ).client("secretsmanager", region_name="us-east-1", endpoint_url=moto)
    value = secrets.get_secret_value(SecretId=arns["WebhookSecret"])["SecretString"]
    assert len(value) == 64 and value.isalnum()


@pytest.fixture
def gate(moto: str, template_path: Path, tmp_path: Path):
    if not GATE_PYTHON.exists():
        pytest.fail(f"{GATE_PYTHON} is missing: run `make iam-check` first")
    result = deploy.deploy(moto, template_path, NETWORK)
    stack_json = tmp_path / "stack.json"
    stack_json.write_text(json.dumps(result.to_json()))
    creds = tmp_path / "creds.json"
    proc = subprocess.Popen(
        [str(GATE_PYTHON), "-m", "tests.twin.iam.gate", "--upstream", moto,
         "--template", str(template_path), "--port", "0",
         "--credentials-out", str(creds), "--stack-json", str(stack_json)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("listening "), f"gate did not start: {line!r}"
        yield (
            result,
            json.loads(creds.read_text()),
            f"http://127.0.0.1:{line.split()[1]}",
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_gate_judges_the_deployed_names(gate) -> None:
    """Under the trigger's role, the deployed ledger (moto's generated name)
    is allowed and any other table refused: the policy was resolved with
    the names moto gave, or the first call would be refused too."""
    result, creds, endpoint = gate
    key = creds["TriggerRole"]
    ddb = boto3.session.Session(
        aws_access_key_id=key["access_key_id"],
        aws_secret_access_key=key["secret_access_key"],
    ).client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
    item = {"family": {"S": "f"}, "dedupe_key": {"S": "k"}}
    ddb.get_item(TableName=result.outputs["LedgerTable"], Key=item)
    with pytest.raises(ClientError) as refused:
        ddb.get_item(TableName="gild-ledger", Key=item)
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
