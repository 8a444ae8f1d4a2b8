"""The IAM gate in front of a real moto server, driven with boto3 under the
gate's per-role credentials: allowed calls reach moto, others are refused
with the error code the service really sends."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from .roles import REPO, Stack, load

MOTO = Path(
    os.environ.get("GILD_MOTO_SERVER", REPO / ".venv" / "bin" / "gild-moto-server")
)
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(url)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if not MOTO.exists():
        pytest.fail(f"{MOTO} is missing: run `make tools` (mk/iam.mk depends on it)")
    tmp = tmp_path_factory.mktemp("gate")
    port = _free_port()
    moto = subprocess.Popen(
        [str(MOTO), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    gate = None
    try:
        upstream = f"http://127.0.0.1:{port}"
        _wait(upstream + "/moto-api/", moto)
        creds, decisions = tmp / "creds.json", tmp / "decisions.jsonl"
        gate = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.twin.iam.gate",
                "--upstream",
                upstream,
                "--port",
                "0",
            ]
            + ["--credentials-out", str(creds), "--decisions-out", str(decisions)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        line = gate.stdout.readline().split()
        assert line[:1] == ["listening"], line
        yield {
            "upstream": upstream,
            "gate": f"http://127.0.0.1:{line[1]}",
            "creds": json.loads(creds.read_text()),
            "decisions": decisions,
        }
    finally:
        for proc in (gate, moto):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)


def client(env, service, role=None):
    keys = (
        env["creds"][role]
        if role
        else {"access_key_id": "admin", "secret_access_key": "admin"}
    )
    return boto3.client(
        service,
        endpoint_url=env["gate"] if role else env["upstream"],
        region_name=REGION,
        aws_access_key_id=keys["access_key_id"],
        aws_secret_access_key=keys["secret_access_key"],
        config=Config(retries={"max_attempts": 1}),
    )


def decisions(env):
    return [json.loads(line) for line in env["decisions"].read_text().splitlines()]


def test_every_role_gets_its_own_keys(env):
    keys = [c["access_key_id"] for c in env["creds"].values()]
    assert {"TriggerRole", "BakeFinishedRole", "TestFinishedRole"} <= set(env["creds"])
    assert len(set(keys)) == len(keys)


def test_an_allowed_call_reaches_moto_and_another_table_is_refused(env):
    ledger = Stack(load()).ref("Ledger")
    for name in (ledger, "not-gilds"):
        client(env, "dynamodb").create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    trigger = client(env, "dynamodb", "TriggerRole")
    assert "Item" not in trigger.get_item(TableName=ledger, Key={"pk": {"S": "x"}})
    with pytest.raises(ClientError) as refused:
        trigger.get_item(TableName="not-gilds", Key={"pk": {"S": "x"}})
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "dynamodb:GetItem" in refused.value.response["Error"]["Message"]
    last = decisions(env)[-1]
    assert last["role"] == "TriggerRole" and not last["allowed"]


def test_ec2_refusal_is_unauthorized_operation(env):
    with pytest.raises(ClientError) as refused:
        client(env, "ec2", "TriggerRole").create_tags(
            Resources=["ami-0123456789abcdef0"],
            Tags=[{"Key": "gild:state", "Value": "x"}],
        )
    assert refused.value.response["Error"]["Code"] == "UnauthorizedOperation"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_sns_refusal_is_authorization_error(env):
    topic = client(env, "sns").create_topic(Name="someone-elses")["TopicArn"]
    with pytest.raises(ClientError) as refused:
        client(env, "sns", "TriggerRole").publish(TopicArn=topic, Message="hi")
    assert refused.value.response["Error"]["Code"] == "AuthorizationError"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_an_unmapped_action_is_refused_and_logged(env):
    with pytest.raises(ClientError) as refused:
        client(env, "dynamodb", "TriggerRole").delete_table(TableName="not-gilds")
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    last = decisions(env)[-1]
    assert last["unmapped"] and last["action"] == "dynamodb:DeleteTable"
    # and the table is still there: the request never reached moto
    assert client(env, "dynamodb").describe_table(TableName="not-gilds")["Table"]


def test_a_function_role_assumes_the_reviewer_and_acts_under_its_keys(env):
    """TestFinishedRole may assume ReviewerRole (its policy allows it and
    ReviewerRole's trust policy names it): the gate answers with the
    reviewer's own keys, which it then judges as that role. BakeRole may
    not: its policy allows no sts:AssumeRole."""
    stack = Stack(load())
    reviewer = stack.getatt("ReviewerRole", "Arn")
    creds = client(env, "sts", "TestFinishedRole").assume_role(
        RoleArn=reviewer, RoleSessionName="gild"
    )["Credentials"]
    assert creds["AccessKeyId"] == env["creds"]["ReviewerRole"]["access_key_id"]
    assert decisions(env)[-1]["assumed"] == "ReviewerRole"
    with pytest.raises(ClientError) as refused:
        client(env, "sts", "BakeRole").assume_role(
            RoleArn=reviewer, RoleSessionName="gild"
        )
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
